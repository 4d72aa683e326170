"""Generation backend on vLLM's offline engine (``vllm.LLM``), for local GPUs.

The engine runs with prefix caching on: the prompts of one run share a long common
prefix (instructions, item lists), so their KV cache is computed once. Decoding is greedy
(temperature 0, seed 0). ``vllm`` is imported only when this backend is built, so the rest
of the package works without it.

Options (the backend's ``settings.options`` block), passed to ``vllm.LLM`` as they are:
``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``,
``trust_remote_code``. Any other key is a :class:`~llm4sbr_core.errors.ConfigError`.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from llm4sbr_core.errors import ConfigError, GenerationError
from llm4sbr_core.llm.base import Generation, Generator, GeneratorSettings
from llm4sbr_core.llm.common import hit_token_limit

#: The ``settings.options`` keys passed through to ``vllm.LLM``.
ENGINE_OPTIONS = ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len",
                  "trust_remote_code")


class VLLMGenerator(Generator):
    """Answers prompts with a model loaded in-process by vLLM."""

    def __init__(self, settings: GeneratorSettings):
        self.settings = settings
        options = dict(settings.options or {})
        unknown = sorted(set(options) - set(ENGINE_OPTIONS))
        if unknown:
            raise ConfigError(f"llm.vllm.{unknown[0]}",
                              f"unknown option; known options: {', '.join(ENGINE_OPTIONS)}")
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise ConfigError("llm.backend",
                              "the vllm backend needs the vllm package: pip install vllm"
                              ) from None
        self._sampling = SamplingParams(temperature=0,
                                        max_tokens=settings.decoding.max_new_tokens)
        self._llm: Any = LLM(model=settings.model, enable_prefix_caching=True,
                             dtype=settings.dtype or "auto", seed=0, **options)

    def __repr__(self) -> str:
        return f"VLLMGenerator(model={self.settings.model!r})"

    def generate(self, prompts: list[str]) -> list[Generation]:
        """One answer per prompt, same order, in one batched ``LLM.chat`` call."""
        if not prompts:
            return []
        if self._llm is None:
            raise GenerationError("the vllm generator was closed")
        outputs = self._llm.chat([self.messages(p) for p in prompts], self._sampling,
                                 use_tqdm=True)
        if len(outputs) != len(prompts):
            raise GenerationError(f"vllm returned {len(outputs)} outputs for "
                                  f"{len(prompts)} prompts")
        max_tokens = self.settings.decoding.max_new_tokens
        answers = []
        for out in outputs:
            first = out.outputs[0]
            prompt_ids = getattr(out, "prompt_token_ids", None)
            token_ids = getattr(first, "token_ids", None)
            text = first.text or ""
            tokens_out = len(token_ids) if token_ids is not None else None
            answers.append(Generation(
                text=text,
                tokens_in=len(prompt_ids) if prompt_ids is not None else None,
                tokens_out=tokens_out,
                hit_token_limit=hit_token_limit(getattr(first, "finish_reason", None),
                                                tokens_out, text, max_tokens),
            ))
        return answers

    def close(self) -> None:
        """Drop the engine and give its GPU memory back (as far as vLLM allows)."""
        self._llm = None
        gc.collect()
        torch = sys.modules.get("torch")  # vllm imports it; never import it here
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
