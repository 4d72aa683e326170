# Training stage: samples → one trained model per dataset × backbone × variant × seed,
# selected on validation, ranked once on test (results/{dataset}/runs/...).


# The graph of TRAINING sessions some backbones need (GCE-GNN, S²-DHCN), built once per
# dataset and backbone and shared by all their variants and seeds.
rule build_training_graph:
    input:
        train=fill(layout.SPLIT_FILE, split="train"),
        item_table=layout.ITEMS_FILE,
    output:
        layout.GRAPH_FILE,
    params:
        backbone_params=lambda w: TRAIN["backbone_params"].get(w.backbone, {}),
    log:
        "logs/{dataset}/build_training_graph/{backbone}.log",
    benchmark:
        layout.benchmark_file("build_training_graph/{backbone}")
    wildcard_constraints:
        backbone="|".join(backbone_names()),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/build_training_graph.py"


# One run. A killed job leaves last.pt (the last completed epoch) in the run folder; the
# re-run job (--rerun-incomplete, or a retry) continues from it with identical results.
# Runtime settings: `gpu` (0 here, 1 in profiles/slurm), `mem_mb`, `runtime`, `threads`
# (torch's CPU threads unless train.num_threads is set) are set in profiles.
rule train_run:
    input:
        unpack(train_inputs),
    output:
        metrics=f"{RUN_DIR}/{layout.METRICS_FILE}",
        ranks=f"{RUN_DIR}/{layout.RANKS_FILE}",
        model=f"{RUN_DIR}/{layout.MODEL_FILE}",
    params:
        run=train_run_config,
    log:
        f"{RUN_DIR}/train.log",
    benchmark:
        layout.benchmark_file("train/{backbone}.{variant}.seed{seed}")
    wildcard_constraints:
        backbone="|".join(backbone_names()),
        variant=variant_pattern(),
        seed=r"0|[1-9][0-9]*",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=480,
        gpu=0,
    conda:
        "../envs/gpu.yaml"
    script:
        "../workflow_scripts/train_run.py"


# One configuration of the validation search of a `-tuned` variant (train.tuning;
# llm4sbr_core/train/tuning.py): an ordinary run of the UNTUNED variant with the trial's
# settings and seed train.tuning.seed, selected on validation as every run is.
rule tune_trial:
    input:
        unpack(train_inputs),
    output:
        metrics=f"{layout.TRIAL_DIR}/{layout.METRICS_FILE}",
        ranks=f"{layout.TRIAL_DIR}/{layout.RANKS_FILE}",
    params:
        run=trial_run_config,
    log:
        f"{layout.TRIAL_DIR}/train.log",
    benchmark:
        layout.benchmark_file("tuning/{backbone}.{variant}.trial{trial}")
    wildcard_constraints:
        backbone="|".join(backbone_names()),
        variant=UNTUNED_PATTERN,
        trial=r"0|[1-9][0-9]*",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=480,
        gpu=0,
    conda:
        "../envs/gpu.yaml"
    script:
        "../workflow_scripts/train_run.py"


# The search's outcome: the trial with the best validation select_metric, which every
# seed of the `-tuned` variant trains with (rule train_run).
rule tune_select:
    input:
        trials=trial_metrics,
    output:
        layout.TUNING_SELECTION,
    params:
        tuning=TRAIN.get("tuning", {}),
        select_metric=TRAIN["select_metric"],
    log:
        "logs/{dataset}/tune_select/{backbone}.{variant}.log",
    wildcard_constraints:
        backbone="|".join(backbone_names()),
        variant=UNTUNED_PATTERN,
    localrule: True
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/tune_select.py"


# LLMSeqSim (Fig. 5's text-only peer): no session model, no training, no seed. Its
# outputs follow the training runs' contract so tables treat it as one more run.
rule llmseqsim:
    input:
        unpack(data_inputs),
        item_vectors=fill(layout.ITEM_VECTORS, encoder=ENCODER_NAME),
    output:
        metrics=f"{layout.LLMSEQSIM_RUN_DIR}/{layout.METRICS_FILE}",
        ranks=f"{layout.LLMSEQSIM_RUN_DIR}/{layout.RANKS_FILE}",
    params:
        encoder=ENCODER_NAME,
    log:
        "logs/{dataset}/llmseqsim/{aggregation}.log",
    benchmark:
        layout.benchmark_file("llmseqsim/{aggregation}")
    wildcard_constraints:
        aggregation="|".join(LLMSEQSIM_AGGREGATIONS),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/llmseqsim.py"


# The session-kNN baselines (POP, SKNN, V-SKNN, STAN, V-STAN): no training, no seed; each
# tuned on the validation split, the test split ranked once, outputs in the runs' contract.
rule knn_run:
    input:
        unpack(data_inputs),
    output:
        metrics=f"{layout.KNN_RUN_DIR}/{layout.METRICS_FILE}",
        ranks=f"{layout.KNN_RUN_DIR}/{layout.RANKS_FILE}",
    log:
        "logs/{dataset}/knn/{method}.log",
    benchmark:
        layout.benchmark_file("knn/{method}")
    wildcard_constraints:
        method="|".join(KNN_METHODS),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/knn_run.py"
