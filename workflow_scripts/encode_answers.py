"""rule encode_answers → llm4sbr_core.text.encoder.encode_answer_table."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.text.encoder import EncoderSettings, encode_answer_table

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
encode_answer_table(smk.input.answers, smk.output.vectors, smk.output.stats,
                    EncoderSettings.from_config(smk.params.encoder), smk.params.cache_dir,
                    threads=smk.threads)
