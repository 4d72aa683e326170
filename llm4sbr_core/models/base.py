"""The backbone interface every session model implements.

A backbone encodes a :class:`~llm4sbr_core.data.batches.SessionBatch` into a local
(short-term, recent-interest) and a global (long-term, whole-session) session vector,
each [B, d], and owns the item table that sessions are scored against. Alone (variant
``base``) it scores with its own paper's head (:meth:`Backbone.session_head`); the
LLM4SBR wrapper instead fuses ``h_local`` / ``h_global`` with the LLM intents and never
reaches into a backbone's internals.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..data.batches import SampleTensors, SessionBatch
from ..errors import BackboneParamsError


@dataclass
class Encoded:
    h_local: torch.Tensor  # [B, d] short-term session vector
    h_global: torch.Tensor  # [B, d] long-term session vector
    item_table: torch.Tensor  # [N + 1, d] item vectors scored against (row 0 = padding)


class Backbone(nn.Module):
    """Base class: subclasses implement :meth:`encode` and :meth:`session_head`."""

    #: registry name used in config (``train.backbones``)
    name: ClassVar[str] = ""
    #: True for models that need a graph built from the TRAINING sessions (GCE-GNN's
    #: global graph, S²-DHCN's hypergraph). The workflow builds it once per dataset with
    #: :meth:`build_training_graph`, caches it as an .npz artifact and passes the arrays
    #: to the constructor as ``graph=``.
    needs_training_graph: ClassVar[bool] = False

    @classmethod
    def build_training_graph(cls, train: SampleTensors, n_items: int,
                             **hparams: Any) -> dict[str, np.ndarray]:
        """Arrays describing the training-session graph (only if needs_training_graph)."""
        raise NotImplementedError(f"{cls.__name__} needs no training graph")

    @classmethod
    def split_params(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``train.backbone_params`` of this backbone → (constructor keywords, training-graph
        keywords): the one check of a backbone's parameters against its signatures.

        A key must be a keyword parameter of ``__init__`` or (for models that need a
        training graph) of :meth:`build_training_graph`; anything else is a
        :class:`~llm4sbr_core.errors.BackboneParamsError` naming the config key.
        """
        ctor, ctor_varkw = _keywords(cls.__init__)
        graph = _keywords(cls.build_training_graph)[0] if cls.needs_training_graph else set()
        unknown = sorted(set(params) - ctor - graph)
        if unknown and not ctor_varkw:
            raise BackboneParamsError(
                f"train.backbone_params.{cls.name or cls.__name__}",
                f"unknown parameter(s) {unknown} of {cls.__name__}; it takes "
                f"{sorted(ctor | graph)}")
        return ({k: v for k, v in params.items() if k in ctor or (ctor_varkw and k not in graph)},
                {k: v for k, v in params.items() if k in graph})

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.n_items = n_items
        self.dim = dim
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)

    def encode(self, batch: SessionBatch) -> Encoded:
        raise NotImplementedError

    def session_head(self, enc: Encoded) -> torch.Tensor:
        """The backbone's own paper's session representation [B, d] from its two views."""
        raise NotImplementedError

    def scores(self, batch: SessionBatch) -> torch.Tensor:
        """[B, N + 1] scores over the whole catalogue (column 0 is padding)."""
        enc = self.encode(batch)
        return self.session_head(enc) @ enc.item_table.T




def _keywords(fn: Any) -> tuple[set[str], bool]:
    """The keyword parameters of ``fn`` besides the ones the workflow supplies, and
    whether it takes ``**kwargs``."""
    ps = inspect.signature(fn).parameters.values()
    named = {p.name for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named - {"self", "cls", "n_items", "dim", "graph", "train"}, any(
        p.kind == p.VAR_KEYWORD for p in ps)
