import numpy as np
import pytest
import torch

from llm4sbr_core.metrics import metrics_from_ranks, target_ranks, target_ranks_chunked


def brute_force(scores, targets, ks=(5, 10, 20)):
    """Per sample: sort all real items, the target after every equal-scored item."""
    ranks = []
    for row, t in zip(scores, targets, strict=True):
        order = sorted(range(1, len(row)), key=lambda i: (-row[i], i == t))
        ranks.append(order.index(t) + 1)
    out = {}
    for k in ks:
        out[f"P@{k}"] = np.mean([r <= k for r in ranks])
        out[f"MRR@{k}"] = np.mean([1 / r if r <= k else 0 for r in ranks])
        out[f"NDCG@{k}"] = np.mean([1 / np.log2(r + 1) if r <= k else 0 for r in ranks])
    return ranks, out


@pytest.mark.parametrize("seed", range(5))
def test_against_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=(40, 31)).astype(np.float32)  # many ties
    targets = rng.integers(1, 31, size=40)
    ranks = target_ranks(torch.from_numpy(scores), torch.from_numpy(targets)).numpy()
    want_ranks, want = brute_force(scores, targets)
    assert ranks.tolist() == want_ranks
    got = metrics_from_ranks(ranks)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-12)


def test_padding_is_never_a_candidate():
    scores = torch.tensor([[100.0, 1.0, 2.0, 3.0]])
    assert target_ranks(scores, torch.tensor([3])).item() == 1


def test_all_equal_scores_rank_last():
    scores = torch.zeros(2, 11)
    assert target_ranks(scores, torch.tensor([1, 10])).tolist() == [10, 10]


def test_hits_beyond_k_count_as_zero():
    # ranks 1, 7 and 15: MRR@5 averages over all three samples, not only the hit
    m = metrics_from_ranks([1, 7, 15])
    assert m["MRR@5"] == pytest.approx(1 / 3)
    assert m["MRR@10"] == pytest.approx((1 + 1 / 7) / 3)
    assert m["MRR@20"] == pytest.approx((1 + 1 / 7 + 1 / 15) / 3)
    assert m["P@5"] == pytest.approx(1 / 3) and m["P@20"] == 1.0
    assert m["NDCG@10"] == pytest.approx((1 + 1 / np.log2(8)) / 3)


def test_chunked_equals_full():
    g = torch.Generator().manual_seed(0)
    session, items = torch.randn(16, 8, generator=g), torch.randn(101, 8, generator=g)
    items[7] = items[9]  # a tie
    targets = torch.randint(1, 101, (16,), generator=g)
    targets[0] = 9
    full = target_ranks(session @ items.T, targets)
    assert torch.equal(target_ranks_chunked(session, items, targets, chunk=13), full)


def test_nan_scores_are_an_error():
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(torch.tensor([[0.0, float("nan"), 1.0]]), torch.tensor([2]))


@pytest.mark.parametrize("seed", range(200))
def test_chunked_target_always_counts_itself(seed):
    # Random shapes whose products take different kernels (row counts, tails): the
    # chunked ranks must equal the full ranks computed from one product each.
    g = torch.Generator().manual_seed(seed)
    b, d, n = (int(x) for x in torch.randint(1, 40, (3,), generator=g))
    session, items = torch.randn(b, d, generator=g), torch.randn(n + 10, d, generator=g)
    targets = torch.randint(1, n + 10, (b,), generator=g)
    chunked = target_ranks_chunked(session, items, targets, chunk=7)
    # the target's own score is in the compared product, so every rank is >= 1 and
    # never exceeds the number of candidates
    assert bool((chunked >= 1).all()) and bool((chunked <= n + 9).all())
    full = target_ranks(session @ items.T, targets)
    assert torch.equal(chunked, full)
