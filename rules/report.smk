# Tables, figures and the HTML report (target `report_all`; `snakemake --report report.html`).
# Each rule reads exactly the runs of config `train:` that its table or figure shows
# (llm4sbr_core/report/plan.py), so `snakemake results/{dataset}/tables/table3.md` plans
# only the base and llm4sbr runs. A figure asked for by name whose runs are not configured
# is written as a panel saying so; `report_all` only asks for figures with runs.


include: "report_common.smk"


report: "../report/workflow.rst"


rule report_table2:
    input:
        layout.STATS_JSON,
    output:
        **report_table("table2", "table2.rst", "Table 2: datasets"),
    log:
        "logs/{dataset}/report/table2.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_tables.py"


rule report_table3:
    input:
        metrics=lambda w: report_plan.table3_runs(config, w.dataset),
        ranks=lambda w: report_plan.table3_runs(config, w.dataset, "ranks.parquet"),
    output:
        **report_table("table3", "table3.rst", "Table 3: LLM4SBR vs backbones"),
    params:
        n_resamples=10_000,
        seed=0,
    log:
        "logs/{dataset}/report/table3.log",
    benchmark:
        layout.benchmark_file("report/table3")
    resources:
        mem_mb=2000,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_tables.py"


rule report_table4:
    input:
        metrics=lambda w: report_plan.table4_runs(config, w.dataset),
    output:
        **report_table("table4", "table4.rst", "Table 4: ablations"),
    log:
        "logs/{dataset}/report/table4.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_tables.py"


# Every configured variant (sweeps, controls, peers included) against `base`, with
# paired t-tests over the test samples.
rule report_variants:
    input:
        metrics=lambda w: report_plan.variant_runs(config, w.dataset),
        ranks=lambda w: [p.replace("metrics.json", "ranks.parquet")
                         for p in report_plan.variant_runs(config, w.dataset)],
    output:
        **report_table("variants", "variants.rst", "Every variant against base"),
    params:
        n_resamples=10_000,
        seed=0,
        title="Every variant against the backbone alone (%)",
    log:
        "logs/{dataset}/report/variants.log",
    benchmark:
        layout.benchmark_file("report/variants")
    resources:
        mem_mb=2000,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_tables.py"


rule report_table5:
    input:
        metrics=lambda w: report_plan.all_runs(config, w.dataset),
    output:
        **report_table("table5", "table5.rst", "Table 5: training cost"),
    log:
        "logs/{dataset}/report/table5.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_tables.py"


# After every configured run (its input), so that the benchmark files of all stages exist.
rule report_runtime:
    input:
        runs=lambda w: report_plan.variant_runs(config, w.dataset),
    output:
        **report_table("runtime", "runtime.rst", "Runtime per stage"),
        figure=report_figure("runtime", "runtime.rst", "Runtime per stage"),
    params:
        root=layout.BENCHMARKS_DIR,
    log:
        "logs/{dataset}/report/runtime.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_runtime.py"


rule report_fig5:
    input:
        metrics=lambda w: report_plan.fig5_runs(config, w.dataset),
        llmseqsim=lambda w: report_plan.llmseqsim_runs(config, w.dataset),
    output:
        figure=report_figure("fig5_peers", "fig5.rst", "Fig. 5: LLM peers"),
    log:
        "logs/{dataset}/report/fig5.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_figures.py"


rule report_fig6:
    input:
        metrics=lambda w: report_plan.fig6_runs(config, w.dataset),
    output:
        figure=report_figure("fig6_views", "fig6.rst", "Fig. 6: views"),
    log:
        "logs/{dataset}/report/fig6.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_figures.py"


rule report_fig7:
    input:
        metrics=lambda w: report_plan.fig7_runs(config, w.dataset),
    output:
        figure=report_figure("fig7_r", "fig7.rst", "Fig. 7: localization r"),
    params:
        default_r=config["localize"]["r"],
    log:
        "logs/{dataset}/report/fig7.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_figures.py"


rule report_training_curves:
    input:
        metrics=lambda w: report_plan.all_runs(config, w.dataset),
    output:
        figure=report_figure("training_curves", "training_curves.rst", "Training curves"),
    log:
        "logs/{dataset}/report/training_curves.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_figures.py"


