"""The training loop on a tiny synthetic dataset with a tiny backbone (seconds in all)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from llm4sbr_core.config import load_config
from llm4sbr_core.data.batches import SampleTensors, SessionBatch, load_samples
from llm4sbr_core.errors import ConfigError
from llm4sbr_core.machine import cpu_model
from llm4sbr_core.metrics import metrics_from_ranks
from llm4sbr_core.models import BACKBONE_PATHS, Backbone, Encoded, get_backbone
from llm4sbr_core.models.build import build_model
from llm4sbr_core.train.checkpoint import load_checkpoint
from llm4sbr_core.train.intents import (
    derangement,
    random_intents,
    run_intents,
    shuffled_within_splits,
)
from llm4sbr_core.train.outputs import TIMING_KEYS, RunOutputs, without_timing
from llm4sbr_core.train.run import (
    RunInputs,
    load_training_graph,
    resolve_device,
    run_training,
    write_training_graph,
)
from llm4sbr_core.train.settings import RunSettings, backbone_names, run_config, train_defaults
from llm4sbr_core.train.trainer import Trainer
from llm4sbr_core.variants import parse_variant

N_ITEMS = 40
METRIC_NAMES = [f"{m}@{k}" for m in ("P", "MRR", "NDCG") for k in (5, 10, 20)]


class Tiny(Backbone):
    """h_global = mean of the click embeddings, h_local = the last click's; head = sum."""

    name = "tiny"

    def __init__(self, n_items: int, dim: int, *, dropout: float = 0.2):
        super().__init__(n_items, dim)
        self.dropout = nn.Dropout(dropout)  # draws random numbers: resume must restore them
        self.proj = nn.Linear(dim, dim)

    def encode(self, batch: SessionBatch) -> Encoded:
        clicks = self.dropout(self.item_embedding(batch.items))
        mask = batch.mask.unsqueeze(-1).float()
        h_global = (clicks * mask).sum(1) / mask.sum(1)
        h_local = self.proj(self.item_embedding(batch.last_items))
        return Encoded(h_local, h_global, self.item_embedding.weight)

    def session_head(self, enc: Encoded) -> torch.Tensor:
        return enc.h_local + enc.h_global


class TinyAux(Tiny):
    """With an auxiliary loss the trainer must add."""

    def auxiliary_loss(self, batch: SessionBatch) -> torch.Tensor:
        return 0.5 * self.item_embedding(batch.items).pow(2).mean()


class TinyAuxEncoded(Tiny):
    """auxiliary_loss(batch, enc): computed from the scoring pass's session vectors."""

    encodes = 0

    def encode(self, batch: SessionBatch) -> Encoded:
        TinyAuxEncoded.encodes += 1
        return super().encode(batch)

    def auxiliary_loss(self, batch: SessionBatch, enc: Encoded) -> torch.Tensor:
        return 0.1 * enc.h_global.pow(2).mean()


class TinyGraph(Tiny):
    """Needs a graph of the training sessions: item popularity (clicks within ``window``
    of the end of the untruncated input)."""

    needs_training_graph = True
    seen_window: list[int] = []

    @classmethod
    def build_training_graph(cls, train: SampleTensors, n_items: int, *, window: int = 100,
                             **hparams):
        cls.seen_window.append(window)
        keep = torch.arange(train.items.shape[1]) >= train.lengths.view(-1, 1) - window
        clicks = train.items[(train.items > 0) & keep]
        counts = np.bincount(clicks.numpy(), minlength=n_items + 1)
        return {"popularity": counts.astype(np.float32)}

    def __init__(self, n_items: int, dim: int, *, dropout: float = 0.2, graph=None):
        super().__init__(n_items, dim, dropout=dropout)
        assert graph is not None and graph["popularity"].shape == (n_items + 1,)
        self.register_buffer("popularity", torch.from_numpy(graph["popularity"]))


class Crash(RuntimeError):
    pass


class TinyCrashing(Tiny):
    """Dies in the middle of a later epoch, like a killed job."""

    calls_left = 0

    def scores(self, batch: SessionBatch) -> torch.Tensor:
        if self.training:
            TinyCrashing.calls_left -= 1
            if TinyCrashing.calls_left < 0:
                raise Crash("killed")
        return super().scores(batch)


