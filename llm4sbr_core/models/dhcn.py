"""S²-DHCN: Xia et al., "Self-Supervised Hypergraph Convolutional Networks for Session-based
Recommendation", AAAI 2021 (reference code: xiaxin1998/DHCN).

Hypergraph channel: every TRAINING session is a hyperedge over its distinct items
(incidence H, items × sessions, built once by :meth:`DHCN.build_training_graph`). Item
embeddings go through L (default 3) layers of parameter-free hypergraph convolution

    X^(l+1) = D⁻¹ H W B⁻¹ Hᵀ X^(l)     (W = I, D = item degrees, B = hyperedge sizes)

and are averaged over layers, X_h = 1/(L+1) Σ_l X^(l). The product is never formed: the
two normalised incidence matrices D⁻¹H and B⁻¹Hᵀ are sparse CSR buffers and each layer
is two sparse-dense products (cost ∝ nnz(H) · d, ~160k non-zeros on Beauty).

Session embedding: x*_t = tanh(W₁ [x_t ; p_{m−t+1}] + b) with reverse position
embeddings, s* = mean_t x_t, α_t = fᵀ σ(W₂ s* + W₃ x*_t + c), θ_h = Σ_t α_t x_t, with
x_t the hypergraph-convolved embedding of the t-th click. Scores z_i = θ_hᵀ x_i:
``item_table`` is the convolved table.

Line-graph channel, for the self-supervised task only: the sessions of the batch
are nodes, A_ij = |s_i ∩ s_j| / |s_i ∪ s_j| (1 on the diagonal), the initial session
vectors are the means of their clicks' (unconvolved) item embeddings, and
Θ^(l+1) = D̂⁻¹ Â Θ^(l) over L layers, averaged. The contrastive (InfoMax) loss

    L_s = Σ_batch −log σ(θ_hᵀ θ_l) − log σ(−θ̃_hᵀ θ_l)

uses θ̃_h = θ_h with rows and columns shuffled as negatives, and is weighted by β
(:meth:`DHCN.auxiliary_loss`; the trainer adds it to the cross-entropy). The negative
term is −log(1 − σ(θ̃_hᵀ θ_l)) = −log σ(−θ̃_hᵀ θ_l) as in the reference. Summed over the
batch, as in the reference, which is what β = 0.01 (the reference's default and its
best value on Diginetica) is tuned for.

The LLM4SBR views (``encode``):

* ``h_global`` = θ_h, the hypergraph-channel session embedding: built from items that
  carry every training session they were part of (cross-session, long-term), and the
  model's own head.
* ``h_local`` = the convolved embedding of the last click, the analogue of SR-GNN's last
  node that LLM4SBR uses as the short-term view. The line-graph embedding is not used:
  it depends on which other sessions share the batch, so a session's vector (and its
  ranking at test time) would change with the batching.

Deviations (with reasons): layers are averaged as the paper writes (the reference sums
them, a factor L+1 on the item table); hyperedges are the full training sessions
(longest input + target) as the paper describes, where the reference makes a hyperedge
of every augmented sample's input (each prefix once, targets never); −log σ(·) is
computed stably with ``logsigmoid`` instead of log(σ(·) + 1e-8); the line graph is built
with a dense [B, V] batch incidence instead of a Python double loop; the readout keeps the
paper's bias b (the reference omits it); the padding row 0 of the convolved table is held
at zero.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..data.batches import SampleTensors, SessionBatch
from ..errors import InvalidInputError
from .base import Backbone, Encoded
from .blocks import PositionAwareReadout
from .training_graphs import session_incidence, training_sessions


def normalized_incidence(item: torch.Tensor, session: torch.Tensor, n_items: int,
                         n_sessions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(D⁻¹H [N+1, S], B⁻¹Hᵀ [S, N+1]) as sparse CSR from the non-zeros of the binary
    incidence H. Items in no session have degree 0 and an all-zero row (no division)."""
    ones = torch.ones(len(item), dtype=torch.float32, device=item.device)
    degree = torch.zeros(n_items + 1, device=item.device).index_add_(0, item, ones)
    size = torch.zeros(n_sessions, device=item.device).index_add_(0, session, ones)
    return (_csr(item, session, 1.0 / degree[item], (n_items + 1, n_sessions)),
            _csr(session, item, 1.0 / size[session], (n_sessions, n_items + 1)))


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor,
         shape: tuple[int, int]) -> torch.Tensor:
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape,
                                  check_invariants=True).coalesce()
    with warnings.catch_warnings():  # CSR is "beta" but sparse @ dense is all we use
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


