"""Intent localization (paper §4.1.3, eqs. 4–5): backends, tie rule, eq. 5, validation;
its file stage (llm4sbr_core/localize_stage.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llm4sbr_core import io as io_module
from llm4sbr_core.errors import Llm4sbrError, LocalizationError
from llm4sbr_core.localize import (
    check_rows,
    localize_intents,
    top_r,
    weighted_item_sum,
)
from llm4sbr_core.localize_stage import grounding_stats, localize_files, write_localized

try:
    import faiss  # noqa: F401
    BACKENDS = ["torch", "faiss", "numpy"]
except ImportError:  # pragma: no cover - faiss-cpu is in requirements.lock
    BACKENDS = ["torch", "numpy"]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """300 answers, 500 items (+ padding row 0), d = 32, with exact ties built in."""
    rng = np.random.default_rng(7)
    items = rng.standard_normal((501, 32)).astype(np.float32)
    # Duplicate texts: item j is a copy of item i < j (identical similarities).
    for i, j in [(10, 400), (11, 250), (12, 13), (40, 41), (40, 42)]:
        items[j] = items[i]
    items[77] = 3 * items[5]  # same direction, different length: same cosine
    answers = rng.standard_normal((300, 32)).astype(np.float32)
    # Some answers equal to a duplicated item: the tie is at the top of the ranking.
    for row, item in [(0, 400), (1, 250), (2, 13), (3, 42), (4, 77)]:
        answers[row] = items[item] * 0.5
    return answers, items


def reference_top_r(answers: np.ndarray, items: np.ndarray, r: int,
                    candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Independent brute force: float64 cosine of all pairs, sorted by (-score, id)."""
    a = answers.astype(np.float64)
    e = items.astype(np.float64)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    ne = np.linalg.norm(e, axis=1, keepdims=True)
    sim = (a / np.where(na == 0, 1, na)) @ (e / np.where(ne == 0, 1, ne)).T
    allowed = np.ones(len(items), dtype=bool) if candidates is None else candidates.copy()
    allowed[0] = False
    cand = np.flatnonzero(allowed)
    sim32 = sim[:, cand].astype(np.float32)
    ids = np.empty((len(a), r), dtype=np.int64)
    scores = np.empty((len(a), r), dtype=np.float32)
    for i in range(len(a)):
        order = np.lexsort((cand, -sim32[i]))[:r]
        ids[i], scores[i] = cand[order], sim32[i, order]
    return ids, scores


def assert_same_up_to_ties(ids, scores, ref_ids, ref_scores, eps=1e-6):
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    # Where a reference score has a neighbour within eps, float rounding may swap them.
    close = np.zeros(ref_scores.shape, dtype=bool)
    gap = np.abs(np.diff(ref_scores, axis=1)) < eps
    close[:, 1:] |= gap
    close[:, :-1] |= gap
    assert np.array_equal(ids[~close], ref_ids[~close])
    assert close.mean() < 0.05


@pytest.fixture(scope="module")
def results(data):
    answers, items = data
    return {b: top_r(answers, items, 10, backend=b, device="cpu") for b in BACKENDS}


