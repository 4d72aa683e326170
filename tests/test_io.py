import pandas as pd
import pytest

from llm4sbr_core.io import AtomicFiles


def test_atomic_files_commit_all(tmp_path):
    with AtomicFiles() as files:
        files.write_json(tmp_path / "a" / "x.json", {"n": 1})
        files.write_parquet(tmp_path / "a" / "t.parquet", pd.DataFrame({"v": [1, 2]}))
        assert not (tmp_path / "a" / "x.json").exists()  # nothing visible before commit
    assert (tmp_path / "a" / "x.json").read_text().strip().startswith("{")
    assert pd.read_parquet(tmp_path / "a" / "t.parquet")["v"].tolist() == [1, 2]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["t.parquet", "x.json"]


def test_atomic_files_leave_nothing_on_error(tmp_path):
    (tmp_path / "old.json").write_text("old")
    with pytest.raises(RuntimeError):
        with AtomicFiles() as files:
            files.write_text(tmp_path / "new.txt", "partial")
            files.write_text(tmp_path / "old.json", "new")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]
    assert (tmp_path / "old.json").read_text() == "old"


def test_atomic_files_get_the_umask_mode(tmp_path):
    import os
    import stat

    from llm4sbr_core.io import _FILE_MODE

    with AtomicFiles() as files:
        files.write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == _FILE_MODE
    assert _FILE_MODE & 0o044  # group/other can read under the usual umasks
