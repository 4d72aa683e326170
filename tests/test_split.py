import numpy as np
import pytest

from llm4sbr_core.data.sessions import Sessions
from llm4sbr_core.data.split import make_samples, split_sessions
from llm4sbr_core.errors import ConfigError


def sessions_of(lists, ends=None):
    lengths = [len(x) for x in lists]
    n = len(lists)
    ends = np.arange(n, dtype=float) if ends is None else np.asarray(ends, dtype=float)
    return Sessions(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                    np.concatenate([np.asarray(x) for x in lists]).astype(np.int64),
                    ends - 1, ends, np.array([str(i) for i in range(n)], dtype=object))


def split(s, method="ordered", test=0.1, valid=0.1, seed=0, ts=True):
    return split_sessions(s, method, test, valid, seed, ts, "k")


def test_ordered_split_is_floor_of_ninety_percent():
    s = sessions_of([[1, 2]] * 22363)
    parts = split(s)
    n_train_all = len(parts["train"]) + len(parts["valid"])
    assert n_train_all == int(0.9 * 22363) == 20126
    assert len(parts["valid"]) == 20126 - 18113
    assert parts["train"].max() < parts["valid"].min() < parts["test"].min()


def test_fraction_rounding_does_not_lose_a_session():
    parts = split(sessions_of([[1, 2]] * 10), test=0.3, valid=0.0)
    assert len(parts["test"]) == 3 and len(parts["valid"]) == 0


def test_temporal_split_uses_last_click():
    s = sessions_of([[1, 2]] * 10, ends=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    parts = split(s, "temporal", test=0.2, valid=0.25)
    assert parts["test"].tolist() == [0, 1]
    assert parts["valid"].tolist() == [2, 3]
    with pytest.raises(ConfigError, match="needs timestamps"):
        split(s, "temporal", ts=False)


def test_random_split_is_seeded_and_disjoint():
    s = sessions_of([[1, 2]] * 100)
    a, b, c = split(s, "random", seed=1), split(s, "random", seed=1), split(s, "random", seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    together = np.concatenate(list(a.values()))
    assert sorted(together.tolist()) == list(range(100))


def test_empty_split_is_an_error():
    with pytest.raises(ConfigError, match="train split is empty"):
        split(sessions_of([[1, 2]]), test=0.1)


def test_prefix_samples():
    s = sessions_of([[5, 6, 7], [8, 9], [1, 2, 3, 4]])
    t = make_samples(s, np.array([0, 2]), "prefix", 100).to_pydict()
    assert t["items"] == [[5], [5, 6], [1], [1, 2], [1, 2, 3]]
    assert t["target"] == [6, 7, 2, 3, 4]
    assert t["session_id"] == [0, 0, 2, 2, 2]
    assert t["sample_id"] == [100, 101, 102, 103, 104]


def test_last_samples():
    s = sessions_of([[5, 6, 7], [8, 9]])
    t = make_samples(s, np.array([0, 1]), "last", 0).to_pydict()
    assert t["items"] == [[5, 6], [8]] and t["target"] == [7, 9]
