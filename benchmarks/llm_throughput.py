"""Throughput of LLM generation: batched vs one prompt at a time (the official way).

    .venv/bin/python benchmarks/llm_throughput.py --data results/ml-100k/data \
        --prompts 96 --batch-sizes 1 8 16 32 --threads 2

Builds the `short`-view prompts of a dataset with the default config, draws a seeded
sample of them, and answers the same prompts with the `transformers` backend at each
dtype and batch size (float32 at batch size 1 = one prompt at a time in full precision,
the authors' way; bf16 is what `llm.dtype: auto` picks on CPUs with AMX). Each model is
loaded once (from the dequantised cache) and warmed up on 4 other prompts. Reported per
row: prompts/s, output tokens/s, the speed-up over the first row, and how many answers
equal the first row's (greedy decoding; bf16 rounding and left padding flip near-ties).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import pandas as pd
import torch

from llm4sbr_core.config import load_config
from llm4sbr_core.llm.generate import generator_settings
from llm4sbr_core.llm.transformers_backend import TransformersGenerator
from llm4sbr_core.prompts import PromptSettings, build_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a dataset's results/<d>/data folder")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--view", default="short")
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = load_config(args.config)
    samples = {s: pd.read_parquet(f"{args.data}/{s}.parquet") for s in ("train", "valid", "test")}
    prompts = build_prompts(samples, pd.read_parquet(f"{args.data}/items.parquet"),
                            PromptSettings.from_config(config["prompts"]), args.view)
    drawn = prompts.drop_duplicates("prompt_hash").sample(args.prompts + 4,
                                                          random_state=args.seed)
    warmup, texts = drawn["prompt"].tolist()[:4], drawn["prompt"].tolist()[4:]
    settings = generator_settings(config["llm"])
    settings.cache_dir = args.cache_dir
    reference = None
    rows = []
    for dtype in args.dtypes:
        settings.dtype = dtype
        t0 = time.perf_counter()
        generator = TransformersGenerator(settings, threads=args.threads)
        load_s = time.perf_counter() - t0
        generator.generate(warmup)
        for size in args.batch_sizes:
            generator.settings.batch_size = size
            t0 = time.perf_counter()
            out = generator.generate(texts)
            seconds = time.perf_counter() - t0
            answers = [o.text for o in out]
            reference = reference or answers
            rows.append({"dtype": dtype, "batch_size": size, "seconds": round(seconds, 2),
                         "load_seconds": round(load_s, 1),
                         "prompts_per_s": round(len(texts) / seconds, 3),
                         "tokens_out_per_s": round(sum(o.tokens_out for o in out) / seconds, 1),
                         "same_answer_as_first": sum(a == b for a, b in
                                                     zip(answers, reference, strict=True))})
    base = rows[0]["prompts_per_s"]
    for row in rows:
        row["speedup"] = round(row["prompts_per_s"] / base, 2)
    mean_in = sum(len(ids) for ids in generator.tokenizer(
        generator.chat_texts(texts), add_special_tokens=False)["input_ids"]) / len(texts)
    print(json.dumps({"model": settings.model, "prompts": len(texts), "view": args.view,
                      "mean_prompt_tokens": round(mean_in, 1),
                      "threads": args.threads, "torch": torch.__version__,
                      "cpu": platform.processor() or platform.machine(), "rows": rows},
                     indent=2))
    print("\n| dtype | batch size | prompts/s | output tokens/s | speed-up | same answers |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['dtype']} | {r['batch_size']} | {r['prompts_per_s']:.3f} | "
              f"{r['tokens_out_per_s']:.1f} | "
              f"{r['speedup']:.2f}× | {r['same_answer_as_first']}/{len(texts)} |")


if __name__ == "__main__":
    main()
