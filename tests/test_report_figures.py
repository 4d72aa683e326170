"""Figures 5–7, training curves and the runtime figure: written, non-empty, non-blank PNGs;
placeholders when there are no runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from llm4sbr_core.report.figures import (
    fig5_peers,
    fig6_views,
    fig7_r_sweep,
    runtime_figure,
    training_curves,
)
from llm4sbr_core.report.plan import r_of_variant
from report_synthetic import write_benchmark, write_llmseqsim, write_run

VARIANTS = ("base", "llm4sbr", "textinit", "wo_sbr", "wo_long", "wo_short", "normal",
            "llm4sbr-r0", "llm4sbr-r1", "llm4sbr-r5")


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    pixels = imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert np.std(pixels[..., :3]) > 0.01  # not a blank image
    assert not list(path.parent.glob(".*.tmp"))  # written atomically


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    return [write_run(tmp_path, b, v, s, rng.integers(1, 50, size=100))
            for b in ("srgnn", "gru4rec") for v in VARIANTS for s in (0, 1)]


def test_all_figures_are_written(tmp_path, runs):
    seqsim = [write_llmseqsim(tmp_path, "mean", np.arange(1, 101))]
    out = tmp_path / "figures"
    fig5_peers(runs, seqsim, out / "fig5.png")
    fig6_views(runs, out / "fig6.png")
    fig7_r_sweep(runs, out / "fig7.png", default_r=5)
    training_curves(runs, out / "curves.png")
    for name in ("fig5", "fig6", "fig7", "curves"):
        assert_png(out / f"{name}.png")


def test_figures_without_runs_say_so(tmp_path):
    out = tmp_path / "figures"
    fig5_peers([], [], out / "fig5.png")
    fig6_views([], out / "fig6.png")
    fig7_r_sweep([], out / "fig7.png", default_r=5)
    training_curves([], out / "curves.png")
    runtime_figure([], tmp_path, out / "runtime.png")
    for name in ("fig5", "fig6", "fig7", "curves", "runtime"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_fig6_ignores_other_variants(tmp_path):
    only_base = [write_run(tmp_path, "srgnn", "base", 0, [1, 2])]
    fig6_views(only_base, tmp_path / "fig6.png")  # a placeholder, not an empty axes
    assert (tmp_path / "fig6.png").exists()


def test_r_of_variant():
    assert r_of_variant("llm4sbr", 5) == 5
    assert r_of_variant("llm4sbr-r0", 5) == 0
    assert r_of_variant("llm4sbr-r3", 5) == 3
    assert r_of_variant("llm4sbr-tau1", 5) is None
    assert r_of_variant("wo_long-r3", 5) is None
    assert r_of_variant("base", 5) is None
    assert r_of_variant("llm4sbr-shuffled", 5) is None
    assert r_of_variant("llm4sbr-items", 5) is None


def test_runtime_figure(tmp_path):
    paths = [write_benchmark(tmp_path, "train/a.tsv", 4000),
             write_benchmark(tmp_path, "build_dataset.tsv", 30)]
    frame = runtime_figure(paths, tmp_path / "results/ml-100k/benchmarks",
                           tmp_path / "runtime.png")
    assert frame["stage"].tolist() == ["build_dataset", "train"]
    assert_png(tmp_path / "runtime.png")
