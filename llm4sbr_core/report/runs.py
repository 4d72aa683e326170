"""Collect training runs and summarise them over seeds (mean ± std, in percent).

The paper's Table 3 backbone rows are kept here so our numbers can be printed beside
them. The paper selected on the test set and its MRR@5/10 are inflated (see
docs/reference-code.md); compare on P@K and the @20 metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from ..errors import MissingRunError
from ..layout import RANKS_FILE
from .paper import PAPER_TABLE3_ROWS

#: Table 3 of the paper, backbone ("w/o LLM") rows: ``PAPER_TABLE3[dataset][backbone]``
#: → P@K and MRR@K (K = 5, 10, 20) in percent. The LLM4SBR rows and the printed
#: improvements are in :data:`llm4sbr_core.report.paper.PAPER_TABLE3_ROWS`.
PAPER_TABLE3: dict[str, dict[str, dict[str, float]]] = {
    dataset: {backbone: rows["base"] for backbone, rows in backbones.items()}
    for dataset, backbones in PAPER_TABLE3_ROWS.items()
}

METRICS: tuple[str, ...] = ("P@5", "P@10", "P@20", "MRR@5", "MRR@10", "MRR@20",
                            "NDCG@5", "NDCG@10", "NDCG@20")


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per metrics.json: dataset, backbone, variant, seed, test metrics, epochs,
    and ``path`` (of the metrics.json; its ranks.parquet is :func:`ranks_path`)."""
    rows = []
    for path in paths:
        path = Path(path)
        m = read_metrics(path)
        seed_dir, variant_dir, backbone_dir = path.parent, path.parent.parent, path.parents[2]
        rows.append({"dataset": path.parents[4].name, "backbone": backbone_dir.name,
                     "variant": variant_dir.name, "seed": int(seed_dir.name[4:]),
                     "best_epoch": m.get("best_epoch", 0), "epochs": m.get("epochs", 0),
                     "seconds_per_epoch": m.get("seconds_per_epoch", float("nan")),
                     **m["test"], "path": str(path)})
    return pd.DataFrame(rows)


def ranks_path(metrics_path: str | Path) -> Path:
    """The ranks.parquet beside a run's metrics.json."""
    return Path(metrics_path).with_name(RANKS_FILE)


def read_metrics(path: str | Path) -> dict:
    """A run's metrics.json; a :class:`MissingRunError` naming the file if it is absent."""
    path = Path(path)
    if not path.is_file():
        raise MissingRunError(path, "metrics.json")
    return json.loads(path.read_text())


def summary_table(runs: pd.DataFrame, metrics: Sequence[str] = METRICS,
                  paper: dict[str, dict[str, float]] | None = None) -> str:
    """Markdown: one row per backbone × variant, metrics as mean ± std over seeds (%)."""
    head = ["backbone", "variant", "seeds", *metrics, "best epoch"]
    if paper:
        head += ["paper P@20", "paper MRR@20"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (backbone, variant), g in runs.groupby(["backbone", "variant"], sort=False):
        cells = [backbone, variant, str(len(g))]
        for k in metrics:
            mean, std = 100 * g[k].mean(), 100 * g[k].std(ddof=1) if len(g) > 1 else 0.0
            cells.append(f"{mean:.2f} ± {std:.2f}")
        cells.append(f"{g['best_epoch'].mean():.1f}")
        if paper:
            ref = paper.get(backbone, {})
            cells += [f"{ref['P@20']:.2f}" if ref else "—", f"{ref['MRR@20']:.2f}" if ref else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
