"""Atomic artifact writes: a killed job never leaves a file that looks complete.

Every writer goes through :class:`AtomicFiles`: content is written to a hidden temporary
file next to its destination and renamed into place only when all files of the group
were written. ``os.replace`` is atomic on POSIX file systems, so a reader sees either
the old file, no file, or the complete new one.

A write that fails because the file system is full (``ENOSPC``, a quota, or any write
error while less than :data:`NEARLY_FULL_BYTES` are free there — NumPy and torch do not
always keep the errno) leaves no temporary file behind and raises :class:`DiskFullError`
naming the file and the free space. :func:`path_problem` says why a path a config names
cannot be used (a symbolic link loop, a folder where a file belongs, no permission).

Fault injection (tests only; no effect unless set): the environment variable
``LLM4SBR_PAUSE_BEFORE_COMMIT="<glob>[@<n>][:<seconds>]"`` makes the ``n``-th (default:
first) group of this process with a destination matching the ``fnmatch`` glob stop once
its temporary files are written and before any is renamed into place, log a WARNING
naming the file, and sleep ``seconds`` (default :data:`PAUSE_S`) before going on. A test
kills the job there, the worst moment for an artifact, or lets another job run meanwhile
(tests/test_fault_injection.py, docs/reliability.md).
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import Llm4sbrError

log = logging.getLogger(__name__)

#: The fault-injection hook's variable, and how long a paused commit waits (seconds).
PAUSE_ENV = "LLM4SBR_PAUSE_BEFORE_COMMIT"
PAUSE_S = 300.0
_pause_matches = 0  # commits of this process that matched the hook's glob so far

#: A write error on a file system with less than this free is reported as a full disk.
NEARLY_FULL_BYTES = 1 << 20
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(Llm4sbrError, OSError):
    """An artifact could not be written because its file system is full; nothing was
    left at (or next to) its destination. Also an ``OSError``."""

    def __init__(self, path: str | Path, free_bytes: int | None, others: int = 0):
        self.path = str(path)
        self.free_bytes = free_bytes
        free = f"{free_bytes:,} bytes free" if free_bytes is not None else "free space unknown"
        group = f", nor the {others} other file(s) written with it" if others else ""
        super().__init__(errno.ENOSPC, f"{self.path}: the disk is full ({free} on the file "
                         f"system of {Path(self.path).parent}): not written{group}; any older "
                         "version is left as it was; free some space and run again")

    def __str__(self) -> str:
        return self.strerror or ""


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
        if PAUSE_ENV in os.environ:
            _pause_if_asked([d for _, d in self._pending])
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
            return
        full, free = self._disk_full(exc)
        destinations = [d for _, d in self._pending]
        self.discard()
        if full and not isinstance(exc, DiskFullError):
            raise DiskFullError(destinations[-1], free, len(destinations) - 1) from exc

    def _disk_full(self, exc: BaseException | None) -> tuple[bool, int | None]:
        """Whether ``exc`` means a full disk, and the bytes free where the failed write
        went (measured before the temporary files are removed; ``None`` if unknown)."""
        if not self._pending or not isinstance(exc, OSError | RuntimeError):
            return False, None
        try:
            info = os.statvfs(self._pending[-1][0].parent)
            free: int | None = info.f_bavail * info.f_frsize
        except OSError:
            free = None
        if getattr(exc, "errno", None) in _DISK_FULL_ERRNOS or \
                "No space left on device" in str(exc):
            return True, free
        return free is not None and free < NEARLY_FULL_BYTES, free


def _pause_if_asked(destinations: list[Path]) -> None:
    """The fault-injection hook (see the module's docstring)."""
    global _pause_matches
    value = os.environ.get(PAUSE_ENV, "")
    seconds = PAUSE_S
    head, colon, tail = value.rpartition(":")
    if colon and tail.replace(".", "", 1).isdigit():
        value, seconds = head, float(tail)
    pattern, _, nth = value.partition("@")
    hit = next((d for d in destinations if pattern and fnmatch.fnmatch(str(d), pattern)), None)
    if hit is None:
        return
    _pause_matches += 1
    if _pause_matches != (int(nth) if nth.isdigit() else 1):
        return
    log.warning("%s=%s: pausing %g s before committing %s (fault injection)", PAUSE_ENV,
                os.environ[PAUSE_ENV], seconds, hit)
    for handler in logging.getLogger().handlers + logging.getLogger("llm4sbr_core").handlers:
        handler.flush()
    time.sleep(seconds)


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def path_problem(path: str | Path, kind: str = "file", writable: bool = False) -> str | None:
    """Why ``path`` cannot be used as a ``kind`` (``"file"`` to read, ``"folder"`` to list,
    and to write into if ``writable``), in words that follow the path: a symbolic link
    loop, a link to nothing, a folder where a file belongs or the reverse, no permission.
    ``None`` when it can be used or does not exist (a missing file or folder is the
    caller's to report or to make)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            return (f"is a symbolic link to {os.readlink(path)!r}, which does not exist "
                    "(a disk not mounted?)")
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ("is a symbolic link loop (following it leads back to itself): replace "
                    f"it with the {kind}, or with a link to the {kind}")
        if exc.errno == errno.ENOTDIR:
            return "lies under a file, not under a folder: a file stands where a folder belongs"
        if exc.errno == errno.EACCES:
            return "cannot be reached: permission denied on a folder above it"
        return f"cannot be used: {exc.strerror}"
    if kind == "file":
        if stat.S_ISDIR(info.st_mode):
            return "is a folder, not a file"
        if not os.access(path, os.R_OK):
            return "cannot be read: permission denied (check its owner and mode)"
    else:
        if not stat.S_ISDIR(info.st_mode):
            return "is a file, not a folder"
        if not os.access(path, os.R_OK | os.X_OK):
            return "cannot be read: permission denied (check its owner and mode)"
        if writable and not os.access(path, os.W_OK | os.X_OK):
            return "cannot be written to: permission denied (check its owner and mode)"
    return None
