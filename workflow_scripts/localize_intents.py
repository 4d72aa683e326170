"""rule localize_intents → llm4sbr_core.localize_stage.localize_files."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.localize_stage import localize_files
from llm4sbr_core.logs import setup_logging

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
localize_files(samples={split: smk.input[split] for split in ("train", "valid", "test")},
               item_table=smk.input.item_table, item_vectors=smk.input.item_vectors,
               answer_vectors=smk.input.answer_vectors, answers_table=smk.input.answers,
               r=int(smk.wildcards.r), backend=smk.params.backend,
               batch_size=smk.params.batch_size, intents_path=smk.output.intents,
               topr_path=smk.output.topr, grounding_path=smk.output.grounding,
               threads=smk.threads)
