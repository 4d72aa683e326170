"""Throughput of LLM generation: dtypes × shared-prefix reuse × batch sizes, side by side.

    # a real shard of the quickstart, as a generation job answers it (both views); the
    # prefill cap of prefix reuse (a generator's prefill_tokens) at several values
    .venv/bin/python benchmarks/llm_throughput.py \
        --prompts-file results/ml-100k-quick/prompts/short.parquet \
        results/ml-100k-quick/prompts/long.parquet --shard 0 --shards 4 --limit 128 \
        --dtypes bfloat16 --reuse on --batch-sizes 32 --prefill-tokens 512 1024 2048 4096
    # dtypes and reuse off/on
    .venv/bin/python benchmarks/llm_throughput.py \
        --prompts-file results/ml-100k-quick/prompts/short.parquet \
        results/ml-100k-quick/prompts/long.parquet --shard 0 --shards 4 \
        --limit 64 --dtypes float32 bfloat16 --reuse off on --threads 2
    # one view's prompts only
    .venv/bin/python benchmarks/llm_throughput.py \
        --prompts-file results/ml-100k-quick/prompts/short.parquet --shard 0 --shards 4
    # a seeded draw of prompts built from a dataset's data folder
    .venv/bin/python benchmarks/llm_throughput.py --data results/ml-100k/data --prompts 96

The prompts: with ``--prompts-file``, the distinct prompts of one shard of workflow
prompt files (``llm4sbr_core.llm.generate.shard_prompts``: with the files of several
views, the prompts one ``llm_generate_shard`` job answers, in its order, a sample's views
next to each other), the first ``--limit`` of them. With ``--data``, the `--view`
prompts of a dataset, a seeded draw of ``--prompts``.

Every configuration answers the same prompts with the `transformers` backend and the
config's decoding settings: one generator per dtype (loaded once from the dequantised
cache, warmed up on 4 other prompts), each run with prefix reuse off and on and at each
batch size. With ``--repeats`` > 1 the configurations take turns, so that a machine
loaded by other work slows them alike; a row reports its median time. Per row:
prompts/s, output tokens/s, the prompt tokens computed per prompt (fewer with reuse),
the speed-up over the first row, and how many answers equal those of the first row and
those of the same dtype and batch size without reuse (greedy decoding; bf16 rounding
flips some near-ties). The load average before and after is printed: on a shared
machine, compare rows by their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import pandas as pd
import torch

from llm4sbr_core.config import load_config
from llm4sbr_core.llm.generate import generator_settings, read_prompts, shard_prompts
from llm4sbr_core.llm.settings import cpu_bf16_flags
from llm4sbr_core.llm.transformers_backend import PREFILL_TOKENS, TransformersGenerator
from llm4sbr_core.machine import cpu_model
from llm4sbr_core.prompts import PromptSettings, build_prompts

WARMUP = 4


def shard_texts(files: list[str], shard: int, shards: int, limit: int) -> list[str]:
    """The first ``limit`` prompts of one shard (see the module's notes), plus WARMUP
    prompts of the same files that are not among them, first."""
    prompts = read_prompts(files)
    texts = shard_prompts(prompts, shard, shards)["prompt"].tolist()
    others = (shard_prompts(prompts, (shard + 1) % shards, shards)["prompt"].tolist()
              if shards > 1 else texts[::-1])
    return others[:WARMUP] + texts[:limit]


def drawn_texts(data: str, config: dict, view: str, n: int, seed: int) -> list[str]:
    samples = {s: pd.read_parquet(f"{data}/{s}.parquet") for s in ("train", "valid", "test")}
    prompts = build_prompts(samples, pd.read_parquet(f"{data}/items.parquet"),
                            PromptSettings.from_config(config["prompts"]), view)
    drawn = prompts.drop_duplicates("prompt_hash").sample(n + WARMUP, random_state=seed)
    return drawn["prompt"].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts-file", nargs="+",
                        help="workflow prompt file(s): results/<d>/prompts/<view>.parquet")
    source.add_argument("--data", help="a dataset's results/<d>/data folder")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--limit", type=int, default=64, help="prompts of the shard")
    parser.add_argument("--view", default="short", help="with --data")
    parser.add_argument("--prompts", type=int, default=96, help="with --data")
    parser.add_argument("--seed", type=int, default=0, help="with --data")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--reuse", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--prefill-tokens", type=int, nargs="+",
                        default=[PREFILL_TOKENS],
                        help="padded node tokens per prefill pass (with reuse on)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default="cache")
    args = parser.parse_args()

    config = load_config(args.config)
    if args.prompts_file:
        texts = shard_texts(args.prompts_file, args.shard, args.shards, args.limit)
        source = {"prompt_files": args.prompts_file, "shard": f"{args.shard}/{args.shards}"}
    else:
        texts = drawn_texts(args.data, config, args.view, args.prompts, args.seed)
        source = {"data": args.data, "view": args.view, "seed": args.seed}
    warmup, texts = texts[:WARMUP], texts[WARMUP:]
    settings = generator_settings(config["llm"])
    settings.cache_dir = args.cache_dir
    load_before = os.getloadavg()

    generators = {}
    for dtype in args.dtypes:
        settings.dtype = dtype
        t0 = time.perf_counter()
        generators[dtype] = TransformersGenerator(settings, threads=args.threads)
        generators[dtype].generate(warmup)
        print(f"{dtype}: loaded and warmed up in {time.perf_counter() - t0:.1f} s", flush=True)
    # the prefill cap only matters with reuse on
    configs = [(d, r, b, p) for d in args.dtypes for r in args.reuse for b in args.batch_sizes
               for p in (args.prefill_tokens if r == "on" else args.prefill_tokens[:1])]
    times: dict[tuple, list[float]] = {c: [] for c in configs}
    outputs, computed = {}, {}
    for repeat in range(args.repeats):
        for dtype, reuse, size, cap in configs:
            generator = generators[dtype]
            generator.prefill_tokens = cap
            generator.settings.batch_size = size
            generator.prefix_reuse = reuse == "on"
            generator.prompt_tokens = generator.computed_tokens = 0
            t0 = time.perf_counter()
            out = generator.generate(texts)
            seconds = time.perf_counter() - t0
            times[(dtype, reuse, size, cap)].append(seconds)
            outputs[(dtype, reuse, size, cap)] = out
            computed[(dtype, reuse, size, cap)] = generator.computed_tokens
            print(f"repeat {repeat + 1}: {dtype} reuse {reuse} batch {size} prefill cap "
                  f"{cap}: {len(texts) / seconds:.3f} prompts/s", flush=True)

    first = outputs[configs[0]]
    rows = []
    for key in configs:
        dtype, reuse, size, cap = key
        out = outputs[key]
        seconds = statistics.median(times[key])
        plain = outputs.get((dtype, "off", size, args.prefill_tokens[0]))
        rows.append({
            "dtype": dtype, "prefix_reuse": reuse, "batch_size": size,
            "prefill_tokens": cap if reuse == "on" else None,
            "seconds": round(seconds, 2), "all_seconds": [round(t, 2) for t in times[key]],
            "prompts_per_s": round(len(texts) / seconds, 3),
            "tokens_out_per_s": round(sum(o.tokens_out for o in out) / seconds, 1),
            "tokens_out": sum(o.tokens_out for o in out),
            "computed_prompt_tokens": computed[key],
            "same_as_first": sum(a.text == b.text for a, b in zip(out, first, strict=True)),
            "same_as_no_reuse": (sum(a.text == b.text for a, b in zip(out, plain, strict=True))
                                 if plain is not None else None)})
    for row in rows:
        row["speedup"] = round(row["prompts_per_s"] / rows[0]["prompts_per_s"], 2)
    prompt_tokens = sum(o.tokens_in for o in first)
    print(json.dumps({
        "model": settings.model, "prompts": len(texts), **source,
        "mean_prompt_tokens": round(prompt_tokens / len(texts), 1),
        "mean_answer_tokens": round(rows[0]["tokens_out"] / len(texts), 1),
        "threads": args.threads, "repeats": args.repeats, "cpu": cpu_model(),
        "cpu_bf16_flags": sorted(cpu_bf16_flags()), "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__, "rows": rows}, indent=2))
    print("\n| dtype | prefix reuse | batch | prefill cap | prompts/s | output tokens/s | "
          "prompt tokens computed | speed-up | same answers as row 1 | same as no reuse |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    n = len(texts)
    for r in rows:
        same_plain = "—" if r["same_as_no_reuse"] is None or r["prefix_reuse"] == "off" \
            else f"{r['same_as_no_reuse']}/{n}"
        cap = "—" if r["prefill_tokens"] is None else f"{r['prefill_tokens']:,}"
        print(f"| {r['dtype']} | {r['prefix_reuse']} | {r['batch_size']} | {cap} | "
              f"{r['prompts_per_s']:.3f} | {r['tokens_out_per_s']:.1f} | "
              f"{r['computed_prompt_tokens'] / prompt_tokens:.0%} | {r['speedup']:.2f}× | "
              f"{r['same_as_first']}/{n} | {same_plain} |")


if __name__ == "__main__":
    main()
