"""rule gather_answers → llm4sbr_core.llm.generate.gather_answers."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.llm.generate import gather_answers
from llm4sbr_core.logs import setup_logging

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
gather_answers(smk.input.prompts, smk.input.shards, smk.output.answers, smk.output.stats)
