"""SR-GNN — Wu, Tang, Zhu, Wang, Xie & Tan, "Session-based Recommendation with Graph Neural
Networks", AAAI 2019.

Each session is a directed graph over its distinct items (§3.2): an edge u → v joins two
consecutive clicks and is counted once however often it repeats. A batch is one disjoint
graph (:func:`~.blocks.build_session_graph`), so propagation is a few ``index_add_``
scatters over the whole batch, never a Python loop over sessions nor a dense [B, n, n]
adjacency.

Equations, for node v with state h_v (eqs. 1–5, one gated step repeated ``step`` times):

    a_in(v)  = mean_{u → v} (W_in  h_u + b'_in)  + b_in      (incoming half of A_s,i:)
    a_out(u) = mean_{u → v} (W_out h_v + b'_out) + b_out     (outgoing half)
    a = [a_in; a_out]
    r = σ(W_ar a + b_ar + W_hr h + b_hr)            reset gate  (eq. 3)
    z = σ(W_az a + b_az + W_hz h + b_hz)            update gate (eq. 2)
    n = tanh(W_an a + b_an + r ⊙ (W_hn h + b_hn))   candidate   (eq. 4)
    h ← (1 − z) ⊙ n + z ⊙ h                                      (eq. 5)

then, over the clicks v_1..v_n of a session (v_t = the state of click t's node):

    s_l = v_n                                                    (local, §3.4)
    α_t = qᵀ σ(W_1 v_n + W_2 v_t + c),  s_g = Σ_t α_t v_t        (eq. 6)
    s_h = W_3 [s_l; s_g]                                         (eq. 7)
    ŷ_i = s_hᵀ v_i  over the whole catalogue                     (eq. 8)

How this matches the authors' PyTorch code (CRIPAC-DIG/SR-GNN):

* the mean over in-/out-edges is exactly the reference's A_in / A_out: the 0/1 adjacency
  divided column-wise by the in-degree and row-wise by the out-degree (a degree of 0 is
  treated as 1, so a node with no in-edges gets a_in = b_in);
* both biases of the reference are kept: the one inside ``linear_edge_in/out`` (b', part
  of every message, hence absent for nodes without edges) and ``b_iah`` / ``b_oah`` (b);
* gate layout (reset, update, new), ``h ← n + z ⊙ (h − n)`` and the α readout without a
  softmax are the reference's (the paper's eq. 5 writes (1 − z) ⊙ h + z ⊙ n: the same
  model family with z ↔ 1 − z; we keep the reference's form). The reference concatenates
  [s_g; s_l]; we write [s_l; s_g] as eq. 7 does, an equivalent reordering of W_3's columns;
* every parameter is drawn from U(−1/√d, 1/√d) as in the reference; the padding row 0 of
  the item table is then zeroed (the reference never scores item 0 either);
* the reference adds the padding item 0 as an extra, edge-less node to every graph; it
  cannot influence any other node or the readout, so we leave it out. The reference's
  unused ``linear_edge_f`` is omitted.

The readout runs on the C = Σ len_b real clicks of the batch laid out flat, not on the
padded [B, L] grid (:meth:`~.blocks.SoftAttentionReadout.forward_flat`): on Beauty that
is ~860 rows instead of ~8,600 per batch of 100, and it halved the step time.

The two views LLM4SBR needs are the model's own: h_local = s_l, h_global = s_g; its own
head (variant ``base``) is eq. 7.

:class:`GatedSessionGraph` (the GGNN) and :class:`SRGNN`'s encoder are reused by TAGNN
(``tagnn.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..data.batches import SessionBatch
from ..errors import InvalidInputError
from .base import Backbone, Encoded
from .blocks import SoftAttentionReadout, build_session_graph, scatter_mean


class GatedSessionGraph(nn.Module):
    """The gated graph network of SR-GNN eqs. (1)–(5) on a disjoint batch graph.

    Args:
        dim: node state width d.
        step: propagation steps (the reference's ``--step``, default 1).
    """

    def __init__(self, dim: int, step: int = 1):
        super().__init__()
        if step < 1:
            raise InvalidInputError(f"step must be >= 1, got {step}")
        self.step = step
        self.edge_in = nn.Linear(dim, dim)  # W_in, b'_in (reference: linear_edge_in)
        self.edge_out = nn.Linear(dim, dim)  # W_out, b'_out (reference: linear_edge_out)
        self.bias_in = nn.Parameter(torch.zeros(dim))  # b_in (reference: b_iah)
        self.bias_out = nn.Parameter(torch.zeros(dim))  # b_out (reference: b_oah)
        self.input_gates = nn.Linear(2 * dim, 3 * dim)  # w_ih, b_ih: (reset, update, new)
        self.hidden_gates = nn.Linear(dim, 3 * dim)  # w_hh, b_hh

    def cell(self, hidden: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """One propagation step. hidden [M, d]; edges long [2, E] (unique u → v pairs)."""
        n_nodes = hidden.shape[0]
        src, dst = edges[0], edges[1]
        # Messages are the transformed neighbour states; the mean over a node's in- or
        # out-edges is the reference's degree-normalised A_in / A_out product.
        a_in = scatter_mean(self.edge_in(hidden)[src], dst, n_nodes) + self.bias_in
        a_out = scatter_mean(self.edge_out(hidden)[dst], src, n_nodes) + self.bias_out
        gi_r, gi_z, gi_n = self.input_gates(torch.cat([a_in, a_out], dim=-1)).chunk(3, -1)
        gh_r, gh_z, gh_n = self.hidden_gates(hidden).chunk(3, -1)
        reset = torch.sigmoid(gi_r + gh_r)
        update = torch.sigmoid(gi_z + gh_z)
        new = torch.tanh(gi_n + reset * gh_n)
        return new + update * (hidden - new)

    def forward(self, hidden: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        for _ in range(self.step):
            hidden = self.cell(hidden, edges)
        return hidden


@dataclass
class SessionGraphStates:
    """What the SR-GNN encoder computes for a batch (shared by SR-GNN's and TAGNN's heads)."""

    clicks: torch.Tensor  # [C, d] node state of every real click, grouped by session
    click_session: torch.Tensor  # long [C]: the batch row of each click
    local: torch.Tensor  # [B, d] s_l: the state of the last click
    global_: torch.Tensor  # [B, d] s_g: eq. (6)


def uniform_reset(module: nn.Module, dim: int) -> None:
    """The reference's initialisation: every parameter ~ U(−1/√d, 1/√d)."""
    bound = 1.0 / math.sqrt(dim)
    with torch.no_grad():
        for param in module.parameters():
            param.uniform_(-bound, bound)


class SRGNN(Backbone):
    """Session graph → gated GNN → s_l (last click) and s_g (soft attention); head eq. 7.

    Args:
        n_items: number of items N (ids 1..N, 0 = padding).
        dim: embedding width d (the reference's ``hiddenSize``, paper 100).
        step: GGNN propagation steps (reference default 1).
    """

    name = "srgnn"

    def __init__(self, n_items: int, dim: int, *, step: int = 1):
        super().__init__(n_items, dim)
        self.ggnn = GatedSessionGraph(dim, step)
        self.readout = SoftAttentionReadout(dim)  # eq. (6)
        self.transform = nn.Linear(2 * dim, dim)  # W_3 of eq. (7)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_reset(self, self.dim)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def graph_states(self, batch: SessionBatch) -> SessionGraphStates:
        """Propagate over the batch's session graphs and read out s_l and s_g."""
        graph = build_session_graph(batch.items)
        nodes = self.ggnn(self.item_embedding(graph.node_items), graph.edges)
        # Work on the real clicks only (flat, row-major = grouped by session), never on
        # the padded [B, L] layout: see SoftAttentionReadout.forward_flat.
        real = graph.alias >= 0
        click_session = real.nonzero(as_tuple=True)[0]
        clicks = nodes[graph.alias[real]]
        last_alias = graph.alias.gather(1, (batch.lengths - 1).view(-1, 1)).squeeze(1)
        local = nodes[last_alias]
        return SessionGraphStates(clicks=clicks, click_session=click_session, local=local,
                                  global_=self.readout.forward_flat(clicks, local,
                                                                    click_session))

    def encode(self, batch: SessionBatch) -> Encoded:
        states = self.graph_states(batch)
        return Encoded(h_local=states.local, h_global=states.global_,
                       item_table=self.item_embedding.weight)

    def session_head(self, enc: Encoded) -> torch.Tensor:
        """Eq. (7): s_h = W_3 [s_l; s_g]."""
        return self.transform(torch.cat([enc.h_local, enc.h_global], dim=-1))


