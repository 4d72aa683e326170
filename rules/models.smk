# Models named by a Hugging Face Hub id (`llm.model` of the transformers and vllm backends,
# `encoder.model`): the local rule fetch_model snapshots each one once, on the machine that
# runs Snakemake, into {cache_dir}/models/hub/<org>--<name>/ (llm4sbr_core/llm/fetch.py);
# the generation and encoding jobs then read that folder offline (HF_HUB_OFFLINE=1), so
# compute nodes need no internet and a model is never downloaded by each of 16 jobs.
# Included before rules/common.smk: the config's model becomes the snapshot folder, its
# `name` stays that of the hub id, so result paths ({llm}, {encoder}) do not change.
import os

from llm4sbr_core.llm.fetch import fetch_model, hub_id_of, read_snapshot
from llm4sbr_core.llm.generate import llm_name
from llm4sbr_core.text.encoder import EncoderSettings

# [the snapshot folder] when the block's model is a hub id, else []. The served model of
# the openai backend is a name on the server, not something to fetch.
LLM_MODEL_INPUT = (read_snapshot(config["llm"], config["cache_dir"], llm_name(config["llm"]))
                   if config["llm"]["backend"] != "openai" else [])
ENCODER_MODEL_INPUT = read_snapshot(config["encoder"], config["cache_dir"],
                                    EncoderSettings.from_config(config["encoder"]).slug)
if LLM_MODEL_INPUT or ENCODER_MODEL_INPUT:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The conda environment of the LLM generation rule: vLLM brings its own torch.
LLM_CONDA_ENV = ("../envs/vllm.yaml" if config["llm"]["backend"] == "vllm"
                 else "../envs/gpu.yaml")


# Local: runs where Snakemake runs (a login node has internet, compute nodes often not).
# A `run:` block like the downloads (rules/data.smk): a snapshot that exists is never
# fetched again because the code changed.
rule fetch_model:
    output:
        directory(f"{config['cache_dir'].rstrip('/')}/models/hub/{{repo}}"),
    params:
        hub_id=lambda w: hub_id_of(w.repo),
    log:
        "logs/fetch_model/{repo}.log",
    wildcard_constraints:
        repo=r"[A-Za-z0-9][A-Za-z0-9_.-]*--[A-Za-z0-9][A-Za-z0-9_.-]*",
    localrule: True
    retries: 2
    run:
        from llm4sbr_core.logs import log_to

        with log_to(log[0]):
            fetch_model(params.hub_id, output[0])
