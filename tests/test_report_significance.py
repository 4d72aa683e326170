"""Paired significance tests from ranks.parquet files: per-sample metrics, seed averaging,
t-test (against scipy) and the paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from llm4sbr_core.errors import MissingRunError
from llm4sbr_core.metrics import metrics_from_ranks
from llm4sbr_core.report.significance import (
    bootstrap_means,
    bootstrap_test,
    compare_runs,
    paired_tests,
    paired_ttest,
    per_sample_metric,
    seed_average,
)
from report_synthetic import write_run


def test_per_sample_metrics_by_hand():
    ranks = [1, 3, 6, 25]
    assert per_sample_metric(ranks, "P@5").tolist() == [1, 1, 0, 0]
    assert per_sample_metric(ranks, "HR@10").tolist() == [1, 1, 1, 0]
    assert per_sample_metric(ranks, "MRR@5") == pytest.approx([1, 1 / 3, 0, 0])
    assert per_sample_metric(ranks, "NDCG@5") == pytest.approx([1, 0.5, 0, 0])
    assert per_sample_metric(ranks, "NDCG@10") == pytest.approx([1, 0.5, 1 / math.log2(7), 0])
    with pytest.raises(ValueError, match="unknown metric"):
        per_sample_metric(ranks, "AUC")
    with pytest.raises(ValueError, match="1-based"):
        per_sample_metric([0, 1], "P@5")


def test_per_sample_means_are_the_runs_metrics():
    ranks = np.random.default_rng(0).integers(1, 100, size=500)
    expected = metrics_from_ranks(ranks)
    for metric, value in expected.items():
        assert per_sample_metric(ranks, metric).mean() == pytest.approx(value)


def test_seed_average_pairs_by_sample_id(tmp_path):
    a0 = write_run(tmp_path, "srgnn", "base", 0, [1, 10], sample_ids=[7, 3])
    a1 = write_run(tmp_path, "srgnn", "base", 1, [4, 1], sample_ids=[3, 7])
    avg = seed_average([a0.with_name("ranks.parquet"), a1.with_name("ranks.parquet")],
                       ["P@5", "MRR@5"])
    # sample 3: ranks 10 and 4; sample 7: ranks 1 and 1
    assert avg.index.tolist() == [3, 7]
    assert avg.loc[3].tolist() == pytest.approx([0.5, 0.125])
    assert avg.loc[7].tolist() == pytest.approx([1.0, 1.0])
    other = write_run(tmp_path, "srgnn", "base", 2, [1, 2], sample_ids=[3, 8])
    with pytest.raises(ValueError, match="ranks other samples"):
        seed_average([a0.with_name("ranks.parquet"), other.with_name("ranks.parquet")])


def test_missing_ranks_name_the_file(tmp_path):
    missing = tmp_path / "results/ml-100k/runs/srgnn/base/seed0/ranks.parquet"
    with pytest.raises(MissingRunError, match="srgnn/base/seed0/ranks.parquet"):
        seed_average([missing])


def test_paired_tests_match_scipy_and_hand_values(tmp_path):
    rng = np.random.default_rng(1)
    base = [write_run(tmp_path, "srgnn", "base", s, rng.integers(1, 40, size=300))
            for s in (0, 1)]
    ours = [write_run(tmp_path, "srgnn", "llm4sbr", s, rng.integers(1, 25, size=300))
            for s in (0, 1, 2)]
    frame = compare_runs([p.with_name("ranks.parquet") for p in base],
                         [p.with_name("ranks.parquet") for p in ours], ["P@20", "MRR@20"],
                         n_resamples=2000, seed=3).set_index("metric")
    a = seed_average([p.with_name("ranks.parquet") for p in base], ["P@20"])["P@20"]
    b = seed_average([p.with_name("ranks.parquet") for p in ours], ["P@20"])["P@20"]
    row = frame.loc["P@20"]
    assert row["n"] == 300
    assert row["mean_diff"] == pytest.approx((b - a).mean())
    assert row["mean_a"] == pytest.approx(a.mean()) and row["mean_b"] == pytest.approx(b.mean())
    assert row["p_ttest"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert row["ci_low"] < row["mean_diff"] < row["ci_high"]
    assert 0 < row["p_bootstrap"] <= 1
    # the same seed gives the same bootstrap
    again = compare_runs([p.with_name("ranks.parquet") for p in base],
                         [p.with_name("ranks.parquet") for p in ours], ["P@20", "MRR@20"],
                         n_resamples=2000, seed=3).set_index("metric")
    assert again.loc["P@20", "p_bootstrap"] == row["p_bootstrap"]


def test_paired_tests_refuse_different_test_sets():
    a = pd.DataFrame({"P@5": [1.0, 0.0]}, index=[1, 2])
    b = pd.DataFrame({"P@5": [1.0, 0.0]}, index=[1, 3])
    with pytest.raises(ValueError, match="different samples"):
        paired_tests(a, b)


def test_ttest_edge_cases():
    assert paired_ttest(np.ones(5), np.ones(5)) == 1.0           # identical runs
    assert paired_ttest(np.zeros(5), np.ones(5)) == 0.0          # constant shift
    assert math.isnan(paired_ttest(np.zeros(1), np.ones(1)))     # one sample: no test


def test_bootstrap_means_equal_the_naive_loop():
    d = np.random.default_rng(5).normal(size=(40, 2))
    means = bootstrap_means(d, n_resamples=300, seed=11, chunk=300)
    idx = np.random.default_rng(11).integers(0, 40, size=(300, 40))
    assert means == pytest.approx(d[idx].mean(axis=1))
    # chunking draws the same resamples in the same order
    assert bootstrap_means(d, 300, seed=11, chunk=7) == pytest.approx(means)
    assert bootstrap_means(d[:, 0], 50, seed=2).shape == (50,)


def test_bootstrap_p_values():
    rng = np.random.default_rng(0)
    shifted = rng.normal(1.0, 1.0, size=(200, 1))
    p, low, high = bootstrap_test(shifted, n_resamples=2000, seed=0)
    assert p[0] == pytest.approx(1 / 2001)        # no resample reaches the observed mean
    assert low[0] < shifted.mean() < high[0]
    null = rng.normal(0.0, 1.0, size=(200, 1))
    null -= null.mean() - 0.01                   # observed mean 0.01: far from significant
    assert bootstrap_test(null, 2000, 0)[0][0] > 0.5
    assert bootstrap_test(np.zeros((10, 1)), 100, 0)[0][0] == 1.0
