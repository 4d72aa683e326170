# Helpers shared by every stage: config lookups and target lists.
import os
import re

from llm4sbr_core.config import dataset_settings
from llm4sbr_core.data.sources import SOURCES

RAW_DIR = config["raw_dir"].rstrip("/")
DATASETS = config["datasets"]
DATA_FILES = ["train.parquet", "valid.parquet", "test.parquet", "items.parquet",
              "stats.json", "stats.md"]


wildcard_constraints:
    dataset="|".join(map(re.escape, config["dataset_settings"])),


def raw_files(dataset):
    """The raw files a dataset is built from."""
    files = dataset_settings(config, dataset)["files"]
    return [f"{RAW_DIR}/{dataset}/{files[k]}" for k in ("interactions", "items")]


def downloadable_datasets():
    """{dataset: (source, files)} for datasets whose raw files a known source provides."""
    out = {}
    for name, settings in config["dataset_settings"].items():
        files = [settings["files"]["interactions"], settings["files"]["items"]]
        source = settings.get("source")
        if source is not None and set(files) <= set(SOURCES[source].provides()):
            out[name] = (source, files)
    return out


def data_targets():
    return expand("results/{dataset}/data/{file}", dataset=DATASETS, file=DATA_FILES)
