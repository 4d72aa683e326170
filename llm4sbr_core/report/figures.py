"""The paper's figures from our runs (matplotlib, Agg backend, PNG).

* Fig. 5 — LLM4SBR against other uses of an LLM: LLMSeqSim, LLM-Infer (``wo_sbr``), the
  text-initialised backbone (``textinit``, "LLM2SRGNN") and the backbone alone.
* Fig. 6 — the inference views: Normal, w/o Long (short view only), w/o Short (long view
  only) and LLM4SBR (both).
* Fig. 7 — the localization r: ``llm4sbr-r<r>`` variants and ``llm4sbr`` at the
  configured r.
* training curves — validation select-metric per epoch, one line per run.
* per-stage runtime — Snakemake benchmark seconds per workflow stage.

Bars and points are means over seeds with ± sample-std error bars. A figure given no runs
is still written, as a panel that says which runs are missing (the workflow only asks for
figures whose runs are configured).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..io import AtomicFiles
from .paper import backbone_label, textinit_label
from .plan import FIG5_VARIANTS, FIG6_VARIANTS, r_of_variant
from .render import mean_std
from .runs import load_runs, read_metrics
from .runtime import stage_runtime

FIG6_LABELS: dict[str, str] = {"normal": "Normal", "wo_long": "w/o Long (short only)",
                               "wo_short": "w/o Short (long only)",
                               "llm4sbr": "LLM4SBR (both)"}


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6, 4),
               **kwargs) -> tuple[Figure, np.ndarray]:
    """A figure with an ``nrows`` × ``ncols`` array of axes (matplotlib's object API with
    the Agg canvas: no pyplot state, no display needed)."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False, **kwargs))


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> None:
    """Write ``fig`` as PNG atomically."""
    with AtomicFiles() as files:
        fig.savefig(files.temp_path(path), format="png", dpi=dpi, bbox_inches="tight")


def placeholder(path: str | Path, title: str, message: str) -> None:
    """A figure that says why it has no data (e.g. "no runs for Fig. 6 …")."""
    fig, axes = new_figure(figsize=(6, 2.5))
    ax = axes[0, 0]
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    save_figure(fig, path)


def _bars(ax: Axes, labels: Sequence[str], series: dict[str, list[tuple[float, float]]],
          ylabel: str) -> None:
    """Grouped bars: one group per label, one bar per series (mean, std) in percent."""
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        means = [100 * m for m, _ in values]
        stds = [100 * s for _, s in values]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, means, width, yerr=stds,
                      capsize=3, label=name)
        if len(series) == 1:  # grouped bars have no room for value labels
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    # Slanted labels as soon as they would touch (long names like LLMSeqSim (mean)).
    slanted = len(labels) > 5 or sum(map(len, labels)) > 9 * len(labels)
    ax.set_xticks(x, labels, fontsize=8, rotation=25 if slanted else 0,
                  ha="right" if slanted else "center")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def _summary(runs: pd.DataFrame, metric: str) -> tuple[float, float]:
    mean, std, _ = mean_std(runs[metric])
    return mean, std


def fig5_peers(metrics_paths: Iterable[str | Path], llmseqsim_paths: Iterable[str | Path],
               path: str | Path, metrics: Sequence[str] = ("P@20", "MRR@20")) -> None:
    """Fig. 5: per backbone, LLM-Infer (wo_sbr), the backbone, LLM2<backbone>
    (textinit) and LLM4SBR, plus one bar per LLMSeqSim aggregation."""
    runs = load_runs(metrics_paths)
    seqsim = load_runs(llmseqsim_paths)
    entries: list[tuple[str, pd.DataFrame]] = []
    for agg, g in (seqsim.groupby("variant", sort=False) if len(seqsim) else []):
        entries.append((f"LLMSeqSim ({agg})", g))
    if len(runs):
        for backbone, gb in runs.groupby("backbone", sort=False):
            label = backbone_label(backbone)
            names = {"wo_sbr": "LLM-Infer", "base": label, "textinit": textinit_label(backbone),
                     "llm4sbr": f"LLM4SBR({label})"}
            for variant in FIG5_VARIANTS:
                g = gb[gb["variant"] == variant]
                if len(g):
                    entries.append((names[variant], g))
    if not entries:
        placeholder(path, "Fig. 5", "no runs for Fig. 5 (LLMSeqSim, wo_sbr, base, textinit, "
                    "llm4sbr) in the config")
        return
    fig, axes = new_figure(1, len(metrics), figsize=(max(4.5, 0.8 * len(entries))
                                                     * len(metrics), 4))
    labels = [name for name, _ in entries]
    for ax, metric in zip(axes[0], metrics, strict=True):
        _bars(ax, labels, {metric: [_summary(g, metric) for _, g in entries]}, f"{metric} (%)")
        ax.set_title(metric)
    fig.suptitle("Fig. 5. LLM4SBR and other ways of using an LLM (test, mean ± std over seeds)",
                 fontsize=10)
    save_figure(fig, path)