def test_backends_agree_exactly_and_match_reference(data, results):
    answers, items = data
    ids, scores = results["numpy"]
    assert ids.shape == scores.shape == (300, 10)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    for backend in BACKENDS:
        b_ids, b_scores = results[backend]
        assert np.array_equal(b_ids, ids), backend
        np.testing.assert_allclose(b_scores, scores, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert_same_up_to_ties(ids, scores, *reference_top_r(answers, items, 10))


def test_explicit_ties_put_smaller_id_first(results):
    for backend in BACKENDS:
        ids, scores = results[backend]
        assert list(ids[0, :2]) == [10, 400], backend
        assert list(ids[1, :2]) == [11, 250], backend
        assert list(ids[2, :2]) == [12, 13], backend
        assert list(ids[3, :3]) == [40, 41, 42], backend
        assert list(ids[4, :2]) == [5, 77], backend
        np.testing.assert_allclose(scores[:5, 0], 1.0, atol=1e-6)
        assert scores[3, 0] == scores[3, 1] == scores[3, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_massive_ties_beyond_the_proposed_candidates(backend):
    """40 identical items and r = 5: the backend's top-21 is an arbitrary subset of the
    tie, so the exhaustive fallback must return the 5 smallest ids."""
    rng = np.random.default_rng(1)
    items = rng.standard_normal((101, 8)).astype(np.float32)
    dup = np.arange(50, 90)
    items[dup] = items[3]
    answers = np.stack([items[3], -items[3], rng.standard_normal(8).astype(np.float32)])
    ids, scores = top_r(answers, items, 5, backend=backend, device="cpu")
    assert list(ids[0]) == [3, 50, 51, 52, 53]
    np.testing.assert_allclose(scores[0], 1.0, atol=1e-6)
    ref_ids, ref_scores = reference_top_r(answers, items, 5)
    np.testing.assert_array_equal(ids, ref_ids)


def hand_eq5(answers, items, r):
    """Eq. 5 by loops: Σ over the r most similar items of sim · original embedding."""
    out = []
    for a in answers:
        sims = []
        for item_id in range(1, len(items)):
            e = items[item_id]
            dot = sum(float(x) * float(y) for x, y in zip(a, e, strict=True))
            na = math.sqrt(sum(float(x) ** 2 for x in a))
            ne = math.sqrt(sum(float(y) ** 2 for y in e))
            sims.append((-(dot / (na * ne)), item_id))
        h = [0.0] * len(a)
        for neg_sim, item_id in sorted(sims)[:r]:
            h = [hi - neg_sim * float(ei) for hi, ei in zip(h, items[item_id], strict=True)]
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eq5_hand_computed(backend):
    # Row 0 (padding) points the same way as answer 0 but is never a candidate.
    items = np.array([[5, 0], [3, 4], [1, 0]], dtype=np.float32)
    answers = np.array([[1, 0], [0, 2], [-1, 0]], dtype=np.float32)
    # cos(a, e1), cos(a, e2): a0: 0.6, 1.0; a1: 0.8, 0.0; a2: -0.6, -1.0
    h, ids, scores = localize_intents(answers, items, 2, backend=backend, device="cpu")
    np.testing.assert_array_equal(ids, [[2, 1], [1, 2], [1, 2]])
    np.testing.assert_allclose(scores, [[1.0, 0.6], [0.8, 0.0], [-0.6, -1.0]], atol=1e-6)
    expected = np.array([[1.0 * 1 + 0.6 * 3, 0.6 * 4],      # [2.8, 2.4]
                         [0.8 * 3 + 0.0 * 1, 0.8 * 4],      # [2.4, 3.2]
                         [-0.6 * 3 - 1.0 * 1, -0.6 * 4]])   # [-2.8, -2.4]
    np.testing.assert_allclose(h, expected, atol=1e-6)
    np.testing.assert_allclose(h, hand_eq5(answers, items, 2), atol=1e-6)
    h1, ids1, _ = localize_intents(answers, items, 1, backend=backend, device="cpu")
    np.testing.assert_array_equal(ids1[:, 0], [2, 1, 1])
    np.testing.assert_allclose(h1, [[1, 0], [2.4, 3.2], [-1.8, -2.4]], atol=1e-6)
    assert h.dtype == np.float32


def test_h_infer_all_backends_agree_with_loop(data):
    answers, items = data
    answers, items = answers[:20], items[:60]
    hs = [localize_intents(answers, items, 4, backend=b, device="cpu")[0] for b in BACKENDS]
    for h in hs[1:]:
        np.testing.assert_allclose(h, hs[0], atol=1e-5)
    np.testing.assert_allclose(hs[0], hand_eq5(answers, items, 4), atol=1e-5)
    ids, scores = top_r(answers, items, 4, backend="numpy")
    np.testing.assert_allclose(weighted_item_sum(items, ids, scores), hs[0], atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_r_zero_returns_answers(data, backend):
    answers, items = data
    h, ids, scores = localize_intents(answers, items, 0, backend=backend, device="cpu")
    np.testing.assert_array_equal(h, answers)
    assert ids.shape == scores.shape == (300, 0)
    assert h is not answers


@pytest.mark.parametrize("backend", BACKENDS)
def test_candidates_mask_and_padding_row(data, backend):
    answers, items = data
    items = items.copy()
    items[0] = answers[7]  # the padding row is the most similar item of answer 7
    mask = np.ones(len(items), dtype=bool)
    excluded = [10, 12, 40, 41, 42, 100, 101]
    mask[excluded] = False
    ids, scores = top_r(answers, items, 10, backend=backend, candidates=mask, device="cpu")
    assert not np.isin(ids, [0, *excluded]).any()
    assert list(ids[0, :1]) == [400] and list(ids[2, :1]) == [13]
    ref = reference_top_r(answers, items, 10, candidates=mask)
    assert_same_up_to_ties(ids, scores, *ref)
    ids_all, _ = top_r(answers, items, 10, backend=backend, device="cpu")
    assert 0 not in ids_all


@pytest.mark.parametrize("backend", BACKENDS)
def test_batching_gives_the_same(data, results, backend):
    answers, items = data
    ids, scores = top_r(answers, items, 10, backend=backend, batch_size=7, device="cpu")
    np.testing.assert_array_equal(ids, results[backend][0])
    np.testing.assert_array_equal(scores, results[backend][1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_vectors_have_similarity_zero(backend):
    items = np.array([[0, 0], [0, 0], [1, 1], [0, 0], [-1, 0]], dtype=np.float32)
    answers = np.array([[0, 0], [1, 0]], dtype=np.float32)
    h, ids, scores = localize_intents(answers, items, 4, backend=backend, device="cpu")
    assert np.isfinite(scores).all() and np.isfinite(h).all()
    np.testing.assert_array_equal(ids[0], [1, 2, 3, 4])  # all 0: ascending ids
    np.testing.assert_array_equal(scores[0], 0)
    np.testing.assert_array_equal(h[0], 0)
    np.testing.assert_array_equal(ids[1], [2, 1, 3, 4])
    np.testing.assert_allclose(scores[1], [math.sqrt(0.5), 0, 0, -1], atol=1e-6)


def test_validation_errors(data, tmp_path):
    answers, items = data
    a_path, i_path = tmp_path / "answers.npy", tmp_path / "items.npy"
    bad = answers.copy()
    bad[17, 3] = np.nan
    with pytest.raises(LocalizationError, match=r"answers\.npy: answers .*NaN.*row 17"):
        top_r(bad, items, 5, backend="numpy", answers_path=a_path)
    bad_items = items.copy()
    bad_items[33, 0] = np.inf
    with pytest.raises(LocalizationError, match=r"items\.npy: items .*row 33"):
        localize_intents(answers, bad_items, 5, backend="numpy", items_path=i_path)
    with pytest.raises(LocalizationError, match=r"dimension mismatch.*d=32.*d=16"):
        top_r(answers, items[:, :16], 5, backend="numpy")
    with pytest.raises(LocalizationError, match="r must be >= 0"):
        top_r(answers, items, -1, backend="numpy")
    with pytest.raises(LocalizationError, match=r"r=501 is larger .* candidate items \(500\)"):
        top_r(answers, items, 501, backend="numpy")
    mask = np.zeros(len(items), dtype=bool)
    mask[[0, 3]] = True
    with pytest.raises(LocalizationError, match=r"r=2 is larger .*\(1\)"):
        top_r(answers, items, 2, backend="numpy", candidates=mask)
    mask[3] = False
    with pytest.raises(LocalizationError, match=r"items\.npy: empty candidate set"):
        top_r(answers, items, 1, backend="numpy", candidates=mask, items_path=i_path)
    with pytest.raises(LocalizationError, match="boolean mask of shape"):
        top_r(answers, items, 1, backend="numpy", candidates=np.ones(3, dtype=bool))
    with pytest.raises(LocalizationError, match="nothing to localize"):
        top_r(answers, items[:1], 0, backend="numpy")
    with pytest.raises(LocalizationError, match="unknown backend 'annoy'"):
        top_r(answers, items, 5, backend="annoy")
    with pytest.raises(LocalizationError, match="batch_size"):
        top_r(answers, items, 5, backend="numpy", batch_size=0)
    with pytest.raises(LocalizationError, match="2-D"):
        top_r(answers[0], items, 5, backend="numpy")
    with pytest.raises(LocalizationError, match=r"answers\.npy: answers has 300 rows but 299"):
        check_rows(answers, 299, a_path)
    with pytest.raises(LocalizationError, match="300 rows but 301"):
        localize_intents(answers, items, 5, backend="numpy", expected_rows=301)
    check_rows(answers, 300, a_path)
    assert issubclass(LocalizationError, Llm4sbrError)


def test_explicit_cuda_without_gpu_is_a_clear_error(data):
    import torch

    answers, items = data
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(LocalizationError, match="CUDA"):
        top_r(answers, items, 5, backend="torch", device="cuda")


def test_grounding_stats():
    ids = np.array([[3, 9], [7, 2], [5, 1], [4, 6]])
    scores = np.array([[0.9, 0.5], [0.7, 0.1], [0.5, 0.4], [0.3, 0.2]], dtype=np.float32)
    sessions = [[1, 3], [2], [5, 6, 7], []]
    targets = np.array([9, 8, 1, 4])
    # top-1 in session: yes, no, yes, no; target in top-2: yes, no, yes, yes
    stats = grounding_stats(ids, sessions, targets, scores=scores,
                            splits=["valid", "test", "test", "valid"])
    assert stats["samples"] == 4 and stats["r"] == 2
    assert stats["top1_in_session"] == pytest.approx(0.5)
    assert stats["hit_at_r"] == pytest.approx(0.75)
    assert stats["mean_top1_similarity"] == pytest.approx((0.9 + 0.7 + 0.5 + 0.3) / 4)
    assert list(stats["by_split"]) == ["valid", "test"]
    valid, test = stats["by_split"]["valid"], stats["by_split"]["test"]
    assert valid == {"samples": 2, "answered": 2, "empty_answers": 0, "empty_share": 0.0,
                     "r": 2, "top1_in_session": 0.5, "hit_at_r": 1.0,
                     "mean_top1_similarity": pytest.approx(0.6)}
    assert test["top1_in_session"] == 0.5 and test["hit_at_r"] == 0.5
    assert test["mean_top1_similarity"] == pytest.approx(0.6)
    plain = grounding_stats(ids, sessions, targets)
    assert plain["mean_top1_similarity"] is None and "by_split" not in plain
    empty_r = grounding_stats(np.zeros((4, 0), dtype=np.int64), sessions, targets)
    assert empty_r["hit_at_r"] == 0.0 and empty_r["top1_in_session"] is None
    with pytest.raises(LocalizationError, match="sessions"):
        grounding_stats(ids, sessions[:3], targets)


def test_grounding_stats_count_answered_samples_only():
    """An empty answer's "localized" items are placeholders (the first r candidates,
    similarity 0): they must not count as grounded, as a hit or as a similarity."""
    ids = np.array([[3, 9], [1, 2], [5, 1], [1, 2]])
    scores = np.array([[0.9, 0.5], [0.0, 0.0], [0.5, 0.4], [0.0, 0.0]], dtype=np.float32)
    sessions = [[1, 3], [1], [5, 6, 7], [2]]
    targets = np.array([9, 2, 8, 1])  # the empty answers' placeholders "hit" their targets
    answered = np.array([True, False, True, False])
    stats = grounding_stats(ids, sessions, targets, scores=scores,
                            splits=["test", "test", "train", "train"], answered=answered)
    assert (stats["samples"], stats["answered"], stats["empty_answers"]) == (4, 2, 2)
    assert stats["empty_share"] == 0.5
    assert stats["top1_in_session"] == 1.0  # not 0.75: sample 1's item 1 is a placeholder
    assert stats["hit_at_r"] == 0.5  # not 0.75
    assert stats["mean_top1_similarity"] == pytest.approx((0.9 + 0.5) / 2)
    test, train = stats["by_split"]["test"], stats["by_split"]["train"]
    assert (test["samples"], test["answered"], test["empty_answers"]) == (2, 1, 1)
    assert test["hit_at_r"] == 1.0 and train["hit_at_r"] == 0.0
    none = grounding_stats(ids, sessions, targets, scores=scores, answered=np.zeros(4, bool))
    assert none["answered"] == 0 and none["empty_share"] == 1.0
    assert none["hit_at_r"] is None and none["top1_in_session"] is None
    assert none["mean_top1_similarity"] is None
    with pytest.raises(LocalizationError, match="answered must be a boolean mask"):
        grounding_stats(ids, sessions, targets, answered=np.ones(3, bool))


def test_write_localized_round_trip(tmp_path: Path):
    rng = np.random.default_rng(3)
    h = rng.standard_normal((4, 6)).astype(np.float32)
    ids = np.array([[1, 2], [3, 4], [5, 6], [7, 8]])
    scores = rng.random((4, 2)).astype(np.float32)
    sample_ids = np.array([10, 11, 12, 13])
    npy, parquet = tmp_path / "out" / "short.npy", tmp_path / "out" / "short.topr.parquet"
    write_localized(npy, parquet, h, ids, scores, sample_ids)
    assert sorted(p.name for p in npy.parent.iterdir()) == ["short.npy", "short.topr.parquet"]
    loaded = np.load(npy)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, h)
    table = pq.read_table(parquet)
    assert table.schema.field("sample_id").type == pa.int64()
    assert table.schema.field("item_ids").type == pa.list_(pa.int64())
    assert table.schema.field("scores").type == pa.list_(pa.float32())
    assert table["sample_id"].to_pylist() == [10, 11, 12, 13]
    assert table["item_ids"].to_pylist() == ids.tolist()
    np.testing.assert_array_equal(np.array(table["scores"].to_pylist(), dtype=np.float32),
                                  scores)
    # r = 0: empty lists; a failing write leaves nothing behind.
    write_localized(npy, parquet, h, ids[:, :0], scores[:, :0], sample_ids)
    assert pq.read_table(parquet)["item_ids"].to_pylist() == [[]] * 4
    with pytest.raises(LocalizationError, match="inconsistent shapes"):
        write_localized(tmp_path / "x.npy", tmp_path / "x.parquet", h, ids[:3], scores,
                        sample_ids)
    assert not (tmp_path / "x.npy").exists()
    assert sorted(p.name for p in npy.parent.iterdir()) == ["short.npy", "short.topr.parquet"]


def test_write_localized_failure_leaves_no_files(tmp_path: Path, monkeypatch):
    def broken(self, destination, table):
        self.temp_path(destination)
        raise OSError("disk full")

    monkeypatch.setattr(io_module.AtomicFiles, "write_parquet", broken)
    h = np.zeros((2, 3), dtype=np.float32)
    ids = np.array([[1], [2]])
    with pytest.raises(OSError, match="disk full"):
        write_localized(tmp_path / "v.npy", tmp_path / "v.parquet", h, ids,
                        np.ones((2, 1), dtype=np.float32), np.array([0, 1]))
    assert list(tmp_path.iterdir()) == []


def stage_inputs(root: Path) -> dict:
    """The localize_intents inputs under names and folders of their own: the stage reads
    the paths it is given, not names it derives."""
    rng = np.random.default_rng(11)
    items = pd.DataFrame({"item_id": np.arange(1, 7), "text": ["Heat", "Casino", "",
                                                                 "Se7en", "Fargo", "Up"]})
    item_vectors = rng.standard_normal((7, 4)).astype(np.float32)
    item_vectors[0] = 0.0
    item_vectors[3] = 0.0  # item 3 has no text
    splits = {"train": ([2, 0], [[1, 2], [4]], [4, 5]), "valid": ([1], [[5, 6]], [1]),
              "test": ([4, 3], [[1, 4, 5], [2]], [6, 1])}
    paths = {}
    for split, (ids, sessions, targets) in splits.items():
        paths[split] = root / "splits" / f"{split}-samples.parquet"
        paths[split].parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"sample_id": ids, "items": sessions, "target": targets}).to_parquet(
            paths[split])
    answer_vectors = rng.standard_normal((5, 4)).astype(np.float32)
    answer_vectors[2] = 0.0  # an empty answer
    (root / "vec").mkdir()
    np.save(root / "vec" / "catalogue.npy", item_vectors)
    np.save(root / "vec" / "answers-short.npy", answer_vectors)
    items.to_parquet(root / "catalogue.parquet")
    pd.DataFrame({"answer": [f"answer {i}" for i in range(5)],
                  "flag": ["ok", "ok", "empty", "ok", "ok"]}).to_parquet(
        root / "answers-short.parquet")
    return {"samples": paths, "item_table": root / "catalogue.parquet",
            "item_vectors": root / "vec" / "catalogue.npy",
            "answer_vectors": root / "vec" / "answers-short.npy",
            "answers_table": root / "answers-short.parquet"}


def test_localize_files_reads_the_declared_paths(tmp_path: Path):
    inputs = stage_inputs(tmp_path)
    out = tmp_path / "out"
    grounding = localize_files(**inputs, r=2, backend="numpy", batch_size=2,
                               intents_path=out / "short.npy",
                               topr_path=out / "short.topr.parquet",
                               grounding_path=out / "short.grounding.json", threads=1,
                               examples=5)
    items = np.load(inputs["item_vectors"])
    answers = np.load(inputs["answer_vectors"])
    candidates = np.array([False, True, True, False, True, True, True])
    h, ids, scores = localize_intents(answers, items, 2, backend="numpy",
                                      candidates=candidates)
    np.testing.assert_array_equal(np.load(out / "short.npy"), h)
    topr = pq.read_table(out / "short.topr.parquet")
    assert topr["sample_id"].to_pylist() == [0, 1, 2, 3, 4]
    assert topr["item_ids"].to_pylist() == ids.tolist()
    assert 3 not in ids  # no text: never a localization target
    assert json.loads((out / "short.grounding.json").read_text()) == json.loads(
        json.dumps(grounding, default=float))
    assert grounding["r"] == 2 and grounding["zero_answers"] == 1
    assert (grounding["samples"], grounding["answered"], grounding["empty_answers"]) == (5, 4, 1)
    assert grounding["empty_share"] == pytest.approx(0.2)
    assert grounding["mean_top1_similarity"] == pytest.approx(
        np.delete(scores[:, 0], 2).astype(np.float64).mean())
    assert not np.load(out / "short.npy")[2].any()  # the empty answer's intent is zero
    assert {k: v["samples"] for k, v in grounding["by_split"].items()} == {
        "train": 2, "valid": 1, "test": 2}
    # test samples 3 and 4 (sample_id order); their answers are flagged ok
    assert [e["sample_id"] for e in grounding["examples"]] == [3, 4]
    assert grounding["examples"][0]["session"] == ["Casino"]
    assert grounding["examples"][1]["target"] == "Up"
    assert grounding["examples"][1]["answer"] == "answer 4"


def test_localize_files_errors_name_the_file(tmp_path: Path):
    inputs = stage_inputs(tmp_path)
    outputs = {"intents_path": tmp_path / "i.npy", "topr_path": tmp_path / "t.parquet",
               "grounding_path": tmp_path / "g.json"}
    np.save(inputs["item_vectors"], np.zeros((5, 4), dtype=np.float32))
    with pytest.raises(LocalizationError, match=r"catalogue\.npy: 5 rows, but .*"
                                                r"catalogue\.parquet has 6 items"):
        localize_files(**inputs, r=2, backend="numpy", batch_size=8, **outputs)
    with pytest.raises(LocalizationError, match="answers-short.npy: answers has 5 rows but "
                                                "3 samples"):
        localize_files(**{**inputs, "samples": {"test": inputs["samples"]["test"],
                                                "valid": inputs["samples"]["valid"]}},
                       r=2, backend="numpy", batch_size=8, **outputs)
    with pytest.raises(LocalizationError, match="no samples files"):
        localize_files(**{**inputs, "samples": {}}, r=2, backend="numpy", batch_size=8,
                       **outputs)
    assert not any(p.exists() for p in outputs.values())


def test_flagged_empty_answer_gets_a_zero_intent_and_is_not_counted(tmp_path: Path):
    """An answer flagged empty/echo (no item name) whose vector is not zero — an encoder
    that embeds the empty string — is localized as a zero intent, never from that
    meaningless vector, and left out of the grounding shares."""
    inputs = stage_inputs(tmp_path)
    answers = pd.read_parquet(inputs["answers_table"])
    answers.loc[[0, 3], ["answer", "flag"]] = [["", "echo"], ["", "empty"]]
    answers.to_parquet(inputs["answers_table"])
    out = tmp_path / "out"
    for r in (0, 2):
        grounding = localize_files(**inputs, r=r, backend="numpy", batch_size=8,
                                   intents_path=out / "i.npy", topr_path=out / "t.parquet",
                                   grounding_path=out / "g.json")
        h = np.load(out / "i.npy")
        assert not h[[0, 2, 3]].any() and h[[1, 4]].all(axis=1).all()
        assert grounding["empty_answers"] == grounding["zero_answers"] == 3
    assert (grounding["samples"], grounding["answered"]) == (5, 2)
    assert grounding["by_split"]["test"]["empty_answers"] == 1  # sample 3
    assert [e["sample_id"] for e in grounding["examples"]] == [4]


def test_item_without_a_title_is_never_among_the_top_r(tmp_path: Path):
    """The data stage names a title-less item "item <raw id>" (for prompts) and sets its
    has_text False: however similar an answer is to that placeholder's embedding, the
    item is never a localization target. A table without has_text (built before it
    existed) keeps every item with a non-blank text a candidate."""
    inputs = stage_inputs(tmp_path)
    items = pd.read_parquet(inputs["item_table"])
    items["text"] = items["text"].replace("", "item c")  # item 3: the placeholder
    items["has_text"] = items["item_id"] != 3
    items.to_parquet(inputs["item_table"])
    vectors = np.load(inputs["item_vectors"])
    vectors[3] = np.random.default_rng(5).standard_normal(4)  # "item c" has an embedding
    np.save(inputs["item_vectors"], vectors)
    answers = np.load(inputs["answer_vectors"])
    answers[[0, 1, 3, 4]] = vectors[3] * np.array([[1.0], [2.0], [0.5], [3.0]])
    np.save(inputs["answer_vectors"], answers)
    out = tmp_path / "out"
    kwargs = dict(backend="numpy", batch_size=8, intents_path=out / "i.npy",
                  topr_path=out / "t.parquet", grounding_path=out / "g.json")
    for r in (1, 3, 5):  # 5 = every candidate (items 1, 2, 4, 5, 6)
        localize_files(**inputs, r=r, **kwargs)
        ids = np.array(pq.read_table(out / "t.parquet")["item_ids"].to_pylist())
        assert ids.shape == (5, r) and 3 not in ids
    with pytest.raises(LocalizationError, match="r=6 is larger than the number of "
                                                "candidate items \\(5\\)"):
        localize_files(**inputs, r=6, **kwargs)
    items.drop(columns="has_text").to_parquet(inputs["item_table"])  # an older table
    localize_files(**inputs, r=1, **kwargs)
    top1 = pq.read_table(out / "t.parquet")["item_ids"].to_pylist()
    assert [row[0] for row in top1] == [3, 3, 1, 3, 3]  # sample 2 is the empty answer
