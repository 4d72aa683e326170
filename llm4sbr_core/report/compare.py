"""Every variant of one backbone against a reference variant, with paired tests.

Table 4 prints the paper's ablations; this table takes ANY set of runs (sweeps over r and
τ, the ``-items`` / ``-shuffled`` controls, the LLM peers) and sets each variant beside a
reference (``base`` by default): mean ± std over seeds, the relative change of the means
and two-sided paired p-values over the test samples (per-sample metrics averaged over
each side's seeds, :mod:`.significance`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from ..errors import InvalidInputError
from .render import Table, fmt, fmt_p, fmt_pm, improvement, mean_std, selection_note
from .runs import load_runs
from .significance import compare_runs

DEFAULT_METRICS: tuple[str, ...] = ("P@5", "P@20", "MRR@5", "MRR@20", "NDCG@20")


def variant_comparison(metrics_paths: Iterable[str | Path], reference: str = "base",
                       metrics: Sequence[str] = DEFAULT_METRICS, tested: str = "P@20",
                       n_resamples: int = 10_000, seed: int = 0,
                       title: str | None = None) -> Table:
    """One row per (backbone, variant) of ``metrics_paths`` — LLMSeqSim runs count as
    backbone ``llmseqsim`` and are compared with the reference of every backbone they
    sit beside; p-values for the ``tested`` metric and MRR@20."""
    paths = [Path(p) for p in metrics_paths]
    runs = load_runs(paths)
    runs["path"] = [str(p) for p in paths]
    variants = sorted(set(runs["variant"])) if len(runs) else []
    if reference not in variants:
        raise InvalidInputError(f"no {reference!r} runs among the {len(paths)} runs given "
                                f"(variants: {variants})")
    refs = runs[runs["variant"] == reference]
    ref_backbones = list(dict.fromkeys(refs["backbone"]))
    tested_metrics = list(dict.fromkeys([tested, "MRR@20"]))
    header = ["backbone", "variant", "seeds", *metrics,
              *[f"Δ{m} %" for m in tested_metrics], *[f"p({m})" for m in tested_metrics]]
    rows, data, seeds = [], [], []
    for backbone in ref_backbones:
        ref = refs[refs["backbone"] == backbone]
        ref_ranks = [Path(p).with_name("ranks.parquet") for p in ref["path"]]
        ref_stats = {m: mean_std(ref[m]) for m in metrics + tuple(tested_metrics)}
        group = runs[(runs["backbone"] == backbone) | (runs["backbone"] == "llmseqsim")]
        for (run_backbone, variant), g in group.groupby(["backbone", "variant"], sort=False):
            stats = {m: mean_std(g[m]) for m in metrics + tuple(tested_metrics)}
            seeds.append(len(g))
            record = {"backbone": backbone, "run_backbone": run_backbone, "variant": variant,
                      "seeds": len(g)}
            cells = [run_backbone, variant, str(len(g)),
                     *[fmt_pm(100 * stats[m][0], 100 * stats[m][1], stats[m][2])
                       for m in metrics]]
            is_reference = run_backbone == backbone and variant == reference
            deltas, ps = [], []
            for m in tested_metrics:
                delta = improvement(ref_stats[m][0], stats[m][0])
                deltas.append("" if is_reference else fmt(delta, 1, "%"))
                record[f"{m}_mean"], record[f"{m}_std"] = 100 * stats[m][0], 100 * stats[m][1]
                record[f"{m}_change_pct"] = delta
            if is_reference:
                ps = [""] * len(tested_metrics)
            else:
                tests = compare_runs(ref_ranks, [Path(p).with_name("ranks.parquet")
                                                 for p in g["path"]],
                                     tested_metrics, n_resamples, seed).set_index("metric")
                for m in tested_metrics:
                    ps.append(fmt_p(tests.loc[m, "p_ttest"]))
                    record[f"{m}_p_ttest"] = tests.loc[m, "p_ttest"]
                    record[f"{m}_p_bootstrap"] = tests.loc[m, "p_bootstrap"]
            rows.append([*cells, *deltas, *ps])
            data.append(record)
    notes = [selection_note(seeds),
             f"Δ = relative change of the mean against `{reference}` of the same backbone; "
             "p = two-sided paired t-test over the test samples (each sample's metric "
             "averaged over the seeds of each side). LLMSeqSim has no seed (deterministic)."]
    return Table(title or f"Variants against {reference} (%)", header, rows,
                 pd.DataFrame(data), notes)
