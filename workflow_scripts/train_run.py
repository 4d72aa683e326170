"""rules train_run and tune_trial → llm4sbr_core.train.run.run_training."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.train.outputs import RunOutputs
from llm4sbr_core.train.run import RunInputs, run_training
from llm4sbr_core.train.settings import RunSettings
from llm4sbr_core.train.tuning import apply_selection

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
inputs = RunInputs(
    train=smk.input.train, valid=smk.input.valid, test=smk.input.test,
    items=smk.input.item_table,
    intents={name.removeprefix("intents_"): path for name, path in smk.input.items()
             if name.startswith("intents_")},
    item_vectors=getattr(smk.input, "item_vectors", None),
    graph=getattr(smk.input, "graph", None))
settings, tuning = RunSettings.from_record(smk.params.run), None
if "tuning" in smk.input.keys():
    settings, tuning = apply_selection(settings, smk.input.tuning)
run_training(settings, inputs,
             RunOutputs(smk.output.metrics, smk.output.ranks, getattr(smk.output, "model", None)),
             threads=smk.threads, tuning=tuning)
