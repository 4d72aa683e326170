"""Cross-session structure built from the TRAINING sessions only (GCE-GNN, S²-DHCN).

Both models need the full training sessions, not the training *samples*: GCE-GNN's
global graph counts item co-occurrences inside each session (Wang et al., SIGIR 2020),
S²-DHCN makes every session one hyperedge (Xia et al., AAAI 2021).
Counting over samples instead would weight a Beauty session of length n about n/2
times (every prefix of a session is a sample there), so the sessions are rebuilt first:

* the full session is the longest input of a session plus its target (with prefix
  augmentation every prefix of a session is a sample; MovieLens has one sample per
  session, whose input + target *is* the session);
* with session ids (a samples parquet, or a :class:`SampleTensors` carrying a
  ``session_ids`` tensor) the samples are grouped by id: exact;
* without them (today's :class:`SampleTensors`), multiplicities decide. If every sample
  of two or more clicks continues another sample (its input is another sample's
  input + target), the samples are prefix-augmented, and the number of sessions equal
  to a sequence P is (samples whose input + target is P) − (samples whose input is P):
  exact, duplicate sessions and sessions that are strict prefixes of others included.
  Otherwise (one sample per session) every sample's input + target is a session. The
  only ambiguity: last-item samples in which, by chance, every input of two or more
  clicks is another sample's whole session. Sequences are grouped by a 62-bit
  polynomial hash and every match is checked element by element (a collision raises,
  it never merges two sessions).

Build from untruncated samples (``load_samples(path)`` without ``max_len``, or give the
parquet path): truncated inputs lose the head of long sessions and break the prefix
chains. Everything is vectorised over sessions with numpy (loops run over a window
offset or a column, never over sessions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..data.batches import SampleTensors
from ..errors import InvalidInputError, Llm4sbrError

#: two primes below 2³¹: every product of a residue and a power stays below 2⁶²
_PRIMES = (2_147_483_629, 2_147_483_587)
_BASES = (1_000_003, 999_983)


@dataclass
class TrainingSessions:
    """Sessions as one flat click array: session ``s`` is ``items[offsets[s]:offsets[s+1]]``
    (oldest click first)."""

    items: np.ndarray  # int64 [C]
    offsets: np.ndarray  # int64 [S + 1]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def session_of_click(self) -> np.ndarray:
        """int64 [C]: the session each click belongs to."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def as_lists(self) -> list[list[int]]:
        """Python lists (for tests and debugging only)."""
        return [self.items[a:b].tolist() for a, b in zip(self.offsets[:-1], self.offsets[1:],
                                                         strict=True)]


