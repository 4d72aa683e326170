"""The validation search behind a ``-tuned`` variant (no torch import: the Snakefile plans
the trials with it).

A backbone and its LLM4SBR version are only compared fairly when both are tuned with the
same effort. For each backbone × variant, :func:`trial_grid` draws ``train.tuning.trials``
configurations from the grid of ``train.tuning.space`` — restricted to the keys the variant
uses (τ only where it weighs a loss term, and not where the name fixes it with -tau<x>) —
with a generator seeded by ``train.tuning.seed``; every variant gets the same number of
configurations (its whole grid when the grid is smaller: :attr:`TrialGrid.budget`
records what it got). Each configuration is one ordinary training run with seed
``train.tuning.seed`` (``layout.TRIAL_DIR``), selected on the validation split as every
run is; :func:`select_trial` keeps the configuration with the best validation
``select_metric`` (the first trial on a tie) and writes ``layout.TUNING_SELECTION``.
The variant's ``-tuned`` runs — every seed — read it (:func:`apply_selection`) and record
the whole search under ``tuning`` in their metrics.json. The test split plays no part.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from ..errors import ConfigError, InvalidInputError
from ..io import AtomicFiles
from ..variants import Variant, parse_variant
from .settings import RunSettings, train_schema

#: the train keys a search may vary, in the order a configuration lists them
SEARCHABLE: tuple[str, ...] = ("lr", "lr_step", "lr_gamma", "weight_decay", "tau")


def tuning_settings(train: Mapping[str, Any] | None) -> dict[str, Any]:
    """``train.tuning`` validated, with its schema defaults filled in (space, trials,
    seed)."""
    schema = train_schema()["properties"]["tuning"]
    given = copy.deepcopy(dict((train or {}).get("tuning") or {}))
    try:
        jsonschema.validate(given, schema)
    except jsonschema.ValidationError as e:
        raise ConfigError(".".join(["train.tuning", *map(str, e.absolute_path)]),
                          e.message) from None
    return {**{k: copy.deepcopy(v["default"]) for k, v in schema["properties"].items()},
            **given}


@dataclass(frozen=True)
class TrialGrid:
    """The configurations one variant's search trains."""

    #: the untuned variant searched
    variant: str
    #: key → the values searched (only the keys the variant uses)
    space: Mapping[str, Sequence[Any]]
    #: the configurations drawn, in trial order (trial k = configs[k])
    configs: tuple[Mapping[str, Any], ...]
    #: the number of points of the whole grid
    grid_size: int
    #: the run seed of every trial
    seed: int

    @property
    def budget(self) -> int:
        """Configurations trained (= trials, or the grid size when that is smaller)."""
        return len(self.configs)

    def record(self) -> dict[str, Any]:
        return {"variant": self.variant, "space": {k: list(v) for k, v in self.space.items()},
                "grid_size": self.grid_size, "budget": self.budget, "seed": self.seed,
                "configs": [dict(c) for c in self.configs]}


def searched_keys(variant: Variant, space: Mapping[str, Sequence[Any]]) -> list[str]:
    """The keys of ``space`` that change ``variant``'s training (τ only where it weighs a
    loss term and the name does not fix it)."""
    return [k for k in SEARCHABLE if k in space
            and (k != "tau" or (variant.uses_tau and variant.tau is None))]


