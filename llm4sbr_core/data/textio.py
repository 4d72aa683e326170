"""Line-by-line reading of plain or gzipped text files with errors that name the line.

Decoding is strict: a byte sequence that is not valid in the declared encoding stops the
read with the file, line and byte offset, instead of being replaced silently. A UTF-8 byte
order mark at the start of a UTF-8 file (what Excel's "CSV UTF-8" export writes) is
dropped, as the ``utf-8-sig`` codec does, so it never becomes part of the first column's
name.
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataFormatError


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def iter_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every line of ``path`` (1-based, newline kept).

    Gzip is detected from the magic bytes, so a ``.gz`` suffix is not required. A truncated
    or corrupt gzip stream raises :class:`DataFormatError` naming the last line read. In a
    UTF-8 file, a byte order mark before the first line is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "file not found")
    opener = gzip.open if is_gzip(path) else open
    first_codec = "utf-8-sig" if _is_utf8(encoding) else encoding
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    yield lineno, raw.decode(first_codec if lineno == 1 else encoding)
                except UnicodeDecodeError as e:
                    raise DataFormatError(
                        path, lineno,
                        f"bytes {raw[e.start:e.end]!r} at column {e.start + 1} are not valid "
                        f"{encoding} (set the dataset's 'encoding' if the file uses another one)",
                    ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataFormatError(
            path, None,
            f"gzip stream is truncated or corrupt after line {lineno} ({e}); "
            "download the file again",
        ) from None
