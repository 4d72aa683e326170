"""Session-recommendation backbones (one file each) and the LLM4SBR wrapper.

``BACKBONES`` maps config names (``train.backbones``) to classes; each model module
registers itself there.
"""

from .base import Backbone, Encoded

BACKBONES: dict[str, type[Backbone]] = {}

__all__ = ["BACKBONES", "Backbone", "Encoded"]
