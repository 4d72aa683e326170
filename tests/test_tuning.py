"""The validation search of the -tuned variants (llm4sbr_core/train/tuning.py), alone and
through Snakemake."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import shared_data, snakemake
from llm4sbr_core.errors import ConfigError, InvalidInputError
from llm4sbr_core.train.settings import RunSettings
from llm4sbr_core.train.tuning import apply_selection, select_trial, trial_grid
from llm4sbr_core.variants import parse_variant

SPACE = {"lr": [0.0003, 0.001, 0.003], "lr_step": [3, 10], "weight_decay": [0.0, 1e-5],
         "tau": [0.03, 0.1, 0.3]}


def grid(variant, trials=8, seed=0, space=SPACE):
    return trial_grid({"tuning": {"space": space, "trials": trials, "seed": seed}}, variant)


def test_tuned_names():
    spec = parse_variant("llm4sbr-items-shuffled-tuned")
    assert spec.tuned and spec.untuned == "llm4sbr-items-shuffled" and spec.shuffled
    assert spec.source == "items" and spec.mode == "full"
    assert parse_variant("base-tuned").untuned == "base" and not parse_variant("base").tuned
    assert parse_variant("llm4sbr").uses_tau and not parse_variant("wo_au").uses_tau
    assert not parse_variant("base").uses_tau and parse_variant("wo_a-items").uses_tau


def test_every_variant_gets_the_same_budget():
    base, full = grid("base"), grid("llm4sbr-tuned")
    assert (base.grid_size, full.grid_size) == (12, 36)
    assert base.budget == full.budget == 8
    assert set(base.space) == {"lr", "lr_step", "weight_decay"}
    assert set(full.space) == set(SPACE) and full.variant == "llm4sbr"
    for g in (base, full):  # distinct points of the variant's own grid
        assert len({tuple(sorted(c.items())) for c in g.configs}) == g.budget
        assert all(c[k] in SPACE[k] for c in g.configs for k in c)
    # τ is not searched where nothing uses it or the name fixes it
    assert "tau" not in grid("wo_au-items").space and "tau" not in grid("llm4sbr-tau1").space
    # variants that search the same keys try the same points
    assert grid("wo_au").configs == base.configs and grid("wo_a").configs == full.configs


def test_draw_is_reproducible_and_depends_on_the_seed():
    assert grid("llm4sbr", seed=3).configs == grid("llm4sbr", seed=3).configs
    assert grid("llm4sbr", seed=3).configs != grid("llm4sbr", seed=4).configs


def test_a_small_grid_is_searched_whole():
    g = grid("base", trials=20)
    assert g.budget == g.grid_size == 12 and g.record()["budget"] == 12


@pytest.mark.parametrize("tuning, key", [
    ({"space": {"dim": [32, 64]}}, "train.tuning.space"),
    ({"trials": 0}, "train.tuning.trials"),
    ({"space": {"lr": []}}, "train.tuning.space.lr"),
])
def test_bad_search_settings_name_their_key(tuning, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        trial_grid({"tuning": tuning}, "base")


def test_nothing_to_search_is_an_error():
    with pytest.raises(ConfigError, match="nothing to search"):
        grid("base", space={"tau": [0.1, 1.0]})


def write_trials(tmp_path, g, valid_scores):
    paths = []
    for k, (config, score) in enumerate(zip(g.configs, valid_scores, strict=True)):
        path = tmp_path / f"trial{k}" / "metrics.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"config": {"lr": 0.001, "lr_step": 3, "tau": 0.1,
                                               "weight_decay": 1e-5, "lr_gamma": 0.1, **config},
                                    "valid": {"MRR@20": score, "P@20": 1 - score},
                                    "best_epoch": 2, "epochs": 5}))
        paths.append(path)
    return paths


def test_selection_is_the_best_validation_score_first_on_a_tie(tmp_path):
    g = grid("llm4sbr", trials=4)
    out = tmp_path / "selected.json"
    selection = select_trial(g, write_trials(tmp_path, g, [0.1, 0.3, 0.2, 0.3]), "MRR@20", out)
    assert selection["selected"]["trial"] == 1
    assert selection["selected"]["config"] == g.configs[1]
    assert json.loads(out.read_text()) == selection
    assert [t["valid"]["MRR@20"] for t in selection["trials"]] == [0.1, 0.3, 0.2, 0.3]
    assert selection["budget"] == 4 and selection["grid_size"] == 36


def test_selection_refuses_trials_of_another_space(tmp_path):
    g = grid("base", trials=2)
    paths = write_trials(tmp_path, g, [0.1, 0.2])
    other = grid("base", trials=2, space={"lr": [0.5, 0.7], "lr_step": [3]})
    with pytest.raises(InvalidInputError, match="the space changed"):
        select_trial(other, paths, "MRR@20", tmp_path / "selected.json")
    with pytest.raises(InvalidInputError, match="2 trials planned"):
        select_trial(g, paths[:1], "MRR@20", tmp_path / "selected.json")


def test_a_tuned_run_takes_the_selected_configuration(tmp_path):
    g = grid("llm4sbr", trials=3)
    select_trial(g, write_trials(tmp_path, g, [0.1, 0.05, 0.4]), "MRR@20",
                 tmp_path / "selected.json")
    settings = RunSettings.from_config({}, "ml-100k", "srgnn", "llm4sbr-tuned", 4)
    tuned, record = apply_selection(settings, tmp_path / "selected.json")
    for key, value in g.configs[2].items():
        assert getattr(tuned, key) == value
    assert isinstance(tuned.lr_step, int) and tuned.seed == 4
    assert tuned.variant.name == "llm4sbr-tuned" and record["selected"]["trial"] == 2
    with pytest.raises(InvalidInputError, match="the selection is of 'llm4sbr'"):
        apply_selection(RunSettings.from_config({}, "ml-100k", "srgnn", "wo_a-tuned", 0),
                        tmp_path / "selected.json")
    with pytest.raises(ConfigError, match="not a -tuned variant"):
        apply_selection(RunSettings.from_config({}, "ml-100k", "srgnn", "llm4sbr", 0),
                        tmp_path / "selected.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="not a search selection"):
        apply_selection(settings, tmp_path / "bad.json")


# --- through Snakemake on ml-100k ---------------------------------------------------------

TUNED = "results/ml-100k/runs/srgnn/base-tuned/seed{seed}/metrics.json"


def run_workflow(tmp_path, *targets, extra=()):
    overrides = tmp_path / "train.yaml"
    overrides.write_text(yaml.safe_dump({"train": {
        "epochs": 1, "dim": 16, "seeds": [0, 1], "variants": ["base-tuned"],
        "backbones": ["srgnn"], "llmseqsim": [],
        "tuning": {"space": {"lr": [0.0001, 0.003], "lr_step": [3]}, "trials": 2,
                   "seed": 1}}}))
    return snakemake(tmp_path, "--config", f"raw_dir={shared_data()}", 'datasets=["ml-100k"]',
                     *extra, "--", *targets,
                     configs=("config.yaml", "configs/shared-data.yaml", str(overrides)))


@pytest.mark.workflow
def test_tuned_runs_train_with_the_trial_best_on_validation(tmp_path):
    planned = run_workflow(tmp_path, *(TUNED.format(seed=s) for s in (0, 1)), extra=("-n",))
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", planned.stdout + planned.stderr, re.M))
    assert (counts["tune_trial"], counts["tune_select"], counts["train_run"]) == ("2", "1", "2")

    run_workflow(tmp_path, *(TUNED.format(seed=s) for s in (0, 1)))
    search = tmp_path / "results/ml-100k/tuning/srgnn/base"
    trials = [json.loads((search / f"trial{k}/metrics.json").read_text()) for k in (0, 1)]
    assert [t["config"]["lr"] for t in trials] == [0.0001, 0.003]
    assert all(t["config"]["seed"] == 1 and t["config"]["variant"] == "base" for t in trials)
    selection = json.loads((search / "selected.json").read_text())
    best = max((0, 1), key=lambda k: (trials[k]["valid"]["MRR@20"], -k))
    assert selection["selected"]["trial"] == best
    for seed in (0, 1):
        metrics = json.loads((tmp_path / TUNED.format(seed=seed)).read_text())
        assert metrics["config"]["lr"] == trials[best]["config"]["lr"]
        assert metrics["config"]["seed"] == seed
        assert metrics["config"]["variant"] == "base-tuned"
        assert metrics["tuning"]["selected"]["trial"] == best
        assert metrics["tuning"]["budget"] == 2
