"""Non-neural session-based baselines: POP, SKNN, V-SKNN, STAN and V-STAN, full ranking.

Ludewig et al. showed that these nearest-neighbour methods match or beat neural
session models ("Performance comparison of neural and non-neural approaches to
session-based recommendation", RecSys 2019; "Empirical analysis of session-based
recommendation algorithms", UMUAI 2021). The definitions follow the papers and the
facts of their reference implementation (session-rec, ``algorithms/knn/{sknn,vsknn,
stan,vstan}.py``, ``algorithms/baselines/pop.py``); the code here is written anew,
vectorised with ``scipy.sparse``.

Notation: ``s`` the current session (a sample's input prefix, clicks x_1..x_L, oldest
first), ``n`` a training session, ``set(·)`` its distinct items, ``p_s(i)`` the 1-based
click position of the LAST occurrence of item ``i`` in ``s`` (``p_n(i)`` likewise in n).

Neighbourhood (all kNN methods). The candidate neighbours of ``s`` are the training
sessions sharing at least one item with it; of those, the ``sample_size`` most recent
are kept (``sample_size = 0`` keeps all), their similarity to ``s`` is computed, and the
``k`` most similar with a positive similarity, N_k(s), are the neighbours (ties: the more
recent session first). Scores are computed for every item 1..N; items of ``s`` itself
are scored like any other — the reference's ``remind=True`` default; V-SKNN, STAN and
V-STAN take ``remind=False`` to leave them unscored (score 0), as the reference does.

* POP (session-rec ``Pop``): score(i) = number of training clicks on i.
* SKNN (Jannach & Ludewig, RecSys 2017, "When recurrent neural networks meet the
  neighborhood for session-based recommendation"), cosine similarity on item sets:

      sim(s, n)  = |set(s) ∩ set(n)| / sqrt(|set(s)| · |set(n)|)
      score(i)   = Σ_{n ∈ N_k(s)} sim(s, n) · 1[i ∈ n]

* V-SKNN (Ludewig & Jannach, UMUAI 2018, "Evaluation of session-based recommendation
  algorithms"): a position-weighted vector of ``s`` dotted with the binary vector of n,
  and a decay by how recent the most recent shared click of ``s`` is:

      w(i)       = f(p_s(i), L)      f ∈ same: 1 | div: p/L | linear: max(0, 1 − 0.1(L − p))
                                       | log: 1 / log10(L − p + 1.7) | quadratic: (p/L)²
      sim(s, n)  = Σ_{i ∈ set(s) ∩ set(n)} w(i) / |set(s)|
      step(s, n) = L + 1 − max_{i ∈ set(s) ∩ set(n)} p_s(i)      (1 = the last click matches)
      score(i)   = (1 + λ_idf · idf(i)) · Σ_{n ∈ N_k(s)} sim(s, n) · g(step(s, n)) · 1[i ∈ n]
                   g ∈ same: 1 | div: 1/step | linear: max(0, 1 − 0.1 step)
                       | log: 1 / log10(step + 1.7) | quadratic: 1/step²
      idf(i)     = log(S / |{n : i ∈ n}|)       (S training sessions; λ_idf = None: off)

* STAN (Garg et al., SIGIR 2019, "Sequence and Time Aware Neighborhood for
  Session-based Recommendations"), three exponential decays λ1 = ``lambda_spw``,
  λ2 = ``lambda_snh``, λ3 = ``lambda_inh`` (None switches one off):

      w1(i)      = exp((p_s(i) − L) / λ1)                         recency of i within s
      sim(s, n)  = Σ_{i ∈ set(s) ∩ set(n)} w1(i) / (sqrt(Σ_{i ∈ set(s)} w1(i)²) · sqrt(|set(n)|))
                   · w2(n),    w2(n) = exp(−(t(s) − t(n)) / λ2)   recency of the neighbour
      p*(n)      = max_{i ∈ set(s) ∩ set(n)} p_n(i)                the last shared click in n
      score(i)   = Σ_{n ∈ N_k(s)} sim(s, n) · exp(−|p_n(i) − p*(n)| / λ3) · 1[i ∈ n]

* V-STAN (Ludewig et al., UMUAI 2021): STAN plus V-SKNN's match decay, in STAN's
  exponential form, and the idf weighting:

      score(i)   = (1 + λ_idf · idf(i)) · Σ_{n ∈ N_k(s)} sim(s, n) · exp(−|p_n(i) − p*(n)| / λ3)
                   · exp((max_{j ∈ set(s) ∩ set(n)} p_s(j) − L) / λ_ipw) · 1[i ∈ n]

Time. The samples carry no timestamps, so "recent" means later in the training-session
order: sessions are sorted by ``session_id``, which the data stage assigns in its session
order (``sessionize.order``: ``start_time`` is chronological; ``key`` and ``first_seen``,
the configured orders, follow user ids or file order — on Beauty there is no time at all,
only review positions). Training session j of S (j = 0 the first) has t(n) = j and every
evaluated prefix t(s) = S (valid and test sessions follow the training ones in the
``ordered`` split). λ2 is therefore given in units of the training span:
w2(n) = exp(−(S − j) / (λ2 · S)); λ2 = 1 weighs the oldest session e⁻¹ of the newest.
The same order drives the ``sample_size`` most-recent sampling of every kNN method.

Training sessions are rebuilt from the training samples: per session_id, the longest input
prefix plus its target (:func:`training_sessions` checks that every other sample of the
session is a prefix of it — true for the ``prefix`` and ``last`` sample modes).

Evaluation. Every item 1..N gets a score and the target is ranked with
:func:`llm4sbr_core.metrics.target_ranks` (pessimistic ties), as for the neural models.
kNN methods leave most items at score 0: a target with score 0 ties with every other
unscored item and is ranked N (a miss at every cut-off) — session-rec sorts the unscored
items in arbitrary order after the scored ones and so counts them as misses too, except
for a lucky hit when fewer than K items are scored. Ties among scored items are also
ranked pessimistically here (session-rec: arbitrary order). session-rec ranks only the
items seen in training; the unseen ones score 0 here, so they never outrank a scored target.

Deviations from the reference code, where it contradicts its own papers: cosine is
|s∩n|/sqrt(|s|·|n|) (``sknn.py`` computes li / sqrt(la) * sqrt(lb)); the ``linear``
weights are clamped at 0 (the reference lets them go negative, and zeroes the position
weights of sessions' clicks after the 10th from the START instead of the last ten); idf
counts the training sessions containing an item (the reference counts its clicks, the
same whenever no session repeats an item).
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from ..errors import InvalidInputError
from ..metrics import metrics_from_ranks, target_ranks

log = logging.getLogger(__name__)

#: The position weightings of V-SKNN (``weighting``) and its match decays (``weighting_score``).
WEIGHTINGS: tuple[str, ...] = ("same", "div", "linear", "log", "quadratic")
#: What :func:`tune_knn` selects on, as the neural runs do.
SELECT_METRIC = "MRR@20"
#: Dense score cells held at once (batch rows × (N + 1)); 16 M float64 = 128 MB.
_SCORE_CELLS = 16_000_000
#: (query, neighbour, item) triples expanded at once for STAN-type scoring.
_PAIR_CELLS = 24_000_000


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class SessionArrays:
    """Variable-length click sequences held flat: sequence ``r`` is
    ``items[offsets[r]:offsets[r + 1]]``, oldest click first."""

    offsets: np.ndarray  # int64 [R + 1]
    items: np.ndarray  # int64 [clicks]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def slice(self, start: int, stop: int) -> SessionArrays:
        """Sequences ``start..stop - 1`` (a view of the click array)."""
        offsets = self.offsets[start:stop + 1]
        return SessionArrays(offsets - offsets[0], self.items[offsets[0]:offsets[-1]])

    @classmethod
    def from_lists(cls, sequences: Sequence[Sequence[int]]) -> SessionArrays:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        items = (np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
                 if len(sequences) else np.zeros(0, np.int64))
        return cls(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), items)

    def to_lists(self) -> list[list[int]]:
        bounds = zip(self.offsets[:-1], self.offsets[1:], strict=True)
        return [self.items[a:b].tolist() for a, b in bounds]


@dataclass(frozen=True)
class Samples:
    """A split's samples in file order: input prefixes, targets and their ids."""

    prefixes: SessionArrays
    targets: np.ndarray  # int64 [R]
    sample_ids: np.ndarray  # int64 [R]
    session_ids: np.ndarray  # int64 [R]

    def __len__(self) -> int:
        return len(self.targets)

    @classmethod
    def from_table(cls, table: pa.Table, source: str | Path | None = None) -> Samples:
        """From a samples table (sample_id, session_id, items, target)."""
        missing = {"sample_id", "session_id", "items", "target"} - set(table.column_names)
        if missing:
            raise InvalidInputError(f"samples lack the column(s) {sorted(missing)}", source)
        lengths = pc.list_value_length(table["items"]).to_numpy(zero_copy_only=False)
        if len(lengths) and (np.asarray(lengths, dtype=np.float64) < 1).any():
            raise InvalidInputError("a sample has an empty input session", source)
        items = pc.list_flatten(table["items"]).to_numpy(zero_copy_only=False)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(SessionArrays(offsets, np.asarray(items, dtype=np.int64)),
                   table["target"].to_numpy().astype(np.int64),
                   table["sample_id"].to_numpy().astype(np.int64),
                   table["session_id"].to_numpy().astype(np.int64))

    @classmethod
    def from_lists(cls, prefixes: Sequence[Sequence[int]], targets: Sequence[int],
                   session_ids: Sequence[int] | None = None) -> Samples:
        n = len(targets)
        return cls(SessionArrays.from_lists(prefixes), np.asarray(targets, dtype=np.int64),
                   np.arange(n, dtype=np.int64),
                   np.asarray(session_ids if session_ids is not None else np.arange(n),
                              dtype=np.int64))


