"""rule llm_generate_shard → llm4sbr_core.llm.generate.generate_shard."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.llm.generate import generate_shard, generator_settings
from llm4sbr_core.logs import setup_logging

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
generate_shard(list(smk.input.prompts), int(smk.wildcards.shard), int(smk.wildcards.shards),
               generator_settings(smk.params.llm), smk.params.cache_dir,
               smk.output.answers, smk.output.stats, chunk_size=smk.params.llm["chunk_size"],
               threads=smk.threads)
