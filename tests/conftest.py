"""Shared test helpers: validated dataset settings and the location of the real data."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm4sbr_core.config import deep_update, validate_config

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
#: The read-only copies of the real datasets (see ../shared/data/README.md).
SHARED_DATA = Path(os.environ.get("LLM4SBR_SHARED_DATA", REPO.parent / "shared" / "data"))

FIXTURE_SETTINGS: dict[str, dict[str, Any]] = {
    "amazon": {"format": "amazon",
               "files": {"interactions": "reviews_Test_5.json.gz", "items": "meta_Test.json.gz"}},
    "csv": {"format": "csv", "files": {"interactions": "interactions.csv", "items": "items.csv"},
            "columns": {"time": "position"}, "time_kind": "position"},
    "movielens": {"format": "movielens",
                  "files": {"interactions": "ratings.dat", "items": "movies.dat"}},
    "recbole": {"format": "recbole", "files": {"interactions": "test.inter", "items": "test.item"},
                "text_template": "{movie_title} ({release_year}) -- {class}"},
}


def make_settings(base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Dataset settings with the schema's defaults filled in, as the workflow sees them."""
    settings = deep_update(copy.deepcopy(base), overrides)
    config = validate_config({"datasets": ["d"], "dataset_settings": {"d": settings}})
    return config["dataset_settings"]["d"]


@pytest.fixture
def fixture_dir(tmp_path):
    """A writable copy of one format's fixture folder: ``fixture_dir("csv")``."""
    def copy_of(fmt: str) -> Path:
        dest = tmp_path / fmt
        shutil.copytree(FIXTURES / fmt, dest)
        return dest
    return copy_of


def shared_data() -> Path:
    """The real datasets; in CI (CI=true) their absence is a failure, not a skip."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the datasets are not at {SHARED_DATA}")
        pytest.skip(f"datasets not found at {SHARED_DATA} (set LLM4SBR_SHARED_DATA)")
    return SHARED_DATA


def snakemake(workdir, *args, configs=("config.yaml",), check=True):
    """Run the workflow in ``workdir`` with the repository's Snakefile and config files."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2",
           "--configfile", *[str(REPO / c) for c in configs], *args]
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-5000:]}")
    return done


def synthetic_samples(n_items: int = 20, n_sessions: int = 60, seed: int = 0,
                      max_length: int = 7):
    """Prefix samples of random sessions (3 to max_length clicks) that mostly follow
    item i → 3i mod n + 1: a pattern a session model can learn in a few steps."""
    import numpy as np
    import torch

    from llm4sbr_core.data.batches import SampleTensors

    rng = np.random.default_rng(seed)
    sessions = []
    for _ in range(n_sessions):
        seq = [int(rng.integers(1, n_items + 1))]
        for _ in range(int(rng.integers(2, max_length))):
            nxt = (3 * seq[-1]) % n_items + 1 if rng.random() < 0.8 else rng.integers(1, n_items)
            seq.append(int(nxt))
        sessions.append(seq)
    samples = [(s[:k], s[k]) for s in sessions for k in range(1, len(s))]
    width = max(len(x) for x, _ in samples)
    items = torch.tensor([x + [0] * (width - len(x)) for x, _ in samples])
    return SampleTensors(items, torch.tensor([len(x) for x, _ in samples]),
                         torch.tensor([y for _, y in samples]), torch.arange(len(samples)))


@pytest.fixture
def one_torch_thread():
    """Small tensors: one torch thread avoids stalls on a shared, busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
