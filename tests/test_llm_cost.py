"""The LLM stage's cost model: counts, a rate measured on this machine, the ledger."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_llm_generate import ScriptedGenerator, llm_block

from llm4sbr_core.errors import InvalidInputError
from llm4sbr_core.llm.cost import (
    DEFAULT_CHARS_PER_TOKEN,
    LEDGER,
    Measured,
    estimate,
    format_duration,
    machine_id,
    read_measured,
    record_measured,
)
from llm4sbr_core.llm.generate import generate_shard, generator_settings
from llm4sbr_core.prompts import prompt_hash


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + bytes(range(200)))
    return path


def test_without_a_measurement_only_counts_are_given():
    e = estimate(10, 4000, 64, Measured("m"))
    assert e.tokens_in == round(4000 / DEFAULT_CHARS_PER_TOKEN)
    assert e.tokens_out == e.tokens_out_bound == 640
    assert e.seconds is None and "no throughput measured yet on m" in e.describe()


def test_the_measured_rate_gives_the_time():
    measured = Measured("m", prompts=100, seconds=50.0, chars_in=30_000, tokens_in=10_000,
                        tokens_out=1_700)
    e = estimate(300, 90_000, 64, measured)
    assert e.seconds == pytest.approx(150.0)  # 2 prompts/s
    assert e.tokens_in == 30_000 and e.tokens_out == 5_100 and e.tokens_out_bound == 19_200
    assert "expected 2.5 min at 2.00 prompts/s measured over 100 prompts on m" in e.describe()


def test_bad_counts_are_refused():
    with pytest.raises(InvalidInputError):
        estimate(-1, 0, 64, Measured("m"))


def test_durations():
    assert [format_duration(s) for s in (42, 450, 4 * 3600)] == ["42 s", "7.5 min", "4.0 h"]


def test_ledger_round_trip_and_damage(tmp_path):
    assert read_measured(tmp_path, "m") == Measured("m")
    record_measured(tmp_path, Measured("m").plus(3, 1.5, 300, 90, 12))
    record_measured(tmp_path, Measured("other").plus(1, 1.0, 10, 3, 1))
    assert read_measured(tmp_path, "m") == Measured("m", 3, 1.5, 300, 90, 12)
    assert json.loads((tmp_path / LEDGER).read_text())["m"]["prompts_per_second"] == 2.0
    (tmp_path / LEDGER).write_text("{not json")
    assert read_measured(tmp_path, "m") == Measured("m")  # an estimate lost, never a run


def test_machines_of_local_and_server_backends(model_file):
    local = generator_settings(llm_block(model=str(model_file)))
    assert "cpus · device auto · threads 2" in machine_id(local, 2)
    server = generator_settings(llm_block(model="m", backend="openai", openai={
        "base_url": "http://user:secret@127.0.0.1:9/v1"}))
    assert machine_id(server) == "server http://127.0.0.1:9/v1"


def test_generation_logs_the_estimate_and_measures_the_rate(tmp_path, model_file, caplog):
    settings = generator_settings(llm_block(model=str(model_file)))
    calls: list = []

    def run(n, name):
        texts = [f"{name} prompt {i} " + "x" * 40 for i in range(n)]
        path = tmp_path / f"{name}.parquet"
        pd.DataFrame({"sample_id": range(n), "split": "test", "prompt": texts,
                      "prompt_hash": [prompt_hash(t) for t in texts]}).to_parquet(path)
        return generate_shard(path, 0, 1, settings, tmp_path / "cache",
                              tmp_path / f"{name}.out.parquet", tmp_path / f"{name}.json",
                              chunk_size=4, load_generator=lambda s, threads=None:
                              ScriptedGenerator(s, calls))

    with caplog.at_level("INFO"):
        first = run(10, "a")
    assert first["estimate"]["seconds"] is None and "no throughput measured" in caplog.text
    ledger = json.loads((tmp_path / first["store"] / LEDGER).read_text())
    (entry,) = ledger.values()
    assert entry["prompts"] == 10 and entry["tokens_in"] == 100 and entry["tokens_out"] == 50
    assert entry["chars_in"] == sum(len(f"a prompt {i} " + "x" * 40) for i in range(10))
    second = run(6, "b")
    assert second["estimate"]["prompts"] == 6
    assert second["estimate"]["prompts_per_second"] == pytest.approx(
        entry["prompts"] / entry["seconds"])
    assert second["estimate"]["tokens_out"] == 30  # 5 answer tokens per prompt, measured
    again = run(6, "b")  # everything answered: nothing to estimate, nothing measured
    assert again["estimate"]["prompts"] == 0
    assert json.loads((tmp_path / first["store"] / LEDGER).read_text())[
        first["machine"]]["prompts"] == 16


def test_dry_run_flags():
    from llm4sbr_core.llm.plan import is_dry_run
    assert is_dry_run(["snakemake", "-n"]) and is_dry_run(["snakemake", "-np"])
    assert is_dry_run(["snakemake", "--cores", "1", "--dry-run"])
    assert not is_dry_run(["snakemake", "--cores", "1", "-p"])
    assert not is_dry_run(["snakemake", "--configfile", "n.yaml"])


def test_plan_from_prompts_stats_or_nothing(tmp_path, model_file):
    from llm4sbr_core import layout
    from llm4sbr_core.llm.plan import generation_plan
    llm = llm_block(model=str(model_file))
    root, cache = tmp_path / "work", tmp_path / "cache"
    texts = [f"prompt {i} " + "y" * 30 for i in range(8)]
    prompts = root / layout.fill(layout.PROMPTS_FILE, dataset="a", view="short")
    prompts.parent.mkdir(parents=True)
    pd.DataFrame({"prompt": texts + texts[:2],  # 8 distinct prompts
                  "prompt_hash": [prompt_hash(t) for t in texts + texts[:2]]}
                 ).to_parquet(prompts)
    stats = root / layout.fill(layout.STATS_JSON, dataset="b")
    stats.parent.mkdir(parents=True)
    stats.write_text(json.dumps({"train_samples": 70, "valid_samples": 10,
                                 "test_samples": 20}))
    plan = generation_plan(llm, cache, ["a", "b", "c"], ["short"], threads=2, root=root)
    assert "a/short: 8 prompts" in plan and "no throughput measured yet" in plan
    assert "b/short: ≤ 100 prompts (from the data stage" in plan
    assert "c/short: size known once the data stage has run" in plan
    assert "unknown until a first chunk is measured" in plan
    # after a measured run on this machine (other thread count), the plan gives times
    settings = generator_settings(llm)
    store_path = cache / "answers" / __import__(
        "llm4sbr_core.llm.identity", fromlist=["store_key"]).store_key(settings)
    record_measured(store_path, Measured(machine_id(settings, 1)).plus(10, 5.0, 400, 100, 30))
    plan = generation_plan(llm, cache, ["a", "b"], ["short"], threads=2, root=root)
    assert "a/short: 8 prompts, ≈ 78 prompt tokens" in plan  # 4 characters per token
    assert "expected 4 s at 2.00 prompts/s" in plan and "b/short: ≤ 100 prompts" in plan
    assert "expected ≤ 50 s at 2.00 prompts/s" in plan
    assert "expected generation time: at most 54 s (one job at a time)" in plan  # b: a bound
    assert generation_plan(llm, cache, ["a"], [], root=root) == ""


def test_a_plan_creates_no_folder(tmp_path, model_file):
    from llm4sbr_core.llm.plan import generation_plan
    plan = generation_plan(llm_block(model=str(model_file)), tmp_path / "cache", ["a"],
                           ["short", "long"], root=tmp_path)
    assert "a/long: size known once the data stage has run" in plan
    assert not (tmp_path / "cache").exists()
