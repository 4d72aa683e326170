"""rule build_prompts → llm4sbr_core.prompts.build_prompts."""

import _repo  # noqa: F401  (puts the checkout on sys.path)
import pandas as pd

from llm4sbr_core.io import AtomicFiles
from llm4sbr_core.logs import setup_logging
from llm4sbr_core.prompts import PromptSettings, build_prompts

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
samples = {split: pd.read_parquet(smk.input[split]) for split in ("train", "valid", "test")}
prompts = build_prompts(samples, pd.read_parquet(smk.input.item_table),
                        PromptSettings.from_config(smk.params.prompts), smk.wildcards.view)
with AtomicFiles() as files:
    files.write_parquet(smk.output[0], prompts)