def read_samples(path: str | Path) -> Samples:
    """A split's ``{train,valid,test}.parquet`` as :class:`Samples`."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError("samples file not found", path)
    return Samples.from_table(pq.read_table(path, columns=["sample_id", "session_id", "items",
                                                           "target"]), path)


def training_sessions(samples: Samples) -> SessionArrays:
    """Whole training sessions from their samples, in ``session_id`` order (the order
    "recent" refers to): per session, the longest input prefix followed by its target.

    Raises :class:`InvalidInputError` unless every other sample of a session is a prefix
    of that sequence (input and target), as the data stage's ``prefix`` and ``last``
    sample modes guarantee.
    """
    if len(samples) == 0:
        raise InvalidInputError("no training samples")
    lengths = samples.prefixes.lengths
    # the longest sample of each session: sort by (session, length), take the last
    order = np.lexsort((lengths, samples.session_ids))
    sess_sorted = samples.session_ids[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sess_sorted[1:] != sess_sorted[:-1]
    chosen = order[last]  # one sample per session, sessions ascending
    full_len = lengths[chosen] + 1
    offsets = np.concatenate([[0], np.cumsum(full_len)]).astype(np.int64)
    starts = samples.prefixes.offsets[chosen]
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], full_len)
    src = np.repeat(starts, full_len) + within
    is_target = within == np.repeat(full_len - 1, full_len)
    items = samples.prefixes.items[np.minimum(src, len(samples.prefixes.items) - 1)]
    items[is_target] = samples.targets[chosen]
    sessions = SessionArrays(offsets, items)
    # every sample must be a prefix (+ target) of its session's sequence
    session_row = np.searchsorted(samples.session_ids[chosen], samples.session_ids)
    base = np.repeat(offsets[session_row], lengths)
    pos = np.arange(len(samples.prefixes.items)) - np.repeat(samples.prefixes.offsets[:-1],
                                                              lengths)
    same_inputs = items[base + pos] == samples.prefixes.items
    too_long = lengths + 1 > full_len[session_row]
    same_target = items[offsets[session_row] + np.minimum(lengths, full_len[session_row] - 1)
                        ] == samples.targets
    if too_long.any() or not same_inputs.all() or not same_target.all():
        bad = int((~same_target).sum() + (~same_inputs).sum())
        raise InvalidInputError(f"training samples are not prefixes of one sequence per "
                                f"session_id ({bad} mismatching clicks or targets): cannot "
                                "rebuild the training sessions")
    return sessions


def _check_items(items: np.ndarray, n_items: int, what: str) -> None:
    if len(items) and (int(items.min()) < 1 or int(items.max()) > n_items):
        raise InvalidInputError(f"{what}: item ids must lie in 1..{n_items}, found "
                                f"{int(items.min())}..{int(items.max())}")


# --------------------------------------------------------------------------- weights

def vsknn_position_weights(positions: np.ndarray, length: np.ndarray,
                           weighting: str) -> np.ndarray:
    """V-SKNN's weight of a click at 1-based ``positions`` of a session of ``length``."""
    p = np.asarray(positions, dtype=np.float64)
    n = np.asarray(length, dtype=np.float64)
    if weighting == "same":
        return np.ones_like(p * n)
    if weighting == "div":
        return p / n
    if weighting == "linear":
        return np.maximum(0.0, 1.0 - 0.1 * (n - p))
    if weighting == "log":
        return 1.0 / np.log10(n - p + 1.7)
    if weighting == "quadratic":
        return (p / n) ** 2
    raise InvalidInputError(f"unknown V-SKNN weighting {weighting!r}; known: {list(WEIGHTINGS)}")


