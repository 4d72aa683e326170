"""Scatter-gather generation: one shard of the views' prompts per job, then one table
per view.

* :func:`generate_shard` answers the distinct prompts that fall into one shard. Answers
  already in the :class:`~.store.AnswerStore` are reused; the rest are generated in
  chunks, and every chunk is flushed to the store before the next starts, so a killed
  job redoes at most one chunk. The model is not even loaded when nothing is missing.
  One job at a time writes a shard (:meth:`~.store.AnswerStore.lock`): a second one
  waits, then reads the store again and generates only what is still missing.
* :func:`gather_answers` joins the shards back onto the samples, cleans every answer
  (:mod:`.clean`) and counts the flags.

A job answers the views of a run together, and shards by SESSION, not by prompt: the
views of a sample share their prompt up to the view's qualifier, and the prefix samples
of one session share their leading items, so answering them in one job lets the
transformers backend compute each shared prefix once (about half the prompt tokens of
two views). Within a job the prompts run in text order, so prompts with a common
beginning meet in one generation call. Shards depend on content (a hash of the session),
not on positions, and answers are stored by prompt hash, so new samples or another shard
count never make an answered prompt unanswered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError, InvalidInputError, Llm4sbrError
from ..io import AtomicFiles
from ..logs import progress as progress_bar
from .base import Generator
from .clean import FLAGS, clean_answer
from .cost import Measured, estimate, machine_id, read_measured, record_measured
from .identity import model_identity, model_slug, store_key
from .settings import DecodingSettings, GeneratorSettings
from .store import ANSWER_COLUMNS, AnswerStore

log = logging.getLogger(__name__)

BACKENDS = ("transformers", "openai", "vllm")


def generator_settings(llm: Mapping[str, Any]) -> GeneratorSettings:
    """The `llm:` config block as :class:`GeneratorSettings`."""
    backend = llm["backend"]
    if backend not in BACKENDS:
        raise ConfigError("llm.backend", f"unknown backend {backend!r}; known: {BACKENDS}")
    decoding = DecodingSettings(max_new_tokens=llm["max_new_tokens"],
                                system_prompt=llm.get("system_prompt"),
                                stop_at_newline=llm.get("stop_at_newline", True))
    return GeneratorSettings(backend=backend, model=llm["model"], decoding=decoding,
                             batch_size=llm["batch_size"], device=llm.get("device", "auto"),
                             dtype=llm.get("dtype", "auto"),
                             prefix_reuse=llm.get("prefix_reuse", True),
                             options=dict(llm.get(backend, {}) or {}))


def llm_name(llm: Mapping[str, Any]) -> str:
    """The `{llm}` path component: `llm.name`, or a slug of the model."""
    return llm.get("name") or model_slug(llm["model"])


def make_generator(settings: GeneratorSettings, threads: int | None = None) -> Generator:
    """Load the configured backend (imports happen here, so unused backends' packages
    need not be installed). ``threads`` sets torch's CPU threads of local models."""
    if settings.backend == "transformers":
        from .transformers_backend import TransformersGenerator
        return TransformersGenerator(settings, threads=threads)
    if settings.backend == "openai":
        from .openai_backend import OpenAIGenerator
        return OpenAIGenerator(settings)
    if settings.backend == "vllm":
        from .vllm_backend import VLLMGenerator
        return VLLMGenerator(settings)
    raise ConfigError("llm.backend", f"unknown backend {settings.backend!r}")


def shard_of(group: str, shards: int) -> int:
    """The shard of a group of prompts (a session): stable under new samples and
    reordering."""
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % shards


def _prompt_shards(prompts: pd.DataFrame, shards: int) -> pd.Series:
    """Each row's shard: its session's (prompt files before sessions were recorded: its
    sample's; bare prompt tables: the prompt's own), hashed once per group."""
    for column in ("session_id", "sample_id"):
        if column in prompts.columns:
            groups = column + ":" + prompts[column].astype(str)
            break
    else:
        groups = "prompt:" + prompts["prompt_hash"].astype(str)
    return groups.map({g: shard_of(g, shards) for g in groups.unique()})


