"""The intent vectors a run's variant reads, one array per view, row = sample_id.

* LLM intents: the localized answer embeddings of the intent stage (.npy files,
  memory-mapped, checked for shape and finite values);
* ``-items`` control: "intents" made from the session's own item texts, no LLM;
* ``-random`` control: random Gaussian directions with the norms of the LLM intents
  (``-items-random``: of the item-text intents);
* ``-shuffled`` control: every sample reads the intent rows of another sample of its split
  (a derangement: none keeps its own).

The controls' random draws depend on the run seed, so seeds measure their variability too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.batches import SampleTensors
from ..errors import InvalidInputError
from ..models.llmseqsim import session_vectors
from ..variants import Variant


def load_intents(paths: Mapping[str, str | Path], n_samples: int) -> dict[str, np.ndarray]:
    """view → the localized intent vectors of ``paths[view]``, memory-mapped (read-only).

    Row i is sample_id i of the dataset's samples (all splits): the row count must be
    ``n_samples`` and the values finite, or the error names the file.
    """
    out = {}
    for view, path in paths.items():
        array = np.load(path, mmap_mode="r")
        if array.ndim != 2 or array.shape[0] != n_samples:
            raise InvalidInputError(f"intent vectors of shape {array.shape}, expected one row "
                                    f"per sample ({n_samples} samples in train + valid + "
                                    "test)", path)
        if not np.issubdtype(array.dtype, np.floating):
            raise InvalidInputError(f"intent vectors must be floating point, got "
                                    f"{array.dtype}", path)
        # One streaming pass (memmapped pages are dropped again): NaNs would only show
        # up as a diverged loss, epochs later.
        for start in range(0, n_samples, 65536):
            if not np.isfinite(array[start:start + 65536]).all():
                raise InvalidInputError(f"NaN or infinite values in rows {start}.."
                                        f"{min(start + 65536, n_samples) - 1}", path)
        out[view] = array
    return out


def item_text_intents(samples: Sequence[SampleTensors], item_vectors: np.ndarray,
                      views: Sequence[str], batch_size: int = 4096) -> dict[str, np.ndarray]:
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


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly drawn permutation of 0..n-1 without fixed points (rejection sampling:
    about e ≈ 2.7 draws on average)."""
    if n < 2:
        raise InvalidInputError(f"cannot give each of {n} sample(s) another sample's intents")
    index = np.arange(n)
    while True:
        order = rng.permutation(n)
        if not (order == index).any():
            return order


def shuffled_within_splits(intents: Mapping[str, np.ndarray], splits: Sequence[SampleTensors],
                           seed: int = 0) -> dict[str, np.ndarray]:
    """The ``-shuffled`` control: every sample gets the intent rows of ANOTHER sample of
    its split (one derangement per split and ``seed``, the same for every view)."""
    rng = np.random.default_rng([seed, 0x5EED])
    order = np.arange(sum(len(s) for s in splits))
    for split in splits:
        ids = split.sample_ids.numpy()
        order[ids] = ids[derangement(len(ids), rng)]
    return {view: np.asarray(array)[order] for view, array in intents.items()}


def random_intents(intents: Mapping[str, np.ndarray], seed: int,
                   chunk: int = 65536) -> dict[str, np.ndarray]:
    """The ``-random`` control: per view and sample a Gaussian direction scaled to the norm
    of that sample's real intent vector, float32, drawn from ``seed`` (and the view)."""
    out = {}
    for i, (view, array) in enumerate(sorted(intents.items())):
        rng = np.random.default_rng([seed, i, 0x4A4D])
        vectors = np.empty(array.shape, dtype=np.float32)
        for start in range(0, array.shape[0], chunk):
            real = np.asarray(array[start:start + chunk], dtype=np.float64)
            draw = rng.standard_normal(real.shape)
            scale = np.linalg.norm(real, axis=1) / np.linalg.norm(draw, axis=1)
            vectors[start:start + chunk] = draw * scale[:, None]
        out[view] = vectors
    return out


def run_intents(variant: Variant, splits: Sequence[SampleTensors],
                intent_paths: Mapping[str, str | Path] | None,
                item_vectors: np.ndarray | None, seed: int = 0) -> dict[str, np.ndarray]:
    """view → intent array for every view ``variant`` reads (empty for variants without
    views); ``splits`` are all the dataset's samples (train, valid, test); ``seed`` (the
    run seed) draws the ``-random`` and ``-shuffled`` controls."""
    n_samples = sum(len(s) for s in splits)
    if intent_paths:
        ids = torch.cat([s.sample_ids for s in splits])
        if int(ids.min()) < 0 or int(ids.max()) >= n_samples:
            raise InvalidInputError(f"sample ids are not 0..{n_samples - 1}, so they cannot "
                                    "index the intent vectors")
    if variant.item_text_intents:  # controls without LLM answers
        if intent_paths or item_vectors is None:
            raise InvalidInputError(f"variant {variant.name!r} builds its intents from the "
                                    "item text vectors: give item_vectors and no intent files")
        intents = item_text_intents(splits, item_vectors, variant.views)
    else:
        intents = load_intents(intent_paths or {}, n_samples)
    if variant.random_intents:
        intents = random_intents(intents, seed)
    if variant.shuffled:
        intents = shuffled_within_splits(intents, splits, seed)
    return intents
