"""Training and evaluation speed and peak memory of each backbone on one dataset.

    .venv/bin/python benchmarks/train_speed.py --data results/beauty/data --batches 200 \
        --variants base llm4sbr

Each backbone × variant runs in a fresh process: ``--batches`` training steps (forward, full
cross-entropy, backward, Adam) on shuffled training batches after 5 warm-up steps, then
a full-catalogue ranking of the whole validation split. Reported: ms per step, the
projected seconds per epoch (ms/step × steps per epoch; whole epochs are in each run's
metrics.json), validation seconds and the process's peak RSS (or CUDA peak).

LLM variants read intent vectors from ``--intents-dir`` ({view}.npy, as the localize rule
writes them) or, without it, from stand-in random float32 vectors of ``--text-dim`` columns
written to a temporary .npy and memory-mapped exactly like real ones: the cost of a step
does not depend on the values. The ratio column is the variant's ms/step over ``base``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from llm4sbr_core.variants import parse_variant

CHILD = r"""
import json, math, resource, sys, time
import torch
from llm4sbr_core.data.batches import load_samples
from llm4sbr_core.train.checkpoint import seed_everything
from llm4sbr_core.models import get_backbone
from llm4sbr_core.models.build import build_model, build_training_graph
from llm4sbr_core.train.intents import load_intents
from llm4sbr_core.data.batches import count_items
from llm4sbr_core.train.run import resolve_device
from llm4sbr_core.train.settings import RunSettings
from llm4sbr_core.train.trainer import Trainer
name, data, n_steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
variant, intents_dir = sys.argv[6], sys.argv[7]
run = RunSettings.from_config({"device": sys.argv[5]}, "bench", name, variant, 0)
torch.set_num_threads(threads)
device = resolve_device(run.device)
cls = get_backbone(name)
train = load_samples(f"{data}/train.parquet", run.max_len)
valid = load_samples(f"{data}/valid.parquet", run.max_len)
n_items = count_items(f"{data}/items.parquet")
t0 = time.perf_counter()
graph = None
if cls.needs_training_graph:
    graph = build_training_graph(cls, load_samples(f"{data}/train.parquet"), n_items, {})
graph_s = time.perf_counter() - t0
n_samples = sum(len(load_samples(f"{data}/{s}.parquet")) for s in ("train", "valid", "test"))
intents = load_intents({v: f"{intents_dir}/{v}.npy" for v in run.variant.views}, n_samples)
seed_everything(0)
model = build_model(cls, run.variant, n_items, run.dim, {}, graph, intents=intents)
trainer = Trainer(model, train, valid, run, device, progress=False)
batches = train.batches(run.batch_size, shuffle=True, generator=trainer.generator)
def step(batch):  # the trainer's own loss; the optimizer step as in Trainer.train_epoch
    loss, _ = trainer.loss(batch.to(device))
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
model.train()
for _ in range(5):
    step(next(batches))
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
sync()
t0 = time.perf_counter()
for _ in range(n_steps):
    step(next(batches))
sync()
ms = (time.perf_counter() - t0) / n_steps * 1000
t0 = time.perf_counter()
trainer.validate()
sync()
eval_s = time.perf_counter() - t0
peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({"ms": ms, "epoch_s": ms * math.ceil(len(train) / run.batch_size) / 1000,
                  "eval_s": eval_s, "graph_s": graph_s, "peak_mb": peak,
                  "device": device.type}))
"""

BACKBONES = ["gru4rec", "sasrec", "srgnn", "tagnn", "gcegnn", "dhcn"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="results/beauty/data")
    ap.add_argument("--backbones", nargs="+", default=BACKBONES)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="auto")
    ap.add_argument("--variants", nargs="+", default=["base"])
    ap.add_argument("--intents-dir", help="folder of {view}.npy intent vectors")
    ap.add_argument("--text-dim", type=int, default=384)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.intents_dir is None and any(parse_variant(v).views for v in args.variants):
            args.intents_dir = write_stand_in_intents(args.data, tmp, args.text_dim)
        measure(args)


def write_stand_in_intents(data: str, out: str, dim: int) -> str:
    """Random intent vectors for every sample and view (timing only)."""
    import numpy as np
    import pyarrow.parquet as pq

    n = sum(pq.read_metadata(f"{data}/{s}.parquet").num_rows for s in ("train", "valid", "test"))
    rng = np.random.default_rng(0)
    for view in ("short", "long", "normal"):
        np.save(f"{out}/{view}.npy", rng.standard_normal((n, dim), dtype=np.float32))
    return out


def measure(args: argparse.Namespace) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{args.threads}, device {args.device}; data {args.data}, {args.batches} steps; "
          f"intents {args.intents_dir or '-'}")
    print("\n| backbone | variant | ms / step (batch 100) | × base | projected s / epoch "
          "| validation s | training graph s | peak MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.backbones:
        base_ms = None
        for variant in args.variants:
            with tempfile.TemporaryFile("w+") as out:
                done = subprocess.run([sys.executable, "-c", CHILD, name, args.data,
                                       str(args.batches), str(args.threads), args.device,
                                       variant, str(args.intents_dir)],
                                      stdout=out, stderr=subprocess.PIPE, text=True, env=env)
                if done.returncode != 0:
                    print(f"| {name} | {variant} | failed: "
                          f"{done.stderr.strip().splitlines()[-1]} |")
                    continue
                out.seek(0)
                r = json.loads(out.read())
            if variant == "base":
                base_ms = r["ms"]
            ratio = f"{r['ms'] / base_ms:.2f}" if base_ms else "–"
            print(f"| {name} | {variant} | {r['ms']:.1f} | {ratio} | {r['epoch_s']:.0f} | "
                  f"{r['eval_s']:.1f} | {r['graph_s']:.1f} | {r['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
