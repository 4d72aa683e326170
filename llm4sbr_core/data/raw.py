"""The canonical in-memory form every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

TimeKind = Literal["timestamp", "position"]


@dataclass
class RawData:
    """Interactions and item texts read from one dataset's raw files.

    ``interactions`` has one row per click with columns ``user`` (str), ``item`` (str, the
    raw item id), ``time`` (float64: seconds since the epoch, or a per-user position) and
    ``line`` (int64: the line in the interactions file, used as the tie-breaker that keeps
    the file's order among equal times). ``item_text`` maps raw item ids to their text;
    ids absent from it have no text. User and item ids are stripped and in Unicode NFC.
    ``skipped_lines`` counts, per file, the physical lines left out as malformed
    (``on_bad_line: skip``); ``line_counts`` the data lines (after any header) read.
    """

    interactions: pd.DataFrame
    item_text: dict[str, str]
    time_kind: TimeKind
    files: list[str]
    skipped_lines: dict[str, int] = field(default_factory=dict)
    dropped_duplicates: int = 0
    line_counts: dict[str, int] = field(default_factory=dict)
