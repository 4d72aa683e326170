"""Where every artifact of the workflow lives: the one definition of the results layout.

Each constant is a path pattern in Snakemake's wildcard syntax (``{dataset}``, ``{view}``
...), relative to the working directory. The rules use the patterns as they are (or
partly filled with :func:`fill`); the report planner and the library fill them with
:func:`fill`. No torch or pandas import: the Snakefile imports this module.

    results/{dataset}/data/{train,valid,test}.parquet, items.parquet, stats.{json,md}
    results/{dataset}/prompts/{view}.parquet
    results/{dataset}/llm/{llm}/shards/{views}/{shard}-of-{shards}.parquet (+ .stats.json)
    results/{dataset}/llm/{llm}/{view}.parquet (+ .stats.json)
    results/{dataset}/text/{encoder}/items.npy (+ items.stats.json)
    results/{dataset}/text/{encoder}/{llm}/{view}.npy (+ .stats.json)
    results/{dataset}/intents/{llm}/{encoder}/r{r}/{view}.npy (+ .topr.parquet, .grounding.json)
    results/{dataset}/graphs/{backbone}.npz
    results/{dataset}/runs/{backbone}/{variant}/seed{seed}/{metrics.json,ranks.parquet,model.pt}
    results/{dataset}/runs/llmseqsim/{aggregation}/seed0/{metrics.json,ranks.parquet}
    results/{dataset}/runs/{method}/tuned/seed0/{metrics.json,ranks.parquet}   (kNN baselines)
    results/{dataset}/tuning/{backbone}/{variant}/trial{trial}/{metrics.json,ranks.parquet}
    results/{dataset}/tuning/{backbone}/{variant}/selected.json   (-tuned variants' search)
    results/{dataset}/tables/*.{md,csv,html}   results/{dataset}/figures/*
    results/{dataset}/benchmarks/...           (Snakemake's benchmark: files)
    logs/{dataset}/...                         (Snakemake's log: files)
"""

from __future__ import annotations

from collections.abc import Iterable
from string import Formatter

from .errors import InvalidInputError

#: where the workflow writes everything, and the tracked archive of the run outputs that
#: published numbers come from (the same layout below it)
RESULTS_ROOT = "results"
ARCHIVE_ROOT = "archive"
DATASET_DIR = f"{RESULTS_ROOT}/{{dataset}}"

# --- data stage
DATA_DIR = f"{DATASET_DIR}/data"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_FILE = f"{DATA_DIR}/{{split}}.parquet"
ITEMS_FILE = f"{DATA_DIR}/items.parquet"
STATS_JSON = f"{DATA_DIR}/stats.json"
STATS_MD = f"{DATA_DIR}/stats.md"
#: the tables of DATA_DIR (what a training run reads), and all its files, by name
TABLE_FILES: tuple[str, ...] = ("train.parquet", "valid.parquet", "test.parquet",
                                "items.parquet")
DATA_FILES: tuple[str, ...] = (*TABLE_FILES, "stats.json", "stats.md")

# --- intent inference
PROMPTS_FILE = f"{DATASET_DIR}/prompts/{{view}}.parquet"
#: one generation job's answers: {views} is the views answered together (VIEW_JOINER
#: between names, sorted), so a sample's views share their prompt prefix in one job
ANSWER_SHARD = f"{DATASET_DIR}/llm/{{llm}}/shards/{{views}}/{{shard}}-of-{{shards}}.parquet"
ANSWER_SHARD_STATS = (f"{DATASET_DIR}/llm/{{llm}}/shards/{{views}}/"
                      "{shard}-of-{shards}.stats.json")
VIEW_JOINER = "+"
ANSWERS_FILE = f"{DATASET_DIR}/llm/{{llm}}/{{view}}.parquet"
ANSWERS_STATS = f"{DATASET_DIR}/llm/{{llm}}/{{view}}.stats.json"
ITEM_VECTORS = f"{DATASET_DIR}/text/{{encoder}}/items.npy"
ITEM_VECTORS_STATS = f"{DATASET_DIR}/text/{{encoder}}/items.stats.json"
ANSWER_VECTORS = f"{DATASET_DIR}/text/{{encoder}}/{{llm}}/{{view}}.npy"
ANSWER_VECTORS_STATS = f"{DATASET_DIR}/text/{{encoder}}/{{llm}}/{{view}}.stats.json"
INTENT_DIR = f"{DATASET_DIR}/intents/{{llm}}/{{encoder}}/r{{r}}"
INTENT_FILE = f"{INTENT_DIR}/{{view}}.npy"
INTENT_TOPR = f"{INTENT_DIR}/{{view}}.topr.parquet"
INTENT_GROUNDING = f"{INTENT_DIR}/{{view}}.grounding.json"