def vsknn_match_decay(step: np.ndarray, weighting_score: str) -> np.ndarray:
    """V-SKNN's decay of a neighbour whose most recent shared click is ``step`` clicks
    from the end of the current session (1 = the last click)."""
    s = np.asarray(step, dtype=np.float64)
    if weighting_score == "same":
        return np.ones_like(s)
    if weighting_score == "div":
        return 1.0 / s
    if weighting_score == "linear":
        return np.maximum(0.0, 1.0 - 0.1 * s)
    if weighting_score == "log":
        return 1.0 / np.log10(s + 1.7)
    if weighting_score == "quadratic":
        return 1.0 / (s * s)
    raise InvalidInputError(f"unknown V-SKNN weighting_score {weighting_score!r}; known: "
                            f"{list(WEIGHTINGS)}")


def stan_position_weights(positions: np.ndarray, length: np.ndarray,
                          lambda_spw: float | None) -> np.ndarray:
    """STAN's λ1 weight exp((p − L) / λ1) of a click at ``positions`` (1 when off)."""
    p = np.asarray(positions, dtype=np.float64)
    n = np.asarray(length, dtype=np.float64)
    if lambda_spw is None:
        return np.ones_like(p * n)
    return np.exp((p - n) / lambda_spw)


def recency_weights(n_sessions: int, lambda_snh: float | None) -> np.ndarray:
    """STAN's λ2 weight of training session j = 0..S−1 seen from t(s) = S:
    exp(−(S − j) / (λ2 · S)), λ2 in units of the training span (1 when off)."""
    if lambda_snh is None:
        return np.ones(n_sessions)
    age = (n_sessions - np.arange(n_sessions, dtype=np.float64)) / n_sessions
    return np.exp(-age / lambda_snh)


def stan_item_weights(positions: np.ndarray, anchor: np.ndarray,
                      lambda_inh: float | None) -> np.ndarray:
    """STAN's λ3 weight exp(−|p_n(i) − p*| / λ3) of a neighbour's item (1 when off)."""
    d = np.abs(np.asarray(positions, dtype=np.float64) - np.asarray(anchor, dtype=np.float64))
    if lambda_inh is None:
        return np.ones_like(d)
    return np.exp(-d / lambda_inh)


