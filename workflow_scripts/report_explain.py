"""rule report_explain → llm4sbr_core.recommend.page.write_explain_page."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.recommend.page import write_explain_page

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
write_explain_page(smk.params.run, smk.output.html, sessions=smk.params.sessions,
                   k=smk.params.k, config=smk.params.config)
