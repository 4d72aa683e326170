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
dataset's ``on_bad_line`` is ``skip``: then it is counted, logged and left out. Every
physical line a broken record takes with it is counted, and a file of which more than
``max_skipped_fraction`` of the lines were skipped stops the read all the same.

Interaction records are one line each: a quote that opens on a line of an interactions
file must close on it, so one stray ``"`` costs one line, not the rest of the file. Item
files may quote fields over several lines (descriptions); a quote that never closes is
reported at the line where it opened.

User and item ids are compared as Unicode NFC strings (``"Caf\u00e9"`` written with a
combining accent is the same id as with a precomposed one); an id with a NUL byte is a
malformed line.
"""

from __future__ import annotations

import ast
import codecs
import csv
import json
import logging
import re
import string
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataFormatError, InvalidInputError
from ..io import path_problem
from .raw import RawData
from .textio import iter_lines

log = logging.getLogger(__name__)

RECBOLE_TYPES = {"token", "token_seq", "float", "float_seq"}


#: Defaults of the two thresholds, for settings recorded before the keys existed.
MAX_SKIPPED_FRACTION = 0.01
#: Timestamps at or above this are not seconds since the epoch (it is the year 5138)
#: but most likely milliseconds (1973 onwards).
MILLISECONDS_FROM = 1e11
#: A span of timestamps longer than this (seconds) is not one dataset's collection period.
MAX_PLAUSIBLE_SPAN = 50 * 365.25 * 86400


class _BadLines:
    """Applies the ``on_bad_line`` policy, counts the physical lines skipped per file and
    stops a file of which more than ``max_skipped_fraction`` was skipped."""

    def __init__(self, s: dict[str, Any], key: str):
        policy = s["on_bad_line"]
        if policy not in ("error", "skip"):
            raise ConfigError(f"{key}.on_bad_line", f"must be 'error' or 'skip', got {policy!r}")
        self.policy = policy
        self.key = key
        self.max_fraction = float(s.get("max_skipped_fraction", MAX_SKIPPED_FRACTION))
        self.counts: dict[str, int] = {}
        self.lines: dict[str, int] = {}  # data lines (after any header) read per file
        self.first: dict[str, tuple[int, str]] = {}
        self.reported: dict[str, int] = {}

    def __call__(self, path: Path, line: int, message: str, lines: int = 1) -> None:
        """A bad record starting on ``line`` that spans ``lines`` physical lines."""
        if self.policy == "error":
            raise DataFormatError(path, line, message)
        name = str(path)
        self.counts[name] = self.counts.get(name, 0) + lines
        self.first.setdefault(name, (line, message))
        n = self.reported[name] = self.reported.get(name, 0) + 1
        if n <= 5:
            log.warning("skipping %s:%d: %s", path, line, message)
        elif n == 6:
            log.warning("skipping more bad lines in %s (counted in stats.json)", path)

    def track(self, path: Path, lines: Iterator[tuple[int, str]], header: int = 0
              ) -> Iterator[tuple[int, str]]:
        """``lines`` passed through, counting the data lines of ``path``."""
        name = str(path)
        self.lines[name] = 0
        for lineno, text in lines:
            self.lines[name] = lineno - header
            yield lineno, text

    def finish(self, path: Path) -> None:
        """After the whole of ``path`` was read: log its skips, stop if too many."""
        name = str(path)
        n = self.counts.get(name, 0)
        if not n:
            return
        total = max(self.lines.get(name, 0), n)
        line, message = self.first[name]
        log.warning("skipped %d of %d line(s) of %s (%.2f %%) as malformed", n, total, path,
                    100.0 * n / total)
        if n > self.max_fraction * total:
            raise DataFormatError(
                path, line,
                f"{n} of {total} lines ({100.0 * n / total:.1f} %) were skipped as malformed, "
                f"more than '{self.key}.max_skipped_fraction' ({100.0 * self.max_fraction:g} %)"
                f" allows; the first bad line: {message}")


def _clean_id(value: str) -> str | None:
    """``value`` stripped and in Unicode NFC; None if it holds a NUL byte."""
    value = value.strip()
    if "\x00" in value:
        return None
    return value if value.isascii() else unicodedata.normalize("NFC", value)


def _nul_message(what: str, value: str) -> str:
    return (f"{what} {value!r} contains a NUL byte (is the file binary, or UTF-16 read as "
            "a single-byte encoding?)")


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
_UNCLOSED = "unexpected end of data"  # csv's message for a quote open at the end of input
_STRAY = "a stray '\"'?"


def _parse_line(text: str, delimiter: str) -> list[str]:
    """The fields of one physical line; csv.Error if a quote does not close on it."""
    if '"' not in text:
        stripped = text.rstrip("\r\n")
        if "\r" not in stripped:
            return stripped.split(delimiter) if stripped else []
    return next(csv.reader([text], delimiter=delimiter, strict=True), [])


def _records_one_per_line(path: Path, lines: Iterator[tuple[int, str]], delimiter: str,
                          bad: _BadLines) -> Iterator[tuple[int, int, list[str]]]:
    """``(line, 1, fields)`` per physical line: a quote must close on its line."""
    for lineno, text in lines:
        try:
            yield lineno, 1, _parse_line(text, delimiter)
        except csv.Error as e:
            if _UNCLOSED in str(e):
                bad(path, lineno, f"a quoted field opens on this line and does not close on it "
                    f"({_STRAY}); interaction records cannot span lines")
            else:
                bad(path, lineno, f"cannot parse CSV: {e}")


def _records_multiline(path: Path, lines: Iterator[tuple[int, str]], delimiter: str,
                       bad: _BadLines) -> Iterator[tuple[int, int, list[str]]]:
    """``(first line, physical lines, fields)`` of records that may quote fields over
    several lines. ``lines`` starts at line 2 (after the header)."""
    reader = csv.reader((text for _, text in lines), delimiter=delimiter, strict=True)
    while True:
        start = reader.line_num + 2
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            end = max(reader.line_num + 1, start)
            if _UNCLOSED in str(e):
                bad(path, start, "a quoted field opens on this line and is not closed before "
                    f"the end of the file (line {end}; {_STRAY})", lines=end - start + 1)
            elif end > start:
                bad(path, start, f"a quoted field opens on this line and breaks on line {end} "
                    f"({e}; {_STRAY})", lines=end - start + 1)
            else:
                bad(path, start, f"cannot parse CSV: {e}")
            continue
        yield start, reader.line_num + 2 - start, row


def _iter_delimited(path: Path, encoding: str, delimiter: str, required: list[str],
                    bad: _BadLines, key: str, multiline: bool
                    ) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """Header and rows (as dicts, with their first line) of a delimited text file with a
    header line. Fields quoted over several lines are accepted only when ``multiline``."""
    lines = bad.track(path, iter_lines(path, encoding), header=1)
    try:
        _, first = next(lines)
    except StopIteration:
        raise DataFormatError(path, 1, "file is empty (expected a header line)") from None
    try:
        header = _parse_line(first, delimiter)
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
    records = (_records_multiline if multiline else _records_one_per_line)(
        path, lines, delimiter, bad)

    def rows() -> Iterator[tuple[int, dict]]:
        for line, span, row in records:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                where = f" (a record over lines {line}-{line + span - 1}: {_STRAY})" \
                    if span > 1 else ""
                bad(path, line, f"expected {len(header)} fields separated by {delimiter!r}, "
                                f"found {len(row)}{where}", lines=span)
                continue
            yield line, dict(zip(header, row, strict=True))
        bad.finish(path)

    return header, rows()


def _collect_interactions(path: Path, rows: Iterator[tuple[int, dict]], user_col: str,
                          item_col: str, time_col: str, bad: _BadLines) -> pd.DataFrame:
    users, items, times, lines = [], [], [], []
    for line, row in rows:
        user, item = _clean_id(row[user_col]), _clean_id(row[item_col])
        if user is None or item is None:
            which = user_col if user is None else item_col
            bad(path, line, _nul_message(repr(which), row[which].strip()))
            continue
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
    bad = _BadLines(s, key)
    cols = s["columns"]
    inter_path, items_path = raw / s["files"]["interactions"], raw / s["files"]["items"]
    _, rows = _iter_delimited(inter_path, s["encoding"], s["delimiter"],
                              [cols["user"], cols["item"], cols["time"]], bad, key,
                              multiline=False)
    inter = _collect_interactions(inter_path, rows, cols["user"], cols["item"], cols["time"], bad)

    header, rows = _iter_delimited(items_path, s["encoding"], s["delimiter"], [cols["item"]],
                                   bad, key, multiline=True)
    _check_template(s["text_template"], header, key, items_path)
    texts = _ItemTexts()
    for line, row in rows:
        item = _clean_id(row[cols["item"]])
        if item is None:
            bad(items_path, line, _nul_message(repr(cols["item"]), row[cols["item"]].strip()))
            continue
        if not item:
            bad(items_path, line, f"empty {cols['item']!r}")
            continue
        texts.add(items_path, line, item, render_text(s["text_template"], row))
    return _raw_data(s, inter, texts, [inter_path, items_path], bad)


def _raw_data(s: dict[str, Any], inter: pd.DataFrame, texts: _ItemTexts, paths: list[Path],
              bad: _BadLines) -> RawData:
    return RawData(inter, texts.text, s["time_kind"], [str(p) for p in paths], bad.counts,
                   line_counts=dict(bad.lines))


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
    lines = bad.track(path, iter_lines(path, encoding), header=1)
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
        bad.finish(path)

    return names, rows()


def read_recbole_dataset(s: dict[str, Any], raw: Path, key: str) -> RawData:
    """RecBole atomic files: ``.inter`` (user, item, timestamp) and ``.item`` (texts)."""
    bad = _BadLines(s, key)
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
        item = _clean_id(row[cols["item"]])
        if item is None:
            bad(items_path, line, _nul_message(repr(cols["item"]), row[cols["item"]].strip()))
            continue
        texts.add(items_path, line, item, render_text(s["text_template"], row))
    return _raw_data(s, inter, texts, [inter_path, items_path], bad)


# ---------------------------------------------------------------- MovieLens .dat
def _iter_dat(path: Path, encoding: str, n_fields: int, bad: _BadLines
              ) -> Iterator[tuple[int, list[str]]]:
    for line, text in bad.track(path, iter_lines(path, encoding)):
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        fields = text.split("::")
        if len(fields) != n_fields:
            bad(path, line, f"expected {n_fields} '::'-separated fields, found {len(fields)} "
                            "— is this a MovieLens .dat file?")
            continue
        yield line, fields
    bad.finish(path)


def read_movielens_dataset(s: dict[str, Any], raw: Path, key: str) -> RawData:
    """MovieLens 1M/10M ``ratings.dat`` (user::item::rating::timestamp) and ``movies.dat``
    (item::title::genres); the item text is ``text_template`` over ``title`` and ``genres``."""
    bad = _BadLines(s, key)
    inter_path, items_path = raw / s["files"]["interactions"], raw / s["files"]["items"]
    users, items, times, lines = [], [], [], []
    for line, (raw_user, raw_item, _rating, ts) in _iter_dat(inter_path, s["encoding"], 4, bad):
        user, item = _clean_id(raw_user), _clean_id(raw_item)
        if user is None or item is None:
            bad(inter_path, line, _nul_message("user" if user is None else "item",
                                               (raw_user if user is None else raw_item).strip()))
            continue
        try:
            t = _parse_time(ts)
        except ValueError:
            bad(inter_path, line, f"timestamp is not a number: {ts!r}")
            continue
        users.append(user)
        items.append(item)
        times.append(t)
        lines.append(line)
    inter = _interactions_frame(users, items, times, lines)
    _check_template(s["text_template"], ["item", "title", "genres"], key, items_path)
    texts = _ItemTexts()
    for line, (raw_item, title, genres) in _iter_dat(items_path, s["encoding"], 3, bad):
        item = _clean_id(raw_item)
        if item is None:
            bad(items_path, line, _nul_message("item", raw_item.strip()))
            continue
        fields = {"item": item, "title": title, "genres": genres}
        texts.add(items_path, line, item, render_text(s["text_template"], fields))
    return _raw_data(s, inter, texts, [inter_path, items_path], bad)


# ---------------------------------------------------------------- Amazon 2014
_ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def read_amazon_dataset(s: dict[str, Any], raw: Path, key: str) -> RawData:
    """Amazon review data (2014): 5-core reviews (JSON lines) + metadata (Python literals)."""
    bad = _BadLines(s, key)
    inter_path, items_path = raw / s["files"]["interactions"], raw / s["files"]["items"]
    users, items, times, lines = [], [], [], []
    for line, text in bad.track(inter_path, iter_lines(inter_path, s["encoding"])):
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
        user_id, item_id = _clean_id(user), _clean_id(item)
        if user_id is None or item_id is None:
            bad(inter_path, line, _nul_message("reviewerID" if user_id is None else "asin",
                                               user if user_id is None else item))
            continue
        users.append(user_id)
        items.append(item_id)
        times.append(t)
        lines.append(line)
    bad.finish(inter_path)
    inter = _interactions_frame(users, items, times, lines)

    wanted = set(items)
    texts = _ItemTexts()
    for line, text in bad.track(items_path, iter_lines(items_path, s["encoding"])):
        if not text.strip():
            continue
        # The metadata covers every product of the category; only parse the ones clicked.
        m = _ASIN.search(text)
        if m is not None and _clean_id(m.group(1)) not in wanted:
            continue
        try:
            meta = ast.literal_eval(text.strip())
            if not isinstance(meta, dict) or "asin" not in meta:
                raise InvalidInputError("not a dict with an 'asin' key")
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            bad(items_path, line, f"not a Python-literal metadata record: {e}")
            continue
        asin = _clean_id(str(meta["asin"]))
        if asin is None:
            bad(items_path, line, _nul_message("asin", str(meta["asin"])))
            continue
        if asin in wanted:
            fields = {k: "" if v is None else str(v) for k, v in meta.items()}
            texts.add(items_path, line, asin, render_text(s["text_template"], fields))
    bad.finish(items_path)
    return _raw_data(s, inter, texts, [inter_path, items_path], bad)


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
    try:
        codecs.lookup(settings["encoding"])
    except LookupError:
        raise ConfigError(f"{key}.encoding", f"unknown text encoding {settings['encoding']!r}"
                          ) from None
    check_raw_paths(settings, folder, key)
    data = READERS[fmt](settings, Path(folder), key)
    if data.interactions.empty:
        raise DataFormatError(data.files[0], None, "no interactions could be read")
    if data.time_kind == "timestamp":
        check_time_scale(data.interactions, data.files[0])
    data.dropped_duplicates = _handle_duplicates(data, settings["duplicates"], key)
    return data


def check_raw_paths(settings: dict[str, Any], folder: str | Path, key: str) -> None:
    """Stop before reading when the raw folder or one of the dataset's files exists but
    cannot be read: a symbolic link loop or a link to nothing, a folder where a file
    belongs (or a file where the folder belongs), no permission. The error names the path
    and the config key that leads to it; a file that is simply missing is reported by the
    reader ("file not found")."""
    folder = Path(folder)
    problem = path_problem(folder, "folder")
    if problem:
        raise DataFormatError(folder, None, f"{problem}; it should be the folder of the "
                              f"dataset's raw files ('raw_dir' + '{key}.raw_folder', which "
                              "defaults to the dataset's name)")
    for role in ("interactions", "items"):
        path = folder / settings["files"][role]
        problem = path_problem(path, "file")
        if problem:
            raise DataFormatError(path, None, f"{problem} ('{key}.files.{role}' names it)")


def check_time_scale(inter: pd.DataFrame, path: str | Path) -> list[str]:
    """Warn (and return the warnings) when timestamps do not look like one dataset's
    seconds since the epoch: some at or above 1e11 (milliseconds) among smaller ones, all
    of them in milliseconds, or a span of more than 50 years (e.g. zeros among real
    times). The data is used as it is; a warning names the file, the count and a line."""
    t = inter["time"].to_numpy()
    lines = inter["line"].to_numpy()
    warnings = []
    big = np.abs(t) >= MILLISECONDS_FROM
    n_big = int(big.sum())
    if 0 < n_big < len(t):
        warnings.append(
            f"{path}: {n_big} of {len(t)} timestamps are >= 1e11 (milliseconds?) while the "
            f"other {len(t) - n_big} are not (seconds?), e.g. line {int(lines[big][0])} "
            f"({t[big][0]:.0f}) and line {int(lines[~big][0])} ({t[~big][0]:.0f}); sessions, "
            "time ordering and temporal splits mix the two scales — convert to seconds")
    elif n_big == len(t):
        warnings.append(
            f"{path}: all {len(t)} timestamps are >= 1e11, i.e. milliseconds or finer, not "
            f"seconds (e.g. line {int(lines[0])}: {t[0]:.0f}); sessionize's minutes "
            "assume seconds — convert the column to seconds")
    else:
        span = float(t.max() - t.min())
        if span > MAX_PLAUSIBLE_SPAN:
            lo, hi = int(np.argmin(t)), int(np.argmax(t))
            n_far = int((t < t.max() - MAX_PLAUSIBLE_SPAN).sum())
            warnings.append(
                f"{path}: timestamps span {span / (365.25 * 86400):.0f} years, from "
                f"{t[lo]:.0f} (line {int(lines[lo])}) to {t[hi]:.0f} (line {int(lines[hi])}); "
                f"{n_far} of {len(t)} lie more than 50 years before the latest — zeros or "
                "another unit?")
    for w in warnings:
        log.warning("%s", w)
    return warnings


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
