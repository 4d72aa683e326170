"""rule build_training_graph → llm4sbr_core.train.run.write_training_graph."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.train.run import write_training_graph

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
write_training_graph(smk.wildcards.backbone, smk.input.train, smk.input.item_table,
                     smk.output[0], smk.params.backbone_params)
