"""The LLM stage through Snakemake with the embedded SmolLM2-135M-Instruct, on a tiny
catalogue of movies: prompts → sharded generation → gathered, cleaned answers; re-runs
reuse stored answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from tiny_dataset import TITLES, write_tiny_dataset

from conftest import snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.integration]

LLM = "smollm2-135m-instruct"


def write_dataset(root):
    """The tiny dataset with the embedded LLM in 2 shards."""
    return write_tiny_dataset(root, llm={"shards": 2, "batch_size": 8, "chunk_size": 4,
                                         "max_new_tokens": 16})


def override(root, **blocks):
    path = root / f"override{len(list(root.glob('override*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(blocks))
    return str(path)


def test_generation_runs_sharded_and_reruns_reuse_answers(tmp_path):
    config = write_dataset(tmp_path)
    snakemake(tmp_path, "--", "intents_all", configs=("config.yaml", str(config)))
    samples = sum(len(pd.read_parquet(tmp_path / f"results/tiny/data/{s}.parquet"))
                  for s in ("train", "valid", "test"))
    generated = 0
    for view in ("short", "long"):
        prompts = pd.read_parquet(tmp_path / f"results/tiny/prompts/{view}.parquet")
        assert len(prompts) == samples and prompts["prompt"].str.contains("_").all()
        answers = pd.read_parquet(tmp_path / f"results/tiny/llm/{LLM}/{view}.parquet")
        assert answers["sample_id"].tolist() == prompts["sample_id"].tolist()
        assert set(answers["flag"]) <= {"ok", "empty", "echo", "truncated"}
        assert (answers["flag"] == "ok").sum() > 0
        assert (answers.loc[answers["flag"] != "ok", "answer"] == "").all() or \
            (answers["flag"] == "truncated").any()
        stats = json.loads((tmp_path / f"results/tiny/llm/{LLM}/{view}.stats.json").read_text())
        assert stats["samples"] == samples and sum(stats["flags"].values()) == samples
    # The two views are answered together: 2 jobs in all, each with both views of its
    # sessions, their shared prompt prefixes computed once.
    computed = 0
    for shard in range(2):
        shard_stats = json.loads((tmp_path / f"results/tiny/llm/{LLM}/shards/long+short/"
                                  f"{shard}-of-2.stats.json").read_text())
        assert shard_stats["reused"] == 0
        generated += shard_stats["generated"]
        computed += shard_stats["prompt_tokens_computed"]
        assert shard_stats["tokens_out"] > 0 or shard_stats["generated"] == 0
        assert (tmp_path / f"results/tiny/benchmarks/llm_generate_shard/{LLM}/"
                f"long+short.{shard}-of-2.tsv").exists()
    prompts = {v: pd.read_parquet(tmp_path / f"results/tiny/prompts/{v}.parquet")
               for v in ("short", "long")}
    assert generated == sum(p["prompt_hash"].nunique() for p in prompts.values())
    assert not (tmp_path / f"results/tiny/llm/{LLM}/shards/short").exists()
    # each session's prompts in one job, whatever the view
    owner = {}
    for shard in range(2):
        answered = pd.read_parquet(tmp_path / f"results/tiny/llm/{LLM}/shards/long+short/"
                                   f"{shard}-of-2.parquet")
        owner.update(dict.fromkeys(answered["prompt_hash"], shard))
    both = pd.concat(prompts.values())
    assert both.groupby("session_id")["prompt_hash"].agg(
        lambda h: len({owner[x] for x in h})).eq(1).all()
    tokens_in = sum(int(pd.read_parquet(tmp_path / f"results/tiny/llm/{LLM}/{v}.parquet")
                        .drop_duplicates("prompt_hash")["tokens_in"].sum())
                    for v in ("short", "long"))
    assert computed < 0.75 * tokens_in  # the views' common item lists once
    # the GGUF was dequantised once into the cache; answers are in the store
    assert len(list((tmp_path / "cache/models").iterdir())) == 1
    first = pd.read_parquet(tmp_path / f"results/tiny/llm/{LLM}/short.parquet")

    # Encoding and localization (r = 5 of 8 items) on top of the answers.
    items = np.load(tmp_path / "results/tiny/text/all-minilm-l6-v2/items.npy")
    assert items.shape == (len(TITLES) + 1, 384) and not items[0].any()
    for view in ("short", "long"):
        answers = np.load(tmp_path / f"results/tiny/text/all-minilm-l6-v2/{LLM}/{view}.npy")
        assert answers.shape == (samples, 384)
        intent_dir = tmp_path / f"results/tiny/intents/{LLM}/all-minilm-l6-v2/r5"
        intents = np.load(intent_dir / f"{view}.npy")
        assert intents.shape == (samples, 384) and np.isfinite(intents).all()
        topr = pd.read_parquet(intent_dir / f"{view}.topr.parquet")
        assert len(topr) == samples and all(len(ids) == 5 and 0 not in ids
                                            for ids in topr["item_ids"])
        grounding = json.loads((intent_dir / f"{view}.grounding.json").read_text())
        assert 0 <= grounding["hit_at_r"] <= 1 and "test" in grounding["by_split"]
        assert len(grounding["examples"]) >= 1

    # Another shard count: Snakemake runs new shard jobs, but nothing is generated again.
    snakemake(tmp_path, "--", "llm_all",
              configs=("config.yaml", str(config), override(tmp_path, llm={"shards": 3})))
    for shard in range(3):
        stats = json.loads((tmp_path / f"results/tiny/llm/{LLM}/shards/long+short/"
                            f"{shard}-of-3.stats.json").read_text())
        assert stats["generated"] == 0 and stats["reused"] == stats["prompts"]
    again = pd.read_parquet(tmp_path / f"results/tiny/llm/{LLM}/short.parquet")
    pd.testing.assert_frame_equal(first, again)

    # Other decoding settings are another store: those answers are generated anew.
    snakemake(tmp_path, "--", "llm_all", configs=(
        "config.yaml", str(config),
        override(tmp_path, llm={"shards": 1, "max_new_tokens": 8}, views=["normal"])))
    stats = json.loads((tmp_path / f"results/tiny/llm/{LLM}/shards/normal/0-of-1.stats.json")
                       .read_text())
    assert stats["generated"] == stats["prompts"] > 0
    assert len(list((tmp_path / "cache/answers").iterdir())) == 2
