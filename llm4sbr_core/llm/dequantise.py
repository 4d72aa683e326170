"""A GGUF model as a plain Hugging Face model folder, written once into the cache.

Servers such as ``transformers serve`` and vLLM load a model *folder* (config, float32
safetensors, tokenizer, chat template); transformers 5 can read a GGUF file in process
(``from_pretrained(folder, gguf_file=name)``), but ``transformers serve`` cannot serve a
local GGUF (its config has no ``architectures``). :func:`dequantised_folder` saves the
dequantised model once under ``{cache_dir}/models/<weights digest>/`` — the folder the
transformers backend loads a GGUF from — so the same weights can be served::

    python -m llm4sbr_core.llm.dequantise embedded:smollm2-135m-instruct --cache-dir cache
    transformers serve --host 127.0.0.1 --device cpu --dtype float32 <the printed folder>

The folder is named by the GGUF's :func:`.identity.weights_digest`, so another
quantisation of the same model at the same path gets its own folder, and it is written
atomically (a temporary folder, then a rename): a job killed half-way leaves no folder
that looks complete, and two jobs converting at once both end with the one that won.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..embedded import resolve_model_path
from ..errors import ConfigError, Llm4sbrError
from .identity import weights_digest

log = logging.getLogger(__name__)

#: Sub-folder of ``cache_dir`` holding the dequantised models.
MODELS_DIR = "models"


def dequantised_location(gguf: str | os.PathLike[str], cache_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`dequantised_folder` keeps the dequantised copy of the GGUF file
    ``gguf`` (it may not exist yet): ``{cache_dir}/models/<weights digest>``."""
    digest = weights_digest(gguf)
    if digest is None:
        raise ConfigError("llm.model", f"{gguf}: no such GGUF file")
    return Path(cache_dir) / MODELS_DIR / digest


def dequantised_folder(model: str | os.PathLike[str], cache_dir: str | os.PathLike[str],
                       key: str = "llm.model") -> Path:
    """The model folder of ``model`` (an ``embedded:`` name or the path of a ``.gguf``
    file), dequantised to float32 safetensors with its tokenizer and chat template and
    saved under ``{cache_dir}/models/`` on the first call; later calls return it at once.

    Raises :class:`~llm4sbr_core.errors.ConfigError` (naming ``key``) when ``model`` is
    not a local GGUF file: a model folder or a hub id needs no conversion.
    """
    path = resolve_model_path(os.fspath(model), key)
    if not (isinstance(path, Path) and path.is_file() and path.suffix.lower() == ".gguf"):
        raise ConfigError(key, f"{model}: not a local .gguf file (a model folder or a hub "
                          "id is served as it is)")
    destination = dequantised_location(path, cache_dir)
    if not (destination / "config.json").exists():
        _write(path, destination)
    return destination


def _write(gguf: Path, destination: Path) -> None:
    """Dequantise ``gguf`` into a temporary sibling of ``destination``, then rename it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s once into %s", gguf, destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name) \
            .save_pretrained(partial)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
        # The weights are plain float32 tensors once loaded; only the GGUF marker stops
        # save_pretrained, so drop it.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(partial)
        os.chmod(partial, 0o755)  # mkdtemp makes it 0700; the cache may be shared
        for file in partial.iterdir():  # save_pretrained may create 0600 files
            os.chmod(file, 0o644)
        try:
            os.rename(partial, destination)
        except OSError:  # another job got there first: use its copy
            if not (destination / "config.json").exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m llm4sbr_core.llm.dequantise MODEL [--cache-dir DIR]``: print the folder."""
    parser = argparse.ArgumentParser(
        prog="python -m llm4sbr_core.llm.dequantise",
        description="Save a GGUF model (an embedded: name or a .gguf path) as a float32 "
                    "model folder under CACHE_DIR/models/ once, and print the folder.")
    parser.add_argument("model", nargs="?", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--cache-dir", default="cache",
                        help="the workflow's cache_dir (default: cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(dequantised_folder(args.model, args.cache_dir, key="model"))
    except Llm4sbrError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
