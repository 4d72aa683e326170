"""The package raises its own errors (:mod:`llm4sbr_core.errors`), never a bare builtin,
and their messages name the offending file, key or value."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import llm4sbr_core
from llm4sbr_core.errors import InvalidInputError, Llm4sbrError

PACKAGE = Path(llm4sbr_core.__file__).parent

#: The modules checked for bare builtin raises: the whole package.
CHECKED = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))

#: Builtins that may still be raised on purpose: they flag a bug, not a bad input.
ALLOWED = {"AssertionError", "NotImplementedError", "StopIteration", "StopAsyncIteration",
           "KeyboardInterrupt", "SystemExit", "GeneratorExit"}
BUILTIN_ERRORS = {name for name, value in vars(builtins).items()
                  if isinstance(value, type) and issubclass(value, BaseException)} - ALLOWED


def checked_files() -> list[Path]:
    files = []
    for entry in CHECKED:
        path = PACKAGE / entry
        assert path.exists(), f"{path} is listed in CHECKED but does not exist"
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    return files


def bare_raises(path: Path) -> list[str]:
    """``line: raise Name`` for every raise of a builtin exception class in ``path``
    (``raise X``, ``raise X(...)``); a re-raise (``raise``, ``raise e``) is not one."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS:
            found.append((node.lineno, f"{node.lineno}: raise {exc.id}"))
    return [text for _, text in sorted(found)]


def test_builtin_error_list_covers_the_usual_suspects():
    assert {"ValueError", "TypeError", "KeyError", "RuntimeError", "Exception",
            "FileNotFoundError", "OSError", "IndexError"} <= BUILTIN_ERRORS


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_bare_builtin_raise(path):
    assert bare_raises(path) == [], (
        f"{path}: raise an llm4sbr_core.errors class (InvalidInputError for a bad value) "
        "that names the offending file, key or value")


def test_the_check_finds_a_bare_raise(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f(x):\n    if x:\n        raise ValueError(x)\n    raise KeyError\n"
                      "def g():\n    try:\n        pass\n    except OSError as e:\n"
                      "        raise e\n    raise\n")
    assert bare_raises(source) == ["3: raise ValueError", "4: raise KeyError"]


# ---------------------------------------------------------------- converted raise sites


def test_invalid_input_is_a_package_error_and_a_value_error(tmp_path):
    error = InvalidInputError("no samples", tmp_path / "x.parquet")
    assert isinstance(error, Llm4sbrError) and isinstance(error, ValueError)
    assert str(error) == f"{tmp_path / 'x.parquet'}: no samples"
    assert error.path == str(tmp_path / "x.parquet")


def test_load_samples_names_the_file(tmp_path):
    from llm4sbr_core.data.batches import load_samples

    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"sample_id": pa.array([], pa.int64()),
                             "items": pa.array([], pa.list_(pa.int64())),
                             "target": pa.array([], pa.int64())}), empty)
    with pytest.raises(InvalidInputError, match="empty.parquet: no samples"):
        load_samples(empty)
    hollow = tmp_path / "hollow.parquet"
    pq.write_table(pa.table({"sample_id": [0], "items": [[]], "target": [3]},
                            schema=pa.schema([("sample_id", pa.int64()),
                                              ("items", pa.list_(pa.int64())),
                                              ("target", pa.int64())])), hollow)
    with pytest.raises(InvalidInputError, match="hollow.parquet: a sample has an empty input"):
        load_samples(hollow)


def test_metrics_errors_name_the_value():
    from llm4sbr_core.metrics import metrics_from_ranks, target_ranks, target_ranks_chunked

    with pytest.raises(InvalidInputError, match="NaN in 1 of 2 rows"):
        target_ranks(torch.tensor([[0.0, float("nan"), 1.0], [0.0, 1.0, 2.0]]),
                     torch.tensor([2, 1]))
    items = torch.ones(6, 2)
    session = torch.tensor([[float("nan"), 0.0], [1.0, 1.0]])
    with pytest.raises(InvalidInputError, match="targets of 1 of 2 rows score NaN"):
        target_ranks_chunked(session, items, torch.tensor([3, 4]), chunk=2)
    with pytest.raises(InvalidInputError, match="rank array is empty"):
        metrics_from_ranks([])
    with pytest.raises(InvalidInputError, match="1-based, got 0"):
        metrics_from_ranks([1, 0, 3])


def test_sample_and_filter_errors_name_the_value():
    from llm4sbr_core.data.sessions import Sessions, filter_sessions
    from llm4sbr_core.data.split import make_samples

    sessions = Sessions(np.array([0, 3], dtype=np.int64), np.array([1, 2, 3], dtype=np.int64),
                        np.zeros(1), np.zeros(1), np.array(["u"]))
    with pytest.raises(InvalidInputError, match="unknown sample mode 'every'"):
        make_samples(sessions, np.array([0]), "every", 0)
    with pytest.raises(InvalidInputError, match="unknown rare_items policy 'keep'"):
        filter_sessions(sessions, 2, 1, "keep")


def test_shard_and_store_errors_name_the_value(tmp_path):
    from llm4sbr_core.llm.generate import shard_prompts
    from llm4sbr_core.llm.store import AnswerStore

    prompts = pd.DataFrame({"prompt_hash": ["ab" * 8], "prompt": ["p"]})
    with pytest.raises(InvalidInputError, match="shard 3 is not in 0..1"):
        shard_prompts(prompts, 3, 2)
    store = AnswerStore(tmp_path, "k123")
    with pytest.raises(InvalidInputError, match=r"answers/k123: answer chunk lacks columns \['"):
        store.add(pd.DataFrame({"prompt_hash": ["x"]}))
