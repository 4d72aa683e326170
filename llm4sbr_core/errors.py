"""Error types that name the offending file, line or config key."""

from __future__ import annotations

from pathlib import Path


class Llm4sbrError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(Llm4sbrError, ValueError):
    """An argument, array or file this package cannot use: the message names the file,
    key or value. Also a ``ValueError``, so callers that catch that keep working."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class InvalidTypeError(Llm4sbrError, TypeError):
    """An object of the wrong kind was given (e.g. a model that is not a Backbone)."""


class UnknownNameError(Llm4sbrError, KeyError):
    """A name (backbone, view, mode) that is not registered; the message lists the known
    ones. Also a ``KeyError``, printed without KeyError's quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(Llm4sbrError):
    """A configuration value is missing, mistyped or inconsistent."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config key '{key}': {message}")


class BackboneParamsError(ConfigError, TypeError):
    """``train.backbone_params`` names a parameter the backbone does not take."""


class DataFormatError(Llm4sbrError):
    """A raw data file cannot be read as the format it was declared to have."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class EmptyDatasetError(Llm4sbrError):
    """Nothing is left of a dataset after filtering or splitting."""


class GenerationError(Llm4sbrError):
    """A generation backend failed in a way it cannot (or can no longer) retry."""


class LocalizationError(Llm4sbrError):
    """Answer or item embeddings cannot be localized onto the item set (paper §4.1.3)."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class TrainingDivergedError(Llm4sbrError, FloatingPointError):
    """The training loss or the scores became NaN or infinite."""


class MissingRunError(Llm4sbrError, FileNotFoundError):
    """A table or figure needs a run's output file that does not exist."""

    def __init__(self, path: str | Path, what: str = "run output"):
        self.path = str(path)
        super().__init__(f"{self.path}: missing {what} (train the run first, or remove it "
                         "from the config's train: section)")
