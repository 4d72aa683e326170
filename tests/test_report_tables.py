"""Tables 2–5, the runtime table, the paper's numbers and the report plan, on synthetic runs
whose metrics are known."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from llm4sbr_core.errors import MissingRunError
from llm4sbr_core.report import plan
from llm4sbr_core.report.grounding import localization_report
from llm4sbr_core.report.inference import holm, paired_two_level_bootstrap
from llm4sbr_core.report.paper import (
    PAPER_TABLE3_ROWS,
    PAPER_TABLE4,
    TABLE3_METRICS,
    textinit_label,
)
from llm4sbr_core.report.render import WARNING, markdown_page, write_markdown, write_table
from llm4sbr_core.report.runs import PAPER_TABLE3
from llm4sbr_core.report.runtime import runtime_table, stage_runtime
from llm4sbr_core.report.significance import TEST_HEADER
from llm4sbr_core.report.tables import table2, table3, table4, table5
from report_synthetic import write_benchmark, write_grounding, write_run, write_stats

PAPER = REPO.parent / "shared" / "paper" / "LLM4SBR-TOIS2025.md"

BASE = {0: [1, 3, 30, 8], 1: [2, 30, 30, 4]}
OURS = {0: [1, 1, 8, 2], 1: [1, 2, 30, 1]}


def table3_runs(root, dataset="beauty"):
    paths = [write_run(root, "srgnn", "base", s, r, dataset=dataset) for s, r in BASE.items()]
    paths += [write_run(root, "srgnn", "llm4sbr", s, r, dataset=dataset)
              for s, r in OURS.items()]
    return paths


def test_table3_means_stds_improvements_and_tests(tmp_path):
    table = table3(table3_runs(tmp_path), n_resamples=500, seed=0)
    data = table.data.set_index("metric")
    # P@5: both base seeds 2/4 hits, both LLM4SBR seeds 3/4
    assert data.loc["P@5", ["base_mean", "base_std", "llm4sbr_mean", "llm4sbr_std"]].tolist() \
        == pytest.approx([50.0, 0.0, 75.0, 0.0])
    assert data.loc["P@5", "improvement_pct"] == pytest.approx(50.0)
    # P@10: base 3/4 and 2/4, LLM4SBR 4/4 and 3/4: std of (75, 50) = 17.68
    assert data.loc["P@10", ["base_mean", "llm4sbr_mean"]].tolist() == pytest.approx([62.5, 87.5])
    assert data.loc["P@10", "base_std"] == pytest.approx(np.std([75, 50], ddof=1))
    assert data.loc["P@10", "improvement_pct"] == pytest.approx(40.0)
    # tests on P@20 and MRR@20 only: P@20 per sample, base [1 1 0 1 | 1 0 0 1], LLM4SBR
    # [1 1 1 1 | 1 1 0 1]: Δ = +25 pp; seed 0 with seed 0, seed 1 with seed 1
    assert data.loc["P@20", "mean_diff"] == pytest.approx(25.0)
    expected = paired_two_level_bootstrap([[1, 1, 0, 1], [1, 0, 0, 1]],
                                          [[1, 1, 1, 1], [1, 1, 0, 1]], [0, 1, 2, 3], 500, 0)
    assert data.loc["P@20", "p"] == pytest.approx(expected.p)
    assert data.loc["P@20", ["test_samples", "test_sessions", "seed_pairs"]].tolist() == [4, 4, 2]
    assert data.loc["P@20", "holm_family"] == 2
    assert data.loc[["P@20", "MRR@20"], "p_holm"].tolist() == pytest.approx(
        holm(data.loc[["P@20", "MRR@20"], "p"].to_numpy()))
    assert data.loc[["P@10", "NDCG@20"], "p"].isna().all()
    assert data.loc["P@20", "verdict"] in ("LLM4SBR(SR-GNN) better", "SR-GNN better") or \
        data.loc["P@20", "verdict"].startswith("no detectable difference, 95 % CI [")
    # MRR@5 of base seed 0: (1 + 1/3) / 4; seed 1: (1/2 + 1/4) / 4
    assert data.loc["MRR@5", "base_mean"] == pytest.approx(100 * (4 / 3 / 4 + 0.75 / 4) / 2)
    # the paper's SR-GNN rows on Beauty
    assert data.loc["P@5", ["paper_base", "paper_llm4sbr", "paper_improvement_pct"]].tolist() \
        == [6.23, 7.78, 24.87]
    assert math.isnan(data.loc["NDCG@5", "paper_base"])  # Table 3 has no NDCG
    md = table.markdown()
    rows = {tuple(line.split(" | ")[:2]): line for line in md.splitlines()[4:]
            if line.startswith("|")}
    assert "| 50.00 ± 0.00 | 62.50 ± 17.68 |" in rows[("| SR-GNN", "ours (2 seeds)")]
    assert "| 6.23 | 10.06 | 15.06 | 3.45 |" in rows[("| SR-GNN", "paper")]
    assert "| 7.78 | 11.73 | 16.98 |" in rows[("| LLM4SBR(SR-GNN)", "paper")]
    assert "| 50.00% | 40.00% |" in rows[("| SR-GNN Improv.", "ours")]
    assert "| 24.87% | 16.60% |" in rows[("| SR-GNN Improv.", "paper")]
    assert not any(key[0].startswith("| SR-GNN p") for key in rows)  # no sample-level p
    assert "selected on the VALIDATION split, mean ± sample std over N = 2 seeds" in md
    (section,) = table.sections
    assert section.header == ["comparison", *TEST_HEADER]
    assert [r[:3] for r in section.rows] == [["LLM4SBR(SR-GNN) vs SR-GNN", "P@20", "2"],
                                            ["LLM4SBR(SR-GNN) vs SR-GNN", "MRR@20", "2"]]
    assert section.rows[0][3].startswith("+25.00 [")
    # 4 test samples: the table says it cannot tell, first and in words
    assert len(table.warnings) == 1 and "too small to detect" in table.warnings[0]
    assert md.index(WARNING) < md.index("| model |")
    assert "these numbers show the pipeline, not a verdict" in md
    assert "every test sample is its own cluster" in md  # no session_id anywhere


def test_table3_holm_family_is_the_whole_table(tmp_path):
    sessions = np.repeat(np.arange(60), 2)
    rng = np.random.default_rng(4)
    paths = []
    for backbone in ("srgnn", "gru4rec"):
        for seed in (0, 1, 2):
            ranks = rng.integers(1, 50, size=120)
            paths.append(write_run(tmp_path, backbone, "base", seed, ranks,
                                   session_ids=sessions))
            paths.append(write_run(tmp_path, backbone, "llm4sbr", seed,
                                   np.maximum(1, ranks - rng.integers(0, 8, size=120)),
                                   session_ids=sessions))
    table = table3(paths, n_resamples=300, tested=("P@20", "MRR@20", "NDCG@20"))
    tested = table.data.dropna(subset=["p"])
    assert len(tested) == 6 and (tested["holm_family"] == 6).all()
    assert tested["p_holm"].to_numpy() == pytest.approx(holm(tested["p"].to_numpy()))
    assert (tested["clusters"] == "ranks").all() and (tested["test_sessions"] == 60).all()
    assert len(table.sections[0].rows) == 6
    md = table.markdown()
    assert "family of all 6 tests of this table (P@20, MRR@20, NDCG@20)" in md
    assert "120 test samples in 60 sessions" in md and "3 seed pairs per comparison" in md
    assert "no equivalence test for NDCG@20" in md
    assert "fewer than 100 sessions" in table.warnings[0]


def test_table3_without_llm4sbr_runs_has_no_tests(tmp_path):
    paths = [write_run(tmp_path, "gru4rec", "base", 0, [1, 2, 30], dataset="ml-100k")]
    table = table3(paths)
    assert [row[:2] for row in table.rows] == [["GRU4Rec", "ours (1 seed)"]]
    assert table.rows[0][2] == "66.67"  # one seed: the mean alone
    assert table.data["p"].isna().all() and not table.sections and not table.warnings


def test_table3_shows_the_knn_baselines(tmp_path):
    paths = [write_run(tmp_path, "srgnn", "base", 0, [1, 2, 30]),
             write_run(tmp_path, "stan", "tuned", 0, [1, 1, 3])]
    table = table3(paths)
    assert [row[:2] for row in table.rows] == [["SR-GNN", "ours (1 seed)"],
                                              ["STAN", "ours (tuned on valid, 1 run)"]]
    assert table.rows[1][2] == "100.00"
    assert any("Non-neural baselines (STAN)" in n for n in table.notes)


def test_the_plan_lists_the_knn_runs():
    config = {"train": {"backbones": ["srgnn"], "variants": ["base", "llm4sbr"], "seeds": [0],
                        "knn": ["pop", "stan"]}}
    knn = ["results/d/runs/pop/tuned/seed0/metrics.json",
           "results/d/runs/stan/tuned/seed0/metrics.json"]
    assert plan.knn_runs(config, "d") == knn
    assert plan.table3_runs(config, "d")[-2:] == knn
    assert plan.variant_runs(config, "d")[-2:] == knn
    assert plan.knn_runs(config, "d", "ranks.parquet")[0].endswith("tuned/seed0/ranks.parquet")


def test_missing_run_names_the_file(tmp_path):
    paths = table3_runs(tmp_path)
    missing = tmp_path / "results/beauty/runs/srgnn/llm4sbr/seed7/metrics.json"
    with pytest.raises(MissingRunError, match="srgnn/llm4sbr/seed7/metrics.json"):
        table3([*paths, missing])
    paths[-1].with_name("ranks.parquet").unlink()
    with pytest.raises(MissingRunError, match="srgnn/llm4sbr/seed1/ranks.parquet"):
        table3(paths)


def test_table2_beside_the_paper(tmp_path):
    beauty = write_stats(tmp_path, "beauty", train_samples=142386, valid_samples=15753,
                         test_samples=18000, clicks=198502, items=12101, avg_len_input=8.6689)
    ml1m = write_stats(tmp_path, "ml-1m", note="partial: ratings of users 1-2999 only")
    table = table2([beauty, ml1m])
    md = table.markdown()
    assert "| beauty | ours | 142,386 | 15,753 | 158,139 | 18,000 |" in md
    assert "| beauty | paper | — | — | 158,139 | 18,000 | — | 198,502 | 12,101 | 8.66 |" in md
    assert "| ml-1m | paper | — | — | 47,808 | 5,313 |" in md
    assert "partial: ratings of users 1-2999 only" in md
    data = table.data.set_index(["dataset", "source"])
    assert data.loc[("beauty", "ours"), "train_valid_samples"] == 158139
    with pytest.raises(MissingRunError, match="results/x/data/stats.json"):
        table2([tmp_path / "results/x/data/stats.json"])


def test_table4_orders_variants_and_shows_paper_values(tmp_path):
    paths = [write_run(tmp_path, "srgnn", v, 0, [1, 6, 30, 2], dataset="beauty")
             for v in ("base", "wo_long", "llm4sbr", "textinit")]
    table = table4(paths)
    assert [(r[1], r[2]) for r in table.rows] == [
        ("LLM4SBR", "ours (1 seed)"), ("LLM4SBR", "paper"),
        ("w/o Long (short view)", "ours (1 seed)"), ("w/o Long (short view)", "paper"),
        ("w/o LLM (backbone)", "ours (1 seed)"), ("w/o LLM (backbone)", "paper")]
    assert table.rows[1][3:] == ["7.78", "11.73", "16.98", "4.71", "5.03", "5.12", "5.64",
                                 "6.67", "7.64"]
    assert table.rows[3][3:6] == ["7.32", "10.80", "15.98"] and table.rows[3][6] == "—"
    assert table.rows[0][3] == "50.00"  # P@5: ranks 1 and 2 of 4
    assert set(table.data["variant"]) == {"base", "wo_long", "llm4sbr"}
    assert "No tests here: the variants table" in table.markdown()


def test_table5_costs(tmp_path):
    paths = [write_run(tmp_path, "srgnn", "base", s, [1, 2], dataset="beauty", best_epoch=2,
                       train_seconds=(1.0, 2.0, 4.0 + s), peak_host_mb=100 + 10 * s)
             for s in (0, 1)]
    table = table5(paths)
    row = table.data.iloc[0]
    assert row["seeds"] == 2 and row["device"] == "cpu"
    assert row["time_to_best_mean"] == pytest.approx(3.0)          # epochs 1 and 2
    assert row["seconds_per_epoch_mean"] == pytest.approx((7 / 3 + 8 / 3) / 2)
    assert row["peak_host_mb_mean"] == pytest.approx(105)
    assert row["peak_host_mb_std"] == pytest.approx(np.std([100, 110], ddof=1))
    assert row["eval_seconds_mean"] == pytest.approx(0.5)
    assert row["paper_gpu_mb"] == 1262 and row["paper_time_to_best"] == 2085.67
    assert table.rows[0][-3:] == ["1,262", "398.08", "2,085.67"]


def test_write_table_is_atomic_and_complete(tmp_path):
    table = table3(table3_runs(tmp_path), n_resamples=100)
    out = tmp_path / "results/beauty/tables"
    write_table(table, out / "table3.csv", out / "table3.md", out / "table3.html")
    assert sorted(p.name for p in out.iterdir()) == ["table3.csv", "table3.html", "table3.md"]
    csv = pd.read_csv(out / "table3.csv")
    assert len(csv) == 9 and csv["base_mean"].iloc[0] == pytest.approx(50.0)
    page = (out / "table3.html").read_text()
    assert "<h2>Table 3. The backbones with and without LLM4SBR (%)</h2>" in page
    assert "<td>62.50 ± 17.68</td>" in page


def test_markdown_page_tables_and_escapes(tmp_path):
    page = markdown_page("# T\n\nsome <text>\n\n| a | b |\n|---|---|\n| 1 \\| 2 | 3 |\n")
    assert "<h2>T</h2>" in page and "<p>some &lt;text&gt;</p>" in page
    assert "<tr><td>1 | 2</td><td>3</td></tr>" in page
    write_markdown("# X\n", tmp_path / "x.md", tmp_path / "x.html")
    assert (tmp_path / "x.html").read_text().count("<h2>X</h2>") == 1


def test_stage_runtime_sums_per_first_directory(tmp_path):
    paths = [write_benchmark(tmp_path, "train/srgnn.base.seed0.tsv", 100, max_rss=300),
             write_benchmark(tmp_path, "train/srgnn.base.seed1.tsv", 50, max_rss=200),
             write_benchmark(tmp_path, "localize_intents/llm/enc/r5.short.tsv", 7),
             write_benchmark(tmp_path, "build_dataset.tsv", 3)]
    root = tmp_path / "results/ml-100k/benchmarks"
    frame = stage_runtime(paths, root)
    assert frame.to_dict("records") == [
        {"stage": "train", "jobs": 2, "seconds": 150.0, "max_rss_mb": 300.0},
        {"stage": "localize_intents", "jobs": 1, "seconds": 7.0, "max_rss_mb": 50.0},
        {"stage": "build_dataset", "jobs": 1, "seconds": 3.0, "max_rss_mb": 50.0}]
    assert "| train | 2 | 150.0 | 0.042 | 300 |" in runtime_table(paths, root).markdown()
    assert stage_runtime([], root).empty


def test_localization_report(tmp_path):
    paths = [write_grounding(tmp_path, v) for v in ("short", "long")]
    md = localization_report(paths)
    assert "| ml-100k | short | 5 | all | 10 | 30.00 | 10.00 | 0.600 | 1 |" in md
    assert "## long view: examples" in md
    assert "| Heat (1995) → Casino (1995) | crime dramas (long) | Se7en (1995) (0.81); " in md
    with pytest.raises(FileNotFoundError, match="missing.grounding.json"):
        localization_report([tmp_path / "missing.grounding.json"])


def _paper_table3_lines() -> list[list[float]]:
    text = PAPER.read_text()
    block = text[text.index("Table 3. Performance"):text.index("We highlight the best")]
    rows = []
    for line in block.splitlines():
        cells = re.sub(r"</?[bu]>", "", line).split("\t")
        if len(cells) == 13 and cells[0] not in ("Model", "Dataset"):
            rows.append([float(c.rstrip("%")) for c in cells[1:]])
    return rows


def test_paper_table3_is_transcribed_exactly():
    if not PAPER.is_file():
        pytest.skip(f"paper text not found at {PAPER}")
    rows = _paper_table3_lines()
    assert len(rows) == 18
    ours = []
    for backbone in ("gru4rec", "sasrec", "srgnn", "tagnn", "gcegnn", "dhcn"):
        for row in ("base", "llm4sbr", "improv"):
            ours.append([PAPER_TABLE3_ROWS[d][backbone][row][m]
                         for d in ("beauty", "ml-1m") for m in TABLE3_METRICS])
    assert ours == rows


def test_paper_tables_are_consistent():
    assert PAPER_TABLE3["ml-1m"]["dhcn"]["P@20"] == 23.38  # the backbone rows, as before
    for dataset, backbones in PAPER_TABLE3_ROWS.items():
        for rows in backbones.values():
            for m in TABLE3_METRICS:
                computed = 100 * (rows["llm4sbr"][m] - rows["base"][m]) / rows["base"][m]
                # the printed improvements are computed from unrounded values
                assert computed == pytest.approx(rows["improv"][m], abs=1.5), (dataset, m)
    # Table 4's w/o LLM and LLM4SBR columns are Table 3's SR-GNN rows
    for dataset in ("beauty", "ml-1m"):
        for m in TABLE3_METRICS:
            assert PAPER_TABLE4[dataset]["base"][m] == PAPER_TABLE3_ROWS[dataset]["srgnn"][
                "base"][m]
            assert PAPER_TABLE4[dataset]["llm4sbr"][m] == PAPER_TABLE3_ROWS[dataset]["srgnn"][
                "llm4sbr"][m]
    assert textinit_label("srgnn") == "LLM2SRGNN"


CONFIG = {"localize": {"r": 5},
          "train": {"backbones": ["srgnn", "gru4rec"], "seeds": [0, 1],
                    "variants": ["base", "llm4sbr", "wo_au", "textinit", "llm4sbr-r0",
                                 "llm4sbr-tau1", "wo_long"]}}


def test_plan_requests_only_configured_runs():
    t3 = plan.table3_runs(CONFIG, "ml-100k")
    assert t3 == [f"results/ml-100k/runs/{b}/{v}/seed{s}/metrics.json"
                  for b in ("srgnn", "gru4rec") for v in ("base", "llm4sbr") for s in (0, 1)]
    assert plan.table3_runs(CONFIG, "ml-100k", "ranks.parquet")[0].endswith("ranks.parquet")
    assert {p.split("/")[4] for p in plan.table4_runs(CONFIG, "d")} == {
        "base", "llm4sbr", "wo_au", "wo_long"}
    assert {p.split("/")[4] for p in plan.fig5_runs(CONFIG, "d")} == {"base", "llm4sbr",
                                                                       "textinit"}
    assert plan.fig7_variants(CONFIG) == ["llm4sbr", "llm4sbr-r0"]
    assert plan.fig6_runs(CONFIG, "d") != [] and plan.llmseqsim_runs(CONFIG, "d") == []
    assert plan.llmseqsim_runs({"train": {"llmseqsim": ["mean"]}}, "d") == [
        "results/d/runs/llmseqsim/mean/seed0/metrics.json"]
    assert plan.uses_llm(CONFIG)
    assert not plan.uses_llm({"train": {"variants": ["base", "textinit", "llm4sbr-items"]}})


def test_report_targets_follow_the_config():
    base_only = {"localize": {"r": 5}, "train": {"backbones": ["srgnn"], "seeds": [0],
                                                 "variants": ["base"]}}
    targets = plan.report_targets(base_only, ["ml-100k"])
    names = {t.split("/")[-1] for t in targets}
    assert names == {"table2.md", "runtime.md", "runtime.png", "table3.md", "table4.md",
                     "table5.md", "training_curves.png", "fig5_peers.png"}
    full = {n.split("/")[-1] for n in plan.report_targets(CONFIG, ["ml-100k", "beauty"])}
    assert {"fig6_views.png", "fig7_r.png", "fig4_localization.md"} <= full
    assert len(plan.report_targets(CONFIG, ["ml-100k", "beauty"])) == 2 * len(full)
    # one bar or one r value is no comparison: Figs. 6 and 7 are left out
    quick = {"localize": {"r": 5}, "train": {"backbones": ["srgnn"], "seeds": [0],
                                             "variants": ["base", "llm4sbr", "llm4sbr-r5"]}}
    names = {t.split("/")[-1] for t in plan.report_targets(quick, ["d"])}
    assert "fig6_views.png" not in names and "fig7_r.png" not in names
