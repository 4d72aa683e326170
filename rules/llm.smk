# LLM generation: prompts → answers, scattered over `llm.shards` jobs that answer the
# run's views together (sharded by session: a sample's views share their prompt prefix) and
# gathered per view into results/{dataset}/llm/{llm}/{view}.parquet. Every answer is also
# kept in the content-keyed store under {cache_dir}/answers/, so a job Snakemake re-runs
# (code or params changed, another shard count) generates only prompts never answered.


from llm4sbr_core.llm.common import public_llm_block


# The LLM stage's cost plan (rules/common.smk) at the start of a run.
onstart:
    print_llm_plan()


# One shard. Heavy: declare the GPU so the SLURM profile can place it (profiles/slurm
# sets gpu=1 for this rule); on a CPU the job uses `threads` torch threads.
# params are recorded in .snakemake/metadata and printed in logs: they get the `llm:`
# block without anything secret (public_llm_block); the API key is read from the
# environment variable named by llm.openai.api_key_env inside the job only.
rule llm_generate_shard:
    input:
        prompts=shard_prompt_files,
        model=LLM_MODEL_INPUT,  # the snapshot of a hub-named model (rules/models.smk), or nothing
    output:
        answers=layout.ANSWER_SHARD,
        stats=layout.ANSWER_SHARD_STATS,
    params:
        llm=public_llm_block(config["llm"]),
        cache_dir=config["cache_dir"],
    log:
        "logs/{dataset}/llm_generate_shard/{llm}/{views}.{shard}-of-{shards}.log",
    benchmark:
        layout.benchmark_file("llm_generate_shard/{llm}/{views}.{shard}-of-{shards}")
    wildcard_constraints:
        llm=re.escape(LLM_NAME),
        views=VIEW_GROUP_PATTERN,
        shard=r"0|[1-9][0-9]*",
        shards=r"[1-9][0-9]*",
    threads: LLM_THREADS
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=0,
    conda:
        LLM_CONDA_ENV
    script:
        "../workflow_scripts/llm_generate_shard.py"


rule gather_answers:
    input:
        prompts=layout.PROMPTS_FILE,
        shards=lambda w: answer_shards(w.dataset, w.llm, w.view),
    output:
        answers=layout.ANSWERS_FILE,
        stats=layout.ANSWERS_STATS,
    log:
        "logs/{dataset}/gather_answers/{llm}/{view}.log",
    wildcard_constraints:
        llm=re.escape(LLM_NAME),
        view="|".join(config["prompts"]["qualifiers"]),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/gather_answers.py"
