"""rule report_runtime → llm4sbr_core.report.runtime.runtime_table and
llm4sbr_core.report.figures.runtime_figure."""

from pathlib import Path

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.report import figures
from llm4sbr_core.report.render import write_table
from llm4sbr_core.report.runtime import runtime_table

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
# Every benchmark file there is now (the table is redrawn whenever a run it lists
# changes; not on a benchmark file alone, so that a finished workflow plans nothing).
root = smk.params.root
paths = sorted(str(p) for p in Path(root).rglob("*.tsv"))
write_table(runtime_table(paths, root), smk.output.csv, smk.output.md, smk.output.html)
figures.runtime_figure(paths, root, smk.output.figure)