# --------------------------------------------------------------------------- index

def _distinct_last(seqs: SessionArrays, width: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct items of each sequence with the 1-based position of their last click,
    sorted by (sequence, item): (indptr [R + 1], rows, items, last_pos)."""
    lengths = seqs.lengths
    rows = np.repeat(np.arange(len(seqs), dtype=np.int64), lengths)
    pos = np.arange(len(seqs.items), dtype=np.int64) - np.repeat(seqs.offsets[:-1], lengths) + 1
    key = rows * width + seqs.items
    order = np.lexsort((pos, key))
    k = key[order]
    last = np.ones(len(k), dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    sel = order[last]
    r = rows[sel]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=len(seqs)))]
                            ).astype(np.int64)
    return indptr, r, seqs.items[sel], pos[sel]


@dataclass(frozen=True)
class KnnIndex:
    """The training sessions as sparse session × item matrices (columns 0..N, 0 unused),
    sessions oldest first. Built once, shared by every method and setting."""

    n_items: int
    sessions: SessionArrays
    last_pos: sp.csr_matrix  # [S, N+1] float64: p_n(i), the last 1-based click position
    binary: sp.csr_matrix  # [S, N+1] float64 1.0 on the same pattern
    by_item: sp.csr_matrix  # [N+1, S] = binary.T
    keys: np.ndarray  # int64, sorted: session · (N+1) + item of every entry of last_pos
    n_distinct: np.ndarray  # [S] |set(n)|
    clicks: np.ndarray  # [N+1] training clicks per item
    idf: np.ndarray  # [N+1] log(S / sessions containing i); 0 where no session does
    mean_length: float  # mean clicks per training session

    @property
    def n_sessions(self) -> int:
        return len(self.sessions)

    @property
    def width(self) -> int:
        return self.n_items + 1

    @classmethod
    def build(cls, sessions: SessionArrays, n_items: int) -> KnnIndex:
        if len(sessions) == 0:
            raise InvalidInputError("no training sessions")
        if (sessions.lengths < 1).any():
            raise InvalidInputError("a training session is empty")
        _check_items(sessions.items, n_items, "training sessions")
        width = n_items + 1
        indptr, rows, items, pos = _distinct_last(sessions, width)
        shape = (len(sessions), width)
        last_pos = sp.csr_matrix((pos.astype(np.float64), items, indptr), shape=shape)
        binary = sp.csr_matrix((np.ones(len(items)), items, indptr), shape=shape)
        df = np.bincount(items, minlength=width).astype(np.float64)
        with np.errstate(divide="ignore"):
            idf = np.where(df > 0, np.log(len(sessions) / np.maximum(df, 1.0)), 0.0)
        return cls(n_items, sessions, last_pos, binary, binary.T.tocsr(), rows * width + items,
                   np.diff(indptr), np.bincount(sessions.items, minlength=width).astype(np.float64),
                   idf, float(len(sessions.items) / len(sessions)))

    @classmethod
    def from_samples(cls, samples: Samples, n_items: int) -> KnnIndex:
        return cls.build(training_sessions(samples), n_items)


@dataclass(frozen=True)
class QueryBatch:
    """Input prefixes of a batch as distinct items with last positions, sorted by
    (row, item): the CSR layout of a row × item matrix."""

    width: int
    lengths: np.ndarray  # [b] clicks L of each prefix
    indptr: np.ndarray  # [b + 1]
    rows: np.ndarray  # row of each entry
    items: np.ndarray  # item of each entry
    last_pos: np.ndarray  # p_s(i) of each entry

    @property
    def n(self) -> int:
        return len(self.lengths)

    @property
    def n_distinct(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def keys(self) -> np.ndarray:
        return self.rows * self.width + self.items

    def matrix(self, data: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((np.asarray(data, dtype=np.float64), self.items, self.indptr),
                             shape=(self.n, self.width))

    @classmethod
    def build(cls, prefixes: SessionArrays, n_items: int) -> QueryBatch:
        if (prefixes.lengths < 1).any():
            raise InvalidInputError("a sample has an empty input session")
        _check_items(prefixes.items, n_items, "input sessions")
        indptr, rows, items, pos = _distinct_last(prefixes, n_items + 1)
        return cls(n_items + 1, prefixes.lengths, indptr, rows, items, pos)


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each of ``keys`` is in ``sorted_keys``, and its index there (valid where found)."""
    idx = np.searchsorted(sorted_keys, keys)
    idx = np.minimum(idx, max(len(sorted_keys) - 1, 0))
    found = sorted_keys[idx] == keys if len(sorted_keys) else np.zeros(len(keys), bool)
    return found, idx


@dataclass(frozen=True)
class Neighbours:
    """The selected (query row, training session) pairs, sorted by (row, session)."""

    rows: np.ndarray
    sessions: np.ndarray
    sims: np.ndarray


#: similarity(query rows, training sessions, |set(s) ∩ set(n)|) → similarities, per pair
Similarity = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def select_neighbours(index: KnnIndex, queries: QueryBatch, k: int, sample_size: int,
                      similarity: Similarity) -> Neighbours:
    """The shared neighbourhood step.

    Candidates: training sessions sharing an item with the prefix (binary products
    queries × items × sessions); per row, the ``sample_size`` most recent are kept
    (``0``: all); ``similarity(rows, sessions, overlap)`` gives their similarities; the
    ``k`` best with a positive similarity are returned (ties: the more recent first).
    """
    cand = (queries.matrix(np.ones(len(queries.items))) @ index.by_item).tocsr()
    cand.sort_indices()
    counts = np.diff(cand.indptr)
    rows = np.repeat(np.arange(queries.n, dtype=np.int64), counts)
    sessions = cand.indices.astype(np.int64)
    overlap = cand.data
    if sample_size > 0:
        # sessions are ordered oldest first, so a row's last entries are its most recent
        rank_from_end = np.repeat(cand.indptr[1:], counts) - np.arange(len(sessions))
        keep = rank_from_end <= sample_size
        rows, sessions, overlap = rows[keep], sessions[keep], overlap[keep]
    sims = similarity(rows, sessions, overlap)
    pos = sims > 0
    rows, sessions, sims = rows[pos], sessions[pos], sims[pos]
    order = np.lexsort((-sessions, -sims, rows))
    rows, sessions, sims = rows[order], sessions[order], sims[order]
    starts = np.searchsorted(rows, np.arange(queries.n))
    rank = np.arange(len(rows)) - starts[rows]
    top = rank < k
    rows, sessions, sims = rows[top], sessions[top], sims[top]
    order = np.lexsort((sessions, rows))
    return Neighbours(rows[order], sessions[order], sims[order])


def weighted_overlap(index: KnnIndex, queries: QueryBatch, weights: np.ndarray,
                     rows: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """Σ_{i ∈ set(s) ∩ set(n)} weights(i) for the given (row, session) pairs, summed in
    item order (``weights`` per query entry)."""
    prod = (queries.matrix(weights) @ index.by_item).tocsr()
    prod.sort_indices()
    prod_rows = np.repeat(np.arange(queries.n, dtype=np.int64), np.diff(prod.indptr))
    prod_keys = prod_rows * index.n_sessions + prod.indices
    found, idx = _lookup(prod_keys, rows * index.n_sessions + sessions)
    return np.where(found, prod.data[idx] if len(prod.data) else 0.0, 0.0)


def max_shared_query_position(index: KnnIndex, queries: QueryBatch,
                              nb: Neighbours) -> np.ndarray:
    """max_{i ∈ set(s) ∩ set(n)} p_s(i) per neighbour pair (0 if nothing is shared)."""
    d = queries.n_distinct[nb.rows]
    firsts = np.cumsum(d) - d
    entry = np.repeat(queries.indptr[nb.rows] - firsts, d) + np.arange(int(d.sum()))
    found, _ = _lookup(index.keys, np.repeat(nb.sessions, d) * index.width
                       + queries.items[entry])
    vals = np.where(found, queries.last_pos[entry], 0)
    return np.maximum.reduceat(vals, firsts) if len(vals) else np.zeros(0, np.int64)


def expand_neighbour_items(index: KnnIndex, queries: QueryBatch, nb: Neighbours
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every item of every neighbour: (pair, item, p_n(item), p*(pair)) where
    p* = max_{i ∈ set(s) ∩ set(n)} p_n(i) is the last click of n shared with s."""
    d = index.n_distinct[nb.sessions]
    firsts = np.cumsum(d) - d
    pair = np.repeat(np.arange(len(nb.rows)), d)
    entry = np.repeat(index.last_pos.indptr[nb.sessions] - firsts, d) + np.arange(int(d.sum()))
    items = index.last_pos.indices[entry].astype(np.int64)
    positions = index.last_pos.data[entry]
    shared, _ = _lookup(queries.keys, nb.rows[pair] * index.width + items)
    anchor = (np.maximum.reduceat(np.where(shared, positions, 0.0), firsts)
              if len(items) else np.zeros(0))
    return pair, items, positions, anchor


def _scatter_scores(n_rows: int, width: int, rows: np.ndarray, items: np.ndarray,
                    values: np.ndarray) -> np.ndarray:
    flat = np.bincount(rows * width + items, weights=values, minlength=n_rows * width)
    return flat.reshape(n_rows, width)


# --------------------------------------------------------------------------- models

def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _positive_or_none(name: str, value: Any) -> float | None:
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive number or None, got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be true or false, got {value!r}")
    return bool(value)


class KnnModel(ABC):
    """A method fitted on a :class:`KnnIndex`; :meth:`scores` rates every item 1..N."""

    name: ClassVar[str]

    def __init__(self, index: KnnIndex) -> None:
        self.index = index

    @abstractmethod
    def scores(self, queries: QueryBatch) -> np.ndarray:
        """[b, N + 1] float64 scores; column 0 (padding) is ignored by the ranking."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The hyper-parameters, as given to the constructor."""

    #: how many (pair × item) cells one query row costs at most, to size batches
    def pair_cells_per_row(self) -> float:
        return 0.0


class Pop(KnnModel):
    """POP: the number of training clicks of each item, the same for every session."""

    name = "pop"

    def scores(self, queries: QueryBatch) -> np.ndarray:
        return np.broadcast_to(self.index.clicks, (queries.n, self.index.width))

    def params(self) -> dict[str, Any]:
        return {}


class SKNN(KnnModel):
    """SKNN with cosine similarity (session-rec ``ContextKNN``; defaults: its docstring's
    k = 100 and sample_size = 500, recent sampling)."""

    name = "sknn"

    def __init__(self, index: KnnIndex, k: int = 100, sample_size: int = 500) -> None:
        super().__init__(index)
        self.k = _positive_int("k", k)
        self.sample_size = _positive_int("sample_size", sample_size, 0)

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "sample_size": self.sample_size}

    def neighbours(self, queries: QueryBatch) -> Neighbours:
        nq = queries.n_distinct.astype(np.float64)
        nn = self.index.n_distinct.astype(np.float64)

        def cosine(rows: np.ndarray, sessions: np.ndarray, overlap: np.ndarray) -> np.ndarray:
            return overlap / np.sqrt(nq[rows] * nn[sessions])

        return select_neighbours(self.index, queries, self.k, self.sample_size, cosine)

    def scores(self, queries: QueryBatch) -> np.ndarray:
        nb = self.neighbours(queries)
        weights = sp.csr_matrix((nb.sims, (nb.rows, nb.sessions)),
                                shape=(queries.n, self.index.n_sessions))
        return (weights @ self.index.binary).toarray()

    def pair_cells_per_row(self) -> float:
        return self.k * float(self.index.n_distinct.mean())


class VSKNN(SKNN):
    """V-SKNN (session-rec ``VMContextKNN``; defaults: k = 100 (docstring),
    sample_size = 1000, weighting = div, weighting_score = div, no idf, remind — its
    signature)."""

    name = "vsknn"

    def __init__(self, index: KnnIndex, k: int = 100, sample_size: int = 1000,
                 weighting: str = "div", weighting_score: str = "div",
                 idf_weighting: float | None = None, remind: bool = True) -> None:
        super().__init__(index, k, sample_size)
        for name, value in (("weighting", weighting), ("weighting_score", weighting_score)):
            if value not in WEIGHTINGS:
                raise InvalidInputError(f"unknown V-SKNN {name} {value!r}; known: "
                                        f"{list(WEIGHTINGS)}")
        self.weighting = weighting
        self.weighting_score = weighting_score
        self.idf_weighting = _positive_or_none("idf_weighting", idf_weighting)
        self.remind = _flag("remind", remind)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "weighting": self.weighting,
                "weighting_score": self.weighting_score, "idf_weighting": self.idf_weighting,
                "remind": self.remind}

    def scores(self, queries: QueryBatch) -> np.ndarray:
        w = vsknn_position_weights(queries.last_pos, queries.lengths[queries.rows],
                                   self.weighting)
        nq = queries.n_distinct.astype(np.float64)

        def vec(rows: np.ndarray, sessions: np.ndarray, overlap: np.ndarray) -> np.ndarray:
            return weighted_overlap(self.index, queries, w, rows, sessions) / nq[rows]

        nb = select_neighbours(self.index, queries, self.k, self.sample_size, vec)
        step = queries.lengths[nb.rows] + 1 - max_shared_query_position(self.index, queries, nb)
        pair_weights = nb.sims * vsknn_match_decay(step, self.weighting_score)
        weights = sp.csr_matrix((pair_weights, (nb.rows, nb.sessions)),
                                shape=(queries.n, self.index.n_sessions))
        scores = (weights @ self.index.binary).toarray()
        if self.idf_weighting is not None:
            scores *= 1.0 + self.idf_weighting * self.index.idf
        if not self.remind:
            scores[queries.rows, queries.items] = 0.0
        return scores


class STAN(KnnModel):
    """STAN (session-rec ``STAN``; defaults: k = 100 (docstring), sample_size = 5000,
    λ1 = 1.02, λ3 = 2.05, remind — its signature; λ2 = 1 training span, see the module
    doc)."""

    name = "stan"

    def __init__(self, index: KnnIndex, k: int = 100, sample_size: int = 5000,
                 lambda_spw: float | None = 1.02, lambda_snh: float | None = 1.0,
                 lambda_inh: float | None = 2.05, remind: bool = True) -> None:
        super().__init__(index)
        self.k = _positive_int("k", k)
        self.sample_size = _positive_int("sample_size", sample_size, 0)
        self.lambda_spw = _positive_or_none("lambda_spw", lambda_spw)
        self.lambda_snh = _positive_or_none("lambda_snh", lambda_snh)
        self.lambda_inh = _positive_or_none("lambda_inh", lambda_inh)
        self.remind = _flag("remind", remind)
        self._recency = recency_weights(index.n_sessions, self.lambda_snh)

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "sample_size": self.sample_size, "lambda_spw": self.lambda_spw,
                "lambda_snh": self.lambda_snh, "lambda_inh": self.lambda_inh,
                "remind": self.remind}

    def pair_cells_per_row(self) -> float:
        return self.k * float(self.index.n_distinct.mean())

    def neighbours(self, queries: QueryBatch) -> Neighbours:
        w = stan_position_weights(queries.last_pos, queries.lengths[queries.rows],
                                  self.lambda_spw)
        norm = np.sqrt(np.bincount(queries.rows, weights=w * w, minlength=queries.n))
        nn = self.index.n_distinct.astype(np.float64)

        def cosine(rows: np.ndarray, sessions: np.ndarray, overlap: np.ndarray) -> np.ndarray:
            dot = weighted_overlap(self.index, queries, w, rows, sessions)
            return dot / (norm[rows] * np.sqrt(nn[sessions])) * self._recency[sessions]

        return select_neighbours(self.index, queries, self.k, self.sample_size, cosine)

    def pair_weights(self, queries: QueryBatch, nb: Neighbours) -> np.ndarray:
        return nb.sims

    def item_factor(self) -> np.ndarray | None:
        return None

    def scores(self, queries: QueryBatch) -> np.ndarray:
        nb = self.neighbours(queries)
        pair, items, positions, anchor = expand_neighbour_items(self.index, queries, nb)
        values = (self.pair_weights(queries, nb)[pair]
                  * stan_item_weights(positions, anchor[pair], self.lambda_inh))
        scores = _scatter_scores(queries.n, self.index.width, nb.rows[pair], items, values)
        factor = self.item_factor()
        if factor is not None:
            scores *= factor
        if not self.remind:
            scores[queries.rows, queries.items] = 0.0
        return scores


