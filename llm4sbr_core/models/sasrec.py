"""SASRec — Kang & McAuley, "Self-attentive sequential recommendation", ICDM 2018.

Equations (paper §III), for the n most recent clicks of a session:

    Ê_t   = E[i_t] · √d + P_t                                 (§III-B, embedding layer)
    S     = SA(Ê) = softmax(Q Kᵀ / √d) V,  Q, K, V = Ê W^Q, Ê W^K, Ê W^V,
            query t only attends to keys j ≤ t (causality)   (eqs. 1-2)
    F_t   = FFN(S_t) = ReLU(S_t W⁽¹⁾ + b⁽¹⁾) W⁽²⁾ + b⁽²⁾     (eq. 3)
    g(x)  = x + Dropout(g(LayerNorm(x)))  around both sub-layers, b = 2 stacked blocks (§III-D)
    r_{i,t} = F_t · E[i]ᵀ   (shared item embedding, §III-E)

Hyper-parameters (constructor defaults) are the paper's §IV-B settings: 2 blocks, 1 head,
learned positions, max_len 50 and dropout 0.5 — the paper's values for its sparse datasets
(Amazon Beauty, Games, Steam), which is what the session data here are; for MovieLens-1M
the paper used max_len 200 and dropout 0.2 (pass them explicitly if wanted). d, optimiser,
batch size and loss follow LLM4SBR's common recipe (d = 100, full cross-entropy) instead of
the paper's d = 50 and sampled binary cross-entropy.

Details taken from the authors' reference implementation (kang205/SASRec):

* item embeddings are scaled by √d before the positions are added; scores use the
  UNscaled shared table;
* the reference left-pads every sequence to ``max_len`` and indexes positions over the
  padded array, so the most recent click always has the last position. We get the same
  embedding of "distance from the most recent click" on right-padded batches with
  positions counted backwards (``PositionEmbedding(reverse=True)``), independent of the
  batch's padded width;
* dropout sits on the embedding sum, on the attention weights and after both FFN layers;
  padded positions are zeroed after the embedding and after every block, and a final
  LayerNorm follows the last block;
* weights are Xavier-normal initialised (as in the reference's PyTorch port).

The one difference from the reference: keys and values are computed from the
layer-normalised input, exactly as the paper's g(x) writes it (the reference normalises
only the queries and adds them, not x, as the residual).

Masking with right padding (real clicks first): query t may attend to key j iff j ≤ t and
j is a real click. Because the real clicks come first, every row — including padded query
rows — keeps at least key 0, so no softmax row is empty (no NaN); padded rows' outputs are
then zeroed. Sessions longer than ``max_len`` keep their last ``max_len`` clicks (as the
reference's sampler does), so the model is safe whatever the trainer passes.

The two views LLM4SBR needs (paper §4.2, eqs. 10-12):

* ``h_local`` = F at the last real click — SASRec's own prediction vector (§III-E);
* ``h_global`` = the mean of F over the real clicks. With causal attention F_t summarises
  the prefix up to t, so the mean spreads weight over the whole session instead of
  reading one recency-focused vector; it is parameter-free so that ``base`` (which scores
  with h_local only) has no untrained module and stays the paper's SASRec.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batches import SessionBatch
from ..errors import InvalidInputError
from .base import Backbone, Encoded
from .blocks import PositionEmbedding, keep_last_clicks, last_real_state, masked_mean


class CausalSelfAttention(nn.Module):
    """SASRec eqs. (1)-(2): Attention(X W^Q, X W^K, X W^V) with a causal + key-padding mask.

    No output projection, as in the paper and its reference implementation; with several
    heads the per-head outputs are concatenated. Dropout acts on the attention weights.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        if dim % num_heads:
            raise InvalidInputError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x [B, L, d]; allowed bool [B, L, L] (query, key) → [B, L, d]."""
        b, width, dim = x.shape
        q, k, v = (t.view(b, width, self.num_heads, dim // self.num_heads).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed.unsqueeze(1),
            dropout_p=self.dropout if self.training else 0.0)
        return out.transpose(1, 2).reshape(b, width, dim)


class PointWiseFeedForward(nn.Module):
    """SASRec eq. (3) with the reference's dropout after each layer."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SASRecBlock(nn.Module):
    """One self-attention block: x + SA(LN(x)), then x + FFN(LN(x)) (paper §III-D)."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, num_heads, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = PointWiseFeedForward(dim, dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), allowed)
        return x + self.ffn(self.ffn_norm(x))


class SASRec(Backbone):
    """Causal self-attention over the clicks; h_local = output at the last click.

    Args:
        n_items: number of items N (ids 1..N, 0 = padding).
        dim: embedding width d (also the attention and FFN width).
        num_blocks: stacked self-attention blocks b (paper: 2).
        num_heads: attention heads (paper: 1).
        dropout: dropout rate (paper: 0.5 on sparse data, 0.2 on MovieLens-1M).
        max_len: longest session modelled n (paper: 50; 200 on MovieLens-1M); longer
            sessions keep their most recent ``max_len`` clicks.
    """

    name = "sasrec"

    def __init__(self, n_items: int, dim: int, *, num_blocks: int = 2, num_heads: int = 1,
                 dropout: float = 0.5, max_len: int = 50):
        super().__init__(n_items, dim)
        self.max_len = max_len
        self.positions = PositionEmbedding(max_len, dim, reverse=True)
        self.embedding_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(dim, num_heads, dropout)
                                    for _ in range(num_blocks))
        self.final_norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Xavier-normal on every matrix, as the reference's PyTorch port; biases 0 and
        # LayerNorms at identity. The base class's N(0, 1) embedding scaled by √d would
        # saturate the first softmax.
        for name, param in self.named_parameters():
            if param.dim() >= 2:
                nn.init.xavier_normal_(param)
            elif "norm" not in name:
                nn.init.zeros_(param)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def click_states(self, batch: SessionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Block outputs F_t [B, L', d] (0 at padding) and lengths [B] of the kept clicks,
        L' = min(L, max_len)."""
        items, lengths = keep_last_clicks(batch.items, batch.lengths, self.max_len)
        width = items.shape[1]
        real = items > 0  # [B, L]
        keep = real.unsqueeze(-1).to(self.item_embedding.weight.dtype)
        x = self.item_embedding(items) * math.sqrt(self.dim) + self.positions(lengths, width)
        x = self.embedding_dropout(x) * keep
        causal = torch.ones(width, width, dtype=torch.bool, device=items.device).tril()
        allowed = causal.unsqueeze(0) & real.unsqueeze(1)  # [B, query, key]
        for block in self.blocks:
            x = block(x, allowed) * keep
        return self.final_norm(x) * keep, lengths

    def encode(self, batch: SessionBatch) -> Encoded:
        out, lengths = self.click_states(batch)
        positions = torch.arange(out.shape[1], device=out.device).view(1, -1)
        real = positions < lengths.view(-1, 1)
        return Encoded(h_local=last_real_state(out, lengths),
                       h_global=masked_mean(out, real),
                       item_table=self.item_embedding.weight)

    def session_head(self, enc: Encoded) -> torch.Tensor:
        """SASRec predicts from the output at the most recent click (§III-E)."""
        return enc.h_local


