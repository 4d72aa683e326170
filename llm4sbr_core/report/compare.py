"""Every variant of one backbone against a reference variant, with paired tests.

Table 4 prints the paper's ablations; this table takes ANY set of runs (sweeps over r and
τ, the ``-items`` / ``-shuffled`` controls, the LLM peers) and sets each variant beside a
reference (``base`` by default): mean ± std over seeds, then one test per variant and
tested metric (:mod:`.significance`): seed s of the variant against seed s of the
reference, test samples clustered by session, Δ in percentage points with its 95 % CI,
the raw and the Holm-adjusted p (the family: every test of this table), a verdict in
words, and the minimum detectable difference. The notes say how many seed pairs each
test has and warn when the test set is too small to tell.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..errors import InvalidInputError
from .render import Section, Table, seed_summary, selection_note
from .runs import load_runs
from .significance import (
    DETERMINISTIC_BACKBONES,
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


def variant_comparison(metrics_paths: Iterable[str | Path], reference: str = "base",
                       metrics: Sequence[str] = DEFAULT_METRICS,
                       tested: Sequence[str] | str = TESTED_METRICS,
                       n_resamples: int = 10_000, seed: int = 0,
                       title: str | None = None, test_samples: str | Path | None = None,
                       margins_pp: Mapping[str, float] = EQUIVALENCE_MARGINS_PP,
                       alpha: float = 0.05,
                       deterministic: Collection[str] = DETERMINISTIC_BACKBONES,
                       min_sessions: int = MIN_SESSIONS, max_mdd_pp: float = MAX_MDD_PP
                       ) -> Table:
    """One row per (backbone, variant) of ``metrics_paths`` with ``metrics`` as mean ± std
    over seeds, and a "Tests" section: every variant against ``reference`` of the same
    backbone on each ``tested`` metric (:func:`.significance.compare_sides`, one Holm
    family for the whole table, TOST margins ``margins_pp`` in percentage points).

    Runs of a deterministic method (backbone in ``deterministic``, e.g. LLMSeqSim's
    aggregations) without a reference of their own are compared with the reference of
    every backbone they sit beside, paired with each of its seeds. ``test_samples``
    (``sample_id``, ``session_id``) gives the sessions when ranks.parquet has none."""
    paths = [Path(p) for p in metrics_paths]
    tested = (tested,) if isinstance(tested, str) else tuple(tested)
    runs = load_runs(paths)
    variants = sorted(set(runs["variant"])) if len(runs) else []
    if reference not in variants:
        raise InvalidInputError(f"no {reference!r} runs among the {len(paths)} runs given "
                                f"(variants: {variants})")
    refs = runs[runs["variant"] == reference]
    ref_backbones = list(dict.fromkeys(refs["backbone"]))
    peers = runs["backbone"].isin(set(deterministic) - set(ref_backbones))
    shown = tuple(dict.fromkeys([*metrics, *tested]))
    reader = RankReader(test_samples)

    entries, comparisons, labels, seeds = [], [], [], []
    for backbone in ref_backbones:
        base = Side.of_runs(reference, refs[refs["backbone"] == backbone],
                            backbone in deterministic)
        # The backbone's own variants first, then the peers it is compared with.
        own = runs[runs["backbone"] == backbone]
        groups = [*own.groupby("variant", sort=False), *runs[peers].groupby(
            ["backbone", "variant"], sort=False)]
        for key, g in groups:
            run_backbone, variant = key if isinstance(key, tuple) else (backbone, key)
            seeds.append(len(g))
            is_reference = run_backbone == backbone and variant == reference
            name = variant if run_backbone == backbone else f"{run_backbone} {variant}"
            comparison = None
            if not is_reference:
                comparison = compare_sides(
                    reader, base, Side.of_runs(name, g, run_backbone in deterministic), tested,
                    n_resamples, seed)
                comparisons.append(comparison)
                labels.append(f"{backbone} {name}")
            entries.append((backbone, run_backbone, variant, name, g, comparison))

    tests = assess_family(comparisons, margins_pp, alpha)
    by_comparison = {id(c): t for c, t in zip(comparisons, tests, strict=True)}
    rows, peer_rows, test_rows, data = [], {}, [], []
    for backbone, run_backbone, variant, name, g, comparison in entries:
        cells, fields = seed_summary(g, metrics, shown)
        row = [run_backbone, variant, str(len(g)), *cells]
        if run_backbone == backbone:
            rows.append(row)
        else:  # a peer's runs are the same beside every backbone: one row, after them all
            peer_rows.setdefault((run_backbone, variant), row)
        record: dict = {"backbone": backbone, "run_backbone": run_backbone,
                        "variant": variant, "seeds": len(g), **fields}
        if comparison is not None:
            pairing = comparison.pairing
            record.update({
                "seed_pairs": len(pairing.pairs),
                "pairs": " ".join(f"{sa}:{sb}" for sa, sb in pairing.pairs),
                "dropped_seeds": " ".join(map(str, pairing.dropped_b)),
                "dropped_reference_seeds": " ".join(map(str, pairing.dropped_a)),
                "clusters": comparison.clusters})
            per_metric = by_comparison[id(comparison)]
            for m in tested:
                if m in per_metric:
                    record.update(per_metric[m].record(f"{m}_"))
                    test_rows.append([backbone, name, m, *per_metric[m].cells()])
            if not per_metric:
                test_rows.append([backbone, name, *untested_cells(len(pairing.pairs))])
        data.append(record)

    warnings, test_notes = family_notes(
        comparisons, tests, labels, reference,
        f"B = the row's variant, A = `{reference}` of the same backbone", tested, margins_pp,
        n_resamples, seed,
        alpha, min_sessions=min_sessions, max_mdd_pp=max_mdd_pp)
    rows += peer_rows.values()
    notes = [selection_note(seeds), *test_notes]
    sections = [Section(f"Tests against {reference} of the same backbone",
                        ["backbone", "variant", *TEST_HEADER], test_rows)] if test_rows else []
    return Table(title or f"Variants against {reference} (%)",
                 ["backbone", "variant", "seeds", *metrics], rows, pd.DataFrame(data),
                 notes, sections, warnings)
