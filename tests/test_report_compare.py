"""Variants against a reference with paired tests (llm4sbr_core/report/compare.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from llm4sbr_core.errors import InvalidInputError
from llm4sbr_core.report.compare import variant_comparison
from report_synthetic import write_llmseqsim, write_run


def test_comparison_against_base(tmp_path):
    rng = np.random.default_rng(0)
    base = [rng.integers(1, 60, size=200) for _ in range(2)]
    better = [np.maximum(1, b - 15) for b in base]  # every target moves up 15 places
    paths = [write_run(tmp_path, "srgnn", "base", s, base[s]) for s in range(2)]
    paths += [write_run(tmp_path, "srgnn", "llm4sbr", s, better[s]) for s in range(2)]
    paths.append(write_llmseqsim(tmp_path, "mean", base[0]))
    table = variant_comparison(paths, metrics=("P@20", "MRR@20"))
    rows = {(r[0], r[1]): r for r in table.rows}
    assert set(rows) == {("srgnn", "base"), ("srgnn", "llm4sbr"), ("llmseqsim", "mean")}
    hit = lambda ranks: np.mean([(r <= 20).mean() for r in ranks])  # noqa: E731
    data = table.data.set_index("variant")
    assert data.loc["llm4sbr", "P@20_change_pct"] == pytest.approx(
        100 * (hit(better) - hit(base)) / hit(base))
    expected_p = stats.ttest_rel(np.mean([(b <= 20) for b in better], 0),
                                 np.mean([(b <= 20) for b in base], 0)).pvalue
    assert data.loc["llm4sbr", "P@20_p_ttest"] == pytest.approx(expected_p)
    assert 0 < data.loc["mean", "P@20_p_ttest"] <= 1 and data.loc["mean", "seeds"] == 1
    assert rows[("srgnn", "base")][-1] == ""  # the reference is not tested against itself
    with pytest.raises(ValueError, match="no 'base' runs"):
        variant_comparison(paths[2:4])
    with pytest.raises(InvalidInputError, match=r"no 'base' runs among the 0 runs given"):
        variant_comparison([])
