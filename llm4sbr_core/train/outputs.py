"""The run-output contract, written by one function for every kind of run.

A run folder (``layout.RUN_DIR``) holds

    metrics.json   {"valid": {metric: value}, "test": {...}, "best_epoch", "epochs",
                    "seconds_per_epoch", "config": the run's settings, "data", "history",
                    "runtime": {...}}; metric values are fractions in [0, 1]
    ranks.parquet  sample_id, session_id (when the samples carry it), rank (int64): the
                   1-based rank of each TEST target among all items, in sample order
    model.pt       the tested weights and the trainer's state (trained models only)

metrics.json also records ``provenance``: the package versions and the source commit.

written atomically together: a killed job never leaves one of them looking complete.
"""

from __future__ import annotations

import importlib.metadata
import platform
import resource
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from ..data.batches import SampleTensors
from ..errors import InvalidInputError
from ..io import AtomicFiles
from ..layout import METRICS_FILE, MODEL_FILE, RANKS_FILE
from ..machine import cpu_model

#: Keys of metrics.json that hold wall-clock measurements or where and with what a run
#: ran; everything else is identical for two CPU runs with the same settings, seed and
#: data.
TIMING_KEYS: tuple[str, ...] = ("seconds_per_epoch", "runtime", "provenance")
#: The packages whose versions metrics.json records
PROVENANCE_PACKAGES: tuple[str, ...] = ("llm4sbr", "torch", "numpy", "scipy", "pandas",
                                        "pyarrow")


@dataclass(frozen=True)
class RunOutputs:
    """The files a run writes (the paths its rule declares)."""

    metrics: Path
    ranks: Path
    model: Path | None = None

    def __post_init__(self) -> None:
        for name in ("metrics", "ranks", "model"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))

    @classmethod
    def in_dir(cls, folder: str | Path, model: bool = True) -> RunOutputs:
        """The contract's file names inside ``folder``."""
        folder = Path(folder)
        return cls(folder / METRICS_FILE, folder / RANKS_FILE,
                   folder / MODEL_FILE if model else None)

    @property
    def folder(self) -> Path:
        """The run folder (where a resumable checkpoint lives while the run trains)."""
        return self.metrics.parent


def without_timing(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """metrics.json without its wall-clock keys: equal for equal runs on CPU."""
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What metrics.json's ``runtime`` records of the machine a run ran on. The CPU model
    is there because another CPU family may sum floats in another order: runs of one
    commit and one setting are equal bit for bit only on the same model."""
    return {"device": str(device), "cpu": cpu_model(), "torch": torch.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads()}


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process (and of the CUDA device), in MiB."""
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    out = {"host": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def provenance() -> dict[str, Any]:
    """What produced a run: the package versions and the source commit (``dirty`` when
    the checkout had uncommitted changes to tracked files; None outside a git checkout)."""
    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    root = Path(__file__).resolve().parents[2]
    commit, dirty = None, None
    if (root / ".git").exists():
        try:
            git = ["git", "-C", str(root)]
            commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True,
                                    text=True, check=True, timeout=30).stdout.strip()
            dirty = bool(subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                        capture_output=True, text=True, check=True,
                                        timeout=30).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            commit, dirty = None, None
    return {"commit": commit, "dirty": dirty, "packages": versions}


def write_run_outputs(outputs: RunOutputs, metrics: Mapping[str, Any], sample_ids: np.ndarray,
                      ranks: np.ndarray, model_state: Mapping[str, Any] | None = None,
                      session_ids: np.ndarray | None = None) -> dict[str, Any]:
    """Write metrics.json, ranks.parquet and (when ``outputs.model`` is set) model.pt
    atomically; ``ranks[i]`` is the test rank of sample ``sample_ids[i]``, a prefix of
    session ``session_ids[i]``. metrics.json gets a ``provenance`` record (versions,
    commit) unless ``metrics`` has one; returns what was written."""
    metrics = {**metrics} if "provenance" in metrics else {**metrics, "provenance": provenance()}
    if (outputs.model is None) != (model_state is None):
        raise InvalidInputError("a model file needs a model state and vice versa")
    for path in (outputs.metrics, outputs.ranks, outputs.model):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFiles() as files:
        files.write_json(outputs.metrics, metrics)
        columns = {"sample_id": pa.array(np.asarray(sample_ids), pa.int64())}
        if session_ids is not None:
            columns["session_id"] = pa.array(np.asarray(session_ids), pa.int64())
        columns["rank"] = pa.array(np.asarray(ranks).astype(np.int64), pa.int64())
        files.write_parquet(outputs.ranks, pa.table(columns))
        if outputs.model is not None:
            torch.save(dict(model_state), files.temp_path(outputs.model))
    return metrics


def session_ids_of(samples: SampleTensors) -> np.ndarray | None:
    """The samples' session ids as an array, or None when they do not carry them."""
    return None if samples.session_ids is None else samples.session_ids.numpy()
