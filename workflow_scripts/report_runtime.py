"""rule report_runtime → llm4sbr_core.report.runtime.runtime_table and
llm4sbr_core.report.figures.runtime_figure."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.report import figures
from llm4sbr_core.report.render import write_table
from llm4sbr_core.report.runtime import runtime_table

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
root = smk.params.root
paths = [f"{root}/{path}.tsv" for path, _ in smk.params.listing]
write_table(runtime_table(paths, root), smk.output.csv, smk.output.md, smk.output.html)
figures.runtime_figure(paths, root, smk.output.figure)
