"""Session-recommendation backbones (one file each) and the LLM4SBR wrapper.

:func:`get_backbone` maps config names (``train.backbones``) to classes; it imports only
the module of the backbone asked for (``BACKBONE_PATHS``),
so a broken or missing model file never stops the others, and importing this package
stays cheap.
"""

from __future__ import annotations

import importlib

from ..errors import InvalidTypeError, UnknownNameError
from .base import Backbone, Encoded

#: config name → "module:Class" of every backbone the workflow knows.
BACKBONE_PATHS: dict[str, str] = {
    "gru4rec": "llm4sbr_core.models.gru4rec:GRU4Rec",
    "sasrec": "llm4sbr_core.models.sasrec:SASRec",
    "srgnn": "llm4sbr_core.models.srgnn:SRGNN",
    "tagnn": "llm4sbr_core.models.tagnn:TAGNN",
    "gcegnn": "llm4sbr_core.models.gcegnn:GCEGNN",
    "dhcn": "llm4sbr_core.models.dhcn:DHCN",
}


def get_backbone(name: str | type[Backbone]) -> type[Backbone]:
    """The backbone class registered as ``name`` (a class is returned as is, for tests).

    Raises ``KeyError`` naming the known backbones for an unknown name, and lets the
    ``ImportError`` of a known backbone whose module cannot be imported through.
    """
    if isinstance(name, type):
        if not issubclass(name, Backbone):
            raise InvalidTypeError(f"{name.__name__} is not a Backbone subclass")
        return name
    if name not in BACKBONE_PATHS:
        raise UnknownNameError(f"unknown backbone {name!r}; known backbones: "
                               f"{sorted(BACKBONE_PATHS)}")
    module_name, class_name = BACKBONE_PATHS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


__all__ = ["BACKBONE_PATHS", "Backbone", "Encoded", "get_backbone"]
