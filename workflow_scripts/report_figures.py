"""rules report_fig5, report_fig6, report_fig7, report_training_curves →
llm4sbr_core.report.figures."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.report import figures

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
if smk.rule == "report_fig5":
    figures.fig5_peers(smk.input.metrics, smk.input.llmseqsim, smk.output.figure)
elif smk.rule == "report_fig6":
    figures.fig6_views(smk.input.metrics, smk.output.figure)
elif smk.rule == "report_fig7":
    figures.fig7_r_sweep(smk.input.metrics, smk.output.figure, default_r=smk.params.default_r)
else:
    figures.training_curves(smk.input.metrics, smk.output.figure)
