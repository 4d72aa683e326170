import json

import numpy as np
import pytest

from llm4sbr_core.report.compare import variant_comparison
from llm4sbr_core.report.render import WARNING, write_table
from llm4sbr_core.report.runs import load_runs, ranks_path, summary_table
from llm4sbr_core.report.summary import run_summary
from llm4sbr_core.report.tables import table3
from report_synthetic import write_run, write_stats


def test_load_and_summarise(tmp_path):
    paths = []
    for seed, p20 in ((0, 0.10), (1, 0.12)):
        d = tmp_path / "results/ml-100k/runs/srgnn/base" / f"seed{seed}"
        d.mkdir(parents=True)
        test = {k: 0.01 for k in ("P@5", "P@10", "MRR@5", "MRR@10", "MRR@20", "NDCG@5",
                                  "NDCG@10", "NDCG@20")} | {"P@20": p20}
        (d / "metrics.json").write_text(json.dumps(
            {"test": test, "valid": test, "best_epoch": 3 + seed, "epochs": 8,
             "seconds_per_epoch": 1.0}))
        paths.append(d / "metrics.json")
    runs = load_runs(paths)
    assert runs[["dataset", "backbone", "variant"]].iloc[0].tolist() == ["ml-100k", "srgnn", "base"]
    assert runs["seed"].tolist() == [0, 1]
    table = summary_table(runs, ["P@20"], paper={"srgnn": {"P@20": 15.06, "MRR@20": 3.99}})
    row = table.splitlines()[2]
    assert "11.00 ± 1.41" in row and "15.06" in row and "| 2 |" in row
    assert runs["P@20"].mean() == pytest.approx(0.11)


def test_runs_know_their_ranks(tmp_path):
    path = write_run(tmp_path, "srgnn", "base", 3, [1, 2])
    runs = load_runs([path])
    assert runs["path"].tolist() == [str(path)]
    assert ranks_path(runs["path"].iloc[0]) == path.with_name("ranks.parquet")


def test_run_summary_repeats_the_tables_warnings(tmp_path):
    write_stats(tmp_path)
    paths = [write_run(tmp_path, "srgnn", v, s, np.random.default_rng(s).integers(1, 40, 25))
             for v in ("base", "llm4sbr") for s in (0, 1)]
    tables = tmp_path / "results/ml-100k/tables"
    write_table(variant_comparison(paths, n_resamples=200), tables / "variants.csv",
                tables / "variants.md")
    write_table(table3(paths, n_resamples=200), tables / "table3.csv", tables / "table3.md")
    summary = run_summary(["ml-100k"], tmp_path)
    assert "ml-100k: # Variants against base (%)" in summary
    lines = [line for line in summary.splitlines()
             if line.startswith(f"ml-100k: {WARNING} this test set (25 test samples")]
    assert len(lines) == 1 and lines[0].endswith("not a verdict.")  # once, not per table
    assert "## Tests against base of the same backbone" in summary
