# llm4sbr: LLM4SBR (Qiao et al., ACM TOIS 2025) as a Snakemake workflow.
# Rules only wire files; all logic lives in llm4sbr_core/.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


# Our validator first: it names the offending key and checks cross-references
# (datasets without settings, unknown sources); snakemake's validate then applies the
# same schema.
from llm4sbr_core.config import validate_config

validate_config(config)
validate(config, "llm4sbr_core/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/prompts.smk"
include: "rules/llm.smk"
include: "rules/text.smk"
include: "rules/localize.smk"
include: "rules/train.smk"
include: "rules/report.smk"


rule all:
    input:
        data_targets(),
    default_target: True


# The LLM answers of every dataset and view (not part of `all` yet).
rule llm_all:
    input:
        llm_targets(),


# The localized intent vectors of every dataset and view (stage 1 complete).
rule intents_all:
    input:
        intent_targets(),


# Every training run of config `train:` (not part of `all` yet).
rule train_all:
    input:
        train_targets(),


# The tables and figures of every configured dataset whose runs are configured
# (rules/report.smk); then `snakemake --report report.html report_all`.
rule report_all:
    input:
        report_targets(),


onsuccess:
    from llm4sbr_core.data.build import summarize_datasets

    print(summarize_datasets([f"results/{d}/data/stats.json" for d in DATASETS]))
