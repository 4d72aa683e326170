"""The paper's Tables 2–5 from our runs, beside the paper's numbers.

Each table is built as a :class:`Table` — a machine-readable frame (the CSV) plus the
display rows (Markdown and a small HTML page for the Snakemake report) — and written
atomically by :func:`write_table`. Our metrics are test-set values of the epoch selected
on VALIDATION, as mean ± sample std over seeds, in percent.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MissingRunError
from ..io import AtomicFiles
from .paper import (
    PAPER_ABLATION_BACKBONE,
    PAPER_TABLE2,
    PAPER_TABLE3_ROWS,
    PAPER_TABLE4,
    PAPER_TABLE5,
    TABLE3_METRICS,
    VARIANT_LABELS,
    backbone_label,
)
from .plan import TABLE3_VARIANTS, TABLE4_VARIANTS
from .runs import METRICS, load_runs, read_metrics
from .significance import compare_runs

DASH = "—"


@dataclass
class Table:
    """A rendered table: ``data`` is written as CSV, ``header`` / ``rows`` as Markdown
    and HTML under ``title``, followed by the ``notes`` paragraphs."""

    title: str
    header: list[str]
    rows: list[list[str]]
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "---|" * len(self.header))
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                  for row in self.rows]
        if not self.rows:
            lines.append("| " + " | ".join(["(no runs)"] + [""] * (len(self.header) - 1))
                         + " |")
        for note in self.notes:
            lines += ["", note]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        return markdown_page(self.markdown())

    def csv(self) -> str:
        buffer = io.StringIO()
        self.data.to_csv(buffer, index=False, float_format="%.6g")
        return buffer.getvalue()


def write_table(table: Table, csv: str | Path, md: str | Path,
                html_path: str | Path | None = None) -> None:
    """Write the CSV, the Markdown and (optionally) the HTML page, all or none."""
    with AtomicFiles() as files:
        files.write_text(csv, table.csv())
        files.write_text(md, table.markdown())
        if html_path is not None:
            files.write_text(html_path, table.html())


_STYLE = ("body{font-family:sans-serif;font-size:13px;margin:1em}"
          "table{border-collapse:collapse;margin-bottom:1em}th,td{border:1px solid #bbb;"
          "padding:3px 6px;vertical-align:top}th{background:#eee}")


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1].replace("\\|", "\0")
    return [c.strip().replace("\0", "|") for c in inner.split("|")]


def markdown_page(markdown: str) -> str:
    """A standalone HTML page from the Markdown subset the report writes: ``#`` / ``##``
    headings, pipe tables and paragraphs."""
    esc = html.escape
    out: list[str] = []
    title = "report"
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 4)
            text = line.lstrip("#").strip()
            title = text if title == "report" else title
            out.append(f"<h{level}>{esc(text)}</h{level}>")
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            head, body = _cells(block[0]), [_cells(b) for b in block[2:]]
            out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                    for row in body]
            out.append("</table>")
            continue
        elif line.strip():
            out.append(f"<p>{esc(line)}</p>")
        i += 1
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{esc(title)}"
            f"</title><style>{_STYLE}</style></head><body>\n" + "\n".join(out)
            + "\n</body></html>\n")


def write_markdown(markdown: str, md: str | Path, html_path: str | Path | None = None
                   ) -> None:
    """Write Markdown and (optionally) its HTML page, all or none."""
    with AtomicFiles() as files:
        files.write_text(md, markdown)
        if html_path is not None:
            files.write_text(html_path, markdown_page(markdown))


# --- formatting -----------------------------------------------------------------------

def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof = 1; 0 for one value) and count."""
    x = np.asarray(list(values), dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, 0
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0, int(x.size)


def fmt_pm(mean: float, std: float, n: int, digits: int = 2) -> str:
    """``"12.34 ± 0.56"``; one seed prints the mean alone; no value prints a dash."""
    if n == 0 or math.isnan(mean):
        return DASH
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:,.{digits}f}{suffix}"


def fmt_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return DASH
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def improvement(base: float, new: float) -> float:
    """Relative change of the means in % (the paper's "Improv.")."""
    return 100.0 * (new - base) / base if base else math.nan


def ours_label(n_seeds: int) -> str:
    return f"ours ({n_seeds} seed{'' if n_seeds == 1 else 's'})"


def selection_note(n_seeds: Sequence[int]) -> str:
    seeds = sorted(set(n_seeds))
    count = ", ".join(map(str, seeds)) if seeds else "0"
    return (f"Ours: test-set metrics of the epoch selected on the VALIDATION split, mean ± "
            f"sample std over N = {count} seed{'' if seeds == [1] else 's'}, in %. The paper "
            "selected epochs on the test set and its MRR@5/10 drop samples ranked beyond K: "
            "compare on P@K and the @20 metrics.")


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

