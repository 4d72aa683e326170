"""GCE-GNN and S²-DHCN: training-graph construction, encoding, training, determinism."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from conftest import synthetic_samples
from llm4sbr_core.data.batches import SampleTensors, SessionBatch, load_samples
from llm4sbr_core.models.base import Encoded
from llm4sbr_core.models.blocks import build_session_graph, scatter_softmax
from llm4sbr_core.models.dhcn import DHCN, line_graph
from llm4sbr_core.models.gcegnn import GCEGNN, LocalAggregator
from llm4sbr_core.models.training_graphs import (
    cooccurrence_counts,
    session_incidence,
    sessions_from_samples,
    training_sessions,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# three training sessions, worked by hand below; D exists only in the validation split
A, B, C = [1, 2, 3], [2, 3, 4], [1, 3]
D = [1, 4]
N_ITEMS = 5  # item 5 never appears in training


def write_samples(path, sessions, first_session=0, prefix=True):
    """A samples parquet: every prefix of each session (or only its last click)."""
    rows = {"sample_id": [], "session_id": [], "items": [], "target": []}
    for s, seq in enumerate(sessions):
        for k in range(1, len(seq)) if prefix else [len(seq) - 1]:
            rows["sample_id"].append(len(rows["sample_id"]))
            rows["session_id"].append(first_session + s)
            rows["items"].append(seq[:k])
            rows["target"].append(seq[k])
    pq.write_table(pa.table(rows), path)
    return path


@pytest.fixture
def splits(tmp_path):
    train = write_samples(tmp_path / "train.parquet", [A, B, C])
    valid = write_samples(tmp_path / "valid.parquet", [D], first_session=3)
    return train, valid


def as_lists(sessions):
    return sorted(map(tuple, sessions.as_lists()))


# -- sessions from samples ----------------------------------------------------------------

def test_sessions_rebuilt_from_tensors_and_parquet(splits):
    train, _ = splits
    expected = sorted(map(tuple, [A, B, C]))
    assert as_lists(training_sessions(train)) == expected  # grouped by session_id
    assert as_lists(training_sessions(load_samples(train))) == expected  # prefix chains


def test_sessions_last_item_layout_and_duplicates(tmp_path):
    # one sample per session (MovieLens): ([6, 7], 8) has no sample ([6], 7) before it, so
    # the samples are not prefix-augmented and each is a session, even [1, 2], a strict
    # prefix of [1, 2, 3], and both copies of [4, 5]
    sessions = [[1, 2], [1, 2, 3], [4, 5], [4, 5], [6, 7, 8]]
    path = write_samples(tmp_path / "t.parquet", sessions, prefix=False)
    expected = sorted(map(tuple, sessions))
    assert as_lists(training_sessions(load_samples(path))) == expected
    assert as_lists(training_sessions(path)) == expected


def test_prefix_layout_keeps_duplicate_sessions(tmp_path):
    sessions = [[1, 2, 3], [1, 2, 3], [3, 1]]
    path = write_samples(tmp_path / "t.parquet", sessions)
    assert as_lists(training_sessions(load_samples(path))) == sorted(map(tuple, sessions))


def test_strict_prefix_session_with_and_without_ids():
    # prefix samples of [1, 2] and [1, 2, 3]: ([1], 2) twice, ([1, 2], 3) once
    items = np.array([[1, 0], [1, 0], [1, 2]])
    lengths, targets = np.array([1, 1, 2]), np.array([2, 2, 3])
    by_id = sessions_from_samples(items, lengths, targets, session_ids=np.array([7, 8, 8]))
    assert by_id.as_lists() == [[1, 2], [1, 2, 3]]
    # without ids: 2 samples end in [1, 2], 1 continues it → one session [1, 2]
    assert sorted(sessions_from_samples(items, lengths, targets).as_lists()) == \
        [[1, 2], [1, 2, 3]]


# -- GCE-GNN global graph ----------------------------------------------------------------

def test_cooccurrence_counts_by_hand(splits):
    sessions = training_sessions(splits[0])
    src, dst, count = cooccurrence_counts(sessions, window=1, n_items=N_ITEMS)
    got = {(s, d): c for s, d, c in zip(src.tolist(), dst.tolist(), count.tolist(),
                                        strict=True)}
    # ε = 1: A gives 1-2, 2-3; B gives 2-3, 3-4; C gives 1-3 (both directions each)
    assert got == {(1, 2): 1, (2, 1): 1, (2, 3): 2, (3, 2): 2, (3, 4): 1, (4, 3): 1,
                   (1, 3): 1, (3, 1): 1}


def test_global_graph_neighbours_by_hand(splits):
    g = GCEGNN.build_training_graph(load_samples(splits[0]), N_ITEMS, window=2,
                                    n_neighbors=3)
    # ε = 2 adds 1-3 (A) and 2-4 (B): weights 1-2:1, 1-3:2, 2-3:2, 2-4:1, 3-4:1
    # heaviest first, ties to the smaller id; 0 = no neighbour
    assert g["neighbors"].tolist() == [[0, 0, 0], [3, 2, 0], [3, 1, 4], [1, 2, 4],
                                       [2, 3, 0], [0, 0, 0]]
    assert g["weights"].tolist() == [[0, 0, 0], [2, 1, 0], [2, 1, 1], [2, 2, 1],
                                     [1, 1, 0], [0, 0, 0]]
    top2 = GCEGNN.build_training_graph(splits[0], N_ITEMS, window=2, n_neighbors=2)
    assert top2["neighbors"].tolist() == [[0, 0], [3, 2], [3, 1], [1, 2], [2, 3], [0, 0]]


def test_graph_default_window_and_repeats():
    # ε = 3 by default: 1 and 4 are three clicks apart; an item next to itself is not
    # its own neighbour
    items = torch.tensor([[1, 2, 3], [2, 2, 0]])
    train = SampleTensors(items, torch.tensor([3, 2]), torch.tensor([4, 2]),
                          torch.tensor([0, 1]))
    g = GCEGNN.build_training_graph(train, N_ITEMS)
    assert g["neighbors"].shape == (N_ITEMS + 1, 12)
    assert 4 in g["neighbors"][1].tolist()
    assert 2 not in g["neighbors"][2].tolist()


def test_graphs_use_training_sessions_only(splits):
    train, valid = splits
    gce = GCEGNN.build_training_graph(train, N_ITEMS, window=2)
    dhcn = DHCN.build_training_graph(train, N_ITEMS)
    # D = [1, 4] is a validation session: 1 and 4 are never neighbours, no 4th hyperedge
    assert 4 not in gce["neighbors"][1].tolist() and 1 not in gce["neighbors"][4].tolist()
    assert int(dhcn["n_sessions"]) == 3
    # ... which is not vacuous: had D been a training session, both graphs would differ
    both = write_samples(valid.parent / "both.parquet", [A, B, C, D])
    assert 4 in GCEGNN.build_training_graph(both, N_ITEMS, window=2)["neighbors"][1]
    assert int(DHCN.build_training_graph(both, N_ITEMS)["n_sessions"]) == 4


def test_build_training_graph_checks_hyperparameters(splits):
    GCEGNN.build_training_graph(splits[0], N_ITEMS, hop=2, dropout_global=0.2)  # ignored
    DHCN.build_training_graph(splits[0], N_ITEMS, layers=2)
    with pytest.raises(TypeError, match="unknown"):
        GCEGNN.build_training_graph(splits[0], N_ITEMS, neighbours=3)
    with pytest.raises(ValueError, match="n_items"):
        DHCN.build_training_graph(splits[0], 3)


# -- GCE-GNN layers ----------------------------------------------------------------------

def test_local_relations_by_hand():
    # 5 → 3 → 5 → 7: nodes 3, 5, 7 → 0, 1, 2; 3 and 5 are linked both ways
    graph = build_session_graph(torch.tensor([[5, 3, 5, 7]]))
    recv, send, rel = LocalAggregator.relations(graph)
    got = {(r, s): k for r, s, k in zip(recv.tolist(), send.tolist(), rel.tolist(),
                                        strict=True)}
    L = LocalAggregator
    assert got == {(0, 1): L.IN_OUT, (1, 0): L.IN_OUT, (1, 2): L.OUT, (2, 1): L.IN,
                   (0, 0): L.SELF, (1, 1): L.SELF, (2, 2): L.SELF}


def test_scatter_softmax_sums_to_one_per_group():
    p = scatter_softmax(torch.tensor([1.0, 2.0, 3.0, 50.0]), torch.tensor([0, 0, 1, 2]), 3)
    assert torch.allclose(p, torch.tensor([1 / (1 + np.e), np.e / (1 + np.e), 1.0, 1.0]))


# -- DHCN hypergraph ---------------------------------------------------------------------

def test_incidence_and_normalisation_by_hand(splits):
    g = DHCN.build_training_graph(load_samples(splits[0]), N_ITEMS)
    sessions = sorted(zip(g["item"].tolist(), g["session"].tolist(), strict=True))
    # sessions rebuilt in order A, B, C → hyperedges 0, 1, 2
    assert sessions == [(1, 0), (1, 2), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (4, 1)]
    model = DHCN(N_ITEMS, 4, graph=g)
    # degrees D = (0, 2, 2, 3, 1, 0), hyperedge sizes B = (3, 3, 2);
    # (D⁻¹HB⁻¹Hᵀ)_ij = 1/D_i Σ_e H_ie H_je / B_e
    t, h = 1 / 3, 1 / 2
    expected = torch.tensor([
        [0, 0, 0, 0, 0, 0],
        [0, (t + h) / 2, t / 2, (t + h) / 2, 0, 0],
        [0, t / 2, (t + t) / 2, (t + t) / 2, t / 2, 0],
        [0, (t + h) / 3, (t + t) / 3, (t + t + h) / 3, t / 3, 0],
        [0, 0, t, t, t, 0],
        [0, 0, 0, 0, 0, 0],
    ])
    operator = model.dh.to_dense() @ model.bht.to_dense()
    assert torch.allclose(operator, expected)
    assert torch.allclose(model.dh_t.to_dense(), model.dh.to_dense().T)
    assert torch.allclose(model.bht_t.to_dense(), model.bht.to_dense().T)
    # layers are averaged: X_h = (X + AX + A²X + A³X) / 4
    x = model.item_embedding.weight
    want = (x + expected @ x + expected @ expected @ x
            + expected @ expected @ expected @ x) / 4
    assert torch.allclose(model.convolve(), want, atol=1e-6)


def test_incidence_counts_a_repeated_item_once():
    sessions = sessions_from_samples(np.array([[1, 2]]), np.array([2]), np.array([1]))
    item, session = session_incidence(sessions, 3)
    assert item.tolist() == [1, 2] and session.tolist() == [0, 0]


def test_line_graph_by_hand():
    adj = line_graph(torch.tensor([[1, 2, 3], [2, 3, 4], [5, 5, 0]]))
    # Jaccard: s0 ∩ s1 = {2, 3}, s0 ∪ s1 = {1, 2, 3, 4} → 0.5; s2 shares nothing
    want = torch.tensor([[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])
    assert torch.allclose(adj, want / want.sum(1, keepdim=True))


def test_convolution_gradient_matches_autograd(splits):
    g = DHCN.build_training_graph(splits[0], N_ITEMS)
    model = DHCN(N_ITEMS, 4, graph=g)
    weights = torch.randn(N_ITEMS + 1, 4)
    (model.convolve() * weights).sum().backward()
    ours = model.item_embedding.weight.grad.clone()
    x = model.item_embedding.weight.detach().clone().requires_grad_(True)
    a = model.dh.to_dense() @ model.bht.to_dense()
    total, cur = x, x
    for _ in range(model.layers):
        cur = a @ cur
        total = total + cur
    ((total / (model.layers + 1)) * weights).sum().backward()
    ref = x.grad.clone()
    ref[0] = 0  # the padding row has no gradient
    assert torch.allclose(ours, ref, atol=1e-6)


# -- both models -------------------------------------------------------------------------

def synthetic(n_items=20, n_sessions=60, seed=0):
    return synthetic_samples(n_items, n_sessions, seed, max_length=7)


def make(cls, train, n_items, dim=16, seed=0, **hp):
    torch.manual_seed(seed)
    return cls(n_items, dim, graph=cls.build_training_graph(train, n_items), **hp)


MODELS = [GCEGNN, DHCN]


def loss_of(model, batch, auxiliary=True):
    """The trainer's loss: cross-entropy over items 1..N (+ DHCN's β·L_s)."""
    enc = model.encode(batch)
    loss = F.cross_entropy((model.session_head(enc) @ enc.item_table.T)[:, 1:],
                           batch.targets - 1)
    if auxiliary and hasattr(model, "auxiliary_loss"):
        loss = loss + model.auxiliary_loss(batch, enc)
    return loss


@pytest.mark.parametrize("cls", MODELS)
def test_encode_shapes_and_scores(cls):
    train = synthetic()
    model = make(cls, train, 20).eval()
    batch = train.batch(torch.arange(7))
    enc = model.encode(batch)
    assert isinstance(enc, Encoded)
    assert enc.h_local.shape == enc.h_global.shape == (7, 16)
    assert enc.item_table.shape == (21, 16)
    assert model.scores(batch).shape == (7, 21)
    assert torch.isfinite(model.scores(batch)).all()


def test_gcegnn_two_hops_and_item_without_neighbours():
    train = synthetic()
    model = make(GCEGNN, train, 25, hop=2).eval()  # items 21..25 have no neighbours
    batch = SessionBatch(torch.tensor([[22, 23, 0], [1, 4, 13]]), torch.tensor([2, 3]),
                         torch.tensor([1, 2]), torch.tensor([0, 1]))
    enc = model.encode(batch)
    assert enc.h_global.shape == (2, 16) and torch.isfinite(enc.h_global).all()


@pytest.mark.parametrize("cls", MODELS)
def test_padding_and_batch_invariance(cls):
    train = synthetic()
    model = make(cls, train, 20).eval()
    batch = train.batch(torch.arange(10))
    padded = SessionBatch(F.pad(batch.items, (0, 5)), batch.lengths, batch.targets,
                          batch.sample_ids)
    other = train.batch(torch.tensor([3, 40, 41]))  # row 3 among other sessions
    with torch.no_grad():
        a, b, c = model.encode(batch), model.encode(padded), model.encode(other)
    for field in ("h_local", "h_global"):
        assert torch.allclose(getattr(a, field), getattr(b, field), atol=1e-6)
        assert torch.allclose(getattr(a, field)[3], getattr(c, field)[0], atol=1e-6)


@pytest.mark.parametrize("cls", MODELS)
def test_loss_falls(cls):
    train = synthetic()
    model = make(cls, train, 20)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    everything = train.batch(torch.arange(len(train)))
    model.eval()
    with torch.no_grad():
        before = loss_of(model, everything, auxiliary=False).item()
    model.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(15):
        for batch in train.batches(50, shuffle=True, generator=gen):
            opt.zero_grad()
            loss_of(model, batch).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        after = loss_of(model, everything, auxiliary=False).item()
    assert after < 0.85 * before  # from ln 20 ≈ 3.0 to < 2.55


@pytest.mark.parametrize("cls", MODELS)
def test_deterministic_given_seed(cls):
    train = synthetic()

    def run():
        model = make(cls, train, 20, seed=3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(3)  # dropout and DHCN's shuffled negatives
        for batch in train.batches(50, shuffle=True, generator=gen):
            opt.zero_grad()
            loss_of(model, batch).backward()
            opt.step()
        return model.eval().scores(train.batch(torch.arange(20))).detach()

    assert torch.equal(run(), run())


def test_dhcn_auxiliary_loss():
    train = synthetic()
    model = make(DHCN, train, 20)
    batch = train.batch(torch.arange(30))
    enc = model.encode(batch)
    aux = model.auxiliary_loss(batch, enc)
    assert aux.ndim == 0 and torch.isfinite(aux) and aux > 0
    aux.backward()
    assert model.item_embedding.weight.grad.abs().sum() > 0
    assert model.readout.q.weight.grad is not None  # through θ_h
    assert model.beta == 0.01


def test_models_need_their_graph():
    with pytest.raises(ValueError, match="graph"):
        GCEGNN(5, 4)
    with pytest.raises(ValueError, match="graph"):
        DHCN(5, 4)
