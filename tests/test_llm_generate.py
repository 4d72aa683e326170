"""Sharded, cached, resumable generation with a scripted stand-in for the model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llm4sbr_core.config import load_schema
from llm4sbr_core.errors import Llm4sbrError
from llm4sbr_core.llm.base import Generation, Generator, GeneratorSettings
from llm4sbr_core.llm.generate import (
    gather_answers,
    generate_shard,
    generator_settings,
    llm_name,
    model_identity,
    shard_prompts,
    store_key,
)
from llm4sbr_core.llm.store import AnswerStore
from llm4sbr_core.prompts import prompt_hash


class ScriptedGenerator(Generator):
    """Answers 'The user is interested in "<first item line>"'; can fail after n calls."""

    def __init__(self, settings, log, fail_after=None):
        self.settings, self.log, self.fail_after = settings, log, fail_after

    def generate(self, prompts):
        if self.fail_after is not None and len(self.log) >= self.fail_after:
            raise RuntimeError("killed")
        self.log.append(list(prompts))
        return [Generation(f'The user is interested in "{p.splitlines()[0]}"', 10, 5)
                for p in prompts]


def llm_block(**changes):
    props = load_schema()["properties"]["llm"]["properties"]
    block = {k: v["default"] for k, v in props.items() if "default" in v}
    block.update(changes)
    return block


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + bytes(range(200)))
    return path


@pytest.fixture
def prompts_file(tmp_path):
    texts = [f"Item {i % 37}\nmore" for i in range(60)]  # 37 distinct prompts, 60 samples
    df = pd.DataFrame({"sample_id": range(60), "split": ["train"] * 40 + ["test"] * 20,
                       "prompt": texts, "prompt_hash": [prompt_hash(t) for t in texts]})
    path = tmp_path / "prompts.parquet"
    df.to_parquet(path)
    return path


def run_shards(tmp_path, prompts_file, settings, shards, calls, fail_after=None, chunk=5):
    def load(s, threads=None):
        return ScriptedGenerator(s, calls, fail_after)
    out = []
    for shard in range(shards):
        answers = tmp_path / f"out/{shards}/{shard}.parquet"
        stats = generate_shard(prompts_file, shard, shards, settings, tmp_path / "cache",
                               answers, answers.with_suffix(".json"), chunk_size=chunk,
                               load_generator=load)
        out.append((answers, stats))
    return out


def test_shards_partition_the_distinct_prompts(tmp_path, prompts_file):
    prompts = pd.read_parquet(prompts_file)
    parts = [set(shard_prompts(prompts, i, 3)["prompt_hash"]) for i in range(3)]
    assert set().union(*parts) == set(prompts["prompt_hash"])
    assert sum(map(len, parts)) == 37


def test_a_sessions_views_and_prefixes_share_a_shard():
    """Two views of prefix samples: every prompt of a session lands in one shard, each
    distinct prompt in exactly one, and a shard's prompts run in text order."""
    rows = []
    for session in range(40):
        for length in (1, 2, 3):  # the session's prefix samples
            items = "\n".join(f"{session}-{k}" for k in range(length))
            for view in ("short", "long"):
                rows.append({"sample_id": 3 * session + length - 1, "session_id": session,
                             "prompt": f"History:\n{items}\nGuess ({view})"})
    rows.append({"sample_id": 999, "session_id": 7, "prompt": rows[0]["prompt"]})  # repeat
    prompts = pd.DataFrame(rows)
    prompts["prompt_hash"] = prompts["prompt"].map(prompt_hash)
    parts = [shard_prompts(prompts, i, 3) for i in range(3)]
    owner = {h: i for i, part in enumerate(parts) for h in part["prompt_hash"]}
    assert sum(map(len, parts)) == len(owner) == prompts["prompt_hash"].nunique() == 240
    alone = prompts[prompts["sample_id"] != 999]
    assert alone.groupby("session_id")["prompt_hash"].agg(
        lambda h: len({owner[x] for x in h})).drop(0).eq(1).all()
    # a prompt asked in two sessions: answered once, in the smaller of their shards
    shared = rows[0]["prompt"]
    assert owner[prompt_hash(shared)] == min(owner[prompt_hash(rows[k]["prompt"])]
                                             for k in (1, 7 * 6))
    assert all(part["prompt"].is_monotonic_increasing for part in parts)
    assert min(map(len, parts)) > 0
    # the same shards whatever the row order
    shuffled = prompts.sample(frac=1, random_state=1)
    assert all(set(shard_prompts(shuffled, i, 3)["prompt_hash"]) == set(parts[i]["prompt_hash"])
               for i in range(3))


