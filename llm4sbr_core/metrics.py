"""Full-ranking evaluation: every item of the catalogue is a candidate (padding excluded).

With one target per sample, P@K = HR@K = Recall@K. Ties are ranked pessimistically:
the target ranks below every other item with an equal score, so a model that scores
everything alike gets rank N, not 1. MRR@K and NDCG@K count a target ranked beyond K
as 0 for that sample — the denominator is always the number of samples (the reference
code drops such samples for K < 20 and inflates MRR@5/10).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .errors import InvalidInputError

KS: tuple[int, ...] = (5, 10, 20)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target among items 1..N of ``scores`` [B, N + 1].

    Column 0 (padding) is ignored. rank = number of real items whose score is ≥ the
    target's (the target itself included), i.e. pessimistic tie-breaking.
    """
    if torch.isnan(scores).any():
        rows = int(torch.isnan(scores).any(dim=1).sum())
        raise InvalidInputError(f"scores contain NaN in {rows} of {len(scores)} rows: the "
                                "model diverged")
    target_scores = scores.gather(1, targets.view(-1, 1))
    return (scores[:, 1:] >= target_scores).sum(dim=1)


def target_ranks_chunked(session: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                         chunk: int = 65536) -> torch.Tensor:
    """Ranks for dot-product scores ``session @ items.T`` without the [B, N] matrix.

    ``items`` [N + 1, d] includes the padding row 0, which is never a candidate. Memory is
    bounded by ``B × chunk`` whatever the catalogue size. The target's score is read
    from the very product that is later compared against it: the same rows (all B) times
    the same item block, so the two passes run the same kernel on the same shapes. A
    score read from a product of other shape (e.g. only the rows whose target is in the
    block) can round differently and let the target fail to count itself.
    """
    n = items.shape[0]
    if n - 1 <= chunk:
        return target_ranks(session @ items.T, targets)
    starts = range(1, n, chunk)
    target_scores = torch.empty(len(targets), 1, dtype=session.dtype, device=session.device)
    for start in starts:
        inside = (targets >= start) & (targets < start + chunk)
        if inside.any():
            block = session @ items[start:start + chunk].T
            local = (targets - start).clamp(0, block.shape[1] - 1).view(-1, 1)
            target_scores[inside] = block.gather(1, local)[inside]
    if torch.isnan(target_scores).any():
        rows = int(torch.isnan(target_scores).sum())
        raise InvalidInputError(f"scores contain NaN: the targets of {rows} of "
                                f"{len(target_scores)} rows score NaN; the model diverged")
    ranks = torch.zeros(len(targets), dtype=torch.long, device=session.device)
    for start in starts:
        ranks += ((session @ items[start:start + chunk].T) >= target_scores).sum(dim=1)
    return ranks


def metrics_from_ranks(ranks: np.ndarray | Sequence[int], ks: Iterable[int] = KS
                       ) -> dict[str, float]:
    """P@K, MRR@K and NDCG@K (fractions in [0, 1]) from 1-based ranks."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        raise InvalidInputError("no ranks to evaluate (the rank array is empty)")
    if (r < 1).any():
        raise InvalidInputError(f"ranks are 1-based, got {r.min():g} "
                                f"({int((r < 1).sum())} ranks below 1)")
    out: dict[str, float] = {}
    ks = list(ks)
    for k in ks:
        out[f"P@{k}"] = float((r <= k).mean())
    for k in ks:
        out[f"MRR@{k}"] = float(np.where(r <= k, 1.0 / r, 0.0).mean())
    for k in ks:
        out[f"NDCG@{k}"] = float(np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0).mean())
    return out
