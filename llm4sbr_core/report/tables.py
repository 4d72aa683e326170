"""The paper's Tables 2–5 from our runs, beside the paper's numbers.

Each table is a :class:`~llm4sbr_core.report.render.Table` (written by
:func:`~llm4sbr_core.report.render.write_table`). Our metrics are test-set values of the
epoch selected on VALIDATION, as mean ± sample std over seeds, in percent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..errors import MissingRunError
from ..layout import KNN_VARIANT
from .paper import (
    PAPER_ABLATION_BACKBONE,
    PAPER_TABLE2,
    PAPER_TABLE3_ROWS,
    PAPER_TABLE4,
    PAPER_TABLE5,
    VARIANT_LABELS,
    backbone_label,
)
from .plan import TABLE3_VARIANTS, TABLE4_VARIANTS
from .render import (
    DASH,
    Section,
    Table,
    fmt,
    fmt_pm,
    improvement,
    mean_std,
    ours_label,
    selection_note,
)
from .runs import METRICS, load_runs
from .runtime import run_costs
from .significance import (
    EQUIVALENCE_MARGINS_PP,
    MAX_MDD_PP,
    MIN_SESSIONS,
    TEST_FIELDS,
    TEST_HEADER,
    TESTED_METRICS,
    RankReader,
    Side,
    assess_family,
    compare_sides,
    family_notes,
)


def _runs_frame(metrics_paths: Iterable[str | Path]) -> pd.DataFrame:
    """The runs of ``metrics_paths`` (:func:`.runs.load_runs`); an empty frame with the
    metric columns for none."""
    runs = load_runs(metrics_paths)
    if runs.empty:
        return pd.DataFrame(columns=["dataset", "backbone", "variant", "seed", *METRICS,
                                     "path"])
    return runs


# --- Table 2 --------------------------------------------------------------------------

def table2(stats_paths: Iterable[str | Path]) -> Table:
    """Dataset statistics (results/{dataset}/data/stats.json) beside the paper's Table 2.
    The paper's "Train" counts our train + valid samples (validation is carved from it)."""
    header = ["dataset", "source", "train", "valid", "train + valid", "test", "sessions",
              "clicks", "items", "avg. input length", "avg. session length", "note"]
    rows, data = [], []
    for path in stats_paths:
        path = Path(path)
        if not path.is_file():
            raise MissingRunError(path, "dataset statistics (rule build_dataset)")
        s = json.loads(path.read_text())
        dataset = s.get("dataset") or path.parents[1].name
        record = {"dataset": dataset, "source": "ours", **{k: s.get(k) for k in (
            "train_samples", "valid_samples", "test_samples", "sessions", "clicks", "items",
            "avg_len_input", "avg_len_session")}, "note": s.get("note", "")}
        record["train_valid_samples"] = record["train_samples"] + record["valid_samples"]
        data.append(record)
        rows.append([dataset, "ours", f"{record['train_samples']:,}",
                     f"{record['valid_samples']:,}", f"{record['train_valid_samples']:,}",
                     f"{record['test_samples']:,}", f"{record['sessions']:,}",
                     f"{record['clicks']:,}", f"{record['items']:,}",
                     fmt(record["avg_len_input"]), fmt(record["avg_len_session"]),
                     record["note"] or ""])
        paper = PAPER_TABLE2.get(dataset)
        if paper:
            data.append({"dataset": dataset, "source": "paper",
                         "train_valid_samples": paper["train"], "test_samples": paper["test"],
                         "clicks": paper["clicks"], "items": paper["items"],
                         "avg_len_input": paper["avg_len"], "note": "paper Table 2"})
            rows.append([dataset, "paper", DASH, DASH, f"{paper['train']:,}",
                         f"{paper['test']:,}", DASH, f"{paper['clicks']:,}",
                         f"{paper['items']:,}", fmt(paper["avg_len"]), DASH, "Table 2"])
    columns = ["dataset", "source", "train_samples", "valid_samples", "train_valid_samples",
               "test_samples", "sessions", "clicks", "items", "avg_len_input",
               "avg_len_session", "note"]
    notes = ["Samples are (session prefix → next click) pairs; the paper's Train column "
             "counts our train + valid samples. The paper reports Beauty and ML-1M only."]
    return Table("Table 2. Dataset statistics", header, rows,
                 pd.DataFrame(data, columns=columns), notes)


