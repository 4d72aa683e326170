# Helpers of rules/report.smk: output annotations for `snakemake --report` and the run
# lists of llm4sbr_core/report/plan.py.
from llm4sbr_core.report import plan as report_plan

REPORT_TABLES = layout.TABLES_DIR
REPORT_FIGURES = layout.FIGURES_DIR


def report_targets():
    """The tables and figures of every configured dataset (rule report_all)."""
    return report_plan.report_targets(config, DATASETS)


def report_table(name, caption, label):
    """The CSV, Markdown and HTML files of a table; the HTML page (shown) and the CSV
    (downloadable) are in the report."""
    return {
        "csv": report(
            f"{REPORT_TABLES}/{name}.csv",
            caption=f"../report/{caption}",
            category="Tables",
            subcategory="{dataset}",
            labels={"table": label, "format": "CSV"},
        ),
        "md": f"{REPORT_TABLES}/{name}.md",
        "html": report(
            f"{REPORT_TABLES}/{name}.html",
            caption=f"../report/{caption}",
            category="Tables",
            subcategory="{dataset}",
            labels={"table": label, "format": "HTML"},
        ),
    }


def report_figure(name, caption, label):
    return report(
        f"{REPORT_FIGURES}/{name}.png",
        caption=f"../report/{caption}",
        category="Figures",
        subcategory="{dataset}",
        labels={"figure": label},
    )


# --- the page of explained sessions (report_explain), and the run it explains
def explain_run(dataset):
    """The run the page explains: the first backbone's `llm4sbr` run (else its first LLM
    variant) at the first seed; None when no LLM variant is configured."""
    variants = [v for v in TRAIN["variants"] if parse_variant(v).reads_llm_intents
                and parse_variant(v).source == "llm" and not parse_variant(v).shuffled]
    if not variants or not TRAIN["backbones"]:
        return None
    variant = "llm4sbr" if "llm4sbr" in variants else variants[0]
    return layout.run_dir(dataset, TRAIN["backbones"][0], variant, TRAIN["seeds"][0])


def explain_inputs(wildcards):
    """The run's outputs (which depend on the whole intent stage, so its test prompts are
    answered in the store) and its base sibling's weights."""
    run = explain_run(wildcards.dataset)
    if run is None:
        raise ValueError("report_explain needs an LLM variant in train.variants")
    inputs = {"model": f"{run}/{layout.MODEL_FILE}", "metrics": f"{run}/{layout.METRICS_FILE}"}
    if "base" in TRAIN["variants"]:
        base = layout.run_dir(wildcards.dataset, TRAIN["backbones"][0], "base",
                              TRAIN["seeds"][0])
        inputs["base"] = f"{base}/{layout.MODEL_FILE}"
    return inputs
