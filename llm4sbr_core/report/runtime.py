"""Runtime accounting: a run's costs from its metrics.json (Table 5) and the Snakemake
benchmark files summed per workflow stage (the runtime table and figure)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .render import Table, fmt
from .runs import read_metrics


def run_costs(path: str | Path) -> dict[str, float]:
    """A run's costs from metrics.json: peak memory (host and CUDA, MB), seconds per
    training epoch, training seconds up to and including the best epoch, evaluation
    seconds, epochs run and the best epoch."""
    m = read_metrics(path)
    runtime = m.get("runtime", {})
    train_seconds = list(runtime.get("train_seconds", []))
    best = int(m.get("best_epoch", 0))
    peak = runtime.get("peak_memory_mb", {}) or {}
    spe = m.get("seconds_per_epoch")
    if spe is None and train_seconds:
        spe = float(np.mean(train_seconds))
    return {"peak_host_mb": float(peak.get("host", math.nan)),
            "peak_cuda_mb": float(peak.get("cuda", math.nan)),
            "seconds_per_epoch": float(spe) if spe is not None else math.nan,
            "time_to_best": float(sum(train_seconds[:best])) if train_seconds else math.nan,
            "eval_seconds": float(runtime.get("eval_seconds", math.nan)),
            "epochs": float(m.get("epochs", math.nan)), "best_epoch": float(best),
            "device": str(runtime.get("device", "")), "threads": runtime.get("threads")}


def stage_runtime(benchmark_paths: Iterable[str | Path], root: str | Path) -> pd.DataFrame:
    """Snakemake benchmark files (``benchmark:`` TSVs, columns ``s``, ``h:m:s``,
    ``max_rss``, …) summed per stage: the stage is the first directory below ``root``
    (``results/{dataset}/benchmarks``), or the file's stem for files directly in it.
    Columns: stage, jobs, seconds, max_rss_mb (the largest over the stage's jobs)."""
    root = Path(root)
    totals: dict[str, dict[str, float]] = {}
    for path in benchmark_paths:
        path = Path(path)
        rel = path.relative_to(root)
        stage = rel.parts[0] if len(rel.parts) > 1 else path.stem
        frame = pd.read_csv(path, sep="\t")
        entry = totals.setdefault(stage, {"jobs": 0, "seconds": 0.0, "max_rss_mb": 0.0})
        entry["jobs"] += 1
        entry["seconds"] += float(pd.to_numeric(frame["s"], errors="coerce").fillna(0).sum())
        if "max_rss" in frame:
            rss = pd.to_numeric(frame["max_rss"], errors="coerce").max()
            if not math.isnan(rss):
                entry["max_rss_mb"] = max(entry["max_rss_mb"], float(rss))
    out = pd.DataFrame([{"stage": k, **v} for k, v in totals.items()],
                       columns=["stage", "jobs", "seconds", "max_rss_mb"])
    out["jobs"] = out["jobs"].astype(int)
    return out.sort_values("seconds", ascending=False, ignore_index=True)


def runtime_table(benchmark_paths: Iterable[str | Path], root: str | Path) -> Table:
    frame = stage_runtime(benchmark_paths, root)
    rows = [[r.stage, str(r.jobs), fmt(r.seconds, 1), fmt(r.seconds / 3600, 3),
             fmt(r.max_rss_mb, 0)] for r in frame.itertuples()]
    notes = ["From the Snakemake benchmark files of the dataset: wall-clock seconds summed "
             "over a stage's jobs; max RSS is the largest of its jobs."]
    return Table("Runtime per workflow stage", ["stage", "jobs", "seconds", "hours",
                                                "max RSS (MB)"], rows, frame, notes)
