"""Two-level (seeds × sessions) paired inference: agreement with scipy / statsmodels and
closed forms, words, and the calibration of the test under a true null."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from llm4sbr_core.errors import InvalidInputError
from llm4sbr_core.report import significance
from llm4sbr_core.report.inference import (
    InferenceResult,
    compare_ranks,
    conservative_df,
    detectability,
    holm,
    holm_family,
    mdd_from_se,
    metric_values,
    minimum_detectable_difference,
    paired_two_level_bootstrap,
    satterthwaite_df,
    seed_level_paired_test,
    simulate_comparison,
    tost,
    variance_components,
    verdict,
)

REPO = Path(__file__).resolve().parents[1]


def result(delta: float, se: float, df: float = math.inf, p: float | None = None,
           p_holm: float = math.nan) -> InferenceResult:
    """A result with a normal/t test of delta / se, for the words helpers."""
    dist = stats.norm if math.isinf(df) else stats.t(df)
    half = dist.ppf(0.975) * se
    p = float(2 * dist.sf(abs(delta) / se)) if p is None else p
    return InferenceResult(delta=delta, ci_low=delta - half, ci_high=delta + half, p=p,
                           p_holm=p_holm, n_seeds=3, n_sessions=100, n_samples=400,
                           method="test", se=se, df=df)


# ------------------------------------------------------------------ metrics


def test_metric_values_are_the_per_sample_terms_of_metrics_from_ranks():
    torch_metrics = pytest.importorskip("llm4sbr_core.metrics")
    ranks = np.random.default_rng(0).integers(1, 60, size=(3, 400))
    for s in range(3):
        expected = torch_metrics.metrics_from_ranks(ranks[s])
        for metric, value in expected.items():
            assert metric_values(ranks, metric)[s].mean() == pytest.approx(value)
            assert metric_values(ranks[s], metric) == pytest.approx(
                significance.per_sample_metric(ranks[s], metric))
    assert metric_values([[1, 3, 25]], "MRR@5").tolist() == [[1.0, 1 / 3, 0.0]]
    assert metric_values([1, 3], "HR@2").tolist() == [1.0, 0.0]
    with pytest.raises(InvalidInputError, match="unknown metric"):
        metric_values([1], "AUC@5")
    with pytest.raises(ValueError, match="1-based"):
        metric_values([0, 2], "P@5")


# ------------------------------------------------------------------ seed level


def test_seed_level_test_is_scipy_ttest_rel():
    a = np.array([0.301, 0.297, 0.305])
    b = np.array([0.309, 0.302, 0.306])
    r = seed_level_paired_test(a, b, metric="MRR@20")
    ref = stats.ttest_rel(b, a)
    low, high = ref.confidence_interval(0.95)
    assert r.p == pytest.approx(ref.pvalue)
    assert (r.ci_low, r.ci_high) == pytest.approx((low, high))
    assert r.delta == pytest.approx((b - a).mean())
    assert r.df == 2 and r.n_seeds == 3 and r.n_sessions is None
    assert r.mean_a == pytest.approx(a.mean()) and r.metric == "MRR@20"
    assert "df = 2" in r.method
    assert seed_level_paired_test([1, 2], [1, 2]).p == 1.0
    assert seed_level_paired_test([1, 2], [2, 3]).p == 0.0
    with pytest.raises(InvalidInputError, match="at least 2 seeds"):
        seed_level_paired_test([1.0], [2.0])
    with pytest.raises(InvalidInputError, match="pair seed for seed"):
        seed_level_paired_test([1, 2, 3], [1, 2])


# ------------------------------------------------------------------ two-level bootstrap


def test_one_seed_singleton_sessions_is_the_normal_paired_mean_difference():
    gen = np.random.default_rng(1)
    n = 3000
    a = gen.normal(0.30, 0.2, n)
    b = a + gen.normal(0.01, 0.15, n)
    sessions = np.arange(n)
    d = b - a
    se = d.std(ddof=1) / math.sqrt(n)
    low, high = d.mean() - 1.96 * se, d.mean() + 1.96 * se
    for method in ("t", "percentile"):
        r = paired_two_level_bootstrap(a, b, sessions, n_resamples=4000, rng=2, method=method)
        assert r.delta == pytest.approx(d.mean())
        assert r.se == pytest.approx(se, rel=0.05)
        assert r.ci_low == pytest.approx(low, abs=0.1 * se)
        assert r.ci_high == pytest.approx(high, abs=0.1 * se)
        assert r.n_seeds == 1 and r.n_sessions == n and r.n_samples == n
    r = paired_two_level_bootstrap(a, b, sessions, n_resamples=4000, rng=2)
    assert r.df == n - 1 and "one seed" in r.method
    assert r.p == pytest.approx(2 * stats.norm.sf(abs(d.mean()) / se), rel=0.2)


def test_bootstrap_components_converge_to_the_closed_forms():
    a, b, sessions = simulate_comparison(3, n_seeds=3, n_sessions=80, seed_sd=0.2,
                                         session_sd=0.5)
    exact = variance_components(a, b, sessions)
    r = paired_two_level_bootstrap(a, b, sessions, n_resamples=20_000, rng=4)
    assert r.delta == pytest.approx(exact.delta)
    assert r.v_seed == pytest.approx(exact.v_seed, rel=0.05)
    assert r.v_session == pytest.approx(exact.v_session, rel=0.1)
    assert r.se == pytest.approx(exact.se, rel=0.05)
    assert r.df == pytest.approx(exact.df, rel=0.1)
    assert r.n_sessions == 80 and r.n_seeds == 3 and r.n_samples == a.shape[1]
    assert r.mean_b - r.mean_a == pytest.approx(r.delta)


def test_closed_forms_are_the_crossed_anova_estimate_on_a_balanced_design():
    """Balanced (every session the same size): V_seed + V_session =
    (MS_seed + MS_session − MS_interaction) / (S · C) on the cell means."""
    gen = np.random.default_rng(5)
    n_seeds, n_sessions, size = 4, 30, 3
    sessions = np.repeat(np.arange(n_sessions), size)
    a = gen.normal(size=(n_seeds, n_sessions * size))
    b = a + gen.normal(0, 0.3, (n_seeds, 1)) + gen.normal(0, 0.4, n_sessions)[sessions] \
        + gen.normal(size=a.shape)
    y = (b - a).reshape(n_seeds, n_sessions, size).mean(axis=2)
    grand, rows, cols = y.mean(), y.mean(axis=1), y.mean(axis=0)
    ms_seed = n_sessions * ((rows - grand) ** 2).sum() / (n_seeds - 1)
    ms_session = n_seeds * ((cols - grand) ** 2).sum() / (n_sessions - 1)
    resid = y - rows[:, None] - cols[None, :] + grand
    ms_int = (resid ** 2).sum() / ((n_seeds - 1) * (n_sessions - 1))
    vc = variance_components(a, b, sessions)
    assert vc.v_seed == pytest.approx(ms_seed / (n_seeds * n_sessions))
    assert vc.v_session == pytest.approx((ms_session - ms_int) / (n_seeds * n_sessions))
    assert vc.df_seed == n_seeds - 1 and vc.df_session == n_sessions - 1


def test_degrees_of_freedom():
    assert satterthwaite_df(1.0, 2, 0.0, 59) == pytest.approx(2)
    assert satterthwaite_df(0.0, 2, 1.0, 59) == pytest.approx(59)
    assert satterthwaite_df(1.0, 10, 1.0, 10) == pytest.approx(20)
    assert satterthwaite_df(0.0, 2, 0.0, 59) == math.inf
    # the guard: exact at both ends, never above plain Satterthwaite in between
    assert conservative_df(1.0, 2, 0.0, 59) == pytest.approx(2)
    assert conservative_df(0.0, 2, 1.0, 59) == pytest.approx(59)
    for ratio in (0.1, 0.5, 1.0, 3.0):
        assert 2 <= conservative_df(ratio, 2, 1.0, 59) < satterthwaite_df(ratio, 2, 1.0, 59)


def test_a_real_difference_is_found_and_resamples_are_seeded():
    a, b, sessions = simulate_comparison(7, n_sessions=200, seed_sd=0.02, session_sd=0.2,
                                         delta=0.3)
    r1 = paired_two_level_bootstrap(a, b, sessions, n_resamples=500, rng=11)
    r2 = paired_two_level_bootstrap(a, b, sessions, n_resamples=500, rng=11)
    assert r1 == r2
    assert r1.p < 0.01 and r1.ci_low > 0 and verdict(r1) == "B better"
    assert verdict(paired_two_level_bootstrap(b, a, sessions, 500, 11)) == "A better"
    same = paired_two_level_bootstrap(a, a, sessions, 100, 0)
    assert (same.delta, same.p, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)


def test_input_errors():
    a = np.zeros((3, 6))
    sessions = np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(InvalidInputError, match="differ in shape"):
        paired_two_level_bootstrap(a, np.zeros((2, 6)), sessions)
    with pytest.raises(InvalidInputError, match="one entry per sample"):
        paired_two_level_bootstrap(a, a, sessions[:5])
    with pytest.raises(InvalidInputError, match="one session"):
        paired_two_level_bootstrap(a, a, np.zeros(6))
    with pytest.raises(InvalidInputError, match="NaN"):
        paired_two_level_bootstrap(a, np.full((3, 6), np.nan), sessions)
    with pytest.raises(InvalidInputError, match="unknown method"):
        paired_two_level_bootstrap(a, a, sessions, method="bca")  # type: ignore[arg-type]


def test_compare_ranks_uses_the_same_resamples_and_fills_holm():
    gen = np.random.default_rng(8)
    sessions = np.repeat(np.arange(150), 3)
    ranks_a = gen.integers(1, 80, size=(3, sessions.size))
    ranks_b = np.maximum(1, ranks_a - gen.integers(0, 6, size=ranks_a.shape))
    results = compare_ranks(ranks_a, ranks_b, sessions, ("P@20", "MRR@20"), n_resamples=300)
    assert [r.metric for r in results] == ["P@20", "MRR@20"]
    assert [r.p_holm for r in results] == pytest.approx(holm([r.p for r in results]))
    alone = paired_two_level_bootstrap(metric_values(ranks_a, "MRR@20"),
                                       metric_values(ranks_b, "MRR@20"), sessions, 300, 0)
    assert alone.se == results[1].se
    assert all(r.delta > 0 for r in results)


# ------------------------------------------------------------------ Holm


def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 → max(0.06, 0.04)
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    out = holm([0.01, np.nan, 0.02])
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.02, 0.02])
    assert np.isnan(holm([np.nan])).all()
    with pytest.raises(InvalidInputError):
        holm([1.5])


def test_holm_is_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    gen = np.random.default_rng(9)
    for m in (1, 2, 5, 18):
        p = gen.uniform(0, 0.2, m) ** 2
        p[: m // 3] = p[0]  # ties
        expected = multitest.multipletests(p, method="holm")[1]
        assert holm(p) == pytest.approx(expected, abs=1e-12)
    family = holm_family([result(0.01, 0.004), result(0.0, 0.01), result(-0.02, 0.01)])
    assert [r.p_holm for r in family] == pytest.approx(
        multitest.multipletests([r.p for r in family], method="holm")[1])


# ------------------------------------------------------------------ words


def test_tost_is_the_90_percent_interval_inside_the_margin():
    r = result(0.001, 0.002, df=2)
    half90 = stats.t.ppf(0.95, 2) * r.se
    margin_inside = abs(r.delta) + half90 + 1e-6
    margin_outside = abs(r.delta) + half90 - 1e-6
    assert tost(r, margin_inside) < 0.05 < tost(r, margin_outside)
    # Δ̂ > 0: the binding one-sided test is the upper one, H0 Δ ≥ margin
    assert tost(r, 0.02) == pytest.approx(stats.t.sf((0.02 - r.delta) / r.se, 2))
    assert tost(result(-0.001, 0.002, df=2), 0.02) == pytest.approx(tost(r, 0.02))
    with pytest.raises(InvalidInputError, match="margin"):
        tost(r, 0.0)


def test_verdict_words():
    assert verdict(result(0.01, 0.002)) == "B better"
    assert verdict(result(-0.01, 0.002)) == "A better"
    # Holm-adjusted p decides when filled
    assert verdict(result(0.01, 0.002, p_holm=0.2)).startswith("not significant after Holm")
    small = result(0.0001, 0.0005)
    assert verdict(small, margin=0.005, scale=100, unit=" pp") == "equivalent within ±0.500 pp"
    words = verdict(small, margin=0.0002, scale=100, unit=" pp", digits=2)
    assert words == (f"no detectable difference, 95 % CI [{small.ci_low * 100:.2f} pp, "
                     f"{small.ci_high * 100:.2f} pp]")
    assert verdict(small).startswith("no detectable difference, 95 % CI [")


def test_minimum_detectable_difference():
    assert mdd_from_se(1.0) == pytest.approx(2.8, abs=0.01)
    assert mdd_from_se(1.0, df=2) == pytest.approx(stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2))
    # a 25-sample test set cannot see a 1-point difference of reciprocal ranks ...
    gen = np.random.default_rng(12)
    ranks = gen.integers(1, 40, size=(3, 25))
    sessions = np.repeat(np.arange(10), [3, 3, 3, 3, 3, 2, 2, 2, 2, 2])
    a = metric_values(ranks, "MRR@20")
    b = metric_values(np.maximum(1, ranks + gen.integers(-5, 6, ranks.shape)), "MRR@20")
    mdd = minimum_detectable_difference(a, b, sessions, n_resamples=500)
    assert mdd > 0.01
    words = detectability(mdd, 0.01, scale=100, unit=" pp", digits=1)
    assert words.startswith("too small to detect a difference of 1.0 pp (80 % power needs ≥")
    assert detectability(0.004, 0.01).startswith("a difference of 0.010 is detectable")
    r = paired_two_level_bootstrap(a, b, sessions, 500, 0)
    assert r.mdd() == pytest.approx(mdd)


# ------------------------------------------------------------------ calibration


def null_rejection_rates(comparisons: int, seed_sd: float, session_sd: float,
                         resamples: int = 300, alpha: float = 0.05) -> tuple[float, float]:
    """(new two-level test, old sample-level paired t-test of significance.py) rejection
    rates on simulated comparisons with no true difference."""
    new = old = 0
    for i in range(comparisons):
        a, b, sessions = simulate_comparison([2024, i], n_seeds=3, n_sessions=60,
                                             mean_session_size=4, seed_sd=seed_sd,
                                             session_sd=session_sd)
        new += paired_two_level_bootstrap(a, b, sessions, resamples, rng=i).p < alpha
        # significance.paired_tests: per-sample values averaged over seeds, t over samples
        old += significance.paired_ttest(a.mean(axis=0), b.mean(axis=0)) < alpha
    return new / comparisons, old / comparisons


@pytest.mark.parametrize(("seed_sd", "session_sd"), [(0.1, 0.3), (0.3, 0.3)],
                         ids=["mixed", "seed-dominated"])
def test_calibration_under_the_null(seed_sd, session_sd):
    new, old = null_rejection_rates(600, seed_sd, session_sd)
    assert 0.03 <= new <= 0.07, new
    assert old > 0.10, old


def test_calibration_benchmark_runs():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "calibration.py"),
                           "--comparisons", "20", "--resamples", "50"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| new: two-level bootstrap, t (guarded df) |" in done.stdout
    grid = subprocess.run([sys.executable, str(REPO / "benchmarks" / "calibration.py"),
                           "--df-grid", "--draws", "2000"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert grid.returncode == 0, grid.stderr[-2000:]
    assert "| guarded (conservative_df) |" in grid.stdout


def test_seed_pairs_that_agree_do_not_make_a_certain_difference():
    # Two seed pairs with the same mean difference and 4 samples in 4 sessions: the
    # between-seed spread is 0, so the SE must come from the sessions, not be 0.
    a = np.array([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    b = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    result = paired_two_level_bootstrap(a, b, np.arange(4), n_resamples=2000, rng=0)
    assert result.delta == 0.0 or result.se > 0
    b2 = b + np.array([[0.5, -0.5, 0.5, 0.5]])  # same mean gain in both seeds, noisy
    result = paired_two_level_bootstrap(a, b2, np.arange(4), n_resamples=2000, rng=0)
    assert result.se > 0 and result.p > 0.05 and "floored" in result.method


def test_verdict_says_when_only_the_correction_keeps_a_difference():
    words = verdict(result(0.03, 0.01, p=0.003, p_holm=0.2), scale=100, unit=" pp", digits=2)
    assert words.startswith("not significant after Holm (p = 0.003 before), 95 % CI [")
    assert verdict(result(0.03, 0.01, p=0.003)) == "B better"  # no family: the raw p
