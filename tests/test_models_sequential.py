"""GRU4Rec and SASRec: shapes, padding invariance, causality, learning, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llm4sbr_core.data.batches import SessionBatch
from llm4sbr_core.models import get_backbone
from llm4sbr_core.models.blocks import keep_last_clicks, last_real_state, masked_mean
from llm4sbr_core.models.gru4rec import GRU4Rec
from llm4sbr_core.models.sasrec import SASRec

MODELS = [GRU4Rec, SASRec]
N_ITEMS, DIM = 30, 16


def make_batch(sessions: list[list[int]], width: int | None = None,
               targets: list[int] | None = None) -> SessionBatch:
    """Right-pad ``sessions`` to ``width`` (default: the longest)."""
    width = width or max(map(len, sessions))
    items = torch.zeros(len(sessions), width, dtype=torch.long)
    for row, session in enumerate(sessions):
        items[row, :len(session)] = torch.tensor(session)
    targets = targets or [1] * len(sessions)
    return SessionBatch(items, torch.tensor([len(s) for s in sessions]),
                        torch.tensor(targets), torch.arange(len(sessions)))


SESSIONS = [[3, 7, 7, 2, 9], [4], [11, 12, 13], [5, 6]]


def build(model_cls: type, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return model_cls(N_ITEMS, DIM, **kwargs)


def test_registered():
    assert get_backbone("gru4rec") is GRU4Rec and get_backbone("sasrec") is SASRec


@pytest.mark.parametrize("model_cls", MODELS)
def test_encode_shapes_and_scores(model_cls):
    model = build(model_cls).eval()
    batch = make_batch(SESSIONS)
    enc = model.encode(batch)
    assert enc.h_local.shape == (4, DIM) and enc.h_global.shape == (4, DIM)
    assert enc.item_table.shape == (N_ITEMS + 1, DIM)
    assert enc.item_table is model.item_embedding.weight  # tied / shared output table
    assert model.scores(batch).shape == (4, N_ITEMS + 1)
    assert torch.equal(model.session_head(enc), enc.h_local)
    # a one-click session: the whole-session mean is that click's state
    assert torch.allclose(enc.h_local[1], enc.h_global[1])


@pytest.mark.parametrize("model_cls", MODELS)
def test_padding_invariance(model_cls):
    model = build(model_cls).eval()
    with torch.no_grad():
        narrow = model.encode(make_batch(SESSIONS))
        wide = model.encode(make_batch(SESSIONS, width=12))
        # each session alone, padded to its own length (no other rows in the batch)
        alone = [model.encode(make_batch([s])) for s in SESSIONS]
    torch.testing.assert_close(narrow.h_local, wide.h_local, atol=1e-6, rtol=0)
    torch.testing.assert_close(narrow.h_global, wide.h_global, atol=1e-6, rtol=0)
    for row, enc in enumerate(alone):
        torch.testing.assert_close(enc.h_local[0], wide.h_local[row], atol=1e-6, rtol=0)
        torch.testing.assert_close(enc.h_global[0], wide.h_global[row], atol=1e-6, rtol=0)


def test_gru4rec_matches_unpadded_gru():
    model = build(GRU4Rec).eval()
    with torch.no_grad():
        enc = model.encode(make_batch(SESSIONS, width=8))
        for row, session in enumerate(SESSIONS):
            states, h_n = model.gru(model.item_embedding(torch.tensor([session])))
            torch.testing.assert_close(enc.h_local[row], h_n[-1, 0], atol=1e-6, rtol=0)
            torch.testing.assert_close(enc.h_global[row], states[0].mean(0), atol=1e-6,
                                       rtol=0)


def test_gru4rec_packed_equals_the_padded_gru_forward_and_backward():
    """Packing only skips padded steps: the same outputs and gradients (float64) as the
    GRU run over the whole padded batch, and zeros at the padded positions."""
    model = build(GRU4Rec, dropout=0.0).double().train()
    batch = make_batch(SESSIONS, width=9)
    states = model.click_states(batch)
    padded = ~batch.mask
    assert torch.equal(states[padded], torch.zeros_like(states[padded]))
    enc = model.encode(batch)
    loss = enc.h_local.sin().sum() + enc.h_global.cos().sum()
    packed_grads = torch.autograd.grad(loss, list(model.parameters()))
    reference_states, _ = model.gru(model.item_embedding(batch.items))
    reference = (last_real_state(reference_states, batch.lengths).sin().sum()
                 + masked_mean(reference_states, batch.mask).cos().sum())
    reference_grads = torch.autograd.grad(reference, list(model.parameters()))
    torch.testing.assert_close(loss, reference, atol=1e-12, rtol=0)
    for got, want in zip(packed_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("model_cls", MODELS)
def test_no_future_leak(model_cls):
    """Changing clicks after position t leaves every output at positions ≤ t unchanged."""
    model = build(model_cls).eval()
    session = [3, 7, 7, 2, 9, 14, 1]
    t = 3
    changed = session[:t + 1] + [20, 21, 22]
    with torch.no_grad():
        out = model.click_states(make_batch([session, changed]))
    out = out[0] if isinstance(out, tuple) else out
    torch.testing.assert_close(out[0, :t + 1], out[1, :t + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(out[0, t + 1:], out[1, t + 1:])


def test_sasrec_padded_positions_are_zero():
    model = build(SASRec).train()
    out, lengths = model.click_states(make_batch(SESSIONS, width=9))
    real = torch.arange(9).view(1, -1) < lengths.view(-1, 1)
    assert torch.all(out[~real] == 0) and torch.isfinite(out).all()


def test_sasrec_keeps_the_last_max_len_clicks():
    items = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [8, 9, 10, 0, 0]])
    kept, lengths = keep_last_clicks(items, torch.tensor([5, 2, 3]), 3)
    assert kept.tolist() == [[3, 4, 5], [6, 7, 0], [8, 9, 10]]
    assert lengths.tolist() == [3, 2, 3]
    model = build(SASRec, max_len=4).eval()
    long = list(range(1, 11))  # 10 clicks > max_len
    with torch.no_grad():
        a = model.encode(make_batch([long, [2, 3]]))
        b = model.encode(make_batch([long[-4:], [2, 3]]))
    torch.testing.assert_close(a.h_local, b.h_local, atol=1e-6, rtol=0)
    torch.testing.assert_close(a.h_global, b.h_global, atol=1e-6, rtol=0)


@pytest.mark.parametrize("model_cls", MODELS)
def test_length_one_sessions_no_nan(model_cls):
    model = build(model_cls).train()
    batch = make_batch([[5], [1], [N_ITEMS]], width=3, targets=[2, 3, 4])
    enc = model.encode(batch)
    loss = F.cross_entropy(model.scores(batch)[:, 1:], batch.targets - 1)
    loss = loss + enc.h_global.sum()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def synthetic_batch(generator: torch.Generator, size: int = 64) -> SessionBatch:
    """Deterministic next-item pattern: a run i, i+1, ..., i+k−1 (mod N) is followed by i+k."""
    start = torch.randint(0, N_ITEMS, (size,), generator=generator)
    lengths = torch.randint(1, 7, (size,), generator=generator)
    cols = torch.arange(int(lengths.max())).view(1, -1)
    items = (start.view(-1, 1) + cols) % N_ITEMS + 1
    items = items * (cols < lengths.view(-1, 1))
    targets = (start + lengths) % N_ITEMS + 1
    return SessionBatch(items, lengths, targets, torch.arange(size))


def train_steps(model: torch.nn.Module, steps: int, seed: int = 0) -> list[float]:
    """The trainer's recipe (full cross-entropy, column 0 never a target), short and fast."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-5)
    model.train()
    losses = []
    for _ in range(steps):
        batch = synthetic_batch(generator)
        loss = F.cross_entropy(model.scores(batch)[:, 1:], batch.targets - 1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("model_cls", MODELS)
def test_loss_falls_on_a_next_item_pattern(model_cls):
    """Held-out loss in eval mode (dropout at the paper's defaults makes the training loss
    noisy) at least halves within 50 steps."""
    model = build(model_cls)
    held_out = synthetic_batch(torch.Generator().manual_seed(99), size=256)

    def held_out_loss() -> float:
        model.eval()
        with torch.no_grad():
            return F.cross_entropy(model.scores(held_out)[:, 1:], held_out.targets - 1).item()

    before = held_out_loss()
    train_steps(model, steps=50)
    after = held_out_loss()
    assert before > 3.0  # ~log(30): nothing known at the start
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("model_cls", MODELS)
def test_deterministic_given_the_seed(model_cls):
    runs = []
    for _ in range(2):
        model = build(model_cls, seed=123)
        losses = train_steps(model, steps=3, seed=7)  # dropout active
        runs.append((losses, model.scores(make_batch(SESSIONS)).detach()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    other = build(model_cls, seed=124)
    assert not torch.equal(other.item_embedding.weight, build(model_cls, seed=123)
                           .item_embedding.weight)
