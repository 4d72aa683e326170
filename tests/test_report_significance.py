"""The tables' tests (pairing by seed, sessions, Holm families, verdicts, notes) and the
older sample-level tests kept for calibration: per-sample metrics, seed averaging, t-test
(against scipy) and the paired bootstrap."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from llm4sbr_core.errors import InvalidInputError, MissingRunError
from llm4sbr_core.metrics import metrics_from_ranks
from llm4sbr_core.report.inference import InferenceResult, holm
from llm4sbr_core.report.significance import (
    Comparison,
    Pairing,
    RankReader,
    Side,
    assess_family,
    bootstrap_means,
    bootstrap_test,
    compare_runs,
    family_notes,
    pair_by_seed,
    paired_tests,
    paired_ttest,
    per_sample_metric,
    seed_average,
)
from report_synthetic import write_run, write_test_samples


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


# ------------------------------------------------------------------ the tables' tests


def _side(name, seeds, deterministic=False):
    return Side(name, {s: Path(f"{name}/seed{s}/ranks.parquet") for s in seeds},
                deterministic)


def test_pair_by_seed():
    p = pair_by_seed(_side("base", [0, 1, 2]), _side("x", [2, 0, 1]))
    assert p.pairs == ((0, 0), (1, 1), (2, 2)) and not p.dropped_a and not p.dropped_b
    p = pair_by_seed(_side("base", [0, 1, 2]), _side("x", [1, 2, 3]))
    assert p.pairs == ((1, 1), (2, 2)) and p.dropped_a == (0,) and p.dropped_b == (3,)
    assert pair_by_seed(_side("base", [0]), _side("x", [1])).pairs == ()
    # a deterministic single run meets every seed of the other side
    p = pair_by_seed(_side("base", [0, 1, 2]), _side("seqsim", [0], True))
    assert p.pairs == ((0, 0), (1, 0), (2, 0)) and p.deterministic == "b"
    p = pair_by_seed(_side("knn", [0], True), _side("x", [3, 4]))
    assert p.pairs == ((0, 3), (0, 4)) and p.deterministic == "a"
    assert pair_by_seed(_side("a", [0], True), _side("b", [0], True)).pairs == ((0, 0),)
    # several runs of a "deterministic" method are paired by seed like any other
    assert pair_by_seed(_side("base", [0, 1]), _side("x", [0, 1, 2], True)).pairs == \
        ((0, 0), (1, 1))


def test_rank_reader_aligns_samples_and_finds_sessions(tmp_path):
    a = write_run(tmp_path, "srgnn", "base", 0, [1, 10, 3], sample_ids=[7, 3, 5],
                  session_ids=[2, 1, 1]).with_name("ranks.parquet")
    b = write_run(tmp_path, "srgnn", "x", 0, [4, 2, 9], sample_ids=[5, 7, 3],
                  session_ids=[1, 2, 1]).with_name("ranks.parquet")
    ranks_a, ranks_b, sessions, clusters = RankReader().design([a], [b])
    # sample_id order 3, 5, 7
    assert ranks_a.tolist() == [[10, 3, 1]] and ranks_b.tolist() == [[9, 4, 2]]
    assert sessions.tolist() == [1, 1, 2] and clusters == "ranks"
    c = write_run(tmp_path, "srgnn", "y", 0, [1, 2, 3], sample_ids=[3, 5, 7]
                  ).with_name("ranks.parquet")
    assert RankReader().design([c], [c])[2:] == (pytest.approx([3, 5, 7]), "none")
    test = write_test_samples(tmp_path, [8, 9, 9], sample_ids=[3, 5, 7])
    assert RankReader(test).design([c], [c])[2].tolist() == [8, 9, 9]
    other = write_test_samples(tmp_path / "o", [1], sample_ids=[3])
    with pytest.raises(InvalidInputError, match="2 sample ids .* are not test samples"):
        RankReader(other).design([c], [c])
    with pytest.raises(MissingRunError, match="ranks.parquet"):
        RankReader().design([tmp_path / "none/ranks.parquet"], [c])


def _result(p, delta=0.01, se=0.004, df=30.0):
    return InferenceResult(delta=delta, ci_low=delta - 2 * se, ci_high=delta + 2 * se, p=p,
                           p_holm=math.nan, n_seeds=3, n_sessions=200, n_samples=600,
                           method="test", se=se, df=df, mean_a=0.3, mean_b=0.3 + delta)


def _comparison(name, results, pairs=((0, 0), (1, 1), (2, 2))):
    return Comparison(_side("base", [0, 1, 2]), _side(name, [0, 1, 2]), Pairing(pairs),
                      results, "ranks", 600, 200)


def test_family_holm_and_words():
    comparisons = [_comparison("x", {"P@20": _result(0.01), "MRR@20": _result(0.02)}),
                   _comparison("y", {"P@20": _result(0.04, -0.02),
                                     "MRR@20": _result(0.9, 0.0001, 0.001)}),
                   _comparison("z", {})]
    tested = assess_family(comparisons)
    assert tested[2] == {}
    family = [tested[0]["P@20"], tested[0]["MRR@20"], tested[1]["P@20"], tested[1]["MRR@20"]]
    assert [t.family for t in family] == [4] * 4
    assert [t.result.p_holm for t in family] == pytest.approx(holm([0.01, 0.02, 0.04, 0.9]))
    assert tested[0]["P@20"].verdict == "x better"      # 0.04 after Holm
    # raw p 0.04 < 0.05, Holm 0.06: the words say that only the correction removes it
    assert tested[1]["P@20"].verdict.startswith("not significant after Holm (p = 0.04 before), "
                                                "95 % CI [")
    # Δ = 0.01 pp, SE 0.1 pp: inside ±0.5 pp for MRR@20 by TOST, after Holm
    assert tested[1]["MRR@20"].tost_p_holm < 0.05
    assert tested[1]["MRR@20"].verdict == "equivalent within ±0.50 pp"
    assert tested[1]["MRR@20"].record()["margin"] == pytest.approx(0.5)
    # without a margin, or with a margin the TOST cannot reject: never "equivalent"
    assert "equivalent" not in assess_family(comparisons, {})[1]["MRR@20"].verdict
    assert "equivalent" not in assess_family(comparisons, {"MRR@20": 0.05})[1]["MRR@20"].verdict
    # the MDD of a result: (t_.975 + t_.8) · SE
    assert tested[0]["P@20"].mdd == pytest.approx(_result(0.01).mdd())


def test_family_notes_warn_when_the_table_cannot_tell():
    comparisons = [_comparison("x", {"P@20": _result(0.3, se=0.03)})]
    tested = assess_family(comparisons)
    warnings, notes = family_notes(comparisons, tested, ["srgnn x"], "base", "B, A",
                                   ["P@20"])
    text = " ".join(notes)
    assert "family of all 1 tests" in text and "3 seed pairs per comparison" in text
    assert "600 test samples in 200 sessions" in text
    mdd = 100 * tested[0]["P@20"].mdd
    assert mdd > 5 and f"differences of P@20 below {mdd:.2f} points cannot be detected" in text
    assert warnings == [
        f"this test set (600 test samples in 200 sessions, 3 seed pairs) is too small to "
        f"detect a difference of less than {mdd:.1f} points of P@20 (80 % power; an MDD "
        f"above 5 points): these numbers show the pipeline, not a verdict."]
    assert not family_notes(comparisons, tested, ["srgnn x"], "base", "B, A", ["P@20"],
                            max_mdd_pp=50)[0]
    one = [_comparison("x", {"P@20": _result(0.3)}, pairs=((0, 0),))]
    notes = family_notes(one, assess_family(one), ["srgnn x"], "base", "B, A", ["P@20"])[1]
    assert "One seed pair (srgnn x): the test is conditional" in " ".join(notes)