class _ConstSparseMM(torch.autograd.Function):
    """``a @ x`` for a constant sparse ``a`` whose transpose ``a_t`` is precomputed: the
    built-in backward transposes (sorts) ``a`` again on every call, ~40% of a step."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor
                ) -> torch.Tensor:
        ctx.a_t = a_t
        return a @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, ctx.a_t @ grad


def line_graph(items: torch.Tensor) -> torch.Tensor:
    """Row-normalised line graph D̂⁻¹Â [B, B] of a batch: Â_ij = |s_i ∩ s_j| / |s_i ∪ s_j|
    over distinct items (so Â_ii = 1)."""
    b = items.shape[0]
    real = items > 0
    _, col = torch.unique(items[real], return_inverse=True)
    rows = torch.arange(b, device=items.device).view(-1, 1).expand_as(items)[real]
    inc = torch.zeros(b, int(col.max()) + 1 if col.numel() else 1, device=items.device)
    inc[rows, col] = 1.0  # a repeated item is set once
    overlap = inc @ inc.T
    size = overlap.diagonal()
    a = overlap / (size.view(-1, 1) + size.view(1, -1) - overlap).clamp_min(1)
    return a / a.sum(1, keepdim=True).clamp_min(1e-12)


def _transpose_coo(matrix: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
    coo = matrix.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    return cols, rows, coo.values(), (matrix.shape[1], matrix.shape[0])


class DHCN(Backbone):
    """S²-DHCN with its training hypergraph given as ``graph`` (see build_training_graph)."""

    name: ClassVar[str] = "dhcn"
    needs_training_graph: ClassVar[bool] = True

    @classmethod
    def build_training_graph(cls, train: SampleTensors | str | Path, n_items: int,
                             **model_hparams: Any) -> dict[str, np.ndarray]:
        """The incidence of the TRAINING sessions in ``train`` (tensors or parquet path):
        ``item`` and ``session`` int64 [nnz] (the non-zeros of the binary H, items ×
        sessions) and ``n_sessions`` (0-d int64). Constructor hyper-parameters may be
        passed too and are ignored."""
        cls.split_params(model_hparams)  # constructor keys are ignored here
        sessions = training_sessions(train)
        if len(sessions.items) and int(sessions.items.max()) > n_items:
            raise InvalidInputError(f"training sessions contain item ids above n_items={n_items}")
        item, session = session_incidence(sessions, n_items)
        return {"item": item, "session": session,
                "n_sessions": np.array(len(sessions), dtype=np.int64)}

    def __init__(self, n_items: int, dim: int, *, layers: int = 3, beta: float = 0.01,
                 max_len: int = 200, graph: dict[str, np.ndarray] | None = None):
        super().__init__(n_items, dim)
        if graph is None:
            raise InvalidInputError("DHCN needs graph= (DHCN.build_training_graph on the "
                                    "train set)")
        item = torch.as_tensor(np.asarray(graph["item"]), dtype=torch.long)
        session = torch.as_tensor(np.asarray(graph["session"]), dtype=torch.long)
        n_sessions = int(np.asarray(graph["n_sessions"]))
        if item.numel() and (int(item.max()) > n_items or int(session.max()) >= n_sessions):
            raise InvalidInputError(f"incidence does not fit n_items={n_items}, "
                                    f"n_sessions={n_sessions}")
        dh, bht = normalized_incidence(item, session, n_items, n_sessions)
        # derived from the cached graph artifact: not part of the checkpoint; the
        # transposes serve the backward pass
        for name, matrix in (("dh", dh), ("bht", bht)):
            self.register_buffer(name, matrix, persistent=False)
            self.register_buffer(name + "_t", _csr(*_transpose_coo(matrix)),
                                 persistent=False)
        self.layers = layers
        self.beta = beta
        self.readout = PositionAwareReadout(dim, max_len)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the reference initialises every parameter U(−1/√d, 1/√d)
        stdv = 1.0 / math.sqrt(self.dim)
        for weight in self.parameters():
            torch.nn.init.uniform_(weight, -stdv, stdv)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def convolve(self) -> torch.Tensor:
        """X_h [N+1, d]: hypergraph convolution averaged over layers 0..L."""
        # row 0 (padding) held at zero and out of the gradient, as the embedding lookup does
        x = F.pad(self.item_embedding.weight[1:], (0, 0, 1, 0))
        total = x
        for _ in range(self.layers):
            x = _ConstSparseMM.apply(self.bht, self.bht_t, x)
            x = _ConstSparseMM.apply(self.dh, self.dh_t, x)
            total = total + x
        return total / (self.layers + 1)

    def encode(self, batch: SessionBatch) -> Encoded:
        table = self.convolve()
        clicks = table[batch.items]  # row 0 (padding) is zero: no item, no degree
        theta_h = self.readout(clicks, batch.mask, batch.lengths)
        return Encoded(h_local=table[batch.last_items], h_global=theta_h, item_table=table)

    def session_head(self, enc: Encoded) -> torch.Tensor:
        return enc.h_global  # θ_h; scores = θ_hᵀ X_h

    def line_embedding(self, batch: SessionBatch) -> torch.Tensor:
        """θ_l [B, d]: the line-graph channel of the batch's sessions."""
        m = batch.mask.unsqueeze(-1).to(self.item_embedding.weight.dtype)
        x = (self.item_embedding(batch.items) * m).sum(1) / m.sum(1).clamp_min(1)
        adj = line_graph(batch.items)
        total = x
        for _ in range(self.layers):
            x = adj @ x
            total = total + x
        return total / (self.layers + 1)

    def auxiliary_loss(self, batch: SessionBatch, enc: Encoded) -> torch.Tensor:
        """β · L_s, the self-supervised loss between the two channels (scalar).

        Uses ``enc.h_global`` (θ_h of this batch) and draws the row and column shuffles of
        the negatives from torch's global generator (reproducible under manual_seed).
        """
        theta_h = enc.h_global
        theta_l = self.line_embedding(batch)
        rows = torch.randperm(theta_h.shape[0], device=theta_h.device)
        cols = torch.randperm(theta_h.shape[1], device=theta_h.device)
        corrupted = theta_h[rows][:, cols]
        pos = (theta_h * theta_l).sum(-1)
        neg = (corrupted * theta_l).sum(-1)
        loss = -(F.logsigmoid(pos) + F.logsigmoid(-neg)).sum()
        return self.beta * loss
