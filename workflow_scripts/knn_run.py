"""rule knn_run → llm4sbr_core.train.knn_run.run_knn."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.train.knn_run import run_knn
from llm4sbr_core.train.outputs import RunOutputs

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
run_knn(smk.input.train, smk.input.valid, smk.input.test, smk.input.item_table,
        RunOutputs(smk.output.metrics, smk.output.ranks, model=None), smk.wildcards.method,
        config={"dataset": smk.wildcards.dataset}, threads=smk.threads)
