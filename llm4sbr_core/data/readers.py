"""Readers for the raw formats a dataset can come in, selected by its ``format`` setting.

* ``amazon``: Amazon review data (2014) — reviews as JSON lines (reviewerID, asin,
  unixReviewTime) and metadata as Python-literal dict lines (asin, title), parsed with
  :func:`ast.literal_eval`, never ``eval``.
* ``csv``: generic CSV — interactions (user, item, timestamp or position) and items
  (item id and text columns). This is how users bring their own data.
* ``movielens``: GroupLens ``::``-separated ``ratings.dat`` / ``movies.dat`` (latin-1).
* ``recbole``: RecBole atomic files, ``.inter`` / ``.item`` with ``name:type`` headers.

Every reader returns a :class:`~llm4sbr_core.data.raw.RawData`. A malformed line raises
:class:`~llm4sbr_core.errors.DataFormatError` naming the file and line, unless the
dataset's ``on_bad_line`` is ``skip``: then it is counted, logged and left out.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import re
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataFormatError, InvalidInputError
from .raw import RawData
from .textio import iter_lines

log = logging.getLogger(__name__)

RECBOLE_TYPES = {"token", "token_seq", "float", "float_seq"}


class _BadLines:
    """Applies the ``on_bad_line`` policy and counts what was skipped per file."""

    def __init__(self, policy: str, key: str):
        if policy not in ("error", "skip"):
            raise ConfigError(f"{key}.on_bad_line", f"must be 'error' or 'skip', got {policy!r}")
        self.policy = policy
        self.counts: dict[str, int] = {}

    def __call__(self, path: Path, line: int, message: str) -> None:
        if self.policy == "error":
            raise DataFormatError(path, line, message)
        n = self.counts.get(str(path), 0) + 1
        self.counts[str(path)] = n
        if n <= 5:
            log.warning("skipping %s:%d: %s", path, line, message)
        elif n == 6:
            log.warning("skipping more bad lines in %s (counted in stats.json)", path)


def _parse_time(value: str) -> float:
    t = float(value)
    if not np.isfinite(t):
        raise InvalidInputError(f"time {value!r} is not a finite number")
    return t


def _interactions_frame(users: list[str], items: list[str], times: list[float],
                        lines: list[int]) -> pd.DataFrame:
    return pd.DataFrame({
        "user": pd.Series(users, dtype=object),
        "item": pd.Series(items, dtype=object),
        "time": np.asarray(times, dtype=np.float64),
        "line": np.asarray(lines, dtype=np.int64),
    })


# ---------------------------------------------------------------- item text templates
def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")


def render_text(template: str, fields: dict[str, str]) -> str:
    """Fill ``template``; an item whose referenced fields are all empty has no text.

    An empty field leaves no empty brackets behind: ``"{title} ({year})"`` with no year
    gives ``"Babe"``, not ``"Babe ()"``.
    """
    names = template_fields(template)
    if not any(fields.get(n, "").strip() for n in names):
        return ""
    text = template.format_map({n: fields.get(n, "").strip() for n in names})
    return " ".join(_EMPTY_BRACKETS.sub("", text).split())


def _check_template(template: str, available: list[str], key: str, path: Path) -> None:
    missing = [n for n in template_fields(template) if n not in available]
    if missing:
        raise ConfigError(f"{key}.text_template",
                          f"field(s) {missing} are not columns of {path} (it has {available})")


class _ItemTexts:
    """Collects item texts, rejecting an id that appears twice with different texts."""

    def __init__(self) -> None:
        self.text: dict[str, str] = {}
        self.line: dict[str, int] = {}

    def add(self, path: Path, line: int, item: str, text: str) -> None:
        previous = self.text.get(item)
        if previous is not None and previous != text:
            raise DataFormatError(path, line, f"item id {item!r} already appeared on line "
                                  f"{self.line[item]} with a different text")
        self.text[item] = text
        self.line[item] = line


# ---------------------------------------------------------------- delimited tables
def _iter_delimited(path: Path, encoding: str, delimiter: str, required: list[str],
                    bad: _BadLines, key: str) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """Header and rows (as dicts) of a delimited text file with a header line."""
    lines = (text for _, text in iter_lines(path, encoding))
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataFormatError(path, 1, "file is empty (expected a header line)") from None
    except csv.Error as e:
        raise DataFormatError(path, 1, f"cannot parse header: {e}") from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        hint = ""
        if len(header) == 1:
            found = [d for d in ",;\t|" if d in header[0] and d != delimiter]
            if found:
                hint = (f" — the header has one column containing {found[0]!r}: is the "
                        f"delimiter {found[0]!r} (set '{key}.delimiter')?")
        raise DataFormatError(path, 1, f"missing column(s) {missing}; header is {header}{hint}")

    def rows() -> Iterator[tuple[int, dict]]:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                bad(path, reader.line_num, f"cannot parse CSV: {e}")
                continue
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                bad(path, line, f"expected {len(header)} fields separated by {delimiter!r}, "
                                f"found {len(row)}")
                continue
            yield line, dict(zip(header, row, strict=True))

    return header, rows()


def _collect_interactions(path: Path, rows: Iterator[tuple[int, dict]], user_col: str,
                          item_col: str, time_col: str, bad: _BadLines) -> pd.DataFrame:
    users, items, times, lines = [], [], [], []
    for line, row in rows:
        user, item = row[user_col].strip(), row[item_col].strip()
        if not user or not item:
            bad(path, line, f"empty {user_col!r} or {item_col!r}")
            continue
        try:
            t = _parse_time(row[time_col])
        except ValueError:
            bad(path, line, f"{time_col!r} is not a number: {row[time_col]!r}")
            continue
        users.append(user)
        items.append(item)
        times.append(t)
        lines.append(line)
    return _interactions_frame(users, items, times, lines)


def read_csv_dataset(s: dict[str, Any], raw: Path, key: str) -> RawData:
    """Generic CSV: interactions (user, item, time) and items (item, text columns)."""
    bad = _BadLines(s["on_bad_line"], key)
    cols = s["columns"]
    inter_path, items_path = raw / s["files"]["interactions"], raw / s["files"]["items"]
    _, rows = _iter_delimited(inter_path, s["encoding"], s["delimiter"],
                              [cols["user"], cols["item"], cols["time"]], bad, key)
    inter = _collect_interactions(inter_path, rows, cols["user"], cols["item"], cols["time"], bad)

    header, rows = _iter_delimited(items_path, s["encoding"], s["delimiter"], [cols["item"]],
                                   bad, key)
    _check_template(s["text_template"], header, key, items_path)
    texts = _ItemTexts()
    for line, row in rows:
        item = row[cols["item"]].strip()
        if not item:
            bad(items_path, line, f"empty {cols['item']!r}")
            continue
        texts.add(items_path, line, item, render_text(s["text_template"], row))
    return RawData(inter, texts.text, s["time_kind"], [str(inter_path), str(items_path)],
                   bad.counts)


# ---------------------------------------------------------------- RecBole atomic files
def _recbole_header(path: Path, header: list[str]) -> list[str]:
    names = []
    for col in header:
        name, sep, typ = col.partition(":")
        if not sep or typ not in RECBOLE_TYPES:
            raise DataFormatError(path, 1, f"header field {col!r} is not 'name:type' with type "
                                  f"in {sorted(RECBOLE_TYPES)} — is this a RecBole atomic file?")
        names.append(name)
    return names


def _iter_recbole(path: Path, encoding: str, bad: _BadLines
                  ) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    lines = iter_lines(path, encoding)
    try:
        _, first = next(lines)
    except StopIteration:
        raise DataFormatError(path, 1, "file is empty (expected a header line)") from None
    names = _recbole_header(path, first.rstrip("\r\n").split("\t"))

    def rows() -> Iterator[tuple[int, dict]]:
        for line, text in lines:
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            fields = text.split("\t")
            if len(fields) != len(names):
                bad(path, line, f"expected {len(names)} tab-separated fields, found {len(fields)}")
                continue
            yield line, dict(zip(names, fields, strict=True))

    return names, rows()


def read_recbole_dataset(s: dict[str, Any], raw: Path, key: str) -> RawData:
    """RecBole atomic files: ``.inter`` (user, item, timestamp) and ``.item`` (texts)."""
    bad = _BadLines(s["on_bad_line"], key)
    cols = s["columns"]
    inter_path, items_path = raw / s["files"]["interactions"], raw / s["files"]["items"]
    names, rows = _iter_recbole(inter_path, s["encoding"], bad)
    missing = [c for c in (cols["user"], cols["item"], cols["time"]) if c not in names]
    if missing:
        raise DataFormatError(inter_path, 1, f"missing field(s) {missing}; fields are {names} "
                              f"(set '{key}.columns')")
    inter = _collect_interactions(inter_path, rows, cols["user"], cols["item"], cols["time"], bad)

    names, rows = _iter_recbole(items_path, s["encoding"], bad)
    if cols["item"] not in names:
        raise DataFormatError(items_path, 1, f"missing field {cols['item']!r}; fields are {names}")
    _check_template(s["text_template"], names, key, items_path)
    texts = _ItemTexts()
    for line, row in rows:
        texts.add(items_path, line, row[cols["item"]].strip(),
                  render_text(s["text_template"], row))
    return RawData(inter, texts.text, s["time_kind"], [str(inter_path), str(items_path)],
                   bad.counts)


# ---------------------------------------------------------------- MovieLens .dat
def _iter_dat(path: Path, encoding: str, n_fields: int, bad: _BadLines
              ) -> Iterator[tuple[int, list[str]]]:
    for line, text in iter_lines(path, encoding):
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        fields = text.split("::")
        if len(fields) != n_fields:
            bad(path, line, f"expected {n_fields} '::'-separated fields, found {len(fields)} "
                            "— is this a MovieLens .dat file?")
            continue
        yield line, fields


def read_movielens_dataset(s: dict[str, Any], raw: Path, key: str) -> RawData:
    """MovieLens 1M/10M ``ratings.dat`` (user::item::rating::timestamp) and ``movies.dat``
    (item::title::genres); the item text is ``text_template`` over ``title`` and ``genres``."""
    bad = _BadLines(s["on_bad_line"], key)
    inter_path, items_path = raw / s["files"]["interactions"], raw / s["files"]["items"]
    users, items, times, lines = [], [], [], []
    for line, (user, item, _rating, ts) in _iter_dat(inter_path, s["encoding"], 4, bad):
        try:
            t = _parse_time(ts)
        except ValueError:
            bad(inter_path, line, f"timestamp is not a number: {ts!r}")
            continue
        users.append(user.strip())
        items.append(item.strip())
        times.append(t)
        lines.append(line)
    inter = _interactions_frame(users, items, times, lines)
    _check_template(s["text_template"], ["item", "title", "genres"], key, items_path)
    texts = _ItemTexts()
    for line, (item, title, genres) in _iter_dat(items_path, s["encoding"], 3, bad):
        fields = {"item": item.strip(), "title": title, "genres": genres}
        texts.add(items_path, line, item.strip(), render_text(s["text_template"], fields))
    return RawData(inter, texts.text, s["time_kind"], [str(inter_path), str(items_path)],
                   bad.counts)


# ---------------------------------------------------------------- Amazon 2014
_ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def read_amazon_dataset(s: dict[str, Any], raw: Path, key: str) -> RawData:
    """Amazon review data (2014): 5-core reviews (JSON lines) + metadata (Python literals)."""
    bad = _BadLines(s["on_bad_line"], key)
    inter_path, items_path = raw / s["files"]["interactions"], raw / s["files"]["items"]
    users, items, times, lines = [], [], [], []
    for line, text in iter_lines(inter_path, s["encoding"]):
        if not text.strip():
            continue
        try:
            review = json.loads(text)
            user, item = str(review["reviewerID"]), str(review["asin"])
            t = _parse_time(review["unixReviewTime"])
        except json.JSONDecodeError as e:
            bad(inter_path, line, f"not a JSON object: {e}")
            continue
        except (KeyError, TypeError) as e:
            bad(inter_path, line, f"review lacks reviewerID, asin or unixReviewTime ({e})")
            continue
        except ValueError:
            bad(inter_path, line, "unixReviewTime is not a number")
            continue
        users.append(user)
        items.append(item)
        times.append(t)
        lines.append(line)
    inter = _interactions_frame(users, items, times, lines)

    wanted = set(items)
    texts = _ItemTexts()
    for line, text in iter_lines(items_path, s["encoding"]):
        if not text.strip():
            continue
        # The metadata covers every product of the category; only parse the ones clicked.
        m = _ASIN.search(text)
        if m is not None and m.group(1) not in wanted:
            continue
        try:
            meta = ast.literal_eval(text.strip())
            if not isinstance(meta, dict) or "asin" not in meta:
                raise InvalidInputError("not a dict with an 'asin' key")
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            bad(items_path, line, f"not a Python-literal metadata record: {e}")
            continue
        asin = str(meta["asin"])
        if asin in wanted:
            fields = {k: "" if v is None else str(v) for k, v in meta.items()}
            texts.add(items_path, line, asin, render_text(s["text_template"], fields))
    return RawData(inter, texts.text, s["time_kind"], [str(inter_path), str(items_path)],
                   bad.counts)


READERS: dict[str, Callable[[dict[str, Any], Path, str], RawData]] = {
    "amazon": read_amazon_dataset,
    "csv": read_csv_dataset,
    "movielens": read_movielens_dataset,
    "recbole": read_recbole_dataset,
}


def read_raw(settings: dict[str, Any], folder: str | Path, key: str) -> RawData:
    """Read one dataset's raw files from ``folder`` with the reader its ``format`` names.

    ``key`` is the settings' place in the config (for error messages), e.g.
    ``dataset_settings.ml-100k``. Exact duplicate interactions are dropped or rejected
    according to ``duplicates``.
    """
    fmt = settings["format"]
    if fmt not in READERS:
        raise ConfigError(f"{key}.format", f"unknown format {fmt!r}; known: {sorted(READERS)}")
    data = READERS[fmt](settings, Path(folder), key)
    if data.interactions.empty:
        raise DataFormatError(data.files[0], None, "no interactions could be read")
    data.dropped_duplicates = _handle_duplicates(data, settings["duplicates"], key)
    return data


def _handle_duplicates(data: RawData, policy: str, key: str) -> int:
    inter = data.interactions
    exact = inter.duplicated(["user", "item", "time"], keep="first")
    if data.time_kind == "position":
        # Two different items at the same position of a user make the order ambiguous.
        clash = inter.duplicated(["user", "time"], keep=False) & ~inter.duplicated(
            ["user", "item", "time"], keep=False)
        if clash.any():
            row = inter[clash].iloc[0]
            raise DataFormatError(data.files[0], int(row["line"]),
                                  f"user {row['user']!r} has two items at position {row['time']:g}")
    n = int(exact.sum())
    if n and policy == "error":
        row = inter[exact].iloc[0]
        first = inter[(inter["user"] == row["user"]) & (inter["item"] == row["item"])
                      & (inter["time"] == row["time"])].iloc[0]
        raise DataFormatError(
            data.files[0], int(row["line"]),
            f"duplicate of line {int(first['line'])} (user {row['user']!r}, item {row['item']!r},"
            f" time {row['time']:g}); {n} duplicate row(s) in all — set '{key}.duplicates: drop'"
            " to drop them")
    if n:
        log.warning("dropping %d duplicate interaction row(s) from %s", n, data.files[0])
        data.interactions = inter[~exact].reset_index(drop=True)
    return n
