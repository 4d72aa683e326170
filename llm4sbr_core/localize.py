"""Intent localization (paper §4.1.3, eqs. 2–5): ground every LLM answer in the item set.

The answers (eq. 2) and the item texts (eq. 3) are embedded by the text encoder
(:mod:`llm4sbr_core.text.encoder`). Here each answer is compared with every candidate item
by cosine similarity (eq. 4), the ``r`` most similar items are kept, and the localized
intent is the sum of those items' *original* (un-normalised) embeddings, each weighted by
*its own* similarity (eq. 5)::

    h_infer = Σ_{i in top-r} sim_i · e_item_i

Two bugs of the official code are deliberately not reproduced (see docs/reference-code.md):
it paired the top-r embeddings with the similarities of items 0..r-1 instead of their
own, and divided the sum by r. ``r = 0`` returns the raw answer embedding (paper Fig. 7).

Ranking and tie rule (identical for every backend and device)
-------------------------------------------------------------
Both sides are L2-normalised once, in numpy: ``x / ||x||`` with the norm computed in
float64 and the result rounded to float32; a zero vector stays zero, so its similarity
with anything is 0 (never NaN). The *canonical score* of an (answer, item) pair is the
float32 rounding of the float64 dot product of these float32 normalised vectors, always
computed by the same numpy routine. Items are ranked by ``(-canonical score, item id)``:
equal float32 scores put the smaller item id first.

A backend ("torch", "faiss" or "numpy") only *proposes* candidates: its float32 top-k,
``k = min(C, r + max(16, r))`` (C = number of candidate items), is rescored canonically
and re-sorted by the rule above. The result is exact unless an item outside the proposed
k could still reach the r-th place: when the r-th canonical score does not exceed the
backend's k-th score by more than the float32 error bound (``2·d·2⁻²⁴ + 2⁻²²``), the row
is recomputed exhaustively in float64 (this happens with massive exact ties, e.g. many
duplicate item texts). Answers that are zero vectors (empty LLM answers) get the first r
candidate ids with similarity 0. Hence all backends return identical ids and scores.

Memory: answers are processed in batches of at most ``batch_size`` rows, further capped
so that one batch's score matrix holds at most 2²⁵ elements; the full [n, N] similarity
matrix is never materialised.

The localize_intents rule's file stage (reading the vectors and tables, writing the
intents, the top-r table and the grounding statistics) is :mod:`llm4sbr_core.localize_stage`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LocalizationError

BACKENDS: tuple[str, ...] = ("torch", "faiss", "numpy")

#: Elements of one batch's [batch, C] float32 score matrix.
_MAX_ELEMENTS = 1 << 25
#: Elements of one float64 temporary in the canonical rescoring / exhaustive search.
_MAX_F64_ELEMENTS = 1 << 22
#: Extra candidates a backend proposes beyond r (at least; r more when r is larger).
_EXTRA = 16
#: Largest k a faiss GPU index searches.
_FAISS_GPU_MAX_K = 2048
#: Margin of the exhaustive float64 search: larger than a float32 ulp of any cosine.
_EXHAUSTIVE_MARGIN = 1e-6

PathLike = str | Path
Searcher = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


# --- validation ------------------------------------------------------------------------


def _as_embeddings(array: Any, name: str, path: PathLike | None) -> np.ndarray:
    """A finite float32 [rows, d] matrix, or a LocalizationError naming the first bad row."""
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise LocalizationError(f"{name} must be a 2-D array [rows, dim], got shape "
                                f"{arr.shape}", path)
    if arr.shape[1] == 0:
        raise LocalizationError(f"{name} has embedding dimension 0", path)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise LocalizationError(f"{name} must hold numbers, got dtype {arr.dtype}", path)
    with np.errstate(over="ignore"):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    step = max(1, _MAX_ELEMENTS // arr.shape[1])
    for start in range(0, arr.shape[0], step):
        ok = np.isfinite(arr[start:start + step]).all(axis=1)
        if not ok.all():
            row = start + int(np.flatnonzero(~ok)[0])
            raise LocalizationError(
                f"{name} contains NaN or infinite values (in float32): first bad row {row} "
                f"of {arr.shape[0]}", path)
    return arr


def check_rows(array: np.ndarray, expected: int, path: PathLike | None = None,
               name: str = "answers") -> None:
    """Raise if ``array`` does not have one row per sample (``expected`` rows)."""
    rows = int(np.shape(array)[0]) if np.ndim(array) >= 1 else 0
    if rows != expected:
        raise LocalizationError(f"{name} has {rows} rows but {expected} samples were "
                                "expected (one embedding per sample, in sample_id order)",
                                path)


def _candidate_ids(candidates: np.ndarray | None, n_rows: int,
                   path: PathLike | None) -> np.ndarray:
    """Ascending item ids allowed as localization targets; row 0 (padding) never is."""
    if n_rows <= 1:
        raise LocalizationError(f"items has {n_rows} row(s): no item besides the padding "
                                "row 0, so there is nothing to localize onto", path)
    if candidates is None:
        return np.arange(1, n_rows, dtype=np.int64)
    mask = np.asarray(candidates)
    if mask.dtype != np.bool_ or mask.shape != (n_rows,):
        raise LocalizationError(f"candidates must be a boolean mask of shape ({n_rows},) "
                                f"(one flag per item row), got dtype {mask.dtype} and "
                                f"shape {mask.shape}", path)
    ids = np.flatnonzero(mask).astype(np.int64)
    ids = ids[ids != 0]
    if ids.size == 0:
        raise LocalizationError("empty candidate set: no item (besides the padding row 0) "
                                "is allowed by the candidates mask", path)
    return ids


def _check_common(answers: np.ndarray, items: np.ndarray, r: int, backend: str,
                  batch_size: int, answers_path: PathLike | None,
                  items_path: PathLike | None) -> None:
    if answers.shape[1] != items.shape[1]:
        where = ", ".join(str(p) for p in (answers_path, items_path) if p is not None)
        raise LocalizationError(
            f"dimension mismatch: answers have d={answers.shape[1]} but items have "
            f"d={items.shape[1]} (were they embedded by the same encoder?)",
            where or None)
    if isinstance(r, bool) or not isinstance(r, int | np.integer):
        raise LocalizationError(f"r must be an integer, got {r!r}")
    if r < 0:
        raise LocalizationError(f"r must be >= 0, got {r}")
    if backend not in BACKENDS:
        raise LocalizationError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) \
            or batch_size < 1:
        raise LocalizationError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (computed in float64), as float32; zero rows stay
    zero, so the cosine similarity (eq. 4) of a zero vector is 0, never NaN."""
    out = np.empty(x.shape, dtype=np.float32)
    step = max(1, _MAX_F64_ELEMENTS // max(1, x.shape[1]))
    for start in range(0, x.shape[0], step):
        block = x[start:start + step].astype(np.float64)
        norm = np.sqrt(np.einsum("ij,ij->i", block, block))
        norm[norm == 0] = 1.0
        out[start:start + step] = block / norm[:, None]
    return out


# --- canonical scores ------------------------------------------------------------------


def _canonical(a_n: np.ndarray, c_n: np.ndarray, rows: np.ndarray,
               pos: np.ndarray) -> np.ndarray:
    """float32(float64 dot) of answer ``rows[i]`` and candidate ``pos[i]`` (flat arrays),
    by one routine whatever the batch shape, so every caller gets the same bits."""
    out = np.empty(pos.shape[0], dtype=np.float32)
    step = max(1, _MAX_F64_ELEMENTS // a_n.shape[1])
    for start in range(0, pos.shape[0], step):
        stop = start + step
        prod = c_n[pos[start:stop]].astype(np.float64)
        prod *= a_n[rows[start:stop]].astype(np.float64)
        out[start:stop] = prod.sum(axis=1)
    return out


def _rank(pos: np.ndarray, canon: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """The first r of each row under (-score, position); positions ascend with item ids."""
    order = np.lexsort((pos, -canon), axis=-1)[:, :r]
    return np.take_along_axis(pos, order, 1), np.take_along_axis(canon, order, 1)


def _exhaustive(a_n: np.ndarray, c_n: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-r of a few rows against all candidates (float64, item-chunked)."""
    n, c = a_n.shape[0], c_n.shape[0]
    top_pos = np.empty((n, r), dtype=np.int64)
    top_s = np.empty((n, r), dtype=np.float32)
    row_step = max(1, _MAX_F64_ELEMENTS // c)
    item_step = max(1, _MAX_F64_ELEMENTS // c_n.shape[1])
    for start in range(0, n, row_step):
        a64 = a_n[start:start + row_step].astype(np.float64)
        s64 = np.empty((a64.shape[0], c), dtype=np.float64)
        for i0 in range(0, c, item_step):
            s64[:, i0:i0 + item_step] = a64 @ c_n[i0:i0 + item_step].astype(np.float64).T
        for j in range(a64.shape[0]):
            kth = np.partition(s64[j], c - r)[c - r]
            pos = np.flatnonzero(s64[j] >= kth - _EXHAUSTIVE_MARGIN).astype(np.int64)
            canon = _canonical(a_n, c_n, np.full(pos.shape, start + j), pos)
            p, s = _rank(pos[None, :], canon[None, :], r)
            top_pos[start + j], top_s[start + j] = p[0], s[0]
    return top_pos, top_s


# --- backends --------------------------------------------------------------------------


def _numpy_searcher(c_n: np.ndarray, k: int, device: str) -> Searcher:
    def search(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = a @ c_n.T
        if k < c_n.shape[0]:
            pos = np.argpartition(-s, k - 1, axis=1)[:, :k].astype(np.int64)
        else:
            pos = np.broadcast_to(np.arange(c_n.shape[0], dtype=np.int64), s.shape).copy()
        return pos, np.take_along_axis(s, pos, 1)
    return search


def _torch_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise LocalizationError(f"invalid device {device!r}: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise LocalizationError(f"device {device!r} requested but torch has no CUDA "
                                "device (CPU build or no GPU); use device='cpu' or 'auto'")
    return device


@contextmanager
def _full_fp32_matmul():
    """Full-precision float32 matmul (no TF32/bf16) for the torch backend, restored after."""
    import torch

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _torch_searcher(c_n: np.ndarray, k: int, device: str) -> Searcher:
    import torch

    dev = torch.device(_torch_device(device))
    with torch.inference_mode():
        c_t = torch.as_tensor(c_n).to(dev)

    def search(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode(), _full_fp32_matmul():
            s = torch.as_tensor(a).to(dev) @ c_t.T
            vals, pos = torch.topk(s, k, dim=1, largest=True, sorted=False)
            return pos.cpu().numpy().astype(np.int64), vals.cpu().numpy()
    return search


def _faiss_gpu(device: str) -> int | None:
    """The GPU for a faiss index, or None for a CPU index."""
    import faiss

    has_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if device in ("auto", "cpu"):
        return 0 if device == "auto" and has_gpu else None
    if device == "cuda" or device.startswith("cuda:"):
        if not has_gpu:
            raise LocalizationError(f"device {device!r} requested but faiss has no GPU "
                                    "support or sees no GPU (install faiss-gpu, or use "
                                    "device='cpu' or 'auto')")
        return int(device.split(":", 1)[1]) if ":" in device else 0
    raise LocalizationError(f"invalid device {device!r} for the faiss backend; use auto, "
                            "cpu, cuda or cuda:N")


def _faiss_searcher(c_n: np.ndarray, k: int, device: str) -> Searcher:
    try:
        import faiss
    except ImportError as exc:
        raise LocalizationError("backend 'faiss' needs the faiss package "
                                "(pip install faiss-cpu, or faiss-gpu)") from exc
    gpu = _faiss_gpu(device)
    index = faiss.IndexFlatIP(c_n.shape[1])
    index.add(np.ascontiguousarray(c_n))
    resources = None
    if gpu is not None and k <= _FAISS_GPU_MAX_K:
        resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(resources, gpu, index)

    def search(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _ = resources  # keeps the GPU memory alive as long as the index
        scores, pos = index.search(np.ascontiguousarray(a), k)
        return pos.astype(np.int64), scores.astype(np.float32, copy=False)
    return search


_SEARCHERS: dict[str, Callable[[np.ndarray, int, str], Searcher]] = {
    "numpy": _numpy_searcher, "torch": _torch_searcher, "faiss": _faiss_searcher}


# --- top-r (eq. 4) ---------------------------------------------------------------------


def _top_r(answers: np.ndarray, items: np.ndarray, r: int, backend: str,
           cand: np.ndarray, batch_size: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    n, d = answers.shape
    ids = np.zeros((n, r), dtype=np.int64)
    scores = np.zeros((n, r), dtype=np.float32)
    if r == 0 or n == 0:
        return ids, scores
    c = cand.shape[0]
    a_n = l2_normalise(answers)
    c_n = l2_normalise(items[cand])
    k = min(c, r + max(_EXTRA, r))
    tol = 2.0 * d * 2.0 ** -24 + 2.0 ** -22
    search = _SEARCHERS[backend](c_n, k, device)
    step = max(1, min(int(batch_size), _MAX_ELEMENTS // c))
    for start in range(0, n, step):
        stop = min(n, start + step)
        a = a_n[start:stop]
        pos, approx = search(a)
        rows = np.repeat(np.arange(start, stop), k)
        canon = _canonical(a_n, c_n, rows, pos.ravel()).reshape(pos.shape)
        top_pos, top_s = _rank(pos, canon, r)
        zero = ~a.any(axis=1)
        if zero.any():
            top_pos[zero] = np.arange(r)
            top_s[zero] = 0.0
        if k < c:
            bad = ~zero & ~(top_s[:, -1] > approx.min(axis=1) + tol)
            if bad.any():
                top_pos[bad], top_s[bad] = _exhaustive(a[bad], c_n, r)
        ids[start:stop] = cand[top_pos]
        scores[start:stop] = top_s
    return ids, scores


def top_r(answers: np.ndarray, items: np.ndarray, r: int, backend: str = "torch",
          candidates: np.ndarray | None = None, batch_size: int = 4096,
          device: str = "auto", *, answers_path: PathLike | None = None,
          items_path: PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The r candidate items most similar to each answer (paper eq. 4 and the set I_r).

    Args:
        answers: float32 [n, d] answer embeddings (eq. 2).
        items: float32 [N+1, d] item text embeddings (eq. 3), row = item id; row 0 is
            padding and never a candidate.
        r: items per answer (0 gives [n, 0] arrays).
        backend: "torch" (matmul + topk, CUDA when ``device`` resolves to it), "faiss"
            (IndexFlatIP; a GPU index with faiss-gpu) or "numpy" (brute force).
        candidates: optional bool mask [N+1] of allowed items (e.g. False for items
            without text); row 0 is excluded whatever it says.
        batch_size: answers per batch (also capped so that a batch's score matrix has at
            most 2²⁵ elements).
        device: "auto" (CUDA if available), "cpu", "cuda" or "cuda:N".
        answers_path, items_path: the files the arrays came from, named in errors.

    Returns:
        (ids int64 [n, r], cosine similarities float32 [n, r]), each row ordered by
        descending similarity, equal float32 similarities by ascending item id (the
        module docstring gives the exact rule; all backends return the same arrays).
    """
    answers = _as_embeddings(answers, "answers", answers_path)
    items = _as_embeddings(items, "items", items_path)
    _check_common(answers, items, r, backend, batch_size, answers_path, items_path)
    cand = _candidate_ids(candidates, items.shape[0], items_path)
    _check_r(r, cand.shape[0], items_path)
    return _top_r(answers, items, int(r), backend, cand, batch_size, device)


def _check_r(r: int, n_candidates: int, path: PathLike | None) -> None:
    if r > n_candidates:
        raise LocalizationError(f"r={r} is larger than the number of candidate items "
                                f"({n_candidates})", path)


# --- eq. 5 -----------------------------------------------------------------------------


def weighted_item_sum(items: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Paper eq. 5: ``h_infer[i] = Σ_j scores[i, j] · items[ids[i, j]]`` with the items'
    original (un-normalised) embeddings and each item's own similarity; no division by r.
    Accumulated in float64, returned as float32 [n, d]."""
    items = np.asarray(items)
    ids = np.asarray(ids)
    scores = np.asarray(scores)
    if ids.ndim != 2 or ids.shape != scores.shape:
        raise LocalizationError(f"ids {ids.shape} and scores {scores.shape} must be two "
                                "arrays of the same shape [n, r]")
    if ids.size and (ids.min() < 0 or ids.max() >= items.shape[0]):
        raise LocalizationError(f"item ids out of range 0..{items.shape[0] - 1}")
    n, r = ids.shape
    out = np.zeros((n, items.shape[1]), dtype=np.float32)
    step = max(1, _MAX_F64_ELEMENTS // max(1, r * items.shape[1]))
    for start in range(0, n, step):
        gathered = items[ids[start:start + step]].astype(np.float64)
        weights = scores[start:start + step].astype(np.float64)
        out[start:start + step] = np.einsum("nr,nrd->nd", weights, gathered)
    return out


def localize_intents(answers: np.ndarray, items: np.ndarray, r: int, backend: str = "torch",
                     candidates: np.ndarray | None = None, batch_size: int = 4096,
                     device: str = "auto", *, expected_rows: int | None = None,
                     answers_path: PathLike | None = None,
                     items_path: PathLike | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Localized intents h_infer (paper eqs. 4–5) of each answer.

    ``h_infer = Σ_{i in top-r} sim_i · e_item_i`` (:func:`weighted_item_sum` of the
    :func:`top_r` result); ``r = 0`` returns the raw answer embeddings (paper Fig. 7) with
    [n, 0] ids and scores. ``expected_rows`` checks the answer count (:func:`check_rows`).
    Other arguments as in :func:`top_r`.

    Returns:
        (h_infer float32 [n, d], ids int64 [n, r], scores float32 [n, r]).
    """
    answers = _as_embeddings(answers, "answers", answers_path)
    items = _as_embeddings(items, "items", items_path)
    if expected_rows is not None:
        check_rows(answers, expected_rows, answers_path)
    _check_common(answers, items, r, backend, batch_size, answers_path, items_path)
    cand = _candidate_ids(candidates, items.shape[0], items_path)
    _check_r(r, cand.shape[0], items_path)
    ids, scores = _top_r(answers, items, int(r), backend, cand, batch_size, device)
    if r == 0:
        return answers.copy(), ids, scores
    return weighted_item_sum(items, ids, scores), ids, scores
