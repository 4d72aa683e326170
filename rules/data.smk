# Data stage: official raw files → session samples (results/{dataset}/data/).


# One download rule per raw folder whose files an official source provides. A source
# ships several files (a zip, a wheel), so they come in one job. A `run:` block, not a
# `script:`: Snakemake re-runs a script rule whose outputs are older than the script, and
# raw files a user already has (or a read-only copy) must never be fetched again.
for _folder, (_source, _files) in downloadable_folders().items():

    rule:
        name:
            f"download_{_folder.replace('-', '_').replace('.', '_')}"
        output:
            [f"{RAW_DIR}/{_folder}/{f}" for f in _files],
        params:
            source=_source,
            files=_files,
            dest=lambda w, output: os.path.dirname(output[0]),
        log:
            f"logs/{_folder}/download.log",
        # Local: on a cluster it runs where Snakemake runs (login nodes have internet,
        # compute nodes often not).
        localrule: True
        retries: 2
        resources:
            mem_mb=1000,
            runtime=60,
        run:
            from llm4sbr_core.data.sources import download_source
            from llm4sbr_core.logs import log_to

            with log_to(log[0]):
                download_source(params.source, params.dest, params.files)


rule build_dataset:
    input:
        lambda w: raw_files(w.dataset),
    output:
        train=fill(layout.SPLIT_FILE, split="train"),
        valid=fill(layout.SPLIT_FILE, split="valid"),
        test=fill(layout.SPLIT_FILE, split="test"),
        item_table=layout.ITEMS_FILE,
        stats_json=layout.STATS_JSON,
        stats_md=layout.STATS_MD,
    params:
        settings=lambda w: dataset_settings(config, w.dataset),
        raw_dir=RAW_DIR,
    log:
        "logs/{dataset}/build_dataset.log",
    benchmark:
        layout.benchmark_file("build_dataset")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/build_dataset.py"
