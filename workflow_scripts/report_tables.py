"""rules report_table2 … report_table5, report_variants → llm4sbr_core.report.tables,
llm4sbr_core.report.compare."""

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.report import tables
from llm4sbr_core.report.render import write_table

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
if smk.rule == "report_table2":
    table = tables.table2(smk.input)
elif smk.rule == "report_table3":
    table = tables.table3(smk.input.metrics, n_resamples=smk.params.n_resamples,
                          seed=smk.params.seed)
elif smk.rule == "report_table4":
    table = tables.table4(smk.input.metrics)
elif smk.rule == "report_variants":
    from llm4sbr_core.report.compare import variant_comparison

    table = variant_comparison(smk.input.metrics, n_resamples=smk.params.n_resamples,
                               seed=smk.params.seed, title=smk.params.title)
else:
    table = tables.table5(smk.input.metrics)
write_table(table, smk.output.csv, smk.output.md, smk.output.html)