def _rows(flat: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> TrainingSessions:
    """Rows ``index`` of a flat (items, offsets) table, as a new table."""
    sizes = offsets[index + 1] - offsets[index]
    new_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    within = np.arange(new_offsets[-1]) - np.repeat(new_offsets[:-1], sizes)
    return TrainingSessions(flat[np.repeat(offsets[index], sizes) + within], new_offsets)


def _full_sequences(flat_in: np.ndarray, lengths: np.ndarray, targets: np.ndarray
                    ) -> tuple[TrainingSessions, TrainingSessions]:
    """(inputs, inputs + targets) as flat tables, from the inputs' clicks laid end to end."""
    off_in = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    off_full = off_in + np.arange(len(off_in))
    flat_full = np.empty(off_full[-1], dtype=np.int64)
    is_target = np.zeros(off_full[-1], dtype=bool)
    is_target[off_full[1:] - 1] = True
    flat_full[is_target] = targets
    flat_full[~is_target] = flat_in
    return TrainingSessions(flat_in, off_in), TrainingSessions(flat_full, off_full)


def _hash(seqs: TrainingSessions) -> np.ndarray:
    """A 62-bit polynomial hash of each sequence (Σ x_c b^c mod p for two primes < 2³¹)."""
    pos = np.arange(len(seqs.items)) - np.repeat(seqs.offsets[:-1], seqs.lengths)
    out = np.zeros(len(seqs), dtype=np.int64)
    for prime, base in zip(_PRIMES, _BASES, strict=True):
        powers = np.ones(max(int(pos.max(initial=0)) + 1, 1), dtype=np.int64)
        for c in range(1, len(powers)):  # loop over positions, not sessions
            powers[c] = powers[c - 1] * base % prime
        terms = seqs.items % prime * powers[pos] % prime  # each < 2³¹
        sums = np.add.reduceat(terms, seqs.offsets[:-1]) % prime  # rows are non-empty
        out = out * prime + sums
    return out


def _same(a: TrainingSessions, ia: np.ndarray, b: TrainingSessions, ib: np.ndarray
          ) -> np.ndarray:
    """bool per pair: is row ``ia[k]`` of ``a`` element-wise equal to row ``ib[k]`` of ``b``?"""
    n = a.offsets[ia + 1] - a.offsets[ia]
    ok = n == b.offsets[ib + 1] - b.offsets[ib]
    pa, pb, n = ia[ok], ib[ok], n[ok]
    within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    differs = a.items[np.repeat(a.offsets[pa], n) + within] != \
        b.items[np.repeat(b.offsets[pb], n) + within]
    bad = np.bincount(np.repeat(np.arange(len(pa)), n), weights=differs, minlength=len(pa))
    ok[np.flatnonzero(ok)] = bad == 0
    return ok


def _sessions_by_id(inputs: TrainingSessions, full: TrainingSessions,
                    session_ids: np.ndarray) -> TrainingSessions:
    # the longest sample of each session: sort by (session, length), keep each group's last
    order = np.lexsort((inputs.lengths, session_ids))
    sid = session_ids[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sid[1:] != sid[:-1]
    return _rows(full.items, full.offsets, order[last])  # sessions in ascending id order


def _sessions_by_prefix_chain(inputs: TrainingSessions, full: TrainingSessions
                              ) -> TrainingSessions:
    """Sessions without ids. Number of sessions equal to a sequence P = (samples whose
    input + target is P) − (samples whose input is P), when every prefix is a sample."""
    h_full, h_in = _hash(full), _hash(inputs)
    groups, first, group_of, count = np.unique(h_full, return_index=True,
                                               return_inverse=True, return_counts=True)
    if not _same(full, np.arange(len(full)), full, first[group_of]).all():
        raise Llm4sbrError("hash collision between two different training sequences")
    g = np.searchsorted(groups, h_in).clip(max=len(groups) - 1)
    hit = groups[g] == h_in
    idx = np.flatnonzero(hit)
    hit[idx] = _same(inputs, idx, full, first[g[idx]])
    continued = np.bincount(g[hit], minlength=len(groups))
    ends = count - continued
    # prefix layout: every sample of ≥ 2 clicks continues another sample; otherwise
    # (one sample per session, MovieLens) each sample's input + target is a session
    if (hit | (inputs.lengths < 2)).all() and (ends >= 0).all():
        keep = np.argsort(first, kind="stable")  # sessions in order of first sample
        return _rows(full.items, full.offsets, np.repeat(first[keep], ends[keep]))
    return full


def _sessions(flat_in: np.ndarray, lengths: np.ndarray, targets: np.ndarray,
              session_ids: np.ndarray | None) -> TrainingSessions:
    if len(lengths) == 0:
        return TrainingSessions(np.zeros(0, np.int64), np.zeros(1, np.int64))
    if (lengths < 1).any():
        raise InvalidInputError("a sample has an empty input session")
    inputs, full = _full_sequences(flat_in, lengths, targets)
    if session_ids is not None:
        return _sessions_by_id(inputs, full, np.asarray(session_ids, np.int64))
    return _sessions_by_prefix_chain(inputs, full)


def sessions_from_samples(items: np.ndarray, lengths: np.ndarray, targets: np.ndarray,
                          session_ids: np.ndarray | None = None) -> TrainingSessions:
    """Full sessions from right-padded sample inputs [S, L], their lengths and targets
    (and their session ids when known)."""
    items = np.asarray(items, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    mask = np.arange(items.shape[1])[None, :] < lengths[:, None]
    return _sessions(items[mask], lengths, np.asarray(targets, dtype=np.int64), session_ids)


def sessions_from_parquet(path: str | Path) -> TrainingSessions:
    """Full sessions of a samples parquet (sample_id, session_id, items, target), grouped by
    ``session_id``; inputs are never truncated."""
    table = pq.read_table(path, columns=["session_id", "items", "target"])
    lengths = pc.list_value_length(table["items"]).to_numpy().astype(np.int64)
    flat = pc.list_flatten(table["items"]).to_numpy().astype(np.int64)
    return _sessions(flat, lengths, table["target"].to_numpy().astype(np.int64),
                     table["session_id"].to_numpy())


def training_sessions(train: SampleTensors | str | Path) -> TrainingSessions:
    """Full training sessions from a :class:`SampleTensors` or a samples parquet path.

    Uses ``train.session_ids`` when the tensors carry it (exact grouping), else the
    prefix-chain reconstruction described in the module docstring.
    """
    if isinstance(train, (str, Path)):
        return sessions_from_parquet(train)
    session_ids = getattr(train, "session_ids", None)
    return sessions_from_samples(
        train.items.cpu().numpy(), train.lengths.cpu().numpy(), train.targets.cpu().numpy(),
        None if session_ids is None else session_ids.cpu().numpy())


# -- GCE-GNN: ε-neighbourhood co-occurrence graph -------------------------------------------

def cooccurrence_counts(sessions: TrainingSessions, window: int, n_items: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected co-occurrence counts of items at most ``window`` clicks apart in a session.

    Every occurrence counts once in each direction (GCE-GNN's reference counts the same
    way), so a pair seen in two sessions has weight 2. An item next to itself (a repeated
    click) is not its own neighbour. Returns (src, dst, count), sorted by (src, dst).
    """
    items, sess = sessions.items, sessions.session_of_click
    src, dst = [], []
    for d in range(1, window + 1):  # loop over the offset only
        same = sess[:-d] == sess[d:] if len(items) > d else np.zeros(0, bool)
        a, b = items[:-d][same], items[d:][same]
        distinct = a != b
        src += [a[distinct], b[distinct]]
        dst += [b[distinct], a[distinct]]
    if not src:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    keys = np.concatenate(src) * (n_items + 1) + np.concatenate(dst)
    uniq, counts = np.unique(keys, return_counts=True)
    return uniq // (n_items + 1), uniq % (n_items + 1), counts.astype(np.int64)


def top_neighbours(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_items: int,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` heaviest neighbours: (neighbours int64 [N+1, k] with 0 = none,
    weights float32 [N+1, k]), heaviest first; ties go to the smaller item id so the
    result is deterministic (the reference samples at random instead)."""
    order = np.lexsort((dst, -weight, src))
    src, dst, weight = src[order], dst[order], weight[order]
    starts = np.searchsorted(src, src, side="left")
    rank = np.arange(len(src)) - starts
    keep = rank < k
    neighbours = np.zeros((n_items + 1, k), dtype=np.int64)
    weights = np.zeros((n_items + 1, k), dtype=np.float32)
    neighbours[src[keep], rank[keep]] = dst[keep]
    weights[src[keep], rank[keep]] = weight[keep]
    return neighbours, weights


# -- S²-DHCN: item × session incidence -------------------------------------------------------

def session_incidence(sessions: TrainingSessions, n_items: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Non-zeros of the binary incidence matrix H (items × sessions): (item, session) pairs,
    each once however often the item repeats in the session, sorted by (item, session)."""
    keys = sessions.session_of_click * (n_items + 1) + sessions.items
    uniq = np.unique(keys)
    item, session = uniq % (n_items + 1), uniq // (n_items + 1)
    order = np.lexsort((session, item))
    return item[order], session[order]


__all__ = ["TrainingSessions", "cooccurrence_counts", "session_incidence",
           "sessions_from_parquet", "sessions_from_samples", "top_neighbours",
           "training_sessions"]
