# Helpers shared by every stage: config lookups and target lists.
import os
import re

from llm4sbr_core import layout
from llm4sbr_core.config import dataset_settings
from llm4sbr_core.data.sources import SOURCES
from llm4sbr_core.layout import fill

RAW_DIR = config["raw_dir"].rstrip("/")
DATASETS = config["datasets"]


wildcard_constraints:
    dataset="|".join(map(re.escape, config["dataset_settings"])),


def raw_folder(dataset):
    """The folder under raw_dir with a dataset's raw files (shared by datasets made from
    the same release)."""
    return dataset_settings(config, dataset).get("raw_folder") or dataset


def raw_files(dataset):
    """The raw files a dataset is built from."""
    files = dataset_settings(config, dataset)["files"]
    return [f"{RAW_DIR}/{raw_folder(dataset)}/{files[k]}" for k in ("interactions", "items")]


def downloadable_folders():
    """{raw folder: (source, files)} for raw folders whose files a known source provides
    (one download per folder, however many datasets read it)."""
    out = {}
    for name, settings in config["dataset_settings"].items():
        files = [settings["files"]["interactions"], settings["files"]["items"]]
        source = settings.get("source")
        if source is not None and set(files) <= set(SOURCES[source].provides()):
            source_files = out.setdefault(raw_folder(name), (source, []))[1]
            source_files.extend(f for f in files if f not in source_files)
    return out


def data_targets():
    return expand(f"{layout.DATA_DIR}/{{file}}", dataset=DATASETS, file=layout.DATA_FILES)


# --- training (rules/train.smk) ------------------------------------------------------
from llm4sbr_core.errors import ConfigError
from llm4sbr_core.train.settings import RunSettings, backbone_names, run_config, variant_pattern
from llm4sbr_core.train.tuning import trial_grid, trial_settings
from llm4sbr_core.variants import (
    KNN_METHODS,
    LLMSEQSIM_AGGREGATIONS,
    UNTUNED_PATTERN,
    parse_variant,
)

TRAIN = config["train"]
RUN_DIR = layout.RUN_DIR


def train_targets():
    """metrics.json of every dataset × backbone × variant × seed of config `train:`, of
    every LLMSeqSim aggregation of `train.llmseqsim` and every kNN method of `train.knn`."""
    runs = expand(f"{RUN_DIR}/{layout.METRICS_FILE}", dataset=DATASETS,
                  backbone=TRAIN["backbones"], variant=TRAIN["variants"], seed=TRAIN["seeds"])
    runs += expand(f"{layout.LLMSEQSIM_RUN_DIR}/{layout.METRICS_FILE}", dataset=DATASETS,
                   aggregation=TRAIN.get("llmseqsim", []))
    return runs + expand(f"{layout.KNN_RUN_DIR}/{layout.METRICS_FILE}", dataset=DATASETS,
                         method=TRAIN.get("knn", []))


def needs_training_graph(backbone):
    # Imports the model (and torch) only when a training job is planned.
    from llm4sbr_core.models import get_backbone

    return get_backbone(backbone).needs_training_graph


def train_inputs(wildcards):
    """The dataset's samples and items, the training graph for models that need one, the
    intent vectors of the views an LLM variant reads (at its r), the item text vectors
    for `textinit` and the `-items` controls, and a `-tuned` variant's search selection."""
    inputs = data_inputs(wildcards)
    if needs_training_graph(wildcards.backbone):
        inputs["graph"] = fill(layout.GRAPH_FILE, **wildcards)
    variant = parse_variant(wildcards.variant)
    r = config["localize"]["r"] if variant.r is None else variant.r
    for view in variant.views if variant.reads_llm_intents else ():
        inputs[f"intents_{view}"] = INTENT_FILE.format(
            dataset=wildcards.dataset, llm=LLM_NAME, encoder=ENCODER_NAME, r=r, view=view)
    if variant.uses_item_text:
        inputs["item_vectors"] = fill(layout.ITEM_VECTORS, dataset=wildcards.dataset,
                                      encoder=ENCODER_NAME)
    if variant.tuned:
        inputs["tuning"] = fill(layout.TUNING_SELECTION, dataset=wildcards.dataset,
                                backbone=wildcards.backbone, variant=variant.untuned)
    return inputs


def train_run_config(wildcards):
    """The settings of one run (metrics.json's `config`; a `-tuned` run replaces the
    searched keys by the selection it reads)."""
    return run_config(TRAIN, wildcards.dataset, wildcards.backbone, wildcards.variant,
                      int(wildcards.seed), intents={"llm": LLM_NAME, "encoder": ENCODER_NAME,
                                                    "r": config["localize"]["r"]})


