"""The bad-input corpus (tests/bad_inputs/cases.yaml): every case runs the data stage on
its raw files and must stop with an error whose first line names the file (and line) or
the config key, or finish with the documented counted skip or warning.

Paths git cannot hold (symbolic link loops, folders where a file belongs, unreadable
files) are made by the case's ``prepare`` in a copy of its folder; the config check that
runs before any job (:func:`llm4sbr_core.config.check_paths`) must stop those as well,
and the ``paths`` section does the same for ``raw_dir`` and ``cache_dir``."""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from llm4sbr_core import errors
from llm4sbr_core.config import deep_update, validate_config
from llm4sbr_core.data.build import prepare_dataset

CORPUS = Path(__file__).parent / "bad_inputs"
SPEC = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
CASES = SPEC["cases"]
PATH_CASES = SPEC["paths"]
#: What the first line of every error must name: a file (with its line where there is
#: one), or a config key.
NAMES_A_PLACE = re.compile(r"[\w.-]+\.(csv|dat|inter|item|json)(\.gz)?(:\d+)?: "
                           r"|'dataset_settings[\w.-]*'|'datasets'")


def test_corpus_is_complete():
    assert len(CASES) >= 25
    folders = {c.get("folder", name) for name, c in CASES.items()}
    on_disk = {p.name for p in CORPUS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert on_disk <= folders, f"folders no case uses: {sorted(on_disk - folders)}"


def make_path(path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace ``path`` (a file or folder, or nothing) by what ``kind`` names. Root may
    read and write anything, so for root an unreadable file or read-only folder is
    simulated: ``os.access`` answers no for that path (the check the code makes)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if kind == "symlink_loop":  # path → path.loop → path
        path.symlink_to(path.name + ".loop")
        path.with_name(path.name + ".loop").symlink_to(path.name)
    elif kind == "dangling_link":
        path.symlink_to("/nonexistent/llm4sbr-raw-disk/" + path.name)
    elif kind == "folder":
        path.mkdir()
        (path / "part-0.csv").write_text("user_id,item_id,timestamp\n")
    elif kind == "file":
        path.write_text("not a folder\n")
    elif kind in ("unreadable", "read_only_folder"):
        if kind == "unreadable":
            path.write_text("user_id,item_id,timestamp\n")
            path.chmod(0)
            denied = os.R_OK
        else:
            path.mkdir()
            path.chmod(0o555)
            denied = os.W_OK
        if os.geteuid() == 0:
            real_access = os.access

            def access(p, mode, *args, **kwargs):
                if Path(p) == path and mode & denied:
                    return False
                return real_access(p, mode, *args, **kwargs)

            monkeypatch.setattr(os, "access", access)
    else:
        raise AssertionError(f"unknown prepare kind {kind!r}")


def prepared_raw_dir(case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The corpus itself, or a copy of the case's folder with its ``prepare`` applied
    (``.`` is the folder itself)."""
    if "prepare" not in case:
        return CORPUS
    folder = tmp_path / "raw" / case["folder"]
    shutil.copytree(CORPUS / case["folder"], folder)
    for relative, kind in case["prepare"].items():
        make_path(folder if relative == "." else folder / relative, kind, monkeypatch)
    return folder.parent


def case_config(name: str, case: dict) -> tuple[str, dict]:
    dataset = case.get("name", name)
    settings = deep_update(copy.deepcopy(SPEC["defaults"]), case.get("settings", {}))
    if "folder" in case:
        settings.setdefault("raw_folder", case["folder"])
    return dataset, {"datasets": [dataset], "dataset_settings": {dataset: settings}}


def run_case(name: str, case: dict, raw_dir: Path = CORPUS):
    dataset, config = case_config(name, case)
    config = validate_config(config)
    return prepare_dataset(config["dataset_settings"][dataset], raw_dir,
                           case.get("call_name", dataset))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, caplog, tmp_path, monkeypatch):
    case = CASES[name]
    expect = case["expect"]
    caplog.set_level(logging.WARNING)
    raw_dir = prepared_raw_dir(case, tmp_path, monkeypatch)
    if "before_jobs" in expect:  # what the Snakefile's config check says of the same paths
        _, config = case_config(name, case)
        with pytest.raises(errors.ConfigError) as info:
            validate_config({**config, "raw_dir": str(raw_dir),
                             "cache_dir": str(tmp_path / "cache")})
        assert re.search(expect["before_jobs"], str(info.value)), str(info.value)
    if "error" in expect:
        with pytest.raises(errors.Llm4sbrError) as info:
            run_case(name, case, raw_dir)
        assert type(info.value).__name__ == expect["error"], str(info.value)
        message = str(info.value)
        first = message.splitlines()[0]
        assert re.search(expect["first_line"], first), first
        assert NAMES_A_PLACE.search(first), f"names no file or config key: {first}"
        for pattern in expect.get("message", []):
            assert re.search(pattern, message), message
        return
    assert expect["ok"] is True
    tables, items, stats = run_case(name, case, raw_dir)
    assert tables["train"].num_rows and tables["test"].num_rows
    for k, v in expect.get("stats", {}).items():
        assert stats[k] == v, (k, stats[k])
    skipped = {Path(p).name: n for p, n in stats["skipped_lines"].items()}
    assert skipped == expect.get("skipped", {})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if "warning" in expect:
        assert any(re.search(expect["warning"], w) for w in warnings), warnings


@pytest.mark.parametrize("name", sorted(PATH_CASES))
def test_unusable_path_stops_before_any_job(name, tmp_path, monkeypatch):
    """``raw_dir`` or ``cache_dir`` that exists but cannot be used: the config check the
    Snakefile runs first names the key and the path."""
    case = PATH_CASES[name]
    for relative, kind in case["prepare"].items():
        make_path(tmp_path / relative, kind, monkeypatch)
    config = {"datasets": ["good"], "dataset_settings": {"good": copy.deepcopy(SPEC["defaults"])},
              "raw_dir": str(CORPUS), "cache_dir": str(tmp_path / "cache"),
              **{k: str(tmp_path / v) for k, v in case["config"].items()}}
    with pytest.raises(errors.ConfigError) as info:
        validate_config(config)
    first = str(info.value).splitlines()[0]
    assert re.search(case["expect"], first), first


# ---------------------------------------------------------------- the table in the docs

DOCS = Path(__file__).parents[1] / "docs" / "reliability.md"
TABLE_START = "<!-- corpus table: .venv/bin/python tests/test_bad_inputs.py -->"
TABLE_END = "<!-- end of corpus table -->"


def _outcome(name: str, case: dict, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """What the user sees for one case: the error's first line, or what the run logs."""
    raw_dir = prepared_raw_dir(case, tmp, monkeypatch)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("llm4sbr_core").addHandler(handler)
    try:
        run_case(name, case, raw_dir)
    except errors.Llm4sbrError as exc:
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    else:
        warned = [r.getMessage() for r in records]
        text = "runs" + (f"; warns: {warned[0]}" if warned else "")
    finally:
        logging.getLogger("llm4sbr_core").removeHandler(handler)
    for folder in (raw_dir, CORPUS):
        text = text.replace(f"{folder}/", "")
    return text


def corpus_table() -> str:
    """The Markdown table of docs/reliability.md: case → what the user sees."""
    import tempfile

    def cell(text: str) -> str:
        return "`" + text.replace("|", "\\|").replace("`", "'") + "`"

    rows = ["| case | input | what the user sees |", "|---|---|---|"]
    for name in sorted(CASES):
        with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
            rows.append(f"| {name} | {CASES[name]['what']} | "
                        f"{cell(_outcome(name, CASES[name], Path(tmp), mp))} |")
    for name in sorted(PATH_CASES):
        case = PATH_CASES[name]
        with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
            for relative, kind in case["prepare"].items():
                make_path(Path(tmp) / relative, kind, mp)
            config = {"datasets": ["good"], "raw_dir": str(CORPUS),
                      "dataset_settings": {"good": copy.deepcopy(SPEC["defaults"])},
                      "cache_dir": str(Path(tmp) / "cache"),
                      **{k: str(Path(tmp) / v) for k, v in case["config"].items()}}
            try:
                validate_config(config)
                text = "runs"
            except errors.Llm4sbrError as exc:
                text = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            text = text.replace(f"{tmp}/", "")
        rows.append(f"| {name} | {case['what']} | {cell(text)} |")
    return "\n".join(rows)


def test_docs_table_is_current():
    """docs/reliability.md shows what the corpus gives now (regenerate the table with
    ``.venv/bin/python tests/test_bad_inputs.py``)."""
    text = DOCS.read_text(encoding="utf-8")
    shown = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert shown == corpus_table(), "run .venv/bin/python tests/test_bad_inputs.py"


if __name__ == "__main__":
    # Rewrites the corpus table of docs/reliability.md in place.
    logging.disable(logging.NOTSET)
    page = DOCS.read_text(encoding="utf-8")
    head, rest = page.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    DOCS.write_text(f"{head}{TABLE_START}\n{corpus_table()}\n{TABLE_END}{tail}",
                    encoding="utf-8")
    print(f"wrote {DOCS}")
