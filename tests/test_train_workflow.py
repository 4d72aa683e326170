"""The training stage through Snakemake on ml-100k with a tiny budget."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from conftest import shared_data, snakemake
from llm4sbr_core.models import BACKBONE_PATHS, get_backbone

pytestmark = pytest.mark.workflow

RUN = "results/ml-100k/runs/{backbone}/base/seed0"


def backbone_or_skip(name: str):
    """The backbone class; its model file may not have landed yet."""
    try:
        return get_backbone(name)
    except ImportError as e:
        pytest.skip(f"backbone {name!r} cannot be imported yet ({e})")


def run_workflow(tmp_path, *targets, train=None, check=True, extra=()):
    """snakemake on the shared ml-100k raw files with a `train:` override file."""
    overrides = tmp_path / "train.yaml"
    overrides.write_text(yaml.safe_dump({"train": {
        "epochs": 1, "seeds": [0], "dim": 32, "variants": ["base"], "llmseqsim": [],
        **(train or {})}}))
    return snakemake(tmp_path, "--config", f"raw_dir={shared_data()}", 'datasets=["ml-100k"]',
                     *extra, "--", *targets,
                     configs=("config.yaml", "configs/shared-data.yaml", str(overrides)),
                     check=check)


def test_train_run_writes_the_contract_and_is_cached(tmp_path):
    backbone_or_skip("srgnn")
    run = tmp_path / RUN.format(backbone="srgnn")
    run_workflow(tmp_path, f"{RUN.format(backbone='srgnn')}/metrics.json")
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "model.pt",
                                                    "ranks.parquet", "train.log"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["best_epoch"] == 1
    assert metrics["config"]["backbone"] == "srgnn" and metrics["config"]["dim"] == 32
    assert metrics["config"]["dataset"] == "ml-100k"
    assert set(metrics["test"]) == {f"{m}@{k}" for m in ("P", "MRR", "NDCG") for k in (5, 10, 20)}
    assert metrics["runtime"]["threads"] == 2  # the rule's threads
    ranks = pq.read_table(run / "ranks.parquet")
    assert ranks.num_rows == 611 and ranks.column_names == ["sample_id", "session_id", "rank"]
    log = (run / "train.log").read_text()
    assert "epoch 1/1: loss" in log and "samples/s" in log and "test (best epoch 1 of 1)" in log
    assert (tmp_path / "results/ml-100k/benchmarks/train/srgnn.base.seed0.tsv").exists()
    torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    again = run_workflow(tmp_path, f"{RUN.format(backbone='srgnn')}/metrics.json")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_train_all_plans_graphs_only_for_models_that_need_them(tmp_path):
    classes = {}
    for name in BACKBONE_PATHS:
        try:
            classes[name] = get_backbone(name)
        except ImportError:
            continue
    if not classes:
        pytest.skip("no backbone can be imported yet")
    done = run_workflow(tmp_path, "train_all", extra=("-n",),
                        train={"backbones": sorted(classes), "seeds": [0, 1]})
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout + done.stderr, re.M))
    assert int(counts["train_run"]) == 2 * len(classes)
    graphs = sum(cls.needs_training_graph for cls in classes.values())
    assert int(counts.get("build_training_graph", 0)) == graphs


def test_graph_backbone_runs_with_its_cached_graph(tmp_path):
    name = next((n for n in ("dhcn", "gcegnn") if _importable(n)), None)
    if name is None:
        pytest.skip("neither dhcn nor gcegnn can be imported yet")
    target = f"{RUN.format(backbone=name)}/metrics.json"
    run_workflow(tmp_path, target, train={"batch_size": 500})
    graph = tmp_path / f"results/ml-100k/graphs/{name}.npz"
    assert graph.exists() and (tmp_path / target).exists()
    assert (tmp_path / f"logs/ml-100k/build_training_graph/{name}.log").exists()


def _importable(name: str) -> bool:
    try:
        get_backbone(name)
        return True
    except ImportError:
        return False


@pytest.mark.parametrize("train, message", [
    ({"variants": ["llm4sbr2"]}, "config key 'train.variants.0': 'llm4sbr2' does not match"),
    ({"backbones": ["narm"]}, "config key 'train.backbones.0': 'narm' is not one of"),
    ({"epoch": 2}, "config key 'train.epoch': unknown key"),
])
def test_bad_train_config_stops_before_any_job(tmp_path, train, message):
    done = run_workflow(tmp_path, "train_all", train=train, check=False)
    assert done.returncode != 0 and message in done.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("target", ["results/ml-100k/runs/narm/base/seed0/metrics.json",
                                    "results/ml-100k/runs/srgnn/textinit-r1/seed0/metrics.json",
                                    "results/ml-100k/runs/srgnn/llm4sbr-r01/seed0/metrics.json",
                                    "results/ml-100k/runs/srgnn/base/seed01/metrics.json"])
def test_unknown_run_names_match_no_rule(tmp_path, target):
    done = run_workflow(tmp_path, target, extra=("-n",), check=False)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "MissingRuleException" in out or "No rule to produce" in out


def planned_jobs(tmp_path, target, train=None):
    """[(rule, {"input": ..., "wildcards": ...}), ...] of a dry run."""
    done = run_workflow(tmp_path, target, train=train, extra=("-n",))
    jobs = []
    for line in done.stdout.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            jobs.append((m[1], {}))
        elif jobs and (m := re.match(r"^\s+(input|wildcards): (.*)$", line)):
            jobs[-1][1][m[1]] = m[2]
    return jobs


def test_variants_plan_exactly_their_inputs(tmp_path):
    expected = {"llm4sbr-r3": {"r3/short.npy", "r3/long.npy"}, "wo_long": {"r5/short.npy"},
                "llm4sbr-shuffled": {"r5/short.npy", "r5/long.npy"},
                "llm4sbr-items": {"all-minilm-l6-v2/items.npy"},
                "normal": {"r5/normal.npy"}, "textinit": {"all-minilm-l6-v2/items.npy"},
                "base": set()}
    jobs = planned_jobs(tmp_path, "train_all", train={"variants": list(expected)})
    inputs = {}
    for rule, job in jobs:
        if rule == "train_run":
            variant = re.search(r"variant=([\w.-]+)", job["wildcards"])[1]
            inputs[variant] = {"/".join(f.split("/")[-2:]) for f in job["input"].split(", ")
                               if f.endswith(".npy")}
    assert inputs == expected
    localized = {re.search(r"r=\d+, view=\w+", j["wildcards"])[0] for r, j in jobs
                 if r == "localize_intents"}
    assert localized == {"r=3, view=short", "r=3, view=long", "r=5, view=short",
                         "r=5, view=long", "r=5, view=normal"}


def test_llmseqsim_runs_are_planned_from_config(tmp_path):
    jobs = planned_jobs(tmp_path, "train_all", train={"llmseqsim": ["mean", "last"]})
    assert sorted(j["wildcards"] for r, j in jobs if r == "llmseqsim") == [
        "dataset=ml-100k, aggregation=last", "dataset=ml-100k, aggregation=mean"]
    assert not any(r == "llm_generate_shard" for r, _ in jobs)  # item texts only