def _runs_frame(metrics_paths: Iterable[str | Path]) -> pd.DataFrame:
    runs = load_runs(metrics_paths)
    if runs.empty:
        return pd.DataFrame(columns=["dataset", "backbone", "variant", "seed", *METRICS])
    return runs


def table3(metrics_paths: Iterable[str | Path], n_resamples: int = 10_000, seed: int = 0
           ) -> Table:
    """Per backbone: the backbone alone (``base``) vs LLM4SBR (``llm4sbr``), P/MRR/NDCG
    @5/10/20, improvement of the means and paired p-values (t-test and bootstrap over the
    test samples, per-sample metrics averaged over seeds) from each run's ranks.parquet
    (next to its metrics.json), beside the paper's Table 3 rows."""
    paths = [Path(p) for p in metrics_paths]
    runs = _runs_frame(paths)
    runs["path"] = [str(p) for p in paths] if len(paths) else []
    runs = runs[runs["variant"].isin(TABLE3_VARIANTS)]
    header = ["model", "row", *METRICS]
    rows: list[list[str]] = []
    data: list[dict] = []
    seeds_seen: list[int] = []
    for (dataset, backbone), g in runs.groupby(["dataset", "backbone"], sort=False):
        label = backbone_label(backbone)
        sides = {v: g[g["variant"] == v] for v in TABLE3_VARIANTS}
        paper = PAPER_TABLE3_ROWS.get(dataset, {}).get(backbone, {})
        tests = None
        if all(len(s) for s in sides.values()):
            ranks = {v: [Path(p).with_name("ranks.parquet") for p in s["path"]]
                     for v, s in sides.items()}
            tests = compare_runs(ranks["base"], ranks["llm4sbr"], METRICS, n_resamples,
                                 seed).set_index("metric")
        stats = {v: {m: mean_std(s[m]) for m in METRICS} for v, s in sides.items()}
        for v, s in sides.items():
            if len(s):
                seeds_seen.append(len(s))
                name = label if v == "base" else f"LLM4SBR({label})"
                rows.append([name, ours_label(len(s)),
                             *[fmt_pm(100 * st[0], 100 * st[1], st[2])
                               for st in stats[v].values()]])
            if paper.get(v):
                name = label if v == "base" else f"LLM4SBR({label})"
                rows.append([name, "paper", *[fmt(paper[v].get(m)) for m in METRICS]])
        if all(len(s) for s in sides.values()):
            rows.append([f"{label} Improv.", "ours",
                         *[fmt(improvement(stats["base"][m][0], stats["llm4sbr"][m][0]),
                               suffix="%") for m in METRICS]])
        if paper.get("improv"):
            rows.append([f"{label} Improv.", "paper",
                         *[fmt(paper["improv"].get(m), suffix="%") for m in METRICS]])
        if tests is not None:
            rows.append([f"{label} p", "paired t-test",
                         *[fmt_p(tests.loc[m, "p_ttest"]) for m in METRICS]])
            rows.append([f"{label} p", f"paired bootstrap ({n_resamples:,})",
                         *[fmt_p(tests.loc[m, "p_bootstrap"]) for m in METRICS]])
        for m in METRICS:
            (bm, bs, bn), (lm, ls, ln) = stats["base"][m], stats["llm4sbr"][m]
            record = {"dataset": dataset, "backbone": backbone, "metric": m,
                      "base_mean": 100 * bm, "base_std": 100 * bs, "base_seeds": bn,
                      "llm4sbr_mean": 100 * lm, "llm4sbr_std": 100 * ls, "llm4sbr_seeds": ln,
                      "improvement_pct": improvement(bm, lm) if bn and ln else math.nan}
            if tests is not None:
                t = tests.loc[m]
                record.update({"mean_diff": 100 * t["mean_diff"], "p_ttest": t["p_ttest"],
                               "p_bootstrap": t["p_bootstrap"], "ci_low": 100 * t["ci_low"],
                               "ci_high": 100 * t["ci_high"], "test_samples": int(t["n"])})
            record.update({"paper_base": paper.get("base", {}).get(m, math.nan),
                           "paper_llm4sbr": paper.get("llm4sbr", {}).get(m, math.nan),
                           "paper_improvement_pct": paper.get("improv", {}).get(m, math.nan)})
            data.append(record)
    columns = ["dataset", "backbone", "metric", "base_mean", "base_std", "base_seeds",
               "llm4sbr_mean", "llm4sbr_std", "llm4sbr_seeds", "improvement_pct", "mean_diff",
               "ci_low", "ci_high", "p_ttest", "p_bootstrap", "test_samples", "paper_base",
               "paper_llm4sbr", "paper_improvement_pct"]
    notes = [selection_note(seeds_seen),
             "Improv. = relative change of the means in %. p = two-sided paired tests of "
             "LLM4SBR against the backbone over the test samples (each sample's metric "
             "averaged over the seeds of each side); bootstrap: percentile resampling of the "
             "per-sample differences, seeded. The paper reports no NDCG in Table 3 and only "
             "Beauty and ML-1M; it gives no seeds, spreads or tests."]
    return Table("Table 3. The backbones with and without LLM4SBR (%)", header, rows,
                 pd.DataFrame(data, columns=columns), notes)


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
             "the P@K that §5.3.2 quotes from Fig. 6 (w/o Long, w/o Short, Normal)."]
    return Table("Table 4. Ablations of LLM4SBR (%)", header, rows,
                 pd.DataFrame(data, columns=["dataset", "backbone", "variant", "metric",
                                             "mean", "std", "seeds", "paper"]), notes)