def fig6_views(metrics_paths: Iterable[str | Path], path: str | Path,
               metrics: Sequence[str] = ("P@5", "P@10", "P@20", "MRR@5", "MRR@10", "MRR@20")
               ) -> None:
    """Fig. 6: per backbone, one bar per view variant and metric."""
    runs = load_runs(metrics_paths)
    runs = runs[runs["variant"].isin(FIG6_VARIANTS)] if len(runs) else runs
    if not len(runs):
        placeholder(path, "Fig. 6", "no runs for Fig. 6 (normal, wo_long, wo_short, llm4sbr) "
                    "in the config")
        return
    backbones = list(dict.fromkeys(runs["backbone"]))
    fig, axes = new_figure(len(backbones), 2, figsize=(11, 3.4 * len(backbones)))
    for row, backbone in enumerate(backbones):
        gb = runs[runs["backbone"] == backbone]
        variants = [v for v in FIG6_VARIANTS if v in set(gb["variant"])]
        for col, kind in enumerate(("P", "MRR")):
            ms = [m for m in metrics if m.startswith(kind + "@")]
            series = {FIG6_LABELS[v]: [
                _summary(gb[gb["variant"] == v], m) for m in ms] for v in variants}
            ax = axes[row, col]
            _bars(ax, ms, series, f"{kind}@K (%)")
            ax.set_title(f"{backbone_label(backbone)}: {kind}@K")
            ax.legend(fontsize=7)
    fig.suptitle("Fig. 6. Inference views (test, mean ± std over seeds)", fontsize=10)
    save_figure(fig, path)


def fig7_r_sweep(metrics_paths: Iterable[str | Path], path: str | Path, default_r: int,
                 metrics: Sequence[str] = ("P@20", "MRR@20")) -> None:
    """Fig. 7: the metrics against r, one line per backbone and metric (mean ± std)."""
    runs = load_runs(metrics_paths)
    if len(runs):
        runs = runs.assign(r=[r_of_variant(v, default_r) for v in runs["variant"]])
        runs = runs[runs["r"].notna()]
        # llm4sbr-r<default> and llm4sbr are the same setting: keep the explicit one once.
        runs = runs.drop_duplicates(["backbone", "r", "seed"], keep="first")
    if not len(runs):
        placeholder(path, "Fig. 7", "no runs for Fig. 7 (llm4sbr-r<r> variants) in the config")
        return
    fig, axes = new_figure(1, len(metrics), figsize=(4.5 * len(metrics), 3.6))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for backbone, gb in runs.groupby("backbone", sort=False):
            rs = sorted(gb["r"].unique())
            stats = [_summary(gb[gb["r"] == r], metric) for r in rs]
            ax.errorbar(rs, [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats],
                        marker="o", capsize=3, label=backbone_label(backbone))
        ax.set_xlabel("r (items per localized intent)")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(metric)
        ax.set_xticks(sorted(runs["r"].unique()))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Fig. 7. Localization r (test, mean ± std over seeds; llm4sbr = r "
                 f"{default_r})", fontsize=10)
    save_figure(fig, path)


def training_curves(metrics_paths: Iterable[str | Path], path: str | Path,
                    metric: str | None = None) -> None:
    """Validation ``metric`` (default: each run's select_metric) per epoch, one line per
    variant and seed, one panel per backbone; the selected epoch is marked."""
    paths = [Path(p) for p in metrics_paths]
    curves: dict[str, list[tuple[str, list[int], list[float], int]]] = {}
    chosen = metric
    for p in paths:
        m = read_metrics(p)
        history = m.get("history") or []
        if not history:
            continue
        run_metric = metric or m.get("config", {}).get("select_metric", "MRR@20")
        chosen = chosen or run_metric
        epochs = [h["epoch"] for h in history]
        values = [100 * h["valid"].get(run_metric, np.nan) for h in history]
        backbone, variant, seed = p.parents[2].name, p.parents[1].name, p.parent.name
        curves.setdefault(backbone, []).append((f"{variant} {seed}", epochs, values,
                                                int(m.get("best_epoch", 0))))
    if not curves:
        placeholder(path, "Training curves", "no runs with a training history")
        return
    fig, axes = new_figure(len(curves), 1, figsize=(7, 3.2 * len(curves)))
    for ax, (backbone, lines) in zip(axes[:, 0], curves.items(), strict=True):
        variants = list(dict.fromkeys(name.split()[0] for name, *_ in lines))
        colors = {v: f"C{i % 10}" for i, v in enumerate(variants)}
        for name, epochs, values, best in lines:
            ax.plot(epochs, values, color=colors[name.split()[0]], alpha=0.8, marker=".",
                    label=name)
            if best in epochs:
                ax.plot([best], [values[epochs.index(best)]], "k*", markersize=8)
        ax.set_title(f"{backbone_label(backbone)} (★ = selected epoch)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"validation {chosen} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=3)
    save_figure(fig, path)


def runtime_figure(benchmark_paths: Iterable[str | Path], root: str | Path,
                   path: str | Path) -> pd.DataFrame:
    """Horizontal bars of wall-clock hours per workflow stage (sum over its jobs); returns
    the per-stage frame of :func:`llm4sbr_core.report.runtime.stage_runtime`."""
    frame = stage_runtime(benchmark_paths, root)
    if frame.empty:
        placeholder(path, "Runtime per stage", "no benchmark files yet")
        return frame
    frame = frame.sort_values("seconds")
    fig, axes = new_figure(figsize=(7, 0.45 * len(frame) + 1.2))
    ax = axes[0, 0]
    longest = float(frame["seconds"].max())
    unit, scale = (("hours", 3600) if longest >= 7200 else ("minutes", 60) if longest >= 120
                   else ("seconds", 1))
    bars = ax.barh(frame["stage"], frame["seconds"] / scale)
    ax.bar_label(bars, labels=[f"{s:,.0f} s ({j} jobs)" for s, j in
                               zip(frame["seconds"], frame["jobs"], strict=True)],
                 fontsize=7, padding=2)
    ax.set_xlabel(f"wall-clock {unit} (sum over jobs)")
    ax.set_title("Runtime per workflow stage (Snakemake benchmarks)")
    ax.margins(x=0.25)
    save_figure(fig, path)
    return frame


__all__ = ["fig5_peers", "fig6_views", "fig7_r_sweep", "placeholder", "runtime_figure",
           "training_curves"]
