"""Sessionization, filtering and item re-indexing.

Sessions are held as a flat item array plus offsets (session ``s`` is
``items[offsets[s]:offsets[s + 1]]``): compact, and every step below is vectorised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError, EmptyDatasetError, InvalidInputError
from .raw import RawData

log = logging.getLogger(__name__)


@dataclass
class Sessions:
    """Sessions in session order. ``items`` holds raw ids (object) or item ids (int64)."""

    offsets: np.ndarray  # int64 [S + 1]
    items: np.ndarray  # [clicks]
    start: np.ndarray  # float64 [S], time of the first click
    end: np.ndarray  # float64 [S], time of the last click
    user: np.ndarray  # object [S], the user each session belongs to

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def session_index(self) -> np.ndarray:
        """Session number of every click."""
        return np.repeat(np.arange(self.n_sessions), self.lengths)

    def select(self, keep: np.ndarray) -> Sessions:
        """The sessions where the boolean mask ``keep`` is true, in the same order."""
        click_keep = np.repeat(keep, self.lengths)
        lengths = self.lengths[keep]
        return Sessions(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                        self.items[click_keep], self.start[keep], self.end[keep],
                        self.user[keep])


def _user_order(users: pd.Series, lines: pd.Series, order: str) -> pd.Series:
    """A sort key per click that orders users as ``session_order`` asks."""
    if order == "first_seen":
        first = lines.groupby(users).transform("min")
        return first
    numeric = pd.to_numeric(users, errors="coerce")
    if numeric.notna().all() and (numeric == np.floor(numeric)).all():
        return numeric  # integer ids sort as numbers, not as strings ("10" after "9")
    return users


def sessionize(raw: RawData, method: str, minutes: float, order: str, key: str) -> Sessions:
    """Group clicks into sessions.

    * ``user``: one session per user, clicks in time order;
    * ``time_bucket``: one session per user and fixed clock bucket of ``minutes``
      (``floor(t / 60·minutes)``): what the reference preprocessing of MovieLens does;
    * ``time_gap``: a new session whenever a user is inactive for more than ``minutes``.

    Within a session, clicks keep file order among equal times. Sessions are ordered by
    ``order``: ``key`` (user id — numerically when all ids are integers — then start
    time), ``first_seen`` (user's first line in the file, then start time) or
    ``start_time`` (first click time, then user id).
    """
    if method != "user" and raw.time_kind != "timestamp":
        raise ConfigError(f"{key}.sessionize.method",
                          f"{method!r} needs timestamps, but the data only has positions")
    df = raw.interactions
    df = df.assign(user_key=_user_order(df["user"], df["line"], order))
    df = df.sort_values(["user_key", "user", "time", "line"], kind="stable")
    if method == "user":
        new = df["user"].ne(df["user"].shift())
    elif method == "time_bucket":
        bucket = np.floor(df["time"].to_numpy() / (60.0 * minutes))
        new = df["user"].ne(df["user"].shift()) | pd.Series(bucket, index=df.index).ne(
            pd.Series(bucket, index=df.index).shift())
    elif method == "time_gap":
        gap = df["time"].diff().to_numpy()
        new = df["user"].ne(df["user"].shift()) | pd.Series(gap > 60.0 * minutes, index=df.index)
    else:
        raise ConfigError(f"{key}.sessionize.method", f"unknown method {method!r}")
    session = new.to_numpy().cumsum() - 1
    df = df.assign(session=session)
    agg = df.groupby("session", sort=True).agg(start=("time", "min"), end=("time", "max"),
                                               user=("user", "first"),
                                               user_key=("user_key", "first"))
    if order == "start_time":
        # Re-rank sessions by first click time; the click order inside each is kept.
        rank = agg.sort_values(["start", "user_key", "user"], kind="stable").index.to_numpy()
        position = np.empty_like(rank)
        position[rank] = np.arange(len(rank))
        df = df.assign(session=position[df["session"].to_numpy()])
        df = df.sort_values(["session", "time", "line"], kind="stable")
        agg = agg.iloc[rank]
    lengths = np.bincount(df["session"].to_numpy(), minlength=len(agg))
    return Sessions(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                    df["item"].to_numpy(dtype=object), agg["start"].to_numpy(np.float64),
                    agg["end"].to_numpy(np.float64), agg["user"].to_numpy(dtype=object))


@dataclass
class FilterReport:
    sessions_before: int
    clicks_before: int
    sessions_too_short: int
    sessions_with_rare_items: int
    rare_items_removed: int


def filter_sessions(sessions: Sessions, min_session_length: int, min_item_count: int,
                    rare_items: str, key: str | None = None) -> tuple[Sessions, FilterReport]:
    """Drop short sessions and rare items, one pass, item counts over ALL sessions.

    ``rare_items = drop_session`` (the reference preprocessing; reproduces Table 2) drops
    every session that contains an item clicked fewer than ``min_item_count`` times or
    has fewer than ``min_session_length`` clicks. ``drop_item`` (SR-GNN's preprocessing)
    removes the rare clicks from their sessions, then drops sessions that became short.
    ``key`` (the dataset's settings, e.g. ``dataset_settings.beauty``) is named in the
    error when nothing is left.
    """
    counts = pd.Series(sessions.items).value_counts()
    rare_click = (pd.Series(sessions.items).map(counts) < min_item_count).to_numpy()
    too_short = sessions.lengths < min_session_length
    if rare_items == "drop_session":
        has_rare = np.bincount(sessions.session_index(), weights=rare_click,
                               minlength=sessions.n_sessions) > 0
        kept = sessions.select(~too_short & ~has_rare)
        n_rare_sessions = int((has_rare & ~too_short).sum())
    elif rare_items == "drop_item":
        lengths = np.bincount(sessions.session_index()[~rare_click],
                              minlength=sessions.n_sessions)
        stripped = Sessions(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                            sessions.items[~rare_click], sessions.start, sessions.end,
                            sessions.user)
        now_short = lengths < min_session_length
        kept = stripped.select(~too_short & ~now_short)
        n_rare_sessions = int((now_short & ~too_short).sum())
    else:
        raise InvalidInputError(f"unknown rare_items policy {rare_items!r}; use drop_session "
                                "or drop_item")
    report = FilterReport(sessions.n_sessions, len(sessions.items), int(too_short.sum()),
                          n_rare_sessions, int((counts < min_item_count).sum()))
    if kept.n_sessions == 0:
        where = f" (see '{key}.filter')" if key else ""
        raise EmptyDatasetError(
            f"no session is left after filtering{where}: {report.sessions_before} sessions, "
            f"{report.sessions_too_short} shorter than {min_session_length}, "
            f"{report.sessions_with_rare_items} more dropped for items clicked fewer than "
            f"{min_item_count} times")
    return kept, report


def reindex_items(sessions: Sessions) -> tuple[Sessions, np.ndarray]:
    """Map raw item ids to 1..N in order of first appearance (0 is padding).

    Returns the re-indexed sessions and ``raw_ids`` with ``raw_ids[i - 1]`` the raw id of
    item ``i``.
    """
    codes, raw_ids = pd.factorize(pd.Series(sessions.items), sort=False)
    items = codes.astype(np.int64) + 1
    return (Sessions(sessions.offsets, items, sessions.start, sessions.end, sessions.user),
            np.asarray(raw_ids, dtype=object))
