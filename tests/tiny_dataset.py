"""A tiny movie catalogue as raw CSV files and a config that runs the workflow on it
(the tests of the LLM stage, the real server, fault injection and recommend share it)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

TITLES = ["Toy Story (1995)", "Heat (1995)", "Casino (1995)", "Jumanji (1995)",
          "Sabrina (1995)", "GoldenEye (1995)", "Babe (1995)", "Se7en (1995)"]


def write_tiny_dataset(root: Path, *, sessions: Sequence[Sequence[int]] | None = None,
                       cache_dir: Path | None = None, train_samples: str = "prefix",
                       **config: Any) -> Path:
    """Dataset ``tiny`` under ``root/raw`` and its config file ``root/tiny.yaml``.

    ``sessions``: each user's clicked items (indices into :data:`TITLES`); by default ten
    users with three random items each (seed 0). ``config``: top-level keys of the config
    (``llm``, ``views``, ``train``…) that replace the defaults."""
    raw = root / "raw" / "tiny"
    raw.mkdir(parents=True)
    if sessions is None:
        rng = random.Random(0)
        sessions = [rng.sample(range(len(TITLES)), 3) for _ in range(10)]
    rows = ["user_id,item_id,position"]
    rows += [f"{user},m{item},{pos}" for user, items in enumerate(sessions)
             for pos, item in enumerate(items)]
    (raw / "interactions.csv").write_text("\n".join(rows) + "\n")
    items = ["item_id,title"] + [f'm{i},"{t}"' for i, t in enumerate(TITLES)]
    (raw / "items.csv").write_text("\n".join(items) + "\n")
    settings = {
        "raw_dir": str(root / "raw"), "datasets": ["tiny"],
        "cache_dir": str(cache_dir or root / "cache"),
        "dataset_settings": {"tiny": {
            "format": "csv", "source": None,
            "files": {"interactions": "interactions.csv", "items": "items.csv"},
            "columns": {"user": "user_id", "item": "item_id", "time": "position"},
            "time_kind": "position", "sessionize": {"method": "user", "order": "key"},
            "filter": {"min_session_length": 2, "min_item_count": 1},
            "split": {"method": "ordered", "test_fraction": 0.2, "valid_fraction": 0.2},
            "samples": {"train": train_samples, "valid": "last", "test": "last"}}},
        **config,
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path
