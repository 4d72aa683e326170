"""download_* rules → llm4sbr_core.data.sources.download_source."""

import _repo  # noqa: F401  (puts the checkout on sys.path)
from llm4sbr_core.data.sources import download_source
from llm4sbr_core.logs import setup_logging

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
download_source(smk.params.source, smk.params.dest, smk.params.files)
