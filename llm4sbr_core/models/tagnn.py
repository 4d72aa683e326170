"""TAGNN — Yu, Zhu, Liu, Wu, Wang & Tan, "TAGNN: Target Attentive Graph Neural Networks for
Session-based Recommendation", SIGIR 2020.

TAGNN is SR-GNN (session graph, gated GNN, s_l and s_g — imported from ``srgnn.py``) plus a
target-aware attention that gives every candidate item its own session vector. For the
click states v_1..v_n of a session and a candidate item embedding v_i:

    β_{i,t} = softmax_t(v_iᵀ W v_t)                    (target-aware attention)
    s_target,i = Σ_t β_{i,t} v_t
    s_h = W_3 [s_l; s_g]                               (SR-GNN eqs. 6–7)
    s_i = s_h + s_target,i,   ŷ_i = s_iᵀ v_i           (scores over the whole catalogue)

The composition s_h + s_target,i and the bias-free W (``linear_t``) are those of the
authors' code (CRIPAC-DIG/TAGNN): the target vector is added to the SR-GNN hybrid vector,
not passed through W_3.

Deviations from the official code, with reasons:

* the softmax over t runs over the REAL clicks only. The reference zeroes the padded
  click states and then softmaxes over the padded width, so every padding position takes
  a share exp(0) of the attention mass: a session's scores then depend on how long the
  longest session of its batch is. Masking makes them batch-independent;
* the global readout α_t is SR-GNN's eq. (6) (no softmax): the encoder is shared with
  SR-GNN unchanged. The official TAGNN code additionally softmax-normalises α over the
  padded width (with the same padding leak as above).

Full-catalogue cost. The head is candidate-dependent, so scoring N items for B sessions of
padded width L naively needs [B, N, L] attention weights (the reference builds exactly
that, plus a [B, N, d] tensor of target vectors). Here:

* clicks are FLATTENED: the C = Σ_b len_b real clicks of the batch, not B × L padded slots
  (on Beauty, shuffled batches of 100: C ≈ 860 while B × L ≈ 8,600, L averaging 86);
* everything is a matrix product or a segment reduction: logits [C, N] = (W V_clicks) Vᵀ
  and values [C, N] = V_clicks Vᵀ are two matrix products; the per-(session, candidate)
  softmax max and sums are ``torch.segment_reduce`` over each session's contiguous click
  rows into [B, N] (several times faster on CPU than ``index_add_`` / ``scatter_reduce``);
  the [B, N, d] target vectors are never formed, since s_target,iᵀ v_i =
  Σ_t β_{i,t} v_tᵀ v_i; the softmax-weighted sum has a hand-written backward
  (:class:`SegmentAttentionSum`) that keeps only β and the values;
* if C × N exceeds ``chunk_elements`` the catalogue is processed in chunks of items, each
  under ``torch.utils.checkpoint`` when gradients are needed, so peak memory is a few
  chunk-sized [C, n] buffers plus the [B, N] scores.

For LLM4SBR, :meth:`encode` is SR-GNN's (h_local = s_l, h_global = s_g, candidate-
independent); :meth:`session_head` is the candidate-independent part s_h; only the
stand-alone scores (:meth:`scores`, variant ``base``) add the target attention.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..data.batches import SessionBatch
from .srgnn import SRGNN


class SegmentAttentionSum(torch.autograd.Function):
    """out[b, i] = Σ_t β_{t,i} values[t, i] with β = softmax over the clicks t of session b of
    ``logits`` [C, n]; clicks grouped by session, ``counts`` [B] clicks per session (≥ 1).

    A hand-written backward, because autograd over the composed ops keeps and re-reads
    about twice as many [C, n] buffers. With g the upstream gradient [B, n], row-expanded
    to the clicks: ∂/∂values = β ⊙ g and ∂/∂logits = β ⊙ g ⊙ (values − out) (the softmax
    Jacobian). The (session, candidate) max subtracted for stability is a constant of
    each softmax and needs no gradient.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, values: torch.Tensor,  # type: ignore[override]
                counts: torch.Tensor) -> torch.Tensor:
        n_clicks = logits.shape[0]

        def expand(t: torch.Tensor) -> torch.Tensor:  # [B, n] → [C, n], row per click
            return t.repeat_interleave(counts, dim=0, output_size=n_clicks)

        peak = torch.segment_reduce(logits, "max", lengths=counts, axis=0)
        beta = (logits - expand(peak)).exp_()
        beta /= expand(torch.segment_reduce(beta, "sum", lengths=counts, axis=0))
        out = torch.segment_reduce(beta * values, "sum", lengths=counts, axis=0)
        ctx.save_for_backward(beta, values, out, counts)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, torch.Tensor, None]:
        beta, values, out, counts = ctx.saved_tensors
        n_clicks = beta.shape[0]
        d_values = beta * grad.repeat_interleave(counts, dim=0, output_size=n_clicks)
        d_logits = values - out.repeat_interleave(counts, dim=0, output_size=n_clicks)
        return d_logits.mul_(d_values), d_values, None


