"""Models named by a Hugging Face Hub id, fetched once into a local folder.

Compute nodes of a cluster often have no internet, and sixteen generation jobs that each
download the same 15 GB model waste the hour they start with. A model configured by its
hub id (``llm.model: Qwen/Qwen2.5-7B-Instruct``, ``encoder.model: bert-base-uncased`` is
not a hub id without an organisation and is read as given) is instead snapshotted once,
by the local rule ``fetch_model`` (rules/models.smk) on the machine that runs Snakemake,
into ``{cache_dir}/models/hub/<org>--<name>/``; the jobs read that folder with
``HF_HUB_OFFLINE=1``.

The source is the hub (``huggingface_hub.snapshot_download``, in a child process that is
allowed online), or, when the environment variable ``LLM4SBR_HUB_MIRROR`` names a folder,
``<mirror>/<org>/<name>/`` copied as it is (a shared model folder on a cluster; the
tests). A mirror that lacks the model is an error, never a silent download. The snapshot
is written next to its final place and renamed into it: a killed fetch leaves no folder
that looks complete.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..embedded import is_embedded
from ..errors import ConfigError

log = logging.getLogger(__name__)

#: Environment variable naming a local folder laid out as ``<org>/<name>/``.
MIRROR_ENV = "LLM4SBR_HUB_MIRROR"
#: ``<org>/<name>``: what the hub calls a repository id.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_hub_id(model: str) -> bool:
    """Whether ``model`` names a hub repository (``org/name``) rather than an embedded
    model or a local path that exists."""
    if is_embedded(model) or Path(model).expanduser().exists():
        return False
    return _HUB_ID.fullmatch(model) is not None and ".." not in model


def snapshot_folder(cache_dir: str, hub_id: str) -> str:
    """Where ``fetch_model`` puts the snapshot of ``hub_id``."""
    return f"{cache_dir.rstrip('/')}/models/hub/{hub_id.replace('/', '--')}"


def read_snapshot(block: dict, cache_dir: str, name: str) -> list[str]:
    """Point a config block (``llm:`` or ``encoder:``) whose ``model`` is a hub id at its
    snapshot folder, keeping ``name`` (the result paths' component) that of the hub id.
    Returns [the folder], or [] when the model is not a hub id (the block is unchanged)."""
    model = block["model"]
    if not is_hub_id(model):
        return []
    folder = snapshot_folder(cache_dir, model)
    block["name"] = name
    block["model"] = folder
    return [folder]


def hub_id_of(folder_name: str) -> str:
    """The hub id of a snapshot folder's name (``Qwen--Qwen2.5-7B`` → ``Qwen/Qwen2.5-7B``)."""
    org, sep, name = folder_name.partition("--")
    if not sep or not _HUB_ID.fullmatch(f"{org}/{name}"):
        raise ConfigError("llm.model", f"{folder_name!r} is not a fetched model's folder")
    return f"{org}/{name}"


def fetch_model(hub_id: str, dest: str | os.PathLike[str], revision: str | None = None) -> Path:
    """Snapshot ``hub_id`` into the folder ``dest`` (replaced if present) and return it."""
    if not is_hub_id(hub_id):
        raise ConfigError("llm.model", f"{hub_id!r} is not a hub id (<org>/<name>)")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    mirror = os.environ.get(MIRROR_ENV)
    try:
        if mirror:
            source = Path(mirror, *hub_id.split("/"))
            if not source.is_dir():
                raise ConfigError("llm.model", f"{hub_id} is not in the mirror {MIRROR_ENV}="
                                               f"{mirror} (expected the folder {source})")
            log.info("copying %s from the mirror %s into %s", hub_id, source, dest)
            shutil.copytree(source, partial)
        else:
            log.info("downloading %s (revision %s) from the Hugging Face Hub into %s",
                     hub_id, revision or "main", dest)
            _hub_snapshot(hub_id, partial, revision)
        if dest.exists():
            shutil.rmtree(dest)
        partial.rename(dest)
        log.info("%s is in %s", hub_id, dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return dest


def _hub_snapshot(hub_id: str, dest: Path, revision: str | None) -> None:
    """``snapshot_download`` in a child process: the parent (Snakemake) may have set
    ``HF_HUB_OFFLINE=1`` for the jobs, and huggingface_hub reads it once, at import."""
    code = ("import sys; from huggingface_hub import snapshot_download; "
            "snapshot_download(sys.argv[1], local_dir=sys.argv[2], "
            "revision=sys.argv[3] or None)")
    env = {**os.environ, "HF_HUB_OFFLINE": "0"}
    subprocess.run([sys.executable, "-c", code, hub_id, str(dest), revision or ""],
                   check=True, env=env)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Snapshot a hub model into a folder.")
    parser.add_argument("hub_id")
    parser.add_argument("dest")
    parser.add_argument("--revision")
    args = parser.parse_args(argv)
    print(fetch_model(args.hub_id, args.dest, args.revision))


if __name__ == "__main__":
    main()
