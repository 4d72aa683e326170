"""LLMSeqSim (Harte et al., "Leveraging Large Language Models for Sequential
Recommendation", RecSys 2023): the LLM4SBR paper's text-only peer (Fig. 5).

No session model and no training: a session is an aggregate of its items' text
embeddings, and items are ranked by cosine similarity to it.

    ẽ_i   = e_i / ‖e_i‖                        item text vectors (items.npy), unit length
    s     = Σ_j w_j ẽ_{x_j} / Σ_j w_j          over the session's clicks x_1..x_L
            mean:   w_j = 1
            linear: w_j = j                     (recency: the last click weighs L times the first)
            last:   s = ẽ_{x_L}
    score(i) = cos(s, e_i)

As in LLMSeqSim, items the session already contains are not recommended (their score is
set below every other), and items without a text get the lowest score: neither can be
"similar" in a meaningful way. Ties are ranked pessimistically, like every model here.
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from ..io import AtomicFiles
from ..metrics import metrics_from_ranks, target_ranks
from ..data.batches import SampleTensors, load_samples

log = logging.getLogger(__name__)

AGGREGATIONS: tuple[str, ...] = ("mean", "linear", "last")
#: below every cosine similarity (which lies in [-1, 1])
_EXCLUDED = -4.0


def session_vectors(batch_items: torch.Tensor, lengths: torch.Tensor, unit_items: torch.Tensor,
                    aggregation: str) -> torch.Tensor:
    """[B, t] session vectors from right-padded item ids [B, L] (0 = padding)."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown LLMSeqSim aggregation {aggregation!r}; known: "
                         f"{list(AGGREGATIONS)}")
    if aggregation == "last":
        last = batch_items.gather(1, (lengths - 1).view(-1, 1)).squeeze(1)
        return unit_items[last]
    positions = torch.arange(1, batch_items.shape[1] + 1, dtype=unit_items.dtype)
    weights = (batch_items > 0).to(unit_items.dtype)
    if aggregation == "linear":
        weights = weights * positions
    summed = (weights.unsqueeze(-1) * unit_items[batch_items]).sum(1)
    return summed / weights.sum(1, keepdim=True)


def llmseqsim_ranks(samples: SampleTensors, item_vectors: np.ndarray, aggregation: str = "mean",
                    batch_size: int = 1000) -> np.ndarray:
    """1-based full-catalogue rank of every sample's target, in sample order."""
    items = torch.from_numpy(np.array(item_vectors, dtype=np.float32))  # a copy: N × t is small
    if not torch.isfinite(items).all():
        raise ValueError("item text vectors contain NaN or infinite values")
    unit = F.normalize(items, dim=-1)  # zero rows stay zero
    no_text = items.abs().sum(1) == 0  # includes row 0, the padding
    ranks = []
    for batch in samples.batches(batch_size):
        s = F.normalize(session_vectors(batch.items, batch.lengths, unit, aggregation), dim=-1)
        scores = s @ unit.T
        scores[:, no_text] = _EXCLUDED
        scores.scatter_(1, batch.items, _EXCLUDED)  # the session's own items (and padding)
        ranks.append(target_ranks(scores, batch.targets))
    return torch.cat(ranks).numpy()


def run_llmseqsim(data_dir: str | Path, item_vectors_path: str | Path, out_dir: str | Path,
                  aggregation: str, *, config: dict[str, Any] | None = None,
                  threads: int | None = None) -> dict[str, Any]:
    """Rank the valid and test targets; write ``out_dir``/{metrics.json, ranks.parquet}
    (the training runs' contract: best_epoch 0, no history) atomically."""
    if threads:
        torch.set_num_threads(threads)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    vectors = np.load(item_vectors_path, mmap_mode="r")
    start = time.perf_counter()
    results = {}
    for split in ("valid", "test"):
        samples = load_samples(data_dir / f"{split}.parquet")
        if int(samples.items.max()) >= len(vectors) or int(samples.targets.max()) >= len(vectors):
            raise ValueError(f"{item_vectors_path}: {len(vectors)} rows, but "
                             f"{data_dir / split}.parquet has larger item ids")
        results[split] = (samples, llmseqsim_ranks(samples, vectors, aggregation))
    seconds = time.perf_counter() - start
    test_samples, test_ranks = results["test"]
    metrics = {
        "valid": metrics_from_ranks(results["valid"][1]),
        "test": metrics_from_ranks(test_ranks),
        "best_epoch": 0, "epochs": 0, "seconds_per_epoch": 0.0,
        "config": {"backbone": "llmseqsim", "variant": aggregation, "seed": 0,
                   **(config or {})},
        "data": {"items": len(vectors) - 1, "valid_samples": len(results["valid"][0]),
                 "test_samples": len(test_samples)},
        "history": [],
        "runtime": {"device": "cpu", "torch": torch.__version__,
                    "python": platform.python_version(), "threads": torch.get_num_threads(),
                    "train_seconds": [], "valid_seconds": [], "eval_seconds": seconds},
    }
    with AtomicFiles() as files:
        files.write_json(out_dir / "metrics.json", metrics)
        files.write_parquet(out_dir / "ranks.parquet", pa.table({
            "sample_id": pa.array(test_samples.sample_ids.numpy(), pa.int64()),
            "rank": pa.array(test_ranks.astype(np.int64), pa.int64())}))
    t = metrics["test"]
    log.info("LLMSeqSim (%s) test: P@20 %.4f MRR@20 %.4f NDCG@20 %.4f in %.1f s", aggregation,
             t["P@20"], t["MRR@20"], t["NDCG@20"], seconds)
    return metrics


def item_text_intents(samples: list[SampleTensors], item_vectors: np.ndarray,
                      views: tuple[str, ...], batch_size: int = 4096) -> dict[str, np.ndarray]:
    """"Intent" vectors made from the sessions' own item texts, no LLM (the ``-items``
    control of the LLM4SBR variants): short = the last click's unit text vector, long and
    normal = the mean of all clicks' unit text vectors. [S, t] float32 per view, row =
    sample_id, for the samples of ``samples`` (all splits)."""
    unit = F.normalize(torch.from_numpy(np.array(item_vectors, dtype=np.float32)), dim=-1)
    n = sum(len(s) for s in samples)
    out = {view: np.zeros((n, unit.shape[1]), dtype=np.float32) for view in views}
    for split in samples:
        for batch in split.batches(batch_size):
            for view in views:
                aggregation = "last" if view == "short" else "mean"
                out[view][batch.sample_ids.numpy()] = session_vectors(
                    batch.items, batch.lengths, unit, aggregation).numpy()
    return out
