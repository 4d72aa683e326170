"""The decomposition table: each step between two variants of one backbone, tested."""

from __future__ import annotations

import numpy as np

from llm4sbr_core.report import plan
from llm4sbr_core.report.decomposition import STEPS, decomposition_table
from llm4sbr_core.report.plan import DECOMPOSITION_VARIANTS
from report_synthetic import write_run

N_SAMPLES, N_SESSIONS = 400, 200


def grid(tmp_path, variants, gain: dict[str, int], seeds=range(3)) -> list:
    """Runs whose ranks improve by ``gain[variant]`` places on every sample."""
    rng = np.random.default_rng(0)
    base = rng.integers(1, 60, size=N_SAMPLES)
    sessions = np.arange(N_SAMPLES) // (N_SAMPLES // N_SESSIONS)
    paths = []
    for v in variants:
        for s in seeds:
            noise = rng.integers(-2, 3, size=N_SAMPLES)
            ranks = np.clip(base - gain.get(v, 0) + noise, 1, None)
            paths.append(write_run(tmp_path, "srgnn", v, s, ranks, session_ids=sessions))
    return paths


def test_steps_are_tested_and_name_what_they_measure(tmp_path):
    gain = {"llm4sbr": 25, "llm4sbr-items": 25, "wo_u": 10, "wo_a": 0, "wo_au": 0,
            "llm4sbr-random": 0, "llm4sbr-shuffled": 0}
    table = decomposition_table(grid(tmp_path, DECOMPOSITION_VARIANTS, gain), "srgnn",
                                n_resamples=500)
    assert [r[0] for r in table.rows] == list(DECOMPOSITION_VARIANTS)
    (steps,) = table.sections
    verdicts = {(r[0], r[2]): r[-1] for r in steps.rows}
    assert len(steps.rows) == 2 * len(STEPS)
    assert verdicts[("llm4sbr − llm4sbr-random", "P@20")].startswith("llm4sbr better")
    assert verdicts[("wo_u − wo_au", "P@20")].startswith("wo_u better")
    assert not verdicts[("wo_au − base", "P@20")].endswith("better")
    assert not verdicts[("llm4sbr − llm4sbr-items", "P@20")].endswith("better")
    frame = table.data
    assert set(frame["holm_family"].dropna()) == {2 * len(STEPS)}  # one family per table


def test_missing_variants_are_named_and_their_steps_skipped(tmp_path):
    table = decomposition_table(grid(tmp_path, ["base", "llm4sbr"], {"llm4sbr": 20}), "srgnn",
                                n_resamples=300)
    (steps,) = table.sections
    assert {r[0] for r in steps.rows} == {"llm4sbr − base"}
    assert any("Not run" in n and "wo_au" in n for n in table.notes)


def test_a_step_with_unpartnered_seeds_names_its_side(tmp_path):
    paths = (grid(tmp_path, ["base"], {}, seeds=range(3))
             + grid(tmp_path, ["llm4sbr"], {"llm4sbr": 20}, seeds=[2]))
    table = decomposition_table(paths, "srgnn", n_resamples=300)
    (pairs,) = [n for n in table.notes if n.startswith("Pairs:")]
    assert "llm4sbr − base: `A` seeds 0, 1 (no B partner)" in pairs


def test_the_plan_asks_for_a_decomposition_per_backbone_once_wo_au_is_configured():
    config = {"localize": {"r": 5},
              "train": {"backbones": ["srgnn", "gru4rec"], "seeds": [0, 1],
                        "variants": ["base", "llm4sbr", "wo_au", "llm4sbr-random", "normal"]}}
    targets = plan.report_targets(config, ["d"])
    assert {"results/d/tables/decomposition_srgnn.md",
            "results/d/tables/decomposition_gru4rec.md"} <= set(targets)
    runs = plan.decomposition_runs(config, "d", "srgnn")
    assert {p.split("/")[4] for p in runs} == {"base", "wo_au", "llm4sbr-random", "llm4sbr"}
    assert len(runs) == 8 and plan.decomposition_runs(config, "d", "tagnn") == []
    config["train"]["variants"] = ["base", "llm4sbr"]
    assert not any("decomposition" in t for t in plan.report_targets(config, ["d"]))
    config["train"]["variants"] = ["base", "wo_au-items", "llm4sbr-items"]
    targets = plan.report_targets(config, ["d"])
    assert "results/d/tables/decomposition_srgnn-items.md" in targets
    assert not any(t.endswith("decomposition_srgnn.md") for t in targets)
    runs = plan.decomposition_runs(config, "d", "srgnn", source="items")
    assert {p.split("/")[4] for p in runs} == {"base", "wo_au-items", "llm4sbr-items"}


def test_the_item_title_chain_needs_no_llm(tmp_path):
    gain = {"llm4sbr-items": 20, "wo_u-items": 10}
    variants = ["base", "wo_au-items", "wo_a-items", "wo_u-items", "llm4sbr-items-shuffled",
                "llm4sbr-items"]
    table = decomposition_table(grid(tmp_path, variants, gain), "srgnn", "items",
                                n_resamples=300)
    assert [r[0] for r in table.rows] == variants
    (steps,) = table.sections
    names = {r[0] for r in steps.rows}
    assert names == {"wo_au-items − base", "wo_a-items − wo_au-items",
                     "wo_u-items − wo_au-items", "llm4sbr-items − wo_au-items",
                     "llm4sbr-items − llm4sbr-items-shuffled", "llm4sbr-items − base"}
    assert "item-title intents" in table.title
