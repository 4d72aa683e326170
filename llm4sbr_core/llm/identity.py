"""Model identity helpers: a fast digest of local weights and a filesystem-safe model slug.

:func:`weights_digest` lets the answer store tell two models apart even when they sit at
the same path (a re-download, a different quantisation). It reads the small files
(configs, tokenizers, chat templates) in full and only the first and last MiB of each
weight file plus its size, so hashing a 15 GB folder takes milliseconds, not minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ..embedded import resolve_model_path
from ..errors import InvalidInputError
from .common import public_url
from .settings import GeneratorSettings, concrete_dtype

#: Weight files: hashed by size plus their first and last :data:`SAMPLE_BYTES`.
WEIGHT_SUFFIXES = frozenset({".safetensors", ".bin", ".gguf", ".pt", ".pth"})
#: Small files that change what a model answers: hashed in full.
FULL_SUFFIXES = frozenset({".json", ".model", ".jinja", ".tiktoken", ".txt"})
SAMPLE_BYTES = 1 << 20  # 1 MiB
_CHUNK = 1 << 20


def _content_digest(path: Path, size: int) -> str:
    """The hash of what we read from one file ("-" for files recorded by name and size)."""
    name = path.name.lower()
    h = hashlib.sha256()
    if path.suffix.lower() in WEIGHT_SUFFIXES:
        with path.open("rb") as f:
            h.update(f.read(SAMPLE_BYTES))
            if size > SAMPLE_BYTES:
                f.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
                h.update(f.read(SAMPLE_BYTES))
        return "w:" + h.hexdigest()
    if path.suffix.lower() in FULL_SUFFIXES or name.startswith("tokenizer"):
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return "f:" + h.hexdigest()
    return "-"


def _files(root: Path) -> list[tuple[str, Path]]:
    """Every regular file under ``root`` as (relative POSIX name, path), sorted by name.

    Hidden files and folders (``.git``, ``.cache/huggingface`` download metadata) are left
    out: they change on every download without changing the model.
    """
    found: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(folder) / name
            if name.startswith(".") or not path.is_file():
                continue
            found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def weights_digest(path: str | os.PathLike[str]) -> str | None:
    """A sha256 hex digest identifying the local model at ``path`` (a folder or one file).

    Covers every file's relative name and size, the full content of ``*.json``,
    ``tokenizer*``, ``*.model``, ``*.jinja``, ``*.tiktoken`` and ``*.txt`` files, and the
    first and last MiB of weight files (``*.safetensors``, ``*.bin``, ``*.gguf``, ``*.pt``,
    ``*.pth``). Returns ``None`` when ``path`` is not a local file or folder (a hub id).
    """
    root = Path(os.fspath(path)).expanduser()
    if root.is_dir():
        files = _files(root)
    elif root.is_file():
        files = [(root.name, root)]
    else:
        return None
    outer = hashlib.sha256()
    for rel, file in files:
        size = file.stat().st_size
        outer.update(f"{rel}\0{size}\0{_content_digest(file, size)}\n".encode())
    return outer.hexdigest()


_SCHEME = re.compile(r"^(?:embedded|hf|file|local):(?://)?", re.IGNORECASE)
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def model_slug(model: str) -> str:
    """A short, lower-case, filesystem-safe name (``[a-z0-9._-]``) for a configured model.

    Drops a backend prefix (``embedded:``, ``hf:``, ``file://``), the folders of a path or
    hub id and a weight-file suffix: ``"/x/SmolLM2-135M-Instruct.Q4_1.gguf"`` gives
    ``"smollm2-135m-instruct.q4_1"``, ``"Qwen/Qwen-7B-Chat"`` gives ``"qwen-7b-chat"``.
    Other colons are kept as ``-`` (Ollama's ``"qwen2.5:7b"`` gives ``"qwen2.5-7b"``).
    Raises :class:`~llm4sbr_core.errors.InvalidInputError` (a ``ValueError``) when nothing
    usable is left.
    """
    name = _SCHEME.sub("", model.strip())
    name = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and f".{suffix.lower()}" in WEIGHT_SUFFIXES:
        name = stem
    slug = _UNSAFE.sub("-", name.lower()).strip("-._")
    if not slug:
        raise InvalidInputError(f"cannot make a file name out of the model {model!r}")
    return slug


def model_identity(settings: GeneratorSettings) -> dict[str, Any]:
    """What answers depend on besides decoding, computed without loading the model: the
    backend, the configured model and a digest of local weights (a re-downloaded or
    re-quantised model at the same path is a new model); for a server, its public URL.

    The transformers backend also records the dtype it computes in, so that answers of
    bfloat16 and float32 never share a store key: `llm.dtype: auto` is resolved first
    (:func:`~.settings.concrete_dtype`: bfloat16 on CUDA and on CPUs with native bf16,
    float32 elsewhere), so one config run on two machines keys each machine's answers by
    what it computed. The device is not recorded: two devices at one dtype differ no more
    than two batch compositions do.
    """
    identity: dict[str, Any] = {"backend": settings.backend, "model": settings.model}
    if settings.backend == "openai":
        identity["base_url"] = public_url(str(settings.options.get("base_url", "")))
    else:
        path = resolve_model_path(settings.model)
        identity["weights"] = weights_digest(path) if isinstance(path, Path) else None
        if settings.backend == "transformers":
            identity["dtype"] = concrete_dtype(settings.dtype, settings.device)
    return identity


def store_key(settings: GeneratorSettings) -> str:
    """The answer-store key: a digest of (model identity, decoding settings)."""
    payload = {"model": model_identity(settings), "decoding": settings.decoding.key()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]
