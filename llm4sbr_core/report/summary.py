"""The summary printed at the end of a workflow run (Snakefile ``onsuccess``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..data.build import summarize_datasets
from .render import warnings_of

#: The tables whose warnings the summary repeats (those with tests).
TESTED_TABLES: tuple[str, ...] = ("variants", "table3")


def run_summary(datasets: Iterable[str], root: str | Path = ".") -> str:
    """Dataset statistics, then per dataset the variants-against-base table (or Table 3)
    if the run produced it, the warnings of every table with tests (e.g. a test set too
    small to tell), and where the tables, figures and report are."""
    root = Path(root)
    datasets = list(datasets)
    parts = [summarize_datasets([root / f"results/{d}/data/stats.json" for d in datasets])]
    for d in datasets:
        tables = root / f"results/{d}/tables"
        present = [tables / f"{n}.md" for n in TESTED_TABLES if (tables / f"{n}.md").exists()]
        if not present:
            continue
        parts.append(f"\n{d}: {present[0].read_text().strip()}\n")
        warnings = dict.fromkeys(w for path in present for w in warnings_of(path.read_text()))
        parts += [f"{d}: {w}" for w in warnings]
        parts.append(f"{d}: all tables in {tables}/ (table2-5, variants; .md, .csv, .html), "
                     f"figures in {root / f'results/{d}/figures'}/")
    return "\n".join(parts)
