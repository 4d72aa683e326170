"""Which random source moves a backbone's result: the weight initialisation or the data order?

    .venv/bin/python benchmarks/seed_sensitivity.py --backbone gcegnn \
        --data results/beauty/data --steps 400 --init-seeds 0 1 2 --order-seeds 0 1

A run's single ``seed`` fixes both the initial weights and the order of the batches (and
the dropout masks). Here they are split: the model is built after seeding with an
``--init-seeds`` value, then every generator is re-seeded with an ``--order-seeds`` value
(shuffling, dropout) before ``--steps`` training steps of the trainer's own loss and
optimizer. Each pair reports the mean training loss over the last 50 steps and the
full-ranking validation MRR@20 / P@20 at that point. If the rows split by init seed and not
by order seed, a seed's outlying result is a property of where the weights started.

``--swap A B`` then asks which weights: for every top-level parameter group of the model
(``item_embedding``, ``readout``, …), or for each parameter-name prefix given to
``--groups`` (``readout.q`` …), it trains init seed B's weights with that group taken from
init seed A (order seed = the first ``--order-seeds`` value), next to pure A and pure B.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform

import torch

from llm4sbr_core.data.batches import count_items, load_samples
from llm4sbr_core.models import get_backbone
from llm4sbr_core.models.build import build_model, build_training_graph
from llm4sbr_core.train.checkpoint import seed_everything
from llm4sbr_core.train.run import resolve_device
from llm4sbr_core.train.settings import RunSettings
from llm4sbr_core.train.trainer import Trainer


class ShortRuns:
    """Short training runs of one backbone on one dataset from chosen initial weights."""

    def __init__(self, backbone: str, data: str, device: str):
        self.run = RunSettings.from_config({"device": device}, "seeds", backbone, "base", 0)
        self.cls = get_backbone(backbone)
        self.train = load_samples(f"{data}/train.parquet", self.run.max_len)
        self.valid = load_samples(f"{data}/valid.parquet", self.run.max_len)
        self.n_items = count_items(f"{data}/items.parquet")
        self.graph = (build_training_graph(self.cls, load_samples(f"{data}/train.parquet"),
                                     self.n_items, {})
                      if self.cls.needs_training_graph else None)

    def model(self, init_seed: int) -> torch.nn.Module:
        seed_everything(init_seed)
        return build_model(self.cls, self.run.variant, self.n_items, self.run.dim, {},
                           self.graph)

    def train_from(self, state: dict[str, torch.Tensor], order_seed: int,
                   steps: int) -> dict[str, float]:
        """``steps`` steps from weights ``state`` in the batch/dropout order of ``order_seed``."""
        model = self.model(0)
        model.load_state_dict(state)
        seed_everything(order_seed)
        return train_steps(model, self.train, self.valid,
                           dataclasses.replace(self.run, seed=order_seed), steps)


def train_steps(model: torch.nn.Module, train, valid, run: RunSettings,
                steps: int) -> dict[str, float]:
    """The trainer's loss and optimizer for ``steps`` steps, then a validation pass."""
    trainer = Trainer(model, train, valid, run, resolve_device(run.device), progress=False)
    batches = train.batches(run.batch_size, shuffle=True, generator=trainer.generator)
    model.train()
    losses = []
    for _ in range(steps):
        loss, _ = trainer.loss(next(batches).to(trainer.device))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        losses.append(loss.item())
    tail = losses[-50:]
    return {"loss": sum(tail) / len(tail), **trainer.validate()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="gcegnn")
    ap.add_argument("--data", default="results/beauty/data")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--init-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--order-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="auto")
    ap.add_argument("--swap", type=int, nargs=2, metavar=("A", "B"),
                    help="train B's initial weights with one parameter group from A")
    ap.add_argument("--groups", nargs="+",
                    help="parameter-name prefixes to swap (default: top-level modules)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{args.threads}; {args.backbone} on {args.data}, {args.steps} steps of batch 100")
    runs = ShortRuns(args.backbone, args.data, args.device)

    def row(label: str, state: dict[str, torch.Tensor], order_seed: int) -> None:
        r = runs.train_from(state, order_seed, args.steps)
        print(f"| {label} | {order_seed} | {r['loss']:.4f} | {100 * r['MRR@20']:.2f} | "
              f"{100 * r['P@20']:.2f} |", flush=True)

    print("\n| initial weights | order seed | loss (last 50 steps) | valid MRR@20 "
          "| valid P@20 |")
    print("|---|---:|---:|---:|---:|")
    if args.swap is None:
        for init_seed in args.init_seeds:
            state = runs.model(init_seed).state_dict()
            for order_seed in args.order_seeds:
                row(f"seed {init_seed}", state, order_seed)
        return
    a, b = (runs.model(seed).state_dict() for seed in args.swap)
    order_seed = args.order_seeds[0]
    row(f"seed {args.swap[0]}", a, order_seed)
    row(f"seed {args.swap[1]}", b, order_seed)
    for group in args.groups or dict.fromkeys(name.split(".")[0] for name in b):
        taken = [k for k in b if k == group or k.startswith(group + ".")]
        if not taken:
            raise SystemExit(f"--groups {group}: no such parameter (have: {', '.join(b)})")
        hybrid = {k: (a if k in taken else b)[k] for k in b}
        row(f"seed {args.swap[1]}, {group} from seed {args.swap[0]}", hybrid, order_seed)


if __name__ == "__main__":
    main()
