"""The settings a generation backend is built from (the ``llm:`` config block).

Kept apart from :mod:`.base` so that :mod:`.identity` can read them without importing
the generator classes: the modules of ``llm/`` form layers, never a circle
(``common``, ``settings`` < ``identity`` < ``base`` < the backends < ``generate``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DecodingSettings:
    """Everything that changes an answer besides the model and the prompt.

    Part of the answer-store key: changing any field means new answers.
    """

    max_new_tokens: int = 24
    system_prompt: str | None = None
    stop_at_newline: bool = True

    def key(self) -> dict[str, Any]:
        return {"greedy": True, **asdict(self)}


@dataclass
class GeneratorSettings:
    """The `llm:` config block, as the backends read it."""

    backend: str
    model: str
    decoding: DecodingSettings = field(default_factory=DecodingSettings)
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific block
    cache_dir: str | None = None  # where a dequantised copy of a GGUF model is kept
