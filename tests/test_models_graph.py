"""SR-GNN and TAGNN: the GGNN against a dense re-implementation of the reference code,
shapes, padding invariance, training, determinism and TAGNN's full-catalogue head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llm4sbr_core.data.batches import SessionBatch
from llm4sbr_core.models import get_backbone
from llm4sbr_core.models.blocks import SoftAttentionReadout, build_session_graph, gather_clicks
from llm4sbr_core.models.srgnn import SRGNN, GatedSessionGraph
from llm4sbr_core.models.tagnn import TAGNN, target_attentive_scores

MODELS = [SRGNN, TAGNN]


def make_batch(rows: list[list[int]], width: int | None = None) -> SessionBatch:
    width = width or max(map(len, rows))
    items = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    lengths = torch.tensor([len(r) for r in rows])
    return SessionBatch(items, lengths, torch.ones(len(rows), dtype=torch.long),
                        torch.arange(len(rows)))


# --- the GGNN against the reference code's dense A_in / A_out --------------------------

def reference_adjacency(seq: list[int], nodes: list[int]) -> np.ndarray:
    """[n, 2n] matrix A built exactly as CRIPAC-DIG/SR-GNN's utils.Data.get_slice does."""
    u_a = np.zeros((len(nodes), len(nodes)))
    for a, b in zip(seq[:-1], seq[1:], strict=True):
        u_a[nodes.index(a)][nodes.index(b)] = 1
    u_sum_in = np.sum(u_a, 0)
    u_sum_in[np.where(u_sum_in == 0)] = 1
    u_a_in = np.divide(u_a, u_sum_in)
    u_sum_out = np.sum(u_a, 1)
    u_sum_out[np.where(u_sum_out == 0)] = 1
    u_a_out = np.divide(u_a.transpose(), u_sum_out)
    return np.concatenate([u_a_in, u_a_out]).transpose()


def reference_cell(cell: GatedSessionGraph, a: torch.Tensor, hidden: torch.Tensor
                   ) -> torch.Tensor:
    """The reference GNN.GNNCell (dense matmuls) with ``cell``'s weights."""
    n = a.shape[1]
    input_in = torch.matmul(a[:, :, :n], cell.edge_in(hidden)) + cell.bias_in
    input_out = torch.matmul(a[:, :, n:2 * n], cell.edge_out(hidden)) + cell.bias_out
    gi = F.linear(torch.cat([input_in, input_out], 2), cell.input_gates.weight,
                  cell.input_gates.bias)
    gh = F.linear(hidden, cell.hidden_gates.weight, cell.hidden_gates.bias)
    i_r, i_i, i_n = gi.chunk(3, 2)
    h_r, h_i, h_n = gh.chunk(3, 2)
    resetgate = torch.sigmoid(i_r + h_r)
    inputgate = torch.sigmoid(i_i + h_i)
    newgate = torch.tanh(i_n + resetgate * h_n)
    return newgate + inputgate * (hidden - newgate)


# s0: 1→2 twice (a repeated edge), 2→1, 2→3; node 3 has no out-edge, node 2 two.
# s1: 1→3, 3→2, 2→3; node 3 has two in-edges, node 1 none.
SESSIONS = [[1, 2, 1, 2, 3], [1, 3, 2, 3]]
# Hand-worked: A_in[v, u] = 1/indeg(v), A_out[u, v] = 1/outdeg(u) for each edge u → v.
HAND_A = [
    (np.array([[0, 1, 0], [1, 0, 0], [0, 1, 0]]),
     np.array([[0, 1, 0], [0.5, 0, 0.5], [0, 0, 0]])),
    (np.array([[0, 0, 0], [0, 0, 1], [0.5, 0.5, 0]]),
     np.array([[0, 0, 1], [0, 0, 1], [0, 1, 0]])),
]


def test_reference_adjacency_is_the_hand_worked_one():
    for seq, (a_in, a_out) in zip(SESSIONS, HAND_A, strict=True):
        a = reference_adjacency(seq, [1, 2, 3])
        np.testing.assert_allclose(a[:, :3], a_in)
        np.testing.assert_allclose(a[:, 3:], a_out)


