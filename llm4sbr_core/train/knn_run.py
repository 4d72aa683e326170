"""A run of a session-kNN baseline (models/knn.py): tuned on the validation split, the
test split ranked once. No training, no seed; its outputs follow the run-output contract
(train/outputs.py: best_epoch 0, no history; plus ``best_params`` and the validation
score of every ``grid`` point), stored as backbone = the method, variant
``layout.KNN_VARIANT``, seed 0."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.batches import count_items
from ..layout import KNN_VARIANT
from ..models.knn import SELECT_METRIC, read_samples, tune_knn
from .outputs import RunOutputs, environment, write_run_outputs

log = logging.getLogger(__name__)


def run_knn(train_path: str | Path, valid_path: str | Path, test_path: str | Path,
            items_path: str | Path, outputs: RunOutputs, method: str, *,
            grid: Mapping[str, Sequence[Any]] | None = None,
            params: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
            threads: int | None = None) -> dict[str, Any]:
    """Tune ``method`` on the validation samples, rank the test samples once, write
    ``outputs`` and return the metrics. ``params`` are fixed values merged under every
    grid point; ``grid={}`` evaluates ``params`` (or the defaults) alone; ``grid=None``
    the method's default grid."""
    if threads:
        torch.set_num_threads(threads)
    n_items = count_items(items_path)
    train, valid, test = (read_samples(p) for p in (train_path, valid_path, test_path))
    result = tune_knn(method, train, valid, test, n_items, grid=grid, fixed=params)
    metrics = {
        "valid": result.valid,
        "test": result.test,
        "best_epoch": 0, "epochs": 0, "seconds_per_epoch": 0.0,
        "config": {"backbone": method, "variant": KNN_VARIANT, "seed": 0,
                   "select_metric": SELECT_METRIC, **(config or {})},
        "best_params": result.best_params,
        "grid": result.grid,
        "data": {"items": n_items, "train_samples": len(train), "valid_samples": len(valid),
                 "test_samples": len(test),
                 "train_sessions": int(len(np.unique(train.session_ids)))},
        "history": [],
        "runtime": {**environment("cpu"), "train_seconds": [],
                    "valid_seconds": [g["seconds"] for g in result.grid],
                    "eval_seconds": result.seconds["test_seconds"], **result.seconds},
    }
    metrics = write_run_outputs(outputs, metrics, test.sample_ids, result.test_ranks,
                                session_ids=test.session_ids)
    t = metrics["test"]
    log.info("%s %s test: P@20 %.4f MRR@20 %.4f NDCG@20 %.4f", method, result.best_params,
             t["P@20"], t["MRR@20"], t["NDCG@20"])
    return metrics
