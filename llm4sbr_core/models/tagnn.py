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
that, plus a [B, N, d] tensor of target vectors). The softmax over t is not linear in
v_i, so every (click, candidate) logit has to exist once; the head does that minimum and
little else:

* clicks are FLATTENED: only the C = Σ_b len_b real clicks of the batch, not B × L padded
  slots (Beauty, shuffled batches of 100 truncated to 50 clicks: C ≈ 740, B × L ≈ 5,000);
* the [B, N, d] target vectors are never formed, since s_target,iᵀ v_i =
  Σ_t β_{i,t} v_tᵀ v_i: logits v_iᵀ W v_t and values v_iᵀ v_t come from ONE matrix
  product [k_t; v_t] Vᵀ → [2C, N] (k_t = W v_t);
* sessions are grouped by click count (:class:`ClickBuckets`), so the clicks of the n
  sessions of length l are a dense [n, l, N] block whose per-(session, candidate) softmax
  is a reduction over its middle axis: no [C, N] expansion of per-session maxima, sums or
  gradients, no segment kernels;
* the softmax stays unnormalised (ŷ = Σ_t e_t v_tᵀ v_i / Σ_t e_t), which saves a pass; the
  backward folds 1 / Σ_t e_t into the upstream gradient;
* :class:`TargetAttention` has a hand-written backward that turns the forward's [2C, N]
  buffer in place into the two gradients and ends in two matrix products, where autograd
  would run four and keep several [C, N] temporaries;
* that buffer comes from a :class:`Workspace` kept by the model from step to step. On CPU
  a fresh block of that size is a new memory mapping whose page faults cost more than
  the arithmetic on it (measured on a 2-core VM: one pass over a fresh 72 MiB block took
  ≈ 20× as long as the same pass in place), and autograd over composed ops allocates
  about ten [C, N] blocks a step;
* if C × N exceeds ``chunk_elements`` the catalogue is processed in chunks of items and
  each chunk is recomputed in backward (checkpointing), so memory stays at one [2C, n]
  buffer plus the [B, N] scores.

What remains is three [2C, d] × [d, N]-sized matrix products per training step (forward,
∂clicks and ∂items), 15× the arithmetic of SR-GNN's [B, d] × [d, N] head (2C / B ≈ 15
on Beauty): no exact rewrite shares them across candidates, since the softmax couples
each candidate's logits.

For LLM4SBR, :meth:`encode` is SR-GNN's (h_local = s_l, h_global = s_g, candidate-
independent); :meth:`session_head` is the candidate-independent part s_h; only the
stand-alone scores (:meth:`scores`, variant ``base``) add the target attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ..data.batches import SessionBatch
from .srgnn import SRGNN

#: (sessions n, clicks per session l) of each group of :class:`ClickBuckets`
Sizes = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ClickBuckets:
    """A batch's sessions grouped by click count, so that each group is a dense block.

    ``order`` long [C]: the click rows rearranged so that the sessions of equal length are
    contiguous (shortest first, batch order within a length); ``sessions`` long [B]: the
    batch rows in that order; ``sizes``: (sessions n, clicks per session l) of each group.
    """

    order: torch.Tensor
    sessions: torch.Tensor
    sizes: Sizes

    @classmethod
    def of(cls, counts: torch.Tensor) -> ClickBuckets:
        """Groups for ``counts`` long [B]: clicks per session (all ≥ 1), clicks grouped
        by session in batch order."""
        sessions = torch.argsort(counts, stable=True)
        lengths = counts[sessions]
        starts = torch.cumsum(counts, 0) - counts  # first click row of each session
        # Click j of the k-th sorted session is row starts[sessions[k]] + j.
        first = (torch.cumsum(lengths, 0) - lengths).repeat_interleave(lengths)
        within = torch.arange(first.shape[0], device=counts.device) - first
        order = starts[sessions].repeat_interleave(lengths) + within
        length, n = torch.unique_consecutive(lengths, return_counts=True)
        return cls(order, sessions, tuple(zip(n.tolist(), length.tolist(), strict=True)))