def trial_run_config(wildcards):
    """The settings of one trial of a validation search: the shared recipe with the
    trial's configuration, seed train.tuning.seed."""
    grid = trial_grid(TRAIN, wildcards.variant)
    trial = int(wildcards.trial)
    if trial >= grid.budget:
        raise ConfigError("train.tuning.trials", f"{wildcards.variant}: trial {trial} asked "
                          f"for, the search has {grid.budget} (trial0 .. "
                          f"trial{grid.budget - 1})")
    record = run_config(TRAIN, wildcards.dataset, wildcards.backbone, wildcards.variant,
                        grid.seed, intents={"llm": LLM_NAME, "encoder": ENCODER_NAME,
                                            "r": config["localize"]["r"]})
    return trial_settings(RunSettings.from_record(record), grid.configs[trial]).record()


def trial_metrics(wildcards):
    """metrics.json of every trial of one variant's search, in trial order."""
    grid = trial_grid(TRAIN, wildcards.variant)
    return [fill(f"{layout.TRIAL_DIR}/{layout.METRICS_FILE}", **wildcards, trial=k)
            for k in range(grid.budget)]


def data_inputs(wildcards):
    """The samples of every split and the item table of a dataset."""
    inputs = {split: fill(layout.SPLIT_FILE, dataset=wildcards.dataset, split=split)
              for split in layout.SPLITS}
    # `items` is reserved by Snakemake
    inputs["item_table"] = fill(layout.ITEMS_FILE, dataset=wildcards.dataset)
    return inputs


# --- LLM generation (rules/prompts.smk, rules/llm.smk) -------------------------------
import sys

from llm4sbr_core.errors import Llm4sbrError
from llm4sbr_core.llm.generate import llm_name
from llm4sbr_core.llm.plan import generation_plan, is_dry_run

LLM_NAME = llm_name(config["llm"])


# `{views}` of a generation job: view names joined by layout.VIEW_JOINER.
_VIEW_NAME = "|".join(re.escape(v) for v in config["prompts"]["qualifiers"])
VIEW_GROUP_PATTERN = rf"({_VIEW_NAME})({re.escape(layout.VIEW_JOINER)}({_VIEW_NAME}))*"


def answered_with(view):
    """The views whose prompts are answered in the same jobs as ``view``'s: the run's
    views (a sample's views share their prompt prefix), or ``view`` alone outside them."""
    return config["views"] if view in config["views"] else [view]


def answer_shards(dataset, llm, view):
    n = config["llm"]["shards"]
    views = layout.view_group(answered_with(view))
    return [fill(layout.ANSWER_SHARD, dataset=dataset, llm=llm, views=views, shard=i,
                 shards=n) for i in range(n)]


def shard_prompt_files(wildcards):
    """The prompt files of the views one generation job answers."""
    return [fill(layout.PROMPTS_FILE, dataset=wildcards.dataset, view=view)
            for view in layout.group_views(wildcards.views)]


# torch threads of one generation job (its `threads:`, capped by --cores).
LLM_THREADS = 2


def llm_plan():
    """What the LLM stage of this run will cost (llm4sbr_core/llm/plan.py): the views the
    configured variants read, every dataset; empty when no variant reads LLM intents."""
    views = sorted({view for name in TRAIN["variants"]
                    for view in (parse_variant(name).views
                                 if parse_variant(name).reads_llm_intents else ())})
    try:
        return generation_plan(config["llm"], config["cache_dir"], DATASETS, views,
                               threads=LLM_THREADS)
    except Llm4sbrError as exc:  # a plan informs; it never stops the workflow
        return f"LLM stage: no cost estimate ({exc})"


def print_llm_plan():
    plan = llm_plan()
    if plan:
        print(plan, file=sys.stderr)


# The plan is printed in a dry run (snakemake -n); rules/llm.smk prints it at the start of
# a real one.
if is_dry_run(sys.argv):
    print_llm_plan()


def llm_targets():
    """The gathered answers of every dataset and view."""
    return expand(layout.ANSWERS_FILE, dataset=DATASETS,
                  llm=LLM_NAME, view=config["views"])


# --- text encoding and intent localization (rules/text.smk, rules/localize.smk) -------
from llm4sbr_core.text.encoder import EncoderSettings

ENCODER_NAME = EncoderSettings.from_config(config["encoder"]).slug
INTENT_DIR = layout.INTENT_DIR
INTENT_FILE = layout.INTENT_FILE


def intent_targets():
    """Localized intent vectors of every dataset and view at the configured r."""
    return expand(INTENT_FILE, dataset=DATASETS, llm=LLM_NAME,
                  encoder=ENCODER_NAME, r=config["localize"]["r"], view=config["views"])
