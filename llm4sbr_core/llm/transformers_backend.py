"""Local generation with Hugging Face transformers: an HF model folder or a GGUF file.

GGUF files (the embedded SmolLM2-135M-Instruct, llama.cpp exports) are dequantised by
transformers at load time. Prompts go through the model's own chat template and are
decoded greedily with left padding; a row stops at its first line break after some text
(the prompts ask for one name), so short answers do not wait for ``max_new_tokens``.
`llm.dtype: auto` is bfloat16 on CUDA and on CPUs that compute bf16 natively
(:func:`~.settings.concrete_dtype`), float32 elsewhere.

**Shared-prefix reuse** (`llm.prefix_reuse`, on by default). The work is prompt-bound
(≈ 300 prompt tokens for ≈ 17 answer tokens), and prompts share prefixes: every prompt
starts with the chat preamble and the template's opening sentence; the views of one
sample share their whole item list (the default template puts ``{items}`` before the
task, so two views differ only from the qualifier on, ≈ 25 tokens before the end); the
prefix samples of one session share their leading items. The prompts of one call are
sorted by their token ids, so prompts with a common prefix are neighbours, and cut into
groups of :data:`GROUP_BATCHES` batches. Each group's prompts form a prefix tree
(:class:`_Node`, one node per run of tokens shared by the same prompts); the tree is
prefilled level by level, each node's key/value cache computed once on top of its
parent's, batched across the nodes of a level. Each batch of prompts then decodes with
``generate`` from the cache of its prompts' paths (all but the last prompt token, which
``generate`` computes to get the first answer token), so the decoding rules, stopping and
answer handling are those of the non-reusing path. Under float32 the answers are those
of the non-reusing path (the same arithmetic, in other matrix shapes); under bfloat16 a
few near-ties may flip, as they do between batch sizes, which is why the answer-store
key does not depend on this option, nor on the batch size.

What the template costs: a template with ``{items}`` after the task would leave only the
preamble and the task shared, with neither the views of a sample nor the prefix samples
of a session sharing their items. Reuse also happens only among prompts generated in one
call: the workflow therefore answers a run's views in the same jobs, shards them by
session and passes each job's prompts in text order (:func:`~.generate.shard_prompts`),
so the prompts that share a prefix arrive in the same call.

transformers' own continuous batching (``generate_batch``, whose paged cache shares
complete blocks of a common prefix) would do this, but on a 2-core CPU (transformers
5.24) it answered 16 real prompts at 0.11 prompts/s, against about 1 prompt/s for
batched ``generate``: this module builds the shared prefixes itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..embedded import resolve_model_path
from ..errors import ConfigError
from .base import Generation, Generator, GeneratorSettings
from .dequantise import dequantised_folder
from .settings import DTYPES, concrete_device, concrete_dtype, cpu_bf16_flags

log = logging.getLogger(__name__)

_DTYPES = {name: getattr(torch, name) for name in DTYPES}
#: Prompts sharing one prefix tree: this many batches. More prompts per tree give batches
#: of more even lengths; the tree's cache (every distinct prompt token of the group)
#: stays in memory until the group is answered.
GROUP_BATCHES = 4
#: Padded node tokens of one prefill pass (rows × widest node; a generator's
#: ``prefill_tokens``). Measured on a 2-core
#: AVX-512 CPU over 128 quickstart prompts (both views), bf16, batch 32: 512 → 2.81,
#: 1,024 → 3.02, 2,048 → 2.83, 4,096 → 2.66 prompts/s (batches of a fixed row count
#: and no token cap: 1.79 at batch 16).
PREFILL_TOKENS = 1024


def pick_device(device: str) -> torch.device:
    return torch.device(concrete_device(device))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16, AMX-BF16, Arm BF16): there,
    bf16 generation is about twice as fast as float32; elsewhere bf16 is emulated."""
    return bool(cpu_bf16_flags())


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`llm.dtype` as a torch dtype; auto = bf16 on CUDA and on CPUs with native bf16."""
    if dtype != "auto" and dtype not in _DTYPES:
        raise ConfigError("llm.dtype", f"unknown dtype {dtype!r}; use auto or {sorted(_DTYPES)}")
    return _DTYPES[concrete_dtype(dtype, str(device))]


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


@dataclass(eq=False)
class _Node:
    """A run of prompt tokens shared by the same prompts: one node of a prefix tree.

    ``start`` is the position of its first token in each of those prompts; ``cache`` its
    tokens' keys and values, ``[layers, 2, kv heads, len(tokens), head dim]``, computed on
    top of its ancestors' (filled by :meth:`TransformersGenerator._prefill`).
    """

    start: int
    tokens: list[int]
    parent: _Node | None
    children: list[_Node] = field(default_factory=list)
    cache: torch.Tensor | None = None

    def path(self) -> list[_Node]:
        """Its ancestors from the root, then itself."""
        nodes, node = [], self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]


def _common_length(a: list[int], b: list[int], start: int) -> int:
    """The length of the common prefix of ``a`` and ``b``, known to be at least ``start``."""
    end = min(len(a), len(b))
    while start < end and a[start] == b[start]:
        start += 1
    return start


def prefix_tree(sequences: list[list[int]]) -> tuple[_Node, list[_Node]]:
    """The prefix tree of distinct token sequences sorted in ascending order: its root
    (empty when the sequences share no first token) and each sequence's last node.

    In a sorted list the prefix shared by a run of neighbours is the one its first and
    last sequences share, so each node is found with one comparison; a sequence that is
    a prefix of others comes first in its run and ends at an inner node.
    """
    ends: list[_Node | None] = [None] * len(sequences)
    root = _Node(0, [], None)
    if not sequences:
        return root, []
    # (first, past-last sequence, position where they stop being known to agree, parent)
    stack: list[tuple[int, int, int, _Node | None]] = [(0, len(sequences), 0, None)]
    while stack:
        lo, hi, start, parent = stack.pop()
        end = _common_length(sequences[lo], sequences[hi - 1], start)
        node = root if parent is None else _Node(start, sequences[lo][start:end], parent)
        if parent is None:
            root.tokens = sequences[lo][:end]
        else:
            parent.children.append(node)
        if len(sequences[lo]) == end:
            ends[lo] = node
            lo += 1
        runs = []
        while lo < hi:  # split the rest by their next token
            stop = lo + 1
            while stop < hi and sequences[stop][end] == sequences[lo][end]:
                stop += 1
            runs.append((lo, stop, end, node))
            lo = stop
        stack.extend(reversed(runs))
    return root, ends  # type: ignore[return-value]


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
        why = ""
        if settings.dtype == "auto":
            flags = ", ".join(sorted(cpu_bf16_flags())) if self.device.type == "cpu" else ""
            why = (f" (llm.dtype auto: {'native bf16: ' + flags if flags else 'no native bf16'}"
                   f" on this {self.device.type})")
        log.info("loading %s (%s) on %s as %s%s", settings.model, location, self.device,
                 str(self.dtype).removeprefix("torch."), why)
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        if not tokenizer.chat_template:
            raise ConfigError("llm.model", f"{settings.model} has no chat template; "
                              "use an instruction-tuned (chat) model")
        self._attach(AutoModelForCausalLM.from_pretrained(location, dtype=self.dtype, **kwargs),
                     tokenizer)

    def _attach(self, model: Any, tokenizer: Any) -> None:
        """Answer with a loaded model and its tokenizer (the end of loading; tests attach
        small models built in memory)."""
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model
        self.model.to(self.device).eval()
        self._stop_tables: _StopAtLineBreak | None = None
        #: Prompt tokens answered, and those the model computed (fewer with prefix reuse).
        self.prompt_tokens = 0
        self.computed_tokens = 0
        self.prefill_tokens = PREFILL_TOKENS
        self.prefix_reuse = self.settings.prefix_reuse and self._plain_cache()
        if self.settings.prefix_reuse and not self.prefix_reuse:
            log.info("%s keeps another kind of key/value cache (sliding window, recurrent "
                     "state): prompts are answered without prefix reuse", self.settings.model)

    def _plain_cache(self) -> bool:
        """Whether the model keeps a plain growing key/value cache per layer, the one whose
        rows :meth:`_prefill` cuts and joins (not sliding-window or recurrent layers)."""
        from transformers.cache_utils import DynamicCache, DynamicLayer

        if self.model.config.is_encoder_decoder:
            return False
        layers = DynamicCache(config=self.model.config).layers
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

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
        return str(dequantised_folder(path, cache_dir)), {}

    def chat_texts(self, prompts: list[str]) -> list[str]:
        return [self.tokenizer.apply_chat_template(self.messages(p), add_generation_prompt=True,
                                                   tokenize=False) for p in prompts]

    @torch.inference_mode()
    def generate(self, prompts: list[str]) -> list[Generation]:
        texts = self.chat_texts(prompts)
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        self.prompt_tokens += sum(len(i) for i in ids)
        if self.prefix_reuse:
            return self._generate_sharing(ids)
        self.computed_tokens += sum(len(i) for i in ids)
        # Longest first: similar lengths share a batch (little padding), and a batch too
        # large for the device fails at the start rather than after hours.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: list[Generation | None] = [None] * len(ids)
        size = self.settings.batch_size
        for start in range(0, len(order), size):
            rows = order[start:start + size]
            for i, generation in zip(rows, self._generate_batch([ids[i] for i in rows]),
                                     strict=True):
                out[i] = generation
        return out  # type: ignore[return-value]

    def _generate_sharing(self, ids: list[list[int]]) -> list[Generation]:
        """:meth:`generate` with shared prefixes computed once (see the module's notes)."""
        distinct = sorted({tuple(i) for i in ids})
        sequences = [list(d) for d in distinct]
        answers: dict[tuple[int, ...], Generation] = {}
        size = self.settings.batch_size
        group = size * GROUP_BATCHES
        for first in range(0, len(sequences), group):
            members = sequences[first:first + group]
            root, ends = prefix_tree(members)
            self._prefill_tree(root)
            # Longest first within the group, as in the non-reusing path.
            order = sorted(range(len(members)), key=lambda i: -len(members[i]))
            for start in range(0, len(order), size):
                rows = order[start:start + size]
                cache = self._path_cache([(ends[i], len(members[i]) - 1) for i in rows])
                for i, generation in zip(rows, self._generate_batch(
                        [members[i] for i in rows], cache), strict=True):
                    answers[distinct[first + i]] = generation
            del root, ends  # the group's cache
        return [answers[tuple(i)] for i in ids]

    def _prefill_tree(self, root: _Node) -> None:
        """Fill the cache of every node of a prefix tree, parents before children; the
        nodes of one depth are computed together, shortest first, in batches of at most
        ``batch_size`` nodes and ``prefill_tokens`` padded tokens: nodes range from
        a few tokens (a view's qualifier) to hundreds (a session's items), and a fixed
        row count would pad the short ones to the long ones' width."""
        level = [root] if root.tokens else list(root.children)
        size = self.settings.batch_size
        while level:
            level.sort(key=lambda n: (len(n.tokens), n.start))
            batch: list[_Node] = []
            for node in level:  # widths only grow: a node's width is the batch's
                if batch and (len(batch) == size
                              or (len(batch) + 1) * len(node.tokens) > self.prefill_tokens):
                    self._prefill(batch)
                    batch = []
                batch.append(node)
            self._prefill(batch)
            level = [child for node in level for child in node.children]

    def _prefill(self, nodes: list[_Node]) -> None:
        """Compute the keys and values of ``nodes``' tokens on top of their parents' cache.

        Row r of the batch is its parent path's cache, left-padded to the longest path,
        then its own tokens, left-padded to the longest node: both paddings are masked
        out, and position ids give each token its place in its prompt, so every real
        token sees what it sees in the full prompt. The pad columns before the node's
        tokens always follow the real root tokens, so no query row is fully masked.
        """
        past = max(n.start for n in nodes)
        width = max(len(n.tokens) for n in nodes)
        rows = len(nodes)
        input_ids = torch.full((rows, width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((rows, past + width), dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        for r, node in enumerate(nodes):
            n = len(node.tokens)
            input_ids[r, width - n:] = torch.tensor(node.tokens)
            attention[r, past - node.start:past] = 1
            attention[r, past + width - n:] = 1
            positions[r, :] = node.start  # pads: any position, they are masked out
            positions[r, width - n:] = torch.arange(node.start, node.start + n)
        cache = self._path_cache([(n.parent, n.start) for n in nodes]) if past else None
        out = self.model(input_ids=input_ids.to(self.device),
                         attention_mask=attention.to(self.device),
                         position_ids=positions.to(self.device), cache=cache, use_cache=True,
                         logits_to_keep=1)
        layers = out.cache.layers
        keys = torch.stack([layer.keys[:, :, past:] for layer in layers])
        values = torch.stack([layer.values[:, :, past:] for layer in layers])
        for r, node in enumerate(nodes):
            n = len(node.tokens)
            node.cache = torch.stack((keys[:, r, :, width - n:], values[:, r, :, width - n:]),
                                     dim=1).contiguous()
        self.computed_tokens += sum(len(n.tokens) for n in nodes)

    def _path_cache(self, rows: list[tuple[_Node | None, int]]) -> Any:
        """A DynamicCache holding, for each (node, length), the first ``length`` tokens of
        the path to ``node``, left-padded to the longest (masked by the caller)."""
        from transformers.cache_utils import DynamicCache

        width = max(length for _, length in rows)
        parts = [[n.cache for n in node.path()] if node is not None else [] for node, _ in rows]
        sample = next(p[0] for p in parts if p)
        layers, _, heads, _, dim = sample.shape
        joined = torch.zeros((layers, 2, len(rows), heads, width, dim), dtype=sample.dtype,
                             device=sample.device)
        for r, ((_, length), caches) in enumerate(zip(rows, parts, strict=True)):
            if length:
                path = torch.cat(caches, dim=3) if len(caches) > 1 else caches[0]
                joined[:, :, r, :, width - length:] = path[:, :, :, :length]
        return DynamicCache([(joined[i, 0], joined[i, 1]) for i in range(layers)],
                            config=self.model.config)

    def _generate_batch(self, rows: list[list[int]], cache: Any = None) -> list[Generation]:
        """Greedy answers of a batch of tokenised prompts, left-padded; ``cache``, when
        given, holds each row's prompt but its last token, left-padded alike."""
        from transformers import StoppingCriteriaList

        decoding = self.settings.decoding
        batch = self.tokenizer.pad({"input_ids": rows}, padding=True,
                                   return_tensors="pt").to(self.device)
        width = batch["input_ids"].shape[1]
        if cache is None:
            criteria_cache: dict[str, Any] = {}
        else:
            criteria_cache = {"cache": cache}
            self.computed_tokens += len(rows)  # each row's last prompt token
        criteria = StoppingCriteriaList()
        if decoding.stop_at_newline:
            if self._stop_tables is None:
                self._stop_tables = _StopAtLineBreak(self.tokenizer, width, self.device)
            self._stop_tables.seen_text = None
            criteria.append(self._stop_tables)
        generated = self.model.generate(
            **batch, max_new_tokens=decoding.max_new_tokens, do_sample=False,
            temperature=None, top_p=None, top_k=None, stopping_criteria=criteria,
            pad_token_id=self.tokenizer.pad_token_id, **criteria_cache)
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
