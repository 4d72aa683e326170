"""Variants against a reference with seed-paired, session-clustered tests
(llm4sbr_core/report/compare.py)."""

from __future__ import annotations

import numpy as np
import pytest

from llm4sbr_core.errors import InvalidInputError
from llm4sbr_core.report.compare import variant_comparison
from llm4sbr_core.report.inference import holm, metric_values, paired_two_level_bootstrap
from llm4sbr_core.report.render import WARNING
from llm4sbr_core.report.significance import TEST_HEADER
from report_synthetic import write_llmseqsim, write_run, write_test_samples

N_SESSIONS = 150
SESSIONS = np.repeat(np.arange(N_SESSIONS), 4)  # 600 samples, 4 prefixes per session
N = len(SESSIONS)
RESAMPLES = 500


def _ranks(seed: int, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(1, rng.integers(1, 60, size=N) - shift)


def _grid(root, base_seeds=(0, 1, 2), better_seeds=(0, 1, 2), *, sessions=SESSIONS,
          relabel_better=None):
    """base and llm4sbr of srgnn, plus LLMSeqSim. Run k of llm4sbr is base run k with
    every target 10 places higher (a seed pair shares its training randomness);
    ``relabel_better`` maps k to the seed number it is written under."""
    relabel_better = relabel_better or {}
    paths = [write_run(root, "srgnn", "base", s, _ranks(s), session_ids=sessions)
             for s in base_seeds]
    paths += [write_run(root, "srgnn", "llm4sbr", relabel_better.get(s, s),
                        _ranks(s, 10), session_ids=sessions)
              for s in better_seeds]
    paths.append(write_llmseqsim(root, "mean", _ranks(7), session_ids=sessions))
    return paths


def _rows(table):
    return {(r[0], r[1], r[2]): r for r in table.sections[0].rows}


def test_columns_tests_and_holm_family(tmp_path):
    table = variant_comparison(_grid(tmp_path), metrics=("P@20", "MRR@20"),
                               n_resamples=RESAMPLES, max_mdd_pp=20)
    assert table.header == ["backbone", "variant", "seeds", "P@20", "MRR@20"]
    assert [(r[0], r[1]) for r in table.rows] == [("srgnn", "base"), ("srgnn", "llm4sbr"),
                                                  ("llmseqsim", "mean")]
    (section,) = table.sections
    assert section.header == ["backbone", "variant", *TEST_HEADER]
    assert section.header[2:] == ["metric", "seed pairs", "Δ pp [95 % CI]", "Δ %", "p",
                                  "p (Holm)", "MDD pp", "verdict"]
    rows = _rows(table)
    assert set(rows) == {("srgnn", "llm4sbr", "P@20"), ("srgnn", "llm4sbr", "MRR@20"),
                         ("srgnn", "llmseqsim mean", "P@20"),
                         ("srgnn", "llmseqsim mean", "MRR@20")}
    data = table.data.set_index("variant")
    # Δ in percentage points = the mean over seed pairs and samples, by hand
    base = np.stack([_ranks(s) for s in range(3)])
    ours = np.stack([_ranks(s, 10) for s in range(3)])
    expected = paired_two_level_bootstrap(metric_values(base, "P@20"),
                                          metric_values(ours, "P@20"), SESSIONS, RESAMPLES, 0)
    row = data.loc["llm4sbr"]
    assert row["P@20_mean_diff"] == pytest.approx(100 * expected.delta)
    assert row["P@20_p"] == pytest.approx(expected.p)
    assert [row["P@20_ci_low"], row["P@20_ci_high"]] == pytest.approx(
        [100 * expected.ci_low, 100 * expected.ci_high])
    assert row["seed_pairs"] == 3 and row["pairs"] == "0:0 1:1 2:2"
    assert row["P@20_test_sessions"] == N_SESSIONS and row["P@20_test_samples"] == N
    assert row["clusters"] == "ranks"
    # Holm over the whole table: 2 comparisons × 2 metrics
    tested = data.loc[["llm4sbr", "mean"]]
    p = tested[["P@20_p", "MRR@20_p"]].to_numpy().ravel()
    assert (tested[["P@20_holm_family", "MRR@20_holm_family"]] == 4).all().all()
    assert tested[["P@20_p_holm", "MRR@20_p_holm"]].to_numpy().ravel() == pytest.approx(holm(p))
    cells = rows[("srgnn", "llm4sbr", "P@20")]
    assert cells[3] == "3" and cells[4].startswith(f"{100 * expected.delta:+.2f} [")
    assert "llm4sbr better" in cells[-1] or "no detectable difference" in cells[-1]
    md = table.markdown()
    assert "## Tests against base of the same backbone" in md
    assert "family of all 4 tests of this table" in md
    assert "3 seed pairs per comparison" in md
    assert "600 test samples in 150 sessions" in md
    assert "±1 pp for P@20" in md and "±0.5 pp for MRR@20" in md
    assert "differences of P@20 below" in md and WARNING not in md
    assert "_p_ttest" not in " ".join(table.data.columns)  # no sample-level tests any more


def test_deterministic_run_is_paired_with_every_base_seed(tmp_path):
    table = variant_comparison(_grid(tmp_path), n_resamples=RESAMPLES)
    data = table.data.set_index("variant")
    assert data.loc["mean", "seed_pairs"] == 3 and data.loc["mean", "pairs"] == "0:0 1:0 2:0"
    base = np.stack([_ranks(s) for s in range(3)])
    seqsim = np.stack([_ranks(7)] * 3)
    expected = paired_two_level_bootstrap(metric_values(base, "MRR@20"),
                                          metric_values(seqsim, "MRR@20"), SESSIONS,
                                          RESAMPLES, 0)
    assert data.loc["mean", "MRR@20_p"] == pytest.approx(expected.p)
    assert "Deterministic methods (one run, no seed: srgnn llmseqsim mean) are paired with " \
           "every seed of `base`" in table.markdown()


def test_pairing_is_by_seed(tmp_path):
    reference = variant_comparison(_grid(tmp_path / "a"), n_resamples=RESAMPLES
                                   ).data.set_index("variant").loc["llm4sbr"]
    # the same runs under other seed numbers, renamed alike on both sides: the same pairs,
    # the same test (exactly, when the order of the seeds is kept; up to Monte-Carlo
    # error of the bootstrap otherwise)
    for name, both in (("b", {0: 3, 1: 5, 2: 9}), ("c", {0: 5, 1: 3, 2: 9})):
        paths = [write_run(tmp_path / name, "srgnn", "base", both[s], _ranks(s),
                           session_ids=SESSIONS) for s in range(3)]
        paths += [write_run(tmp_path / name, "srgnn", "llm4sbr", both[s],
                            _ranks(s, 10),
                            session_ids=SESSIONS) for s in range(3)]
        renamed = variant_comparison(paths, n_resamples=RESAMPLES).data.set_index("variant")
        exact = name == "b"
        for key in ("P@20_mean_diff", "P@20_p", "P@20_se", "MRR@20_p", "MRR@20_ci_low"):
            assert renamed.loc["llm4sbr", key] == pytest.approx(
                reference[key], rel=1e-9 if exact or "diff" in key else 0.1), (name, key)
    # the seed numbers shuffled on one side only: other pairs, another test (same Δ)
    shuffled = variant_comparison(_grid(tmp_path / "d", relabel_better={0: 1, 1: 2, 2: 0}),
                                  n_resamples=RESAMPLES).data.set_index("variant").loc["llm4sbr"]
    assert shuffled["P@20_mean_diff"] == pytest.approx(reference["P@20_mean_diff"])
    assert shuffled["pairs"] == "0:0 1:1 2:2"  # by seed number: other runs meet now
    assert shuffled["P@20_se"] != pytest.approx(reference["P@20_se"], rel=0.2)
    assert shuffled["P@20_p"] != pytest.approx(reference["P@20_p"], rel=0.2)


def test_a_seed_missing_on_one_side_drops_its_pair(tmp_path):
    table = variant_comparison(_grid(tmp_path, better_seeds=(0, 1, 3)), n_resamples=RESAMPLES)
    row = table.data.set_index("variant").loc["llm4sbr"]
    assert row["seed_pairs"] == 2 and row["pairs"] == "0:0 1:1"
    assert row["dropped_seeds"] == "3" and row["dropped_reference_seeds"] == "2"
    base = np.stack([_ranks(s) for s in (0, 1)])
    ours = np.stack([_ranks(0, 10), _ranks(1, 10)])
    expected = paired_two_level_bootstrap(metric_values(base, "P@20"),
                                          metric_values(ours, "P@20"), SESSIONS, RESAMPLES, 0)
    assert row["P@20_p"] == pytest.approx(expected.p)
    assert row["P@20_seed_pairs"] == 2
    md = table.markdown()
    assert "Dropped, without a partner seed: srgnn llm4sbr: B seed 3 (no `base` partner); " \
           "srgnn llm4sbr: `base` seed 2 (no B partner)." in md
    assert "2–3 seed pairs per comparison" in md
    # no seed in common: no test, and the note says so
    lone = variant_comparison(_grid(tmp_path / "lone", better_seeds=(5,)),
                              n_resamples=RESAMPLES)
    assert "Not tested (no seed in common with `base`): srgnn llm4sbr." in lone.markdown()
    assert _rows(lone)[("srgnn", "llm4sbr", "—")][-1] == "not tested (see the notes)"


def test_tiny_test_set_warns_that_it_cannot_tell(tmp_path):
    sessions = np.arange(25)
    paths = [write_run(tmp_path, "srgnn", "base", s, np.random.default_rng(s).integers(
        1, 40, 25), session_ids=sessions) for s in (0, 1)]
    paths += [write_run(tmp_path, "srgnn", "llm4sbr", s, np.full(25, 90),
                        session_ids=sessions) for s in (0, 1)]
    table = variant_comparison(paths, n_resamples=RESAMPLES)
    assert len(table.warnings) == 1
    md = table.markdown()
    warning = next(line for line in md.splitlines() if line.startswith(WARNING))
    assert "this test set (25 test samples in 25 sessions, 2 seed pairs) is too small to " \
           "detect a difference of less than" in warning
    assert warning.endswith("these numbers show the pipeline, not a verdict.")
    assert md.index(WARNING) < md.index("| backbone |")  # before the numbers
    # a warning beyond the sessions' count: an MDD above the stated points
    strict = variant_comparison(paths, n_resamples=RESAMPLES, min_sessions=10,
                                max_mdd_pp=1.0)
    assert "an MDD above 1 points" in strict.warnings[0]
    assert not variant_comparison(paths, n_resamples=RESAMPLES, min_sessions=10,
                                  max_mdd_pp=1000.0).warnings


def test_equivalence_only_when_tost_rejects(tmp_path):
    rng = np.random.default_rng(3)
    base = [rng.integers(1, 60, size=N) for _ in range(3)]
    paths = [write_run(tmp_path, "srgnn", "base", s, base[s], session_ids=SESSIONS)
             for s in range(3)]
    # the same runs (Δ = 0 exactly), a nearly equal one (a few targets move) and a noisy one
    nudged = [np.where(rng.random(N) < 0.02, b + 1, b) for b in base]
    paths += [write_run(tmp_path, "srgnn", "same", s, base[s], session_ids=SESSIONS)
              for s in range(3)]
    paths += [write_run(tmp_path, "srgnn", "nudged", s, nudged[s], session_ids=SESSIONS)
              for s in range(3)]
    paths += [write_run(tmp_path, "srgnn", "other", s, rng.integers(1, 60, size=N),
                        session_ids=SESSIONS) for s in range(3)]
    table = variant_comparison(paths, n_resamples=RESAMPLES)
    data = table.data.set_index("variant")
    verdicts = []
    for variant in ("same", "nudged", "other"):
        for m in ("P@20", "MRR@20"):
            words = data.loc[variant, f"{m}_verdict"]
            verdicts.append(words)
            if words.startswith("equivalent"):
                assert data.loc[variant, f"{m}_tost_p_holm"] < 0.05
                assert data.loc[variant, f"{m}_margin"] > 0
            else:
                assert (data.loc[variant, f"{m}_tost_p_holm"] >= 0.05
                        or data.loc[variant, f"{m}_p_holm"] < 0.05)
    assert data.loc["same", "P@20_verdict"] == "equivalent within ±1.00 pp"
    assert data.loc["other", "P@20_verdict"].startswith("no detectable difference, 95 % CI [")
    # without a margin no verdict says equivalent, not even for identical runs
    plain = variant_comparison(paths, n_resamples=RESAMPLES, margins_pp={})
    words = " ".join(plain.data[[c for c in plain.data if c.endswith("_verdict")]]
                     .fillna("").to_numpy().ravel())
    assert "equivalent" not in words and "no detectable difference" in words
    assert "m = none" in plain.markdown()


def test_sessions_from_the_test_samples_or_none(tmp_path):
    paths = _grid(tmp_path, sessions=None)
    unclustered = variant_comparison(paths, n_resamples=RESAMPLES)
    md = unclustered.markdown()
    assert "every test sample is its own cluster" in md
    assert unclustered.data.set_index("variant").loc["llm4sbr", "clusters"] == "none"
    test = write_test_samples(tmp_path, SESSIONS)
    clustered = variant_comparison(paths, n_resamples=RESAMPLES, test_samples=test)
    row = clustered.data.set_index("variant").loc["llm4sbr"]
    assert row["clusters"] == "test samples" and row["P@20_test_sessions"] == N_SESSIONS
    assert "session_id from the test samples file" in clustered.markdown()
    with_ranks = variant_comparison(_grid(tmp_path / "r"), n_resamples=RESAMPLES)
    assert row["P@20_p"] == pytest.approx(
        with_ranks.data.set_index("variant").loc["llm4sbr", "P@20_p"])


def test_inconsistent_inputs_are_errors(tmp_path):
    paths = _grid(tmp_path)
    write_run(tmp_path, "srgnn", "llm4sbr", 1, _ranks(1, 10), session_ids=SESSIONS[::-1])
    with pytest.raises(InvalidInputError, match="assigns other sessions"):
        variant_comparison(paths, n_resamples=RESAMPLES)
    write_run(tmp_path, "srgnn", "llm4sbr", 1, _ranks(1, 10)[:-1], session_ids=SESSIONS[:-1])
    with pytest.raises(InvalidInputError, match="other test samples"):
        variant_comparison(paths, n_resamples=RESAMPLES)
    with pytest.raises(ValueError, match="no 'base' runs"):
        variant_comparison(paths[3:6])
    with pytest.raises(InvalidInputError, match=r"no 'base' runs among the 0 runs given"):
        variant_comparison([])


def test_a_peer_beside_several_backbones_is_one_row_after_them(tmp_path):
    paths = _grid(tmp_path)
    paths += [write_run(tmp_path, "gru4rec", "base", s, _ranks(s + 3), session_ids=SESSIONS)
              for s in range(3)]
    table = variant_comparison(paths, metrics=("P@20",), n_resamples=RESAMPLES)
    assert [(r[0], r[1]) for r in table.rows] == [
        ("srgnn", "base"), ("srgnn", "llm4sbr"), ("gru4rec", "base"), ("llmseqsim", "mean")]
    # …while each backbone still has its own test against the peer
    assert {k[:2] for k in _rows(table)} == {("srgnn", "llm4sbr"), ("srgnn", "llmseqsim mean"),
                                            ("gru4rec", "llmseqsim mean")}
