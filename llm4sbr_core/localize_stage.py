"""The localize_intents rule's file stage (paper §4.1.3): vectors and tables on disk →
localized intents, their top-r table and grounding statistics.

The algorithm (top-r by cosine similarity, eq. 5) is :mod:`llm4sbr_core.localize`; this
module reads the rule's declared inputs, writes its declared outputs atomically and
computes the grounding statistics of the report (the paper's Fig. 4).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .errors import LocalizationError
from .io import AtomicFiles
from .localize import PathLike, check_rows, localize_intents

log = logging.getLogger(__name__)


# --- diagnostics -----------------------------------------------------------------------


def grounding_stats(ids: np.ndarray, sessions: Sequence[Sequence[int]],
                    targets: np.ndarray, scores: np.ndarray | None = None,
                    splits: np.ndarray | Sequence[str] | None = None,
                    answered: np.ndarray | None = None) -> dict[str, Any]:
    """How well the localized items are grounded, for reports.

    Args:
        ids: int [n, r] localized item ids (from :func:`top_r`).
        sessions: the n samples' input clicks (item-id sequences).
        targets: int [n] the samples' next (target) items.
        scores: optional float [n, r] similarities, for ``mean_top1_similarity``.
        splits: optional [n] split names; adds ``by_split`` = {split: same stats}.
        answered: optional bool [n], False for samples whose LLM answer is empty (no text,
            a zero answer vector: :func:`empty_answers`). Their "localized" items are
            placeholders (the first r candidates, similarity 0), so they are left out of
            every share and mean; None = every sample was answered.

    Returns:
        ``samples`` (all samples), ``answered`` and ``empty_answers`` (their counts),
        ``empty_share`` (empty_answers / samples), ``r``; over the answered samples only:
        ``top1_in_session`` = share whose top-1 localized item is one of its input clicks,
        ``hit_at_r`` = share whose top-r holds the target (HR@r of the LLM alone),
        ``mean_top1_similarity``. Shares are None without answered samples, the top-1
        values None for r = 0 (and the similarity without ``scores``).
    """
    ids = np.asarray(ids)
    targets = np.asarray(targets)
    if ids.ndim != 2:
        raise LocalizationError(f"ids must be [n, r], got shape {ids.shape}")
    n, r = ids.shape
    if len(sessions) != n or targets.shape != (n,):
        raise LocalizationError(f"ids have {n} rows but there are {len(sessions)} sessions "
                                f"and targets of shape {targets.shape}")
    if scores is not None:
        scores = np.asarray(scores)
        if scores.shape != ids.shape:
            raise LocalizationError(f"scores {scores.shape} and ids {ids.shape} differ")
    if answered is None:
        answered = np.ones(n, dtype=bool)
    answered = np.asarray(answered)
    if answered.dtype != np.bool_ or answered.shape != (n,):
        raise LocalizationError(f"answered must be a boolean mask of shape ({n},), got "
                                f"dtype {answered.dtype} and shape {answered.shape}")
    in_session = np.zeros(n, dtype=bool)
    if r > 0 and n > 0:
        lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=n)
        if lengths.sum() > 0:
            flat = np.concatenate([np.asarray(s, dtype=np.int64).ravel() for s in sessions])
            owner = np.repeat(np.arange(n), lengths)
            in_session[owner[flat == ids[owner, 0]]] = True
    hit = (ids == targets[:, None]).any(axis=1) if r > 0 else np.zeros(n, dtype=bool)

    def stats(group: np.ndarray) -> dict[str, Any]:
        mask = group & answered
        total, m = int(group.sum()), int(mask.sum())
        top1 = m > 0 and r > 0
        return {
            "samples": total,
            "answered": m,
            "empty_answers": total - m,
            "empty_share": (total - m) / total if total > 0 else None,
            "r": r,
            "top1_in_session": float(in_session[mask].mean()) if top1 else None,
            "hit_at_r": float(hit[mask].mean()) if m > 0 else None,
            "mean_top1_similarity": (float(scores[mask, 0].astype(np.float64).mean())
                                     if top1 and scores is not None else None),
        }

    result = stats(np.ones(n, dtype=bool))
    if splits is not None:
        split_arr = np.asarray(splits)
        if split_arr.shape != (n,):
            raise LocalizationError(f"splits must have shape ({n},), got {split_arr.shape}")
        names = list(dict.fromkeys(split_arr.tolist()))
        result["by_split"] = {str(s): stats(split_arr == s) for s in names}
    return result


# --- inputs ----------------------------------------------------------------------------

#: Answer flags (:mod:`llm4sbr_core.llm.clean`) of answers that carry no item name.
NO_TEXT_FLAGS: tuple[str, ...] = ("empty", "echo")


def empty_answers(answer_vectors: np.ndarray, answers: pd.DataFrame | None = None
                  ) -> np.ndarray:
    """bool [n]: samples whose LLM answer is empty — a zero answer vector (the encoder
    gives every empty text one), or, when the answer table is given (rows in sample_id
    order), a blank ``answer`` or a flag in :data:`NO_TEXT_FLAGS`."""
    empty = ~np.asarray(answer_vectors).any(axis=1)
    if answers is not None:
        if len(answers) != len(empty):
            raise LocalizationError(f"the answer table has {len(answers)} rows but there are "
                                    f"{len(empty)} answer vectors")
        if "answer" in answers:
            empty |= answers["answer"].fillna("").astype(str).str.strip().eq("").to_numpy()
        if "flag" in answers:
            empty |= answers["flag"].isin(NO_TEXT_FLAGS).to_numpy()
    return empty


def localization_candidates(items: pd.DataFrame) -> np.ndarray:
    """bool [N+1] by item id: the items an answer may be localized onto — those with a
    real text. ``has_text`` (written by the data stage; False for items shown under the
    placeholder "item <raw id>") decides where the table has it; a table without the
    column (built before it existed) counts every item with a non-blank text. Row 0
    (padding) is never a candidate."""
    ids = items["item_id"].to_numpy()
    real = items["text"].fillna("").astype(str).str.strip().ne("").to_numpy()
    if "has_text" in items:
        real = real & items["has_text"].fillna(False).astype(bool).to_numpy()
    candidates = np.zeros(int(ids.max()) + 1 if len(ids) else 1, dtype=bool)
    candidates[ids] = real
    candidates[0] = False
    return candidates


# --- output ----------------------------------------------------------------------------


def write_localized(path_npy: PathLike, path_topr_parquet: PathLike, h_infer: np.ndarray,
                    ids: np.ndarray, scores: np.ndarray, sample_ids: np.ndarray) -> None:
    """Write h_infer (float32 [n, d] .npy) and the top-r table (parquet: sample_id int64,
    item_ids list<int64>, scores list<float32>) atomically: both files or neither."""
    h_infer = np.asarray(h_infer)
    ids = np.asarray(ids)
    scores = np.asarray(scores)
    sample_ids = np.asarray(sample_ids)
    if h_infer.ndim != 2:
        raise LocalizationError(f"h_infer must be [n, d], got shape {h_infer.shape}",
                                path_npy)
    n = h_infer.shape[0]
    if ids.ndim != 2 or ids.shape[0] != n or scores.shape != ids.shape \
            or sample_ids.shape != (n,):
        raise LocalizationError(
            f"inconsistent shapes: h_infer {h_infer.shape}, ids {ids.shape}, scores "
            f"{scores.shape}, sample_ids {sample_ids.shape} (need [n, d], [n, r], [n, r], "
            "[n])", path_topr_parquet)
    if ids.size >= 2 ** 31:
        raise LocalizationError(f"{ids.size} top-r entries exceed one parquet list column",
                                path_topr_parquet)
    h32 = np.ascontiguousarray(h_infer, dtype=np.float32)
    bad = ~np.isfinite(h32).all(axis=1)
    if bad.any():
        raise LocalizationError(f"h_infer row {int(np.flatnonzero(bad)[0])} is not finite",
                                path_npy)
    r = ids.shape[1]
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * np.int32(r), type=pa.int32())
    table = pa.table({
        "sample_id": pa.array(sample_ids.astype(np.int64), type=pa.int64()),
        "item_ids": pa.ListArray.from_arrays(
            offsets, pa.array(ids.astype(np.int64).ravel(), type=pa.int64())),
        "scores": pa.ListArray.from_arrays(
            offsets, pa.array(scores.astype(np.float32).ravel(), type=pa.float32())),
    })
    with AtomicFiles() as files:
        with open(files.temp_path(path_npy), "wb") as f:
            np.save(f, h32)
        files.write_parquet(path_topr_parquet, table)


def localize_files(samples: Mapping[str, PathLike], item_table: PathLike,
                   item_vectors: PathLike, answer_vectors: PathLike,
                   answers_table: PathLike | None, r: int, backend: str, batch_size: int,
                   intents_path: PathLike, topr_path: PathLike, grounding_path: PathLike,
                   threads: int | None = None, examples: int = 10) -> dict[str, Any]:
    """The localize_intents rule: vectors on disk → intents, top-r table, grounding.

    Args:
        samples: split name → that split's samples parquet (``sample_id``, ``items``,
            ``target``); the answers are in ``sample_id`` order over all of them.
        item_table: the items parquet (``item_id``, ``text``, ``has_text`` if present).
        item_vectors: the item text embeddings (.npy, row = item id, row 0 padding).
        answer_vectors: the answer embeddings (.npy, one row per sample).
        answers_table: the LLM answers parquet (``answer``, ``flag``), for the examples;
            None writes none.
        r, backend, batch_size: as in :func:`llm4sbr_core.localize.localize_intents`.
        intents_path, topr_path, grounding_path: the outputs (:func:`write_localized`
            and the grounding JSON).
        threads: torch's thread count, if given.
        examples: test answers shown in the grounding file.

    Candidates are the items with a real text (:func:`localization_candidates`): an item
    without a title is shown in prompts as "item <raw id>", and an answer must not be
    grounded in that placeholder. Empty answers (:func:`empty_answers`) get a zero answer
    vector and hence a zero intent (Σ of similarity 0 × item vectors; for r = 0 the zero
    answer vector itself): an intent without information, never one localized from a
    meaningless embedding. Their top-r rows are placeholders (the first r candidates,
    similarity 0). The grounding file holds :func:`grounding_stats` over all samples and
    per split — shares and means over the answered samples, the empty answers counted
    apart (``empty_answers``, ``empty_share``; ``zero_answers`` is the same count) — and
    the first ``examples`` test answers with their localized items (the paper's Fig. 4).
    """
    if not samples:
        raise LocalizationError("no samples files given (split name → samples parquet)")
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    columns = [c for c in ("item_id", "text", "has_text")
               if c in pq.read_schema(item_table).names]
    items = pd.read_parquet(item_table, columns=columns)
    frame = pd.concat([pd.read_parquet(path).assign(split=split)
                       for split, path in samples.items()], ignore_index=True)
    frame = frame.sort_values("sample_id", kind="stable").reset_index(drop=True)
    item_matrix = np.load(item_vectors, mmap_mode="r")
    answer_matrix = np.load(answer_vectors)
    check_rows(answer_matrix, len(frame), answer_vectors)
    if item_matrix.shape[0] != len(items) + 1:
        raise LocalizationError(f"{item_matrix.shape[0]} rows, but {item_table} has "
                                f"{len(items)} items (+ padding)", item_vectors)
    candidates = localization_candidates(items)
    answers = None
    if answers_table is not None:
        answers = pd.read_parquet(answers_table, columns=["answer", "flag"])
        if len(answers) != len(frame):
            raise LocalizationError(f"{len(answers)} answers but {len(frame)} samples",
                                    answers_table)
    empty = empty_answers(answer_matrix, answers)
    if (empty & answer_matrix.any(axis=1)).any():  # flagged empty, yet a non-zero vector
        answer_matrix = np.where(empty[:, None], np.float32(0), answer_matrix)
    h_infer, ids, scores = localize_intents(
        answer_matrix, np.asarray(item_matrix), r, backend=backend, candidates=candidates,
        batch_size=batch_size, answers_path=answer_vectors, items_path=item_vectors)
    seconds = time.perf_counter() - started
    grounding: dict[str, Any] = {"r": r, "backend": backend, "seconds": round(seconds, 3),
                                 "answers_per_second": round(len(frame) / seconds, 1),
                                 "candidates": int(candidates.sum()),
                                 "zero_answers": int(empty.sum()),
                                 "empty_answers": int(empty.sum())}
    if r > 0:
        grounding.update(grounding_stats(ids, frame["items"].tolist(),
                                         frame["target"].to_numpy(), scores,
                                         splits=frame["split"].to_numpy(), answered=~empty))
        if answers is not None:
            grounding["examples"] = _examples(answers, frame, items, ids, scores, examples,
                                              ~empty)
    write_localized(intents_path, topr_path, h_infer, ids, scores,
                    frame["sample_id"].to_numpy())
    with AtomicFiles() as files:
        files.write_text(grounding_path, json.dumps(grounding, indent=2, default=float) + "\n")
    log.info("localized %d answers against %d items (r=%d, %s) in %.1f s", len(frame),
             int(candidates.sum()), r, backend, seconds)
    return grounding


def _examples(answers: Any, samples: Any, items: Any, ids: np.ndarray, scores: np.ndarray,
              n: int, answered: np.ndarray) -> list[dict[str, Any]]:
    """The first n usable test answers: session, answer, localized items, target."""
    text = dict(zip(items["item_id"], items["text"], strict=True))
    rows = [i for i in range(len(samples))
            if samples["split"].iat[i] == "test" and answers["flag"].iat[i] == "ok"
            and answered[i]][:n]
    return [{"sample_id": int(samples["sample_id"].iat[i]),
             "session": [text[int(x)] for x in samples["items"].iat[i]][-5:],
             "answer": answers["answer"].iat[i],
             "localized": [[text[int(x)], round(float(s), 4)]
                           for x, s in zip(ids[i], scores[i], strict=True)],
             "target": text[int(samples["target"].iat[i])]} for i in rows]