# --- Table 3 --------------------------------------------------------------------------

def table3(metrics_paths: Iterable[str | Path], n_resamples: int = 10_000, seed: int = 0,
           tested: Sequence[str] = TESTED_METRICS, test_samples: str | Path | None = None,
           margins_pp: Mapping[str, float] = EQUIVALENCE_MARGINS_PP, alpha: float = 0.05,
           min_sessions: int = MIN_SESSIONS, max_mdd_pp: float = MAX_MDD_PP) -> Table:
    """Per backbone: the backbone alone (``base``) vs LLM4SBR (``llm4sbr``), P/MRR/NDCG
    @5/10/20 mean ± std and the improvement of the means, beside the paper's Table 3
    rows; then a "Tests" section: LLM4SBR against the backbone on each ``tested`` metric
    from the runs' ranks.parquet (next to each metrics.json), seed s against seed s,
    samples clustered by session (:func:`.significance.compare_sides`), Holm over every
    test of the table, verdicts, minimum detectable differences; the notes warn when the
    test set is too small to tell."""
    paths = [Path(p) for p in metrics_paths]
    every_run = _runs_frame(paths)
    runs = every_run[every_run["variant"].isin(TABLE3_VARIANTS)]
    baselines = every_run[every_run["variant"] == KNN_VARIANT]
    header = ["model", "row", *METRICS]
    rows: list[list[str]] = []
    seeds_seen: list[int] = []
    reader = RankReader(test_samples)
    groups, comparisons, labels = [], [], []
    for (dataset, backbone), g in runs.groupby(["dataset", "backbone"], sort=False):
        sides = {v: g[g["variant"] == v] for v in TABLE3_VARIANTS}
        comparison = None
        if all(len(s) for s in sides.values()):
            label = backbone_label(backbone)
            comparison = compare_sides(
                reader,
                *[Side.of_runs(name, sides[v])
                  for v, name in (("base", label), ("llm4sbr", f"LLM4SBR({label})"))],
                tested, n_resamples, seed)
            comparisons.append(comparison)
            labels.append(f"{dataset} {label}")
        groups.append((dataset, backbone, sides, comparison))
    tests = assess_family(comparisons, margins_pp, alpha)
    by_comparison = {id(c): t for c, t in zip(comparisons, tests, strict=True)}

    data: list[dict] = []
    test_rows: list[list[str]] = []
    multi = len({dataset for dataset, *_ in groups}) > 1
    for dataset, backbone, sides, comparison in groups:
        label = backbone_label(backbone)
        paper = PAPER_TABLE3_ROWS.get(dataset, {}).get(backbone, {})
        stats = {v: {m: mean_std(s[m]) for m in METRICS} for v, s in sides.items()}
        for v, s in sides.items():
            name = label if v == "base" else f"LLM4SBR({label})"
            if len(s):
                seeds_seen.append(len(s))
                rows.append([name, ours_label(len(s)),
                             *[fmt_pm(100 * st[0], 100 * st[1], st[2])
                               for st in stats[v].values()]])
            if paper.get(v):
                rows.append([name, "paper", *[fmt(paper[v].get(m)) for m in METRICS]])
        if all(len(s) for s in sides.values()):
            rows.append([f"{label} Improv.", "ours",
                         *[fmt(improvement(stats["base"][m][0], stats["llm4sbr"][m][0]),
                               suffix="%") for m in METRICS]])
        if paper.get("improv"):
            rows.append([f"{label} Improv.", "paper",
                         *[fmt(paper["improv"].get(m), suffix="%") for m in METRICS]])
        per_metric = by_comparison[id(comparison)] if comparison is not None else {}
        for m in tested:
            if m in per_metric:
                test_rows.append([f"LLM4SBR({label}) vs {label}",
                                  *([dataset] if multi else []), m, *per_metric[m].cells()])
        for m in METRICS:
            (bm, bs, bn), (lm, ls, ln) = stats["base"][m], stats["llm4sbr"][m]
            record = {"dataset": dataset, "backbone": backbone, "metric": m,
                      "base_mean": 100 * bm, "base_std": 100 * bs, "base_seeds": bn,
                      "llm4sbr_mean": 100 * lm, "llm4sbr_std": 100 * ls, "llm4sbr_seeds": ln,
                      "improvement_pct": improvement(bm, lm) if bn and ln else math.nan}
            if m in per_metric:
                record.update(per_metric[m].record())
                record["clusters"] = comparison.clusters
            record.update({"paper_base": paper.get("base", {}).get(m, math.nan),
                           "paper_llm4sbr": paper.get("llm4sbr", {}).get(m, math.nan),
                           "paper_improvement_pct": paper.get("improv", {}).get(m, math.nan)})
            data.append(record)
    for _, run in baselines.iterrows():
        rows.append([backbone_label(run["backbone"]), "ours (tuned on valid, 1 run)",
                     *[fmt(100 * run[m]) for m in METRICS]])
        for m in METRICS:
            data.append({"dataset": run["dataset"], "backbone": run["backbone"], "metric": m,
                         "base_mean": 100 * run[m], "base_std": math.nan, "base_seeds": 1})
    columns = ["dataset", "backbone", "metric", "base_mean", "base_std", "base_seeds",
               "llm4sbr_mean", "llm4sbr_std", "llm4sbr_seeds", "improvement_pct",
               *TEST_FIELDS, "clusters", "paper_base", "paper_llm4sbr",
               "paper_improvement_pct"]
    warnings, test_notes = family_notes(
        comparisons, tests, labels, "base", "B = LLM4SBR(backbone), A = the backbone alone",
        tested, margins_pp, n_resamples, seed, alpha,
        min_sessions=min_sessions, max_mdd_pp=max_mdd_pp)
    notes = [selection_note(seeds_seen),
             "Improv. = relative change of the means over all seeds, in %. The paper reports "
             "no NDCG in Table 3 and only Beauty and ML-1M; it gives no seeds, spreads or "
             "tests.", *test_notes]
    if len(baselines):
        notes.append("Non-neural baselines (" + ", ".join(backbone_label(b) for b in
                                                          baselines["backbone"])
                     + "): no training and no seed, one run each, hyper-parameters tuned on "
                     "the validation split (the grid and its scores are in metrics.json); "
                     "the variants table tests them against each backbone.")
    sections = [Section("Tests: LLM4SBR (B) against the backbone alone (A)",
                        ["comparison", *(["dataset"] if multi else []), *TEST_HEADER],
                        test_rows)] if test_rows else []
    return Table("Table 3. The backbones with and without LLM4SBR (%)", header, rows,
                 pd.DataFrame(data, columns=columns), notes, sections, warnings)


