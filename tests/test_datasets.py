"""The paper's dataset statistics, rebuilt from the real files (../shared/data); the item
table's text flags on a fixture."""

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from conftest import FIXTURE_SETTINGS, REPO, make_settings, shared_data
from llm4sbr_core.config import dataset_settings, load_config
from llm4sbr_core.data.build import DataOutputs, build_dataset, prepare_dataset
from llm4sbr_core.errors import ConfigError

integration = pytest.mark.integration


def test_items_without_a_title_keep_the_placeholder_and_say_so(fixture_dir, tmp_path):
    """An item with an empty title (X3) or no row in the item file (X2 below) is shown as
    "item <raw id>" but has has_text False, so localization can leave it out."""
    folder = fixture_dir("csv")
    settings = make_settings(FIXTURE_SETTINGS["csv"], filter={"min_item_count": 1})
    _, items, stats = prepare_dataset(settings, folder.parent, "csv")
    by_raw = items.set_index("raw_id")
    assert by_raw.loc["X3", "text"] == "item X3" and not by_raw.loc["X3", "has_text"]
    assert by_raw.loc["X1", "text"] == "Shampoo, 250 ml" and by_raw.loc["X1", "has_text"]
    assert int((~items["has_text"]).sum()) == stats["items_without_text"] == 1
    (folder / "items.csv").write_text("item_id,title\nX1,Shampoo\nX3,Mask\n")
    outputs = DataOutputs.in_dir(tmp_path / "data")
    outputs.items.parent.mkdir()
    build_dataset(settings, folder.parent, outputs, "csv")
    written = pd.read_parquet(outputs.items)
    assert written["has_text"].dtype == bool
    assert dict(zip(written["raw_id"], written["has_text"], strict=True)) == {
        "X1": True, "X2": False, "X3": True}
    assert dict(zip(written["raw_id"], written["text"], strict=True))["X2"] == "item X2"


@pytest.fixture(scope="module")
def config():
    return load_config(REPO / "config.yaml", REPO / "configs" / "shared-data.yaml",
                       overrides={"raw_dir": str(shared_data())})


def build(config, name):
    return prepare_dataset(dataset_settings(config, name), config["raw_dir"], name)


def check_samples(tables, items, stats):
    sample_ids = np.concatenate([t["sample_id"].to_numpy() for t in tables.values()])
    assert sample_ids.tolist() == list(range(len(sample_ids)))
    sessions = [set(t["session_id"].to_numpy().tolist()) for t in tables.values()]
    assert not (sessions[0] & sessions[1] or sessions[0] & sessions[2] or sessions[1] & sessions[2])
    for t in tables.values():
        flat = pc.list_flatten(t["items"]).to_numpy()
        assert flat.min() >= 1 and flat.max() <= stats["items"]
        assert t["target"].to_numpy().min() >= 1
    assert items["item_id"].tolist() == list(range(1, stats["items"] + 1))
    assert int(items["count"].sum()) == stats["clicks"]


@integration
def test_beauty_reproduces_table2(config):
    tables, items, stats = build(config, "beauty")
    assert stats["train_samples"] + stats["valid_samples"] == 158_139
    assert stats["test_samples"] == 18_000
    assert stats["clicks"] == 198_502
    assert stats["items"] == 12_101
    assert round(stats["avg_len_input"], 4) == 8.6689
    assert stats["items_without_text"] == 7
    check_samples(tables, items, stats)
    # every prefix: the first training sample of a session has one input item
    train = tables["train"].slice(0, 3).to_pydict()
    assert [len(x) for x in train["items"]] == [1, 2, 3]


@integration
def test_ml1m_partial_gives_26266_sessions(config):
    tables, items, stats = build(config, "ml-1m")
    assert stats["sessions"] == 26_266
    assert stats["train_sessions"] + stats["valid_sessions"] == int(0.9 * 26_266)
    assert stats["test_samples"] == stats["test_sessions"]  # one sample per session
    assert stats["avg_len_input"] == pytest.approx(stats["avg_len_session"] - 1)
    assert "partial" in stats["note"]
    text = dict(zip(items["raw_id"], items["text"], strict=True))
    assert text["1"] == "Toy Story (1995) -- Animation|Children's|Comedy"
    check_samples(tables, items, stats)


