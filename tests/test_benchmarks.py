"""The benchmark harnesses run end to end on a tiny dataset (their numbers are not tested)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_trainer import data  # noqa: F401  (module-scoped tiny dataset fixture)

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

# A stand-in with the reference SR-GNN code's interface (utils.Data, model.SessionGraph,
# model.forward, model.trans_to_cuda): the harness calls nothing else.
STAND_IN_MODEL = '''
import numpy as np, torch
from torch import nn
class SessionGraph(nn.Module):
    def __init__(self, opt, n_node):
        super().__init__()
        self.batch_size = opt.batchSize
        self.embedding = nn.Embedding(n_node, opt.hiddenSize)
        self.loss_function = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.Adam(self.parameters(), lr=opt.lr)
def trans_to_cuda(x):
    return x
def forward(model, i, data):
    inputs = torch.as_tensor(data.inputs[i])
    session = model.embedding(inputs).sum(1)
    return data.targets[i], session @ model.embedding.weight[1:].T
'''
STAND_IN_UTILS = '''
import numpy as np
class Data:
    def __init__(self, data, shuffle=False):
        width = max(len(x) for x in data[0])
        self.inputs = np.asarray([x + [0] * (width - len(x)) for x in data[0]])
        self.targets = np.asarray(data[1])
        self.length = len(self.inputs)
    def generate_batch(self, batch_size):
        return np.array_split(np.arange(self.length), -(-self.length // batch_size))
'''


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_reference_srgnn_side_by_side(data, tmp_path):  # noqa: F811
    code = tmp_path / "SR-GNN" / "pytorch_code"
    code.mkdir(parents=True)
    (code / "model.py").write_text(STAND_IN_MODEL)
    (code / "utils.py").write_text(STAND_IN_UTILS)
    out = run("reference_srgnn.py", "--reference", str(tmp_path / "SR-GNN"),
              "--data", str(data), "--batches", "1", "--threads", "1", "--device", "cpu")
    rows = table_rows(out)
    assert [r[0] for r in rows] == ["reference code (CRIPAC-DIG)", "llm4sbr"]
    assert all(float(r[2]) > 0 for r in rows)  # ms per step
    assert "speed-up per training step" in out


def test_reference_srgnn_names_a_wrong_checkout(data, tmp_path):  # noqa: F811
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/reference_srgnn.py"),
                           "--reference", str(tmp_path), "--data", str(data)],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode != 0
    assert f"--reference {tmp_path}: no pytorch_code/model.py" in done.stderr


@pytest.mark.parametrize("args, labels", [
    (["--init-seeds", "0", "1", "--order-seeds", "0"], ["seed 0", "seed 1"]),
    (["--swap", "0", "1", "--order-seeds", "0"],
     ["seed 0", "seed 1", "seed 1, item_embedding from seed 0",
      "seed 1, gru from seed 0"]),
    (["--swap", "0", "1", "--order-seeds", "0", "--groups", "item_embedding.weight"],
     ["seed 0", "seed 1", "seed 1, item_embedding.weight from seed 0"]),
])
def test_seed_sensitivity(data, args, labels):  # noqa: F811
    out = run("seed_sensitivity.py", "--backbone", "gru4rec", "--data", str(data),
              "--steps", "3", "--threads", "1", "--device", "cpu", *args)
    rows = table_rows(out)
    assert set(labels) <= {r[0] for r in rows}
    assert all(0 <= float(r[4]) <= 100 for r in rows)


def test_seed_sensitivity_names_an_unknown_group(data):  # noqa: F811
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/seed_sensitivity.py"),
                           "--backbone", "gru4rec", "--data", str(data), "--steps", "1",
                           "--device", "cpu", "--swap", "0", "1", "--groups", "readout"],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode != 0
    assert "--groups readout: no such parameter (have: item_embedding.weight" in done.stderr
