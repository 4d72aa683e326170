# Text encoding: item texts and LLM answers → float32 vectors (results/{dataset}/text/...).
# Vectors are also kept by text hash under {cache_dir}/embeddings/, so a re-run after a
# code or config edit encodes only texts never encoded before.


rule encode_items:
    input:
        item_table=layout.ITEMS_FILE,
        model=ENCODER_MODEL_INPUT,  # the snapshot of a hub-named encoder, or nothing
    output:
        vectors=layout.ITEM_VECTORS,
        stats=layout.ITEM_VECTORS_STATS,
    params:
        encoder=config["encoder"],
        cache_dir=config["cache_dir"],
    log:
        "logs/{dataset}/encode_items/{encoder}.log",
    benchmark:
        layout.benchmark_file("encode_items/{encoder}")
    wildcard_constraints:
        encoder=re.escape(ENCODER_NAME),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=0,
    conda:
        "../envs/gpu.yaml"
    script:
        "../workflow_scripts/encode_items.py"


rule encode_answers:
    input:
        answers=layout.ANSWERS_FILE,
        model=ENCODER_MODEL_INPUT,
    output:
        vectors=layout.ANSWER_VECTORS,
        stats=layout.ANSWER_VECTORS_STATS,
    params:
        encoder=config["encoder"],
        cache_dir=config["cache_dir"],
    log:
        "logs/{dataset}/encode_answers/{encoder}/{llm}/{view}.log",
    benchmark:
        layout.benchmark_file("encode_answers/{encoder}/{llm}/{view}")
    wildcard_constraints:
        encoder=re.escape(ENCODER_NAME),
        llm=re.escape(LLM_NAME),
        view="|".join(config["prompts"]["qualifiers"]),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0,
    conda:
        "../envs/gpu.yaml"
    script:
        "../workflow_scripts/encode_answers.py"
