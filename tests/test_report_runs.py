import json

import pytest

from llm4sbr_core.report.runs import load_runs, summary_table


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
