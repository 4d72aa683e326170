"""Side by side: the reference SR-GNN code (CRIPAC-DIG/SR-GNN, unchanged) vs this package's SR-GNN.

    git clone https://github.com/CRIPAC-DIG/SR-GNN /path/to/SR-GNN   # not vendored here
    .venv/bin/python benchmarks/reference_srgnn.py --reference /path/to/SR-GNN \
        --data results/beauty/data --batches 100 --threads 2

Both run in fresh processes with the same number of torch threads, on the same training
samples (``{data}/train.parquet``, converted in memory to the reference's
``(input sequences, targets)`` pair), with the same settings (d = 100, batch 100, one GNN
step, Adam lr 1e-3, weight decay 1e-5):

* reference: its ``utils.Data`` (padding to the longest session) and one step of its
  ``train_test`` loop — ``model.forward`` in ``model.py``, i.e. ``Data.get_slice`` (the
  per-session adjacency matrices built in Python), the GGNN, ``compute_scores``, the
  cross-entropy and Adam — called from its own modules, not re-implemented;
* here: ``benchmarks/train_speed.py``'s measurement (the trainer's batching, loss and
  optimizer step) for ``srgnn``/``base``.

Each side times ``--batches`` shuffled training steps after 5 warm-up steps and projects an
epoch (steps per epoch × s/step); the reference side then runs its own test loop
(``compute_scores`` + top-20 over the test split) and this package's side its full-ranking
validation pass, both reported in seconds per 1,000 ranked samples. The reference moves
itself to CUDA when a GPU is visible (its ``trans_to_cuda``); this package's side follows it
(``--device auto``, the default).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

REFERENCE_CHILD = r"""
import json, resource, sys, time
import numpy as np, pyarrow.parquet as pq, torch
code, data, n_steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, code)
from model import SessionGraph, forward, trans_to_cuda  # the reference's own modules
from utils import Data
torch.set_num_threads(threads)
np.random.seed(0); torch.manual_seed(0)
def split(name):
    t = pq.read_table(f"{data}/{name}.parquet", columns=["items", "target"])
    return t["items"].to_pylist(), t["target"].to_pylist()
n_node = pq.read_metadata(f"{data}/items.parquet").num_rows + 1  # ids 1..N, 0 = padding
t0 = time.perf_counter()
train, test = Data(split("train"), shuffle=True), Data(split("test"), shuffle=False)
prepare_s = time.perf_counter() - t0
class Opt:  # main.py's argparse defaults (also LLM4SBR's recipe)
    hiddenSize, batchSize, step, nonhybrid = 100, 100, 1, False
    lr, l2, lr_dc_step, lr_dc = 1e-3, 1e-5, 3, 0.1
model = trans_to_cuda(SessionGraph(Opt, n_node))
cuda = next(model.parameters()).is_cuda
sync = torch.cuda.synchronize if cuda else (lambda: None)
slices = train.generate_batch(model.batch_size)
def step(i):  # one iteration of the reference's train_test loop
    model.optimizer.zero_grad()
    targets, scores = forward(model, i, train)
    targets = trans_to_cuda(torch.Tensor(targets).long())
    loss = model.loss_function(scores, targets - 1)
    loss.backward()
    model.optimizer.step()
model.train()
for i in slices[:5]:
    step(i)
timed = slices[5:5 + n_steps]  # one epoch at most
if not timed:
    raise SystemExit(f"{data}/train.parquet: fewer than 6 batches of 100 samples")
sync(); t0 = time.perf_counter()
for i in timed:
    step(i)
sync(); s_step = (time.perf_counter() - t0) / len(timed)
model.eval()
test_slices = test.generate_batch(model.batch_size)
t0 = time.perf_counter()
with torch.no_grad():  # the reference's predicting loop minus its Python hit/mrr lists
    for i in test_slices:
        targets, scores = forward(model, i, test)
        scores.topk(20)[1].cpu()
sync(); eval_s = time.perf_counter() - t0
peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({"ms": s_step * 1000, "epoch_s": s_step * len(slices), "steps": len(slices),
                  "eval_per_1k_s": eval_s / test.length * 1000, "prepare_s": prepare_s,
                  "peak_mb": peak, "device": "cuda" if cuda else "cpu"}))
"""


def load_train_speed():
    """benchmarks/train_speed.py as a module: this package's side is measured by its code."""
    spec = importlib.util.spec_from_file_location(
        "train_speed", Path(__file__).with_name("train_speed.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_code_dir(path: Path) -> Path:
    """The folder holding the reference's pytorch model.py and utils.py."""
    for candidate in (path / "pytorch_code", path):
        if (candidate / "model.py").is_file() and (candidate / "utils.py").is_file():
            return candidate
    raise SystemExit(f"--reference {path}: no pytorch_code/model.py and utils.py "
                     "(expected a checkout of https://github.com/CRIPAC-DIG/SR-GNN)")


def run_child(argv: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", *argv], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, required=True,
                    help="checkout of CRIPAC-DIG/SR-GNN (or its pytorch_code folder)")
    ap.add_argument("--data", default="results/beauty/data")
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="auto",
                    help="this package's device (auto = CUDA when visible, like the reference)")
    args = ap.parse_args()
    code = reference_code_dir(args.reference)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{args.threads}; data {args.data}; {args.batches} timed steps of batch 100 each")
    ref = run_child([REFERENCE_CHILD, str(code), args.data, str(args.batches),
                     str(args.threads)], env)
    ours = run_child([load_train_speed().CHILD, "srgnn", args.data, str(args.batches),
                      str(args.threads), args.device, "base", "-"], env)
    n_valid = pq.read_metadata(f"{args.data}/valid.parquet").num_rows
    ours["eval_per_1k_s"] = ours["eval_s"] / n_valid * 1000
    print("\n| SR-GNN | device | ms / step | projected s / epoch | eval s / 1k samples "
          "| peak MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for label, r, device in (("reference code (CRIPAC-DIG)", ref, ref["device"]),
                             ("llm4sbr", ours, ours["device"])):
        print(f"| {label} | {device} | {r['ms']:.1f} | {r['epoch_s']:.1f} | "
              f"{r['eval_per_1k_s']:.2f} | {r['peak_mb']:.0f} |")
    print(f"\nspeed-up per training step: {ref['ms'] / ours['ms']:.1f}×; {ref['steps']} "
          f"steps per epoch; reference data preparation {ref['prepare_s']:.1f} s")


if __name__ == "__main__":
    main()
