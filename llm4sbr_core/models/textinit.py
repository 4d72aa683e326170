"""Item tables initialised from item-text embeddings (variant ``textinit``).

The LLM4SBR paper's peer "LLM2SRGNN" (Fig. 5) follows Harte et al., "Leveraging Large
Language Models for Sequential Recommendation" (RecSys 2023), whose LLM2BERT4Rec
initialises a sequential model's item embeddings with LLM embeddings of the item texts,
reduced to the model's width by PCA. Here, for any backbone:

    X  = item text vectors of the items that have a text          [M, t]
    P  = the top-k principal axes of X (k = min(d, t, M − 1))      [t, k]
    E_i[:k] = s · (X_i − mean(X)) P,   s = std(E_init) / std((X − mean) P)

so the PCA coordinates take the spread of the backbone's own initialisation (SR-GNN draws
from U(−1/√d, 1/√d)): the learning rate tuned for that scale stays right. Columns k..d−1,
the rows of items without a text and the padding row keep the backbone's initialisation.
Training then updates the table as usual.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import InvalidInputError


def pca_projection(vectors: np.ndarray, k: int) -> np.ndarray:
    """The rows of ``vectors`` [M, t] on their top-``k`` principal axes, [M, k], float64.

    The SVD's sign ambiguity is fixed (largest coordinate of each axis positive), so the
    result does not depend on the LAPACK build.
    """
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:k]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return x @ (axes * signs[:, None]).T


@torch.no_grad()
def init_item_table_from_text(embedding: nn.Embedding, item_vectors: np.ndarray) -> int:
    """Overwrite the rows of items with a text by their PCA-projected text vectors.

    ``item_vectors`` is the encoder's ``items.npy`` [N + 1, t] (row = item id, row 0 and
    text-less items all zero). Returns the number of rows initialised from text.
    """
    weight = embedding.weight
    n_rows, dim = weight.shape
    vectors = np.asarray(item_vectors)
    if vectors.ndim != 2 or vectors.shape[0] != n_rows:
        raise InvalidInputError(f"item text vectors have shape {vectors.shape}, the item table "
                                f"{tuple(weight.shape)}: they must have one row per item id")
    if not np.isfinite(vectors).all():
        raise InvalidInputError("item text vectors contain NaN or infinite values")
    with_text = np.flatnonzero(np.abs(vectors).sum(axis=1) > 0)
    with_text = with_text[with_text > 0]
    k = min(dim, vectors.shape[1], len(with_text) - 1)
    if k < 1:
        raise InvalidInputError("fewer than two items have a text: nothing to initialise from")
    coords = pca_projection(vectors[with_text], k)
    own = weight[1:, :k].double()
    scale = float(own.std()) / max(float(coords.std()), 1e-12)
    rows = torch.from_numpy(with_text).to(weight.device)
    weight[rows, :k] = torch.from_numpy(coords * scale).to(weight)
    return len(with_text)