def trial_grid(train: Mapping[str, Any] | None, variant: str) -> TrialGrid:
    """The configurations the search of ``variant`` (tuned or not: the untuned name is
    searched) trains: ``trials`` points of its grid, drawn without replacement by a
    generator seeded with ``tuning.seed`` and the searched keys, in grid order."""
    spec = parse_variant(variant)
    tuning = tuning_settings(train)
    space = tuning["space"]
    unknown = sorted(set(space) - set(SEARCHABLE))
    if unknown:
        raise ConfigError("train.tuning.space", f"cannot search {unknown}; searchable keys: "
                          f"{list(SEARCHABLE)}")
    keys = searched_keys(spec, space)
    if not keys:
        raise ConfigError("train.tuning.space", f"nothing to search for variant "
                          f"{spec.untuned!r}: the space {sorted(space)} has no key it uses")
    grid = [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(space[k] for k in keys))]
    grid_size, trials = len(grid), int(tuning["trials"])
    if trials < grid_size:
        # The draw depends on the seed and the searched keys only, so variants that search
        # the same keys (base and wo_au; every tau-weighted variant) try the same points.
        rng = random.Random(f"{tuning['seed']}:{','.join(keys)}")
        grid = [grid[i] for i in sorted(rng.sample(range(len(grid)), trials))]
    return TrialGrid(spec.untuned, {k: list(space[k]) for k in keys}, tuple(grid), grid_size,
                     int(tuning["seed"]))


def trial_settings(settings: RunSettings, config: Mapping[str, Any]) -> RunSettings:
    """``settings`` with a trial's configuration in place of the shared recipe."""
    unknown = sorted(set(config) - set(SEARCHABLE))
    if unknown:
        raise ConfigError("train.tuning.space", f"cannot search {unknown}")
    return dataclasses.replace(settings, **{k: _typed(k, v) for k, v in config.items()})


def _typed(key: str, value: Any) -> Any:
    return int(value) if key == "lr_step" else float(value)


def select_trial(grid: TrialGrid, trial_metrics: Sequence[str | Path], select_metric: str,
                 out_path: str | Path) -> dict[str, Any]:
    """Write the search's outcome (atomically) and return it: every trial's
    configuration and validation scores, and the selected trial (best validation
    ``select_metric``; the first on a tie). ``trial_metrics[k]`` is trial k's
    metrics.json."""
    if len(trial_metrics) != grid.budget:
        raise InvalidInputError(f"{grid.budget} trials planned for {grid.variant!r}, "
                                f"{len(trial_metrics)} metrics files given")
    trials = []
    for k, (config, path) in enumerate(zip(grid.configs, trial_metrics, strict=True)):
        metrics = json.loads(Path(path).read_text())
        recorded = {key: metrics["config"][key] for key in config}
        if any(_typed(key, recorded[key]) != _typed(key, config[key]) for key in config):
            raise InvalidInputError(f"trial {k} was trained with {recorded}, the search "
                                    f"plans {dict(config)}: the space changed; re-run it",
                                    path)
        if select_metric not in metrics["valid"]:
            raise InvalidInputError(f"no validation {select_metric} in trial {k}", path)
        trials.append({"trial": k, "config": dict(config), "valid": metrics["valid"],
                       "best_epoch": metrics["best_epoch"], "epochs": metrics["epochs"]})
    best = max(trials, key=lambda t: (t["valid"][select_metric], -t["trial"]))
    selection = {**grid.record(), "select_metric": select_metric, "trials": trials,
                 "selected": {"trial": best["trial"], "config": best["config"],
                              "valid": best["valid"][select_metric]}}
    with AtomicFiles() as files:
        files.write_json(out_path, selection)
    return selection


def apply_selection(settings: RunSettings, selection_path: str | Path
                    ) -> tuple[RunSettings, dict[str, Any]]:
    """The settings of a ``-tuned`` run with the selected configuration, and what its
    metrics.json records under ``tuning`` (the whole search)."""
    if not settings.variant.tuned:
        raise ConfigError("train.variants", f"{settings.variant.name!r} is not a -tuned "
                          "variant; only those read a search's selection")
    path = Path(selection_path)
    try:
        selection = json.loads(path.read_text())
        config = selection["selected"]["config"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(f"not a search selection ({e})", path) from None
    if selection.get("variant") != settings.variant.untuned:
        raise InvalidInputError(f"the selection is of {selection.get('variant')!r}, the run "
                                f"is {settings.variant.name!r}", path)
    return trial_settings(settings, config), selection
