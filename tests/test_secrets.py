"""Secrets stay out of what Snakemake records: rule params (``.snakemake/metadata``, job
logs) get the ``llm:`` block without anything secret, and the key is only ever read from
the environment inside the job."""

from __future__ import annotations

import copy
import re

import yaml
from test_llm_generate import llm_block

from conftest import REPO
from llm4sbr_core.config import validate_config
from llm4sbr_core.llm.common import public_llm_block
from llm4sbr_core.llm.generate import generator_settings

SECRET = "sk-live-DO-NOT-RECORD-77"


def test_public_llm_block_strips_every_secret():
    block = llm_block(backend="openai", model="qwen-plus", openai={
        "base_url": f"https://alice:{SECRET}@api.example.com/v1?api_key={SECRET}#x",
        "api_key_env": "MY_KEY", "api_key": SECRET, "access_token": SECRET,
        "timeout_s": 5})
    before = copy.deepcopy(block)
    public = public_llm_block(block)
    assert SECRET not in repr(public) and "alice" not in repr(public)
    assert public["openai"] == {"base_url": "https://api.example.com/v1",
                                "api_key_env": "MY_KEY", "timeout_s": 5}
    assert public["max_new_tokens"] == block["max_new_tokens"]  # not a "token" secret
    assert block == before  # the config itself is left alone
    # a key pasted where the variable's name belongs is dropped too
    assert public_llm_block({"openai": {"api_key_env": SECRET}}) == {"openai": {}}


def test_public_llm_block_of_a_valid_config_builds_the_same_generator():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["llm"] = {"backend": "openai", "model": "m",
                     "openai": {"base_url": "http://localhost:8000/v1/", "api_key_env": "K"}}
    validate_config(config)
    block = config["llm"]
    assert public_llm_block(block) == block
    assert generator_settings(public_llm_block(block)) == generator_settings(block)


def test_the_generation_rule_gets_only_the_public_block():
    """The params of rule llm_generate_shard are built by public_llm_block, and no rule
    passes the raw llm block (or anything of it) as a param."""
    rules = {p.name: p.read_text() for p in (REPO / "rules").glob("*.smk")}
    text = rules["llm.smk"]
    rule = text[text.index("rule llm_generate_shard:"):text.index("rule gather_answers:")]
    params = rule[rule.index("params:"):rule.index("log:")]
    assert 'llm=public_llm_block(config["llm"])' in params
    for name, source in rules.items():
        for block in re.findall(r"params:\n((?:\s{8}.*\n)+)", source):
            raw = block.replace('public_llm_block(config["llm"])', "")
            assert 'config["llm"]' not in raw, f"{name} passes the raw llm block: {block}"
