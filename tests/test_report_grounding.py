"""Grounding tables and Fig. 4-like examples from grounding.json files."""

from __future__ import annotations

import json

from llm4sbr_core.report.grounding import grounding_examples, grounding_table


def test_grounding_table_and_examples(tmp_path):
    path = tmp_path / "results/ml-100k/intents/llm/enc/r5/short.grounding.json"
    path.parent.mkdir(parents=True)
    stats = {"r": 5, "zero_answers": 3, "samples": 10, "top1_in_session": 0.25,
             "hit_at_r": 0.1, "mean_top1_similarity": 0.61234,
             "by_split": {"test": {"samples": 4, "top1_in_session": 0.5, "hit_at_r": 0.0,
                                   "mean_top1_similarity": 0.5}},
             "examples": [{"sample_id": 7, "session": ["A", "B", "C", "D"], "answer": "Heat",
                           "localized": [["Heat (1995)", 0.91], ["Casino (1995)", 0.5]],
                           "target": "Se7en"}]}
    path.write_text(json.dumps(stats))
    table = grounding_table([path]).splitlines()
    assert table[2] == "| ml-100k | short | 5 | all | 10 | 25.00 | 10.00 | 0.612 | 3 |"
    assert table[3] == "| ml-100k | short | 5 | test | 4 | 50.00 | 0.00 | 0.500 |  |"
    examples = grounding_examples(path).splitlines()
    assert examples[2] == "| B → C → D | Heat | Heat (1995) (0.91); Casino (1995) (0.50) | Se7en |"


def test_examples_escape_pipes_and_line_breaks(tmp_path):
    """A '|' in an answer or a title must not open a new column of the Fig. 4 table."""
    path = tmp_path / "results/d/intents/llm/enc/r5/short.grounding.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "r": 5, "zero_answers": 0, "samples": 1,
        "examples": [{"session": ["A|B", "C"], "answer": "Heat | Casino\nor Se7en",
                      "localized": [["Heat (1995) | DVD", 0.9]], "target": "X|Y"}]}))
    row = grounding_examples(path).splitlines()[2]
    assert row == ("| A\\|B → C | Heat \\| Casino or Se7en | Heat (1995) \\| DVD (0.90) | "
                   "X\\|Y |")
    assert len(row.replace("\\|", "").split("|")) == 6  # four cells
