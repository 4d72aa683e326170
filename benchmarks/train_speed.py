"""Training and evaluation speed and peak memory of each backbone on one dataset.

    .venv/bin/python benchmarks/train_speed.py --data results/beauty/data --batches 200 \
        --variants base llm4sbr

Each backbone × variant runs in a fresh process: ``--batches`` training steps (forward, full
cross-entropy, backward, Adam) on shuffled training batches after 5 warm-up steps, then
a full-catalogue ranking of the whole validation split (``--no-validation`` skips it).
Reported: ms per step, wall and the process's CPU time (on a shared machine, CPU time
with ``--threads 1`` is the figure least disturbed by other jobs), the projected seconds
per epoch (wall ms/step × steps per epoch; whole epochs are in each run's metrics.json),
validation seconds and the process's peak RSS (or CUDA peak).

A backbone may be pinned to a git revision, ``NAME@REV`` (e.g. ``tagnn@HEAD~1``): its model
file is read with ``git show REV:<file>`` and imported in place of the working tree's, so
one call compares an implementation before and after a change on the same data:

    .venv/bin/python benchmarks/train_speed.py --data results/beauty/data --batches 50 \
        --backbones srgnn tagnn@HEAD~1 tagnn --no-validation

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

from llm4sbr_core.machine import cpu_model
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
# Optional (reference_srgnn.py runs this child without them): a model file to import in
# place of the working tree's ("-": none) and whether to rank the validation split.
model_file = sys.argv[8] if len(sys.argv) > 8 else "-"
validate = len(sys.argv) <= 9 or sys.argv[9] == "1"
run = RunSettings.from_config({"device": sys.argv[5]}, "bench", name, variant, 0)
torch.set_num_threads(threads)
device = resolve_device(run.device)
cls = get_backbone(name)
if model_file != "-":  # NAME@REV: that revision's model file, imported as its module
    import importlib.util
    spec = importlib.util.spec_from_file_location(cls.__module__, model_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[cls.__module__] = module
    spec.loader.exec_module(module)
    cls = getattr(module, cls.__name__)
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
t0, cpu0 = time.perf_counter(), time.process_time()
for _ in range(n_steps):
    step(next(batches))
sync()
ms = (time.perf_counter() - t0) / n_steps * 1000
cpu_ms = (time.process_time() - cpu0) / n_steps * 1000
eval_s = None
if validate:
    t0 = time.perf_counter()
    trainer.validate()
    sync()
    eval_s = time.perf_counter() - t0
peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({"ms": ms, "cpu_ms": cpu_ms,
                  "epoch_s": ms * math.ceil(len(train) / run.batch_size) / 1000,
                  "eval_s": eval_s, "graph_s": graph_s, "peak_mb": peak,
                  "device": device.type}))
"""

BACKBONES = ["gru4rec", "sasrec", "srgnn", "tagnn", "gcegnn", "dhcn"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="results/beauty/data")
    ap.add_argument("--backbones", nargs="+", default=BACKBONES,
                    help="registry names, each optionally NAME@REV (the model file at a git "
                         "revision)")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="auto")
    ap.add_argument("--variants", nargs="+", default=["base"])
    ap.add_argument("--intents-dir", help="folder of {view}.npy intent vectors")
    ap.add_argument("--text-dim", type=int, default=384)
    ap.add_argument("--no-validation", action="store_true",
                    help="time training steps only (skip ranking the validation split)")
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


def model_file_at(spec: str, root: Path, tmp: str) -> tuple[str, str]:
    """``NAME@REV`` → (NAME, path of NAME's model file as of git revision REV); ``NAME`` →
    (NAME, "-"): the working tree's."""
    name, _, rev = spec.partition("@")
    if not rev:
        return name, "-"
    from llm4sbr_core.models import BACKBONE_PATHS

    rel = BACKBONE_PATHS[name].split(":")[0].replace(".", "/") + ".py"
    source = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tmp) / f"{name}@{rev.replace('/', '_')}.py"
    path.write_text(source)
    return name, str(path)


def measure(args: argparse.Namespace) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    print(f"machine: {platform.machine()} {cpu_model()}, {os.cpu_count()} CPUs, torch threads "
          f"{args.threads}, device {args.device}; data {args.data}, {args.batches} steps; "
          f"intents {args.intents_dir or '-'}")
    print("\n| backbone | variant | ms / step (batch 100) | CPU ms / step | × base "
          "| projected s / epoch | validation s | training graph s | peak MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for spec in args.backbones:
        base_ms = None
        for variant in args.variants:
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryDirectory() as tmp:
                name, model_file = model_file_at(spec, root, tmp)
                done = subprocess.run([sys.executable, "-c", CHILD, name, args.data,
                                       str(args.batches), str(args.threads), args.device,
                                       variant, str(args.intents_dir), model_file,
                                       "0" if args.no_validation else "1"],
                                      stdout=out, stderr=subprocess.PIPE, text=True, env=env)
                if done.returncode != 0:
                    print(f"| {spec} | {variant} | failed: "
                          f"{done.stderr.strip().splitlines()[-1]} |")
                    continue
                out.seek(0)
                r = json.loads(out.read())
            if variant == "base":
                base_ms = r["ms"]
            ratio = f"{r['ms'] / base_ms:.2f}" if base_ms else "–"
            eval_s = "–" if r["eval_s"] is None else f"{r['eval_s']:.1f}"
            print(f"| {spec} | {variant} | {r['ms']:.1f} | {r['cpu_ms']:.1f} | {ratio} | "
                  f"{r['epoch_s']:.0f} | "
                  f"{eval_s} | {r['graph_s']:.1f} | {r['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
