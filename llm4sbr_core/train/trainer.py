"""The training loop of one run: epochs, validation, selection, checkpoints.

    for epoch in 1..epochs:
        one shuffled pass over TRAIN: cross-entropy over all items (+ the model's own
            auxiliary loss, if it has one), Adam, then one StepLR step
        rank every VALID target against the whole catalogue → P/MRR/NDCG@{5,10,20}
        keep the weights of the best epoch by ``select_metric`` (validation, never test)
        save ``last.pt``: everything needed to continue bit for bit
        stop once ``patience`` epochs in a row brought no improvement
    load the best weights; the run (train/run.py) ranks the TEST targets ONCE

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
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.batches import SampleTensors
from ..errors import InvalidTypeError, TrainingDivergedError
from ..io import file_digest
from ..logs import progress as progress_bar
from ..metrics import metrics_from_ranks, target_ranks
from ..models import Backbone
from .checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from .settings import RunSettings

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


def fingerprint(settings: RunSettings, tables: Sequence[str | Path],
                extra_files: Mapping[str, str | Path] | None = None) -> str:
    """What a resumable checkpoint must match: the run's settings, its data tables and
    the other files it reads (intent / item-text vectors, by name)."""
    h = hashlib.sha256(json.dumps(settings.record(), sort_keys=True).encode())
    for path in tables:
        h.update(file_digest(path).encode())
    for name, path in sorted((extra_files or {}).items()):
        h.update(f"{name}={file_digest(path)}".encode())
    return h.hexdigest()


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
        raise InvalidTypeError(f"{type(model).__name__} overrides scores(), so its "
                               "auxiliary_loss(batch, enc) cannot share the scoring pass; take "
                               "auxiliary_loss(batch) instead")
    if n not in (1, 2):
        raise InvalidTypeError(f"{type(model).__name__}.auxiliary_loss must take (batch) or "
                               "(batch, enc)")
    return n == 2


class Trainer:
    """Owns the model, optimizer, scheduler, generators and early-stopping state of a run."""

    def __init__(self, model: Backbone, train: SampleTensors, valid: SampleTensors,
                 settings: RunSettings, device: torch.device, progress: bool = True):
        self.model = model.to(device)
        self.aux_takes_encoded = takes_encoded(model)
        self.train, self.valid = train, valid
        self.settings = settings
        self.device = device
        self.progress = progress
        self.optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr,
                                          weight_decay=settings.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=settings.lr_step, gamma=settings.lr_gamma)
        # Shuffling draws from its own generator, so the order of the samples does not
        # depend on how many random numbers the model (dropout) consumed.
        self.generator = torch.Generator().manual_seed(settings.seed)
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
        return self.epoch >= self.settings.epochs or self.bad_epochs >= self.settings.patience

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
        bar = progress_bar(total=len(self.train), desc=f"epoch {self.epoch + 1}", unit="sample",
                           unit_scale=True, leave=False, disable=not self.progress)
        for step, batch in enumerate(self.train.batches(self.settings.batch_size, shuffle=True,
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
            raise TrainingDivergedError(f"training loss is {mean} in epoch {self.epoch + 1}: the "
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
                 for b in samples.batches(self.settings.eval_batch_size)]
        return torch.cat(ranks).cpu().numpy()

    def validate(self) -> dict[str, float]:
        return metrics_from_ranks(self.evaluate(self.valid))

    def fit(self, checkpoint: str | Path | None = None, stop_after: int | None = None) -> bool:
        """Train until early stopping or the epoch budget; True when finished.

        ``stop_after`` returns after that many epochs in this call (unfinished): the same
        state a job killed after those epochs leaves in ``checkpoint``.
        """
        metric = self.settings.select_metric
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
        metric = self.settings.select_metric
        best, best_value = 0, -math.inf  # the best epoch so far, as fit() chose it
        for j, past in enumerate(self.history[:i + 1]):
            if past["valid"][metric] > best_value:
                best, best_value = j + 1, past["valid"][metric]
        shown = dict.fromkeys([metric, "P@20", "MRR@20", "NDCG@20"])
        valid = " ".join(f"{k} {h['valid'][k]:.4f}" for k in shown)
        aux = f" (aux {h['aux_loss']:.4f})" if "aux_loss" in h else ""
        stop = h["epoch"] - best >= self.settings.patience
        log.info("epoch %d/%d%s: loss %.4f%s lr %.2g | valid %s | train %.1f s (%.0f samples/s) "
                 "valid %.1f s | best epoch %d%s", h["epoch"], self.settings.epochs,
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
            "run": self.settings.record(),
            "fingerprint": self.fingerprint,
        }

    def resume(self, checkpoint: str | Path) -> int:
        """Continue from ``checkpoint`` if it is a readable checkpoint of this run (same
        fingerprint); returns the number of epochs restored (0: starting afresh)."""
        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            return 0
        try:
            state = load_checkpoint(checkpoint)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
            log.warning("cannot read %s (%s): starting afresh", checkpoint, e)
            return 0
        if not isinstance(state, dict):
            log.warning("cannot read %s (not a checkpoint): starting afresh", checkpoint)
            return 0
        if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring %s: it belongs to other settings or data", checkpoint)
            return 0
        self.load_state_dict(state)
        log.info("resuming from %s after epoch %d", checkpoint, self.epoch)
        for i in range(len(self.history)):
            self.log_epoch(i, restored=True)
        return self.epoch

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.best_model = {k: v.to(self.device) for k, v in state["best_model"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], self.generator)
        self.epoch, self.best_epoch = state["epoch"], state["best_epoch"]
        self.best_metric, self.bad_epochs = state["best_metric"], state["bad_epochs"]
        self.history, self.times = list(state["history"]), list(state["times"])


