"""rules report_table2 … report_table5, report_variants, report_decomposition,
report_tuned → llm4sbr_core.report.tables, .compare, .decomposition, .tuned."""

import logging

import _repo  # noqa: F401  (puts the checkout on sys.path)

from llm4sbr_core.logs import setup_logging
from llm4sbr_core.report import tables
from llm4sbr_core.report.render import write_table

smk = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(smk.log)
# The sessions of the test samples, where ranks.parquet has no session_id: the rule's
# test samples file if it declares one (else every sample is its own cluster, and the
# table's note says so).
test_samples = getattr(smk.input, "test_samples", None) or None
if smk.rule == "report_table2":
    table = tables.table2(smk.input)
elif smk.rule == "report_table3":
    table = tables.table3(smk.input.metrics, n_resamples=smk.params.n_resamples,
                          seed=smk.params.seed, test_samples=test_samples)
elif smk.rule == "report_table4":
    table = tables.table4(smk.input.metrics)
elif smk.rule == "report_variants":
    from llm4sbr_core.report.compare import variant_comparison

    table = variant_comparison(smk.input.metrics, n_resamples=smk.params.n_resamples,
                               seed=smk.params.seed, title=smk.params.title,
                               test_samples=test_samples)
elif smk.rule in ("report_decomposition", "report_decomposition_items"):
    from llm4sbr_core.report.decomposition import decomposition_table

    table = decomposition_table(smk.input.metrics, smk.wildcards.backbone, smk.params.source,
                                n_resamples=smk.params.n_resamples, seed=smk.params.seed,
                                test_samples=test_samples)
elif smk.rule == "report_tuned":
    from llm4sbr_core.report.tuned import tuned_pairs_table

    table = tuned_pairs_table(smk.input.metrics, smk.wildcards.variant,
                              n_resamples=smk.params.n_resamples, seed=smk.params.seed,
                              test_samples=test_samples)
else:
    table = tables.table5(smk.input.metrics)
for warning in table.warnings:
    logging.getLogger("llm4sbr_core.report").warning("%s: %s", table.title, warning)
write_table(table, smk.output.csv, smk.output.md, smk.output.html)
