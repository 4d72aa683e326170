"""One run, assembled in one place: settings → data → intents → model → trainer → outputs.

    settings   RunSettings (validated once, variant parsed once)
    data       the dataset's train / valid / test samples and item count
    graph      the backbone's training graph (GCE-GNN, S²-DHCN), built or given
    intents    one array per view the variant reads (train/intents.py)
    model      models/build.py: the backbone, or the backbone inside LLM4SBR
    trainer    train/trainer.py: epochs, validation, selection, resumable checkpoints
    outputs    test ONCE with the selected weights → train/outputs.py's contract

Also the rule ``build_training_graph``'s library call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.batches import SampleTensors, count_items, load_samples
from ..errors import ConfigError, InvalidInputError
from ..io import AtomicFiles
from ..layout import SPLITS, TABLE_FILES
from ..metrics import metrics_from_ranks
from ..models import Backbone, get_backbone
from ..models.build import build_model, build_training_graph
from .checkpoint import seed_everything
from .intents import run_intents
from .outputs import (
    RunOutputs,
    environment,
    peak_memory_mb,
    session_ids_of,
    write_run_outputs,
)
from .settings import RunSettings
from .trainer import Trainer, fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInputs:
    """The files a run reads (the paths its rule declares)."""

    train: Path
    valid: Path
    test: Path
    items: Path
    #: view → localized intent vectors (.npy, row = sample_id), for LLM variants
    intents: Mapping[str, Path] = field(default_factory=dict)
    #: the item text vectors (items.npy), for ``textinit`` and the ``-items`` controls
    item_vectors: Path | None = None
    #: the backbone's training graph (.npz), for backbones that need one
    graph: Path | None = None

    def __post_init__(self) -> None:
        for name in ("train", "valid", "test", "items", "item_vectors", "graph"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        object.__setattr__(self, "intents", {v: Path(p) for v, p in self.intents.items()})

    @classmethod
    def in_dir(cls, data_dir: str | Path, *, intents: Mapping[str, str | Path] | None = None,
               item_vectors: str | Path | None = None,
               graph: str | Path | None = None) -> RunInputs:
        """The tables of a data folder laid out as ``layout.DATA_DIR``."""
        train, valid, test, items = (Path(data_dir) / name for name in TABLE_FILES)
        return cls(train, valid, test, items, intents=intents or {},
                   item_vectors=item_vectors, graph=graph)

    @property
    def tables(self) -> tuple[Path, ...]:
        return (self.train, self.valid, self.test, self.items)


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda if available, else cpu; an unavailable device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", f"{name!r} asked for, but CUDA is not available")
    return device


def load_training_graph(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def write_training_graph(backbone: str | type[Backbone], train_path: str | Path,
                         items_path: str | Path, out_path: str | Path,
                         params: Mapping[str, Any]) -> None:
    """rule build_training_graph: the backbone's training graph as an .npz (atomic)."""
    cls = get_backbone(backbone)
    graph = build_training_graph(cls, load_samples(train_path), count_items(items_path), params)
    with AtomicFiles() as files, open(files.temp_path(out_path), "wb") as f:
        np.savez(f, **graph)
    log.info("%s training graph: %s", cls.__name__,
             ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in graph.items()))


def _check_item_ids(splits: Mapping[str, SampleTensors], inputs: RunInputs, n_items: int
                    ) -> None:
    for split, samples in splits.items():
        if int(samples.targets.max()) > n_items or int(samples.items.max()) > n_items:
            raise InvalidInputError(f"item id above N = {n_items}", getattr(inputs, split))


