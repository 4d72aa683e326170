"""Latency of one explained session and throughput of ``llm4sbr recommend --batch``.

    .venv/bin/python benchmarks/recommend_latency.py \
        --run results/ml-100k-quick/runs/srgnn/llm4sbr/seed0 --sessions 1000 --threads 2

Measured, in this order:

1. loading the run (``Recommender.load``: the run's files and checks, the network, the
   sibling base run), in this process after the imports;
2. one explained session whose prompts the answer store already holds (a test session of
   the dataset): each stage's seconds, median of ``--repeats`` calls;
3. one NEW session (a seeded random draw of catalogue items, so its prompts were never
   answered): the LLM is loaded once (``llm_load``) and answers both views' prompts;
4. ``--batch`` on ``--sessions`` sessions (the dataset's samples, all answered in the
   store) through the command line in a fresh process: wall time (imports, load, explain,
   Parquet) and the sessions/s the command reports;
5. ``--new-sessions`` new sessions in one batch: the LLM-bound rate when nothing is
   stored.

Prints one Markdown table per part and the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llm4sbr_core.machine import cpu_model  # noqa: E402 (after the path set-up)

STAGES = ("llm_load", "llm", "encode", "localize", "score", "backbone")


def stage_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    lines = ["| session | " + " | ".join(STAGES) + " | total (s) |",
             "|---|" + "---:|" * (len(STAGES) + 1)]
    for name, t in rows:
        cells = [f"{t[s]:.3f}" if s in t else "–" for s in STAGES]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sum(t.values()):.3f} |")
    return "\n".join(lines)


def median_timings(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in runs for k in r})
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="an LLM4SBR run folder")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions of --batch")
    parser.add_argument("--new-sessions", type=int, default=4,
                        help="new (never answered) sessions of the LLM-bound batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", nargs="+", default=[],
                        help="the workflow's config files (as llm4sbr recommend --config)")
    parser.add_argument("--seed", type=int, default=time.time_ns() % 2**31,
                        help="draws the new sessions (default: the clock, so that they "
                             "are new on every run)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from llm4sbr_core import layout
    from llm4sbr_core.recommend import Recommender

    started = time.perf_counter()
    rec = Recommender.load(args.run, config_files=args.config, threads=args.threads)
    load = time.perf_counter() - started
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads; run {args.run} ({rec.catalog.n_items} items)\n")
    print(f"load: {load:.2f} s (run files and checks, network, base run)\n")

    test = pd.read_parquet(rec.files.path(layout.SPLIT_FILE, split="test"))
    session = [int(i) for i in test["items"].iloc[0]]
    rec.explain([session], args.k)  # warm-up (first forward pass, caches)
    stored = median_timings([rec.explain([session], args.k)[0].timings
                             for _ in range(args.repeats)])
    rng = np.random.default_rng(args.seed)
    candidates = np.arange(1, rec.catalog.n_items + 1)

    def new_session() -> list[int]:
        return rng.choice(candidates, size=int(rng.integers(3, 8)), replace=False).tolist()

    fresh = [rec.explain([new_session()], args.k)[0].timings for _ in range(args.repeats)]
    first_new = fresh[0]
    later_new = median_timings(fresh[1:]) if len(fresh) > 1 else first_new
    print(f"one session, seconds per stage (median of {args.repeats}; llm_load: the LLM "
          "loaded once):")
    print(stage_table([("stored answers (test session)", stored),
                       ("new session, first (loads the LLM)", first_new),
                       ("new session, LLM loaded", later_new)]))

    # --batch through the command line, in a fresh process
    splits = [pd.read_parquet(rec.files.path(layout.SPLIT_FILE, split=s))
              for s in layout.SPLITS]
    samples = pd.concat(splits, ignore_index=True)
    picked = samples.sample(n=args.sessions, replace=len(samples) < args.sessions,
                            random_state=0)
    with tempfile.TemporaryDirectory() as tmp:
        batch = Path(tmp) / "sessions.parquet"
        pd.DataFrame({"session_id": np.arange(len(picked)),
                      "items": [list(map(int, s)) for s in picked["items"]]}).to_parquet(batch)
        out = Path(tmp) / "out.parquet"
        command = [sys.executable, "-m", "llm4sbr_core.cli", "recommend", "--run", args.run,
                   "--batch", str(batch), "--out", str(out), "--k", str(args.k),
                   "--threads", str(args.threads)]
        if args.config:
            command += ["--config", *args.config]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=os.getcwd(),
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(done.stderr[-3000:])
        rows = len(pd.read_parquet(out))
        distinct = len({tuple(s) for s in picked["items"]})
        print(f"\n--batch of {rows} dataset sessions ({distinct} distinct; answers stored): "
              f"{wall:.1f} s wall in a fresh process ({rows / wall:.1f} sessions/s), "
              f"the command reports: {done.stdout.strip()}")

    sessions = [new_session() for _ in range(args.new_sessions)]
    t0 = time.perf_counter()
    explained = rec.explain(sessions, args.k)
    seconds = time.perf_counter() - t0
    t = explained[0].timings
    print(f"\n{len(sessions)} new sessions in one batch ({2 * len(sessions)} prompts to "
          f"answer): {seconds:.1f} s, {len(sessions) / seconds:.2f} sessions/s; LLM "
          f"{t.get('llm', 0):.1f} s ({2 * len(sessions) / max(t.get('llm', 1e-9), 1e-9):.2f}"
          f" prompts/s), the rest {seconds - t.get('llm', 0):.2f} s")
    rec.close()


if __name__ == "__main__":
    main()
