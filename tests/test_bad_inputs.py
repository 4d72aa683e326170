"""The bad-input corpus (tests/bad_inputs/cases.yaml): every case runs the data stage on
its raw files and must stop with an error whose first line names the file (and line) or
the config key, or finish with the documented counted skip or warning."""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import pytest
import yaml

from llm4sbr_core import errors
from llm4sbr_core.config import deep_update, validate_config
from llm4sbr_core.data.build import prepare_dataset

CORPUS = Path(__file__).parent / "bad_inputs"
SPEC = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
CASES = SPEC["cases"]
#: What the first line of every error must name: a file (with its line where there is
#: one), or a config key.
NAMES_A_PLACE = re.compile(r"[\w.-]+\.(csv|dat|inter|item|json)(\.gz)?(:\d+)?: "
                           r"|'dataset_settings[\w.-]*'|'datasets'")


def test_corpus_is_complete():
    assert len(CASES) >= 25
    folders = {c.get("folder", name) for name, c in CASES.items()}
    on_disk = {p.name for p in CORPUS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert on_disk <= folders, f"folders no case uses: {sorted(on_disk - folders)}"


def run_case(name: str, case: dict):
    dataset = case.get("name", name)
    settings = deep_update(copy.deepcopy(SPEC["defaults"]), case.get("settings", {}))
    if "folder" in case:
        settings.setdefault("raw_folder", case["folder"])
    config = validate_config({"datasets": [dataset], "dataset_settings": {dataset: settings}})
    return prepare_dataset(config["dataset_settings"][dataset], CORPUS,
                           case.get("call_name", dataset))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, caplog):
    case = CASES[name]
    expect = case["expect"]
    caplog.set_level(logging.WARNING)
    if "error" in expect:
        with pytest.raises(errors.Llm4sbrError) as info:
            run_case(name, case)
        assert type(info.value).__name__ == expect["error"], str(info.value)
        message = str(info.value)
        first = message.splitlines()[0]
        assert re.search(expect["first_line"], first), first
        assert NAMES_A_PLACE.search(first), f"names no file or config key: {first}"
        for pattern in expect.get("message", []):
            assert re.search(pattern, message), message
        return
    assert expect["ok"] is True
    tables, items, stats = run_case(name, case)
    assert tables["train"].num_rows and tables["test"].num_rows
    for k, v in expect.get("stats", {}).items():
        assert stats[k] == v, (k, stats[k])
    skipped = {Path(p).name: n for p, n in stats["skipped_lines"].items()}
    assert skipped == expect.get("skipped", {})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if "warning" in expect:
        assert any(re.search(expect["warning"], w) for w in warnings), warnings