# --- Table 5 --------------------------------------------------------------------------

def run_costs(path: str | Path) -> dict[str, float]:
    """A run's costs from metrics.json: peak memory (host and CUDA, MB), seconds per
    training epoch, training seconds up to and including the best epoch, evaluation
    seconds, epochs run and the best epoch."""
    m = read_metrics(path)
    runtime = m.get("runtime", {})
    train_seconds = list(runtime.get("train_seconds", []))
    best = int(m.get("best_epoch", 0))
    peak = runtime.get("peak_memory_mb", {}) or {}
    spe = m.get("seconds_per_epoch")
    if spe is None and train_seconds:
        spe = float(np.mean(train_seconds))
    return {"peak_host_mb": float(peak.get("host", math.nan)),
            "peak_cuda_mb": float(peak.get("cuda", math.nan)),
            "seconds_per_epoch": float(spe) if spe is not None else math.nan,
            "time_to_best": float(sum(train_seconds[:best])) if train_seconds else math.nan,
            "eval_seconds": float(runtime.get("eval_seconds", math.nan)),
            "epochs": float(m.get("epochs", math.nan)), "best_epoch": float(best),
            "device": str(runtime.get("device", "")), "threads": runtime.get("threads")}


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


# --- per-stage runtime ---------------------------------------------------------------

def stage_runtime(benchmark_paths: Iterable[str | Path], root: str | Path) -> pd.DataFrame:
    """Snakemake benchmark files (``benchmark:`` TSVs, columns ``s``, ``h:m:s``,
    ``max_rss``, …) summed per stage: the stage is the first directory below ``root``
    (``results/{dataset}/benchmarks``), or the file's stem for files directly in it.
    Columns: stage, jobs, seconds, max_rss_mb (the largest over the stage's jobs)."""
    root = Path(root)
    totals: dict[str, dict[str, float]] = {}
    for path in benchmark_paths:
        path = Path(path)
        rel = path.relative_to(root)
        stage = rel.parts[0] if len(rel.parts) > 1 else path.stem
        frame = pd.read_csv(path, sep="\t")
        entry = totals.setdefault(stage, {"jobs": 0, "seconds": 0.0, "max_rss_mb": 0.0})
        entry["jobs"] += 1
        entry["seconds"] += float(pd.to_numeric(frame["s"], errors="coerce").fillna(0).sum())
        if "max_rss" in frame:
            rss = pd.to_numeric(frame["max_rss"], errors="coerce").max()
            if not math.isnan(rss):
                entry["max_rss_mb"] = max(entry["max_rss_mb"], float(rss))
    out = pd.DataFrame([{"stage": k, **v} for k, v in totals.items()],
                       columns=["stage", "jobs", "seconds", "max_rss_mb"])
    out["jobs"] = out["jobs"].astype(int)
    return out.sort_values("seconds", ascending=False, ignore_index=True)


def runtime_table(benchmark_paths: Iterable[str | Path], root: str | Path) -> Table:
    frame = stage_runtime(benchmark_paths, root)
    rows = [[r.stage, str(r.jobs), fmt(r.seconds, 1), fmt(r.seconds / 3600, 3),
             fmt(r.max_rss_mb, 0)] for r in frame.itertuples()]
    notes = ["From the Snakemake benchmark files of the dataset: wall-clock seconds summed "
             "over a stage's jobs; max RSS is the largest of its jobs."]
    return Table("Runtime per workflow stage", ["stage", "jobs", "seconds", "hours",
                                                "max RSS (MB)"], rows, frame, notes)


__all__ = ["TABLE3_METRICS", "Table", "table2", "table3", "table4", "table5",
           "runtime_table", "stage_runtime", "write_table", "run_costs"]
