"""POP, SKNN, V-SKNN, STAN, V-STAN (llm4sbr_core.models.knn): hand-computed scores, a
naive per-session reference implementation, full ranking, tuning and the run outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from llm4sbr_core.errors import InvalidInputError, Llm4sbrError
from llm4sbr_core.metrics import metrics_from_ranks, target_ranks
from llm4sbr_core.models import knn
from llm4sbr_core.models.knn import (
    KnnIndex,
    QueryBatch,
    Samples,
    SessionArrays,
    knn_ranks,
    make_model,
    recency_weights,
    stan_item_weights,
    stan_position_weights,
    training_sessions,
    tune_knn,
    vsknn_match_decay,
    vsknn_position_weights,
)
from llm4sbr_core.train.knn_run import run_knn
from llm4sbr_core.train.outputs import RunOutputs

SQ6, SQ8 = math.sqrt(6), math.sqrt(8)


def index_of(sessions: list[list[int]], n_items: int) -> KnnIndex:
    return KnnIndex.build(SessionArrays.from_lists(sessions), n_items)


def scores_of(method: str, sessions: list[list[int]], prefixes: list[list[int]], n_items: int,
              **params) -> np.ndarray:
    model = make_model(method, index_of(sessions, n_items), **params)
    return model.scores(QueryBatch.build(SessionArrays.from_lists(prefixes), n_items))


# --------------------------------------------------------------------------- by hand

def test_pop_scores_are_training_clicks():
    scores = scores_of("pop", [[1, 2, 2], [2, 3]], [[1], [3, 1]], 4)
    assert scores.shape == (2, 5)
    np.testing.assert_array_equal(scores[:, 1:], [[1, 3, 1, 0]] * 2)


def test_sknn_cosine_neighbours_by_hand():
    train = [[1, 2, 3], [2, 4], [1, 2, 4, 5]]  # n0 (oldest), n1, n2
    # s = {2, 4}: sim(n0) = 1/√(2·3), sim(n1) = 2/√(2·2) = 1, sim(n2) = 2/√(2·4)
    s01, s1, s2 = 1 / SQ6, 1.0, 2 / SQ8
    got = scores_of("sknn", train, [[2, 4]], 5, k=2, sample_size=0)[0]
    np.testing.assert_allclose(got[1:], [s2, s1 + s2, 0, s1 + s2, s2])
    got = scores_of("sknn", train, [[2, 4]], 5, k=3, sample_size=0)[0]
    np.testing.assert_allclose(got[1:], [s2 + s01, s1 + s2 + s01, s01, s1 + s2, s2])
    # sampling keeps the most recent relevant sessions before computing similarities
    got = scores_of("sknn", train, [[2, 4]], 5, k=3, sample_size=1)[0]
    np.testing.assert_allclose(got[1:], [s2, s2, 0, s2, s2])
    # a repeated click does not change the item set
    np.testing.assert_allclose(scores_of("sknn", train, [[4, 2, 4]], 5, k=3)[0],
                               scores_of("sknn", train, [[2, 4]], 5, k=3)[0])


def test_sknn_ties_prefer_recent_neighbours():
    train = [[1, 2], [1, 3]]  # equal similarity to s = [1]
    got = scores_of("sknn", train, [[1]], 3, k=1)[0]
    np.testing.assert_allclose(got[1:], [1 / math.sqrt(2), 0, 1 / math.sqrt(2)])


def test_vsknn_weight_functions_by_hand():
    p = np.array([1, 2, 3, 4])
    np.testing.assert_allclose(vsknn_position_weights(p, 4, "same"), [1, 1, 1, 1])
    np.testing.assert_allclose(vsknn_position_weights(p, 4, "div"), [0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(vsknn_position_weights(p, 4, "linear"), [0.7, 0.8, 0.9, 1])
    np.testing.assert_allclose(vsknn_position_weights(np.array([1, 12]), 12, "linear"), [0, 1])
    np.testing.assert_allclose(vsknn_position_weights(p, 4, "quadratic"),
                               [1 / 16, 1 / 4, 9 / 16, 1])
    np.testing.assert_allclose(vsknn_position_weights(p, 4, "log"),
                               [1 / math.log10(d + 1.7) for d in (3, 2, 1, 0)])
    s = np.array([1, 2, 4, 20])
    np.testing.assert_allclose(vsknn_match_decay(s, "div"), [1, 0.5, 0.25, 0.05])
    np.testing.assert_allclose(vsknn_match_decay(s, "linear"), [0.9, 0.8, 0.6, 0])
    np.testing.assert_allclose(vsknn_match_decay(s, "quadratic"), [1, 0.25, 1 / 16, 1 / 400])
    np.testing.assert_allclose(vsknn_match_decay(s, "log"),
                               [1 / math.log10(x + 1.7) for x in (1, 2, 4, 20)])
    np.testing.assert_allclose(vsknn_match_decay(s, "same"), [1, 1, 1, 1])
    with pytest.raises(InvalidInputError):
        vsknn_position_weights(p, 4, "cubic")


def test_vsknn_scores_by_hand():
    # s = [1, 3, 2]: div weights w(1) = 1/3, w(3) = 2/3, w(2) = 1; |set(s)| = 3
    train = [[1, 2, 3], [2, 4], [1, 5], [3, 6]]
    sim = [(1 / 3 + 2 / 3 + 1) / 3, 1 / 3, (1 / 3) / 3, (2 / 3) / 3]
    # most recent shared click: n0, n1 → item 2 (step 1); n2 → item 1 (step 3); n3 → step 2
    pair = [sim[0] * 1, sim[1] * 1, sim[2] / 3, sim[3] / 2]
    got = scores_of("vsknn", train, [[1, 3, 2]], 6, k=4, sample_size=0)[0]
    expected = np.array([pair[0] + pair[2], pair[0] + pair[1], pair[0] + pair[3], pair[1],
                         pair[2], pair[3]])
    np.testing.assert_allclose(got[1:], expected)
    # idf = log(S / sessions containing the item), score × (1 + λ·idf)
    idf = np.log(4 / np.array([2, 2, 2, 1, 1, 1]))
    got = scores_of("vsknn", train, [[1, 3, 2]], 6, k=4, sample_size=0, idf_weighting=2)[0]
    np.testing.assert_allclose(got[1:], expected * (1 + 2 * idf))
    # remind=False: the session's own items 1, 2, 3 are not scored
    got = scores_of("vsknn", train, [[1, 3, 2]], 6, k=4, sample_size=0, remind=False)[0]
    np.testing.assert_allclose(got[1:], [0, 0, 0, *expected[3:]])
    # k = 2 keeps n0 and n1 (the two largest similarities)
    got = scores_of("vsknn", train, [[1, 3, 2]], 6, k=2, sample_size=0)[0]
    np.testing.assert_allclose(got[1:], [pair[0], pair[0] + pair[1], pair[0], pair[1], 0, 0])


STAN_TRAIN = [[2, 7, 1, 8], [1, 9], [3, 2, 5]]  # n0 (oldest), n1, n2


def stan_by_hand(l1, l2, l3, k=3, ipw=None, idf=None):
    """STAN scores of s = [1, 2] on STAN_TRAIN, written out from the paper's formulas;
    with ``ipw``/``idf`` (λ_ipw, λ_idf) the V-STAN scores."""
    def e(x):
        return math.exp(x)
    w1 = {1: e(-1 / l1) if l1 else 1.0, 2: 1.0}  # exp((p - L)/λ1), L = 2
    norm = math.sqrt(w1[1] ** 2 + w1[2] ** 2)
    rec = [e(-(3 - j) / (l2 * 3)) if l2 else 1.0 for j in range(3)]  # exp(-(S - j)/(λ2 S))
    sim = [(w1[1] + w1[2]) / (norm * 2) * rec[0], w1[1] / (norm * math.sqrt(2)) * rec[1],
           w1[2] / (norm * math.sqrt(3)) * rec[2]]

    def inh(d):
        return e(-d / l3) if l3 else 1.0
    # n0 = [2, 7, 1, 8]: last shared click p* = 3 (item 1); n1: p* = 1; n2 = [3, 2, 5]: p* = 2
    contrib = [{2: inh(2), 7: inh(1), 1: inh(0), 8: inh(1)}, {1: inh(0), 9: inh(1)},
               {3: inh(1), 2: inh(0), 5: inh(1)}]
    # V-STAN: the latest click of s shared with n0 is item 2 (p = 2 = L), with n1 item 1
    # (p = 1), with n2 item 2: exp((p - L)/λ_ipw)
    match = [1.0, e((1 - 2) / ipw) if ipw else 1.0, 1.0]
    # idf = log(S / sessions containing the item)
    df = {1: 2, 2: 2, 3: 1, 5: 1, 7: 1, 8: 1, 9: 1}
    keep = sorted(range(3), key=lambda j: (-sim[j], -j))[:k]
    out = np.zeros(10)
    for j in keep:
        for item, w in contrib[j].items():
            factor = 1 + idf * math.log(3 / df[item]) if idf else 1.0
            out[item] += sim[j] * w * match[j] * factor
    return out


@pytest.mark.parametrize("l1,l2,l3", [(1.0, 1.0, 1.0), (None, 1.0, 1.0), (1.0, None, 1.0),
                                      (1.0, 1.0, None), (0.5, 0.25, 2.0), (None, None, None)])
def test_stan_three_decays_by_hand(l1, l2, l3):
    got = scores_of("stan", STAN_TRAIN, [[1, 2]], 9, k=3, sample_size=0, lambda_spw=l1,
                    lambda_snh=l2, lambda_inh=l3)[0]
    np.testing.assert_allclose(got, stan_by_hand(l1, l2, l3))
    got = scores_of("stan", STAN_TRAIN, [[1, 2]], 9, k=1, sample_size=0, lambda_spw=l1,
                    lambda_snh=l2, lambda_inh=l3)[0]
    np.testing.assert_allclose(got, stan_by_hand(l1, l2, l3, k=1))
    got = scores_of("stan", STAN_TRAIN, [[1, 2]], 9, k=3, sample_size=0, lambda_spw=l1,
                    lambda_snh=l2, lambda_inh=l3, remind=False)[0]
    np.testing.assert_allclose(got, stan_by_hand(l1, l2, l3) * (np.arange(10) > 2))


def test_stan_decay_functions_by_hand():
    np.testing.assert_allclose(stan_position_weights(np.array([1, 2, 3]), 3, 2.0),
                               [math.exp(-1), math.exp(-0.5), 1])
    np.testing.assert_allclose(recency_weights(4, 0.5), [math.exp(-(4 - j) / 2) for j in range(4)])
    np.testing.assert_allclose(stan_item_weights(np.array([1, 4, 6]), 4, 3.0),
                               [math.exp(-1), 1, math.exp(-2 / 3)])
    assert (recency_weights(3, None) == 1).all()


@pytest.mark.parametrize("ipw,idf,k", [(0.5, None, 3), (0.5, 3.0, 3), (None, 2.0, 2),
                                        (2.0, 1.0, 1)])
def test_vstan_adds_match_decay_and_idf_by_hand(ipw, idf, k):
    got = scores_of("vstan", STAN_TRAIN, [[1, 2]], 9, k=k, sample_size=0, lambda_spw=1.0,
                    lambda_snh=1.0, lambda_inh=1.0, lambda_ipw=ipw, lambda_idf=idf)[0]
    np.testing.assert_allclose(got, stan_by_hand(1.0, 1.0, 1.0, k=k, ipw=ipw, idf=idf))


# --------------------------------------------------------------------------- naive reference

def naive_scores(method: str, sessions: list[list[int]], prefix: list[int], n_items: int,
                 **params) -> np.ndarray:
    """One session at a time with sets and dicts, as the reference code iterates."""
    p = {**knn.default_params(method), **params}
    out = np.zeros(n_items + 1)
    if method == "pop":
        for s in sessions:
            for i in s:
                out[i] += 1
        return out
    S, L = len(sessions), len(prefix)
    sets = [set(s) for s in sessions]
    last = {}
    for pos, i in enumerate(prefix, 1):
        last[i] = pos
    items = sorted(last)
    relevant = [j for j in range(S) if sets[j] & set(last)]
    if p["sample_size"] and len(relevant) > p["sample_size"]:
        relevant = relevant[-p["sample_size"]:]  # sessions are oldest first
    df = np.zeros(n_items + 1)
    for s in sets:
        for i in s:
            df[i] += 1
    idf = np.where(df > 0, np.log(S / np.maximum(df, 1)), 0.0)
    pos_arr = np.array([last[i] for i in items])
    if method in ("stan", "vstan"):
        w = dict(zip(items, stan_position_weights(pos_arr, L, p["lambda_spw"]), strict=True))
        norm = math.sqrt(sum(w[i] * w[i] for i in items))
        rec = recency_weights(S, p["lambda_snh"])
    elif method == "vsknn":
        w = dict(zip(items, vsknn_position_weights(pos_arr, L, p["weighting"]), strict=True))
    sims = {}
    for j in relevant:
        inter = sorted(sets[j] & set(last))
        if method == "sknn":
            sims[j] = float(len(inter)) / np.sqrt(float(len(items)) * float(len(sets[j])))
        elif method == "vsknn":
            sims[j] = sum(w[i] for i in inter) / float(len(items))
        else:
            sims[j] = sum(w[i] for i in inter) / (norm * np.sqrt(float(len(sets[j])))) * rec[j]
    ranked = sorted((j for j in sims if sims[j] > 0), key=lambda j: (-sims[j], -j))
    remind = p.get("remind", True)
    for j in sorted(ranked[:p["k"]]):
        sim = sims[j]
        if method == "sknn":
            for i in sets[j]:
                out[i] += sim
        elif method == "vsknn":
            step = 1
            for x in reversed(prefix):
                if x in sets[j]:
                    break
                step += 1
            decay = float(vsknn_match_decay(np.array([step]), p["weighting_score"])[0])
            for i in sets[j]:
                if not remind and i in last:
                    continue
                new = sim
                if p["idf_weighting"]:
                    new = new + new * idf[i] * p["idf_weighting"]
                out[i] += new * decay
        else:
            seq = sessions[j]
            pos_last, p_star = {}, None
            for q, i in enumerate(seq, 1):
                if i in last:
                    p_star = q
                pos_last[i] = q
            ipw = 1.0
            if method == "vstan" and p["lambda_ipw"]:
                latest = max(q for q, x in enumerate(prefix, 1) if x in sets[j])
                ipw = float(stan_position_weights(np.array([latest]), L, p["lambda_ipw"])[0])
            for i in sets[j]:
                if not remind and i in last:
                    continue
                new = sim * float(stan_item_weights(np.array([pos_last[i]]), p_star,
                                                    p["lambda_inh"])[0])
                if method == "vstan" and p["lambda_idf"]:
                    new = new + new * idf[i] * p["lambda_idf"]
                out[i] += new * ipw
    return out


def random_sessions(rng, n, n_items, max_len=8, skew=True):
    probs = 1.0 / np.arange(1, n_items + 1) if skew else np.ones(n_items)
    probs /= probs.sum()
    return [rng.choice(np.arange(1, n_items + 1), size=int(rng.integers(1, max_len)),
                       p=probs).tolist() for _ in range(n)]


SETTINGS = [
    ("pop", {}),
    ("sknn", {"k": 3, "sample_size": 0}),
    ("sknn", {"k": 5, "sample_size": 7}),
    ("sknn", {"k": 100, "sample_size": 500}),
    ("vsknn", {"k": 4, "sample_size": 10}),
    ("vsknn", {"k": 6, "sample_size": 0, "weighting": "linear", "weighting_score": "log",
               "idf_weighting": 2}),
    ("vsknn", {"k": 3, "sample_size": 5, "weighting": "quadratic",
               "weighting_score": "quadratic", "idf_weighting": 1}),
    ("vsknn", {"k": 5, "sample_size": 0, "weighting": "log", "weighting_score": "linear",
               "remind": False}),
    ("vsknn", {"k": 5, "sample_size": 0, "weighting": "same", "weighting_score": "same"}),
    ("stan", {"k": 4, "sample_size": 8}),
    ("stan", {"k": 6, "sample_size": 0, "remind": False}),
    ("stan", {"k": 10, "sample_size": 0, "lambda_spw": 0.5, "lambda_snh": 0.3,
              "lambda_inh": 3.0}),
    ("stan", {"k": 3, "sample_size": 0, "lambda_spw": None, "lambda_snh": None,
              "lambda_inh": None}),
    ("vstan", {"k": 4, "sample_size": 8}),
    ("vstan", {"k": 7, "sample_size": 0, "lambda_spw": 2.0, "lambda_snh": None,
               "lambda_inh": 1.0, "lambda_ipw": 0.7, "lambda_idf": None}),
    ("vstan", {"k": 5, "sample_size": 6, "lambda_idf": 2.0, "remind": False}),
]


@pytest.mark.parametrize("method,params", SETTINGS)
def test_sparse_equals_naive_reference(method, params):
    rng = np.random.default_rng(hash((method, str(sorted(params.items())))) % 2**32)
    n_items = 25
    train = random_sessions(rng, 40, n_items)
    prefixes = random_sessions(rng, 30, n_items) + [[n_items]]  # item in no training session
    got = scores_of(method, train, prefixes, n_items, **params)
    for row, prefix in enumerate(prefixes):
        np.testing.assert_allclose(got[row], naive_scores(method, train, prefix, n_items,
                                                          **params),
                                   rtol=1e-10, atol=1e-14, err_msg=f"{method} {prefix}")


@pytest.mark.parametrize("method", sorted(knn.METHODS))
def test_ranks_are_target_ranks_of_the_dense_scores(method):
    rng = np.random.default_rng(7)
    n_items = 30
    train = random_sessions(rng, 50, n_items)
    seqs = random_sessions(rng, 40, n_items)
    samples = Samples.from_lists([s for s in seqs], rng.integers(1, n_items + 1, 40).tolist())
    index = index_of(train, n_items)
    model = make_model(method, index)
    scores = model.scores(QueryBatch.build(samples.prefixes, n_items))
    expected = target_ranks(torch.from_numpy(np.ascontiguousarray(scores)),
                            torch.from_numpy(samples.targets)).numpy()
    for batch_size in (None, 7):
        got = knn_ranks(method, index, samples, n_items, batch_size=batch_size)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected)
    # an unscored target ties with every unscored item: rank N
    unscored = scores[np.arange(40), samples.targets] == 0
    assert (expected[unscored] == n_items).all()


def test_ranks_from_training_samples_equal_ranks_from_sessions():
    rng = np.random.default_rng(3)
    n_items = 20
    train = [s for s in random_sessions(rng, 30, n_items) if len(s) >= 2]
    samples = Samples.from_lists([s[:k] for s in train for k in range(1, len(s))],
                                 [s[k] for s in train for k in range(1, len(s))],
                                 [j for j, s in enumerate(train) for _ in range(1, len(s))])
    assert training_sessions(samples).to_lists() == train
    test = Samples.from_lists([[1, 2], [3]], [4, 5])
    np.testing.assert_array_equal(knn_ranks("sknn", samples, test, n_items),
                                  knn_ranks("sknn", SessionArrays.from_lists(train), test,
                                            n_items))


def test_training_sessions_rebuilds_and_checks():
    samples = Samples.from_lists([[5], [5, 6], [7, 8, 9], [5, 6, 7]], [6, 7, 1, 2],
                                 session_ids=[3, 3, 1, 3])
    assert training_sessions(samples).to_lists() == [[7, 8, 9, 1], [5, 6, 7, 2]]
    broken = Samples.from_lists([[5], [4, 6]], [6, 7], session_ids=[0, 0])
    with pytest.raises(InvalidInputError, match="prefixes"):
        training_sessions(broken)
    wrong_target = Samples.from_lists([[5], [5, 6]], [9, 7], session_ids=[0, 0])
    with pytest.raises(InvalidInputError):
        training_sessions(wrong_target)


def test_invalid_inputs_raise_package_errors():
    index = index_of([[1, 2]], 3)
    for bad in ({"k": 0}, {"sample_size": -1}, {"lambda_spw": 0}, {"nope": 1},
                {"lambda_spw": 1.0, "remind": "no"}):
        method = "stan" if "lambda_spw" in bad else "sknn"
        with pytest.raises(Llm4sbrError):
            make_model(method, index, **bad)
    with pytest.raises(InvalidInputError, match="unknown kNN method"):
        make_model("gru", index)
    with pytest.raises(InvalidInputError, match="1..3"):
        knn_ranks("sknn", index, Samples.from_lists([[4]], [1]), 3)
    with pytest.raises(InvalidInputError, match="1..3"):
        index_of([[0, 1]], 3)


# --------------------------------------------------------------------------- tuning

def split_samples(rng, n_sessions, n_items, first_session=0):
    seqs = [s for s in random_sessions(rng, n_sessions, n_items, max_len=9) if len(s) >= 2]
    return Samples.from_lists([s[:k] for s in seqs for k in range(1, len(s))],
                              [s[k] for s in seqs for k in range(1, len(s))],
                              [first_session + j for j, s in enumerate(seqs)
                               for _ in range(1, len(s))])


def test_tuning_picks_the_validation_best_and_tests_once(monkeypatch):
    rng = np.random.default_rng(11)
    n_items = 40
    train = split_samples(rng, 120, n_items)
    valid = split_samples(rng, 30, n_items, 1000)
    test = split_samples(rng, 30, n_items, 2000)
    grid = {"k": [1, 3, 20], "sample_size": [0, 5]}
    seen = []
    real = knn.model_ranks

    def spy(model, samples, batch_size=None):
        seen.append(("test" if samples is test else "valid" if samples is valid else "?",
                     model.params()))
        return real(model, samples, batch_size)

    monkeypatch.setattr(knn, "model_ranks", spy)
    result = tune_knn("sknn", train, valid, test, n_items, grid=grid)
    expected = [metrics_from_ranks(real(make_model("sknn", KnnIndex.from_samples(train, n_items),
                                                   **p), valid))["MRR@20"]
                for p in knn.grid_points(grid)]
    best = int(np.argmax(expected))  # the first of equal maxima
    assert result.best_params == knn.grid_points(grid)[best]
    assert [g["valid"]["MRR@20"] for g in result.grid] == expected
    assert [s for s, _ in seen] == ["valid"] * 6 + ["test"]
    assert seen[-1][1] == result.best_params
    np.testing.assert_array_equal(
        result.test_ranks, real(make_model("sknn", KnnIndex.from_samples(train, n_items),
                                           **result.best_params), test))
    assert result.test == metrics_from_ranks(result.test_ranks)
    # other test targets change nothing about the choice
    shuffled = Samples(test.prefixes, rng.permutation(test.targets), test.sample_ids,
                       test.session_ids)
    monkeypatch.setattr(knn, "model_ranks", real)
    again = tune_knn("sknn", train, valid, shuffled, n_items, grid=grid)
    assert again.best_params == result.best_params and again.valid == result.valid
    # without a test split, nothing is tested
    assert tune_knn("sknn", train, valid, None, n_items, grid={"k": [3]}).test is None


def test_default_grids_are_small_and_valid():
    index = index_of([[1, 2, 3], [2, 3]], 3)
    for method in knn.METHODS:
        points = knn.grid_points(knn.default_grid(method, index))
        assert 1 <= len(points) <= 32
        for p in points:
            make_model(method, index, **p)


# --------------------------------------------------------------------------- run outputs

def write_split(path, samples: Samples) -> None:
    pq.write_table(pa.table({
        "sample_id": pa.array(samples.sample_ids, pa.int64()),
        "session_id": pa.array(samples.session_ids, pa.int64()),
        "items": pa.array(samples.prefixes.to_lists(), pa.list_(pa.int64())),
        "target": pa.array(samples.targets, pa.int64())}), path)


def test_run_knn_writes_the_run_contract(tmp_path):
    rng = np.random.default_rng(5)
    n_items = 30
    data = tmp_path / "data"
    data.mkdir()
    splits = {"train": split_samples(rng, 80, n_items),
              "valid": split_samples(rng, 20, n_items, 500),
              "test": split_samples(rng, 20, n_items, 900)}
    offset = 0
    for name, s in splits.items():
        s = Samples(s.prefixes, s.targets, s.sample_ids + offset, s.session_ids)
        offset += len(s)
        splits[name] = s
        write_split(data / f"{name}.parquet", s)
    pq.write_table(pa.table({"item_id": pa.array(np.arange(1, n_items + 1), pa.int64())}),
                   data / "items.parquet")
    out = tmp_path / "run"
    metrics = run_knn(*(data / f"{n}.parquet" for n in ("train", "valid", "test", "items")),
                      RunOutputs.in_dir(out, model=False), "vsknn", grid={"k": [5, 50]},
                      config={"dataset": "toy"})
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert {"valid", "test", "config", "best_params", "grid", "runtime", "history",
            "best_epoch", "data"} <= set(saved)
    assert saved["config"]["backbone"] == "vsknn" and saved["config"]["dataset"] == "toy"
    assert saved["best_params"]["k"] in (5, 50) and len(saved["grid"]) == 2
    ranks = pq.read_table(out / "ranks.parquet")
    assert ranks.column_names == ["sample_id", "session_id", "rank"]
    assert all(t == pa.int64() for t in ranks.schema.types)
    test = splits["test"]
    np.testing.assert_array_equal(ranks["sample_id"].to_numpy(), test.sample_ids)
    expected = knn_ranks("vsknn", splits["train"], test, n_items, **saved["best_params"])
    np.testing.assert_array_equal(ranks["rank"].to_numpy(), expected)
    assert saved["test"] == pytest.approx(metrics_from_ranks(expected))
    assert not list(out.glob(".*.tmp"))


def test_speed_benchmark_runs_on_tiny_synthetic_data():
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(repo / "benchmarks" / "knn_speed.py"), "--synthetic", "--items",
         "300", "--train-sessions", "200", "--test-prefixes", "150", "--topics", "20",
         "--threads", "1", "--tune", "--methods", "pop", "sknn", "stan"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert sum(line.startswith(("| pop ", "| sknn ", "| stan ")) for line in rows) == 6


def test_the_config_lists_the_methods_the_module_has():
    from llm4sbr_core.config import load_schema
    from llm4sbr_core.variants import KNN_METHODS

    enum = load_schema()["properties"]["train"]["properties"]["knn"]["items"]["enum"]
    assert tuple(enum) == KNN_METHODS == tuple(knn.METHODS)
