"""Atomic artifact writes: a killed job never leaves a file that looks complete.

Every writer goes through :class:`AtomicFiles`: content is written to a hidden temporary
file next to its destination and renamed into place only when all files of the group
were written. ``os.replace`` is atomic on POSIX file systems, so a reader sees either
the old file, no file, or the complete new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def _file_mode() -> int:
    """The mode a plain open() gives new files: mkstemp's 0600 would make artifacts
    unreadable to the rest of a group on a shared cluster file system."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


class AtomicFiles:
    """Write several files so that all of them, or none, appear at their destinations.

    >>> with AtomicFiles() as files:          # doctest: +SKIP
    ...     files.write_json("out/stats.json", {"n": 1})
    ...     files.write_parquet("out/train.parquet", table)
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def temp_path(self, destination: str | Path) -> Path:
        """Reserve a temporary path for ``destination``; it is renamed on commit."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp",
                                   dir=destination.parent)
        os.close(fd)
        self._pending.append((Path(tmp), destination))
        return Path(tmp)

    def write_bytes(self, destination: str | Path, data: bytes) -> None:
        self.temp_path(destination).write_bytes(data)

    def write_text(self, destination: str | Path, text: str) -> None:
        self.temp_path(destination).write_text(text, encoding="utf-8")

    def write_json(self, destination: str | Path, obj: Any) -> None:
        self.write_text(destination, json.dumps(obj, indent=2, sort_keys=False) + "\n")

    def write_parquet(self, destination: str | Path, table: pa.Table | pd.DataFrame) -> None:
        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table, preserve_index=False)
        pq.write_table(table, self.temp_path(destination), compression="zstd")

    def commit(self) -> None:
        for tmp, destination in self._pending:
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, destination)
        self._pending.clear()

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()

    def __enter__(self) -> AtomicFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
