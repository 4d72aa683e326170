"""The settings a generation backend is built from (the ``llm:`` config block).

Kept apart from :mod:`.base` so that :mod:`.identity` can read them without importing
the generator classes: the modules of ``llm/`` form layers, never a circle
(``common``, ``settings`` < ``identity`` < ``base`` < the backends < ``generate``).
:func:`concrete_dtype` lives here for the same reason: the answers' identity needs the
dtype ``auto`` stands for before any model is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..machine import CPUINFO

#: The dtypes `llm.dtype` may name besides ``auto``.
DTYPES = ("float32", "float16", "bfloat16")
#: CPU flags saying the CPU multiplies bf16 in hardware: AVX512-BF16 (Intel Cooper Lake
#: and later, AMD Zen 4 and later), AMX-BF16 (Intel Sapphire Rapids and later) in
#: ``/proc/cpuinfo``'s ``flags``, and the Armv8.6 BF16 extension in its ``Features``.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


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
    # Compute the key/value cache of a prefix shared by several prompts once (transformers
    # backend). Not part of the answers' identity: same answers, only faster.
    prefix_reuse: bool = True


def cpu_bf16_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The flags of :data:`NATIVE_BF16_FLAGS` this CPU reports (empty when it reports
    none, or where there is no ``/proc/cpuinfo``: there float32 is the safe choice)."""
    try:
        with cpuinfo.open(encoding="ascii", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):
                    return set(value.split()) & NATIVE_BF16_FLAGS
    except OSError:
        pass
    return set()


def concrete_device(device: str) -> str:
    """`llm.device` with ``auto`` resolved: ``cuda`` when torch sees a GPU, else ``cpu``.
    torch is imported only for ``auto`` (a remote backend never needs it)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def concrete_dtype(dtype: str, device: str) -> str:
    """`llm.dtype` with ``auto`` resolved for a local model on ``device``.

    ``auto`` is bfloat16 on CUDA and on CPUs that compute bf16 natively
    (:func:`cpu_bf16_flags`: there bf16 generation is about twice as fast as float32 and
    gives the same answer to most prompts), float32 elsewhere (emulated bf16 is slower
    than float32). Any other value is returned as it is.
    """
    if dtype != "auto":
        return dtype
    kind = concrete_device(device).split(":", 1)[0]
    if kind == "cuda":
        return "bfloat16"
    if kind == "cpu" and cpu_bf16_flags():
        return "bfloat16"
    return "float32"
