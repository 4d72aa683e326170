"""LLMSeqSim (Harte et al., "Leveraging Large Language Models for Sequential
Recommendation", RecSys 2023): the LLM4SBR paper's text-only peer (Fig. 5).

No session model and no training: a session is an aggregate of its items' text
embeddings, and items are ranked by cosine similarity to it.

    ẽ_i   = e_i / ‖e_i‖                        item text vectors (items.npy), unit length
    s     = Σ_j w_j ẽ_{x_j} / Σ_j w_j          over the session's clicks x_1..x_L
            mean:   w_j = 1
            linear: w_j = j                     (recency: the last click weighs L times the first)
            last:   s = ẽ_{x_L}
    score(i) = cos(s, e_i)

As in LLMSeqSim, items the session already contains are not recommended (their score is
set below every other), and items without a text get the lowest score: neither can be
"similar" in a meaningful way. Ties are ranked pessimistically, like every model here.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.batches import SampleTensors
from ..errors import InvalidInputError
from ..metrics import target_ranks
from ..variants import LLMSEQSIM_AGGREGATIONS as AGGREGATIONS

#: below every cosine similarity (which lies in [-1, 1])
_EXCLUDED = -4.0


def session_vectors(batch_items: torch.Tensor, lengths: torch.Tensor, unit_items: torch.Tensor,
                    aggregation: str) -> torch.Tensor:
    """[B, t] session vectors from right-padded item ids [B, L] (0 = padding)."""
    if aggregation not in AGGREGATIONS:
        raise InvalidInputError(f"unknown LLMSeqSim aggregation {aggregation!r}; known: "
                                f"{list(AGGREGATIONS)}")
    if aggregation == "last":
        last = batch_items.gather(1, (lengths - 1).view(-1, 1)).squeeze(1)
        return unit_items[last]
    positions = torch.arange(1, batch_items.shape[1] + 1, dtype=unit_items.dtype)
    weights = (batch_items > 0).to(unit_items.dtype)
    if aggregation == "linear":
        weights = weights * positions
    summed = (weights.unsqueeze(-1) * unit_items[batch_items]).sum(1)
    return summed / weights.sum(1, keepdim=True)


def llmseqsim_ranks(samples: SampleTensors, item_vectors: np.ndarray, aggregation: str = "mean",
                    batch_size: int = 1000) -> np.ndarray:
    """1-based full-catalogue rank of every sample's target, in sample order."""
    items = torch.from_numpy(np.array(item_vectors, dtype=np.float32))  # a copy: N × t is small
    if not torch.isfinite(items).all():
        raise InvalidInputError("item text vectors contain NaN or infinite values")
    unit = F.normalize(items, dim=-1)  # zero rows stay zero
    no_text = items.abs().sum(1) == 0  # includes row 0, the padding
    ranks = []
    for batch in samples.batches(batch_size):
        s = F.normalize(session_vectors(batch.items, batch.lengths, unit, aggregation), dim=-1)
        scores = s @ unit.T
        scores[:, no_text] = _EXCLUDED
        scores.scatter_(1, batch.items, _EXCLUDED)  # the session's own items (and padding)
        ranks.append(target_ranks(scores, batch.targets))
    return torch.cat(ranks).numpy()
