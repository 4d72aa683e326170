"""llm4sbr_core.llm.dequantise: the embedded GGUF as a float32 model folder, written once
into the cache, where the transformers backend also looks for it."""

from __future__ import annotations

import json
import os

import pytest

from llm4sbr_core.embedded import resolve_model_path
from llm4sbr_core.errors import ConfigError
from llm4sbr_core.llm.dequantise import dequantised_folder, dequantised_location, main
from llm4sbr_core.llm.identity import weights_digest

EMBEDDED = "embedded:smollm2-135m-instruct"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache_dir holding the dequantised embedded model (converted once, ~10 s)."""
    root = tmp_path_factory.mktemp("cache")
    dequantised_folder(EMBEDDED, root)
    return root


def test_the_folder_is_a_complete_float32_model_named_by_the_weights(cache):
    gguf = resolve_model_path(EMBEDDED)
    folder = dequantised_folder(EMBEDDED, cache)
    assert folder == cache / "models" / weights_digest(gguf) == dequantised_location(gguf, cache)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
            "generation_config.json"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]  # what a server needs
    assert config["dtype"] == "float32" and "quantization_config" not in config
    # readable by others (a shared cache); no temporary folder left behind
    assert all(os.stat(p).st_mode & 0o444 == 0o444 for p in folder.iterdir())
    assert [p.name for p in (cache / "models").iterdir()] == [folder.name]


def test_a_second_call_reuses_the_folder(cache):
    folder = dequantised_folder(EMBEDDED, cache)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert dequantised_folder(resolve_model_path(EMBEDDED), cache) == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_the_transformers_backend_loads_the_same_folder(cache):
    """One copy per cache, whichever of the two wrote it first."""
    from llm4sbr_core.llm.transformers_backend import TransformersGenerator

    location, kwargs = TransformersGenerator._locate(resolve_model_path(EMBEDDED), str(cache))
    assert location == str(dequantised_folder(EMBEDDED, cache)) and kwargs == {}


def test_the_command_prints_the_folder(cache, capsys):
    main([EMBEDDED, "--cache-dir", str(cache)])
    assert capsys.readouterr().out.strip() == str(dequantised_folder(EMBEDDED, cache))


@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-7B-Instruct", "embedded:all-minilm-l6-v2",
                                   "embedded:nope"])
def test_only_a_local_gguf_is_converted(model, tmp_path):
    with pytest.raises(ConfigError, match="llm.model"):
        dequantised_folder(model, tmp_path)
    assert not (tmp_path / "models").exists()


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(ConfigError, match="not a local .gguf"):
        dequantised_folder(weights, tmp_path / "cache")
    with pytest.raises(SystemExit, match="error: config key 'model'"):
        main([str(weights), "--cache-dir", str(tmp_path / "cache")])
