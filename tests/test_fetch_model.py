"""fetch_model: a hub-named model is snapshotted once into {cache_dir}/models/hub/ and the
jobs read that folder. The source here is a local mirror (LLM4SBR_HUB_MIRROR); nothing
touches the network (HF_HUB_OFFLINE=1 in every child)."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from llm4sbr_core.errors import ConfigError
from llm4sbr_core.llm.fetch import (
    MIRROR_ENV,
    fetch_model,
    hub_id_of,
    is_hub_id,
    read_snapshot,
    snapshot_folder,
)


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A mirror holding the fake model tiny-org/tiny-lm (a config and a weight file)."""
    root = tmp_path / "mirror"
    model = root / "tiny-org" / "tiny-lm"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "model.safetensors").write_bytes(b"\0" * 1024)
    monkeypatch.setenv(MIRROR_ENV, str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


@pytest.mark.parametrize("model, hub", [
    ("Qwen/Qwen2.5-7B-Instruct", True),
    ("org/name.v1_x-y", True),
    ("embedded:smollm2-135m-instruct", False),
    ("bert-base-uncased", False),          # no organisation: read as given
    ("/models/Qwen2.5-7B-Instruct", False),
    ("../x/y", False),
    ("a/b/c", False),
])
def test_hub_ids(model, hub):
    assert is_hub_id(model) is hub


def test_an_existing_local_folder_is_not_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "org" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not is_hub_id("org/model")


def test_snapshot_folder_round_trips():
    folder = snapshot_folder("cache/", "Qwen/Qwen2.5-7B-Instruct")
    assert folder == "cache/models/hub/Qwen--Qwen2.5-7B-Instruct"
    assert hub_id_of(folder.rsplit("/", 1)[1]) == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(ConfigError):
        hub_id_of("no-separator")


def test_read_snapshot_keeps_the_name():
    block = {"model": "Qwen/Qwen2.5-7B-Instruct", "name": None}
    assert read_snapshot(block, "/c", "qwen2.5-7b-instruct") == [
        "/c/models/hub/Qwen--Qwen2.5-7B-Instruct"]
    assert block == {"model": "/c/models/hub/Qwen--Qwen2.5-7B-Instruct",
                     "name": "qwen2.5-7b-instruct"}
    local = {"model": "embedded:smollm2-135m-instruct", "name": None}
    assert read_snapshot(local, "/c", "x") == [] and local["name"] is None


def test_fetch_copies_from_the_mirror_and_replaces_atomically(mirror, tmp_path):
    dest = tmp_path / "cache/models/hub/tiny-org--tiny-lm"
    assert fetch_model("tiny-org/tiny-lm", dest) == dest
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors"]
    (dest / "stale.bin").write_bytes(b"x")
    fetch_model("tiny-org/tiny-lm", dest)  # a re-fetch replaces the folder as a whole
    assert not (dest / "stale.bin").exists()
    assert [p.name for p in dest.parent.iterdir()] == ["tiny-org--tiny-lm"]  # no partials


def test_a_model_missing_from_the_mirror_is_an_error(mirror, tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(ConfigError, match="not in the mirror"):
        fetch_model("tiny-org/absent", dest)
    assert not dest.exists() and list(tmp_path.glob(".out.partial-*")) == []


def snakemake(workdir, *args):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1",
           "--configfile", str(REPO / "config.yaml"), *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300,
                          env=os.environ.copy())


@pytest.mark.workflow
def test_fetch_model_rule_snapshots_once_and_jobs_depend_on_it(mirror, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    config = ('llm={"backend": "transformers", "model": "tiny-org/tiny-lm"}',
              f"cache_dir={tmp_path / 'cache'}")
    plan = snakemake(work, "-n", "--quiet", "rules", "--config", *config, "--", "llm_all")
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout + plan.stderr, re.M))
    assert counts.get("fetch_model") == "1"  # once, however many shard jobs read it
    assert int(counts["llm_generate_shard"]) >= 2
    folder = snapshot_folder(str(tmp_path / "cache"), "tiny-org/tiny-lm")
    done = snakemake(work, "--config", *config, "--", folder)
    assert done.returncode == 0, done.stderr[-3000:]
    visible = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    assert visible == ["config.json", "model.safetensors"]  # (+ Snakemake's timestamp)
    assert "fetch_model" in done.stderr
    log = (work / "logs/fetch_model/tiny-org--tiny-lm.log").read_text()
    assert "from the mirror" in log
    again = snakemake(work, "-n", "--config", *config, "--", folder)
    assert "Nothing to be done" in again.stdout + again.stderr
