"""What every generation backend provides, and the settings they share.

The settings (:class:`DecodingSettings`, :class:`GeneratorSettings`) live in
:mod:`.settings` and are re-exported here; helpers shared by several backends live in
:mod:`.common`. A backend imports this module and ``common``, never another backend.

A backend turns a list of chat prompts into one :class:`Generation` per prompt, in the
same order. Decoding is greedy and stops at the first line break after some text (the
prompts ask for one item name). :meth:`Generator.identity` names the model exactly
(weights, not just a path), so the answer store can tell a new model from an old one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from .identity import model_identity
from .settings import DecodingSettings, GeneratorSettings

__all__ = ["DecodingSettings", "Generation", "Generator", "GeneratorSettings"]


@dataclass(frozen=True)
class Generation:
    """One answer: the raw decoded text and its token counts (``None`` when unknown).

    ``error`` says why a server's response carried no usable answer (``text`` is then
    empty): such an answer is stored and flagged, not lost with its batch, and a later
    run asks for it again."""

    text: str
    tokens_in: int | None = None
    tokens_out: int | None = None
    hit_token_limit: bool = False  # stopped by max_new_tokens, not by a line break / EOS
    error: str | None = None


class Generator(ABC):
    """A loaded model that answers chat prompts."""

    settings: GeneratorSettings

    @abstractmethod
    def generate(self, prompts: list[str]) -> list[Generation]:
        """One answer per prompt, same order. Raises on a failure it cannot retry."""

    def identity(self) -> dict[str, Any]:
        """Which model answers (:func:`.identity.model_identity`; no credentials)."""
        return model_identity(self.settings)

    def messages(self, prompt: str) -> list[dict[str, str]]:
        """The chat messages of one prompt (an optional system message, then the user)."""
        system = self.settings.decoding.system_prompt
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": "user", "content": prompt}]

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources (threads, GPU memory)."""
