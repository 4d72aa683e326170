# Prompts: samples → one prompt per sample and view (results/{dataset}/prompts/{view}.parquet).


rule build_prompts:
    input:
        unpack(data_inputs),
    output:
        layout.PROMPTS_FILE,
    params:
        prompts=config["prompts"],
    log:
        "logs/{dataset}/build_prompts/{view}.log",
    benchmark:
        layout.benchmark_file("build_prompts/{view}")
    wildcard_constraints:
        view="|".join(config["prompts"]["qualifiers"]),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/build_prompts.py"
