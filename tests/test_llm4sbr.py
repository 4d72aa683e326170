"""LLM4SBR wrapper: every backbone trains through it, the DirectAU terms and the gates
against hand-worked numbers, each variant removes exactly what it claims, memmap intents."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import synthetic_samples
from llm4sbr_core.data.batches import SampleTensors, SessionBatch
from llm4sbr_core.models import get_backbone
from llm4sbr_core.models.base import Backbone, Encoded
from llm4sbr_core.models.llm4sbr import (
    LLM4SBR,
    MODES,
    IntentEncoded,
    alignment,
    uniformity,
)
from llm4sbr_core.train.settings import RunSettings
from llm4sbr_core.train.trainer import Trainer, takes_encoded

BACKBONES = ["gru4rec", "sasrec", "srgnn", "tagnn", "gcegnn", "dhcn"]
N_ITEMS, DIM, TEXT = 20, 8, 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic(n_items=N_ITEMS, n_sessions=40, seed=0) -> SampleTensors:
    return synthetic_samples(n_items, n_sessions, seed, max_length=6)


def make_backbone(name: str, train: SampleTensors, seed: int = 0) -> Backbone:
    cls = get_backbone(name)
    torch.manual_seed(seed)
    if cls.needs_training_graph:
        return cls(N_ITEMS, DIM, graph=cls.build_training_graph(train, N_ITEMS))
    return cls(N_ITEMS, DIM)


def random_intents(n: int, views=("short", "long"), width=TEXT, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    return {v: rng.standard_normal((n, width)).astype(np.float32) for v in views}


def trainer_for(model: Backbone, train: SampleTensors) -> Trainer:
    run = RunSettings.from_config({"lr": 1e-2, "weight_decay": 0.0, "lr_step": 100,
                                   "lr_gamma": 0.1, "batch_size": 32}, "toy", "srgnn", "base", 0)
    return Trainer(model, train, train, run, torch.device("cpu"), progress=False)


def cross_entropy(model: Backbone, samples: SampleTensors) -> float:
    model.eval()
    with torch.no_grad():
        batch = samples.batch(torch.arange(len(samples)))
        value = F.cross_entropy(model.scores(batch)[:, 1:], batch.targets - 1).item()
    model.train()
    return value


class Untouchable:
    """An intents object that fails on any use: proves a variant never reads a view."""

    def __getattr__(self, name):
        raise AssertionError(f"intents read ({name})")

    def __getitem__(self, key):
        raise AssertionError("intents indexed")

    def __array__(self, *args, **kwargs):
        raise AssertionError("intents converted")

    def __len__(self):
        raise AssertionError("intents measured")


# --- every backbone through the trainer's contract ---------------------------------------

@pytest.mark.parametrize("name", BACKBONES)
def test_full_model_trains_on_every_backbone(name):
    train = synthetic()
    backbone = make_backbone(name, train)
    model = LLM4SBR(backbone, random_intents(len(train)), mode="full")
    trainer = trainer_for(model, train)
    assert trainer.aux_takes_encoded and takes_encoded(model)

    batch = train.batch(torch.arange(16))
    assert model.scores(batch).shape == (16, N_ITEMS + 1)
    loss, aux = trainer.loss(batch)
    assert aux is not None and torch.isfinite(loss) and torch.isfinite(aux)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for own in ("projection.text.weight", "gates.short.weight", "gates.long.weight",
                "fuse.weight"):
        assert grads[own] is not None and grads[own].abs().sum() > 0, own
    assert grads["backbone.item_embedding.weight"].abs().sum() > 0
    others = [g for n, g in grads.items()
              if n.startswith("backbone.") and n != "backbone.item_embedding.weight"]
    if others:  # beyond the item table, the backbone's own layers learn too
        assert any(g is not None and g.abs().sum() > 0 for g in others)
    model.zero_grad(set_to_none=True)

    before = cross_entropy(model, train)
    for _ in range(8):
        stats = trainer.train_epoch()
        assert math.isfinite(stats["loss"]) and math.isfinite(stats["aux_loss"])
    after = cross_entropy(model, train)
    assert after < 0.99 * before  # from ln 20 ≈ 3.0 (S²-DHCN, the slowest, reaches 2.95)


# --- the loss terms by hand -------------------------------------------------------------

def test_alignment_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    y = torch.tensor([[0.0, 2.0], [0.0, 1.0]])  # normalised: [0, 1], [0, 1]
    # ‖[1,0] − [0,1]‖² = 2 and ‖[0,1] − [0,1]‖² = 0 → mean 1
    assert alignment(x, y).item() == pytest.approx(1.0)


def test_uniformity_by_hand():
    x = torch.tensor([[3.0, 0.0], [0.0, 0.5], [-2.0, 0.0]])  # normalised: e1, e2, −e1
    # squared distances of the 3 pairs: 2, 4, 2
    expected = math.log((math.exp(-4) + math.exp(-8) + math.exp(-4)) / 3)
    assert uniformity(x).item() == pytest.approx(expected, rel=1e-6)
    assert uniformity(x[:1]).item() == 0.0  # no pair
    same = torch.tensor([[1.0, 1.0], [2.0, 2.0]], requires_grad=True)  # distance 0
    value = uniformity(same)
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(same.grad).all()


# A backbone whose session vectors are fixed per sample: the wrapper's numbers by hand.
H_LOCAL = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
H_GLOBAL = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
SHORT = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
LONG = np.array([[0.0, 3.0], [0.0, -1.0]], dtype=np.float32)
# short view: align mean(0, 2) = 1; U(intents) = log e^0 = 0; U(h_local) = −4 (d² = 2)
#   → 1 + (0 − 4)/2 = −1
# long view: align mean(0, ‖[0,−1] − [1,0]‖² = 2) = 1; U(intents) = −8 (d² = 4);
#   U(h_global) = −4 → 1 + (−8 − 4)/2 = −5
AU_SHORT, AU_LONG = -1.0, -5.0


class Fixed(Backbone):
    name = "fixed"

    def __init__(self):
        super().__init__(3, 2)
        self.register_buffer("local", H_LOCAL.clone())
        self.register_buffer("global_", H_GLOBAL.clone())

    def encode(self, batch):
        return Encoded(self.local[batch.sample_ids], self.global_[batch.sample_ids],
                       self.item_embedding.weight)

    def session_head(self, enc):
        return enc.h_global


def hand_model(mode: str, intents: dict, tau: float = 0.1) -> LLM4SBR:
    model = LLM4SBR(Fixed(), intents, mode=mode, tau=tau)
    with torch.no_grad():  # T = identity, Q_short = [1, 1], Q_long = [2, 0], W = [I | I]
        for linear in model.projection.values():
            linear.weight.copy_(torch.eye(2))
            linear.bias.zero_()
        for view, q in {"short": [1.0, 1.0], "long": [2.0, 0.0], "normal": [1.0, 1.0]}.items():
            if view in model.gates:
                model.gates[view].weight.copy_(torch.tensor([q]))
        model.fuse.weight.copy_(torch.eye(2).repeat(1, model.fuse.in_features // 2))
        model.fuse.bias.zero_()
    return model


def two_samples() -> SessionBatch:
    return SessionBatch(torch.tensor([[1], [2]]), torch.tensor([1, 1]), torch.tensor([1, 2]),
                        torch.tensor([0, 1]))


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_full_gates_fusion_and_loss_by_hand():
    model = hand_model("full", {"short": SHORT, "long": LONG})
    batch = two_samples()
    enc = model.encode(batch)
    assert isinstance(enc, IntentEncoded)
    # sample 0: σ(h_l + ĥ_s) = σ([2, 0]) → α_st = σ(2) + ½; σ(h_g + ĥ_l) = σ([0, 4]) → α_lt = 1
    # sample 1: σ([1, 1]) → α_st = 2σ(1); σ([2, −1]) → α_lt = 2σ(2)
    # h_sess = h_l α_st + h_g α_lt
    expected = torch.tensor([[sig(2) + 0.5, 1.0],
                             [2 * 2 * sig(2), 2 * sig(1)]])
    assert torch.allclose(model.session_head(enc), expected, atol=1e-6)
    scores = model.scores(batch)
    assert torch.allclose(scores, expected @ model.backbone.item_embedding.weight.T, atol=1e-6)
    assert scores.shape == (2, 4)
    assert model.auxiliary_loss(batch, enc).item() == pytest.approx(
        0.1 * (AU_SHORT + AU_LONG), abs=1e-5)
    assert hand_model("full", {"short": SHORT, "long": LONG}, tau=0.5).auxiliary_loss(
        batch, enc).item() == pytest.approx(0.5 * (AU_SHORT + AU_LONG), abs=1e-5)


# --- each variant removes exactly what it claims -----------------------------------------

def test_alignment_only_and_uniformity_only_split_the_term():
    batch = two_samples()
    full = hand_model("full", {"short": SHORT, "long": LONG})
    enc = full.encode(batch)
    pairs = [(enc.intents[v], full.session_vector(v, enc)) for v in ("short", "long")]
    align = sum(alignment(i, s) for i, s in pairs).detach()
    uniform = sum(0.5 * (uniformity(i) + uniformity(s)) for i, s in pairs).detach()
    for mode, expected in (("wo_u", align), ("wo_a", uniform)):
        model = hand_model(mode, {"short": SHORT, "long": LONG})
        got = model.auxiliary_loss(batch, model.encode(batch))
        assert got.item() == pytest.approx(0.1 * expected.item(), abs=1e-6)
        # the architecture is the full model's: only the auxiliary term differs
        assert torch.allclose(model.session_head(model.encode(batch)), full.session_head(enc))
    assert float(align + uniform) == pytest.approx(AU_SHORT + AU_LONG, abs=1e-5)


def test_wo_au_has_no_auxiliary_term():
    model = hand_model("wo_au", {"short": SHORT, "long": LONG})
    full = hand_model("full", {"short": SHORT, "long": LONG})
    batch = two_samples()
    enc = model.encode(batch)
    assert model.auxiliary_loss(batch, enc) is None
    assert torch.allclose(model.session_head(enc), full.session_head(full.encode(batch)))
    train = synthetic()
    model = LLM4SBR(make_backbone("srgnn", train), random_intents(len(train)), mode="wo_au")
    batch = train.batch(torch.arange(8))
    loss, aux = trainer_for(model, train).loss(batch)
    assert aux is None
    ce = F.cross_entropy(model.scores(batch)[:, 1:], batch.targets - 1)
    assert torch.allclose(loss, ce)


def test_backbone_auxiliary_loss_is_kept():
    """S²-DHCN's own β·L_s belongs to the backbone: kept in wo_au, added to τ·AU in full."""
    train = synthetic()
    backbone = make_backbone("dhcn", train)
    intents = random_intents(len(train))
    batch = train.batch(torch.arange(10))

    def wrapper_and_own(mode):  # the same random draws for both (L_s samples negatives)
        model = LLM4SBR(backbone, intents, mode=mode)
        enc = model.encode(batch)
        torch.manual_seed(5)
        total = model.auxiliary_loss(batch, enc)
        torch.manual_seed(5)
        return total, backbone.auxiliary_loss(batch, enc.base)

    got, own = wrapper_and_own("wo_au")
    assert torch.equal(got, own)
    total, own = wrapper_and_own("full")
    assert not torch.allclose(total, own)
    assert torch.isfinite(total)