def run_training(settings: RunSettings, inputs: RunInputs, outputs: RunOutputs, *,
                 backbone: type[Backbone] | None = None,
                 graph: Mapping[str, np.ndarray] | None = None,
                 stop_after: int | None = None, progress: bool = True,
                 threads: int | None = None,
                 trainer_cls: type[Trainer] = Trainer,
                 tuning: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Train, select on validation, test once; write ``outputs`` atomically and return the
    metrics.

    ``backbone`` overrides the class registered as ``settings.backbone`` (tests, custom
    models). ``graph`` is the backbone's training graph (else read from
    ``inputs.graph``, else built here when the backbone needs one). ``stop_after`` stops
    after that many epochs without writing outputs (returns None): a simulated kill,
    resumed by the next call. ``threads`` (the job's threads under Snakemake) sets
    torch's CPU threads when ``settings.num_threads`` is null; with neither, torch's
    default stays. ``tuning`` (a ``-tuned`` run: the search its settings come from,
    train/tuning.py) is recorded in metrics.json under ``tuning``.
    """
    cls = backbone if backbone is not None else get_backbone(settings.backbone)
    device = resolve_device(settings.device)
    if (settings.num_threads or threads) is not None:
        torch.set_num_threads(settings.num_threads or threads)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.cuda.reset_peak_memory_stats(device)
    outputs.folder.mkdir(parents=True, exist_ok=True)
    checkpoint = outputs.folder / "last.pt"

    splits = {s: load_samples(getattr(inputs, s), settings.max_len) for s in SPLITS}
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    n_items = count_items(inputs.items)
    _check_item_ids(splits, inputs, n_items)
    if graph is None and inputs.graph is not None:
        graph = load_training_graph(inputs.graph)
    if cls.needs_training_graph and graph is None:
        graph = build_training_graph(cls, load_samples(inputs.train), n_items,
                                     settings.backbone_params)
    log.info("%s/%s seed %d on %s: %d items, %d/%d/%d train/valid/test samples, device %s",
             settings.backbone, settings.variant.name, settings.seed, settings.dataset,
             n_items, len(train), len(valid), len(test), device)
    variant = settings.variant
    vectors = (np.load(inputs.item_vectors, mmap_mode="r")
               if inputs.item_vectors is not None else None)
    intents = run_intents(variant, [train, valid, test], inputs.intents, vectors, settings.seed)

    seed_everything(settings.seed)
    model = build_model(cls, variant, n_items, settings.dim, settings.backbone_params, graph,
                        intents=intents,
                        item_vectors=vectors if variant.kind == "textinit" else None,
                        tau=settings.tau, shared_projection=settings.shared_projection)
    trainer = trainer_cls(model, train, valid, settings, device, progress=progress)
    extra = {f"intents_{v}": p for v, p in inputs.intents.items()}
    if inputs.item_vectors is not None:
        extra["item_vectors"] = inputs.item_vectors
    trainer.fingerprint = fingerprint(settings, inputs.tables, extra)
    resumed_from = trainer.resume(checkpoint)
    if not trainer.fit(checkpoint, stop_after):
        return None

    # Test ONCE, with the weights of the best validation epoch.
    trainer.model.load_state_dict(trainer.best_model)
    start = time.perf_counter()
    ranks = trainer.evaluate(test)
    test_seconds = time.perf_counter() - start
    best = trainer.history[trainer.best_epoch - 1]
    epoch_seconds = [t["train"] for t in trainer.times]
    metrics = {
        "valid": best["valid"],
        "test": metrics_from_ranks(ranks),
        "best_epoch": trainer.best_epoch,
        "epochs": trainer.epoch,
        "seconds_per_epoch": float(np.mean(epoch_seconds)),
        "config": settings.record(),
        **({"tuning": dict(tuning)} if tuning is not None else {}),
        "data": {"items": n_items, "train_samples": len(train), "valid_samples": len(valid),
                 "test_samples": len(test)},
        "history": trainer.history,
        "runtime": {
            **environment(device),
            "train_seconds": epoch_seconds,
            "valid_seconds": [t["valid"] for t in trainer.times],
            "eval_seconds": test_seconds,
            "samples_per_second": len(train) / float(np.mean(epoch_seconds)),
            "peak_memory_mb": peak_memory_mb(device),
            "resumed_after_epoch": resumed_from,
        },
    }
    final = trainer.state_dict()
    final["model"] = final.pop("best_model")  # model.pt: the weights that were tested
    metrics = write_run_outputs(outputs, metrics, test.sample_ids.numpy(), ranks,
                                final if outputs.model is not None else None,
                                session_ids_of(test))
    checkpoint.unlink(missing_ok=True)
    t = metrics["test"]
    log.info("test (best epoch %d of %d): P@20 %.4f MRR@20 %.4f NDCG@20 %.4f | %.1f s/epoch, "
             "peak memory %s MB", trainer.best_epoch, trainer.epoch, t["P@20"], t["MRR@20"],
             t["NDCG@20"], metrics["seconds_per_epoch"],
             {k: round(v) for k, v in metrics["runtime"]["peak_memory_mb"].items()})
    return metrics