rule report_localization:
    input:
        expand(
            f"{INTENT_DIR}/{{view}}.grounding.json",
            llm=LLM_NAME,
            encoder=ENCODER_NAME,
            r=config["localize"]["r"],
            view=config["views"],
            allow_missing=True,
        ),
    output:
        md=f"{REPORT_FIGURES}/fig4_localization.md",
        html=report(
            f"{REPORT_FIGURES}/fig4_localization.html",
            caption="../report/fig4.rst",
            category="Figures",
            subcategory="{dataset}",
            labels={"figure": "Fig. 4: localization examples"},
        ),
    params:
        examples=10,
    log:
        "logs/{dataset}/report/fig4_localization.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_localization.py"


# Where a backbone's gain comes from: the wrapper's architecture (wo_au), each half of the
# alignment + uniformity term (wo_a, wo_u) and the intents' information (random, shuffled,
# item-title and LLM intents), each step tested (one Holm family per table). The second
# rule is the same chain on item-title intents (no LLM).
rule report_decomposition:
    input:
        metrics=lambda w: report_plan.decomposition_runs(config, w.dataset, w.backbone),
        ranks=lambda w: report_plan.decomposition_runs(
            config, w.dataset, w.backbone, layout.RANKS_FILE
        ),
    output:
        **report_table(
            "decomposition_{backbone}", "decomposition.rst", "Decomposition of the gain"
        ),
    params:
        source="llm",
        n_resamples=10_000,
        seed=0,
    log:
        "logs/{dataset}/report/decomposition_{backbone}.log",
    benchmark:
        layout.benchmark_file("report/decomposition_{backbone}")
    wildcard_constraints:
        backbone="|".join(backbone_names()),
    resources:
        mem_mb=2000,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_tables.py"


use rule report_decomposition as report_decomposition_items with:
    input:
        metrics=lambda w: report_plan.decomposition_runs(
            config, w.dataset, w.backbone, source="items"
        ),
        ranks=lambda w: report_plan.decomposition_runs(
            config, w.dataset, w.backbone, layout.RANKS_FILE, source="items"
        ),
    output:
        **report_table(
            "decomposition_{backbone}-items",
            "decomposition.rst",
            "Decomposition of the gain, item-title intents",
        ),
    params:
        source="items",
        n_resamples=10_000,
        seed=0,
    log:
        "logs/{dataset}/report/decomposition_{backbone}-items.log",
    benchmark:
        layout.benchmark_file("report/decomposition_{backbone}-items")


# LLM4SBR against its backbone under the shared recipe and with both sides tuned by their
# own validation search of the same budget (base-tuned, {variant}-tuned).
rule report_tuned:
    input:
        metrics=lambda w: report_plan.tuned_pair_runs(config, w.dataset, w.variant),
        ranks=lambda w: report_plan.tuned_pair_runs(
            config, w.dataset, w.variant, layout.RANKS_FILE
        ),
    output:
        **report_table("tuned_{variant}", "tuned.rst", "Tuned pairs"),
    params:
        n_resamples=10_000,
        seed=0,
    log:
        "logs/{dataset}/report/tuned_{variant}.log",
    benchmark:
        layout.benchmark_file("report/tuned_{variant}")
    wildcard_constraints:
        variant=UNTUNED_PATTERN,
    resources:
        mem_mb=2000,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report_tables.py"


# A few test sessions explained by one LLM run (llm4sbr_core/recommend/page.py): each
# view's answer, grounded items and gate, the top items next to the backbone alone. Asked
# for by name (results/{dataset}/figures/explain.html); in the report when it is built:
# `snakemake --report report.html -- report_all results/{dataset}/figures/explain.html`.
rule report_explain:
    input:
        unpack(explain_inputs),
    output:
        html=report(
            f"{REPORT_FIGURES}/explain.html",
            caption="../report/explain.rst",
            category="Figures",
            subcategory="{dataset}",
            labels={"figure": "Explained test sessions"},
        ),
    params:
        run=lambda w: explain_run(w.dataset),
        sessions=5,
        k=10,
        config={"prompts": config["prompts"], "localize": config["localize"],
                "llm": public_llm_block(config["llm"])},
    log:
        "logs/{dataset}/report/explain.log",
    localrule: True
    conda:
        "../envs/gpu.yaml"
    script:
        "../workflow_scripts/report_explain.py"
