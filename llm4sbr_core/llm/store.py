"""The answer store: every answer ever generated, keyed by (model, decoding, prompt).

Generation is the expensive step, so answers live outside Snakemake's outputs, in
``{cache_dir}/answers/{store_key}/`` where ``store_key`` digests the model identity and
the decoding settings (:meth:`Generator.store_key`). Inside, answers are kept by prompt
hash in append-only Parquet chunk files, each written atomically under a unique name —
several shard jobs may add to one store at once, and a killed job loses at most the
chunk it was generating. Re-running a shard after a code edit, a changed shard count or
new samples therefore generates only prompts never answered before.

What can go wrong, and what happens then:

* a chunk that cannot be read (cut off, overwritten, not Parquet, columns missing) is
  moved aside into ``quarantine/`` next to the chunks (logged at WARNING with both
  paths; nothing is deleted) and its prompts count as unanswered: only they are
  generated again;
* an answer whose server response was unusable (``error`` set) is kept, so its batch is
  not lost, but does not count as answered: the next run asks for it again, and a
  usable answer to the same prompt wins over it;
* two jobs writing the same shard (an orphaned job still running after its Snakemake
  was killed, and the rerun) take turns: :meth:`AnswerStore.lock` holds an ``fcntl``
  lock on ``locks/<name>.lock``; the second job logs that it waits, and once it holds
  the lock it reads the store again and generates only what is still missing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InvalidInputError
from ..io import AtomicFiles

log = logging.getLogger(__name__)

#: Columns every chunk file has (and :meth:`AnswerStore.lookup`'s result).
REQUIRED_COLUMNS = ("prompt_hash", "answer_raw", "tokens_in", "tokens_out", "hit_token_limit")
#: Columns of a chunk file written now: ``error`` is null for a usable answer, else why the
#: server's response had none (chunks written before it existed read as all null).
ANSWER_COLUMNS = (*REQUIRED_COLUMNS, "error")
QUARANTINE = "quarantine"
LOCKS = "locks"
#: While waiting for another writer's lock, a reminder is logged this often (seconds).
WAIT_LOG_S = 300.0


class AnswerStore:
    """Answers of one model + decoding configuration, by prompt hash."""

    def __init__(self, root: str | Path, key: str, identity: dict[str, Any] | None = None):
        self.path = Path(root) / "answers" / key
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = self.path / "identity.json"
        if identity is not None and not manifest.exists():
            with AtomicFiles() as files:  # what this key stands for, for humans
                files.write_json(manifest, identity)

    def chunk_files(self) -> list[Path]:
        return sorted(self.path.glob("chunk-*.parquet"))

    def _read_chunk(self, path: Path) -> pd.DataFrame | None:
        """One chunk's answers, or ``None`` when it is unreadable (then quarantined)."""
        try:
            frame = pd.read_parquet(path)
            missing = set(REQUIRED_COLUMNS) - set(frame.columns)
            if missing:
                raise InvalidInputError(f"lacks columns {sorted(missing)}", path)
        except FileNotFoundError:
            return None  # another job moved it aside a moment ago
        except Exception as exc:  # noqa: BLE001 (any unreadable file: Arrow, OS, ours)
            quarantine(path, self.path / QUARANTINE, f"{type(exc).__name__}: {exc}")
            return None
        if "error" not in frame.columns:
            frame["error"] = None
        return frame[list(ANSWER_COLUMNS)]

    def load(self, wanted: Iterable[str] | None = None) -> pd.DataFrame:
        """Stored answers (optionally only those of ``wanted`` hashes), one row per hash;
        a usable answer wins over one whose response was unusable (``error`` set)."""
        frames = [f for f in map(self._read_chunk, self.chunk_files()) if f is not None]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in ANSWER_COLUMNS})
        frame = pd.concat(frames, ignore_index=True)
        if wanted is not None:
            frame = frame[frame["prompt_hash"].isin(set(wanted))]
        # Two shards racing on one prompt store it twice; greedy answers are identical.
        frame = frame.sort_values("error", key=lambda e: e.notna(), kind="stable")
        frame = frame.drop_duplicates("prompt_hash", keep="first").sort_index()
        return frame.reset_index(drop=True)

    def answered(self, wanted: Iterable[str] | None = None) -> set[str]:
        """The hashes with a usable stored answer (those never need generating again)."""
        frame = self.load(wanted)
        return set(frame.loc[frame["error"].isna(), "prompt_hash"])

    def add(self, answers: pd.DataFrame) -> Path:
        """Append one chunk of answers atomically; returns its file."""
        missing = set(REQUIRED_COLUMNS) - set(answers.columns)
        if missing:
            raise InvalidInputError(f"answer chunk lacks columns {sorted(missing)}", self.path)
        if "error" not in answers.columns:
            answers = answers.assign(error=None)
        name = f"chunk-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        target = self.path / f"{name}.parquet"
        with AtomicFiles() as files:
            files.write_parquet(target, answers[list(ANSWER_COLUMNS)].astype(_DTYPES))
        return target

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[Path]:
        """Hold the exclusive lock ``locks/<name>.lock`` of this store (one per shard):
        a second writer of the same shard waits here, logging that it waits and for whom
        (:func:`store_lock`)."""
        with store_lock(self.path, name) as path:
            yield path

    def describe(self) -> dict[str, Any]:
        identity = self.path / "identity.json"
        return {"path": str(self.path), "chunks": len(self.chunk_files()),
                "quarantined": len(list((self.path / QUARANTINE).glob("*"))),
                "identity": json.loads(identity.read_text()) if identity.exists() else None}


