"""Local generation with Hugging Face transformers: an HF model folder or a GGUF file.

GGUF files (the embedded SmolLM2-135M-Instruct, llama.cpp exports) are dequantised by
transformers at load time. Prompts go through the model's own chat template, are sorted
by length and batched with left padding, and decoded greedily; a row stops at its first
line break after some text (the prompts ask for one name), so short answers do not wait
for ``max_new_tokens``. bf16 on CUDA, float32 on CPU unless `llm.dtype` says otherwise.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..embedded import resolve_model_path
from ..errors import ConfigError
from .base import Generation, Generator, GeneratorSettings
from .identity import weights_digest

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX): there, bf16
    generation is ~2.5× faster than float32; elsewhere bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in f)
    except OSError:
        return False


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`llm.dtype`; auto = bf16 on CUDA and on CPUs with AMX, float32 elsewhere."""
    if dtype == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        return torch.bfloat16 if native else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError("llm.dtype", f"unknown dtype {dtype!r}; use auto or {sorted(_DTYPES)}")
    return _DTYPES[dtype]


class _StopAtLineBreak:
    """Per-row stopping: a row is done once it emits a line break after some text.

    Works on token ids only (a table built once from the vocabulary), so the check costs
    two lookups per row and step instead of decoding the growing answers.
    """

    def __init__(self, tokenizer: Any, prompt_length: int, device: torch.device):
        size = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(size)])
        self.newline = torch.tensor(["\n" in t for t in texts], device=device)
        # Text before the line break inside the same token ("Heat\n") also counts.
        self.text_before = torch.tensor([t.split("\n", 1)[0].strip() != "" for t in texts],
                                        device=device)
        self.has_text = torch.tensor([t.strip() != "" for t in texts], device=device)
        self.prompt_length = prompt_length
        self.seen_text: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        last = input_ids[:, -1]
        if self.seen_text is None:
            self.seen_text = torch.zeros(len(last), dtype=torch.bool, device=last.device)
        done = self.newline[last] & (self.seen_text | self.text_before[last])
        self.seen_text |= self.has_text[last]
        return done


def _dequantise(gguf: Path, destination: Path) -> None:
    """Save a GGUF model as a float32 safetensors folder, atomically (folder rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s once into %s", gguf, destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name) \
            .save_pretrained(partial)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
        # The weights are plain float32 tensors after loading; only the GGUF marker
        # stops save_pretrained, so drop it.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(partial)
        os.chmod(partial, 0o755)
        for file in partial.iterdir():  # save_pretrained may create 0600 files
            os.chmod(file, 0o644)
        try:
            os.rename(partial, destination)
        except OSError:  # another job got there first: use its copy
            if not (destination / "config.json").exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


class TransformersGenerator(Generator):
    """Batched greedy generation with a local causal LM."""

    def __init__(self, settings: GeneratorSettings, threads: int | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings = settings
        if threads:
            torch.set_num_threads(threads)
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(settings.dtype, self.device)
        path = resolve_model_path(settings.model)
        self.path = path
        location, kwargs = self._locate(path, settings.cache_dir)
        log.info("loading %s (%s) on %s as %s", settings.model, location, self.device,
                 self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not self.tokenizer.chat_template:
            raise ConfigError("llm.model", f"{settings.model} has no chat template; "
                              "use an instruction-tuned (chat) model")
        self.model = AutoModelForCausalLM.from_pretrained(location, dtype=self.dtype, **kwargs)
        self.model.to(self.device).eval()
        self._stop_tables: _StopAtLineBreak | None = None

    @staticmethod
    def _locate(path: Path | str, cache_dir: str | None) -> tuple[str, dict[str, Any]]:
        """Where from_pretrained reads the model, and its extra arguments.

        A GGUF file is dequantised on every load (15 s for the embedded 135M model on
        two cores, minutes for a 7B); with a cache_dir the first load saves the result
        as safetensors under {cache_dir}/models/<weights digest>/, which later shard jobs
        load in about a second.
        """
        if not (isinstance(path, Path) and path.is_file()):
            return str(path), {}
        if path.suffix != ".gguf":
            raise ConfigError("llm.model", f"{path}: a model file must be a .gguf "
                              "(or give a Hugging Face model folder)")
        if cache_dir is None:
            return str(path.parent), {"gguf_file": path.name}
        converted = Path(cache_dir) / "models" / weights_digest(path)
        if not (converted / "config.json").exists():
            _dequantise(path, converted)
        return str(converted), {}

    def chat_texts(self, prompts: list[str]) -> list[str]:
        return [self.tokenizer.apply_chat_template(self.messages(p), add_generation_prompt=True,
                                                   tokenize=False) for p in prompts]

    @torch.inference_mode()
    def generate(self, prompts: list[str]) -> list[Generation]:
        texts = self.chat_texts(prompts)
        lengths = [len(ids) for ids in
                   self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        # Longest first: similar lengths share a batch (little padding), and a batch too
        # large for the device fails at the start rather than after hours.
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        out: list[Generation | None] = [None] * len(texts)
        size = self.settings.batch_size
        for start in range(0, len(order), size):
            rows = order[start:start + size]
            for i, generation in zip(rows, self._generate_batch([texts[i] for i in rows]),
                                     strict=True):
                out[i] = generation
        return out  # type: ignore[return-value]

    def _generate_batch(self, texts: list[str]) -> list[Generation]:
        from transformers import StoppingCriteriaList

        decoding = self.settings.decoding
        batch = self.tokenizer(texts, return_tensors="pt", padding=True,
                               add_special_tokens=False).to(self.device)
        width = batch["input_ids"].shape[1]
        criteria = StoppingCriteriaList()
        if decoding.stop_at_newline:
            if self._stop_tables is None:
                self._stop_tables = _StopAtLineBreak(self.tokenizer, width, self.device)
            self._stop_tables.seen_text = None
            criteria.append(self._stop_tables)
        generated = self.model.generate(
            **batch, max_new_tokens=decoding.max_new_tokens, do_sample=False,
            temperature=None, top_p=None, top_k=None, stopping_criteria=criteria,
            pad_token_id=self.tokenizer.pad_token_id)
        new = generated[:, width:].cpu()
        stop_ids = {self.tokenizer.pad_token_id, self.tokenizer.eos_token_id}
        results = []
        for row, attention in zip(new.tolist(), batch["attention_mask"].sum(1).tolist(),
                                  strict=True):
            n = next((k for k, t in enumerate(row) if t in stop_ids), len(row))
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            hit_limit = n == decoding.max_new_tokens and "\n" not in text.strip()
            results.append(Generation(text=text, tokens_in=int(attention), tokens_out=n,
                                      hit_token_limit=hit_limit))
        return results

    def close(self) -> None:
        del self.model
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
