"""The network a run trains, built from a backbone class, a parsed variant and its inputs.

    base           the backbone alone (its own paper's scoring head)
    textinit       the backbone, its item table initialised from the item text vectors
    LLM variants   the backbone inside the LLM4SBR wrapper (models/llm4sbr.py), reading
                   one intent array per view

Also the training graph some backbones need (GCE-GNN, S²-DHCN), checked to be arrays.
The backbone's parameters are checked against its signatures once, by
:meth:`Backbone.split_params`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..data.batches import SampleTensors
from ..errors import InvalidInputError
from ..variants import Variant
from .base import Backbone
from .llm4sbr import LLM4SBR
from .textinit import init_item_table_from_text

log = logging.getLogger(__name__)


def build_model(backbone: type[Backbone], variant: Variant, n_items: int, dim: int,
                params: Mapping[str, Any], graph: Mapping[str, np.ndarray] | None, *,
                intents: Mapping[str, np.ndarray] | None = None,
                item_vectors: np.ndarray | None = None, tau: float = 0.1,
                shared_projection: bool = True) -> Backbone:
    """The network ``variant`` trains on ``backbone``.

    ``params`` is the backbone's ``train.backbone_params`` entry (its training-graph keys
    are not passed to the constructor); ``graph`` the arrays of
    :func:`build_training_graph` for backbones that need one; ``intents`` view → [samples,
    t] array (memory-mapped) for the LLM variants; ``item_vectors`` items.npy for
    ``textinit``. An input the variant does not read is an error, not silently ignored.
    """
    kwargs, _ = backbone.split_params(params)
    if backbone.needs_training_graph:
        kwargs["graph"] = graph
    elif graph is not None:
        raise InvalidInputError(f"{backbone.__name__} needs no training graph, but one was "
                                "given")
    model = backbone(n_items, dim, **kwargs)
    if variant.kind == "textinit":
        if item_vectors is None:
            raise InvalidInputError(f"variant {variant.name!r} needs the item text vectors "
                                    "(items.npy)")
        n = init_item_table_from_text(model.item_embedding, item_vectors)
        log.info("item table: %d of %d items initialised from their text vectors", n, n_items)
    elif item_vectors is not None:
        raise InvalidInputError(f"variant {variant.name!r} does not read item text vectors")
    if variant.mode is None:
        if intents:
            raise InvalidInputError(f"variant {variant.name!r} does not read LLM intents")
        return model
    return LLM4SBR(model, intents or {}, mode=variant.mode, tau=tau,
                   shared_projection=shared_projection)


def build_training_graph(backbone: type[Backbone], train: SampleTensors, n_items: int,
                         params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays ``backbone`` builds from the training sessions (checked to be arrays).

    ``train`` should be untruncated (``load_samples`` without ``max_len``): the graph is
    of whole training sessions, which a cut input would lose the head of. ``params`` is
    the backbone's whole ``train.backbone_params`` entry (constructor keys are ignored).
    """
    _, graph_params = backbone.split_params(params)  # unknown keys fail before the work
    graph = backbone.build_training_graph(train, n_items, **graph_params)
    bad = [k for k, v in graph.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise InvalidInputError(f"{backbone.__name__}.build_training_graph returned "
                                f"non-arrays: {bad}")
    return graph
