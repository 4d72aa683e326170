"""Session-level splits and the samples (input prefix, next item) drawn from them.

Splits are session-disjoint: every session lands in exactly one of train, valid and
test, so a test session never leaks prefixes into training (a RecBole pitfall when
augmentation precedes a ratio split).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from ..errors import ConfigError, InvalidInputError
from .sessions import Sessions

SPLITS = ("train", "valid", "test")


def _head_count(n: int, holdout_fraction: float) -> int:
    """Sessions kept at the head when ``holdout_fraction`` goes to the tail.

    ``floor(n · (1 − f))``, the reference code's ``int(0.9 · n)``; the epsilon keeps a
    product such as 0.7 · 10 = 6.9999… from losing a session to rounding.
    """
    return int(math.floor(n * (1.0 - holdout_fraction) + 1e-9))


def split_sessions(sessions: Sessions, method: str, test_fraction: float,
                   valid_fraction: float, seed: int, has_timestamps: bool,
                   key: str) -> dict[str, np.ndarray]:
    """Indices (ascending) of the sessions in each split.

    * ``ordered``: the first ``1 − test_fraction`` of sessions in session order train,
      the rest test (the paper's split);
    * ``temporal``: sessions sorted by their last click; the latest ones test;
    * ``random``: a seeded permutation.

    Validation is the tail (in the same ordering) of the training sessions, so it is
    session-disjoint from test and, for ``ordered``/``temporal``, closest to it.
    """
    n = sessions.n_sessions
    if method == "ordered":
        order = np.arange(n)
    elif method == "temporal":
        if not has_timestamps:
            raise ConfigError(f"{key}.split.method",
                              "'temporal' needs timestamps, but the data only has positions")
        order = np.lexsort((np.arange(n), sessions.end))
    elif method == "random":
        order = np.random.default_rng(seed).permutation(n)
    else:
        raise ConfigError(f"{key}.split.method", f"unknown method {method!r}")
    n_train_all = _head_count(n, test_fraction)
    n_train = _head_count(n_train_all, valid_fraction)
    parts = {"train": order[:n_train], "valid": order[n_train:n_train_all],
             "test": order[n_train_all:]}
    for name, idx in parts.items():
        fraction = {"valid": valid_fraction, "test": test_fraction}.get(name)
        if len(idx) == 0 and (fraction is None or fraction > 0):
            raise ConfigError(f"{key}.split", f"the {name} split is empty ({n} sessions, "
                              f"test_fraction {test_fraction}, valid_fraction {valid_fraction})")
    return {name: np.sort(idx) for name, idx in parts.items()}


def make_samples(sessions: Sessions, session_idx: np.ndarray, mode: str,
                 first_sample_id: int) -> pa.Table:
    """Samples of the given sessions as a table (sample_id, session_id, items, target).

    ``prefix``: every prefix — input ``seq[:k]``, target ``seq[k]`` for k = 1..len−1;
    ``last``: one sample per session — input ``seq[:-1]``, target ``seq[-1]``.
    Built without a Python loop over sessions: the list column is assembled from
    offsets into the flat item array.
    """
    starts = sessions.offsets[session_idx]
    lengths = sessions.lengths[session_idx]
    if mode == "prefix":
        per_session = lengths - 1
        sess = np.repeat(session_idx, per_session)
        sess_start = np.repeat(starts, per_session)
        # k runs 1..len-1 within each session
        first_of_session = np.repeat(np.cumsum(per_session) - per_session, per_session)
        k = np.arange(len(sess)) - first_of_session + 1
    elif mode == "last":
        sess, sess_start, k = session_idx, starts, lengths - 1
    else:
        raise InvalidInputError(f"unknown sample mode {mode!r}; use prefix or last")
    k = k.astype(np.int64)
    list_offsets = np.concatenate([[0], np.cumsum(k)]).astype(np.int64)
    if list_offsets[-1] >= 2**31:
        raise InvalidInputError(f"{list_offsets[-1]} input items exceed a list<int64> column's "
                                "2^31 limit: use 'last' samples or shorter sessions")
    within = np.arange(list_offsets[-1]) - np.repeat(list_offsets[:-1], k)
    flat = np.repeat(sess_start, k) + within
    values = sessions.items[flat].astype(np.int64)
    targets = sessions.items[sess_start + k].astype(np.int64)
    n = len(sess)
    return pa.table({
        "sample_id": pa.array(np.arange(first_sample_id, first_sample_id + n, dtype=np.int64)),
        "session_id": pa.array(sess.astype(np.int64)),
        "items": pa.ListArray.from_arrays(pa.array(list_offsets.astype(np.int32)),
                                          pa.array(values)),
        "target": pa.array(targets),
    })
