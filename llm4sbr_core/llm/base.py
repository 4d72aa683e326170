"""What every generation backend provides, and the settings they share.

A backend turns a list of chat prompts into one :class:`Generation` per prompt, in the
same order. Decoding is greedy and stops at the first line break after some text (the
prompts ask for one item name). :meth:`Generator.identity` names the model exactly
(weights, not just a path), so the answer store can tell a new model from an old one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Generation:
    """One answer: the raw decoded text and its token counts (``None`` when unknown)."""

    text: str
    tokens_in: int | None = None
    tokens_out: int | None = None
    hit_token_limit: bool = False  # stopped by max_new_tokens, not by a line break / EOS


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


class Generator(ABC):
    """A loaded model that answers chat prompts."""

    settings: GeneratorSettings

    @abstractmethod
    def generate(self, prompts: list[str]) -> list[Generation]:
        """One answer per prompt, same order. Raises on a failure it cannot retry."""

    def identity(self) -> dict[str, Any]:
        """Which model answers (:func:`.identity.model_identity`; no credentials)."""
        from .identity import model_identity
        return model_identity(self.settings)

    def messages(self, prompt: str) -> list[dict[str, str]]:
        """The chat messages of one prompt (an optional system message, then the user)."""
        system = self.settings.decoding.system_prompt
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": "user", "content": prompt}]

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources (threads, GPU memory)."""