# --- Table 4 --------------------------------------------------------------------------

def table4(metrics_paths: Iterable[str | Path]) -> Table:
    """Ablations (paper Table 4 and the numbers of Fig. 6): every configured variant of
    :data:`TABLE4_VARIANTS` per backbone, beside the paper's values (SR-GNN) where it
    prints them."""
    runs = _runs_frame(metrics_paths)
    runs = runs[runs["variant"].isin(TABLE4_VARIANTS)]
    header = ["backbone", "variant", "row", *METRICS]
    rows, data, seeds_seen = [], [], []
    order = {v: i for i, v in enumerate(TABLE4_VARIANTS)}
    for (dataset, backbone), g in runs.groupby(["dataset", "backbone"], sort=False):
        paper = (PAPER_TABLE4.get(dataset, {}) if backbone == PAPER_ABLATION_BACKBONE else {})
        for variant in sorted(g["variant"].unique(), key=order.__getitem__):
            s = g[g["variant"] == variant]
            seeds_seen.append(len(s))
            stats = {m: mean_std(s[m]) for m in METRICS}
            label = VARIANT_LABELS.get(variant, variant)
            rows.append([backbone_label(backbone), label, ours_label(len(s)),
                         *[fmt_pm(100 * st[0], 100 * st[1], st[2]) for st in stats.values()]])
            if variant in paper:
                rows.append([backbone_label(backbone), label, "paper",
                             *[fmt(paper[variant].get(m)) for m in METRICS]])
            for m, (mean, std, n) in stats.items():
                data.append({"dataset": dataset, "backbone": backbone, "variant": variant,
                             "metric": m, "mean": 100 * mean, "std": 100 * std, "seeds": n,
                             "paper": paper.get(variant, {}).get(m, math.nan)})
    notes = [selection_note(seeds_seen),
             "Paper values: Table 4 (w/o SBR, w/o LLM, w/o AU, LLM4SBR; SR-GNN backbone) and "
             "the P@K that §5.3.2 quotes from Fig. 6 (w/o Long, w/o Short, Normal).",
             "No tests here: the variants table (variants.md) tests every ablation against "
             "the backbone alone, seed-paired and session-clustered, with Holm's correction "
             "and the minimum detectable difference."]
    return Table("Table 4. Ablations of LLM4SBR (%)", header, rows,
                 pd.DataFrame(data, columns=["dataset", "backbone", "variant", "metric",
                                             "mean", "std", "seeds", "paper"]), notes)