@pytest.mark.parametrize("step", [1, 2])
def test_ggnn_matches_dense_reference(step):
    torch.manual_seed(0)
    dim = 6
    cell = GatedSessionGraph(dim, step=step)
    for p in cell.parameters():  # non-zero biases everywhere, as after the uniform init
        torch.nn.init.uniform_(p, -0.5, 0.5)
    table = torch.randn(4, dim)
    graph = build_session_graph(make_batch(SESSIONS).items)
    ours = cell(table[graph.node_items], graph.edges)

    nodes = [1, 2, 3]  # both sessions hold items 1..3: dense batch [2, 3, ...]
    a = torch.tensor(np.stack([reference_adjacency(s, nodes) for s in SESSIONS]),
                     dtype=torch.float32)
    hidden = table[torch.tensor(nodes)].expand(2, -1, -1)
    for _ in range(step):
        hidden = reference_cell(cell, a, hidden)
    assert graph.node_items.tolist() == nodes + nodes
    torch.testing.assert_close(ours, hidden.reshape(-1, dim))


def test_flat_readout_equals_padded_readout():
    torch.manual_seed(0)
    readout = SoftAttentionReadout(5)
    items = make_batch([[3, 1, 2], [2, 4]], width=4).items
    graph = build_session_graph(items)
    nodes = torch.randn(graph.n_nodes, 5)
    padded = gather_clicks(nodes, graph.alias)
    real = graph.alias >= 0
    last = nodes[graph.alias[torch.arange(2), real.sum(1) - 1]]
    expected = SoftAttentionReadout.forward(readout, padded, last, real)
    flat = readout.forward_flat(nodes[graph.alias[real]], last, real.nonzero()[:, 0])
    torch.testing.assert_close(flat, expected)


# --- interface, shapes, initialisation -------------------------------------------------

@pytest.mark.parametrize("cls", MODELS)
def test_encode_shapes_and_registry(cls):
    torch.manual_seed(0)
    model = cls(9, 8)
    assert get_backbone(cls.name) is cls
    batch = make_batch([[1, 2, 3, 2], [4], [5, 6]])
    enc = model.encode(batch)
    assert enc.h_local.shape == enc.h_global.shape == (3, 8)
    assert enc.item_table.shape == (10, 8)
    assert model.session_head(enc).shape == (3, 8)
    assert model.scores(batch).shape == (3, 10)
    # h_local is s_l: the GGNN state of the last click's node
    graph = build_session_graph(batch.items)
    nodes = model.ggnn(model.item_embedding(graph.node_items), graph.edges)
    last = graph.alias[torch.arange(3), batch.lengths - 1]
    torch.testing.assert_close(enc.h_local, nodes[last])


@pytest.mark.parametrize("cls", MODELS)
def test_reference_initialisation(cls):
    model = cls(20, 16)
    bound = 1 / math.sqrt(16)
    for name, p in model.named_parameters():
        assert p.abs().max() <= bound, name
    assert not model.item_embedding.weight[0].any()


# --- padding and batch invariance ------------------------------------------------------

@pytest.mark.parametrize("cls", MODELS)
def test_padding_and_batch_invariance(cls):
    torch.manual_seed(0)
    model = cls(12, 8)
    rows = [[1, 2, 1, 2, 3], [4, 5], [7, 8, 9, 10, 11, 12, 1]]
    batch = make_batch(rows)
    wide = make_batch(rows, width=11)  # more padding columns
    with torch.no_grad():
        ref = model.scores(batch)
        torch.testing.assert_close(model.scores(wide), ref)
        enc, enc_wide = model.encode(batch), model.encode(wide)
        torch.testing.assert_close(enc_wide.h_local, enc.h_local)
        torch.testing.assert_close(enc_wide.h_global, enc.h_global)
        for i, row in enumerate(rows):  # a session alone scores as inside the batch
            torch.testing.assert_close(model.scores(make_batch([row]))[0], ref[i])


# --- training and determinism ----------------------------------------------------------

