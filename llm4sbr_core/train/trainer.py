"""The training loop: one backbone × variant × seed on one dataset.

    for epoch in 1..epochs:
        one shuffled pass over TRAIN: cross-entropy over all items (+ the model's own
            auxiliary loss, if it has one), Adam, then one StepLR step
        rank every VALID target against the whole catalogue → P/MRR/NDCG@{5,10,20}
        keep the weights of the best epoch by ``select_metric`` (validation, never test)
        save ``last.pt``: everything needed to continue bit for bit
        stop once ``patience`` epochs in a row brought no improvement
    load the best weights, rank the TEST targets ONCE → metrics.json, ranks.parquet, model.pt

Resume: ``last.pt`` is written atomically after every completed epoch and holds the model,
the best weights so far, Adam's and StepLR's states, every random generator (torch, CUDA,
numpy, Python, the shuffling generator), the history and the early-stopping counters,
plus a fingerprint of the run's settings and data. A run that finds a ``last.pt`` with
its own fingerprint continues after that epoch, so a job killed mid-way and started again
ends with the same metrics.json and ranks.parquet as one that was never interrupted
(timing fields aside, see :data:`TIMING_KEYS`). A ``last.pt`` of other settings or data is
ignored. It is deleted once the outputs are written; ``model.pt`` keeps the final state.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import pickle
import platform
import resource
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.build import TABLE_FILES
from ..errors import ConfigError
from ..io import AtomicFiles, file_digest
from ..metrics import metrics_from_ranks, target_ranks
from ..models import Backbone, get_backbone
from ..models.llm4sbr import LLM4SBR
from ..models.llmseqsim import item_text_intents
from ..models.textinit import init_item_table_from_text
from ..data.batches import SampleTensors, load_samples
from .checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint, seed_everything
from .settings import run_config, train_defaults
from ..variants import parse_variant

log = logging.getLogger(__name__)

__all__ = ["TIMING_KEYS", "Trainer", "build_model", "load_intents", "load_training_graph",
           "resolve_device", "run_config", "run_training", "train_defaults", "without_timing",
           "write_training_graph"]

#: Keys of metrics.json that hold wall-clock measurements; everything else is identical
#: for two CPU runs with the same settings, seed and data.
TIMING_KEYS: tuple[str, ...] = ("seconds_per_epoch", "runtime")
CHECKPOINT_FORMAT = 1


# --------------------------------------------------------------------------- settings

def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda if available, else cpu; an unavailable device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", f"{name!r} asked for, but CUDA is not available")
    return device


def constructor_params(backbone: type[Backbone], params: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``train.backbone_params`` the backbone's constructor takes.

    The rest must be keyword parameters of its ``build_training_graph`` (GCE-GNN's
    ``window``), which receives them all; any other key is a config error.
    """
    def keywords(fn) -> tuple[set[str], bool]:
        ps = inspect.signature(fn).parameters.values()
        named = {p.name for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        return named - {"self", "cls", "n_items", "dim", "graph", "train"}, any(
            p.kind == p.VAR_KEYWORD for p in ps)

    ctor, ctor_varkw = keywords(backbone.__init__)
    graph = keywords(backbone.build_training_graph)[0] if backbone.needs_training_graph else set()
    unknown = sorted(set(params) - ctor - graph)
    if unknown and not ctor_varkw:
        raise ConfigError(f"train.backbone_params.{backbone.name or backbone.__name__}",
                          f"unknown parameter(s) {unknown} of {backbone.__name__}; it takes "
                          f"{sorted(ctor | graph)}")
    return {k: v for k, v in params.items() if k in ctor or (ctor_varkw and k not in graph)}


def build_model(backbone: type[Backbone], variant: str, n_items: int, dim: int,
                params: Mapping[str, Any], graph: Mapping[str, np.ndarray] | None, *,
                intents: Mapping[str, np.ndarray] | None = None,
                item_vectors: np.ndarray | None = None, tau: float = 0.1,
                shared_projection: bool = True) -> Backbone:
    """The network a variant trains (see llm4sbr_core/variants.py).

    ``base``: the backbone; ``textinit``: the backbone with its item table initialised
    from ``item_vectors`` (items.npy); the LLM variants: the backbone inside the LLM4SBR
    wrapper, reading ``intents`` (view → [samples, t] array, memory-mapped).
    """
    spec = parse_variant(variant)
    kwargs = constructor_params(backbone, params)
    if backbone.needs_training_graph:
        kwargs["graph"] = graph
    elif graph is not None:
        raise ValueError(f"{backbone.__name__} needs no training graph, but one was given")
    model = backbone(n_items, dim, **kwargs)
    if spec.kind == "textinit":
        if item_vectors is None:
            raise ValueError(f"variant {variant!r} needs the item text vectors (items.npy)")
        n = init_item_table_from_text(model.item_embedding, item_vectors)
        log.info("item table: %d of %d items initialised from their text vectors", n, n_items)
    elif item_vectors is not None:
        raise ValueError(f"variant {variant!r} does not read item text vectors")
    if spec.mode is None:
        if intents:
            raise ValueError(f"variant {variant!r} does not read LLM intents")
        return model
    return LLM4SBR(model, intents or {}, mode=spec.mode, tau=tau,
                   shared_projection=shared_projection)


def shuffled_within_splits(intents: Mapping[str, np.ndarray], splits: list[SampleTensors],
                           seed: int = 0) -> dict[str, np.ndarray]:
    """The ``-shuffled`` control: every sample gets the intent rows of another sample of
    its split (one fixed permutation per split, the same for every view and run seed)."""
    rng = np.random.default_rng(seed)
    order = np.arange(sum(len(s) for s in splits))
    for split in splits:
        ids = split.sample_ids.numpy()
        order[ids] = ids[rng.permutation(len(ids))]
    return {view: np.asarray(array)[order] for view, array in intents.items()}


def load_intents(paths: Mapping[str, str | Path], n_samples: int) -> dict[str, np.ndarray]:
    """view → the localized intent vectors of ``paths[view]``, memory-mapped (read-only).

    Row i is sample_id i of the dataset's samples (all splits): the row count must be
    ``n_samples`` and the values finite, or the error names the file.
    """
    out = {}
    for view, path in paths.items():
        array = np.load(path, mmap_mode="r")
        if array.ndim != 2 or array.shape[0] != n_samples:
            raise ValueError(f"{path}: intent vectors of shape {array.shape}, expected one row "
                             f"per sample ({n_samples} samples in train + valid + test)")
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{path}: intent vectors must be floating point, got {array.dtype}")
        # One streaming pass (memmapped pages are dropped again): NaNs would only show
        # up as a diverged loss, epochs later.
        for start in range(0, n_samples, 65536):
            if not np.isfinite(array[start:start + 65536]).all():
                raise ValueError(f"{path}: NaN or infinite values in rows {start}.."
                                 f"{min(start + 65536, n_samples) - 1}")
        out[view] = array
    return out


def training_graph(backbone: type[Backbone], train: SampleTensors, n_items: int,
                   params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays ``backbone`` builds from the training sessions (checked to be arrays).

    ``train`` should be untruncated (``load_samples`` without ``max_len``): the graph is
    of whole training sessions, which a cut input would lose the head of.
    """
    constructor_params(backbone, params)  # reject unknown keys before the work
    graph = backbone.build_training_graph(train, n_items, **params)
    bad = [k for k, v in graph.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise TypeError(f"{backbone.__name__}.build_training_graph returned non-arrays: {bad}")
    return graph


def write_training_graph(backbone: str | type[Backbone], train_path: str | Path,
                         items_path: str | Path, out_path: str | Path,
                         params: Mapping[str, Any]) -> None:
    """rule build_training_graph: the backbone's training graph as an .npz (atomic)."""
    cls = get_backbone(backbone)
    graph = training_graph(cls, load_samples(train_path), count_items(items_path), params)
    with AtomicFiles() as files, open(files.temp_path(out_path), "wb") as f:
        np.savez(f, **graph)
    log.info("%s training graph: %s", cls.__name__,
             ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in graph.items()))


def load_training_graph(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def count_items(items_path: str | Path) -> int:
    """N, the number of items (ids 1..N) of a dataset's items.parquet."""
    ids = pq.read_table(items_path, columns=["item_id"])["item_id"].to_numpy()
    if len(ids) == 0 or ids.min() != 1 or ids.max() != len(ids):
        raise ValueError(f"{items_path}: item ids are not 1..N")
    return len(ids)


# --------------------------------------------------------------------------- the loop

def takes_encoded(model: Backbone) -> bool:
    """Whether the model's ``auxiliary_loss`` takes ``(batch, enc)`` rather than ``(batch)``.

    The two-argument form is computed from the :class:`Encoded` of the scoring pass,
    which the trainer can only split out of ``scores`` when the model does not override it.
    """
    fn = getattr(model, "auxiliary_loss", None)
    if fn is None:
        return False
    n = len([p for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
    if n == 2 and type(model).scores is not Backbone.scores:
        raise TypeError(f"{type(model).__name__} overrides scores(), so its "
                        "auxiliary_loss(batch, enc) cannot share the scoring pass; take "
                        "auxiliary_loss(batch) instead")
    if n not in (1, 2):
        raise TypeError(f"{type(model).__name__}.auxiliary_loss must take (batch) or "
                        "(batch, enc)")
    return n == 2


class Trainer:
    """Owns the model, optimizer, scheduler, generators and early-stopping state of a run."""

    def __init__(self, model: Backbone, train: SampleTensors, valid: SampleTensors,
                 run: Mapping[str, Any], device: torch.device, progress: bool = True):
        self.model = model.to(device)
        self.aux_takes_encoded = takes_encoded(model)
        self.train, self.valid = train, valid
        self.run = dict(run)
        self.device = device
        self.progress = progress
        self.optimizer = torch.optim.Adam(model.parameters(), lr=run["lr"],
                                          weight_decay=run["weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=run["lr_step"],
                                                         gamma=run["lr_gamma"])
        # Shuffling draws from its own generator, so the order of the samples does not
        # depend on how many random numbers the model (dropout) consumed.
        self.generator = torch.Generator().manual_seed(run["seed"])
        self.epoch = 0  # epochs completed
        self.best_epoch = 0
        self.best_metric = -math.inf
        self.best_model: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0  # epochs since the last improvement
        self.history: list[dict[str, Any]] = []
        self.times: list[dict[str, float]] = []  # wall-clock per epoch (kept apart)
        #: settings + data digest; a checkpoint resumes only a run with the same one
        self.fingerprint = ""

    @property
    def finished(self) -> bool:
        return self.epoch >= self.run["epochs"] or self.bad_epochs >= self.run["patience"]

    def loss(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cross-entropy over items 1..N (column 0 is padding), plus the model's auxiliary
        loss if it has one (S²-DHCN's contrastive loss), on the same forward pass."""
        aux_fn = getattr(self.model, "auxiliary_loss", None)
        if self.aux_takes_encoded:
            # auxiliary_loss(batch, enc): the scores and the auxiliary loss share one
            # encode(), so gradients of both flow through the same session vectors.
            enc = self.model.encode(batch)
            scores = self.model.session_head(enc) @ enc.item_table.T
            aux = aux_fn(batch, enc)
        else:
            scores = self.model.scores(batch)
            aux = aux_fn(batch) if aux_fn is not None else None
        loss = F.cross_entropy(scores[:, 1:], batch.targets - 1)
        return (loss if aux is None else loss + aux), aux

    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        lr = self.scheduler.get_last_lr()[0]
        total = torch.zeros((), device=self.device)
        total_aux = torch.zeros((), device=self.device)
        seen = 0
        start = time.perf_counter()
        bar = tqdm(total=len(self.train), desc=f"epoch {self.epoch + 1}", unit="sample",
                   unit_scale=True, leave=False, file=sys.stderr, disable=not self.progress,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0)
        for step, batch in enumerate(self.train.batches(self.run["batch_size"], shuffle=True,
                                                        generator=self.generator)):
            batch = batch.to(self.device)
            loss, aux = self.loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            n = len(batch.targets)
            total += loss.detach() * n  # summed on the device: no sync per step
            if aux is not None:
                total_aux += aux.detach() * n
            seen += n
            bar.update(n)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        bar.close()
        self.scheduler.step()
        mean = total.item() / seen
        seconds = time.perf_counter() - start
        if not math.isfinite(mean):
            raise FloatingPointError(f"training loss is {mean} in epoch {self.epoch + 1}: the "
                                     "model diverged (try a lower lr)")
        out = {"loss": mean, "lr": lr, "seconds": seconds}
        if getattr(self.model, "auxiliary_loss", None) is not None:
            out["aux_loss"] = total_aux.item() / seen
        return out

    @torch.no_grad()
    def evaluate(self, samples: SampleTensors) -> np.ndarray:
        """1-based full-catalogue rank of every target, in sample order."""
        self.model.eval()
        ranks = [target_ranks(self.model.scores(b.to(self.device)), b.targets.to(self.device))
                 for b in samples.batches(self.run["eval_batch_size"])]
        return torch.cat(ranks).cpu().numpy()

    def validate(self) -> dict[str, float]:
        return metrics_from_ranks(self.evaluate(self.valid))

    def fit(self, checkpoint: str | Path | None = None, stop_after: int | None = None) -> bool:
        """Train until early stopping or the epoch budget; True when finished.

        ``stop_after`` returns after that many epochs in this call (unfinished): the same
        state a job killed after those epochs leaves in ``checkpoint``.
        """
        metric = self.run["select_metric"]
        done = 0
        while not self.finished:
            if stop_after is not None and done >= stop_after:
                return False
            train = self.train_epoch()
            start = time.perf_counter()
            valid = self.validate()
            valid_seconds = time.perf_counter() - start
            self.epoch += 1
            done += 1
            if valid[metric] > self.best_metric:
                self.best_metric, self.best_epoch, self.bad_epochs = valid[metric], self.epoch, 0
                self.best_model = {k: v.detach().clone()
                                   for k, v in self.model.state_dict().items()}
            else:
                self.bad_epochs += 1
            record = {"epoch": self.epoch, "lr": train["lr"], "loss": train["loss"]}
            if "aux_loss" in train:
                record["aux_loss"] = train["aux_loss"]
            self.history.append({**record, "valid": valid})
            self.times.append({"train": train["seconds"], "valid": valid_seconds})
            if checkpoint is not None:
                save_checkpoint(checkpoint, self.state_dict())
            self.log_epoch(len(self.history) - 1)
        return True

    def log_epoch(self, i: int, restored: bool = False) -> None:
        """One line for epoch ``i + 1`` (a resumed job re-logs the restored epochs)."""
        h, t = self.history[i], self.times[i]
        metric = self.run["select_metric"]
        best, best_value = 0, -math.inf  # the best epoch so far, as fit() chose it
        for j, past in enumerate(self.history[:i + 1]):
            if past["valid"][metric] > best_value:
                best, best_value = j + 1, past["valid"][metric]
        shown = dict.fromkeys([metric, "P@20", "MRR@20", "NDCG@20"])
        valid = " ".join(f"{k} {h['valid'][k]:.4f}" for k in shown)
        aux = f" (aux {h['aux_loss']:.4f})" if "aux_loss" in h else ""
        stop = h["epoch"] - best >= self.run["patience"]
        log.info("epoch %d/%d%s: loss %.4f%s lr %.2g | valid %s | train %.1f s (%.0f samples/s) "
                 "valid %.1f s | best epoch %d%s", h["epoch"], self.run["epochs"],
                 " (restored)" if restored else "", h["loss"], aux, h["lr"], valid, t["train"],
                 len(self.train) / max(t["train"], 1e-9), t["valid"], best,
                 ", early stop" if stop else "")

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "best_model": self.best_model,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(self.generator),
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "best_metric": self.best_metric,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "times": self.times,
            "run": self.run,
            "fingerprint": self.fingerprint,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.best_model = {k: v.to(self.device) for k, v in state["best_model"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], self.generator)
        self.epoch, self.best_epoch = state["epoch"], state["best_epoch"]
        self.best_metric, self.bad_epochs = state["best_metric"], state["bad_epochs"]
        self.history, self.times = list(state["history"]), list(state["times"])


# --------------------------------------------------------------------------- one run

def fingerprint(run: Mapping[str, Any], data_dir: Path,
                extra_files: Mapping[str, str | Path] | None = None) -> str:
    """What a resumable checkpoint must match: the run's settings and its data files
    (plus the intent / item-text vectors a variant reads)."""
    h = hashlib.sha256(json.dumps(run, sort_keys=True).encode())
    for name in TABLE_FILES:
        h.update(file_digest(data_dir / name).encode())
    for name, path in sorted((extra_files or {}).items()):
        h.update(f"{name}={file_digest(path)}".encode())
    return h.hexdigest()


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    out = {"host": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def without_timing(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """metrics.json without its wall-clock keys: equal for equal runs on CPU."""
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def run_training(run: Mapping[str, Any], data_dir: str | Path, out_dir: str | Path, *,
                 backbone: type[Backbone] | None = None,
                 graph: Mapping[str, np.ndarray] | None = None,
                 intents: Mapping[str, str | Path] | None = None,
                 item_vectors: str | Path | None = None,
                 stop_after: int | None = None, progress: bool = True,
                 threads: int | None = None,
                 trainer_cls: type[Trainer] = Trainer) -> dict[str, Any] | None:
    """Train, select on validation, test once; write ``out_dir``/{metrics.json,
    ranks.parquet, model.pt} atomically and return the metrics.

    ``run`` comes from :func:`run_config`. ``data_dir`` holds the dataset's
    {train,valid,test,items}.parquet. ``backbone`` overrides the class looked up by
    ``run["backbone"]``. ``graph`` is the backbone's training graph (built here when the
    backbone needs one and none is given). ``intents`` maps each view an LLM variant reads
    to its localized intent vectors (.npy, memory-mapped, row = sample_id);
    ``item_vectors`` is the item text vectors' items.npy (variant ``textinit`` and the
    ``-items`` controls). ``stop_after`` stops after that many epochs without writing
    outputs (returns None): a simulated kill, resumed by the next call.
    ``threads`` (the job's threads under Snakemake) sets torch's CPU threads when
    ``run["num_threads"]`` is null; with neither, torch's default stays.
    """
    run = dict(run)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    cls = backbone if backbone is not None else get_backbone(run["backbone"])
    device = resolve_device(run["device"])
    if (run["num_threads"] or threads) is not None:
        torch.set_num_threads(run["num_threads"] or threads)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.cuda.reset_peak_memory_stats(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    last = out_dir / "last.pt"

    train, valid, test = (load_samples(data_dir / f"{s}.parquet", run["max_len"])
                          for s in ("train", "valid", "test"))
    n_items = count_items(data_dir / "items.parquet")
    for split, samples in (("train", train), ("valid", valid), ("test", test)):
        if int(samples.targets.max()) > n_items or int(samples.items.max()) > n_items:
            raise ValueError(f"{data_dir}/{split}.parquet: item id above N = {n_items}")
    if cls.needs_training_graph and graph is None:
        graph = training_graph(cls, load_samples(data_dir / "train.parquet"), n_items,
                               run["backbone_params"])
    log.info("%s/%s seed %d on %s: %d items, %d/%d/%d train/valid/test samples, device %s",
             run["backbone"], run["variant"], run["seed"], run["dataset"], n_items, len(train),
             len(valid), len(test), device)
    n_samples = len(train) + len(valid) + len(test)
    if intents:
        ids = torch.cat([train.sample_ids, valid.sample_ids, test.sample_ids])
        if int(ids.min()) < 0 or int(ids.max()) >= n_samples:
            raise ValueError(f"{data_dir}: sample ids are not 0..{n_samples - 1}, so they "
                             "cannot index the intent vectors")
    vectors = np.load(item_vectors, mmap_mode="r") if item_vectors is not None else None
    spec = parse_variant(run["variant"])
    if spec.source == "items":  # the control: item-text "intents", no LLM answers
        if intents or vectors is None:
            raise ValueError(f"variant {spec.name!r} builds its intents from the item text "
                             "vectors: give item_vectors and no intent files")
        intent_arrays = item_text_intents([train, valid, test], vectors, spec.views)
    else:
        intent_arrays = load_intents(intents or {}, n_samples)
    if spec.shuffled:
        intent_arrays = shuffled_within_splits(intent_arrays, [train, valid, test])

    seed_everything(run["seed"])
    model = build_model(cls, run["variant"], n_items, run["dim"], run["backbone_params"], graph,
                        intents=intent_arrays,
                        item_vectors=vectors if spec.kind == "textinit" else None,
                        tau=run["tau"], shared_projection=run["shared_projection"])
    trainer = trainer_cls(model, train, valid, run, device, progress=progress)
    extra = {f"intents_{v}": p for v, p in (intents or {}).items()}
    if item_vectors is not None:
        extra["item_vectors"] = item_vectors
    trainer.fingerprint = fingerprint(run, data_dir, extra)
    resumed_from = 0
    if last.exists():
        try:
            state = load_checkpoint(last)
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:
            state = {}
            log.warning("cannot read %s (%s): starting afresh", last, e)
        if (state.get("format") == CHECKPOINT_FORMAT
                and state.get("fingerprint") == trainer.fingerprint):
            trainer.load_state_dict(state)
            resumed_from = trainer.epoch
            log.info("resuming from %s after epoch %d", last, trainer.epoch)
            for i in range(len(trainer.history)):
                trainer.log_epoch(i, restored=True)
        elif state:
            log.warning("ignoring %s: it belongs to other settings or data", last)

    if not trainer.fit(last, stop_after):
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
        "config": run,
        "data": {"items": n_items, "train_samples": len(train), "valid_samples": len(valid),
                 "test_samples": len(test)},
        "history": trainer.history,
        "runtime": {
            "device": str(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
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
    with AtomicFiles() as files:
        files.write_json(out_dir / "metrics.json", metrics)
        files.write_parquet(out_dir / "ranks.parquet", pa.table({
            "sample_id": pa.array(test.sample_ids.numpy(), pa.int64()),
            "rank": pa.array(ranks.astype(np.int64), pa.int64())}))
        torch.save(final, files.temp_path(out_dir / "model.pt"))
    last.unlink(missing_ok=True)
    t = metrics["test"]
    log.info("test (best epoch %d of %d): P@20 %.4f MRR@20 %.4f NDCG@20 %.4f | %.1f s/epoch, "
             "peak memory %s MB", trainer.best_epoch, trainer.epoch, t["P@20"], t["MRR@20"],
             t["NDCG@20"], metrics["seconds_per_epoch"],
             {k: round(v) for k, v in metrics["runtime"]["peak_memory_mb"].items()})
    return metrics

