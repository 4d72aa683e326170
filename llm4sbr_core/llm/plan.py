"""The LLM stage's plan, printed before anything runs: per dataset and view, how many
prompts still need an answer, their tokens and the expected time (:mod:`.cost`).

The workflow prints it at the start of a run and in a dry run (``snakemake -n``), so a
user learns whether the LLM stage takes minutes or days before committing to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import layout
from .cost import Estimate, Measured, best_measured, estimate, format_duration, machine_id
from .generate import generator_settings, llm_name
from .identity import store_key
from .store import AnswerStore

#: Splits whose samples each get one prompt per view.
PROMPTED_SPLITS = ("train", "valid", "test")
_SHORT_FLAGS = re.compile(r"^-[a-zA-Z]*n[a-zA-Z]*$")


def is_dry_run(argv: Sequence[str]) -> bool:
    """Whether a Snakemake command line asks for a dry run (``-n``, ``-np``, ``--dry-run``,
    ``--dryrun``)."""
    return any(a in ("--dry-run", "--dryrun") or _SHORT_FLAGS.match(a) for a in argv[1:])


def generation_plan(llm: Mapping[str, Any], cache_dir: str | Path, datasets: Sequence[str],
                    views: Sequence[str], threads: int | None = None,
                    root: str | Path = ".") -> str:
    """Lines saying what generating the answers of ``views`` of ``datasets`` will cost
    with the ``llm`` config block; empty when no view is asked for."""
    if not views or not datasets:
        return ""
    settings = generator_settings(llm)
    name = llm_name(llm)
    store_path = Path(cache_dir) / "answers" / store_key(settings)
    # A plan only reads: no store folder is created for it (a dry run writes nothing).
    store = AnswerStore(cache_dir, store_key(settings)) if store_path.exists() else None
    measured = best_measured(store_path, machine_id(settings, threads))
    lines, total, unknown, bound = [], 0.0, False, False
    for dataset in datasets:
        for view in views:
            where = f"{dataset}/{view}"
            if (Path(root) / layout.fill(layout.ANSWERS_FILE, dataset=dataset, llm=name,
                                         view=view)).exists():
                lines.append(f"  {where}: answered")
                continue
            text, seconds, exact = _view_cost(store, dataset, view, llm["max_new_tokens"],
                                              measured, root)
            lines.append(f"  {where}: {text}")
            unknown |= seconds is None
            bound |= not exact
            total += seconds or 0.0
    if unknown:
        tail = (f"expected generation time: {format_duration(total)} for what is measured, "
                "the rest unknown yet" if total else
                "expected generation time: unknown until a first chunk is measured")
    else:
        tail = (f"expected generation time: {'at most ' if bound else ''}"
                f"{format_duration(total)} (one job at a time)")
    head = f"LLM stage ({settings.backend}, {settings.model}):"
    return "\n".join([head, *lines, f"  {tail}"])


def _view_cost(store: AnswerStore | None, dataset: str, view: str, max_new_tokens: int,
               measured: Measured, root: str | Path) -> tuple[str, float | None, bool]:
    """One view's prompts not answered yet: (description, expected seconds or ``None``,
    whether the count is exact). Exact from the prompt file when it exists; an upper bound
    from the data stage's sample counts otherwise."""
    prompts_path = Path(root) / layout.fill(layout.PROMPTS_FILE, dataset=dataset, view=view)
    if prompts_path.exists():
        prompts = pd.read_parquet(prompts_path, columns=["prompt_hash", "prompt"])
        distinct = prompts.drop_duplicates("prompt_hash")
        answered = store.answered(distinct["prompt_hash"]) if store else set()
        todo = distinct[~distinct["prompt_hash"].isin(answered)]
        cost: Estimate = estimate(len(todo), int(todo["prompt"].str.len().sum()),
                                  max_new_tokens, measured)
        return cost.describe(), cost.seconds, True
    stats_path = Path(root) / layout.fill(layout.STATS_JSON, dataset=dataset)
    if not stats_path.exists():
        return "size known once the data stage has run", None, False
    stats = json.loads(stats_path.read_text())
    n = sum(int(stats.get(f"{split}_samples", 0)) for split in PROMPTED_SPLITS)
    rate = measured.prompts_per_second
    timing = (f"expected ≤ {format_duration(n / rate)} at {rate:.2f} prompts/s measured on "
              f"{measured.machine}" if rate else "no throughput measured yet")
    return (f"≤ {n:,} prompts (from the data stage; tokens once prompts are built); {timing}",
            n / rate if rate else None, False)
