"""Fault injection: what a killed workflow, a full disk, two workflows on one cache and a
misbehaving server leave behind (docs/reliability.md has the table).

The workflows run a tiny dataset (10 users, 8 movies, 15 prompts) through every stage:
data, the embedded encoder (all-MiniLM-L6-v2), localization, SR-GNN training. The LLM
is the loopback stand-in of an OpenAI-compatible server (tests/test_llm_backends.py's
:class:`FakeServer`), answering each prompt with a title picked by the prompt's hash, so
generation is deterministic and fast on a CPU and every request is counted.

Kills are placed with the fault-injection hook of :mod:`llm4sbr_core.io`
(``LLM4SBR_PAUSE_BEFORE_COMMIT``): the job stops with an artifact written to its
temporary file but not yet renamed into place, the worst moment, and the test sends
``SIGKILL`` to the whole process group of ``snakemake`` (Snakemake and every job).
The two workflow tests are marked ``workflow``; the disk and server faults run in
seconds without one.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_llm_backends import FakeServer
from tiny_dataset import TITLES, write_tiny_dataset

from conftest import REPO
from llm4sbr_core.errors import GenerationError, Llm4sbrError
from llm4sbr_core.io import PAUSE_ENV, DiskFullError
from llm4sbr_core.llm.generate import generate_shard, shard_lock_name
from llm4sbr_core.llm.settings import DecodingSettings, GeneratorSettings
from llm4sbr_core.llm.store import AnswerStore
from llm4sbr_core.train.outputs import without_timing

LLM = "served-model"
ENCODER = "all-minilm-l6-v2"
RUN = "results/tiny/runs/srgnn/normal/seed0"
ANSWERS = f"results/tiny/llm/{LLM}/normal.parquet"
ANSWER_VECTORS = f"results/tiny/text/{ENCODER}/{LLM}/normal.npy"
ITEM_VECTORS = f"results/tiny/text/{ENCODER}/items.npy"
INTENTS = f"results/tiny/intents/{LLM}/{ENCODER}/r5/normal.npy"
#: Chunks of 3 prompts: 15 prompts make 5 answer chunks.
CHUNK = 3


# --------------------------------------------------------------------------- helpers


def title_for(request: dict) -> tuple[int, dict, dict]:
    """The stand-in's reply: a title chosen by the prompt's hash (deterministic), worded
    unlike the item texts (so answers and items are different texts to encode)."""
    prompt = request["body"]["messages"][-1]["content"]
    title = TITLES[int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(TITLES)]
    answer = f"A film like {title}"
    return (200, {}, {"choices": [{"message": {"role": "assistant", "content": answer},
                                   "finish_reason": "stop"}],
                      "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 4}})


def stand_in(delay: float = 0.0) -> FakeServer:
    return FakeServer([title_for] * 10_000, delay=delay)


def prompts_asked(server: FakeServer) -> list[str]:
    return [r["body"]["messages"][-1]["content"] for r in server.requests]


def write_workflow(root: Path, server_url: str, cache: Path) -> Path:
    """A tiny dataset and its config (the stand-in server as the LLM) under ``root``."""
    return write_tiny_dataset(
        root, cache_dir=cache, views=["normal"],
        llm={"backend": "openai", "model": "served-model", "shards": 1, "batch_size": 4,
             "chunk_size": CHUNK, "max_new_tokens": 8,
             "openai": {"base_url": server_url, "api_key_env": "LLM4SBR_TEST_NO_KEY",
                        "concurrency": 1, "backoff_s": 0.01, "timeout_s": 10}},
        train={"backbones": ["srgnn"], "variants": ["normal"], "seeds": [0], "epochs": 3,
               "dim": 16, "llmseqsim": [], "patience": 5, "batch_size": 8})


def snakemake_cmd(config: Path, *args: str) -> list[str]:
    # 4 cores: a job paused at the hook never keeps the others waiting (each takes 2)
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "4",
            "--configfile", str(REPO / "config.yaml"), str(config), *args]


def start(root: Path, config: Path, *targets: str, pause: str | None = None,
          rerun: bool = False) -> subprocess.Popen:
    """``snakemake`` in its own process group (so the group can be killed as a whole).
    A rerun after a kill does what the README says: unlock (what ``snakemake --unlock``
    does: remove the killed Snakemake's lock files), then the same command with
    ``--rerun-incomplete``."""
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    if rerun:
        assert list((root / ".snakemake/locks").iterdir())  # the killed run's lock is left
        shutil.rmtree(root / ".snakemake/locks")
    if pause:
        env[PAUSE_ENV] = pause
    output = root / f"snakemake-{time.monotonic_ns()}.out"
    with open(output, "w") as out:
        proc = subprocess.Popen(
            snakemake_cmd(config, *(["--rerun-incomplete"] if rerun else []), "--", *targets),
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    proc.output = output  # type: ignore[attr-defined]
    return proc


def output_of(proc: subprocess.Popen) -> str:
    return proc.output.read_text(errors="replace")[-4000:]  # type: ignore[attr-defined]


def finish(proc: subprocess.Popen, timeout: float = 400) -> None:
    """Wait for ``proc``; fail with the end of its output if it failed."""
    code = proc.wait(timeout=timeout)
    if code != 0:
        raise AssertionError(f"snakemake exited {code}:\n{output_of(proc)}")


def kill_when_paused(proc: subprocess.Popen, log: Path, timeout: float = 300,
                     then_wait_for: Path | None = None) -> None:
    """Wait until the job writing ``log`` pauses at the hook (and ``then_wait_for``
    exists: another job finished meanwhile), then SIGKILL the group."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and "(fault injection)" in log.read_text(errors="replace") and \
                (then_wait_for is None or then_wait_for.exists()):
            break
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended ({proc.returncode}) before the pause:\n"
                                 f"{output_of(proc)}")
        time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"no pause in {log} within {timeout} s")
    group = proc.pid
    os.killpg(group, signal.SIGKILL)
    proc.wait(timeout=30)
    # Nothing of the group lives on (a paused job would hold its locks for minutes).
    deadline = time.monotonic() + 30
    while _group_members(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_members(group), f"processes of group {group} outlived SIGKILL"


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                found.append(int(entry.name))
    return found


def answer_store(cache: Path) -> Path:
    (store,) = (cache / "answers").iterdir()
    return store


def store_rows(store: Path, pattern: str) -> tuple[list[str], int]:
    """(every key in the store's chunks, in order; number of chunks)."""
    keys: list[str] = []
    chunks = sorted(store.glob(pattern))
    for chunk in chunks:
        if chunk.suffix == ".parquet":
            keys += pd.read_parquet(chunk)["prompt_hash"].tolist()
        else:
            with np.load(chunk) as data:
                keys += data["hashes"].astype(str).tolist()
    return keys, len(chunks)


def assert_store_consistent(cache: Path, expected_answers: int) -> None:
    """Every answer once, in readable chunks, nothing quarantined, no temporary file."""
    store = answer_store(cache)
    keys, _ = store_rows(store, "chunk-*.parquet")
    assert len(keys) == len(set(keys)) == expected_answers, (len(keys), len(set(keys)))
    assert not list(store.glob("quarantine/*"))
    frame = AnswerStore(cache, store.name).load()
    assert frame["error"].isna().all() and len(frame) == expected_answers
    for folder in (cache / "embeddings").iterdir():
        hashes, _ = store_rows(folder, "chunk-*.npz")
        assert len(hashes) == len(set(hashes)), f"duplicate texts in {folder}"
        assert not list(folder.glob("quarantine/*"))


def outputs_of(root: Path) -> dict[str, object]:
    out: dict[str, object] = {
        "answers": pd.read_parquet(root / ANSWERS),
        "answer_vectors": np.load(root / ANSWER_VECTORS),
        "item_vectors": np.load(root / ITEM_VECTORS),
    }
    if (root / RUN / "metrics.json").exists():
        out["intents"] = np.load(root / INTENTS)
        out["metrics"] = json.loads((root / RUN / "metrics.json").read_text())
    return out


def assert_same_outputs(ours: dict, reference: dict) -> None:
    pd.testing.assert_frame_equal(ours["answers"], reference["answers"])
    for name in ("answer_vectors", "item_vectors", "intents"):
        if name in ours and name in reference:
            np.testing.assert_array_equal(ours[name], reference[name], err_msg=name)
    if "metrics" in ours:
        assert without_timing(ours["metrics"]) == without_timing(reference["metrics"])


# --------------------------------------------------------------------------- workflows


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Two uninterrupted workflows on one cache_dir at the same time: A to the trained run,
    B to the answer and item vectors. A pauses 20 s before committing its first answer
    chunk, holding its shard's lock, so that B's generation job meets it."""
    base = tmp_path_factory.mktemp("shared")
    cache = base / "cache"
    server = stand_in(delay=0.05)
    try:
        config_a = write_workflow(base / "a", server.url, cache)
        config_b = write_workflow(base / "b", server.url, cache)
        a = start(base / "a", config_a, f"{RUN}/metrics.json",
                  pause="*/answers/*/chunk-*.parquet@1:20")
        b = start(base / "b", config_b, ANSWER_VECTORS, ITEM_VECTORS)
        finish(b)
        finish(a)
        yield {"a": base / "a", "b": base / "b", "cache": cache,
               "asked": prompts_asked(server), "outputs": outputs_of(base / "a")}
    finally:
        server.close()


@pytest.mark.workflow
def test_two_workflows_share_one_cache(reference):
    """Both finish; every prompt was asked once and stored once; nothing quarantined."""
    asked = reference["asked"]
    prompts = pd.read_parquet(reference["a"] / "results/tiny/prompts/normal.parquet")
    distinct = prompts["prompt"].nunique()
    assert sorted(asked) == sorted(set(asked)) and len(asked) == distinct
    assert_store_consistent(reference["cache"], distinct)
    b = outputs_of(reference["b"])
    assert_same_outputs(b, reference["outputs"])
    stats = [json.loads((reference[w] / f"results/tiny/llm/{LLM}/shards/normal/0-of-1.stats"
                                          ".json").read_text()) for w in ("a", "b")]
    assert sum(s["generated"] for s in stats) == distinct


@pytest.mark.workflow
def test_kill_during_generation_encoding_and_training(reference, tmp_path):
    """SIGKILL of the whole process group (a) between two answer chunks, (b) while the
    answers' vectors are being stored, (c) after the first of three epochs; each time
    ``snakemake --rerun-incomplete`` goes on. The results equal the uninterrupted run's;
    only the prompts of the chunk being written at the kill are asked again."""
    server = stand_in()
    try:
        config = write_workflow(tmp_path, server.url, tmp_path / "cache")
        target = f"{RUN}/metrics.json"
        # (a) generation: chunk 1 of 5 is stored, chunk 2 is written, not yet renamed
        proc = start(tmp_path, config, target, pause="*/answers/*/chunk-*.parquet@2")
        kill_when_paused(proc, tmp_path / f"logs/tiny/llm_generate_shard/{LLM}/"
                         "normal.0-of-1.log", then_wait_for=tmp_path / ITEM_VECTORS)
        store = answer_store(tmp_path / "cache")
        keys, chunks = store_rows(store, "chunk-*.parquet")
        assert chunks == 1 and len(keys) == CHUNK
        assert not (tmp_path / ANSWERS).exists()
        asked_before = len(server.requests)
        assert asked_before == 2 * CHUNK

        # (b) encoding of the answers: their vectors are written, not yet renamed
        proc = start(tmp_path, config, target, rerun=True,
                     pause="*/embeddings/*/chunk-*.npz")
        kill_when_paused(proc, tmp_path / f"logs/tiny/encode_answers/{ENCODER}/{LLM}/"
                         "normal.log")
        assert (tmp_path / ANSWERS).exists() and not (tmp_path / ANSWER_VECTORS).exists()
        shard = json.loads((tmp_path / f"results/tiny/llm/{LLM}/shards/normal/0-of-1.stats"
                                       ".json").read_text())
        assert shard["reused"] == CHUNK and shard["generated"] == shard["prompts"] - CHUNK

        # (c) training: epoch 1's checkpoint is stored, epoch 2's is written
        proc = start(tmp_path, config, target, rerun=True, pause="*/last.pt@2")
        kill_when_paused(proc, tmp_path / RUN / "train.log")
        assert (tmp_path / RUN / "last.pt").exists()
        assert not (tmp_path / RUN / "metrics.json").exists()

        finish(start(tmp_path, config, target, rerun=True))
    finally:
        server.close()
    ours = outputs_of(tmp_path)
    assert ours["metrics"]["runtime"]["resumed_after_epoch"] == 1
    assert not (tmp_path / RUN / "last.pt").exists()
    assert_same_outputs(ours, reference["outputs"])
    # Only the chunk being written at the kill was asked twice.
    asked = prompts_asked(server)
    twice = {p for p in asked if asked.count(p) > 1}
    assert len(twice) == CHUNK and len(asked) == len(set(asked)) + CHUNK
    assert_store_consistent(tmp_path / "cache", len(set(asked)))
    # Left behind: the hidden temporary files of the two chunks cut off in the stores
    # (other writers may share a store); the checkpoint's was removed by the next save.
    leftovers = sorted(p.relative_to(tmp_path).parts[1] for p in tmp_path.rglob(".*.tmp"))
    assert leftovers == ["answers", "embeddings"], leftovers


# --------------------------------------------------------------------------- disk full


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a file system with 64 KiB: a tmpfs where the tests may mount one
    (root), else an ordinary folder whose writers fail with ENOSPC half-way (simulated:
    Parquet, NumPy and torch writes raise as on a full disk)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                                  str(folder)], capture_output=True).returncode == 0
    if not mounted:
        import pyarrow.parquet as pq
        import torch

        def fail(where) -> None:
            """Half a file, then the error a full disk gives."""
            target = where if isinstance(where, str | Path) else where.name
            Path(target).write_bytes(b"PAR1 partial")
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(pq, "write_table", lambda table, where, **kw: fail(where))
        monkeypatch.setattr(np, "savez", lambda f, **arrays: fail(f))
        monkeypatch.setattr(torch, "save", lambda obj, f, *args, **kw: fail(f))
    yield folder, mounted
    if mounted:
        gc.collect()  # a failed torch.save's writer keeps its (deleted) file open till then
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def _big_answers(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "prompt_hash": [f"{i:032x}" for i in range(n)],
        "answer_raw": [rng.bytes(300).hex() for _ in range(n)],  # incompressible
        "tokens_in": pd.array([1] * n, dtype="Int64"),
        "tokens_out": pd.array([1] * n, dtype="Int64"),
        "hit_token_limit": [False] * n, "error": [None] * n})


@pytest.mark.parametrize("writer", ["answer chunk", "embedding chunk", "checkpoint"])
def test_disk_full_during_an_artifact_write(full_disk, writer):
    """The write fails with DiskFullError naming the file and saying the disk is full;
    no file that looks complete and no temporary file is left; the store still reads."""
    import torch

    from llm4sbr_core.text.encoder import EmbeddingStore, EncoderSettings
    from llm4sbr_core.train.checkpoint import save_checkpoint

    folder, _ = full_disk
    before = set(folder.rglob("*"))
    if writer == "answer chunk":
        store = AnswerStore(folder, "k")
        before = set(folder.rglob("*"))
        with pytest.raises(DiskFullError) as info:
            store.add(_big_answers())
        assert store.load().empty
        name = "chunk-"
    elif writer == "embedding chunk":
        store = EmbeddingStore(folder, EncoderSettings.from_config({}))
        before = set(folder.rglob("*"))
        with pytest.raises(DiskFullError) as info:
            store.add([f"{i:032x}" for i in range(200)],
                      np.random.default_rng(0).random((200, 384)))
        assert store.load({f"{i:032x}" for i in range(200)}) == {}
        name = "chunk-"
    else:
        with pytest.raises(DiskFullError) as info:
            save_checkpoint(folder / "last.pt", {"model": torch.rand(40_000)})
        name = "last.pt"
    message = str(info.value)
    assert Path(info.value.path).name.startswith(name) and info.value.path in message
    assert "the disk is full" in message and "free some space" in message
    assert isinstance(info.value, Llm4sbrError) and isinstance(info.value, OSError)
    assert set(folder.rglob("*")) == before  # nothing new: no partial file, no temp file


# --------------------------------------------------------------------------- server faults


def _settings(url: str, **options) -> GeneratorSettings:
    return GeneratorSettings(backend="openai", model="served-model",
                             decoding=DecodingSettings(max_new_tokens=8),
                             options={"base_url": url, "api_key_env": "LLM4SBR_TEST_NO_KEY",
                                      "concurrency": 1, "backoff_s": 0.01, "timeout_s": 5,
                                      "max_retries": 3, **options})


def _prompts(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "prompts.parquet"
    prompts = [f"prompt {i}" for i in range(n)]
    pd.DataFrame({"sample_id": range(n), "prompt": prompts,
                  "prompt_hash": [hashlib.sha256(p.encode()).hexdigest()[:32]
                                  for p in prompts]}).to_parquet(path)
    return path


def _ok() -> tuple[int, dict, dict]:
    return title_for({"body": {"messages": [{"content": "x"}]}})


def _cut_json() -> tuple[int, dict, bytes]:
    return (200, {}, b'{"choices": [{"message": {"content": "He')


#: fault → (the stand-in's first replies, options, expected outcome); every other request
#: gets a good answer. Outcome: "ok" (all answered), "flagged" (stored with ``error``
#: set, asked again by the next run), or the message of the GenerationError.
SERVER_FAULTS = {
    "500s then success": ([(500, {}, {"error": {"message": "boom"}})] * 2, {}, "ok"),
    "429 with Retry-After": ([(429, {"Retry-After": "1"}, {"error": {"message": "slow"}})],
                             {}, "ok"),
    "timeout (deadline_s)": ([lambda r: (time.sleep(1.5), _ok())[1]], {"deadline_s": 0.5},
                             "ok"),
    "malformed JSON": ([_cut_json()] * 4, {}, "flagged"),
    "wrong shape": ([(200, {}, {"choices": [{"message": {"content": {"text": "Heat"}}}]})],
                    {}, "flagged"),
    "HTML login page": ([(200, {"Content-Type": "text/html"},
                          b"<html><head><title>Sign in</title></head></html>")], {},
                        "HTML page titled 'Sign in'"),
    "500 for ever": ([(500, {}, {"error": {"message": "boom"}})] * 10, {},
                     "after 4 attempt.*HTTP 500: boom"),
    "connection refused": ([], {"base_url": "refused"}, "after 4 attempt.*ConnectionError"),
}


@pytest.mark.parametrize("fault", SERVER_FAULTS)
def test_server_fault(fault, tmp_path):
    """One shard of 4 prompts (chunks of 2) through the store against the stand-in."""
    script, options, outcome = SERVER_FAULTS[fault]
    server = FakeServer(list(script))
    refused = options.get("base_url") == "refused"
    if refused:
        server.close()  # nothing listens on its port any more
    settings = _settings(server.url, **{k: v for k, v in options.items() if k != "base_url"})
    prompts = _prompts(tmp_path)
    out = tmp_path / "shard.parquet", tmp_path / "shard.stats.json"

    def shard() -> dict:
        return generate_shard(prompts, 0, 1, settings, tmp_path / "cache", *out, chunk_size=2)

    started = time.monotonic()
    try:
        if outcome not in ("ok", "flagged"):
            with pytest.raises(GenerationError, match=outcome) as info:
                shard()
            assert server.url.removesuffix("/v1") in str(info.value)  # names the server
            assert not out[0].exists()
            # Nothing usable was stored: the next run asks for every prompt again.
            (store,) = (tmp_path / "cache/answers").iterdir()
            assert not AnswerStore(tmp_path / "cache", store.name).answered()
            return
        stats = shard()
        seconds = time.monotonic() - started
        answers = pd.read_parquet(out[0])
        assert len(answers) == 4 and stats["generated"] == 4
        if outcome == "ok":
            assert answers["error"].isna().all() and (answers["answer_raw"] != "").all()
            assert stats["invalid"] == 0
            if "Retry-After" in fault:
                assert seconds >= 1.0  # the server's Retry-After, not the 0.01 s backoff
            return
        # flagged: the bad answer is stored with its error, its chunk is not lost, and
        # the next run asks for it (and only it) again
        assert stats["invalid"] == 1 and answers["error"].notna().sum() == 1
        asked = len(server.requests)
        stats = shard()
        assert stats["generated"] == 1 and stats["reused"] == 3 and stats["invalid"] == 0
        assert len(server.requests) == asked + 1
    finally:
        if not refused:
            server.close()


def test_shard_lock_names_are_content_keyed():
    """Two workflows meet on one shard's lock only through its prompts (used above)."""
    assert shard_lock_name(["b", "a"]) == shard_lock_name(["a", "b", "a"])
    assert shard_lock_name(["a"]) != shard_lock_name(["b"])