class VSTAN(STAN):
    """V-STAN (session-rec ``VSKNN_STAN``; defaults: k = 100 (docstring), sample_size =
    5000, λ1 = 1.02, λ3 = 2.05, λ_ipw = 1.02, λ_idf = 5, remind — its signature; λ2 as
    STAN)."""

    name = "vstan"

    def __init__(self, index: KnnIndex, k: int = 100, sample_size: int = 5000,
                 lambda_spw: float | None = 1.02, lambda_snh: float | None = 1.0,
                 lambda_inh: float | None = 2.05, lambda_ipw: float | None = 1.02,
                 lambda_idf: float | None = 5.0, remind: bool = True) -> None:
        super().__init__(index, k, sample_size, lambda_spw, lambda_snh, lambda_inh, remind)
        self.lambda_ipw = _positive_or_none("lambda_ipw", lambda_ipw)
        self.lambda_idf = _positive_or_none("lambda_idf", lambda_idf)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "lambda_ipw": self.lambda_ipw, "lambda_idf": self.lambda_idf}

    def pair_weights(self, queries: QueryBatch, nb: Neighbours) -> np.ndarray:
        if self.lambda_ipw is None:
            return nb.sims
        latest = max_shared_query_position(self.index, queries, nb)
        return nb.sims * stan_position_weights(latest, queries.lengths[nb.rows],
                                               self.lambda_ipw)

    def item_factor(self) -> np.ndarray | None:
        if self.lambda_idf is None:
            return None
        return 1.0 + self.lambda_idf * self.index.idf


