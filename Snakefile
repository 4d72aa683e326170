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


include: "rules/models.smk"
include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/prompts.smk"
include: "rules/llm.smk"
include: "rules/text.smk"
include: "rules/localize.smk"
include: "rules/train.smk"
include: "rules/report.smk"


# The default target: every stage for every configured dataset — data, LLM intents (as the
# configured variants need them), training runs, tables and figures. `make run` then
# bundles them into report.html (snakemake --report).
rule all:
    input:
        data_targets(),
        train_targets(),
        report_targets(),
    default_target: True


# The data stage of every configured dataset.
rule data_all:
    input:
        data_targets(),


# The LLM answers of every dataset and view.
rule llm_all:
    input:
        llm_targets(),


# The localized intent vectors of every dataset and view (stage 1 complete).
rule intents_all:
    input:
        intent_targets(),


# Every training run of config `train:`.
rule train_all:
    input:
        train_targets(),


# The tables and figures of every configured dataset whose runs are configured
# (rules/report.smk); then `snakemake --report report.html report_all`.
rule report_all:
    input:
        report_targets(),


onsuccess:
    from llm4sbr_core.report.summary import run_summary

    print(run_summary(DATASETS))