@pytest.mark.parametrize("mode, kept, dropped, au", [
    ("wo_long", "short", "long", AU_SHORT), ("wo_short", "long", "short", AU_LONG)])
def test_one_view_never_reads_the_other(mode, kept, dropped, au):
    arrays = {"short": SHORT, "long": LONG}
    model = hand_model(mode, {kept: arrays[kept], dropped: Untouchable()})
    batch = two_samples()
    enc = model.encode(batch)
    assert set(enc.intents) == {kept} and set(model.gates) == {kept}
    assert not hasattr(model, f"intents_{dropped}")
    # the other session vector enters the fusion ungated
    if mode == "wo_long":
        alpha = torch.tensor([[sig(2) + 0.5], [2 * sig(1)]])
        expected = H_LOCAL * alpha + H_GLOBAL
    else:
        alpha = torch.tensor([[1.0], [2 * sig(2)]])
        expected = H_LOCAL + H_GLOBAL * alpha
    assert torch.allclose(model.session_head(enc), expected, atol=1e-6)
    assert model.auxiliary_loss(batch, enc).item() == pytest.approx(0.1 * au, abs=1e-5)
    # NaN intents of the removed view cannot reach anything either
    train = synthetic()
    intents = random_intents(len(train))
    intents[dropped] = np.full_like(intents[dropped], np.nan)
    real = LLM4SBR(make_backbone("srgnn", train), intents, mode=mode)
    batch = train.batch(torch.arange(8))
    enc = real.encode(batch)
    assert torch.isfinite(real.session_head(enc)).all()
    assert torch.isfinite(real.auxiliary_loss(batch, enc))


