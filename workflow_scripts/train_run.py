"""rule train_run → llm4sbr_core.train.run.run_training."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.train.outputs import RunOutputs
from llm4sbr_core.train.run import RunInputs, run_training
from llm4sbr_core.train.settings import RunSettings

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
inputs = RunInputs(
    train=smk.input.train, valid=smk.input.valid, test=smk.input.test,
    items=smk.input.item_table,
    intents={name.removeprefix("intents_"): path for name, path in smk.input.items()
             if name.startswith("intents_")},
    item_vectors=getattr(smk.input, "item_vectors", None),
    graph=getattr(smk.input, "graph", None))
run_training(RunSettings.from_record(smk.params.run), inputs,
             RunOutputs(smk.output.metrics, smk.output.ranks, smk.output.model),
             threads=smk.threads)
