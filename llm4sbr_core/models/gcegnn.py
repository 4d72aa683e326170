"""GCE-GNN: Wang et al., "Global Context Enhanced Graph Neural Networks for Session-based
Recommendation", SIGIR 2020 (reference code: CCIIPLab/GCE-GNN).

Global graph, built once from the TRAINING sessions only: items at most ε clicks
apart in a session are neighbours, the edge weight is how often that happens, and each
item keeps its N heaviest neighbours. Defaults ε = 3 and N = 12 are the reference's
(``build_graph.py`` pairs items 1..3 clicks apart and keeps ``sample_num = 12``).

Per batch:

* session-aware global item representation (eqs. 1–5): with the session mean
  s = 1/|S| Σ h_v (eq. 3), π(v_i, v_j) = q₁ᵀ LeakyReLU(W₁ [(s ⊙ h_vj) ; w_ij]) (eq. 2),
  softmax over the neighbours, h_Nvi = Σ π h_vj (eq. 1),
  h_v^g = ReLU(W₂ [h_v ; h_Nv]) (eq. 4, dropout on the concatenation), over ``hop``
  hops (eq. 5; 1 hop by default, as in the reference for most datasets);
* local session-graph representation (eqs. 6–8): e_ij = LeakyReLU(a_rijᵀ (h_i ⊙ h_j)) with
  one vector a_r per relation (self, out, in, in-out), softmax over the node's session-
  graph neighbours including itself, h_i^s = Σ_j α_ij h_j;
* h'_v = dropout(h_v^g) + dropout(h_v^s) (the reference's dropouts: 0.5 on the global,
  0 on the local part by default);
* readout (eqs. 9–12): z_i = tanh(W₁ [h'_i ; p_{l−i+1}] + b₁) with reverse positions,
  s' = mean_i h'_i, β_i = qᵀ σ(W₂ z_i + W₃ s' + b₂), S = Σ_i β_i h'_i;
* scores ŷ_i = Sᵀ v_i against the initial item embeddings (eq. 13).

The LLM4SBR views (``encode``):

* ``h_global`` = S, the readout above: it mixes every click with its cross-session
  (global-graph) context and weighs the whole session, i.e. the long-term view the
  LLM4SBR paper aligns with the long-term intent; it is also GCE-GNN's own head.
* ``h_local`` = the local-graph representation h^s of the last click (eqs. 6–8): the
  current-session, most recent interest without the global context, as SR-GNN's last
  node is for LLM4SBR's short-term view; keeping the global context out of it keeps the
  two views distinct.

Deviations (with reasons): neighbours are the exact top-N by weight (ties to the smaller
item id) with a mask for items with fewer than N neighbours, where the reference fills
their N slots by sampling the neighbours *with replacement* (so some count twice in the
softmax) and gives an item without neighbours N copies of item 0; an item repeated next
to itself is not its own neighbour; the local attention runs on a sparse edge list
instead of a dense [B, n, n] adjacency (same maths); node states are computed once per
distinct item of a session (the reference repeats the global step per click, same
values); the readout has the bias b₁ of eq. (9), which the reference omits.

Seed sensitivity (measured on Beauty, RESULTS.md). β_i of eq. (11) is not normalised (as in
the paper and the reference), and σ(·) ≈ 1/2 at the start, so S begins as ≈ (Σ_j q_j / 2)
× the sum of the click states: an initial q whose entries sum to ≤ 0 starts the session
vector anti-aligned with (or blind to) its own clicks. Such seeds train visibly slower
and one (seed 0, Σq = −1.21) settled at P@20 12.8 against 18.8 for the others;
``benchmarks/seed_sensitivity.py --swap`` pins the effect on ``readout.q`` alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.batches import SampleTensors, SessionBatch
from ..errors import InvalidInputError
from .base import Backbone, Encoded
from .blocks import (
    PositionAwareReadout,
    SessionGraph,
    build_session_graph,
    gather_clicks,
    scatter_softmax,
)
from .training_graphs import cooccurrence_counts, top_neighbours, training_sessions


class LocalAggregator(nn.Module):
    """GCE-GNN eqs. (6)–(8): relation-aware attention over a session graph's nodes."""

    SELF, OUT, IN, IN_OUT = 0, 1, 2, 3

    def __init__(self, dim: int, leaky_alpha: float = 0.2):
        super().__init__()
        self.a = nn.Parameter(torch.empty(4, dim))  # a_self, a_out, a_in, a_in-out
        self.leaky_alpha = leaky_alpha

    @classmethod
    def relations(cls, graph: SessionGraph) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(receiver i, sender j, relation r_ij) for every attention pair, self loops included.

        u → v is "out" for u and "in" for v; a pair linked both ways is "in-out".
        """
        src, dst = graph.edges
        keep = src != dst  # a repeated click is only the self relation
        src, dst = src[keep], dst[keep]
        m = graph.n_nodes
        recv = torch.cat([src, dst])
        send = torch.cat([dst, src])
        code = torch.cat([torch.full_like(src, cls.OUT), torch.full_like(dst, cls.IN)])
        keys, inverse = torch.unique(recv * m + send, return_inverse=True)
        rel = torch.zeros_like(keys).index_add_(0, inverse, code)  # OUT + IN = IN_OUT
        nodes = torch.arange(m, device=src.device)
        return (torch.cat([keys // m, nodes]), torch.cat([keys % m, nodes]),
                torch.cat([rel, torch.full_like(nodes, cls.SELF)]))

    def forward(self, h: torch.Tensor, graph: SessionGraph) -> torch.Tensor:
        recv, send, rel = self.relations(graph)
        e = F.leaky_relu((h[recv] * h[send] * self.a[rel]).sum(-1), self.leaky_alpha)
        alpha = scatter_softmax(e, recv, graph.n_nodes)
        return h.new_zeros(h.shape).index_add_(0, recv, alpha.unsqueeze(-1) * h[send])


class GlobalAggregator(nn.Module):
    """GCE-GNN eqs. (1), (2), (4): session-aware attention over global neighbours."""

    def __init__(self, dim: int, dropout: float = 0.0, leaky_alpha: float = 0.2):
        super().__init__()
        self.w_att = nn.Linear(dim + 1, dim, bias=False)  # W₁ of eq. (2)
        self.q = nn.Linear(dim, 1, bias=False)  # q₁
        self.w_out = nn.Linear(2 * dim, dim, bias=False)  # W₂ of eq. (4)
        self.dropout = nn.Dropout(dropout)
        self.leaky_alpha = leaky_alpha

    def forward(self, self_vec: torch.Tensor, neigh_vec: torch.Tensor,
                neigh_weight: torch.Tensor, neigh_mask: torch.Tensor, session: torch.Tensor
                ) -> torch.Tensor:
        """self_vec [M, P, d]; neigh_vec [M, P, K, d]; neigh_weight, neigh_mask [M, P, K];
        session [M, d] (the mean of the node's session, eq. 3) → [M, P, d]."""
        s = session[:, None, None, :]
        att = torch.cat([s * neigh_vec, neigh_weight.unsqueeze(-1)], dim=-1)
        pi = self.q(F.leaky_relu(self.w_att(att), self.leaky_alpha)).squeeze(-1)
        # items with fewer than K neighbours: mask, and an item with none gets h_N = 0
        pi = torch.softmax(pi.masked_fill(~neigh_mask, -1e9), dim=-1) * neigh_mask
        h_n = (pi.unsqueeze(-1) * neigh_vec).sum(dim=-2)
        return torch.relu(self.w_out(self.dropout(torch.cat([self_vec, h_n], dim=-1))))


class GCEGNN(Backbone):
    """GCE-GNN with its global graph given as ``graph`` (see :meth:`build_training_graph`)."""

    name: ClassVar[str] = "gcegnn"
    needs_training_graph: ClassVar[bool] = True

    @classmethod
    def build_training_graph(cls, train: SampleTensors | str | Path, n_items: int, *,
                             window: int = 3, n_neighbors: int = 12,
                             **model_hparams: Any) -> dict[str, np.ndarray]:
        """The global graph of the TRAINING sessions in ``train`` (tensors or parquet path).

        ``window`` is ε (items at most ε clicks apart are neighbours), ``n_neighbors`` the
        N heaviest neighbours kept per item. Returns ``neighbors`` int64 [N+1, n_neighbors]
        (0 = none) and ``weights`` float32 [N+1, n_neighbors] (co-occurrence counts).
        Constructor hyper-parameters may be passed too and are ignored.
        """
        cls.split_params(model_hparams)  # constructor keys are ignored here
        sessions = training_sessions(train)
        if len(sessions.items) and int(sessions.items.max()) > n_items:
            raise InvalidInputError(f"training sessions contain item ids above n_items={n_items}")
        src, dst, count = cooccurrence_counts(sessions, window, n_items)
        neighbors, weights = top_neighbours(src, dst, count, n_items, n_neighbors)
        return {"neighbors": neighbors, "weights": weights}

    def __init__(self, n_items: int, dim: int, *, hop: int = 1, dropout_gcn: float = 0.0,
                 dropout_local: float = 0.0, dropout_global: float = 0.5,
                 leaky_alpha: float = 0.2, max_len: int = 200,
                 graph: dict[str, np.ndarray] | None = None):
        super().__init__(n_items, dim)
        if graph is None:
            raise InvalidInputError("GCEGNN needs graph= (GCEGNN.build_training_graph on the "
                                    "train set)")
        neighbors = torch.as_tensor(np.asarray(graph["neighbors"]), dtype=torch.long)
        weights = torch.as_tensor(np.asarray(graph["weights"]), dtype=torch.float32)
        if neighbors.shape[0] != n_items + 1 or weights.shape != neighbors.shape:
            raise InvalidInputError(f"graph arrays {tuple(neighbors.shape)}/{tuple(weights.shape)} "
                                    f"do not match n_items={n_items}")
        # derived from the cached graph artifact: not part of the checkpoint
        self.register_buffer("neighbors", neighbors, persistent=False)
        self.register_buffer("weights", weights, persistent=False)
        self.hop = hop
        self.local = LocalAggregator(dim, leaky_alpha)
        self.global_aggs = nn.ModuleList(
            GlobalAggregator(dim, dropout_gcn, leaky_alpha) for _ in range(hop))
        self.dropout_local = nn.Dropout(dropout_local)
        self.dropout_global = nn.Dropout(dropout_global)
        self.readout = PositionAwareReadout(dim, max_len)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the reference initialises every parameter U(−1/√d, 1/√d)
        stdv = 1.0 / math.sqrt(self.dim)
        for weight in self.parameters():
            nn.init.uniform_(weight, -stdv, stdv)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def global_context(self, node_items: torch.Tensor, session: torch.Tensor) -> torch.Tensor:
        """h^g [M, d] of each node's item given its session's mean ``session`` [M, d]."""
        m, k = len(node_items), self.neighbors.shape[1]
        ids = [node_items.view(m, 1)]  # hop h: [M, K^h] item ids
        weights = []
        for _ in range(self.hop):
            ids.append(self.neighbors[ids[-1]].view(m, -1))
            weights.append(self.weights[ids[-2]].view(m, -1))
        vectors = [self.item_embedding(i) for i in ids]
        for n_hop, aggregate in enumerate(self.global_aggs):  # eq. (5)
            vectors = [aggregate(vectors[h], vectors[h + 1].view(m, -1, k, self.dim),
                                 weights[h].view(m, -1, k), ids[h + 1].view(m, -1, k) > 0,
                                 session)
                       for h in range(self.hop - n_hop)]
        return vectors[0].view(m, self.dim)

    def encode(self, batch: SessionBatch) -> Encoded:
        items, mask = batch.items, batch.mask
        graph = build_session_graph(items)
        m = mask.unsqueeze(-1).to(self.item_embedding.weight.dtype)
        session = (self.item_embedding(items) * m).sum(1) / m.sum(1).clamp_min(1)  # eq. (3)
        h_nodes = self.item_embedding(graph.node_items)
        h_local = self.dropout_local(self.local(h_nodes, graph))
        h_global = self.dropout_global(
            self.global_context(graph.node_items, session[graph.node_session]))
        clicks = gather_clicks(h_local + h_global, graph.alias)
        readout = self.readout(clicks, mask, batch.lengths)
        last = graph.alias.gather(1, (batch.lengths - 1).view(-1, 1)).squeeze(1)
        return Encoded(h_local=h_local[last], h_global=readout,
                       item_table=self.item_embedding.weight)

    def session_head(self, enc: Encoded) -> torch.Tensor:
        return enc.h_global  # S of eq. (12); scores = Sᵀ v_i (eq. 13)