def synthetic_batches(n_items: int = 24, seed: int = 0) -> list[SessionBatch]:
    """Sessions walking a cycle 1 → 2 → … → n_items → 1: the next item is learnable."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(4):
        starts = torch.randint(0, n_items, (32,), generator=gen)
        lengths = torch.randint(1, 6, (32,), generator=gen)
        steps = torch.arange(6)
        seq = (starts.view(-1, 1) + steps) % n_items + 1  # [32, 6]
        targets = seq[torch.arange(32), lengths]
        items = seq[:, :5] * (steps[:5] < lengths.view(-1, 1))
        batches.append(SessionBatch(items, lengths, targets, torch.arange(32)))
    return batches


def train(model: torch.nn.Module, batches: list[SessionBatch], epochs: int) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-5)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for batch in batches:
            opt.zero_grad()
            loss = F.cross_entropy(model.scores(batch)[:, 1:], batch.targets - 1)
            loss.backward()
            opt.step()
            total += loss.item()
        losses.append(total / len(batches))
    return losses


@pytest.mark.parametrize("cls", MODELS)
def test_loss_falls_on_synthetic_data(cls):
    torch.manual_seed(0)
    losses = train(cls(24, 16), synthetic_batches(), epochs=15)
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("cls", MODELS)
def test_deterministic_given_seed(cls):
    batches = synthetic_batches()[:2]
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = cls(24, 8)
        train(model, batches, epochs=1)
        with torch.no_grad():
            runs.append(model.scores(batches[0]))
    assert torch.equal(runs[0], runs[1])


# --- TAGNN's full-catalogue target attention ------------------------------------------

def naive_tagnn_scores(model: TAGNN, batch: SessionBatch) -> torch.Tensor:
    """Per session, per candidate: β = softmax over the real clicks, s_i = s_h + Σ β v_t."""
    states = model.graph_states(batch)
    s_h = model.transform(torch.cat([states.local, states.global_], dim=-1))
    table = model.item_embedding.weight
    out = torch.zeros(len(batch.items), table.shape[0], dtype=table.dtype)
    for b in range(len(batch.items)):
        clicks = states.clicks[states.click_session == b]  # [len_b, d]
        for i in range(table.shape[0]):
            v_i = table[i]
            beta = torch.softmax(torch.stack([v_i @ model.target_key.weight @ v_t
                                              for v_t in clicks]), dim=0)
            s_i = s_h[b] + (beta.unsqueeze(1) * clicks).sum(0)
            out[b, i] = s_i @ v_i
    return out


@pytest.mark.parametrize("scale", [1.0, 60.0])
def test_tagnn_scores_equal_naive_loop(scale):
    torch.manual_seed(0)
    model = TAGNN(7, 5).double()
    with torch.no_grad():  # scale 60: logits in the thousands test the softmax stabiliser
        model.item_embedding.weight.mul_(scale)
    batch = make_batch([[1, 2, 1, 3], [6, 7]], width=6)
    with torch.no_grad():
        fast = model.scores(batch)
        naive = naive_tagnn_scores(model, batch)
    assert fast.shape == (2, 8) and torch.isfinite(fast).all()
    torch.testing.assert_close(fast, naive, rtol=1e-9, atol=1e-9 * scale ** 2)


def test_tagnn_chunked_scores_and_gradients_match():
    torch.manual_seed(0)
    whole = TAGNN(11, 6).double()
    chunked = TAGNN(11, 6, chunk_elements=10).double()  # 10 // 6 clicks = 1 item per chunk
    chunked.load_state_dict(whole.state_dict())
    batch = make_batch([[1, 2, 1, 3], [6, 7]])
    grads = []
    for model in (whole, chunked):
        scores = model.scores(batch)
        F.cross_entropy(scores[:, 1:], torch.tensor([4, 9])).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(chunked.scores(batch), whole.scores(batch))
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, msg=name)


def test_target_attention_gradcheck():
    torch.manual_seed(0)
    counts = torch.tensor([3, 1, 2])
    args = [torch.randn(3, 4), torch.randn(6, 4), torch.randn(6, 4), torch.randn(5, 4)]
    args = [a.double().requires_grad_() for a in args]

    def fn(session, clicks, keys, table):
        return target_attentive_scores(session, clicks, keys, counts, table, 2 ** 20)

    assert torch.autograd.gradcheck(fn, args)
