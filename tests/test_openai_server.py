"""The ``openai`` backend against a real OpenAI-compatible server: ``transformers serve``
hosting the embedded SmolLM2-135M-Instruct on 127.0.0.1.

The workflow's generation stage runs twice on one tiny dataset (ten sessions, one view,
ten distinct prompts): in process (``backend: transformers``) and through the server (``backend:
openai``), both float32 on the CPU, greedy, same chat template (the model folder's, with
its default system message), same ``max_new_tokens``. Answers must agree: the in-process
backend stops at the first line break and the server does not (the backend sends no
``stop``), so the server's raw answer must *start with* the in-process one, and the
cleaned answers and flags must be identical.

Needs ``transformers serve``'s packages (fastapi, uvicorn, openai: the ``[serve]``
extra). Without them the test is skipped, unless ``LLM4SBR_REQUIRE_SERVER_TEST=1`` (set
in CI), where their absence is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml
from tiny_dataset import write_tiny_dataset

from conftest import snakemake
from llm4sbr_core.llm.dequantise import dequantised_folder

pytestmark = pytest.mark.workflow

SERVE_PACKAGES = ("fastapi", "uvicorn", "openai")
REQUIRE = "LLM4SBR_REQUIRE_SERVER_TEST"
#: How long the server may take to load the model and answer /v1/models (seconds).
READY_TIMEOUT_S = 240.0
#: user → clicked items (indices into tiny_dataset.TITLES): one session, one prompt each.
SESSIONS = [[0, 1, 2], [3, 4, 5], [6, 7, 0], [1, 3, 5], [2, 4, 6], [7, 5, 3], [4, 0, 7],
            [5, 2], [6, 1, 3, 0], [2, 7]]
VIEW = "short"
MAX_NEW_TOKENS = 16
KEY_ENV = "LLM4SBR_TEST_SERVER_KEY"  # the key travels by environment variable only


def missing_serve_packages() -> list[str]:
    return [p for p in SERVE_PACKAGES if importlib.util.find_spec(p) is None]


@pytest.fixture(scope="module", autouse=True)
def serve_packages() -> None:
    missing = missing_serve_packages()
    if not missing:
        return
    reason = (f"transformers serve needs {', '.join(missing)} (pip install -e .[serve] or "
              "make setup)")
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{REQUIRE}=1 but {reason}")
    pytest.skip(reason)


def write_dataset(root: Path) -> Path:
    """The tiny dataset with :data:`SESSIONS` and the embedded model as its LLM."""
    return write_tiny_dataset(
        root, sessions=SESSIONS, train_samples="last", views=[VIEW],
        llm={"shards": 1, "chunk_size": 64, "max_new_tokens": MAX_NEW_TOKENS,
             "device": "cpu", "dtype": "float32"})


def generate(root: Path, config: Path, name: str, llm: dict) -> pd.DataFrame:
    """Run the generation stage under ``llm.name = name``; its answers."""
    override = root / f"{name}.yaml"
    override.write_text(yaml.safe_dump({"llm": {"name": name, **llm}}))
    # One core: one torch thread in the job, like the server below, on a shared machine.
    snakemake(root, "--cores", "1", "--", "llm_all",
              configs=("config.yaml", str(config), str(override)))
    return pd.read_parquet(root / f"results/tiny/llm/{name}/{VIEW}.parquet")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def served_model(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``transformers serve`` with the dequantised embedded model, float32 on the CPU:
    yields (base_url, model name); the server is stopped at the end, even on failure."""
    # transformers serve cannot load a local GGUF: it gets the float32 model folder the
    # transformers backend also loads the GGUF from ({cache_dir}/models/<digest>/).
    folder = str(dequantised_folder("embedded:smollm2-135m-instruct", tmp_path / "cache"))
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve",
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
               "--dtype", "float32", "--log-level", "warning", folder]
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"transformers serve exited with {server.returncode}:\n"
                            f"{log_tail(log_path)}")
            try:
                models = requests.get(f"{base_url}/models", timeout=5).json()
                if any(m.get("id") == folder for m in models.get("data", [])):
                    break
            except (requests.RequestException, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not ready after {READY_TIMEOUT_S:g} s:\n"
                            f"{log_tail(log_path)}")
            time.sleep(1)
        yield base_url, folder
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=20)


def test_openai_backend_against_transformers_serve_matches_in_process(
        tmp_path, served_model, monkeypatch):
    base_url, model = served_model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = write_dataset(tmp_path)
    local = generate(tmp_path, config, "inproc", {"backend": "transformers"})

    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-real-key")
    served = generate(tmp_path, config, "served", {
        "backend": "openai", "model": model,
        "openai": {"base_url": base_url, "api_key_env": KEY_ENV, "concurrency": 4,
                   "timeout_s": 120, "max_retries": 1}})

    assert local["sample_id"].tolist() == served["sample_id"].tolist()
    assert 8 <= len(served) <= 16 and served["prompt_hash"].is_unique
    assert (served["tokens_out"] > 0).all()
    # Same chat template, same system message: the same prompt tokens on both sides.
    assert local["tokens_in"].tolist() == served["tokens_in"].tolist()
    stats = json.loads((tmp_path / f"results/tiny/llm/served/{VIEW}.stats.json").read_text())
    assert stats["samples"] == len(served) and stats["invalid_responses"] == 0

    rows = list(zip(local.itertuples(), served.itertuples(), strict=True))
    alike = [same_answer(a, b) for a, b in rows]
    print(f"\n{sum(alike)}/{len(rows)} answers alike (in process vs transformers serve)")
    assert all(alike), "answers differ (in process | served):\n" + "\n".join(
        f"{a.answer_raw!r} [{a.flag}] | {b.answer_raw!r} [{b.flag}]"
        for (a, b), same in zip(rows, alike, strict=True) if not same)


def same_answer(local: Any, served: Any) -> bool:
    """Whether two rows of a gathered answer table hold the same answer.

    The in-process backend stops at the first line break after some text; the server
    runs on to end-of-sequence or ``max_tokens`` (the backend sends no ``stop``), so the
    served raw answer equals the in-process one or, when that one ends at a line break,
    starts with it. The cleaned answer and its flag must be equal either way.
    """
    raw_alike = (served.answer_raw == local.answer_raw
                 or ("\n" in local.answer_raw and served.answer_raw.startswith(local.answer_raw)))
    return raw_alike and served.answer == local.answer and served.flag == local.flag
