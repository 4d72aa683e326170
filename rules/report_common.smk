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
