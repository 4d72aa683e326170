"""Tuned pairs: LLM4SBR against its backbone under the shared recipe AND with each side
tuned by its own validation search of the same budget (the ``-tuned`` variants,
llm4sbr_core/train/tuning.py).

A gain under one shared recipe may only say that the recipe suits one side better. For
each backbone the table sets ``base`` and ``{variant}`` (shared recipe) beside
``base-tuned`` and ``{variant}-tuned``, with the configuration each search selected, and
tests two steps per backbone — ``{variant} − base`` and ``{variant}-tuned − base-tuned``
— with runs paired by seed and test samples clustered by session (:mod:`.significance`),
one Holm family for the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..errors import InvalidInputError
from ..variants import TUNED_SUFFIX
from .render import Section, Table, fmt_pm, seed_summary, selection_note
from .runs import load_runs, read_metrics
from .significance import (
    EQUIVALENCE_MARGINS_PP,
    MAX_MDD_PP,
    MIN_SESSIONS,
    TEST_HEADER,
    TESTED_METRICS,
    RankReader,
    Side,
    assess_family,
    compare_sides,
    family_notes,
    untested_cells,
)

DEFAULT_METRICS: tuple[str, ...] = ("P@5", "P@20", "MRR@5", "MRR@20", "NDCG@20")
#: how the searched keys (train/tuning.py's SEARCHABLE) are printed, in their order
_SHORT = {"lr": "lr", "lr_step": "step", "lr_gamma": "γ", "weight_decay": "wd", "tau": "τ"}


def searched_setting(paths: Sequence[str]) -> str:
    """The configuration a -tuned variant's runs trained with and the search's budget,
    e.g. ``lr 0.003, step 10, wd 0, τ 0.1 (best of 8)``; "shared recipe" otherwise."""
    return _setting(paths, [read_metrics(p) for p in paths])


def _setting(paths: Sequence[str], runs: Sequence[Mapping]) -> str:
    records = [r.get("tuning") for r in runs]
    if not any(records):
        return "shared recipe"
    selected = {json.dumps(r["selected"]["config"], sort_keys=True) if r else None
                for r in records}
    if len(selected) != 1 or None in selected:
        raise InvalidInputError("the seeds of one -tuned variant trained with different "
                                "selections (re-run them after the search)", paths[0])
    config, budget = records[0]["selected"]["config"], records[0]["budget"]
    return (", ".join(f"{_SHORT[k]} {config[k]:g}" for k in _SHORT if k in config)
            + f" (best of {budget})")


def validation_scores(runs: Sequence[Mapping]) -> tuple[str, dict[str, float]]:
    """The selection metric on the validation split: for a tuned variant the winning
    trial's score, then the mean ± std over the seeds trained with its configuration
    (``"4.57 → 3.73 ± 0.97"``, in %); the seeds' alone under the shared recipe. A drop
    from the first to the second is the search's optimism: the best of several scores
    on one seed and one validation split is biased upwards."""
    metric = runs[0]["config"]["select_metric"]
    seeds = pd.Series([100 * r["valid"][metric] for r in runs], dtype=float)
    mean, std = seeds.mean(), (seeds.std() if len(seeds) > 1 else float("nan"))
    fields = {"valid_metric": metric, "valid_seeds_mean": mean, "valid_seeds_std": std}
    cell = fmt_pm(mean, std, len(seeds))
    record = runs[0].get("tuning")
    if record:
        fields["valid_search"] = 100 * record["selected"]["valid"]
        cell = f"{fields['valid_search']:.2f} → {cell}"
    return cell, fields


def tuned_pairs_table(metrics_paths: Iterable[str | Path], variant: str = "llm4sbr",
                      metrics: Sequence[str] = DEFAULT_METRICS,
                      tested: Sequence[str] = TESTED_METRICS, n_resamples: int = 10_000,
                      seed: int = 0, test_samples: str | Path | None = None,
                      margins_pp: Mapping[str, float] = EQUIVALENCE_MARGINS_PP,
                      alpha: float = 0.05, min_sessions: int = MIN_SESSIONS,
                      max_mdd_pp: float = MAX_MDD_PP, title: str | None = None) -> Table:
    """One row per backbone × {base, ``variant``} × {shared recipe, tuned} present among
    ``metrics_paths`` (mean ± std over seeds, the selected configuration), and the tests
    ``variant`` − base under each recipe whose two sides have runs."""
    names = ("base", variant, f"base{TUNED_SUFFIX}", f"{variant}{TUNED_SUFFIX}")
    runs = load_runs([Path(p) for p in metrics_paths])
    runs = runs[runs["variant"].isin(names)] if len(runs) else runs
    if not len(runs):
        raise InvalidInputError(f"no runs of {list(names)} among the runs given")
    reader = RankReader(test_samples)
    rows, data, seeds, steps, comparisons, labels = [], [], [], [], [], []
    valid_sizes: set[int] = set()
    for backbone, own in runs.groupby("backbone", sort=False):
        by_variant = {v: g for v, g in own.groupby("variant", sort=False)}
        for v in names:
            if v not in by_variant:
                continue
            g = by_variant[v]
            seeds.append(len(g))
            records = [read_metrics(p) for p in g["path"]]
            setting = _setting(list(g["path"]), records)
            valid_cell, valid_fields = validation_scores(records)
            valid_sizes |= {r["data"]["valid_samples"] for r in records
                            if "valid_samples" in r.get("data", {})}
            cells, fields = seed_summary(g, metrics, tested)
            rows.append([backbone, v, str(len(g)), setting, valid_cell, *cells])
            data.append({"backbone": backbone, "variant": v, "seeds": len(g),
                         "setting": setting, **valid_fields, **fields})
        for recipe, (a, b) in (("shared recipe", names[:2]), ("tuned", names[2:])):
            if a in by_variant and b in by_variant:
                comparisons.append(compare_sides(
                    reader, Side.of_runs(a, by_variant[a]), Side.of_runs(b, by_variant[b]),
                    tested, n_resamples, seed))
                steps.append((backbone, recipe, a, b))
                labels.append(f"{backbone} {b} − {a}")
    tests = assess_family(comparisons, margins_pp, alpha)
    step_rows = []
    for (backbone, recipe, a, b), comparison, per_metric in zip(steps, comparisons, tests,
                                                                strict=True):
        for m in tested:
            if m in per_metric:
                step_rows.append([backbone, recipe, f"{b} − {a}", m, *per_metric[m].cells()])
                data.append({"backbone": backbone, "recipe": recipe, "step": f"{b} - {a}",
                             "metric": m, **per_metric[m].record()})
        if not per_metric:
            step_rows.append([backbone, recipe, f"{b} − {a}",
                              *untested_cells(len(comparison.pairing.pairs))])
    warnings, test_notes = family_notes(
        comparisons, tests, labels, "base",
        f"B = `{variant}`, A = `base` of the same backbone and recipe", tested, margins_pp,
        n_resamples, seed, alpha, min_sessions=min_sessions, max_mdd_pp=max_mdd_pp)
    notes = [selection_note(seeds),
             "Tuned: each side's own validation search with the same budget (the "
             "configurations trained are drawn from the grid of the keys the side uses; "
             "the best validation score trains every seed); setting = the configuration "
             "selected (lr, StepLR step, weight decay, τ) and the number tried. "
             "valid = the selection metric on the validation split "
             f"({_sizes(valid_sizes)}): the winning trial's score → mean ± std over the "
             "seeds trained with its configuration; the drop between them is the "
             "search's optimism (the best of several noisy scores).",
             *test_notes]
    missing = [f"{b} {v}" for b in dict.fromkeys(runs["backbone"]) for v in names
               if not ((runs["backbone"] == b) & (runs["variant"] == v)).any()]
    if missing:
        notes.append("Not run, so their tests are missing: " + ", ".join(missing) + ".")
    sections = ([Section("Tests (B − A)", ["backbone", "recipe", "step", *TEST_HEADER],
                         step_rows)] if step_rows else [])
    return Table(title or f"{variant} against its backbone, shared recipe and tuned pairs (%)",
                 ["backbone", "variant", "seeds", "setting", "valid (search → seeds)",
                  *metrics], rows,
                 pd.DataFrame(data), notes, sections, warnings)


def _sizes(sizes: set[int]) -> str:
    """"550 samples", or a range when the runs' validation splits differ."""
    if not sizes:
        return "size not recorded"
    low, high = min(sizes), max(sizes)
    return f"{low:,} samples" if low == high else f"{low:,}–{high:,} samples"
