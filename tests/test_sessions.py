import numpy as np
import pandas as pd
import pytest

from llm4sbr_core.data.raw import RawData
from llm4sbr_core.data.sessions import filter_sessions, reindex_items, sessionize
from llm4sbr_core.errors import ConfigError, EmptyDatasetError


def raw(rows, time_kind="timestamp"):
    """rows: (user, item, time) in file order."""
    users, items, times = zip(*rows, strict=True)
    df = pd.DataFrame({"user": list(map(str, users)), "item": list(map(str, items)),
                       "time": np.asarray(times, dtype=float),
                       "line": np.arange(2, len(rows) + 2)})
    return RawData(df, {}, time_kind, ["f"])


def as_lists(sessions):
    bounds = zip(sessions.offsets[:-1], sessions.offsets[1:], strict=True)
    return [list(sessions.items[a:b]) for a, b in bounds]


def test_user_sessions_sorted_by_time_ties_in_file_order():
    r = raw([(1, "b", 5), (1, "a", 1), (1, "c", 5), (2, "x", 0)])
    s = sessionize(r, "user", 10, "key", "k")
    assert as_lists(s) == [["a", "b", "c"], ["x"]]


def test_integer_user_ids_sort_numerically():
    r = raw([(10, "a", 0), (9, "b", 0), (100, "c", 0)])
    assert list(sessionize(r, "user", 10, "key", "k").user) == ["9", "10", "100"]
    r = raw([("u10", "a", 0), ("u9", "b", 0)])
    assert list(sessionize(r, "user", 10, "key", "k").user) == ["u10", "u9"]  # as strings


def test_first_seen_and_start_time_orders():
    r = raw([(2, "a", 50), (1, "b", 10), (2, "c", 51)])
    assert list(sessionize(r, "user", 10, "first_seen", "k").user) == ["2", "1"]
    assert list(sessionize(r, "user", 10, "start_time", "k").user) == ["1", "2"]
    s = sessionize(r, "user", 10, "start_time", "k")
    assert as_lists(s) == [["b"], ["a", "c"]]


def test_time_buckets_are_fixed_clock_windows():
    # 599 and 600 fall in different 10-minute buckets even though they are 1 s apart;
    # 600 and 1199 share one although 599 s apart.
    r = raw([(1, "a", 599), (1, "b", 600), (1, "c", 1199), (1, "d", 1200)])
    s = sessionize(r, "time_bucket", 10, "key", "k")
    assert as_lists(s) == [["a"], ["b", "c"], ["d"]]
    np.testing.assert_array_equal(s.start, [599, 600, 1200])


def test_time_gap_splits_only_on_longer_inactivity():
    r = raw([(1, "a", 0), (1, "b", 600), (1, "c", 1201), (2, "d", 1202)])
    s = sessionize(r, "time_gap", 10, "key", "k")
    assert as_lists(s) == [["a", "b"], ["c"], ["d"]]  # a gap of exactly 600 s continues


def test_time_sessionization_needs_timestamps():
    with pytest.raises(ConfigError, match="needs timestamps"):
        sessionize(raw([(1, "a", 0)], "position"), "time_gap", 10, "key", "k")


def test_filter_drop_session_counts_over_all_sessions():
    # item z appears 2x in all (once in a length-1 session); min count 2 keeps it.
    r = raw([(1, "x", 0), (1, "z", 1), (2, "z", 0), (3, "x", 0), (3, "y", 1), (4, "x", 0),
             (4, "x", 1)])
    s = sessionize(r, "user", 10, "key", "k")
    kept, rep = filter_sessions(s, 2, 2, "drop_session")
    assert as_lists(kept) == [["x", "z"], ["x", "x"]]  # y is rare → session 3 dropped
    assert rep.sessions_too_short == 1
    assert (rep.sessions_with_rare_items, rep.rare_items_removed) == (1, 1)


def test_filter_drop_item_removes_rare_clicks_first():
    r = raw([(1, "x", 0), (1, "y", 1), (1, "x", 2), (2, "y2", 0), (2, "x", 1)])
    s = sessionize(r, "user", 10, "key", "k")
    kept, rep = filter_sessions(s, 2, 2, "drop_item")
    assert as_lists(kept) == [["x", "x"]]  # session 2 became length 1
    assert rep.sessions_with_rare_items == 1


def test_empty_after_filtering_is_an_error():
    s = sessionize(raw([(1, "a", 0), (2, "b", 0)]), "user", 10, "key", "k")
    with pytest.raises(EmptyDatasetError, match="2 shorter than 2"):
        filter_sessions(s, 2, 1, "drop_session")
    with pytest.raises(EmptyDatasetError, match=r"\(see 'dataset_settings\.d\.filter'\)"):
        filter_sessions(s, 2, 1, "drop_session", "dataset_settings.d")


def test_reindex_in_order_of_first_appearance():
    s = sessionize(raw([(1, "q", 0), (1, "p", 1), (2, "p", 0), (2, "r", 1)]), "user", 10,
                   "key", "k")
    s2, raw_ids = reindex_items(s)
    assert as_lists(s2) == [[1, 2], [2, 3]]
    assert list(raw_ids) == ["q", "p", "r"]
