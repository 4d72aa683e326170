"""The data stage: raw readers, sessionization, filtering, splits, samples and stats."""

from .build import build_dataset, prepare_dataset
from .readers import read_raw

__all__ = ["build_dataset", "prepare_dataset", "read_raw"]
