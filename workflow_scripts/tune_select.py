"""rule tune_select → llm4sbr_core.train.tuning.select_trial."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.train.tuning import select_trial, trial_grid

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
select_trial(trial_grid({"tuning": smk.params.tuning}, smk.wildcards.variant),
             list(smk.input.trials), smk.params.select_metric, smk.output[0])
