"""A run of LLMSeqSim (models/llmseqsim.py): no training, no seed; its outputs follow the
training runs' contract (train/outputs.py: best_epoch 0, no history) so tables treat it
as one more run."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.batches import load_samples
from ..errors import InvalidInputError
from ..layout import LLMSEQSIM
from ..metrics import metrics_from_ranks
from ..models.llmseqsim import llmseqsim_ranks
from .outputs import RunOutputs, environment, session_ids_of, write_run_outputs

log = logging.getLogger(__name__)


def run_llmseqsim(valid_path: str | Path, test_path: str | Path,
                  item_vectors_path: str | Path, outputs: RunOutputs, aggregation: str, *,
                  config: Mapping[str, Any] | None = None,
                  threads: int | None = None) -> dict[str, Any]:
    """Rank the valid and test targets of the samples files with LLMSeqSim's
    ``aggregation``; write ``outputs`` (metrics.json, ranks.parquet) and return the
    metrics. ``config`` is recorded in metrics.json's ``config`` (dataset, encoder)."""
    if threads:
        torch.set_num_threads(threads)
    vectors = np.load(item_vectors_path, mmap_mode="r")
    start = time.perf_counter()
    results = {}
    for split, path in (("valid", valid_path), ("test", test_path)):
        samples = load_samples(path)
        if int(samples.items.max()) >= len(vectors) or int(samples.targets.max()) >= len(vectors):
            raise InvalidInputError(f"{len(vectors)} rows, but {path} has larger item ids",
                                    item_vectors_path)
        results[split] = (samples, llmseqsim_ranks(samples, vectors, aggregation))
    seconds = time.perf_counter() - start
    test_samples, test_ranks = results["test"]
    metrics = {
        "valid": metrics_from_ranks(results["valid"][1]),
        "test": metrics_from_ranks(test_ranks),
        "best_epoch": 0, "epochs": 0, "seconds_per_epoch": 0.0,
        "config": {"backbone": LLMSEQSIM, "variant": aggregation, "seed": 0,
                   **(config or {})},
        "data": {"items": len(vectors) - 1, "valid_samples": len(results["valid"][0]),
                 "test_samples": len(test_samples)},
        "history": [],
        "runtime": {**environment("cpu"), "train_seconds": [], "valid_seconds": [],
                    "eval_seconds": seconds},
    }
    metrics = write_run_outputs(outputs, metrics, test_samples.sample_ids.numpy(), test_ranks,
                                session_ids=session_ids_of(test_samples))
    t = metrics["test"]
    log.info("LLMSeqSim (%s) test: P@20 %.4f MRR@20 %.4f NDCG@20 %.4f in %.1f s", aggregation,
             t["P@20"], t["MRR@20"], t["NDCG@20"], seconds)
    return metrics
