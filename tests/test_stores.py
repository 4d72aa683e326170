"""The answer and embedding stores when things go wrong: unreadable chunks are moved aside
and only their entries are made again; unusable server responses are kept but asked for
again; two writers of one shard take turns."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from test_llm_generate import llm_block

from llm4sbr_core.llm.base import Generation, Generator
from llm4sbr_core.llm.generate import generate_shard, generator_settings, shard_lock_name
from llm4sbr_core.llm.store import QUARANTINE, AnswerStore
from llm4sbr_core.prompts import prompt_hash
from llm4sbr_core.text import encoder as enc
from llm4sbr_core.text.encoder import EmbeddingStore, EncoderSettings, encode_cached


class Recorder(Generator):
    """Answers "A:<prompt>"; records prompts; optionally waits for ``gate`` first and
    answers prompts in ``broken`` with an unusable response."""

    def __init__(self, settings, calls, gate=None, started=None, broken=()):
        self.settings, self.calls, self.gate, self.started = settings, calls, gate, started
        self.broken = set(broken)

    def generate(self, prompts):
        if self.started is not None:
            self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        self.calls.append(list(prompts))
        return [Generation("", error="content is dict") if p in self.broken
                else Generation(f"A:{p}", 3, 2) for p in prompts]


@pytest.fixture
def setup(tmp_path):
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(range(50)))
    texts = [f"Item {i}" for i in range(12)]
    prompts = pd.DataFrame({"sample_id": range(12), "split": "test", "prompt": texts,
                            "prompt_hash": [prompt_hash(t) for t in texts]})
    path = tmp_path / "prompts.parquet"
    prompts.to_parquet(path)
    return generator_settings(llm_block(model=str(model))), path


def shard(tmp_path, setup, calls, name="a", **recorder):
    settings, prompts = setup
    out = tmp_path / f"out-{name}.parquet"
    return generate_shard(prompts, 0, 1, settings, tmp_path / "cache", out,
                          out.with_suffix(".json"), chunk_size=4,
                          load_generator=lambda s, threads=None: Recorder(s, calls,
                                                                          **recorder))


def store_of(tmp_path) -> AnswerStore:
    (folder,) = (tmp_path / "cache" / "answers").iterdir()
    return AnswerStore(tmp_path / "cache", folder.name)


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize("damage", ["garbage", "cut", "empty", "columns"])
def test_an_unreadable_answer_chunk_is_quarantined_and_only_its_prompts_redone(
        tmp_path, setup, caplog, damage):
    calls: list = []
    shard(tmp_path, setup, calls)  # 12 prompts in 3 chunks of 4
    store = store_of(tmp_path)
    chunks = store.chunk_files()
    assert len(chunks) == 3
    bad = chunks[1]
    lost = set(pd.read_parquet(bad)["prompt_hash"])
    if damage == "garbage":
        bad.write_bytes(b"this is not parquet at all")
    elif damage == "cut":
        bad.write_bytes(bad.read_bytes()[:-40])
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        pd.read_parquet(bad).drop(columns=["answer_raw"]).to_parquet(bad)
    caplog.set_level(logging.WARNING)
    calls.clear()
    stats = shard(tmp_path, setup, calls, name="b")
    redone = [p for c in calls for p in c]
    assert len(redone) == 4 and {prompt_hash(p) for p in redone} == lost
    assert stats["reused"] == 8 and stats["generated"] == 4
    moved = store.path / QUARANTINE / bad.name
    assert moved.exists() and not bad.exists()
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING
                   and str(bad) in r.getMessage())
    assert str(moved) in warning.getMessage() and "moved aside" in warning.getMessage()
    assert len(pd.read_parquet(tmp_path / "out-b.parquet")) == 12
    assert store.describe()["quarantined"] == 1


def test_a_chunk_that_cannot_be_moved_is_skipped(tmp_path, caplog, monkeypatch):
    store = AnswerStore(tmp_path, "k")
    (store.path / "chunk-0.parquet").write_bytes(b"junk")

    def refuse(*args):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(os, "replace", refuse)
    assert store.load().empty
    assert "cannot be moved aside" in caplog.text


def test_unusable_answers_are_kept_flagged_and_asked_again(tmp_path, setup):
    calls: list = []
    stats = shard(tmp_path, setup, calls, broken={"Item 3", "Item 7"})
    assert stats["generated"] == 12 and stats["invalid"] == 2
    table = pd.read_parquet(tmp_path / "out-a.parquet")
    assert table["error"].notna().sum() == 2 and len(table) == 12
    calls.clear()
    stats = shard(tmp_path, setup, calls, name="b")  # the server works again
    assert sorted(p for c in calls for p in c) == ["Item 3", "Item 7"]
    assert stats["reused"] == 10 and stats["invalid"] == 0
    answers = store_of(tmp_path).load()
    assert len(answers) == 12 and answers["error"].isna().all()  # usable answers win
    assert answers.set_index("prompt_hash").loc[prompt_hash("Item 3"), "answer_raw"] == \
        "A:Item 3"


def test_chunks_written_before_the_error_column_still_load(tmp_path):
    store = AnswerStore(tmp_path, "k")
    pd.DataFrame({"prompt_hash": ["a"], "answer_raw": ["x"],
                  "tokens_in": pd.array([1], dtype="Int64"),
                  "tokens_out": pd.array([1], dtype="Int64"),
                  "hit_token_limit": [False]}).to_parquet(store.path / "chunk-old.parquet")
    loaded = store.load()
    assert loaded["prompt_hash"].tolist() == ["a"] and loaded["error"].isna().all()
    assert store.answered() == {"a"}


# --------------------------------------------------------------------------- locks


def test_a_second_writer_of_a_shard_waits_then_skips_what_was_answered(tmp_path, setup,
                                                                       caplog):
    """kill -9 of Snakemake leaves its job running; the rerun's job of the same shard
    waits for it and then generates nothing already answered."""
    caplog.set_level(logging.INFO)
    first_calls: list = []
    second_calls: list = []
    gate, started = threading.Event(), threading.Event()
    results = {}

    def run(name, calls, **recorder):
        results[name] = shard(tmp_path, setup, calls, name=name, **recorder)

    first = threading.Thread(target=run, args=("first", first_calls),
                             kwargs={"gate": gate, "started": started})
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=run, args=("second", second_calls))
    second.start()
    deadline = time.monotonic() + 10
    while "waiting for it" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "waiting for it" in caplog.text and "pid" in caplog.text
    assert second.is_alive()
    gate.set()
    first.join(10)
    second.join(10)
    assert sum(len(c) for c in first_calls) == 12
    assert second_calls == [] and results["second"]["generated"] == 0
    assert results["second"]["reused"] == 12


def test_the_lock_dies_with_its_holder(tmp_path):
    """A killed holder (kill -9) never leaves a stale lock behind."""
    store = AnswerStore(tmp_path, "k")
    name = shard_lock_name(["a", "b"])
    path = store.path / "locks" / f"{name}.lock"
    path.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"f = open({str(path)!r}, 'a+')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('locked', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        t0 = time.monotonic()
        with store.lock(name):
            assert f"pid {os.getpid()}" in path.read_text()
        assert time.monotonic() - t0 < 2
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    assert shard_lock_name(["b", "a", "a"]) == name != shard_lock_name(["a"])


# --------------------------------------------------------------------------- embeddings


class FakeEncoder:
    """Stands in for the text encoder: a vector from each text's length."""

    calls: list[list[str]] = []

    def __init__(self, settings, threads=None):
        self.truncated = 0

    def encode(self, texts):
        FakeEncoder.calls.append(list(texts))
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)


