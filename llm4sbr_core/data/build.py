"""The data stage: raw files → sessions → filtered, re-indexed, split samples.

:func:`build_dataset` is what the ``build_dataset`` rule calls; it writes the artifact
contract of ``results/{dataset}/data/`` (docs/design.md) atomically — all files or none.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError, DataFormatError, EmptyDatasetError
from ..io import AtomicFiles
from ..layout import DATA_FILES
from .raw import RawData
from .readers import read_raw
from .sessions import Sessions, filter_sessions, reindex_items, sessionize
from .split import SPLITS, make_samples, split_sessions

log = logging.getLogger(__name__)

#: A dataset name is one path component of results/{dataset}/ (the schema's pattern).
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: Default of ``max_missing_text_fraction``, for settings recorded before the key existed.
MAX_MISSING_TEXT_FRACTION = 0.5


def fallback_text(raw_id: str) -> str:
    """Deterministic text for an item without a title (counted in stats): what prompts
    show for it. Such an item has ``has_text`` False in items.parquet, so intent
    localization never grounds an answer in this placeholder."""
    return f"item {raw_id}"


def item_table(sessions: Sessions, raw_ids: np.ndarray, raw: RawData, missing_text: str,
               key: str, max_missing_fraction: float = 1.0
               ) -> tuple[pd.DataFrame, dict[str, int]]:
    """items.parquet (item_id 1..N, raw_id, text, count, has_text) and counts of text
    problems.

    An item with an empty text, or with no row in the item file at all, gets
    :func:`fallback_text` and ``has_text`` False — or stops the run when ``missing_text``
    is ``error``. ``has_text`` tells later stages which texts are real: prompts show the
    placeholder, intent localization excludes such items from its candidates. Rows of
    the item file for items never clicked are counted, not errors: catalogues (Amazon's
    metadata, MovieLens' movies) list far more items than the interactions use.

    More than ``max_missing_fraction`` of the items without a text stops the run even
    with ``fallback``: the item file's ids most likely do not match the interactions'
    (``i01`` against ``i1``), and the LLM stage would only see placeholders.
    """
    counts = np.bincount(sessions.items, minlength=len(raw_ids) + 1)[1:]
    texts = raw.item_text
    not_listed = [r for r in raw_ids if r not in texts]
    text = [texts.get(r, "") for r in raw_ids]
    missing = [not t.strip() for t in text]
    if missing_text == "error" and any(missing):
        first = raw_ids[missing.index(True)]
        why = "has no row" if first in not_listed else "has an empty text"
        raise DataFormatError(raw.files[1], None, f"item {first!r} {why} ({sum(missing)} items "
                              f"lack a text); set '{key}.missing_text: fallback' to use "
                              f"'{fallback_text('<raw id>')}' for them")
    n_missing = sum(missing)
    if n_missing and n_missing > max_missing_fraction * len(raw_ids):
        raise DataFormatError(raw.files[1], None, _unmatched_message(
            raw, raw_ids, not_listed, n_missing, max_missing_fraction, key))
    if any(missing):
        log.warning("%d item(s) have no text (%d not in %s); using the fallback text",
                    sum(missing), len(not_listed), raw.files[1])
    text = [fallback_text(r) if m else t for r, t, m in zip(raw_ids, text, missing, strict=True)]
    frame = pd.DataFrame({
        "item_id": np.arange(1, len(raw_ids) + 1, dtype=np.int64),
        "raw_id": pd.array([str(r) for r in raw_ids], dtype="string"),
        "text": pd.array(text, dtype="string"),
        "count": counts.astype(np.int64),
        "has_text": np.logical_not(missing),
    })
    problems = {"items_without_text": int(sum(missing)),
                "items_not_in_item_file": len(not_listed),
                "item_file_rows_unused": len(set(texts) - set(raw_ids))}
    return frame, problems


def _unmatched_message(raw: RawData, raw_ids: np.ndarray, not_listed: list[str],
                       n_missing: int, max_fraction: float, key: str) -> str:
    clicked = set(raw.interactions["item"])
    unused = [r for r in raw.item_text if r not in clicked]
    n = len(raw_ids)
    head = (f"{n_missing} of {n} items ({100.0 * n_missing / n:.1f} %) have no text, more than "
            f"'{key}.max_missing_text_fraction' ({100.0 * max_fraction:g} %) allows")
    if not not_listed:
        return (f"{head}: their rows in this file render '{key}.text_template' empty "
                f"(e.g. {[str(r) for r in raw_ids if not raw.item_text.get(r, '').strip()][:3]})")
    return (f"{head}: {len(not_listed)} clicked item ids have no row in this file, e.g. "
            f"{[str(r) for r in not_listed[:3]]} in {raw.files[0]}, while "
            f"{len(unused)} ids of this file are never clicked, e.g. {unused[:3]}\n"
            "Ids are compared as exact strings (after stripping spaces and Unicode NFC): "
            "check zero padding, case, prefixes and that both files use the same id column.")


def subsample_sessions(sessions: Sessions, n: int, seed: int, key: str) -> Sessions:
    """A seeded, uniformly random subset of ``n`` sessions, in their original order."""
    if n > sessions.n_sessions:
        raise ConfigError(f"{key}.subsample.sessions", f"{n} sessions asked for, but only "
                          f"{sessions.n_sessions} remain after filtering")
    keep = np.zeros(sessions.n_sessions, dtype=bool)
    keep[np.random.default_rng(seed).choice(sessions.n_sessions, size=n, replace=False)] = True
    return sessions.select(keep)


def prepare_dataset(settings: dict[str, Any], raw_dir: str | Path, name: str
                    ) -> tuple[dict[str, pa.Table], pd.DataFrame, dict[str, Any]]:
    """Run the data stage in memory: the three sample tables, the item table and stats."""
    key = f"dataset_settings.{name}"
    if not DATASET_NAME.fullmatch(name):
        raise ConfigError("datasets", f"dataset name {name!r} is not a safe folder name: it "
                          f"must match {DATASET_NAME.pattern} (it names results/{{dataset}}/)")
    t0 = time.perf_counter()
    raw: RawData = read_raw(settings, Path(raw_dir) / (settings.get("raw_folder") or name), key)
    t_read = time.perf_counter() - t0
    log.info("%s: read %d interactions, %d item texts in %.1fs", name, len(raw.interactions),
             len(raw.item_text), t_read)

    ses = settings["sessionize"]
    sessions = sessionize(raw, ses["method"], ses["minutes"], ses["order"], key)
    flt = settings["filter"]
    sessions, report = filter_sessions(sessions, flt["min_session_length"],
                                       flt["min_item_count"], flt["rare_items"], key)
    filtered_sessions = sessions.n_sessions
    if settings.get("subsample"):
        sessions = subsample_sessions(sessions, settings["subsample"]["sessions"],
                                      settings["subsample"].get("seed", 0), key)
    sessions, raw_ids = reindex_items(sessions)
    log.info("%s: %d sessions (%d before filtering), %d clicks, %d items", name,
             sessions.n_sessions, report.sessions_before, len(sessions.items), len(raw_ids))

    spl = settings["split"]
    parts = split_sessions(sessions, spl["method"], spl["test_fraction"],
                           spl["valid_fraction"], spl["seed"],
                           raw.time_kind == "timestamp", key)
    tables: dict[str, pa.Table] = {}
    next_id = 0  # sample ids run on across splits: sample_id is the row of per-sample arrays
    for split in SPLITS:
        tables[split] = make_samples(sessions, parts[split], settings["samples"][split], next_id)
        next_id += tables[split].num_rows
    items, text_counts = item_table(
        sessions, raw_ids, raw, settings["missing_text"], key,
        settings.get("max_missing_text_fraction", MAX_MISSING_TEXT_FRACTION))

    input_lengths = np.concatenate(
        [pc.list_value_length(t["items"]).to_numpy() for t in tables.values()])
    stats: dict[str, Any] = {
        "dataset": name,
        "train_samples": tables["train"].num_rows,
        "valid_samples": tables["valid"].num_rows,
        "test_samples": tables["test"].num_rows,
        "sessions": sessions.n_sessions,
        "clicks": int(len(sessions.items)),
        "items": int(len(raw_ids)),
        "avg_len_input": float(input_lengths.mean()) if len(input_lengths) else 0.0,
        "avg_len_session": float(len(sessions.items) / sessions.n_sessions),
        "train_sessions": int(len(parts["train"])),
        "valid_sessions": int(len(parts["valid"])),
        "test_sessions": int(len(parts["test"])),
        **text_counts,
        "raw_interactions": int(len(raw.interactions) + raw.dropped_duplicates),
        "duplicates_dropped": raw.dropped_duplicates,
        "skipped_lines": raw.skipped_lines,
        "sessions_before_filter": report.sessions_before,
        "sessions_before_subsample": filtered_sessions,
        "sessions_too_short": report.sessions_too_short,
        "sessions_dropped_for_rare_items": report.sessions_with_rare_items,
        "rare_items": report.rare_items_removed,
        "time_kind": raw.time_kind,
        "note": settings.get("note") or "",
        "files": raw.files,
        "settings": settings,
    }
    if not stats["test_samples"] or not stats["train_samples"]:
        raise EmptyDatasetError(f"{name}: no train or test samples (see '{key}.split' and "
                                f"'{key}.filter'): {json.dumps(stats)[:400]}")
    return tables, items, stats


def stats_markdown(stats: dict[str, Any]) -> str:
    """Table 2's columns for one dataset (train counts include the validation split)."""
    note = f" ({stats['note']})" if stats.get("note") else ""
    train_all = stats["train_samples"] + stats["valid_samples"]
    return (
        f"# {stats['dataset']}{note}\n\n"
        "| Dataset | #Train | #Test | #Clicks | #Items | Avg.len |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        f"| {stats['dataset']} | {train_all:,} | {stats['test_samples']:,} | "
        f"{stats['clicks']:,} | {stats['items']:,} | {stats['avg_len_input']:.2f} |\n\n"
        f"#Train counts training + validation samples ({stats['train_samples']:,} + "
        f"{stats['valid_samples']:,}); sessions: {stats['train_sessions']:,} train, "
        f"{stats['valid_sessions']:,} valid, {stats['test_sessions']:,} test "
        f"({stats['sessions']:,} in all, {stats['sessions_before_filter']:,} before "
        f"filtering). Avg.len is the mean input length of all samples; the mean session "
        f"length is {stats['avg_len_session']:.2f}. Items without text: "
        f"{stats['items_without_text']}.\n"
    )


@dataclass(frozen=True)
class DataOutputs:
    """The files of the data stage (the paths rule build_dataset declares)."""

    train: Path
    valid: Path
    test: Path
    items: Path
    stats_json: Path
    stats_md: Path

    @classmethod
    def in_dir(cls, folder: str | Path) -> DataOutputs:
        """The layout's file names (``layout.DATA_FILES``) inside ``folder``."""
        return cls(*(Path(folder) / name for name in DATA_FILES))


def build_dataset(settings: dict[str, Any], raw_dir: str | Path, outputs: DataOutputs,
                  name: str) -> dict[str, Any]:
    """Build the samples of each split, the item table and the statistics into
    ``outputs`` (written atomically together)."""
    t0 = time.perf_counter()
    tables, items, stats = prepare_dataset(settings, raw_dir, name)
    with AtomicFiles() as files:
        for split, table in tables.items():
            files.write_parquet(getattr(outputs, split), table)
        files.write_parquet(outputs.items, items)
        files.write_json(outputs.stats_json, stats)
        files.write_text(outputs.stats_md, stats_markdown(stats))
    log.info("%s: data stage done in %.1fs: %d / %d / %d samples", name,
             time.perf_counter() - t0, stats["train_samples"], stats["valid_samples"],
             stats["test_samples"])
    return stats


def summarize_datasets(stats_files: list[str | Path]) -> str:
    """A Table 2-style summary of the datasets whose stats.json exist (for the end of a run)."""
    rows = []
    for path in stats_files:
        if Path(path).exists():
            s = json.loads(Path(path).read_text())
            note = f" ({s['note']})" if s.get("note") else ""
            rows.append(f"| {s['dataset']}{note} | {s['train_samples'] + s['valid_samples']:,} "
                        f"| {s['test_samples']:,} | {s['clicks']:,} | {s['items']:,} "
                        f"| {s['avg_len_input']:.2f} | {Path(path).parent} |")
    if not rows:
        return ""
    return ("\nDatasets (#Train includes the validation split):\n\n"
            "| Dataset | #Train | #Test | #Clicks | #Items | Avg.len | files |\n"
            "|---|---:|---:|---:|---:|---:|---|\n" + "\n".join(rows) + "\n")
