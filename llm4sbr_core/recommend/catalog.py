"""A dataset's item table for people: titles by id, and ids from what a user types.

A user names an item by its id (the ``item_id`` of ``items.parquet``, the number shown in
prompts and in every output) or by its title. Titles are matched exactly, then ignoring
case; anything else is an error that lists the closest titles with their ids. The
catalogue never guesses: a wrong item would silently explain another session.

Explicit prefixes settle the rare clash of a numeric title and an id: ``id:12``,
``raw:1234`` (the dataset's own raw id) and ``title:1984``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UnknownNameError

#: How many close titles an error lists.
SUGGESTIONS = 5


class ItemNotFoundError(UnknownNameError):
    """No item has this id or title (or several share the title); the message lists the
    candidates."""


def _normal(text: str) -> str:
    """Whitespace folded to single spaces (item texts are stored as the data stage wrote
    them; prompts and the encoder see them with whitespace folded the same way)."""
    return " ".join(str(text).split())


class ItemCatalog:
    """The item table of one dataset (ids 1..N; 0 is padding)."""

    def __init__(self, items: pd.DataFrame, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        self.frame = items.sort_values("item_id", kind="stable").reset_index(drop=True)
        self.ids = self.frame["item_id"].to_numpy(dtype=np.int64)
        self.titles = [_normal(t) for t in self.frame["text"].fillna("")]
        self.raw_ids = [str(r) for r in self.frame["raw_id"]]
        self._title_of = dict(zip(self.ids.tolist(), self.titles, strict=True))
        self._by_title: dict[str, list[int]] = {}
        self._by_folded: dict[str, list[int]] = {}
        for item_id, title in zip(self.ids.tolist(), self.titles, strict=True):
            if title:
                self._by_title.setdefault(title, []).append(item_id)
                self._by_folded.setdefault(title.casefold(), []).append(item_id)
        self._by_raw = dict(zip(self.raw_ids, self.ids.tolist(), strict=True))

    @classmethod
    def read(cls, path: str | Path) -> ItemCatalog:
        """The catalogue of an ``items.parquet`` (``layout.ITEMS_FILE``)."""
        import pyarrow.parquet as pq

        # has_text (where the data stage wrote it) decides the localization candidates
        columns = [c for c in ("item_id", "raw_id", "text", "has_text")
                   if c in pq.read_schema(path).names]
        return cls(pd.read_parquet(path, columns=columns), path)

    @property
    def n_items(self) -> int:
        """N: the largest item id."""
        return int(self.ids.max()) if len(self.ids) else 0

    def title(self, item_id: int) -> str:
        """The item's text as prompts show it, or ``item <raw id>`` when it has none."""
        title = self._title_of.get(int(item_id))
        if title is None:
            raise ItemNotFoundError(f"no item with id {item_id} (ids are 1..{self.n_items})")
        if not title:
            return f"item {self.raw_ids[int(np.searchsorted(self.ids, int(item_id)))]}"
        return title

    def titles_of(self, item_ids: Iterable[int]) -> list[str]:
        return [self.title(i) for i in item_ids]

    def resolve(self, token: str | int) -> int:
        """The item id a user's ``token`` names (see the module docstring)."""
        if isinstance(token, int | np.integer) and not isinstance(token, bool):
            return self._by_id(int(token), str(token))
        text = _normal(str(token))
        kind, _, rest = text.partition(":")
        if rest and kind in ("id", "raw", "title"):
            if kind == "id":
                if not rest.strip().isdigit():
                    raise ItemNotFoundError(f"{token!r}: an id is a whole number")
                return self._by_id(int(rest), token)
            if kind == "raw":
                if rest.strip() not in self._by_raw:
                    raise ItemNotFoundError(f"no item has the raw id {rest.strip()!r}")
                return self._by_raw[rest.strip()]
            return self._by_text(rest.strip(), token)
        if text.isdigit():
            return self._by_id(int(text), token)
        return self._by_text(text, token)

    def resolve_all(self, tokens: Sequence[str | int]) -> list[int]:
        """Item ids of a whole session, in click order; an empty session is an error."""
        if not len(tokens):
            raise ItemNotFoundError("a session needs at least one item")
        return [self.resolve(t) for t in tokens]

    def _by_id(self, item_id: int, token: object) -> int:
        if item_id not in self._title_of:
            raise ItemNotFoundError(f"{token!r}: no item with id {item_id} (ids are "
                                    f"1..{self.n_items}; write title:{token} for a title)")
        return item_id

    def _by_text(self, title: str, token: object) -> int:
        for table, key in ((self._by_title, title), (self._by_folded, title.casefold())):
            found = table.get(key)
            if found and len(found) == 1:
                return found[0]
            if found:
                listed = "; ".join(f"{i} {self.title(i)!r}" for i in found[:SUGGESTIONS])
                raise ItemNotFoundError(f"{token!r}: {len(found)} items have this title "
                                        f"({listed}); name one by its id")
        suggestions = self.closest(title)
        hint = ("; closest titles: " + "; ".join(f"{i} {t!r}" for i, t in suggestions)
                if suggestions else "")
        raise ItemNotFoundError(f"{token!r}: no item has this title (titles match exactly, "
                                f"then ignoring case){hint}. Pass one of them, or its id")

    def closest(self, title: str, n: int = SUGGESTIONS) -> list[tuple[int, str]]:
        """Up to ``n`` (id, title) pairs most like ``title``: titles that contain it
        first (shortest first), then difflib's closest matches of the whole title."""
        folded = title.casefold()
        keys = list(self._by_folded)
        containing = sorted((k for k in keys if folded in k), key=len)[:n]
        close = difflib.get_close_matches(folded, keys, n=n, cutoff=0.4)
        ordered = list(dict.fromkeys(containing + close))[:n]
        return [(self._by_folded[k][0], self.title(self._by_folded[k][0])) for k in ordered]