def test_generate_then_gather(tmp_path, prompts_file, model_file):
    settings = generator_settings(llm_block(model=str(model_file)))
    calls: list = []
    shards = run_shards(tmp_path, prompts_file, settings, 3, calls)
    assert sum(len(c) for c in calls) == 37  # identical prompts answered once
    assert sum(s["generated"] for _, s in shards) == 37
    assert all(s["reused"] == 0 and s["tokens_out"] == 5 * s["generated"] for _, s in shards)
    out = tmp_path / "answers.parquet"
    stats = gather_answers(prompts_file, [p for p, _ in shards], out, tmp_path / "a.json")
    table = pd.read_parquet(out)
    assert table["sample_id"].tolist() == list(range(60))
    assert table["answer"].iloc[38] == "Item 1" and table["flag"].eq("ok").all()
    assert stats["flags"] == {"ok": 60, "empty": 0, "echo": 0, "truncated": 0}
    assert json.loads((tmp_path / "a.json").read_text())["samples"] == 60


def test_reruns_reuse_the_store(tmp_path, prompts_file, model_file):
    settings = generator_settings(llm_block(model=str(model_file)))
    calls: list = []
    run_shards(tmp_path, prompts_file, settings, 3, calls)
    calls.clear()
    # same shards again (Snakemake re-ran the jobs after a code edit): nothing generated,
    # and the model is not even loaded
    def no_load(*a, **k):
        raise AssertionError("model loaded although every answer is stored")
    stats = generate_shard(prompts_file, 0, 3, settings, tmp_path / "cache",
                           tmp_path / "x.parquet", tmp_path / "x.json", load_generator=no_load)
    assert stats["generated"] == 0 and stats["reused"] == stats["prompts"] > 0
    # another shard count: still nothing new
    shards = run_shards(tmp_path, prompts_file, settings, 2, calls)
    assert calls == [] and sum(s["reused"] for _, s in shards) == 37
    # new samples: only their prompts are generated
    df = pd.read_parquet(prompts_file)
    extra = pd.DataFrame({"sample_id": [60, 61], "split": "test",
                          "prompt": ["New A", "Item 3\nmore"]})
    extra["prompt_hash"] = extra["prompt"].map(prompt_hash)
    pd.concat([df, extra]).to_parquet(prompts_file)
    run_shards(tmp_path, prompts_file, settings, 2, calls)
    assert [p for c in calls for p in c] == ["New A"]


def test_other_decoding_settings_or_weights_mean_new_answers(tmp_path, prompts_file,
                                                             model_file):
    base = generator_settings(llm_block(model=str(model_file)))
    assert store_key(base) == store_key(generator_settings(llm_block(model=str(model_file))))
    # batch size and shard count do not change answers; decoding does
    assert store_key(base) == store_key(generator_settings(
        llm_block(model=str(model_file), batch_size=3, shards=9)))
    longer = generator_settings(llm_block(model=str(model_file), max_new_tokens=64))
    assert store_key(longer) != store_key(base)
    before = model_identity(base)["weights"]
    model_file.write_bytes(model_file.read_bytes()[:-1] + b"\xff")
    assert model_identity(base)["weights"] != before


def test_a_killed_shard_redoes_at_most_one_chunk(tmp_path, prompts_file, model_file):
    settings = generator_settings(llm_block(model=str(model_file)))
    calls: list = []
    with pytest.raises(RuntimeError, match="killed"):
        run_shards(tmp_path, prompts_file, settings, 1, calls, fail_after=3, chunk=5)
    done = {p for c in calls for p in c}
    assert len(done) == 15 and not (tmp_path / "out/1/0.parquet").exists()
    calls.clear()
    run_shards(tmp_path, prompts_file, settings, 1, calls, chunk=5)
    redone = [p for c in calls for p in c]
    assert len(redone) == 37 - 15 and not done & set(redone)


