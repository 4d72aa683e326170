"""The tuned-pairs table: LLM4SBR against its backbone under the shared recipe and with
each side's own validation search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llm4sbr_core.errors import InvalidInputError
from llm4sbr_core.report.archive import render_block
from llm4sbr_core.report.tuned import searched_setting, tuned_pairs_table
from report_synthetic import write_run

N_SAMPLES, N_SESSIONS = 400, 200
SELECTED = {"lr": 0.003, "lr_step": 10, "weight_decay": 0.0, "tau": 0.3}
SEARCH_VALID = 0.5  # the winning trial's validation MRR@20, above every seed's


def runs(tmp_path, gain, backbones=("srgnn", "gru4rec"), seeds=range(3)):
    """Runs whose ranks improve by ``gain[variant]`` places; -tuned runs record a search."""
    rng = np.random.default_rng(0)
    base = rng.integers(1, 60, size=N_SAMPLES)
    sessions = np.arange(N_SAMPLES) // (N_SAMPLES // N_SESSIONS)
    paths = []
    for backbone in backbones:
        for v, g in gain.items():
            for s in seeds:
                ranks = np.clip(base - g + rng.integers(-2, 3, size=N_SAMPLES), 1, None)
                path = write_run(tmp_path, backbone, v, s, ranks, session_ids=sessions)
                m = json.loads(path.read_text())
                m["data"] = {"valid_samples": 550}
                if v.endswith("-tuned"):
                    config = {k: SELECTED[k] for k in SELECTED if k != "tau" or "llm" in v}
                    m["tuning"] = {"budget": 8, "selected": {"trial": 3, "config": config,
                                                             "valid": SEARCH_VALID}}
                path.write_text(json.dumps(m))
                paths.append(path)
    return paths


def test_each_recipe_is_tested_and_the_search_is_shown(tmp_path):
    # LLM4SBR gains 20 places under the shared recipe, nothing once both sides are tuned
    gain = {"base": 0, "llm4sbr": 20, "base-tuned": 15, "llm4sbr-tuned": 15}
    table = tuned_pairs_table(runs(tmp_path, gain), n_resamples=400)
    assert [(r[0], r[1]) for r in table.rows] == [(b, v) for b in ("srgnn", "gru4rec")
                                                  for v in gain]
    settings = {(r[0], r[1]): r[3] for r in table.rows}
    assert settings[("srgnn", "base")] == "shared recipe"
    assert settings[("srgnn", "llm4sbr-tuned")] == "lr 0.003, step 10, wd 0, τ 0.3 (best of 8)"
    assert settings[("srgnn", "base-tuned")] == "lr 0.003, step 10, wd 0 (best of 8)"
    valid = {(r[0], r[1]): r[4] for r in table.rows}
    seeds_mean = 100 * np.mean([json.loads(p.read_text())["valid"]["MRR@20"]
                                for p in tmp_path.glob("results/*/runs/srgnn/base-tuned/*/"
                                                       "metrics.json")])
    assert valid[("srgnn", "base-tuned")].startswith(f"50.00 → {seeds_mean:.2f} ± ")
    assert "→" not in valid[("srgnn", "base")]  # no search under the shared recipe
    assert "(550 samples)" in " ".join(table.notes)
    (tests,) = table.sections
    verdicts = {(r[0], r[1], r[3]): r[-1] for r in tests.rows}
    assert verdicts[("srgnn", "shared recipe", "P@20")].startswith("llm4sbr better")
    assert not verdicts[("srgnn", "tuned", "P@20")].endswith("better")
    assert set(table.data["holm_family"].dropna()) == {len(tests.rows)}  # one family


def test_missing_sides_are_named(tmp_path):
    table = tuned_pairs_table(runs(tmp_path, {"base": 0, "llm4sbr": 5, "base-tuned": 5},
                                   backbones=("srgnn",)), n_resamples=200)
    (tests,) = table.sections
    assert {r[1] for r in tests.rows} == {"shared recipe"}
    assert any("Not run" in n and "srgnn llm4sbr-tuned" in n for n in table.notes)


def test_seeds_of_one_tuned_variant_must_share_their_selection(tmp_path):
    paths = runs(tmp_path, {"base-tuned": 0}, backbones=("srgnn",))
    m = json.loads(paths[1].read_text())
    m["tuning"]["selected"]["config"]["lr"] = 0.0003
    paths[1].write_text(json.dumps(m))
    with pytest.raises(InvalidInputError, match="different selections"):
        searched_setting([str(p) for p in paths])


def test_the_archive_renders_it(tmp_path):
    runs(tmp_path, {"base": 0, "llm4sbr": 10, "base-tuned": 0, "llm4sbr-tuned": 10},
         backbones=("srgnn",), seeds=range(2))
    block = render_block("tuned dataset=ml-100k variant=llm4sbr resamples=200",
                         tmp_path / "results")
    assert "llm4sbr-tuned − base-tuned" in block and "(best of 8)" in block


def test_the_plan_asks_for_a_tuned_pairs_table_per_tuned_variant():
    from llm4sbr_core.report import plan

    config = {"train": {"backbones": ["srgnn"], "seeds": [0, 1],
                        "variants": ["base", "llm4sbr-items", "base-tuned",
                                     "llm4sbr-items-tuned", "wo_au"]}}
    assert plan.tuned_pairs(config) == ["llm4sbr-items"]
    assert "results/d/tables/tuned_llm4sbr-items.md" in plan.report_targets(config, ["d"])
    assert len(plan.tuned_pair_runs(config, "d", "llm4sbr-items")) == 8
    config["train"]["variants"].remove("base-tuned")
    assert plan.tuned_pairs(config) == []


def test_every_searchable_key_has_a_label_in_search_order():
    from llm4sbr_core.report import tuned
    from llm4sbr_core.train.tuning import SEARCHABLE

    assert tuple(tuned._SHORT) == SEARCHABLE
