"""The results archive: collecting runs, regenerating RESULTS.md's tables from it, and the
check that the published RESULTS.md agrees with the archived runs."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from llm4sbr_core.errors import InvalidInputError
from llm4sbr_core.report import archive
from report_synthetic import write_run, write_stats


def results(tmp_path):
    rng = np.random.default_rng(0)
    sessions = np.arange(300) // 2
    for variant, gain in (("base", 0), ("llm4sbr", 8)):
        for seed in range(3):
            ranks = np.clip(rng.integers(1, 50, size=300) - gain, 1, None)
            write_run(tmp_path, "srgnn", variant, seed, ranks, session_ids=sessions)
    write_stats(tmp_path)
    (tmp_path / "results/ml-100k/runs/srgnn/base/seed9").mkdir()  # unfinished: skipped
    return tmp_path / "results"


def test_collect_copies_finished_runs_and_stats(tmp_path):
    archived = archive.collect(results(tmp_path), tmp_path / "archive")
    assert len(archived) == 6
    run = tmp_path / "archive/ml-100k/runs/srgnn/llm4sbr/seed2"
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "ranks.parquet"]
    assert (tmp_path / "archive/ml-100k/data/stats.json").is_file()
    assert not (tmp_path / "archive/ml-100k/runs/srgnn/base/seed9").exists()


def test_blocks_are_regenerated_and_checked(tmp_path):
    archive.collect(results(tmp_path), tmp_path / "archive")
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\nText stays.\n\n"
                  "<!-- table: variants dataset=ml-100k resamples=300 -->\nstale\n"
                  "<!-- /table -->\n\nMore text.\n")
    diff = archive.check(md, tmp_path / "archive")
    assert any(line == "-stale" for line in diff)
    assert archive.main(["check", str(md), "--archive", str(tmp_path / "archive")]) == 1
    assert archive.main(["regenerate", str(md), "--archive", str(tmp_path / "archive")]) == 0
    text = md.read_text()
    assert text.startswith("# Results\n\nText stays.") and text.endswith("More text.\n")
    assert "#### Variants against base" in text and "| srgnn | llm4sbr | 3 |" in text
    assert archive.check(md, tmp_path / "archive") == []
    # a changed number in the published text is caught
    md.write_text(text.replace("| srgnn | llm4sbr | 3 |", "| srgnn | llm4sbr | 4 |"))
    assert archive.check(md, tmp_path / "archive") != []


def test_a_variants_table_can_test_against_another_reference(tmp_path):
    archive.collect(results(tmp_path), tmp_path / "archive")
    md = archive.render_block("variants dataset=ml-100k reference=llm4sbr resamples=300",
                              tmp_path / "archive")
    assert "Tests against llm4sbr of the same backbone" in md
    assert "| srgnn | base | P@20 |" in md and "llm4sbr better" in md


def test_bad_specs_are_clear_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown kind 'tabel3'"):
        archive.parse_spec("tabel3 dataset=x")
    with pytest.raises(InvalidInputError, match="'dataset' is not key=value"):
        archive.parse_spec("table3 dataset")
    with pytest.raises(InvalidInputError, match="no archived runs of 'ml-1m'"):
        archive.render_block("table3 dataset=ml-1m", tmp_path)


def test_published_results_agree_with_the_archive():
    """RESULTS.md's generated tables are what the tracked archive gives."""
    assert "<!-- table: " in (REPO / "RESULTS.md").read_text()
    diff = archive.check(REPO / "RESULTS.md", REPO / "archive")
    assert not diff, "RESULTS.md differs from the archive; run `make results`:\n" + "\n".join(
        diff[:60])


def test_runs_archived_ahead_of_their_table_change_no_table_and_are_listed(tmp_path):
    """A grid archived run by run stays out of a table whose spec names its backbones,
    and `check` lists it as read by no table."""
    archive.collect(results(tmp_path), tmp_path / "archive")
    md = tmp_path / "RESULTS.md"
    md.write_text("<!-- table: variants dataset=ml-100k backbones=srgnn resamples=300 -->\n"
                  "<!-- /table -->\n")
    assert archive.main(["regenerate", str(md), "--archive", str(tmp_path / "archive")]) == 0
    assert archive.unpublished(md, tmp_path / "archive") == []
    pinned = md.read_text()
    rng = np.random.default_rng(1)
    write_run(tmp_path, "gcegnn", "base", 0, rng.integers(1, 50, size=300),
              session_ids=np.arange(300) // 2)
    archive.collect(tmp_path / "results", tmp_path / "archive")
    assert archive.check(md, tmp_path / "archive") == []
    assert md.read_text() == pinned
    waiting = archive.unpublished(md, tmp_path / "archive")
    assert waiting == [tmp_path / "archive/ml-100k/runs/gcegnn/base/seed0/metrics.json"]
    # a spec without backbones= reads the new backbone too
    md.write_text(pinned.replace(" backbones=srgnn", ""))
    assert archive.check(md, tmp_path / "archive") != []
    assert archive.unpublished(md, tmp_path / "archive") == []