def test_gather_refuses_shards_that_miss_samples(tmp_path, prompts_file, model_file):
    settings = generator_settings(llm_block(model=str(model_file)))
    shards = run_shards(tmp_path, prompts_file, settings, 3, [])
    with pytest.raises(Llm4sbrError, match="no answer in the shards"):
        gather_answers(prompts_file, [shards[0][0], shards[1][0]], tmp_path / "a.parquet",
                       tmp_path / "a.json")
    assert not (tmp_path / "a.parquet").exists()


def test_flags_are_counted_and_kept(tmp_path, prompts_file, model_file, caplog):
    settings = generator_settings(llm_block(model=str(model_file)))
    shards = run_shards(tmp_path, prompts_file, settings, 1, [])
    table = pd.read_parquet(shards[0][0])
    table.loc[0, "answer_raw"] = ""
    table.loc[1, "answer_raw"] = "A user has interacted with the following items"
    table.to_parquet(shards[0][0])
    stats = gather_answers(prompts_file, [shards[0][0]], tmp_path / "a.parquet",
                           tmp_path / "a.json")
    assert stats["flags"]["empty"] >= 1 and stats["flags"]["echo"] >= 1
    assert len(pd.read_parquet(tmp_path / "a.parquet")) == 60
    assert "flagged 'empty'" in caplog.text


def test_store_survives_concurrent_writers(tmp_path):
    store = AnswerStore(tmp_path, "k", {"model": "m"})
    chunk = pd.DataFrame({"prompt_hash": ["a", "b"], "answer_raw": ["x", "y"],
                          "tokens_in": pd.array([1, 2], dtype="Int64"),
                          "tokens_out": pd.array([1, None], dtype="Int64"),
                          "hit_token_limit": [False, True]})
    store.add(chunk)
    store.add(chunk.iloc[1:])  # a second job answered "b" too
    loaded = store.load()
    assert sorted(loaded["prompt_hash"]) == ["a", "b"] and len(store.chunk_files()) == 2
    assert not list(store.path.glob(".*tmp"))
    assert json.loads((store.path / "identity.json").read_text()) == {"model": "m"}


def test_llm_name_and_settings():
    assert llm_name(llm_block()) == "smollm2-135m-instruct"
    assert llm_name(llm_block(name="qwen7b", model="/m/Qwen2.5-7B-Instruct")) == "qwen7b"
    s = generator_settings(llm_block(backend="openai", model="qwen-plus",
                                     openai={"base_url": "http://u:pw@h:8000/v1?k=1"}))
    assert isinstance(s, GeneratorSettings) and s.options["base_url"].startswith("http")
    assert model_identity(s) == {"backend": "openai", "model": "qwen-plus",
                                 "base_url": "http://h:8000/v1"}


def test_unusable_responses_are_flagged_empty_and_counted(tmp_path, prompts_file, model_file,
                                                          caplog):
    """A server response without a usable answer costs one flagged answer, not the chunk."""
    class HalfBroken(ScriptedGenerator):
        def generate(self, prompts):
            out = super().generate(prompts)
            return [Generation("", error="content is dict") if p.startswith("Item 1")
                    else g for p, g in zip(prompts, out, strict=True)]

    settings = generator_settings(llm_block(model=str(model_file)))
    answers = tmp_path / "s.parquet"
    stats = generate_shard(prompts_file, 0, 1, settings, tmp_path / "cache", answers,
                           tmp_path / "s.json", chunk_size=5,
                           load_generator=lambda s, threads=None: HalfBroken(s, []))
    broken = 11  # "Item 1", "Item 10" … "Item 19"
    assert stats["generated"] == 37 and stats["invalid"] == broken
    gathered = gather_answers(prompts_file, [answers], tmp_path / "a.parquet",
                              tmp_path / "a.json")
    table = pd.read_parquet(tmp_path / "a.parquet")
    assert len(table) == 60 and gathered["invalid_responses"] > 0
    assert (table.loc[table["answer_raw"] == "", "flag"] == "empty").all()
    assert gathered["flags"]["empty"] == gathered["invalid_responses"]
    assert "server response was unusable" in caplog.text
