"""Multi-view prompts: the paper's Fig. 2 layout, truncation, hashes and config checks."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from conftest import REPO
from llm4sbr_core.config import load_config, load_schema, validate_config
from llm4sbr_core.errors import ConfigError
from llm4sbr_core.prompts import PromptSettings, build_prompts, item_names, prompt_hash


def default_settings(**changes) -> PromptSettings:
    block = copy.deepcopy(load_schema()["properties"]["prompts"]["properties"])
    values = {k: v["default"] for k, v in block.items()}
    values.update(changes)
    return PromptSettings.from_config(values)


ITEMS = pd.DataFrame({"item_id": [1, 2, 3, 4], "raw_id": ["a", "b", "c", "d"],
                      "text": ["Heat (1995)", "Toy  Story\n(1995)", "", "x" * 50]})


def samples(*sessions_by_split):
    out, sid = {}, 0
    for split, sessions in zip(("train", "valid", "test"), sessions_by_split, strict=True):
        rows = []
        for items in sessions:
            rows.append({"sample_id": sid, "session_id": sid, "items": items[:-1],
                         "target": items[-1]})
            sid += 1
        out[split] = pd.DataFrame(rows, columns=["sample_id", "session_id", "items", "target"])
    return out


def test_prompt_lists_items_in_order_with_number_name_and_id():
    df = build_prompts(samples([[1, 2, 4]], [], []), ITEMS, default_settings(), "short")
    prompt = df["prompt"].iloc[0]
    assert prompt.splitlines()[1:3] == ["1. Heat (1995)_1", "2. Toy Story (1995)_2"]
    assert "in the short term" in prompt and "Output only the item name" in prompt
    normal = build_prompts(samples([[1, 2, 4]], [], []), ITEMS, default_settings(), "normal")
    assert "in the short term" not in normal["prompt"].iloc[0]
    assert "interests the user. Output only" in normal["prompt"].iloc[0]


def test_one_row_per_sample_in_sample_id_order_across_splits():
    df = build_prompts(samples([[1, 2], [2, 1]], [[1, 3]], [[4, 1, 2], [1, 2]]), ITEMS,
                       default_settings(), "long")
    assert df["sample_id"].tolist() == [0, 1, 2, 3, 4]
    assert df["split"].tolist() == ["train", "train", "valid", "test", "test"]
    # samples 0 and 4 have the same input (item 1): one prompt text, one hash
    assert df["prompt_hash"].iloc[0] == df["prompt_hash"].iloc[4]
    assert df["prompt_hash"].iloc[0] != df["prompt_hash"].iloc[1]
    assert df["prompt_hash"].iloc[0] == prompt_hash(df["prompt"].iloc[0])


def test_long_sessions_keep_the_last_items_and_long_names_are_cut():
    settings = default_settings(max_items=2, max_name_chars=20)
    df = build_prompts(samples([[1, 2, 4, 1, 3]], [], []), ITEMS, settings, "short")
    lines = df["prompt"].iloc[0].splitlines()
    assert lines[1] == "1. " + "x" * 20 + "…_4" and lines[2] == "2. Heat (1995)_1"
    assert "Toy Story" not in df["prompt"].iloc[0]


def test_item_without_text_is_named_by_its_raw_id():
    assert item_names(ITEMS, 120)[3] == ("item c", "c")


def test_custom_item_format_and_unknown_view():
    settings = default_settings(item_format="- {name} [{raw_id}]")
    df = build_prompts(samples([[1, 2]], [], []), ITEMS, settings, "short")
    assert df["prompt"].iloc[0].splitlines()[1] == "- Heat (1995) [a]"
    with pytest.raises(ConfigError, match="'weekly'"):
        build_prompts(samples([[1, 2]], [], []), ITEMS, settings, "weekly")


@pytest.mark.parametrize("changes, key", [
    ({"template": "{items} only"}, "prompts.template"),
    ({"template": "{items}{qualifier}{target}"}, "prompts.template"),
    ({"item_format": "{number}. {title}"}, "prompts.item_format"),
    ({"item_format": "{number}. {name"}, "prompts.item_format"),
])
def test_bad_templates_name_the_key(changes, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        default_settings(**changes)


def test_config_rejects_a_view_without_qualifier():
    config = {"datasets": ["d"], "dataset_settings": {"d": {
        "format": "csv", "files": {"interactions": "i.csv", "items": "t.csv"}}},
        "views": ["short", "weekly"]}
    with pytest.raises(ConfigError, match=r"views\[1\].*'weekly'"):
        validate_config(config)
    config["prompts"] = {"qualifiers": {"short": " now", "weekly": " this week"}}
    assert validate_config(config)["views"] == ["short", "weekly"]


#: The paper's prompt (§4.1.1, Fig. 2) as the authors' released code writes it
#: (tsinghua-fib-lab/LLM4SBR, Data/*/Handle_Data_Prompt.py: background description, one
#: "<number>. <name>_<id>" line per click, task definition), filled in for a toy session;
#: the short-term prompt differs only in its view-limiting qualifier.
PAPER_PROMPT = (
    "The order in which users click on items is as follows:\n"
    "1. Heat (1995)_1\n"
    "2. Toy Story (1995)_2\n"
    "3. xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_4\n"
    "Please guess an item that the user is interested in in the {term}. "
    "(Only output the item name without any explanation.)")


def test_paper_config_renders_the_papers_prompt_word_for_word():
    config = load_config(REPO / "config.yaml", REPO / "configs" / "paper.yaml")
    settings = PromptSettings.from_config(config["prompts"])
    session = samples([[1, 2, 4, 3]], [], [])
    for view, term in (("short", "short-term"), ("long", "long-term")):
        prompt = build_prompts(session, ITEMS, settings, view)["prompt"].iloc[0]
        assert prompt == PAPER_PROMPT.format(term=term)
    normal = build_prompts(session, ITEMS, settings, "normal")["prompt"].iloc[0]
    assert normal == PAPER_PROMPT.format(term="x").replace(" in the x.", ".")
    assert set(config["views"]) <= set(settings.qualifiers)


def test_default_prompts_keep_their_own_wording():
    """The default config's prompts are not the paper's (docs/intents.md says how and
    why); changing them would orphan every cached answer, so they are pinned here."""
    prompt = build_prompts(samples([[1, 2]], [], []), ITEMS, default_settings(),
                           "short")["prompt"].iloc[0]
    assert prompt == ("A user has interacted with the following items, in this order:\n"
                      "1. Heat (1995)_1\n"
                      "Guess one item that interests the user in the short term, judging "
                      "by the most recent items. Output only the item name, without "
                      "explanation.")
    assert default_settings().qualifiers["long"] == (
        " in the long term, judging by the whole history")
