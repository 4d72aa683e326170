"""rule train_run → llm4sbr_core.train.trainer.run_training."""

from pathlib import Path

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.train.trainer import load_training_graph, run_training

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
graph_path = getattr(smk.input, "graph", None)
intents = {name.removeprefix("intents_"): path for name, path in smk.input.items()
           if name.startswith("intents_")}
run_training(smk.params.run, Path(smk.input.train).parent, Path(smk.output.metrics).parent,
             graph=load_training_graph(graph_path) if graph_path else None,
             intents=intents, item_vectors=getattr(smk.input, "item_vectors", None),
             threads=smk.threads)