#: config name → class of every method here.
METHODS: dict[str, type[KnnModel]] = {"pop": Pop, "sknn": SKNN, "vsknn": VSKNN,
                                      "stan": STAN, "vstan": VSTAN}


def make_model(method: str, index: KnnIndex, **params: Any) -> KnnModel:
    """The method ``method`` with ``params`` (the others at their defaults)."""
    if method not in METHODS:
        raise InvalidInputError(f"unknown kNN method {method!r}; known: {sorted(METHODS)}")
    cls = METHODS[method]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "index")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InvalidInputError(f"{method} takes no parameter(s) {unknown}; it takes {accepted}")
    return cls(index, **params)  # type: ignore[call-arg]


def default_params(method: str) -> dict[str, Any]:
    """The constructor defaults of ``method``."""
    if method not in METHODS:
        raise InvalidInputError(f"unknown kNN method {method!r}; known: {sorted(METHODS)}")
    sig = inspect.signature(METHODS[method].__init__)
    return {n: p.default for n, p in sig.parameters.items() if n not in ("self", "index")}


# --------------------------------------------------------------------------- evaluation

def _batch_rows(model: KnnModel, n_items: int, batch_size: int | None) -> int:
    if batch_size is not None:
        return _positive_int("batch_size", batch_size)
    rows = _SCORE_CELLS // (n_items + 1)
    cells = model.pair_cells_per_row()
    if cells > 0:
        rows = min(rows, int(_PAIR_CELLS // cells))
    return max(16, min(rows, 4096))


def iter_scores(model: KnnModel, samples: Samples, batch_size: int | None = None
                ) -> Iterator[tuple[slice, np.ndarray]]:
    """(sample rows, [b, N + 1] scores) batch by batch, in sample order."""
    n_items = model.index.n_items
    rows = _batch_rows(model, n_items, batch_size)
    for start in range(0, len(samples), rows):
        stop = min(start + rows, len(samples))
        queries = QueryBatch.build(samples.prefixes.slice(start, stop), n_items)
        yield slice(start, stop), model.scores(queries)


def model_ranks(model: KnnModel, samples: Samples, batch_size: int | None = None) -> np.ndarray:
    """1-based full-catalogue rank of every sample's target (pessimistic ties)."""
    _check_items(samples.targets, model.index.n_items, "targets")
    ranks = np.empty(len(samples), dtype=np.int64)
    for rows, scores in iter_scores(model, samples, batch_size):
        ranks[rows] = target_ranks(torch.from_numpy(np.ascontiguousarray(scores)),
                                   torch.from_numpy(samples.targets[rows])).numpy()
    return ranks


def knn_ranks(method: str, train: Samples | SessionArrays | KnnIndex, samples: Samples,
              n_items: int, *, batch_size: int | None = None, **params: Any) -> np.ndarray:
    """1-based ranks (int64, sample order) of ``samples``' targets among items 1..N under
    ``method`` fitted on ``train`` (training samples, rebuilt sessions, or a built index)."""
    if isinstance(train, KnnIndex):
        if train.n_items != n_items:
            raise InvalidInputError(f"the index has {train.n_items} items, not {n_items}")
        index = train
    elif isinstance(train, Samples):
        index = KnnIndex.from_samples(train, n_items)
    else:
        index = KnnIndex.build(train, n_items)
    return model_ranks(make_model(method, index, **params), samples, batch_size)


def _grid_value(x: float) -> float:
    return float(f"{x:.4g}")


def default_grid(method: str, index: KnnIndex) -> dict[str, list[Any]]:
    """A small grid around the reference defaults, drawn from session-rec's optimisation
    grids: k and sample_size; STAN's λ1 and λ3 in multiples of the mean training-session
    length L̄ (the reference grids are L̄ · {1/8, 1/4, 1/2, 1, 2}), λ2 in training spans
    (None = off); ``remind`` (whether the session's own items are scored) where the
    method has it."""
    mean = index.mean_length
    if method == "pop":
        return {}
    if method == "sknn":
        return {"k": [50, 100, 500], "sample_size": [500, 1000, 5000]}
    if method == "vsknn":
        return {"k": [50, 100, 500], "sample_size": [500, 1000, 5000], "remind": [True, False]}
    if method in ("stan", "vstan"):
        return {"k": [100, 500], "lambda_spw": [_grid_value(mean / 2), _grid_value(mean)],
                "lambda_snh": [0.25, None], "lambda_inh": [_grid_value(mean / 2),
                                                           _grid_value(mean)],
                "remind": [True, False]}
    raise InvalidInputError(f"unknown kNN method {method!r}; known: {sorted(METHODS)}")


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid`` (in its key order; one empty point for ``{}``)."""
    keys = list(grid)
    for key in keys:
        if isinstance(grid[key], (str, bytes)) or not len(grid[key]):
            raise InvalidInputError(f"grid value for {key!r} must be a non-empty list")
    combos = itertools.product(*(grid[k] for k in keys))
    return [dict(zip(keys, values, strict=True)) for values in combos]


@dataclass
class KnnResult:
    """The outcome of :func:`tune_knn`."""

    method: str
    best_params: dict[str, Any]
    valid: dict[str, float]
    valid_ranks: np.ndarray
    test: dict[str, float] | None
    test_ranks: np.ndarray | None
    grid: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def tune_knn(method: str, train: Samples | SessionArrays | KnnIndex, valid: Samples,
             test: Samples | None, n_items: int, *,
             grid: Mapping[str, Sequence[Any]] | None = None,
             fixed: Mapping[str, Any] | None = None, select_metric: str = SELECT_METRIC,
             batch_size: int | None = None) -> KnnResult:
    """Grid search on the VALIDATION samples, then ONE evaluation of the test samples.

    Every point of ``grid`` (default :func:`default_grid`) merged over ``fixed`` is scored
    on ``valid``; the first point with the highest ``select_metric`` wins. ``test`` (if
    given) is ranked once, with the winner; nothing about it influences the choice.
    """
    t0 = time.perf_counter()
    if isinstance(train, KnnIndex):
        index = train
    else:
        sessions = training_sessions(train) if isinstance(train, Samples) else train
        index = KnnIndex.build(sessions, n_items)
    fit_seconds = time.perf_counter() - t0
    points = grid_points(default_grid(method, index) if grid is None else grid)
    results: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], dict[str, float], np.ndarray] | None = None
    for point in points:
        params = {**(fixed or {}), **point}
        start = time.perf_counter()
        ranks = model_ranks(make_model(method, index, **params), valid, batch_size)
        metrics = metrics_from_ranks(ranks)
        if select_metric not in metrics:
            raise InvalidInputError(f"unknown select_metric {select_metric!r}; known: "
                                    f"{sorted(metrics)}")
        seconds = time.perf_counter() - start
        results.append({"params": params, "valid": metrics, "seconds": seconds})
        log.info("%s %s: valid %s %.4f (%.1f s)", method, params, select_metric,
                 metrics[select_metric], seconds)
        if best is None or metrics[select_metric] > best[0]:
            best = (metrics[select_metric], params, metrics, ranks)
    assert best is not None
    _, best_params, valid_metrics, valid_ranks = best
    tune_seconds = time.perf_counter() - t0 - fit_seconds
    test_metrics, test_ranks, test_seconds = None, None, 0.0
    if test is not None:
        start = time.perf_counter()
        test_ranks = model_ranks(make_model(method, index, **best_params), test, batch_size)
        test_metrics = metrics_from_ranks(test_ranks)
        test_seconds = time.perf_counter() - start
    full = {**default_params(method), **best_params}
    return KnnResult(method, full, valid_metrics, valid_ranks, test_metrics, test_ranks, results,
                     {"fit_seconds": fit_seconds, "tune_seconds": tune_seconds,
                      "test_seconds": test_seconds})
