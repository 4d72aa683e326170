"""rule report_localization → llm4sbr_core.report.grounding.localization_report."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.report.grounding import localization_report
from llm4sbr_core.report.render import write_markdown

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
write_markdown(localization_report(smk.input, n=smk.params.examples), smk.output.md,
               smk.output.html)
