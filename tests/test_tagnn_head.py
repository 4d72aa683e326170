"""TAGNN's target-attentive head (length-bucketed, one reused [2C, n] buffer) against the
previous implementation (flat [C, N] logits and values, segment reductions), kept here as
the reference: scores and gradients of every input agree to float tolerance."""

from __future__ import annotations

import pytest
import torch

from llm4sbr_core.models.tagnn import ClickBuckets, Workspace, target_attentive_scores

# --- the previous implementation, verbatim in substance -----------------------------------


class _SegmentAttentionSum(torch.autograd.Function):
    """out[b, i] = Σ_t β_{t,i} values[t, i], β = softmax over the clicks t of session b."""

    @staticmethod
    def forward(ctx, logits, values, counts):  # type: ignore[override]
        n_clicks = logits.shape[0]

        def expand(t):
            return t.repeat_interleave(counts, dim=0, output_size=n_clicks)

        peak = torch.segment_reduce(logits, "max", lengths=counts, axis=0)
        beta = (logits - expand(peak)).exp_()
        beta /= expand(torch.segment_reduce(beta, "sum", lengths=counts, axis=0))
        out = torch.segment_reduce(beta * values, "sum", lengths=counts, axis=0)
        ctx.save_for_backward(beta, values, out, counts)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        beta, values, out, counts = ctx.saved_tensors
        n_clicks = beta.shape[0]
        d_values = beta * grad.repeat_interleave(counts, dim=0, output_size=n_clicks)
        d_logits = values - out.repeat_interleave(counts, dim=0, output_size=n_clicks)
        return d_logits.mul_(d_values), d_values, None


def reference_scores(session, clicks, keys, counts, table):
    """s_hᵀ v_i + Σ_t β_{i,t} v_tᵀ v_i with logits [C, N] = K Vᵀ and values [C, N] = V_c Vᵀ."""
    logits = keys @ table.T
    values = clicks @ table.T
    return session @ table.T + _SegmentAttentionSum.apply(logits, values, counts)


# --- comparisons ------------------------------------------------------------------------


def random_inputs(counts, n_rows, dim, dtype, scale=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n_clicks = int(counts.sum())
    shapes = [(len(counts), dim), (n_clicks, dim), (n_clicks, dim), (n_rows, dim)]
    return [(torch.randn(s, generator=gen, dtype=dtype) * scale) for s in shapes]


def scores_and_grads(fn, tensors, upstream):
    leaves = [t.clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    (out * upstream).sum().backward()
    return [out.detach()] + [leaf.grad for leaf in leaves]


def new_head(counts, chunk_elements=2 ** 25, workspace=None):
    return lambda s, c, k, t: target_attentive_scores(s, c, k, counts, t, chunk_elements,
                                                      workspace)


def old_head(counts):
    return lambda s, c, k, t: reference_scores(s, c, k, counts, t)


# Batch-like click counts: single clicks, repeats of one length, one long session.
COUNTS = torch.tensor([3, 1, 7, 3, 50, 2, 1, 3, 12, 7, 2, 3])


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("chunk_elements", [2 ** 25, 700, 1])
def test_scores_and_gradients_match_previous_implementation(dtype, tol, chunk_elements):
    tensors = random_inputs(COUNTS, 257, 16, dtype)
    upstream = torch.randn(len(COUNTS), 257, generator=torch.Generator().manual_seed(1),
                           dtype=dtype)
    new = scores_and_grads(new_head(COUNTS, chunk_elements), tensors, upstream)
    old = scores_and_grads(old_head(COUNTS), tensors, upstream)
    for name, a, b in zip(["scores", "session", "clicks", "keys", "table"], new, old,
                          strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * float(b.abs().max()), msg=name)


def test_large_logits_stay_finite_and_match():
    """Logits in the thousands: the per-(session, candidate) maximum is subtracted."""
    tensors = random_inputs(COUNTS, 64, 8, torch.float64, scale=12.0)
    upstream = torch.ones(len(COUNTS), 64, dtype=torch.float64)
    new = scores_and_grads(new_head(COUNTS), tensors, upstream)
    old = scores_and_grads(old_head(COUNTS), tensors, upstream)
    for a, b in zip(new, old, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * float(b.abs().max()))


def test_no_grad_path_equals_graph_path():
    tensors = random_inputs(COUNTS, 100, 8, torch.float64)
    with torch.no_grad():
        plain = [target_attentive_scores(*tensors[:3], COUNTS, tensors[3], chunk)
                 for chunk in (2 ** 25, 50)]
    graph = target_attentive_scores(*tensors[:3], COUNTS, tensors[3], 2 ** 25)
    torch.testing.assert_close(plain[0], graph.detach(), rtol=0, atol=0)
    torch.testing.assert_close(plain[1], graph.detach())


def test_second_backward_recomputes_consumed_buffer():
    tensors = random_inputs(COUNTS, 40, 8, torch.float64)
    leaves = [t.clone().requires_grad_() for t in tensors]
    out = target_attentive_scores(*leaves[:3], COUNTS, leaves[3], 2 ** 25)
    first = torch.autograd.grad(out.sum(), leaves, retain_graph=True)
    second = torch.autograd.grad(out.sum(), leaves)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_shared_workspace_across_interleaved_steps():
    """Two graphs alive at once each get their own buffer; reuse never corrupts one."""
    workspace = Workspace()
    counts_b = torch.tensor([2, 5, 1, 5])
    inputs_a = random_inputs(COUNTS, 90, 8, torch.float64, seed=2)
    inputs_b = random_inputs(counts_b, 90, 8, torch.float64, seed=3)
    up_a = torch.ones(len(COUNTS), 90, dtype=torch.float64)
    up_b = torch.ones(len(counts_b), 90, dtype=torch.float64)
    leaves_a = [t.clone().requires_grad_() for t in inputs_a]
    leaves_b = [t.clone().requires_grad_() for t in inputs_b]
    out_a = new_head(COUNTS, workspace=workspace)(*leaves_a)
    out_b = new_head(counts_b, workspace=workspace)(*leaves_b)
    (out_b * up_b).sum().backward()
    (out_a * up_a).sum().backward()
    for leaves, inputs, counts, up in ((leaves_a, inputs_a, COUNTS, up_a),
                                       (leaves_b, inputs_b, counts_b, up_b)):
        expected = scores_and_grads(old_head(counts), inputs, up)[1:]
        for leaf, grad in zip(leaves, expected, strict=True):
            torch.testing.assert_close(leaf.grad, grad)
    for _ in range(3):  # steady state: one buffer handed out and returned per step
        scores_and_grads(new_head(COUNTS, workspace=workspace), inputs_a, up_a)
    assert len(workspace._free) <= 2


def test_click_buckets_group_sessions_by_length():
    counts = torch.tensor([2, 1, 2, 3])  # click rows 0-1 | 2 | 3-4 | 5-7
    buckets = ClickBuckets.of(counts)
    assert buckets.sessions.tolist() == [1, 0, 2, 3]
    assert buckets.order.tolist() == [2, 0, 1, 3, 4, 5, 6, 7]
    assert buckets.sizes == ((1, 1), (2, 2), (1, 3))