@contextlib.contextmanager
def store_lock(store: Path, name: str) -> Iterator[Path]:
    """Hold the exclusive lock ``<store>/locks/<name>.lock``: a second job that would
    write the same entries of a content-keyed store (answers, embeddings) waits here,
    logging that it waits and for whom, then reads the store again.

    An ``fcntl.flock`` lock: the kernel drops it when its holder dies (``kill -9``
    included), so a lock file never has to be cleaned up; lock files are kept. On a
    file system without locks the work goes on unlocked, with a warning."""
    folder = store / LOCKS
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.lock"
    with open(path, "a+", encoding="utf-8") as handle:
        locked = _acquire(handle, path)
        try:
            if locked:
                handle.seek(0)
                handle.truncate()
                handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
                handle.flush()
            yield path
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle: Any, path: Path) -> bool:
    """Take the lock on ``handle``, waiting for its holder if need be; ``False`` when the
    file system has no locks."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        log.warning("%s: the file system does not support locks (%s); two jobs writing "
                    "this shard at once are not kept apart", path, exc.strerror)
        return False
    handle.seek(0)
    holder = handle.read().strip() or "another job"
    log.warning("%s: held by %s, which is writing the same entries (another workflow on "
                "this cache, or an earlier job still running?); waiting for it, then doing "
                "only what it left undone", path, holder)
    started = time.monotonic()
    last_log = started
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(0.2)
        if time.monotonic() - last_log >= WAIT_LOG_S:
            last_log = time.monotonic()
            log.warning("%s: still waiting (%.0f s)", path, last_log - started)
    log.info("%s: acquired after %.1f s", path, time.monotonic() - started)
    return True


def quarantine(path: Path, folder: Path, reason: str) -> Path | None:
    """Move an unreadable store file into ``folder`` (never delete it) and log it; the
    new path, or ``None`` when it could not be moved (it is then only skipped)."""
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None  # another job moved it first
    except OSError as exc:
        log.warning("%s cannot be read (%s) and cannot be moved aside (%s): skipped; its "
                    "entries are generated again", path, reason[:300], exc)
        return None
    log.warning("%s cannot be read (%s): moved aside to %s; its entries are generated "
                "again", path, reason[:300], target)
    return target


_DTYPES = {"prompt_hash": "object", "answer_raw": "object", "tokens_in": "Int64",
           "tokens_out": "Int64", "hit_token_limit": "bool", "error": "object"}
