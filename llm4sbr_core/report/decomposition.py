"""Where a backbone's gain comes from: the wrapper's architecture, each half of the
alignment + uniformity term, and the information in the intents.

The LLM4SBR wrapper changes a backbone in two ways at once: its ARCHITECTURE (a projected
intent per view, gates and a fusion layer; for GRU4Rec and SASRec a mean-pooled global
vector, for S²-DHCN the last click's embedding, for TAGNN no target attention) and its
LOSS (τ (L_a + L_u), eqs. 8–9, 15). The variants of one backbone separate them:

    base              the backbone alone
    wo_au             + the wrapper's architecture (no L_a, no L_u)
    wo_a / wo_u       + L_u only / + L_a only
    llm4sbr-random    + L_a + L_u, intents = random directions with the LLM intents' norms
    llm4sbr-shuffled  ... intents = another session's LLM intents (a derangement)
    llm4sbr-items     ... intents = the session's own item titles (no LLM)
    llm4sbr           ... intents = the session's own LLM intents

The same chain with item-title intents (``wo_au-items`` ... ``llm4sbr-items``, controls
``llm4sbr-items-random`` and ``llm4sbr-items-shuffled``) needs no LLM at all. The table
tests the steps between them (:func:`steps_of`), each as B − A with runs paired by seed
and test samples clustered by session (:mod:`.significance`), one Holm family per table
(= per backbone and source).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..errors import InvalidInputError
from .plan import DECOMPOSITION_SOURCES
from .render import Section, Table, seed_summary, selection_note
from .runs import load_runs
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


def steps_of(source: str) -> tuple[tuple[str, str, str], ...]:
    """The tested steps (A, B, what B − A measures) of an intent source's decomposition."""
    s = "" if source == "llm" else f"-{source}"
    intents = "LLM intents" if source == "llm" else "item-title intents"
    steps = [
        ("base", f"wo_au{s}", "the wrapper's architecture"),
        (f"wo_au{s}", f"wo_a{s}", "+ uniformity L_u"),
        (f"wo_au{s}", f"wo_u{s}", "+ alignment L_a"),
        (f"wo_au{s}", f"llm4sbr{s}", f"+ L_a + L_u ({intents})"),
        (f"llm4sbr{s}-shuffled", f"llm4sbr{s}", f"own {intents} instead of another "
                                                  "session's"),
    ]
    steps.append((f"llm4sbr{s}-random", f"llm4sbr{s}", f"{intents} instead of random "
                                                          "ones"))
    if source == "llm":
        steps.append(("llm4sbr-items", "llm4sbr", "LLM intents instead of the item titles"))
    steps.append(("base", f"llm4sbr{s}", "all of it: LLM4SBR against the backbone"))
    return tuple(steps)


#: The steps of the LLM-intent decomposition.
STEPS = steps_of("llm")
DEFAULT_METRICS: tuple[str, ...] = ("P@5", "P@20", "MRR@5", "MRR@20", "NDCG@20")


def decomposition_table(metrics_paths: Iterable[str | Path], backbone: str,
                        source: str = "llm", metrics: Sequence[str] = DEFAULT_METRICS,
                        tested: Sequence[str] = TESTED_METRICS,
                        steps: Sequence[tuple[str, str, str]] | None = None,
                        n_resamples: int = 10_000, seed: int = 0,
                        test_samples: str | Path | None = None,
                        margins_pp: Mapping[str, float] = EQUIVALENCE_MARGINS_PP,
                        alpha: float = 0.05, min_sessions: int = MIN_SESSIONS,
                        max_mdd_pp: float = MAX_MDD_PP, title: str | None = None) -> Table:
    """The decomposition of ``backbone``'s runs among ``metrics_paths`` for an intent
    ``source`` ("llm" or "items"): one row per variant of
    ``plan.DECOMPOSITION_SOURCES[source]`` present (mean ± std over seeds), and a "Steps"
    section testing each step (default :func:`steps_of`) whose two variants have runs."""
    if source not in DECOMPOSITION_SOURCES:
        raise InvalidInputError(f"unknown intent source {source!r}; known: "
                                f"{sorted(DECOMPOSITION_SOURCES)}")
    order = DECOMPOSITION_SOURCES[source]
    steps = steps_of(source) if steps is None else steps
    runs = load_runs([Path(p) for p in metrics_paths])
    runs = runs[runs["backbone"] == backbone] if len(runs) else runs
    if not len(runs):
        raise InvalidInputError(f"no runs of backbone {backbone!r} among the runs given")
    by_variant = {v: g for v, g in runs.groupby("variant", sort=False)}
    shown = [v for v in order if v in by_variant]
    sides = {v: Side.of_runs(v, by_variant[v]) for v in shown}
    reader = RankReader(test_samples)
    done_steps = [(a, b, what) for a, b, what in steps if a in sides and b in sides]
    comparisons = [compare_sides(reader, sides[a], sides[b], tested, n_resamples, seed)
                   for a, b, _ in done_steps]
    tests = assess_family(comparisons, margins_pp, alpha)

    rows, data = [], []
    for v in shown:
        g = by_variant[v]
        cells, fields = seed_summary(g, metrics, tested)
        rows.append([v, str(len(g)), *cells])
        data.append({"backbone": backbone, "variant": v, "seeds": len(g), **fields})
    step_rows = []
    for (a, b, what), comparison, per_metric in zip(done_steps, comparisons, tests,
                                                    strict=True):
        for m in tested:
            if m in per_metric:
                step_rows.append([f"{b} − {a}", what, m, *per_metric[m].cells()])
                data.append({"backbone": backbone, "step": f"{b} - {a}", "measures": what,
                             "metric": m, **per_metric[m].record()})
        if not per_metric:
            step_rows.append([f"{b} − {a}", what,
                              *untested_cells(len(comparison.pairing.pairs))])
    labels = [f"{b} − {a}" for a, b, _ in done_steps]
    warnings, test_notes = family_notes(
        comparisons, tests, labels, "A",
        "B and A = the step's two variants of this backbone", tested, margins_pp,
        n_resamples, seed, alpha, min_sessions=min_sessions, max_mdd_pp=max_mdd_pp)
    missing = [v for v in order if v not in by_variant]
    notes = [selection_note([len(by_variant[v]) for v in shown]), *test_notes]
    if missing:
        notes.append("Not run, so their steps are not tested: " + ", ".join(missing) + ".")
    sections = ([Section("Steps (B − A)", ["step", "measures", *TEST_HEADER], step_rows)]
                if step_rows else [])
    intents = "LLM intents" if source == "llm" else "item-title intents (no LLM)"
    return Table(title or f"{backbone}: where the gain comes from, {intents} (%)",
                 ["variant", "seeds", *metrics], rows, pd.DataFrame(data), notes, sections,
                 warnings)