@pytest.mark.parametrize("damage", ["garbage", "cut", "shape"])
def test_an_unreadable_embedding_chunk_is_quarantined_and_only_its_texts_redone(
        tmp_path, monkeypatch, caplog, damage):
    monkeypatch.setattr(enc, "TextEncoder", FakeEncoder)
    FakeEncoder.calls = []
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text("{}")
    settings = EncoderSettings(model=str(tmp_path / "enc"))
    encode_cached(["Heat", "Casino"], settings, tmp_path / "c")
    encode_cached(["Babe", "Se7en!"], settings, tmp_path / "c")
    store = EmbeddingStore(tmp_path / "c", settings)
    chunks = sorted(store.path.glob("chunk-*.npz"))
    assert len(chunks) == 2
    (bad,) = [c for c in chunks if enc.text_hash("Babe") in np.load(c)["hashes"]]
    with np.load(bad) as data:
        hashes = data["hashes"]
    if damage == "garbage":
        bad.write_bytes(b"not a zip file")
    elif damage == "cut":
        bad.write_bytes(bad.read_bytes()[:50])
    else:
        with open(bad, "wb") as f:
            np.savez(f, hashes=hashes, vectors=np.zeros((5, 3), dtype=np.float32))
    caplog.set_level(logging.WARNING)
    FakeEncoder.calls = []
    vectors, stats = encode_cached(["Heat", "Casino", "Babe", "Se7en!"], settings,
                                   tmp_path / "c")
    assert FakeEncoder.calls == [["Babe", "Se7en!"]]
    assert stats["reused"] == 2 and stats["encoded"] == 2
    np.testing.assert_array_equal(vectors[:, 0], [4, 6, 4, 6])
    moved = store.path / QUARANTINE / bad.name
    assert moved.exists() and not bad.exists()
    assert str(bad) in caplog.text and str(moved) in caplog.text
