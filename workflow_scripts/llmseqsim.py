"""rule llmseqsim → llm4sbr_core.models.llmseqsim.run_llmseqsim."""

from pathlib import Path

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.models.llmseqsim import run_llmseqsim

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
run_llmseqsim(Path(smk.input.test).parent, smk.input.item_vectors,
              Path(smk.output.metrics).parent, smk.wildcards.aggregation,
              config={"dataset": smk.wildcards.dataset, "encoder": smk.params.encoder},
              threads=smk.threads)
