"""Building blocks shared by the backbones: session graphs, scatter means, attention
readout and position embeddings. Written once, used by every model that needs them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SessionGraph:
    """The sessions of a batch as one disjoint graph (SR-GNN §3.2).

    Each session's distinct items are its nodes; a directed edge u → v joins
    consecutive clicks, counted once however often it repeats.
    """

    node_items: torch.Tensor  # long [M]: item id of each node
    node_session: torch.Tensor  # long [M]: the batch row each node belongs to
    alias: torch.Tensor  # long [B, L]: node of each click, -1 at padding
    edges: torch.Tensor  # long [2, E]: (source, target) node pairs, unique, no padding

    @property
    def n_nodes(self) -> int:
        return self.node_items.numel()


def build_session_graph(items: torch.Tensor) -> SessionGraph:
    """Vectorised construction from right-padded ``items`` [B, L] (0 = padding).

    Nodes are numbered session by session, items ascending within a session. No Python
    loop over sessions: the whole batch is one ``torch.unique`` over (row, item) keys.
    """
    b, width = items.shape
    real = items > 0
    stride = int(items.max()) + 1 if items.numel() else 1
    rows = torch.arange(b, device=items.device).view(-1, 1).expand(b, width)
    keys = rows * stride + items
    node_keys, inverse = torch.unique(keys[real], return_inverse=True)
    alias = torch.full_like(items, -1)
    alias[real] = inverse
    src, dst = alias[:, :-1], alias[:, 1:]
    both = (src >= 0) & (dst >= 0)
    # One 1-D unique over src·M + dst keys: several times faster than unique(dim=1).
    n_nodes = node_keys.numel()
    edge_keys = torch.unique(src[both] * n_nodes + dst[both])
    edges = torch.stack([edge_keys // n_nodes, edge_keys % n_nodes])
    return SessionGraph(node_items=node_keys % stride, node_session=node_keys // stride,
                        alias=alias, edges=edges)


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of the rows of ``values`` grouped by ``index`` into ``size`` rows (0 if empty)."""
    out = values.new_zeros(size, values.shape[-1])
    out.index_add_(0, index, values)
    count = torch.bincount(index, minlength=size).clamp_min(1).to(values.dtype)
    return out / count.unsqueeze(-1)


def gather_clicks(node_states: torch.Tensor, alias: torch.Tensor) -> torch.Tensor:
    """Per-click states [B, L, d] from node states [M, d]; zeros at padding."""
    out = node_states[alias.clamp_min(0)]
    return out * (alias >= 0).unsqueeze(-1).to(out.dtype)


class SoftAttentionReadout(nn.Module):
    """SR-GNN eq. (6): α_i = qᵀ σ(W₁ v_last + W₂ v_i + c),  s_g = Σ_i α_i v_i."""

    def __init__(self, dim: int):
        super().__init__()
        self.w_last = nn.Linear(dim, dim, bias=False)
        self.w_item = nn.Linear(dim, dim, bias=True)
        self.q = nn.Linear(dim, 1, bias=False)

    def forward(self, clicks: torch.Tensor, last: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        alpha = self.q(torch.sigmoid(self.w_last(last).unsqueeze(1) + self.w_item(clicks)))
        return (alpha * mask.unsqueeze(-1).to(clicks.dtype) * clicks).sum(dim=1)

    # The same readout on FLAT clicks ([C, d] real click states and the batch row of each):
    # it touches only the C = Σ len_b real clicks, where a padded Beauty batch has ~10× as
    # many slots (and the padded gather's backward serialises on the padding rows).
    def forward_flat(self, clicks: torch.Tensor, last: torch.Tensor,
                     click_session: torch.Tensor) -> torch.Tensor:
        """clicks [C, d]; last [B, d]; click_session long [C] → s_g [B, d]."""
        alpha = self.q(torch.sigmoid(self.w_last(last)[click_session] + self.w_item(clicks)))
        return last.new_zeros(last.shape).index_add(0, click_session, alpha * clicks)


class PositionEmbedding(nn.Module):
    """Learned position embeddings; ``reverse`` counts positions from the most recent click
    (GCE-GNN, S²-DHCN), so the last click always has position 0 whatever the length."""

    def __init__(self, max_len: int, dim: int, reverse: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(max_len, dim)
        self.reverse = reverse

    def forward(self, lengths: torch.Tensor, width: int) -> torch.Tensor:
        pos = torch.arange(width, device=lengths.device).unsqueeze(0).expand(len(lengths), -1)
        if self.reverse:
            pos = (lengths.view(-1, 1) - 1 - pos).clamp_min(0)
        return self.embedding(pos.clamp_max(self.embedding.num_embeddings - 1))


def last_real_state(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, d] state at position ``lengths − 1`` of right-padded per-click states [B, L, d]."""
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
    return states.gather(1, index).squeeze(1)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, d] mean of per-click states [B, L, d] over the positions where ``mask`` is True."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def keep_last_clicks(items: torch.Tensor, lengths: torch.Tensor, max_len: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The last ``max_len`` clicks of right-padded ``items`` [B, L], still right-padded.

    Vectorised: row b reads columns ``start_b .. start_b + max_len − 1`` with
    ``start_b = max(lengths_b − max_len, 0)``; columns past the (new) length become 0.
    """
    if items.shape[1] <= max_len:
        return items, lengths
    start = (lengths - max_len).clamp_min(0).view(-1, 1)
    cols = torch.arange(max_len, device=items.device).view(1, -1)
    kept = items.gather(1, (start + cols).clamp_max(items.shape[1] - 1))
    new_lengths = lengths.clamp_max(max_len)
    return kept * (cols < new_lengths.view(-1, 1)).to(kept.dtype), new_lengths


def scatter_softmax(logits: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Softmax of ``logits`` [E] within the groups given by ``index`` [E] (``size`` groups)."""
    top = logits.new_full((size,), -math.inf).scatter_reduce(
        0, index, logits.detach(), reduce="amax", include_self=True)
    ex = torch.exp(logits - top[index])
    return ex / ex.new_zeros(size).index_add_(0, index, ex)[index]


class PositionAwareReadout(nn.Module):
    """GCE-GNN eqs. (9)–(12), also S²-DHCN's session embedding (Xia et al.):

    z_i = tanh(W₁ [x_i ; p_{l−i+1}] + b₁),  β_i = qᵀ σ(W₂ z_i + W₃ x̄ + b₂),  S = Σ_i β_i x_i

    with reverse position embeddings p (the last click has position 1) and the session
    mean x̄ = mean_i x_i.
    """

    def __init__(self, dim: int, max_len: int = 200):
        super().__init__()
        self.position = PositionEmbedding(max_len, dim, reverse=True)
        self.w_z = nn.Linear(2 * dim, dim, bias=True)
        self.w_item = nn.Linear(dim, dim, bias=True)
        self.w_mean = nn.Linear(dim, dim, bias=False)
        self.q = nn.Linear(dim, 1, bias=False)

    def forward(self, clicks: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
                ) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(clicks.dtype)
        pos = self.position(lengths, clicks.shape[1])
        z = torch.tanh(self.w_z(torch.cat([clicks, pos], dim=-1)))
        mean = (clicks * m).sum(1) / m.sum(1).clamp_min(1)
        beta = self.q(torch.sigmoid(self.w_item(z) + self.w_mean(mean).unsqueeze(1)))
        return (beta * m * clicks).sum(dim=1)
