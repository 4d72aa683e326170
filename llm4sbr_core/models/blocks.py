"""Building blocks shared by the backbones: session graphs, scatter means, attention
readout and position embeddings. Written once, used by every model that needs them."""

from __future__ import annotations

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
    pairs = torch.stack([src[both], dst[both]])
    edges = torch.unique(pairs, dim=1) if pairs.numel() else pairs
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