@integration
def test_ml100k_gives_6107_sessions(config):
    tables, items, stats = build(config, "ml-100k")
    assert stats["sessions"] == 6_107
    assert (stats["clicks"], stats["items"]) == (87_991, 1_348)
    check_samples(tables, items, stats)


@integration
def test_subsample_is_seeded_and_keeps_whole_sessions(config):
    tables, items, stats = build(config, "ml-100k-quick")
    assert (stats["sessions"], stats["sessions_before_subsample"]) == (800, 6107)
    check_samples(tables, items, stats)
    again = build(config, "ml-100k-quick")[0]
    assert all(again[s].equals(tables[s]) for s in tables)
    full, full_items, _ = build(config, "ml-100k")
    raw_of = dict(zip(items["item_id"], items["raw_id"], strict=True))
    full_raw = dict(zip(full_items["item_id"], full_items["raw_id"], strict=True))
    sessions = {tuple(full_raw[i] for i in x + [t]) for split in full.values()
                for x, t in zip(split["items"].to_pylist(), split["target"].to_pylist(),
                                strict=True)}
    for split in tables.values():  # every sample is a whole session of the full dataset
        for x, t in zip(split["items"].to_pylist(), split["target"].to_pylist(), strict=True):
            assert tuple(raw_of[i] for i in x + [t]) in sessions
    other = dict(dataset_settings(config, "ml-100k-quick"), subsample={"sessions": 800,
                                                                       "seed": 1})
    assert not prepare_dataset(other, config["raw_dir"], "q")[0]["test"].equals(tables["test"])
    with pytest.raises(ConfigError, match="subsample.sessions.*7000 sessions asked for, but "
                                          "only 6107 remain"):
        prepare_dataset(dict(other, subsample={"sessions": 7000}), config["raw_dir"], "q")


@integration
def test_beauty_through_the_amazon_reader(config, tmp_path):
    """The Beauty copy rewritten in the official Amazon 2014 formats (reviews as JSON lines
    in user order, metadata as Python-literal dicts plus products nobody reviewed) gives
    the same sessions through the `amazon` reader."""
    import gzip
    import json as jsonlib

    import pandas as pd

    src = shared_data() / "beauty"
    inter = pd.read_csv(src / "interactions.csv")
    titles = pd.read_csv(src / "items.csv", keep_default_na=False)
    folder = tmp_path / "beauty"
    folder.mkdir()
    with gzip.open(folder / "reviews_Beauty_5.json.gz", "wt") as f:
        for row in inter.itertuples():
            f.write(jsonlib.dumps({"reviewerID": row.reviewer_id, "asin": row.item_id,
                                   "overall": 5.0,
                                   "unixReviewTime": 1_300_000_000 + 86_400 * row.position})
                    + "\n")
    with gzip.open(folder / "meta_Beauty.json.gz", "wt") as f:
        for row in titles.itertuples():
            meta = {"asin": row.item_id, "categories": [["Beauty"]]}
            if row.title:
                meta["title"] = row.title
            f.write(repr(meta) + "\n")
            f.write(repr({"asin": "Z" + row.item_id, "title": "unreviewed"}) + "\n")
    amazon = config["dataset_settings"]["beauty"] | {
        "format": "amazon", "time_kind": "timestamp", "text_template": "{title}",
        "files": {"interactions": "reviews_Beauty_5.json.gz", "items": "meta_Beauty.json.gz"},
        "sessionize": {"method": "user", "minutes": 10, "order": "first_seen"}}
    tables, items, stats = prepare_dataset(amazon, tmp_path, "beauty")
    assert (stats["train_samples"] + stats["valid_samples"], stats["test_samples"]) == (
        158_139, 18_000)
    assert (stats["clicks"], stats["items"], stats["items_without_text"]) == (198_502, 12_101, 7)
    _, csv_items, _ = build(config, "beauty")
    assert items["text"].tolist() == csv_items["text"].tolist()
