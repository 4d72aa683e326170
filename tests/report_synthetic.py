"""Synthetic run outputs for the report tests: metrics.json and ranks.parquet files with
known values, dataset statistics, grounding statistics and benchmark files, laid out as
the workflow writes them under ``results/{dataset}/``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from llm4sbr_core.metrics import metrics_from_ranks


def _write_ranks(path: Path, ranks: np.ndarray, sample_ids: Sequence[int] | None,
                 session_ids: Sequence[int] | None) -> None:
    """ranks.parquet: sample_id, rank and (when given) session_id."""
    ids = np.arange(len(ranks)) if sample_ids is None else np.asarray(sample_ids)
    columns = {"sample_id": pa.array(ids, pa.int64()), "rank": pa.array(ranks, pa.int64())}
    if session_ids is not None:
        columns["session_id"] = pa.array(np.asarray(session_ids), pa.int64())
    pq.write_table(pa.table(columns), path)


def write_run(root: Path, backbone: str, variant: str, seed: int, ranks: Sequence[int], *,
              dataset: str = "ml-100k", sample_ids: Sequence[int] | None = None,
              session_ids: Sequence[int] | None = None,
              best_epoch: int = 2, train_seconds: Sequence[float] = (1.0, 2.0, 4.0),
              eval_seconds: float = 0.5, peak_host_mb: float = 100.0,
              model: bool = False) -> Path:
    """A run folder whose test metrics are exactly those of ``ranks``; returns the path of
    its metrics.json. The validation history rises until ``best_epoch``. ranks.parquet
    has a ``session_id`` column when ``session_ids`` (one per sample) are given."""
    run = root / f"results/{dataset}/runs/{backbone}/{variant}/seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    ranks = np.asarray(ranks, dtype=np.int64)
    _write_ranks(run / "ranks.parquet", ranks, sample_ids, session_ids)
    test = metrics_from_ranks(ranks)
    epochs = len(train_seconds)
    history = [{"epoch": e, "lr": 1e-3, "loss": 1.0 / e,
                "valid": {k: v * (0.5 + 0.5 * min(e, best_epoch) / best_epoch)
                          for k, v in test.items()}} for e in range(1, epochs + 1)]
    metrics = {"valid": test, "test": test, "best_epoch": best_epoch, "epochs": epochs,
               "seconds_per_epoch": float(np.mean(train_seconds)),
               "config": {"backbone": backbone, "variant": variant, "seed": seed,
                          "select_metric": "MRR@20"},
               "history": history,
               "runtime": {"train_seconds": list(train_seconds),
                           "valid_seconds": [0.1] * epochs, "eval_seconds": eval_seconds,
                           "peak_memory_mb": {"host": peak_host_mb}, "device": "cpu",
                           "threads": 2}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    if model:
        (run / "model.pt").write_bytes(b"")
    return run / "metrics.json"


def write_llmseqsim(root: Path, aggregation: str, ranks: Sequence[int], *,
                    dataset: str = "ml-100k", session_ids: Sequence[int] | None = None
                    ) -> Path:
    run = root / f"results/{dataset}/runs/llmseqsim/{aggregation}/seed0"
    run.mkdir(parents=True, exist_ok=True)
    ranks = np.asarray(ranks, dtype=np.int64)
    _write_ranks(run / "ranks.parquet", ranks, None, session_ids)
    test = metrics_from_ranks(ranks)
    (run / "metrics.json").write_text(json.dumps(
        {"valid": test, "test": test, "best_epoch": 0, "epochs": 0,
         "config": {"aggregation": aggregation}}))
    return run / "metrics.json"


def write_test_samples(root: Path, session_ids: Sequence[int], *, dataset: str = "ml-100k",
                       sample_ids: Sequence[int] | None = None) -> Path:
    """results/{dataset}/data/test.parquet with sample_id, session_id, items, target (the
    columns of the data stage's samples files)."""
    n = len(session_ids)
    ids = np.arange(n) if sample_ids is None else np.asarray(sample_ids)
    path = root / f"results/{dataset}/data/test.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"sample_id": pa.array(ids, pa.int64()),
                             "session_id": pa.array(np.asarray(session_ids), pa.int64()),
                             "items": pa.array([[1, 2]] * n, pa.list_(pa.int64())),
                             "target": pa.array(np.full(n, 3), pa.int64())}), path)
    return path


def write_stats(root: Path, dataset: str = "ml-100k", **overrides) -> Path:
    stats = {"dataset": dataset, "train_samples": 4885, "valid_samples": 611,
             "test_samples": 611, "sessions": 6107, "clicks": 90000, "items": 1500,
             "avg_len_input": 13.5, "avg_len_session": 14.7, "note": "", **overrides}
    path = root / f"results/{dataset}/data/stats.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats))
    return path


def write_grounding(root: Path, view: str, *, dataset: str = "ml-100k",
                    llm: str = "llm", encoder: str = "enc", r: int = 5) -> Path:
    path = root / f"results/{dataset}/intents/{llm}/{encoder}/r{r}/{view}.grounding.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "r": r, "zero_answers": 1, "samples": 10, "top1_in_session": 0.3, "hit_at_r": 0.1,
        "mean_top1_similarity": 0.6,
        "by_split": {"test": {"samples": 2, "top1_in_session": 0.5, "hit_at_r": 0.0,
                              "mean_top1_similarity": 0.5}},
        "examples": [{"sample_id": 1, "session": ["Heat (1995)", "Casino (1995)"],
                      "answer": f"crime dramas ({view})",
                      "localized": [["Se7en (1995)", 0.81], ["Fargo (1996)", 0.7]],
                      "target": "Fargo (1996)"}]}))
    return path


def write_benchmark(root: Path, relative: str, seconds: float, *, dataset: str = "ml-100k",
                    max_rss: float = 50.0) -> Path:
    path = root / f"results/{dataset}/benchmarks/{relative}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load"
                    f"\tcpu_time\n{seconds}\t0:00:01\t{max_rss}\t1\t1\t1\t0\t0\t0\t1\n")
    return path
