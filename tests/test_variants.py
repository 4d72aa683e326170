"""Variant names (llm4sbr_core/variants.py) and the run settings they give."""

from __future__ import annotations

import re

import pytest

from llm4sbr_core.config import load_schema
from llm4sbr_core.errors import ConfigError
from llm4sbr_core.models.llm4sbr import MODE_VIEWS
from llm4sbr_core.train.settings import run_config
from llm4sbr_core.variants import (
    KIND_VIEWS,
    VARIANT_PATTERN,
    WRAPPER_MODES,
    Variant,
    parse_variant,
)

VALID = ["base", "textinit", "llm4sbr", "wo_au", "wo_long", "wo_short", "normal", "wo_sbr",
         "llm4sbr-r0", "llm4sbr-r12", "wo_long-tau1", "llm4sbr-tau0.05", "llm4sbr-r3-tau0.5",
         "llm4sbr-items", "wo_short-items-tau1", "llm4sbr-shuffled", "llm4sbr-r1-tau2-shuffled",
         "normal-items-shuffled", "wo_u", "wo_a", "llm4sbr-random", "wo_au-random-shuffled",
         "wo_u-tau0.5", "llm4sbr-random-tau1", "llm4sbr-items-random",
         "wo_au-items-random-shuffled", "base-tuned", "textinit-tuned", "llm4sbr-tuned",
         "llm4sbr-items-shuffled-tuned", "wo_au-r3-tau0.5-tuned"]
INVALID = ["", "llm4sbr2", "base-r1", "textinit-tau1", "llm4sbr-r01", "llm4sbr-tau",
           "llm4sbr-tau0.5-r3", "llm4sbr-r-1", "LLM4SBR", "llm4sbr-tau.5", "llm4sbr-r3 ",
           "llm4sbr-items-r3", "llm4sbr-r3-items", "llm4sbr-shuffled-tau1", "base-shuffled",
           "textinit-items", "llm4sbr-item", "llm4sbr-random-items", "llm4sbr-r3-random",
           "llm4sbr-random-r3", "base-random", "wo_ua", "base-tuned-tuned", "tuned",
           "llm4sbr-tuned-shuffled", "llm4sbr-tuned-items", "base-tune"]


@pytest.mark.parametrize("name", VALID + INVALID)
def test_parser_schema_and_wildcard_agree(name):
    schema = load_schema()["properties"]["train"]["properties"]["variants"]["items"]["pattern"]
    try:
        parse_variant(name)
        parsed = True
    except ConfigError:
        parsed = False
    assert parsed == (name in VALID)
    assert bool(re.search(schema, name)) == parsed
    assert bool(re.fullmatch(VARIANT_PATTERN, name)) == parsed


def test_parsed_fields():
    assert parse_variant("llm4sbr-r3-tau0.5") == Variant("llm4sbr-r3-tau0.5", "llm4sbr", 3, 0.5)
    assert parse_variant("wo_long").views == ("short",)
    assert parse_variant("normal").mode == "normal" and parse_variant("llm4sbr").mode == "full"
    assert parse_variant("base").mode is None and parse_variant("base").views == ()
    assert parse_variant("textinit").uses_item_text and not parse_variant("textinit").views
    items = parse_variant("llm4sbr-items-shuffled")
    assert (items.source, items.shuffled, items.uses_item_text, items.reads_llm_intents) == (
        "items", True, True, False)
    assert parse_variant("llm4sbr-r1-shuffled").reads_llm_intents
    random = parse_variant("llm4sbr-random")  # reads the LLM intents for their norms
    assert (random.source, random.reads_llm_intents, random.uses_item_text) == (
        "random", True, False)
    assert random.random_intents and not parse_variant("llm4sbr-items").random_intents
    items_random = parse_variant("llm4sbr-items-random")  # no LLM: the item intents' norms
    assert (items_random.source, items_random.reads_llm_intents, items_random.uses_item_text,
            items_random.random_intents) == ("items-random", False, True, True)
    assert parse_variant("wo_u").mode == "wo_u" and parse_variant("wo_a").views == (
        "short", "long")


def test_kind_views_match_the_wrapper():
    assert {k: MODE_VIEWS[m] for k, m in WRAPPER_MODES.items()} == KIND_VIEWS


def test_bad_variants_name_the_config_key():
    with pytest.raises(ConfigError, match="'train.variants': variant 'base-r1': suffixes only"):
        parse_variant("base-r1")


def test_run_config_records_tau_and_intents():
    intents = {"llm": "m", "encoder": "e", "r": 5}
    run = run_config({"tau": 0.2}, "d", "srgnn", "llm4sbr-r0-tau1", 0, intents=intents)
    assert run["tau"] == 1.0
    assert run["intents"] == {"llm": "m", "encoder": "e", "r": 0, "source": "llm",
                              "views": ["short", "long"], "shuffled": False}
    run = run_config({"tau": 0.2}, "d", "srgnn", "wo_short", 0, intents=intents)
    assert run["tau"] == 0.2 and run["intents"]["r"] == 5 and run["intents"]["views"] == ["long"]
    assert run_config({}, "d", "srgnn", "base", 0, intents=intents)["intents"] is None
    assert run_config({}, "d", "srgnn", "textinit", 0)["tau"] == 0.1
    assert "llmseqsim" not in run_config({"llmseqsim": ["mean"]}, "d", "srgnn", "base", 0)
