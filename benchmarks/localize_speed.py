"""Time and peak memory of intent localization (top-r over all item texts + eq. 5).

    .venv/bin/python benchmarks/localize_speed.py --data results/beauty/data \
        --items results/beauty/text/all-minilm-l6-v2/items.npy --views 2 --r 5

Each backend runs in a fresh process on every sample of the dataset × ``--views``
against the catalogue's item vectors. With ``--answers A.npy [B.npy ...]`` the real
answer vectors are used (one file per view); without, stand-in answers are made from
the item vectors: the vector of each sample's last clicked item plus Gaussian noise
(seeded), i.e. "an answer that names something close to the last item" — the same
shapes and a realistic spread of similarities, but not LLM answers.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd, torch
from llm4sbr_core.localize import localize_intents
data, items_path, views, r, backend, threads, seed = sys.argv[1:8]
answers_paths = sys.argv[8:]
torch.set_num_threads(int(threads))
items = np.load(items_path)
if answers_paths:
    answers = [np.load(p) for p in answers_paths]
else:
    rng = np.random.default_rng(int(seed))
    splits = ("train", "valid", "test")
    samples = pd.concat([pd.read_parquet(f"{data}/{s}.parquet") for s in splits])
    last = np.array([int(x[-1]) for x in samples["items"]])
    scale = items[1:].std()
    answers = [items[last] + rng.normal(0, scale, (len(last), items.shape[1])).astype(np.float32)
               for _ in range(int(views))]
candidates = items.any(axis=1)
t0 = time.perf_counter()
for a in answers:
    localize_intents(a, items, int(r), backend=backend, candidates=candidates)
seconds = time.perf_counter() - t0
rows = sum(len(a) for a in answers)
print(json.dumps({"backend": backend, "answers": rows, "items": int(candidates.sum()),
                  "dim": int(items.shape[1]), "seconds": round(seconds, 2),
                  "answers_per_s": round(rows / seconds), "peak_rss_mib":
                  round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--items", required=True)
    parser.add_argument("--answers", nargs="*", default=[])
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--r", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["faiss", "torch", "numpy"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = []
    for backend in args.backends:
        out = subprocess.run([sys.executable, "-c", CHILD, args.data, args.items,
                              str(args.views), str(args.r), backend, str(args.threads),
                              str(args.seed), *args.answers],
                             capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print(f"\nmachine: {platform.machine()}, threads {args.threads}, r = {args.r}, "
          f"{'real answers' if args.answers else 'stand-in answers'}")
    print("| backend | answers | items | dim | seconds | answers/s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for x in results:
        print(f"| {x['backend']} | {x['answers']:,} | {x['items']:,} | {x['dim']} | "
              f"{x['seconds']} | {x['answers_per_s']:,} | {x['peak_rss_mib']} |")


if __name__ == "__main__":
    main()