def test_normal_uses_only_the_normal_view():
    model = hand_model("normal", {"normal": LONG, "short": Untouchable(),
                                  "long": Untouchable()})
    batch = two_samples()
    enc = model.encode(batch)
    assert set(enc.intents) == {"normal"} and set(model.gates) == {"normal"}
    # combined vector = Fixed.session_head = h_global; α_n = Q_nᵀ σ(h_g + ĥ_n), Q_n = [1, 1]
    alpha = torch.tensor([[0.5 + sig(4)], [sig(2) + sig(-1)]])
    assert torch.allclose(enc.h_combined, H_GLOBAL)
    assert torch.allclose(model.session_head(enc), H_GLOBAL * alpha, atol=1e-6)
    # aligned with the combined vector: the long view's numbers
    assert model.auxiliary_loss(batch, enc).item() == pytest.approx(0.1 * AU_LONG, abs=1e-5)
    with pytest.raises(KeyError, match="normal"):
        LLM4SBR(Fixed(), {"short": SHORT, "long": LONG}, mode="normal")


@pytest.mark.parametrize("name", ["srgnn", "dhcn"])
def test_wo_sbr_never_runs_the_backbone(monkeypatch, name):
    train = synthetic()
    backbone = make_backbone(name, train)
    model = LLM4SBR(backbone, random_intents(len(train)), mode="wo_sbr").eval()
    batch = train.batch(torch.arange(8))

    def forbidden(*args, **kwargs):
        raise AssertionError("backbone used in wo_sbr")

    for method in ("encode", "session_head", "scores", "auxiliary_loss"):
        monkeypatch.setattr(backbone, method, forbidden, raising=False)
    enc = model.encode(batch)
    assert model.auxiliary_loss(batch, enc) is None
    with torch.no_grad():
        before = model.scores(batch)
        for name, param in backbone.named_parameters():
            if name != "item_embedding.weight":
                param.add_(1.0)
        assert torch.equal(model.scores(batch), before)
        backbone.item_embedding.weight.mul_(2.0)
        assert torch.allclose(model.scores(batch), 2 * before)
    assert before.shape == (8, N_ITEMS + 1)
    # the LLM intents alone: h_sess = W [ĥ_short ; ĥ_long]
    with torch.no_grad():
        h = model.fuse(torch.cat([model.projected_intent("short", batch),
                                  model.projected_intent("long", batch)], -1))
        assert torch.allclose(model.session_head(enc), h)
    loss, aux = trainer_for(model, train).loss(batch)
    assert aux is None and torch.isfinite(loss)


