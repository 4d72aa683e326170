"""LLMSeqSim (the text-only peer): hand-computed rankings and the run contract."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from llm4sbr_core.data.batches import SampleTensors
from llm4sbr_core.models.llmseqsim import llmseqsim_ranks, session_vectors
from llm4sbr_core.train.llmseqsim_run import run_llmseqsim
from llm4sbr_core.train.outputs import RunOutputs

# items 1..5 in 2-D; item 5 has no text
VECTORS = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [-1, 0.2], [0, 0]], dtype=np.float32)


def samples(rows):
    width = max(len(r[0]) for r in rows)
    items = torch.tensor([r[0] + [0] * (width - len(r[0])) for r in rows])
    return SampleTensors(items, torch.tensor([len(r[0]) for r in rows]),
                         torch.tensor([r[1] for r in rows]), torch.arange(len(rows)))


def test_aggregations_by_hand():
    unit = torch.nn.functional.normalize(torch.from_numpy(VECTORS), dim=-1)
    items, lengths = torch.tensor([[1, 2, 0]]), torch.tensor([2])
    assert torch.allclose(session_vectors(items, lengths, unit, "mean"),
                          torch.tensor([[0.5, 0.5]]))
    assert torch.allclose(session_vectors(items, lengths, unit, "linear"),
                          torch.tensor([[1 / 3, 2 / 3]]))
    assert torch.allclose(session_vectors(items, lengths, unit, "last"), torch.tensor([[0., 1.]]))
    with pytest.raises(ValueError, match="unknown LLMSeqSim aggregation 'max'"):
        session_vectors(items, lengths, unit, "max")


def test_ranks_exclude_session_items_and_textless_items():
    # session [1, 2] (mean direction (1, 1)): item 3 first; items 1, 2 (in the session) and
    # 5 (no text) are excluded, i.e. tie at the bottom and rank pessimistically (5th).
    ranks = llmseqsim_ranks(samples([([1, 2], 3), ([1, 2], 4), ([1, 2], 5), ([1, 2], 1)]),
                            VECTORS, "mean")
    assert ranks.tolist() == [1, 2, 5, 5]
    # last click = item 1 → item 3 (cos .71) before item 2 (0) before item 4 (cos -.98)
    assert llmseqsim_ranks(samples([([1], 3), ([1], 2), ([1], 4)]), VECTORS, "last").tolist() \
        == [1, 2, 3]


def test_run_writes_the_run_contract(tmp_path):
    from test_trainer import write_samples

    data = tmp_path / "data"
    data.mkdir()
    write_samples(data / "valid.parquet", [([1, 2], 3), ([2], 1)], 0)
    write_samples(data / "test.parquet", [([1, 2], 3), ([1, 2], 4), ([3], 1)], 2)
    np.save(tmp_path / "items.npy", VECTORS)
    metrics = run_llmseqsim(data / "valid.parquet", data / "test.parquet", tmp_path / "items.npy",
                            RunOutputs.in_dir(tmp_path / "out", model=False), "mean",
                            config={"dataset": "toy"})
    on_disk = json.loads((tmp_path / "out/metrics.json").read_text())
    assert on_disk["test"] == metrics["test"] and on_disk["config"]["variant"] == "mean"
    ranks = pq.read_table(tmp_path / "out/ranks.parquet").to_pydict()
    assert ranks["sample_id"] == [2, 3, 4] and ranks["rank"][:2] == [1, 2]
    assert metrics["test"]["P@5"] == 1.0 and metrics["test"]["MRR@5"] == pytest.approx(
        (1 + 1 / 2 + 1 / ranks["rank"][2]) / 3)
    with pytest.raises(ValueError, match="larger item ids"):
        run_llmseqsim(data / "valid.parquet", data / "test.parquet",
                      _saved(tmp_path, VECTORS[:3]),
                      RunOutputs.in_dir(tmp_path / "bad", model=False), "mean")
    assert not (tmp_path / "bad/metrics.json").exists()


def _saved(tmp_path, array):
    np.save(tmp_path / "small.npy", array)
    return tmp_path / "small.npy"


def test_item_text_intents_by_hand():
    from llm4sbr_core.train.intents import item_text_intents

    train, test = samples([([1, 2], 3), ([3], 1)]), samples([([4, 1, 2], 3)])
    test.sample_ids += 2
    out = item_text_intents([train, test], VECTORS, ("short", "long"))
    r = 1 / np.sqrt(2)
    assert np.allclose(out["short"], [[0, 1], [r, r], [0, 1]])
    unit4 = VECTORS[4] / np.linalg.norm(VECTORS[4])
    assert np.allclose(out["long"], [[0.5, 0.5], [r, r], (unit4 + [1, 0] + [0, 1]) / 3])
