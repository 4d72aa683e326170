# Intent localization (paper §4.1.3, eq. 5): each answer vector → the r most similar real
# items, summed with their own cosine similarities as weights. r = 0 keeps the raw answer
# vector (the paper's Fig. 7). Also writes grounding statistics per view.


rule localize_intents:
    input:
        unpack(data_inputs),
        item_vectors=layout.ITEM_VECTORS,
        answer_vectors=layout.ANSWER_VECTORS,
        answers=layout.ANSWERS_FILE,
    output:
        intents=layout.INTENT_FILE,
        topr=layout.INTENT_TOPR,
        grounding=layout.INTENT_GROUNDING,
    params:
        backend=config["localize"]["backend"],
        batch_size=config["localize"]["batch_size"],
    log:
        "logs/{dataset}/localize_intents/{llm}/{encoder}/r{r}/{view}.log",
    benchmark:
        layout.benchmark_file("localize_intents/{llm}/{encoder}/r{r}.{view}")
    wildcard_constraints:
        encoder=re.escape(ENCODER_NAME),
        llm=re.escape(LLM_NAME),
        view="|".join(config["prompts"]["qualifiers"]),
        r=r"0|[1-9][0-9]*",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=0,
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/localize_intents.py"
