"""The summary printed at the end of a workflow run (Snakefile ``onsuccess``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..data.build import summarize_datasets


def run_summary(datasets: Iterable[str], root: str | Path = ".") -> str:
    """Dataset statistics, then per dataset the variants-against-base table (or Table 3)
    if the run produced it, and where the tables, figures and report are."""
    root = Path(root)
    datasets = list(datasets)
    parts = [summarize_datasets([root / f"results/{d}/data/stats.json" for d in datasets])]
    for d in datasets:
        tables = root / f"results/{d}/tables"
        shown = next((tables / f"{n}.md" for n in ("variants", "table3")
                      if (tables / f"{n}.md").exists()), None)
        if shown is None:
            continue
        parts.append(f"\n{d}: {shown.read_text().strip()}\n")
        parts.append(f"{d}: all tables in {tables}/ (table2-5, variants; .md, .csv, .html), "
                     f"figures in {root / f'results/{d}/figures'}/")
    return "\n".join(parts)
