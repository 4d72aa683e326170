"""GRU4Rec — Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based recommendations with
recurrent neural networks", ICLR 2016.

Equations (paper §3.1, the GRU of Cho et al. 2014), for click t of a session:

    x_t = Dropout(E[i_t])                                   (item embedding of the click)
    z_t = σ(W_z x_t + U_z h_{t-1}),  r_t = σ(W_r x_t + U_r h_{t-1})
    ĥ_t = tanh(W x_t + U (r_t ⊙ h_{t-1})),  h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ ĥ_t

and the next-item scores are ŷ = h_T · Eᵀ over the whole catalogue (full softmax).

How this follows the common full-softmax re-implementations rather than the 2016 paper
itself (the 2016 model fed one-hot clicks into the GRU, trained session-parallel
mini-batches with TOP1/BPR on sampled negatives and had a separate output layer):

* the input is a learned item embedding of width ``dim`` (as in RecBole, NARM's and
  SR-GNN's GRU4Rec baselines), and the GRU hidden size equals ``dim`` so the final state
  can be scored directly against the item table;
* the output layer is TIED to the input embedding (scores = h_T · Eᵀ), the usual choice of
  full-softmax re-implementations, which LLM4SBR's fusion (eq. 13 scores h_sess against
  the item embeddings) also requires;
* the loss is cross-entropy over all items (the trainer's job; the paper also reports a
  cross-entropy variant), with one sample per session prefix instead of session-parallel
  mini-batches;
* dropout (default 0.3, RecBole's ``dropout_prob``) is applied to the click embeddings;
  with ``num_layers > 1`` the same rate is also used between GRU layers.

The two views LLM4SBR needs (paper §4.2, eqs. 10-12):

* ``h_local`` = h_T, the hidden state after the last real click — GRU4Rec's own session
  representation and the most recency-weighted summary the model has;
* ``h_global`` = mean of h_1..h_T over the real clicks. Every h_t summarises the prefix up to
  t, so the mean gives each click a say in the long-term view (an early click appears in
  all later states), while h_T alone is dominated by the last few clicks. It adds no
  parameters on purpose: the ``base`` variant scores with h_T only, so a learned pooling
  (e.g. NARM's attention) would sit untrained there and would make GRU4Rec a different
  model; under LLM4SBR the fusion weights (eqs. 10-12) learn how much to trust it.

Padding: batches are right-padded (real clicks first) and the GRU runs on the PACKED
batch, so each session is unrolled over its own clicks only. Running the padded batch would
give the same h_1..h_T (a state at step t only depends on steps ≤ t) but pays for every
padded step: a batch's width is its longest session, and on Beauty packing takes a third
off a whole training step on a CPU (BENCHMARKS.md). Padded positions of the returned states
are zeros; h_T is read at ``lengths − 1`` and the padded steps are masked out of the mean.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batches import SessionBatch
from .base import Backbone, Encoded
from .blocks import last_real_state, masked_mean


class GRU4Rec(Backbone):
    """Item embedding → GRU; h_local = last hidden state, h_global = mean hidden state.

    Args:
        n_items: number of items N (ids 1..N, 0 = padding).
        dim: embedding width = GRU hidden size d.
        num_layers: stacked GRU layers (the paper's best setups use one layer).
        dropout: dropout on the click embeddings (and between GRU layers when stacked).
    """

    name = "gru4rec"

    def __init__(self, n_items: int, dim: int, *, num_layers: int = 1,
                 dropout: float = 0.3):
        super().__init__(n_items, dim)
        self.embedding_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, num_layers=num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Xavier as in RecBole's GRU4Rec: the base class's N(0, 1) embedding would give
        # logits of size ~d at initialisation with a tied output layer.
        nn.init.xavier_normal_(self.item_embedding.weight)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        for name, param in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(param)
            else:
                nn.init.zeros_(param)

    def click_states(self, batch: SessionBatch) -> torch.Tensor:
        """[B, L, d] hidden state h_t after each click (zeros at padded steps)."""
        x = self.embedding_dropout(self.item_embedding(batch.items))
        packed = nn.utils.rnn.pack_padded_sequence(x, batch.lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        states, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True,
                                                     total_length=x.size(1))
        return states

    def encode(self, batch: SessionBatch) -> Encoded:
        states = self.click_states(batch)
        return Encoded(h_local=last_real_state(states, batch.lengths),
                       h_global=masked_mean(states, batch.mask),
                       item_table=self.item_embedding.weight)

    def session_head(self, enc: Encoded) -> torch.Tensor:
        """GRU4Rec scores with the final hidden state alone."""
        return enc.h_local


