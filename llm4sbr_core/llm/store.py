"""The answer store: every answer ever generated, keyed by (model, decoding, prompt).

Generation is the expensive step, so answers live outside Snakemake's outputs, in
``{cache_dir}/answers/{store_key}/`` where ``store_key`` digests the model identity and
the decoding settings (:meth:`Generator.store_key`). Inside, answers are kept by prompt
hash in append-only Parquet chunk files, each written atomically under a unique name —
several shard jobs may add to one store at once, and a killed job loses at most the
chunk it was generating. Re-running a shard after a code edit, a changed shard count or
new samples therefore generates only prompts never answered before.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InvalidInputError
from ..io import AtomicFiles

log = logging.getLogger(__name__)

#: Columns of a chunk file (and of :meth:`AnswerStore.lookup`'s result).
ANSWER_COLUMNS = ("prompt_hash", "answer_raw", "tokens_in", "tokens_out", "hit_token_limit")


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

    def load(self, wanted: Iterable[str] | None = None) -> pd.DataFrame:
        """Stored answers (optionally only those of ``wanted`` hashes), one row per hash."""
        files = self.chunk_files()
        if not files:
            return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in ANSWER_COLUMNS})
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        # Two shards racing on one prompt store it twice; greedy answers are identical.
        frame = frame.drop_duplicates("prompt_hash", keep="first")
        if wanted is not None:
            frame = frame[frame["prompt_hash"].isin(set(wanted))]
        return frame.reset_index(drop=True)

    def add(self, answers: pd.DataFrame) -> Path:
        """Append one chunk of answers atomically; returns its file."""
        missing = set(ANSWER_COLUMNS) - set(answers.columns)
        if missing:
            raise InvalidInputError(f"answer chunk lacks columns {sorted(missing)}", self.path)
        name = f"chunk-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        target = self.path / f"{name}.parquet"
        with AtomicFiles() as files:
            files.write_parquet(target, answers[list(ANSWER_COLUMNS)].astype(_DTYPES))
        return target

    def describe(self) -> dict[str, Any]:
        identity = self.path / "identity.json"
        return {"path": str(self.path), "chunks": len(self.chunk_files()),
                "identity": json.loads(identity.read_text()) if identity.exists() else None}


_DTYPES = {"prompt_hash": "object", "answer_raw": "object", "tokens_in": "Int64",
           "tokens_out": "Int64", "hit_token_limit": "bool"}