def test_bad_arguments():
    intents = {"short": SHORT, "long": LONG}
    with pytest.raises(ValueError, match="mode"):
        LLM4SBR(Fixed(), intents, mode="wo_everything")
    with pytest.raises(KeyError, match="long"):
        LLM4SBR(Fixed(), {"short": SHORT}, mode="full")
    with pytest.raises(ValueError, match="text width"):
        LLM4SBR(Fixed(), {"short": SHORT, "long": np.zeros((2, 3), np.float32)})
    per_view = LLM4SBR(Fixed(), {"short": SHORT, "long": np.zeros((2, 3), np.float32)},
                       shared_projection=False)
    assert per_view.projection["long"].in_features == 3
    with pytest.raises(ValueError, match="samples"):
        LLM4SBR(Fixed(), {"short": SHORT, "long": np.zeros((3, 2), np.float32)})
    with pytest.raises(ValueError, match="2-D float"):
        LLM4SBR(Fixed(), {"short": SHORT, "long": np.zeros((2, 2), np.int64)})
    assert set(MODES) == {"full", "wo_au", "wo_u", "wo_a", "wo_long", "wo_short", "normal",
                          "wo_sbr"}


# --- memory-mapped intents ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_memmap_intents_are_shared_not_saved(tmp_path, dtype):
    train = synthetic()
    arrays = random_intents(len(train))
    maps = {}
    for view, arr in arrays.items():
        np.save(tmp_path / f"{view}.npy", arr.astype(dtype))
        maps[view] = np.load(tmp_path / f"{view}.npy", mmap_mode="r")
    model = LLM4SBR(make_backbone("gru4rec", train), maps)
    for view, mm in maps.items():
        buffer = getattr(model, f"intents_{view}")
        assert buffer.data_ptr() == mm.ctypes.data  # no copy
        assert f"intents_{view}" in dict(model.named_buffers())
    state = model.state_dict()
    assert not any("intents" in key for key in state)
    scores = model.eval().scores(train.batch(torch.arange(5)))
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
    fresh = LLM4SBR(make_backbone("gru4rec", train, seed=9), maps)
    fresh.load_state_dict(state)  # strict: the same keys
    assert torch.equal(fresh.eval().scores(train.batch(torch.arange(5))), scores)
    model.to("meta")  # buffers follow .to()
    assert model.intents_short.device.type == "meta"