def shard_prompts(prompts: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """The distinct prompts (prompt_hash, prompt) of one shard, in text order.

    ``prompts`` may hold several views. A prompt goes to the shard of its session, so a
    session's views and prefix samples share a job; a prompt asked in several sessions
    goes to the smallest of their shards. Text order puts prompts with a common beginning
    side by side, so they meet in one generation call (``chunk_size``)."""
    if not 0 <= shard < shards:
        raise InvalidInputError(f"shard {shard} is not in 0..{shards - 1}")
    rows = pd.DataFrame({"prompt_hash": prompts["prompt_hash"].to_numpy(),
                         "prompt": prompts["prompt"].to_numpy(),
                         "shard": _prompt_shards(prompts, shards).to_numpy()})
    owner = rows.groupby("prompt_hash", sort=False)["shard"].min()
    distinct = rows.drop_duplicates("prompt_hash")
    mine = distinct[distinct["prompt_hash"].map(owner).to_numpy() == shard]
    return (mine[["prompt_hash", "prompt"]].sort_values("prompt", kind="stable")
            .reset_index(drop=True))


def read_prompts(paths: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """The prompt files of the views answered together, as one table."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise InvalidInputError("no prompt file to answer")
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def generate_shard(prompts_path: str | Path | Sequence[str | Path], shard: int, shards: int,
                   settings: GeneratorSettings, cache_dir: str | Path,
                   answers_path: str | Path, stats_path: str | Path, chunk_size: int = 256,
                   threads: int | None = None,
                   load_generator: Callable[..., Generator] = make_generator) -> dict[str, Any]:
    """Answer one shard of the prompt files of the views answered together (one path or
    several); write its answers and stats atomically."""
    started = time.perf_counter()
    settings = dataclasses.replace(settings, cache_dir=str(cache_dir))
    todo_prompts = shard_prompts(read_prompts(prompts_path), shard, shards)
    identity = model_identity(settings)
    store = AnswerStore(cache_dir, store_key(settings), {"model": identity,
                                                         "decoding": settings.decoding.key()})
    # One writer per shard: a second job (a rerun while an orphaned job of the same shard
    # still runs) waits here, then reads the store again and skips what is answered.
    with store.lock(shard_lock_name(todo_prompts["prompt_hash"])):
        known = store.answered(todo_prompts["prompt_hash"])
        missing = todo_prompts[~todo_prompts["prompt_hash"].isin(known)]
        log.info("shard %d/%d of %s: %d distinct prompts, %d already answered in %s, %d to "
                 "generate", shard + 1, shards, _names(prompts_path), len(todo_prompts),
                 len(known),
                 store.path, len(missing))
        generated = {"prompts": 0, "tokens_in": 0, "tokens_out": 0, "seconds": 0.0}
        machine = machine_id(settings, threads)
        expected = estimate(len(missing), int(missing["prompt"].str.len().sum()),
                            settings.decoding.max_new_tokens, read_measured(store.path, machine))
        if len(missing):
            log.info("shard %d/%d: %s", shard + 1, shards, expected.describe())
            generator = load_generator(settings, threads=threads)
            try:
                _generate_missing(generator, missing, store, chunk_size, generated)
            finally:
                # Local backends count the prompt tokens they computed (shared prefixes
                # once): the measure of what answering views together saves.
                generated["prompt_tokens_computed"] = getattr(generator, "computed_tokens",
                                                              None)
                generator.close()
                _record_throughput(store, machine, missing, generated)
        answers = store.load(todo_prompts["prompt_hash"])
    if len(answers) != len(todo_prompts):
        raise Llm4sbrError(f"{store.path}: {len(todo_prompts) - len(answers)} prompts of "
                           f"shard {shard} have no stored answer after generation")
    invalid = int(answers["error"].notna().sum())
    if invalid:
        log.warning("shard %d/%d: %d of %d answers had an unusable server response (kept "
                    "empty and flagged; the next run of this shard asks for them again)",
                    shard + 1, shards, invalid, len(answers))
    stats = {"shard": shard, "shards": shards, "prompts": len(todo_prompts),
             "reused": len(known), "generated": generated["prompts"], "invalid": invalid,
             "tokens_in": generated["tokens_in"], "tokens_out": generated["tokens_out"],
             "prompt_tokens_computed": generated.get("prompt_tokens_computed"),
             "generation_seconds": round(generated["seconds"], 3),
             "prompts_per_second": _rate(generated["prompts"], generated["seconds"]),
             "tokens_out_per_second": _rate(generated["tokens_out"], generated["seconds"]),
             "wall_seconds": round(time.perf_counter() - started, 3),
             "model": identity, "decoding": settings.decoding.key(), "store": str(store.path),
             "machine": machine, "estimate": dataclasses.asdict(expected)}
    with AtomicFiles() as files:
        files.write_parquet(answers_path, answers[list(ANSWER_COLUMNS)])
        files.write_json(stats_path, stats)
    return stats


def _record_throughput(store: AnswerStore, machine: str, missing: pd.DataFrame,
                       generated: Mapping[str, Any]) -> None:
    """Add what this job generated to the store's throughput ledger (the cost model's
    measurements); the prompts of the chunks done are the first ``generated["prompts"]``."""
    if not generated["prompts"]:
        return
    chars = int(missing["prompt"].iloc[:generated["prompts"]].str.len().sum())
    with store.lock("throughput"):
        measured: Measured = read_measured(store.path, machine)
        record_measured(store.path, measured.plus(
            generated["prompts"], generated["seconds"], chars, generated["tokens_in"],
            generated["tokens_out"]))


def shard_lock_name(prompt_hashes: Iterable[str]) -> str:
    """The store lock of a shard: named by its prompts' content, so the two jobs of one
    shard meet on it whatever their working directory, and other shards never do."""
    digest = hashlib.sha256("\n".join(sorted(set(prompt_hashes))).encode()).hexdigest()
    return f"shard-{digest[:20]}"


def _names(paths: str | Path | Sequence[str | Path]) -> str:
    return str(paths) if isinstance(paths, (str, Path)) else ", ".join(map(str, paths))


def _rate(n: float, seconds: float) -> float | None:
    return round(n / seconds, 3) if seconds > 0 else None


def _generate_missing(generator: Generator, missing: pd.DataFrame, store: AnswerStore,
                      chunk_size: int, totals: dict[str, Any]) -> None:
    bar = progress_bar(total=len(missing), unit="prompt", desc="generating", smoothing=0.1)
    for start in range(0, len(missing), chunk_size):
        chunk = missing.iloc[start:start + chunk_size]
        t0 = time.perf_counter()
        outputs = generator.generate(chunk["prompt"].tolist())
        seconds = time.perf_counter() - t0
        store.add(pd.DataFrame({
            "prompt_hash": chunk["prompt_hash"].to_numpy(),
            "answer_raw": [o.text for o in outputs],
            "tokens_in": pd.array([o.tokens_in for o in outputs], dtype="Int64"),
            "tokens_out": pd.array([o.tokens_out for o in outputs], dtype="Int64"),
            "hit_token_limit": [o.hit_token_limit for o in outputs],
            "error": [o.error for o in outputs]}))
        totals["prompts"] += len(chunk)
        totals["tokens_in"] += sum(o.tokens_in or 0 for o in outputs)
        totals["tokens_out"] += sum(o.tokens_out or 0 for o in outputs)
        totals["seconds"] += seconds
        bar.update(len(chunk))
        bar.set_postfix(prompts_s=f"{totals['prompts'] / totals['seconds']:.2f}",
                        tokens_s=f"{totals['tokens_out'] / totals['seconds']:.1f}")
        log.info("%d/%d prompts, %.2f prompts/s, %.1f output tokens/s", totals["prompts"],
                 len(missing), totals["prompts"] / totals["seconds"],
                 totals["tokens_out"] / totals["seconds"])
    bar.close()


def gather_answers(prompts_path: str | Path, shard_paths: Sequence[str | Path],
                   answers_path: str | Path, stats_path: str | Path) -> dict[str, Any]:
    """Join shard answers onto every sample of a view, clean them and count the flags.

    Output columns: sample_id, split, answer, flag, answer_raw, prompt_hash, tokens_in,
    tokens_out — one row per sample, in sample_id order.
    """
    prompts = pd.read_parquet(prompts_path, columns=["sample_id", "split", "prompt_hash"])
    shards = pd.concat([pd.read_parquet(p) for p in shard_paths], ignore_index=True)
    if "error" not in shards.columns:  # shard files written before answers could fail
        shards["error"] = None
    shards = shards.drop_duplicates("prompt_hash")
    # An answer whose server response was unusable has empty text: flagged "empty".
    cleaned = [clean_answer(raw, bool(limit)) for raw, limit in
               zip(shards["answer_raw"], shards["hit_token_limit"], strict=True)]
    shards["answer"] = [c.answer for c in cleaned]
    shards["flag"] = [c.flag for c in cleaned]
    table = prompts.merge(shards, on="prompt_hash", how="left", validate="many_to_one")
    invalid = int(table["error"].notna().sum())
    unanswered = table["answer_raw"].isna()
    if unanswered.any():
        example = table.loc[unanswered, "sample_id"].iloc[0]
        raise Llm4sbrError(f"{answers_path}: {int(unanswered.sum())} samples have no answer "
                           f"in the shards (first: sample_id {example}); the shard files do "
                           "not match the prompts")
    table = table[["sample_id", "split", "answer", "flag", "answer_raw", "prompt_hash",
                   "tokens_in", "tokens_out"]]
    counts = {flag: int((table["flag"] == flag).sum()) for flag in FLAGS}
    for flag in FLAGS[1:]:
        if counts[flag]:
            log.warning("%s: %d of %d answers flagged %r (kept, with an empty or partial "
                        "answer)", answers_path, counts[flag], len(table), flag)
    if invalid:
        log.warning("%s: %d of %d samples have an answer whose server response was "
                    "unusable (flagged 'empty'; rerun their shards to ask again)",
                    answers_path, invalid, len(table))
    stats = {"samples": len(table), "distinct_prompts": int(prompts["prompt_hash"].nunique()),
             "flags": counts, "invalid_responses": invalid,
             "usable_fraction": round(counts["ok"] / max(len(table), 1), 4),
             "mean_tokens_out": float(table["tokens_out"].astype("float").mean())}
    with AtomicFiles() as files:
        files.write_parquet(answers_path, table)
        files.write_json(stats_path, stats)
    log.info("%s: %d answers, flags %s", answers_path, len(table), counts)
    return stats