# --- training
GRAPH_FILE = f"{DATASET_DIR}/graphs/{{backbone}}.npz"
RUNS_DIR = f"{DATASET_DIR}/runs"
RUN_DIR = f"{RUNS_DIR}/{{backbone}}/{{variant}}/seed{{seed}}"
#: the run-output contract: file names inside a run folder
METRICS_FILE = "metrics.json"
RANKS_FILE = "ranks.parquet"
MODEL_FILE = "model.pt"
#: LLMSeqSim (no session model, no seed) is stored as backbone ``llmseqsim``, variant =
#: its aggregation, seed 0, so tables treat it as one more run
LLMSEQSIM = "llmseqsim"
LLMSEQSIM_RUN_DIR = f"{RUNS_DIR}/{LLMSEQSIM}/{{aggregation}}/seed0"
#: the session-kNN baselines (no training, no seed) are stored as backbone = the method,
#: variant ``tuned`` (tuned on the validation split), seed 0
KNN_VARIANT = "tuned"
KNN_RUN_DIR = f"{RUNS_DIR}/{{method}}/{KNN_VARIANT}/seed0"
#: the validation search of a ``-tuned`` variant: {variant} is the untuned name, one
#: training run per trial configuration, and the selection the -tuned runs read
TUNING_DIR = f"{DATASET_DIR}/tuning/{{backbone}}/{{variant}}"
TRIAL_DIR = f"{TUNING_DIR}/trial{{trial}}"
TUNING_SELECTION = f"{TUNING_DIR}/selected.json"

# --- report
TABLES_DIR = f"{DATASET_DIR}/tables"
FIGURES_DIR = f"{DATASET_DIR}/figures"
BENCHMARKS_DIR = f"{DATASET_DIR}/benchmarks"
LOGS_DIR = "logs/{dataset}"


def view_group(views: Iterable[str]) -> str:
    """The ``{views}`` path component of views answered together: sorted, joined."""
    names = sorted(set(views))
    if not names or any(not v or VIEW_JOINER in v for v in names):
        raise InvalidInputError(f"not a set of view names: {names}")
    return VIEW_JOINER.join(names)


def group_views(group: str) -> list[str]:
    """The views named by a ``{views}`` path component (inverse of :func:`view_group`)."""
    return group.split(VIEW_JOINER)


def fill(pattern: str, **values: object) -> str:
    """``pattern`` with the wildcards named in ``values`` filled in; the others stay
    wildcards (``fill(RUN_DIR, dataset="x")`` → ``results/x/runs/{backbone}/...``)."""
    out = []
    for literal, name, spec, _ in Formatter().parse(pattern):
        out.append(literal)
        if name is None:
            continue
        if name in values:
            out.append(format(values[name], spec or ""))
        else:
            out.append("{" + name + "}")
    return "".join(out)


def wildcards(pattern: str) -> list[str]:
    """The wildcard names of ``pattern``, in order."""
    return [name for _, name, _, _ in Formatter().parse(pattern) if name is not None]


def benchmark_file(job: str) -> str:
    """The ``benchmark:`` file of a job: ``results/{dataset}/benchmarks/{job}.tsv``
    (``job`` may hold wildcards, e.g. ``"build_prompts/{view}"``)."""
    return f"{BENCHMARKS_DIR}/{job}.tsv"


def run_dir(dataset: str, backbone: str, variant: str, seed: int) -> str:
    """``results/{dataset}/runs/{backbone}/{variant}/seed{seed}``."""
    return fill(RUN_DIR, dataset=dataset, backbone=backbone, variant=variant, seed=seed)


def run_file(dataset: str, backbone: str, variant: str, seed: int,
             name: str = METRICS_FILE) -> str:
    """A file of a run folder (default: its metrics.json)."""
    return f"{run_dir(dataset, backbone, variant, seed)}/{name}"