def write_samples(path: Path, rows: list[tuple[list[int], int]], first_id: int) -> None:
    pq.write_table(pa.table({
        "sample_id": pa.array(range(first_id, first_id + len(rows)), pa.int64()),
        "session_id": pa.array(range(first_id, first_id + len(rows)), pa.int64()),
        "items": pa.array([r[0] for r in rows], pa.list_(pa.int64())),
        "target": pa.array([r[1] for r in rows], pa.int64())}), path)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Sessions that mostly walk i → i + 1 (learnable), with some random clicks."""
    out = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    first = 0
    for split, n in (("train", 600), ("valid", 80), ("test", 90)):
        rows = []
        for _ in range(n):
            length = int(rng.integers(1, 7))
            start = int(rng.integers(1, N_ITEMS + 1))
            walk = [(start + k - 1) % N_ITEMS + 1 for k in range(length + 1)]
            if rng.random() < 0.2:
                walk[-1] = int(rng.integers(1, N_ITEMS + 1))
            rows.append((walk[:-1], walk[-1]))
        write_samples(out / f"{split}.parquet", rows, first)
        first += n
    pq.write_table(pa.table({"item_id": pa.array(range(1, N_ITEMS + 1), pa.int64()),
                             "raw_id": [str(i) for i in range(1, N_ITEMS + 1)],
                             "text": [f"item {i}" for i in range(1, N_ITEMS + 1)],
                             "count": [1] * N_ITEMS}), out / "items.parquet")
    return out


def settings(backbone=Tiny, seed: int = 0, variant: str = "base", **train) -> RunSettings:
    base = {"epochs": 3, "patience": 5, "batch_size": 32, "eval_batch_size": 50, "dim": 16,
            "lr": 0.01, "lr_step": 2, "device": "cpu"}
    return RunSettings.from_config({**base, **train}, "synthetic", backbone, variant, seed)


def train(data: Path, out: Path, backbone=Tiny, **kwargs) -> dict | None:
    run = kwargs.pop("run", None) or settings(backbone)
    inputs = RunInputs.in_dir(data, intents=kwargs.pop("intents", None),
                              item_vectors=kwargs.pop("item_vectors", None))
    return run_training(run, inputs, RunOutputs.in_dir(out), backbone=backbone, progress=False,
                        **kwargs)


def ranks_of(out: Path) -> pa.Table:
    return pq.read_table(out / "ranks.parquet")


# ---------------------------------------------------------------------------- learning

def test_loss_decreases(data, tmp_path):
    metrics = train(data, tmp_path, run=settings(epochs=4, lr_step=10))
    losses = [h["loss"] for h in metrics["history"]]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.8 * losses[0]
    assert [h["lr"] for h in metrics["history"]] == [0.01] * 4
    # i → i + 1 is learnable: far better than chance (P@5 = 5 / 40)
    assert metrics["test"]["P@5"] > 0.3


def test_step_lr_schedule(data, tmp_path):
    metrics = train(data, tmp_path, run=settings(epochs=3, lr_step=2, lr_gamma=0.1))
    assert [h["lr"] for h in metrics["history"]] == pytest.approx([0.01, 0.01, 0.001])


@pytest.mark.parametrize("backbone", [TinyAux, TinyAuxEncoded])
def test_auxiliary_loss_is_added(data, tmp_path, backbone):
    TinyAuxEncoded.encodes = 0
    metrics = train(data, tmp_path / "aux", backbone=backbone, run=settings(backbone, epochs=1))
    plain = train(data, tmp_path / "plain", run=settings(epochs=1))
    h, p = metrics["history"][0], plain["history"][0]
    assert h["aux_loss"] > 0 and "aux_loss" not in p
    assert h["loss"] > p["loss"]  # same seed, same data: the extra term shows in the loss
    if backbone is TinyAuxEncoded:  # one encode per training step (19) and eval batch (2 + 2)
        assert TinyAuxEncoded.encodes == 19 + 2 + 2


def test_auxiliary_loss_with_encoded_needs_the_default_scores():
    class Bad(TinyAuxEncoded):
        def scores(self, batch):
            return super().scores(batch)

    with pytest.raises(TypeError, match="overrides scores"):
        Trainer(Bad(N_ITEMS, 8), None, None, settings(), torch.device("cpu"))


# ------------------------------------------------------------ selection and early stop

class Rigged(Trainer):
    """Validation returns a scripted MRR@20 sequence; records what the weights were."""

    sequence: list[float] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.snapshots: list[torch.Tensor] = []
        self.test_calls: list[torch.Tensor] = []

    def validate(self) -> dict[str, float]:
        self.snapshots.append(self.model.item_embedding.weight.detach().clone())
        value = self.sequence[len(self.snapshots) - 1]
        return {name: value for name in METRIC_NAMES}

    def evaluate(self, samples: SampleTensors) -> np.ndarray:
        if samples is not self.valid:
            self.test_calls.append(self.model.item_embedding.weight.detach().clone())
        return super().evaluate(samples)


def rigged(sequence: list[float]) -> tuple[type[Rigged], list[Rigged]]:
    made: list[Rigged] = []

    class Recorder(Rigged):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    Recorder.sequence = sequence
    return Recorder, made


def test_early_stopping_after_patience_epochs_without_improvement(data, tmp_path):
    # best at epoch 2; epoch 5 only ties it (no improvement); 3 bad epochs → stop after 5
    cls, _ = rigged([0.1, 0.3, 0.2, 0.25, 0.3, 0.9, 0.9])
    metrics = train(data, tmp_path, run=settings(epochs=7, patience=3), trainer_cls=cls)
    assert metrics["epochs"] == 5
    assert metrics["best_epoch"] == 2
    assert metrics["valid"]["MRR@20"] == 0.3
    assert len(metrics["history"]) == 5


def test_no_early_stop_within_patience(data, tmp_path):
    cls, _ = rigged([0.1, 0.2, 0.1, 0.1, 0.3])
    metrics = train(data, tmp_path, run=settings(epochs=5, patience=3), trainer_cls=cls)
    assert metrics["epochs"] == 5 and metrics["best_epoch"] == 5


def test_best_checkpoint_is_chosen_on_valid_and_tested_once(data, tmp_path):
    cls, made = rigged([0.2, 0.5, 0.1, 0.4])
    metrics = train(data, tmp_path, run=settings(epochs=4, patience=10), trainer_cls=cls)
    trainer = made[0]
    assert metrics["best_epoch"] == 2 and metrics["epochs"] == 4
    assert len(trainer.test_calls) == 1  # the test set is ranked once, at the end
    assert torch.equal(trainer.test_calls[0], trainer.snapshots[1])  # epoch 2's weights
    assert not torch.equal(trainer.snapshots[1], trainer.snapshots[3])
    saved = load_checkpoint(tmp_path / "model.pt")
    assert torch.equal(saved["model"]["item_embedding.weight"], trainer.snapshots[1])
    assert metrics["test"] == metrics_from_ranks(ranks_of(tmp_path)["rank"].to_numpy())


# ----------------------------------------------------------- determinism and resuming

def test_same_seed_gives_identical_outputs(data, tmp_path):
    a = train(data, tmp_path / "a")
    b = train(data, tmp_path / "b")
    assert without_timing(a) == without_timing(b)
    files = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in "ab"]
    assert json.dumps(without_timing(files[0])) == json.dumps(without_timing(files[1]))
    assert ranks_of(tmp_path / "a").equals(ranks_of(tmp_path / "b"))
    c = train(data, tmp_path / "c", run=settings(seed=1))
    assert c["history"][0]["loss"] != a["history"][0]["loss"]


def test_resume_after_kill_equals_uninterrupted(data, tmp_path):
    whole = train(data, tmp_path / "whole")
    out = tmp_path / "killed"
    assert train(data, out, stop_after=1) is None  # "killed" after epoch 1
    assert (out / "last.pt").exists() and not (out / "metrics.json").exists()
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert train(data, out, stop_after=1) is None  # and again after epoch 2
    resumed = train(data, out)
    assert resumed["runtime"]["resumed_after_epoch"] == 2
    assert without_timing(resumed) == without_timing(whole)
    assert ranks_of(out).equals(ranks_of(tmp_path / "whole"))
    assert not (out / "last.pt").exists()


def test_crash_mid_epoch_resumes_from_last_completed_epoch(data, tmp_path):
    whole = train(data, tmp_path / "whole")
    out = tmp_path / "crashed"
    TinyCrashing.calls_left = 19 + 5  # 19 batches per epoch: dies inside epoch 2
    with pytest.raises(Crash):
        train(data, out, backbone=TinyCrashing, run=settings(Tiny))
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]  # no partial outputs
    resumed = train(data, out)
    assert without_timing(resumed) == without_timing(whole)
    assert ranks_of(out).equals(ranks_of(tmp_path / "whole"))


def test_checkpoint_of_other_settings_is_ignored(data, tmp_path):
    out = tmp_path / "run"
    train(data, out, run=settings(lr=0.05), stop_after=1)
    fresh = train(data, tmp_path / "fresh")
    again = train(data, out)
    assert again["runtime"]["resumed_after_epoch"] == 0
    assert without_timing(again) == without_timing(fresh)


def test_unreadable_checkpoint_is_ignored(data, tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"not a checkpoint")
    metrics = train(data, out, run=settings(epochs=1))
    assert metrics["runtime"]["resumed_after_epoch"] == 0
    assert "cannot read" in caplog.text
    # a readable file that holds no checkpoint (a saved string, a list) is no error either
    for other in ("some text", [1, 2, 3]):
        torch.save(other, out / "last.pt")
        caplog.clear()
        assert train(data, out, run=settings(epochs=1))["runtime"]["resumed_after_epoch"] == 0
        assert "not a checkpoint" in caplog.text


def test_a_truncated_samples_file_names_the_file_and_the_fix(data, tmp_path):
    broken = tmp_path / "train.parquet"
    broken.write_bytes((data / "train.parquet").read_bytes()[:300])
    with pytest.raises(ValueError, match=r"train\.parquet: cannot read the samples .*forcerun"):
        load_samples(broken)


def test_finished_checkpoint_only_writes_outputs(data, tmp_path):
    """Killed after the last epoch but before the outputs: nothing is trained again."""
    cls, made = rigged([0.3, 0.2, 0.1])

    class CrashAtTest(cls):
        def evaluate(self, samples):
            if samples is not self.valid:
                raise Crash("killed before the outputs")
            return super().evaluate(samples)

    out = tmp_path / "run"
    with pytest.raises(Crash):  # patience 1: finished after epoch 2
        train(data, out, run=settings(patience=1), trainer_cls=CrashAtTest)
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    metrics = train(data, out, run=settings(patience=1), trainer_cls=cls)
    assert len(made[-1].snapshots) == 0 and len(made[-1].test_calls) == 1
    assert metrics["epochs"] == 2 and metrics["best_epoch"] == 1


# --------------------------------------------------------------------------- contract

def test_outputs_follow_the_contract(data, tmp_path):
    metrics = train(data, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model.pt",
                                                         "ranks.parquet"]
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for key in ("valid", "test", "best_epoch", "epochs", "seconds_per_epoch", "config",
                "history", *TIMING_KEYS):
        assert key in on_disk
    assert list(on_disk["test"]) == METRIC_NAMES and list(on_disk["valid"]) == METRIC_NAMES
    assert all(0 <= v <= 1 for v in on_disk["test"].values())
    assert on_disk["valid"] == on_disk["history"][on_disk["best_epoch"] - 1]["valid"]
    config = on_disk["config"]
    assert config["backbone"] == "tiny" and config["variant"] == "base" and config["seed"] == 0
    assert config["select_metric"] == "MRR@20" and config["max_len"] == 50
    assert "backbones" not in config and "seeds" not in config
    runtime = on_disk["runtime"]
    assert runtime["device"] == "cpu" and runtime["peak_memory_mb"]["host"] > 0
    assert runtime["cpu"] == cpu_model()
    ranks = ranks_of(tmp_path)
    assert ranks.column_names == ["sample_id", "session_id", "rank"]
    test = load_samples(data / "test.parquet")
    assert ranks["sample_id"].to_pylist() == test.sample_ids.tolist()
    assert ranks["session_id"].to_pylist() == test.session_ids.tolist()
    r = ranks["rank"].to_numpy()
    assert r.min() >= 1 and r.max() <= N_ITEMS
    assert on_disk["test"] == metrics_from_ranks(r)
    state = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "rng", "epoch", "best_epoch", "best_metric",
                "bad_epochs", "history"):
        assert key in state
    assert set(state["rng"]) >= {"torch", "numpy", "python", "generator"}
    model = Tiny(N_ITEMS, 16)
    model.load_state_dict(state["model"])


def test_cpu_model_is_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                       "model name\t: AMD EPYC 9R14 96-Core Processor\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 9R14 96-Core Processor"
    # Without /proc/cpuinfo (macOS, a sandbox) the platform's answer, never an error.
    assert cpu_model(tmp_path / "missing") == (platform.processor() or platform.machine()
                                               or "unknown CPU")


def test_eval_batch_size_does_not_change_ranks(data, tmp_path):
    train(data, tmp_path / "a", run=settings(epochs=1, eval_batch_size=7))
    train(data, tmp_path / "b", run=settings(epochs=1, eval_batch_size=500))
    assert ranks_of(tmp_path / "a").equals(ranks_of(tmp_path / "b"))


def test_training_graph_is_built_cached_and_passed(data, tmp_path):
    path = tmp_path / "graphs" / "tiny.npz"
    params = {"window": 100, "dropout": 0.2}  # window: graph only; dropout: constructor
    write_training_graph(TinyGraph, data / "train.parquet", data / "items.parquet", path,
                         params=params)
    graph = load_training_graph(path)
    assert graph["popularity"].shape == (N_ITEMS + 1,) and graph["popularity"][0] == 0
    assert [p.name for p in path.parent.iterdir()] == ["tiny.npz"]  # no temp files left
    assert TinyGraph.seen_window[-1] == 100
    run = settings(TinyGraph, epochs=1, backbone_params={"tiny": params})
    given = train(data, tmp_path / "given", backbone=TinyGraph, run=run, graph=graph)
    built = train(data, tmp_path / "built", backbone=TinyGraph, run=run)
    assert without_timing(given) == without_timing(built)
    with pytest.raises(ValueError, match="needs no training graph"):
        train(data, tmp_path / "bad", run=settings(epochs=1), graph=graph)


def test_unknown_backbone_params_are_config_errors(data, tmp_path):
    run = settings(TinyGraph, epochs=1, backbone_params={"tiny": {"windw": 2}})
    with pytest.raises(ConfigError, match=r"train.backbone_params.tiny': unknown parameter\(s\) "
                                          r"\['windw'\] of TinyGraph; it takes \['dropout', "
                                          r"'window'\]"):
        train(data, tmp_path, backbone=TinyGraph, run=run)


# ----------------------------------------------------------------------------- errors

def test_unknown_variant_is_a_clear_error():
    with pytest.raises(ConfigError, match="'train.variants': unknown variant 'llm4sbr2'; a "
                                          r"variant is one of \['base', 'llm4sbr'"):
        run_config({}, "d", "srgnn", "llm4sbr2", 0)


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown backbone 'narm'; known backbones: .*srgnn"):
        run_config({}, "d", "narm", "base", 0)
    with pytest.raises(KeyError, match="unknown backbone 'narm'"):
        get_backbone("narm")
    assert get_backbone(Tiny) is Tiny
    assert backbone_names() == list(BACKBONE_PATHS)
    with pytest.raises(TypeError):
        get_backbone(nn.Linear)


@pytest.mark.parametrize("train_section, message", [
    ({"variants": ["llm4sbr2"]}, "config key 'train.variants.0': 'llm4sbr2' does not match"),
    ({"backbones": ["narm"]}, "config key 'train.backbones.0': 'narm' is not one of"),
    ({"epoch": 3}, "config key 'train.epoch': unknown key"),
    ({"select_metric": "HR@20"}, "config key 'train.select_metric'"),
    ({"device": "gpu"}, "config key 'train.device'"),
])
def test_config_errors_name_the_key(train_section, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(Path(__file__).parents[1] / "config.yaml", overrides={"train": train_section})


def test_run_config_checks_types_and_fills_defaults():
    with pytest.raises(ConfigError, match="config key 'train.lr'"):
        run_config({"lr": "fast"}, "d", "srgnn", "base", 0)
    run = run_config({"backbone_params": {"srgnn": {"step": 2}, "gru4rec": {"x": 1}}},
                     "d", "srgnn", "base", 3)
    defaults = train_defaults()
    assert run["backbone_params"] == {"step": 2} and run["seed"] == 3
    assert run["epochs"] == defaults["epochs"] == 30 and run["eval_batch_size"] == 500
    assert defaults["seeds"] == [0, 1, 2] and defaults["weight_decay"] == 1e-5


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


# ------------------------------------------------------------------- LLM variants

TEXT_DIM = 12


@pytest.fixture(scope="module")
def intent_files(data, tmp_path_factory) -> dict[str, Path]:
    """Intent vectors for every sample (train + valid + test = 770 rows): the short view
    encodes the target (a strong signal), the long view is noise."""
    out = tmp_path_factory.mktemp("intents")
    n = sum(pq.read_metadata(data / f"{s}.parquet").num_rows for s in ("train", "valid", "test"))
    targets = np.concatenate([pq.read_table(data / f"{s}.parquet")["target"].to_numpy()
                              for s in ("train", "valid", "test")])
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(N_ITEMS + 1, TEXT_DIM)).astype(np.float32)
    files = {"short": codes[targets], "long": rng.normal(size=(n, TEXT_DIM)).astype(np.float32),
             "normal": codes[targets] + 0.1}
    paths = {}
    for view, array in files.items():
        paths[view] = out / f"{view}.npy"
        np.save(paths[view], array)
    return paths


def llm_settings(variant: str, **train) -> RunSettings:
    base = {"epochs": 3, "patience": 5, "batch_size": 32, "eval_batch_size": 50, "dim": 16,
            "lr": 0.01, "lr_step": 10, "device": "cpu"}
    return RunSettings.from_config({**base, **train}, "synthetic", Tiny, variant, 0,
                                   intents={"llm": "toy", "encoder": "toy", "r": 5})


def test_llm4sbr_variant_trains_on_memory_mapped_intents(data, intent_files, tmp_path):
    plain = train(data, tmp_path / "base", run=settings(epochs=3, lr_step=10))
    views = {v: intent_files[v] for v in ("short", "long")}
    full = train(data, tmp_path / "full", run=llm_settings("llm4sbr"), intents=views)
    assert full["config"]["intents"]["views"] == ["short", "long"]
    assert all(h["aux_loss"] != 0 for h in full["history"])  # τ (L_a + L_u) is trained
    # The short view carries the target, but the full model passes a view on only through
    # a scalar gate per session (eqs. 10-12) and the alignment loss; the LLM-only variant
    # predicts from the intents, so near-perfect ranks prove each sample reads its own row.
    alone = train(data, tmp_path / "wo_sbr", run=llm_settings("wo_sbr"), intents=views)
    assert alone["test"]["P@5"] > 0.95 > plain["test"]["P@5"]
    state = torch.load(tmp_path / "full/model.pt", weights_only=False)["model"]
    assert "backbone.item_embedding.weight" in state
    assert not any(k.startswith("intents_") for k in state)  # not copied into checkpoints


def test_each_variant_reads_only_its_views(data, intent_files, tmp_path):
    only = {"wo_long": ["short"], "wo_short": ["long"], "normal": ["normal"]}
    for variant, views in only.items():
        metrics = train(data, tmp_path / variant, run=llm_settings(variant, epochs=1),
                        intents={v: intent_files[v] for v in views})
        assert metrics["config"]["intents"]["views"] == views
    with pytest.raises(KeyError, match="needs intents for views \\['short', 'long'\\]"):
        train(data, tmp_path / "missing", run=llm_settings("llm4sbr", epochs=1),
              intents={"short": intent_files["short"]})
    with pytest.raises(ValueError, match="does not read LLM intents"):
        train(data, tmp_path / "extra", run=settings(epochs=1),
              intents={"short": intent_files["short"]})


def test_llm_variant_resumes_to_the_same_result(data, intent_files, tmp_path):
    views = {v: intent_files[v] for v in ("short", "long")}
    run = llm_settings("llm4sbr", epochs=3)
    whole = train(data, tmp_path / "whole", run=run, intents=views)
    assert train(data, tmp_path / "killed", run=run, intents=views, stop_after=1) is None
    resumed = train(data, tmp_path / "killed", run=run, intents=views)
    assert resumed["runtime"]["resumed_after_epoch"] == 1
    assert without_timing(resumed) == without_timing(whole)


def test_other_intents_do_not_resume_a_checkpoint(data, intent_files, tmp_path, caplog):
    run = llm_settings("llm4sbr", epochs=2)
    views = {v: intent_files[v] for v in ("short", "long")}
    assert train(data, tmp_path / "run", run=run, intents=views, stop_after=1) is None
    swapped = {"short": intent_files["long"], "long": intent_files["short"]}
    metrics = train(data, tmp_path / "run", run=run, intents=swapped)
    assert metrics["runtime"]["resumed_after_epoch"] == 0
    assert "belongs to other settings or data" in caplog.text


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, TEXT_DIM), np.float32), "one row per sample \\(770 samples"),
    (np.full((770, TEXT_DIM), np.nan, np.float32), "NaN or infinite values in rows 0..769"),
    (np.zeros((770, TEXT_DIM), np.int32), "must be floating point"),
])
def test_bad_intent_files_are_clear_errors(data, intent_files, tmp_path, bad, message):
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match=f"bad.npy: .*{message}"):
        train(data, tmp_path / "out", run=llm_settings("llm4sbr", epochs=1),
              intents={"short": tmp_path / "bad.npy", "long": intent_files["long"]})
    assert not (tmp_path / "out/metrics.json").exists()


def test_textinit_initialises_the_item_table_from_text(data, tmp_path):
    from llm4sbr_core.models.textinit import pca_projection

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(N_ITEMS + 1, TEXT_DIM)).astype(np.float32)
    vectors[[0, 7]] = 0  # padding and an item without text
    torch.manual_seed(0)
    model = build_model(Tiny, parse_variant("textinit"), N_ITEMS, 8, {}, None,
                        item_vectors=vectors)
    torch.manual_seed(0)
    plain = build_model(Tiny, parse_variant("base"), N_ITEMS, 8, {}, None)
    table, own = model.item_embedding.weight.detach(), plain.item_embedding.weight.detach()
    assert torch.equal(table[[0, 7]], own[[0, 7]])  # padding and text-less rows untouched
    rows = [i for i in range(1, N_ITEMS + 1) if i != 7]
    coords = torch.from_numpy(pca_projection(vectors[rows], 8)).float()
    scale = table[rows].std() / coords.std()
    assert torch.allclose(table[rows], coords * scale, atol=1e-5)
    assert float(table[rows].std()) == pytest.approx(float(own[1:].std()), rel=0.01)
    np.save(tmp_path / "items.npy", vectors)
    metrics = train(data, tmp_path / "run", run=settings(epochs=1, variant="textinit"),
                    item_vectors=tmp_path / "items.npy")
    assert metrics["config"]["variant"] == "textinit"
    with pytest.raises(ValueError, match="one row per item id"):
        build_model(Tiny, parse_variant("textinit"), N_ITEMS, 8, {}, None,
                    item_vectors=vectors[:5])
    with pytest.raises(ValueError, match="does not read item text vectors"):
        build_model(Tiny, parse_variant("base"), N_ITEMS, 8, {}, None, item_vectors=vectors)


def test_pca_projection_is_pca():
    from llm4sbr_core.models.textinit import pca_projection

    x = np.random.default_rng(3).normal(size=(50, 6)) * np.array([5, 4, 3, 2, 1, 0.5])
    p = pca_projection(x, 3)
    assert np.allclose(p.T @ p, np.diag(np.diag(p.T @ p)), atol=1e-8)  # uncorrelated axes
    variances = p.var(axis=0)
    assert (np.diff(variances) <= 0).all()  # by decreasing variance
    eig = np.sort(np.linalg.eigvalsh(np.cov((x - x.mean(0)).T, bias=True)))[::-1]
    assert np.allclose(variances, eig[:3])


def test_shuffled_control_is_a_derangement_within_each_split_per_seed(data):
    splits = [load_samples(data / f"{s}.parquet") for s in ("train", "valid", "test")]
    rows = np.arange(770, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    out = shuffled_within_splits({"short": rows, "long": rows + 1000}, splits, seed=3)
    assert np.array_equal(out["long"], out["short"] + 1000)  # one permutation for all views
    for split in splits:
        ids = split.sample_ids.numpy()
        got = out["short"][ids, 0]
        assert sorted(got) == sorted(ids)  # the same split's rows
        assert (got != ids).all()  # nobody keeps their own intents
    again = shuffled_within_splits({"short": rows}, splits, seed=3)
    assert np.array_equal(again["short"], out["short"])
    other = shuffled_within_splits({"short": rows}, splits, seed=4)
    assert not np.array_equal(other["short"], out["short"])  # drawn per run seed


def test_derangement_needs_two_samples():
    rng = np.random.default_rng(0)
    assert sorted(derangement(2, rng)) == [0, 1] and derangement(2, rng).tolist() == [1, 0]
    with pytest.raises(ValueError, match="another sample"):
        derangement(1, rng)


def test_random_control_matches_norms_and_is_drawn_per_seed():
    rng = np.random.default_rng(0)
    real = {"short": rng.normal(size=(500, 6)).astype(np.float32) * 3,
            "long": rng.normal(size=(500, 6)).astype(np.float32)}
    out = random_intents(real, seed=1)
    for view in real:
        assert out[view].dtype == np.float32 and out[view].shape == real[view].shape
        np.testing.assert_allclose(np.linalg.norm(out[view], axis=1),
                                   np.linalg.norm(real[view], axis=1), rtol=1e-5)
        cos = (out[view] * real[view]).sum(1) / np.linalg.norm(real[view], axis=1) ** 2
        assert abs(cos.mean()) < 0.05  # no information about the real direction
    assert np.array_equal(random_intents(real, seed=1)["short"], out["short"])
    assert not np.array_equal(random_intents(real, seed=2)["short"], out["short"])
    assert not np.array_equal(out["short"], out["long"])


def test_controls_train_and_record_their_source(data, intent_files, tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(N_ITEMS + 1, TEXT_DIM)).astype(np.float32)
    vectors[0] = 0
    np.save(tmp_path / "items.npy", vectors)
    items = train(data, tmp_path / "items", run=llm_settings("llm4sbr-items-shuffled", epochs=1),
                  item_vectors=tmp_path / "items.npy")
    assert items["config"]["intents"] == {"encoder": "toy", "source": "items", "shuffled": True,
                                          "views": ["short", "long"]}
    # random directions with the item-title intents' norms, drawn per run seed
    splits = [load_samples(data / f"{s}.parquet") for s in ("train", "valid", "test")]
    titles = run_intents(parse_variant("llm4sbr-items"), splits, None, vectors)
    drawn = run_intents(parse_variant("llm4sbr-items-random"), splits, None, vectors, seed=1)
    for view in ("short", "long"):
        np.testing.assert_allclose(np.linalg.norm(drawn[view], axis=1),
                                   np.linalg.norm(titles[view], axis=1), rtol=1e-5)
        assert not np.allclose(drawn[view], titles[view])
    again = run_intents(parse_variant("llm4sbr-items-random"), splits, None, vectors, seed=2)
    assert not np.array_equal(again["short"], drawn["short"])
    randoms = train(data, tmp_path / "items-random",
                    run=llm_settings("llm4sbr-items-random", epochs=1),
                    item_vectors=tmp_path / "items.npy")
    assert randoms["config"]["intents"] == {"encoder": "toy", "source": "items-random",
                                            "shuffled": False, "views": ["short", "long"]}
    with pytest.raises(ValueError, match="builds its intents from the item text vectors"):
        train(data, tmp_path / "bad", run=llm_settings("llm4sbr-items", epochs=1),
              intents={v: intent_files[v] for v in ("short", "long")},
              item_vectors=tmp_path / "items.npy")
    # shuffled, the intents lose the per-session signal (LLM only: P@5 ≈ 1 → chance, 5/40)
    views = {v: intent_files[v] for v in ("short", "long")}
    shuffled = train(data, tmp_path / "shuffled", run=llm_settings("wo_sbr-shuffled"),
                     intents=views)
    assert shuffled["config"]["intents"]["shuffled"] is True
    assert shuffled["test"]["P@5"] < 0.3


def test_random_control_trains_on_the_llm_intents_norms(data, intent_files, tmp_path):
    views = {v: intent_files[v] for v in ("short", "long")}
    run = train(data, tmp_path / "random", run=llm_settings("wo_sbr-random"), intents=views)
    assert run["config"]["intents"] == {"llm": "toy", "encoder": "toy", "r": 5,
                                        "source": "random", "shuffled": False,
                                        "views": ["short", "long"]}
    # random directions carry no per-session signal (the real short view encodes the target)
    real = train(data, tmp_path / "real", run=llm_settings("wo_sbr"), intents=views)
    assert run["test"]["P@5"] < 0.3 < real["test"]["P@5"]
