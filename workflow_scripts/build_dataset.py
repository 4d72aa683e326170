"""rule build_dataset → llm4sbr_core.data.build_dataset."""

from pathlib import Path

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.data.build import build_dataset
from llm4sbr_core.logs import setup_logging

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
build_dataset(smk.params.settings, smk.params.raw_dir, Path(smk.output.stats_json).parent,
              smk.wildcards.dataset)
