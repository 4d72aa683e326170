"""Collect training runs and summarise them over seeds (mean ± std, in percent).

The paper's Table 3 backbone rows are kept here so our numbers can be printed beside
them. The paper selected on the test set and its MRR@5/10 are inflated (see
REFERENCE_NOTES.md); compare on P@K and the @20 metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

#: Table 3 of the paper, backbone ("w/o LLM") rows: P@20 and MRR@20 in percent.
PAPER_TABLE3: dict[str, dict[str, dict[str, float]]] = {
    "beauty": {
        "gru4rec": {"P@20": 12.71, "MRR@20": 3.23}, "sasrec": {"P@20": 10.11, "MRR@20": 2.54},
        "srgnn": {"P@20": 15.06, "MRR@20": 3.99}, "tagnn": {"P@20": 15.23, "MRR@20": 3.97},
        "gcegnn": {"P@20": 12.38, "MRR@20": 4.54}, "dhcn": {"P@20": 17.54, "MRR@20": 3.99},
    },
    "ml-1m": {
        "gru4rec": {"P@20": 14.72, "MRR@20": 3.57}, "sasrec": {"P@20": 6.47, "MRR@20": 1.42},
        "srgnn": {"P@20": 12.27, "MRR@20": 2.98}, "tagnn": {"P@20": 10.28, "MRR@20": 2.23},
        "gcegnn": {"P@20": 9.67, "MRR@20": 3.60}, "dhcn": {"P@20": 23.38, "MRR@20": 5.09},
    },
}

METRICS: tuple[str, ...] = ("P@5", "P@10", "P@20", "MRR@5", "MRR@10", "MRR@20",
                            "NDCG@5", "NDCG@10", "NDCG@20")


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per metrics.json: dataset, backbone, variant, seed, test metrics, epochs."""
    rows = []
    for path in paths:
        path = Path(path)
        m = json.loads(path.read_text())
        seed_dir, variant_dir, backbone_dir = path.parent, path.parent.parent, path.parents[2]
        rows.append({"dataset": path.parents[4].name, "backbone": backbone_dir.name,
                     "variant": variant_dir.name, "seed": int(seed_dir.name[4:]),
                     "best_epoch": m["best_epoch"], "epochs": m["epochs"],
                     "seconds_per_epoch": m["seconds_per_epoch"], **m["test"]})
    return pd.DataFrame(rows)


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