# --- Table 5 --------------------------------------------------------------------------

TABLE5_COSTS: tuple[tuple[str, str, int], ...] = (
    ("peak_host_mb", "peak host memory (MB)", 0), ("peak_cuda_mb", "peak GPU memory (MB)", 0),
    ("seconds_per_epoch", "s / epoch", 2), ("epochs", "epochs run", 1),
    ("best_epoch", "best epoch", 1), ("time_to_best", "training s to best epoch", 1),
    ("eval_seconds", "test evaluation s", 2))


def table5(metrics_paths: Iterable[str | Path]) -> Table:
    """Training cost per backbone and variant (mean ± std over seeds) beside the paper's
    Table 5 (SR-GNN and LLM4SBR(SR-GNN) on an A100)."""
    paths = [Path(p) for p in metrics_paths]
    runs = _runs_frame(paths)
    costs = pd.DataFrame([run_costs(p) for p in paths])
    if len(paths):
        runs = pd.concat([runs.drop(columns=[c for c in costs if c in runs])
                          .reset_index(drop=True), costs], axis=1)
    header = ["backbone", "variant", "seeds", "device",
              *[label for _, label, _ in TABLE5_COSTS],
              "paper GPU MB", "paper s / epoch", "paper training s"]
    rows, data = [], []
    for (dataset, backbone, variant), g in runs.groupby(["dataset", "backbone", "variant"],
                                                        sort=False):
        paper = (PAPER_TABLE5.get(dataset, {}).get(variant, {})
                 if backbone == PAPER_ABLATION_BACKBONE else {})
        devices = ", ".join(sorted(set(g["device"]) - {""})) or DASH
        record = {"dataset": dataset, "backbone": backbone, "variant": variant,
                  "seeds": len(g), "device": devices}
        cells = [backbone_label(backbone), variant, str(len(g)), devices]
        for key, _, digits in TABLE5_COSTS:
            mean, std, n = mean_std(g[key])
            record[f"{key}_mean"], record[f"{key}_std"] = mean, std
            cells.append(fmt_pm(mean, std, n, digits))
        record.update({f"paper_{k}": paper.get(k, math.nan)
                       for k in ("gpu_mb", "seconds_per_epoch", "time_to_best")})
        cells += [fmt(paper.get("gpu_mb"), 0), fmt(paper.get("seconds_per_epoch")),
                  fmt(paper.get("time_to_best"))]
        rows.append(cells)
        data.append(record)
    notes = ["Ours: mean ± std over seeds from each run's metrics.json (runtime). Time to "
             "best epoch = training seconds summed over epochs 1 … best epoch (validation "
             "passes excluded). Peak memory: the process's peak resident memory (host) and "
             "torch's peak allocated CUDA memory (GPU runs only). The paper measured SR-GNN "
             "on an NVIDIA A100 (GPU usage, single-epoch and training time)."]
    return Table("Table 5. Training cost", header, rows, pd.DataFrame(data), notes)