class Workspace:
    """Buffers for the [2C, n] blocks of the target attention, kept from step to step.

    Why: a fresh block of that size (tens of MiB) is a new memory mapping on CPU, and
    faulting its pages in costs more than all the arithmetic done on it; reusing one
    buffer avoids that. A buffer is handed out by :meth:`take` and comes back by
    :meth:`give` once its contents are dead; one that never comes back (a graph dropped
    without backward) is simply freed with its graph. At most two free buffers are kept.
    """

    def __init__(self) -> None:
        self._free: list[torch.Tensor] = []

    def take(self, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        """A [rows, cols] buffer of ``like``'s dtype and device (contents undefined)."""
        need = rows * cols
        for i, buf in enumerate(self._free):
            if buf.dtype == like.dtype and buf.device == like.device and buf.numel() >= need:
                return self._free.pop(i)[:need].view(rows, cols)
        # Headroom: the click count C varies from batch to batch.
        return like.new_empty(need + need // 4)[:need].view(rows, cols)

    def give(self, buf: torch.Tensor) -> None:
        """Return a buffer from :meth:`take`; its memory may be handed out again."""
        self._free.append(buf if buf._base is None else buf._base)
        self._free.sort(key=torch.Tensor.numel)
        del self._free[:-2]


def _attend(clicks: torch.Tensor, keys: torch.Tensor, items: torch.Tensor, sizes: Sizes,
            work: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward of the target attention for candidate rows ``items`` [n, d].

    Fills ``work`` [2C, n] with [e; e ⊙ V] (e = exp(logit − max_t logit), the unnormalised
    weights; V = values v_tᵀ e_i) and returns (z = Σ_t e, out = Σ_t e V / z), both [B, n]
    with the sessions in bucket order.
    """
    n_clicks, n_cols = clicks.shape[0], items.shape[0]
    # One product for logits and values: [k_t; v_t] e_iᵀ.
    torch.mm(torch.cat([keys, clicks]), items.T, out=work)
    n_sessions = sum(n for n, _ in sizes)
    weighted = work.new_empty(n_sessions, n_cols)  # Σ_t e V
    norm = work.new_empty(n_sessions, n_cols)  # z = Σ_t e
    row = first = 0
    for n, length in sizes:
        # The n sessions of ``length`` clicks: dense [n, l, n_cols] blocks, softmax over l.
        logits = work[row:row + n * length].view(n, length, n_cols)
        values = work[n_clicks + row:n_clicks + row + n * length].view(n, length, n_cols)
        # Subtracting the per-(session, candidate) maximum keeps exp ≤ 1 (and the largest
        # term = 1, so z ≥ 1) whatever the logits' scale.
        logits.sub_(logits.amax(1, keepdim=True)).exp_()
        torch.sum(logits, 1, out=norm[first:first + n])
        torch.sum(values.mul_(logits), 1, out=weighted[first:first + n])
        row, first = row + n * length, first + n
    return norm, weighted.div_(norm)


def _attend_backward(work: torch.Tensor, norm: torch.Tensor, out: torch.Tensor,
                     grad: torch.Tensor, sizes: Sizes) -> None:
    """Turn ``work`` = [e; e V] (from :func:`_attend`) into [P; Q] in place, with g =
    ``grad`` [B, n] (bucket order): P = ∂/∂values = β g = e (g / z) and
    Q = ∂/∂logits = β g (V − out) = (g / z)(e V − e out), the softmax Jacobian."""
    n_clicks, n_cols = work.shape[0] // 2, work.shape[1]
    scaled = grad / norm
    row = first = 0
    for n, length in sizes:
        exps = work[row:row + n * length].view(n, length, n_cols)
        values = work[n_clicks + row:n_clicks + row + n * length].view(n, length, n_cols)
        g = scaled[first:first + n].unsqueeze(1)
        values.addcmul_(exps, out[first:first + n].unsqueeze(1), value=-1).mul_(g)
        exps.mul_(g)
        row, first = row + n * length, first + n


def _chunks(n_clicks: int, n_rows: int, chunk_elements: int) -> list[tuple[int, int]]:
    """Item ranges of at most ``chunk_elements / C`` rows each."""
    rows = max(1, chunk_elements // max(1, n_clicks))
    return [(start, min(start + rows, n_rows)) for start in range(0, n_rows, rows)]


class TargetAttention(torch.autograd.Function):
    """out[b, i] = Σ_t β_{t,i} (v_tᵀ e_i), β_{·,i} = softmax over the clicks t of session b
    of k_tᵀ e_i, for every row e_i of ``table`` [N, d].

    Inputs: ``clicks`` [C, d] v_t and ``keys`` [C, d] k_t in :class:`ClickBuckets` order
    (``buckets.order`` applied), ``table`` [N, d]. Output [B, N] in batch row order.

    Per chunk of items the forward keeps X = [e; e ⊙ V] in one [2C, n] buffer
    (:func:`_attend`); the backward turns it into [P; Q] in place
    (:func:`_attend_backward`) and ends in two matrix products, aligned with [v_t; k_t]:
    ∂[v_t; k_t] = [P; Q] e and ∂e_i = [P; Q]ᵀ [v_t; k_t] — where autograd over the composed
    ops would run four products and keep several [C, n] temporaries. A single chunk's
    buffer is kept from forward to backward; with several chunks each is recomputed in
    backward (checkpointing), so memory stays at one buffer. A second backward
    (``retain_graph``) recomputes too, since the first one consumed the buffer.
    """

    @staticmethod
    def forward(ctx, clicks: torch.Tensor, keys: torch.Tensor,  # type: ignore[override]
                table: torch.Tensor, buckets: ClickBuckets, chunk_elements: int,
                workspace: Workspace) -> torch.Tensor:
        chunks = _chunks(clicks.shape[0], table.shape[0], chunk_elements)
        parts = []
        ctx.kept = None
        for start, stop in chunks:
            work = workspace.take(2 * clicks.shape[0], stop - start, clicks)
            norm, out = _attend(clicks, keys, table[start:stop], buckets.sizes, work)
            parts.append(out)
            if len(chunks) == 1:
                ctx.kept = (work, norm, out)
            else:
                workspace.give(work)
        out_sorted = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        ctx.save_for_backward(clicks, keys, table, buckets.sessions)
        ctx.sizes, ctx.chunks, ctx.workspace = buckets.sizes, chunks, workspace
        out = torch.empty_like(out_sorted)
        out[buckets.sessions] = out_sorted
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None, None, None]:
        clicks, keys, table, sessions = ctx.saved_tensors
        workspace: Workspace = ctx.workspace
        n_clicks = clicks.shape[0]
        grad = grad.index_select(0, sessions)  # bucket order
        stacked = torch.cat([clicks, keys])
        d_stacked = torch.zeros_like(stacked)
        d_table = torch.empty_like(table)
        for start, stop in ctx.chunks:
            items = table[start:stop]
            if ctx.kept is not None:
                work, norm, out = ctx.kept
                ctx.kept = None  # consumed in place below
            else:
                work = workspace.take(2 * n_clicks, stop - start, clicks)
                norm, out = _attend(clicks, keys, items, ctx.sizes, work)
            _attend_backward(work, norm, out, grad[:, start:stop], ctx.sizes)
            d_stacked.addmm_(work, items)  # work = [P; Q]
            torch.mm(work.T, stacked, out=d_table[start:stop])
            workspace.give(work)
        return d_stacked[:n_clicks], d_stacked[n_clicks:], d_table, None, None, None


def target_attentive_scores(session: torch.Tensor, clicks: torch.Tensor, keys: torch.Tensor,
                            counts: torch.Tensor, table: torch.Tensor, chunk_elements: int,
                            workspace: Workspace | None = None) -> torch.Tensor:
    """TAGNN scores [B, n_rows] of every row of ``table``: s_hᵀ v_i + s_target,iᵀ v_i.

    session [B, d] = s_h; clicks [C, d] = the real click states v_t, grouped by session
    (row-major); keys [C, d] = W v_t; counts long [B] = clicks per session (all ≥ 1).
    The catalogue is processed in chunks of at most ``chunk_elements / C`` rows (see
    :class:`TargetAttention`); ``workspace`` carries the buffers over to the next call.
    """
    workspace = workspace if workspace is not None else Workspace()
    buckets = ClickBuckets.of(counts)
    clicks, keys = clicks[buckets.order], keys[buckets.order]
    if torch.is_grad_enabled():
        target = TargetAttention.apply(clicks, keys, table, buckets, chunk_elements, workspace)
    else:  # no graph to keep: each chunk's buffer goes straight back
        target = table.new_empty(len(counts), table.shape[0])
        for start, stop in _chunks(clicks.shape[0], table.shape[0], chunk_elements):
            work = workspace.take(2 * clicks.shape[0], stop - start, clicks)
            _, out = _attend(clicks, keys, table[start:stop], buckets.sizes, work)
            target[buckets.sessions, start:stop] = out
            workspace.give(work)
    return torch.addmm(target, session, table.T)


class TAGNN(SRGNN):
    """SR-GNN encoder + target-aware attention head over the whole catalogue.

    Args:
        n_items: number of items N (ids 1..N, 0 = padding).
        dim: embedding width d (paper 100).
        step: GGNN propagation steps (reference default 1).
        chunk_elements: largest [clicks × items] block computed at once by the target
            attention (2**25: one 256 MiB float32 buffer of logits and values); bigger
            batches are chunked over items and recomputed in backward.
    """

    name = "tagnn"

    def __init__(self, n_items: int, dim: int, *, step: int = 1,
                 chunk_elements: int = 2 ** 25):
        super().__init__(n_items, dim, step=step)
        self.target_key = nn.Linear(dim, dim, bias=False)  # W (reference: linear_t)
        self.chunk_elements = chunk_elements
        self.workspace = Workspace()  # not state: reusable scratch memory
        self.reset_parameters()  # again, so that W gets the reference's U(−1/√d, 1/√d) too

    def scores(self, batch: SessionBatch) -> torch.Tensor:
        """[B, N + 1] scores s_iᵀ v_i with s_i = s_h + s_target,i (column 0 is padding)."""
        states = self.graph_states(batch)
        session = self.transform(torch.cat([states.local, states.global_], dim=-1))
        counts = torch.bincount(states.click_session, minlength=len(batch.items))
        return target_attentive_scores(session, states.clicks, self.target_key(states.clicks),
                                       counts, self.item_embedding.weight, self.chunk_elements,
                                       self.workspace)
