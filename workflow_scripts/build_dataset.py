"""rule build_dataset → llm4sbr_core.data.build_dataset."""

from pathlib import Path

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.data.build import DataOutputs, build_dataset
from llm4sbr_core.logs import setup_logging

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
outputs = DataOutputs(**{name: Path(getattr(smk.output, name)) for name in
                         ("train", "valid", "test", "stats_json", "stats_md")},
                      items=Path(smk.output.item_table))
build_dataset(smk.params.settings, smk.params.raw_dir, outputs, smk.wildcards.dataset)