def _target_scores_chunk(session: torch.Tensor, clicks: torch.Tensor, keys: torch.Tensor,
                         counts: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Scores [B, n] of candidate rows ``items`` [n, d].

    session [B, d] = s_h; clicks [C, d] = the real click states v_t, grouped by session
    (row-major); keys [C, d] = W v_t; counts long [B] = clicks per session (all ≥ 1).
    """
    logits = keys @ items.T  # [C, n]: v_iᵀ W v_t
    values = clicks @ items.T  # [C, n]: v_iᵀ v_t
    # s_target,iᵀ v_i = Σ_t β_{i,t} v_tᵀ v_i: the [B, n, d] target vectors are never built.
    return session @ items.T + SegmentAttentionSum.apply(logits, values, counts)


def target_attentive_scores(session: torch.Tensor, clicks: torch.Tensor, keys: torch.Tensor,
                            counts: torch.Tensor, table: torch.Tensor,
                            chunk_elements: int) -> torch.Tensor:
    """TAGNN scores [B, n_rows] of every row of ``table`` (see the module docstring).

    The catalogue is split into chunks of at most ``chunk_elements / C`` rows; with
    gradients enabled each chunk is recomputed in backward instead of kept in memory.
    """
    rows = max(1, chunk_elements // max(1, clicks.shape[0]))
    if rows >= table.shape[0]:
        return _target_scores_chunk(session, clicks, keys, counts, table)
    parts = []
    for start in range(0, table.shape[0], rows):
        part = table[start:start + rows]
        if torch.is_grad_enabled():
            parts.append(checkpoint(_target_scores_chunk, session, clicks, keys, counts, part,
                                    use_reentrant=False))
        else:
            parts.append(_target_scores_chunk(session, clicks, keys, counts, part))
    return torch.cat(parts, dim=1)


class TAGNN(SRGNN):
    """SR-GNN encoder + target-aware attention head over the whole catalogue.

    Args:
        n_items: number of items N (ids 1..N, 0 = padding).
        dim: embedding width d (paper 100).
        step: GGNN propagation steps (reference default 1).
        chunk_elements: largest [clicks × items] block computed at once by the target
            attention (2**25 floats = 128 MiB per buffer); bigger batches are chunked over
            items with activation checkpointing.
    """

    name = "tagnn"

    def __init__(self, n_items: int, dim: int, *, step: int = 1,
                 chunk_elements: int = 2 ** 25):
        super().__init__(n_items, dim, step=step)
        self.target_key = nn.Linear(dim, dim, bias=False)  # W (reference: linear_t)
        self.chunk_elements = chunk_elements
        self.reset_parameters()  # again, so that W gets the reference's U(−1/√d, 1/√d) too

    def scores(self, batch: SessionBatch) -> torch.Tensor:
        """[B, N + 1] scores s_iᵀ v_i with s_i = s_h + s_target,i (column 0 is padding)."""
        states = self.graph_states(batch)
        session = self.transform(torch.cat([states.local, states.global_], dim=-1))
        counts = torch.bincount(states.click_session, minlength=len(batch.items))
        return target_attentive_scores(session, states.clicks, self.target_key(states.clicks),
                                       counts, self.item_embedding.weight, self.chunk_elements)


