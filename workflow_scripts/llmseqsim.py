"""rule llmseqsim → llm4sbr_core.train.llmseqsim_run.run_llmseqsim."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.train.llmseqsim_run import run_llmseqsim
from llm4sbr_core.train.outputs import RunOutputs

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
run_llmseqsim(smk.input.valid, smk.input.test, smk.input.item_vectors,
              RunOutputs(smk.output.metrics, smk.output.ranks, model=None),
              smk.wildcards.aggregation,
              config={"dataset": smk.wildcards.dataset, "encoder": smk.params.encoder},
              threads=smk.threads)
