"""What the LLM stage will cost, said before it starts: prompts, tokens, expected wall time.

The expected time comes from throughput MEASURED by earlier generation on the same
machine with the same model, dtype and decoding: every generation job adds what it did
(prompts, prompt characters, prompt and answer tokens, seconds) to a small ledger kept in
the answer store (``{cache_dir}/answers/<key>/throughput.json``, one entry per machine).
A store key already names the model identity, dtype and decoding, so a rate measured for
one configuration never predicts another. With no measurement yet the estimate says so
and gives counts only; the first chunk of the first job then measures the rate.

A machine is its CPU model, core count, device and torch threads (for a local model) or
the server's address (for an OpenAI-compatible endpoint, whose speed is the server's).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..io import AtomicFiles
from ..machine import cpu_model
from .common import public_url
from .settings import GeneratorSettings

log = logging.getLogger(__name__)

#: The ledger's file name inside an answer store folder.
LEDGER = "throughput.json"
#: Characters per prompt token before anything was measured (English prose, BPE
#: tokenizers): only used to give a token count, never a time.
DEFAULT_CHARS_PER_TOKEN = 4.0


def machine_id(settings: GeneratorSettings, threads: int | None = None) -> str:
    """Where the answers are computed, as far as speed goes (see the module docstring)."""
    if settings.backend == "openai":
        return f"server {public_url(str(settings.options.get('base_url', '')))}"
    return (f"{cpu_model()} · {os.cpu_count()} cpus · device {settings.device} · "
            f"threads {threads if threads else 'default'}")


@dataclass(frozen=True)
class Measured:
    """Everything generated so far on one machine for one answer store."""

    machine: str
    prompts: int = 0
    seconds: float = 0.0
    chars_in: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    @property
    def prompts_per_second(self) -> float | None:
        return self.prompts / self.seconds if self.seconds > 0 and self.prompts else None

    @property
    def chars_per_token(self) -> float | None:
        return self.chars_in / self.tokens_in if self.tokens_in and self.chars_in else None

    @property
    def tokens_out_per_prompt(self) -> float | None:
        return self.tokens_out / self.prompts if self.prompts and self.tokens_out else None

    def plus(self, prompts: int, seconds: float, chars_in: int, tokens_in: int,
             tokens_out: int) -> Measured:
        return Measured(self.machine, self.prompts + prompts, self.seconds + seconds,
                        self.chars_in + chars_in, self.tokens_in + tokens_in,
                        self.tokens_out + tokens_out)


def _read_ledger(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        ledger = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        # A damaged ledger costs an estimate, never a run: start it again.
        log.warning("%s is unreadable (%s); throughput is measured afresh", path, exc)
        return {}
    return ledger if isinstance(ledger, dict) else {}


def read_measured(store_path: str | Path, machine: str) -> Measured:
    """The throughput measured for ``machine`` in the store at ``store_path`` (zeros when
    nothing was measured there yet)."""
    entry = _read_ledger(Path(store_path) / LEDGER).get(machine)
    if not isinstance(entry, Mapping):
        return Measured(machine)
    fields = {k: entry[k] for k in ("prompts", "seconds", "chars_in", "tokens_in",
                                    "tokens_out") if isinstance(entry.get(k), int | float)}
    return Measured(machine, **fields)


def best_measured(store_path: str | Path, machine: str) -> Measured:
    """The measurement of ``machine``; else, the one with the most prompts among those of
    the same CPU and device with other thread counts (a plan does not know how many
    threads its jobs will get); else zeros."""
    exact = read_measured(store_path, machine)
    if exact.prompts:
        return exact
    prefix = machine.rsplit(" · threads", 1)[0]
    alike = [read_measured(store_path, m)
             for m in _read_ledger(Path(store_path) / LEDGER) if m.startswith(prefix)]
    return max(alike, key=lambda m: m.prompts, default=exact)


def record_measured(store_path: str | Path, measured: Measured) -> None:
    """Write ``measured`` as the ledger entry of its machine (atomically; the caller holds
    the store's ``throughput`` lock so that concurrent jobs do not lose each other's)."""
    path = Path(store_path) / LEDGER
    ledger = _read_ledger(path)
    entry = asdict(measured)
    entry.pop("machine")
    entry["prompts_per_second"] = (round(measured.prompts_per_second, 4)
                                   if measured.prompts_per_second else None)
    ledger[measured.machine] = entry
    with AtomicFiles() as files:
        files.write_json(path, ledger)


@dataclass(frozen=True)
class Estimate:
    """The cost of answering ``prompts`` prompts: token counts and the expected time."""

    prompts: int
    chars_in: int
    tokens_in: int
    tokens_out: int
    tokens_out_bound: int
    seconds: float | None
    prompts_per_second: float | None
    measured_prompts: int
    machine: str

    def describe(self) -> str:
        """One line for a log or a terminal."""
        rate = (f"expected {format_duration(self.seconds)} at {self.prompts_per_second:.2f} "
                f"prompts/s measured over {self.measured_prompts:,} prompts on {self.machine}"
                if self.seconds is not None else
                f"no throughput measured yet on {self.machine}: the first chunk measures it")
        return (f"{self.prompts:,} prompts, ≈ {self.tokens_in:,} prompt tokens and "
                f"≈ {self.tokens_out:,} answer tokens (at most {self.tokens_out_bound:,}); "
                f"{rate}")


def estimate(prompts: int, chars_in: int, max_new_tokens: int, measured: Measured) -> Estimate:
    """The cost of ``prompts`` prompts of ``chars_in`` characters in all, from ``measured``.

    Prompt tokens: characters / the measured characters per token (else
    :data:`DEFAULT_CHARS_PER_TOKEN`); answer tokens: the measured tokens per answer (else
    the bound ``max_new_tokens`` per prompt); time: prompts / the measured prompts per
    second (else ``None``). Prompt-bound work makes prompts/s the stable unit on the
    same data; on prompts of a very different length the estimate is rougher."""
    if prompts < 0 or chars_in < 0 or max_new_tokens < 1:
        raise InvalidInputError(f"cannot estimate {prompts} prompts of {chars_in} characters "
                                f"with max_new_tokens={max_new_tokens}")
    per_token = measured.chars_per_token or DEFAULT_CHARS_PER_TOKEN
    out_per_prompt = measured.tokens_out_per_prompt or float(max_new_tokens)
    rate = measured.prompts_per_second
    return Estimate(prompts=prompts, chars_in=chars_in,
                    tokens_in=round(chars_in / per_token),
                    tokens_out=round(prompts * min(out_per_prompt, max_new_tokens)),
                    tokens_out_bound=prompts * max_new_tokens,
                    seconds=prompts / rate if rate else None, prompts_per_second=rate,
                    measured_prompts=measured.prompts, machine=measured.machine)


def format_duration(seconds: float) -> str:
    """``42 s``, ``7.5 min``, ``3.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
