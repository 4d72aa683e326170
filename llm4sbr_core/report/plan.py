"""Which run files each table and figure reads, from the config (rules/report.smk).

Every function returns only runs the config's ``train:`` section lists (backbones ×
variants × seeds, and ``train.llmseqsim`` aggregations), so asking for one table never
plans a run the config does not ask for; a table whose variants are not configured simply
has no rows for them. :func:`report_targets` lists, per dataset, the tables and figures
whose runs are configured (rule ``report_all``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..layout import (
    FIGURES_DIR,
    KNN_RUN_DIR,
    LLMSEQSIM_RUN_DIR,
    METRICS_FILE,
    TABLES_DIR,
    fill,
    run_file,
)
from ..variants import TUNED_SUFFIX, parse_variant

# No pandas / matplotlib imports here: the Snakefile imports this module.

#: The variants each table and figure shows, in display order.
TABLE3_VARIANTS: tuple[str, ...] = ("base", "llm4sbr")
TABLE4_VARIANTS: tuple[str, ...] = ("llm4sbr", "wo_au", "wo_long", "wo_short", "normal",
                                    "wo_sbr", "base")
FIG5_VARIANTS: tuple[str, ...] = ("wo_sbr", "base", "textinit", "llm4sbr")
FIG6_VARIANTS: tuple[str, ...] = ("normal", "wo_long", "wo_short", "llm4sbr")
#: The decomposition of a backbone's gain (report/decomposition.py), in display order,
#: per intent source: LLM intents (with the random, shuffled and item-title controls) and
#: item-title intents (no LLM at all; with the random and shuffled controls).
DECOMPOSITION_SOURCES: dict[str, tuple[str, ...]] = {
    "llm": ("base", "wo_au", "wo_a", "wo_u", "llm4sbr-random", "llm4sbr-shuffled",
            "llm4sbr-items", "llm4sbr"),
    "items": ("base", "wo_au-items", "wo_a-items", "wo_u-items", "llm4sbr-items-random",
              "llm4sbr-items-shuffled", "llm4sbr-items"),
}
DECOMPOSITION_VARIANTS: tuple[str, ...] = DECOMPOSITION_SOURCES["llm"]


def run_files(dataset: str, backbones: Iterable[str], variants: Iterable[str],
              seeds: Iterable[int], name: str = METRICS_FILE) -> list[str]:
    """``name`` in the run folder (``layout.RUN_DIR``) of each run of the grid, in
    backbone, variant, seed order."""
    variants, seeds = list(variants), list(seeds)
    return [run_file(dataset, b, v, s, name) for b in backbones for v in variants for s in seeds]


def r_of_variant(variant: str, default_r: int) -> int | None:
    """The localization r of a Fig. 7 variant: ``llm4sbr-r3`` → 3, ``llm4sbr`` →
    ``default_r``; None for every other variant (other kinds, -tau, -items, -shuffled)."""
    spec = parse_variant(variant)
    if spec.kind != "llm4sbr" or spec.tau is not None or spec.source != "llm" or spec.shuffled:
        return None
    return spec.r if spec.r is not None else int(default_r)


def _train(config: Mapping[str, Any]) -> Mapping[str, Any]:
    return config.get("train") or {}


def configured_variants(config: Mapping[str, Any], wanted: Iterable[str] | None = None
                        ) -> list[str]:
    """The config's variants (in config order), restricted to ``wanted`` if given."""
    variants = list(_train(config).get("variants") or [])
    if wanted is None:
        return variants
    wanted = set(wanted)
    return [v for v in variants if v in wanted]


def runs_of(config: Mapping[str, Any], dataset: str, variants: Sequence[str],
            name: str = METRICS_FILE) -> list[str]:
    """The run files of the configured backbones × ``variants`` × seeds."""
    train = _train(config)
    return run_files(dataset, train.get("backbones") or [], variants, train.get("seeds") or [],
                     name)


def table3_runs(config: Mapping[str, Any], dataset: str, name: str = METRICS_FILE
                ) -> list[str]:
    """The base and llm4sbr runs of every configured backbone, and the kNN baselines."""
    return (runs_of(config, dataset, configured_variants(config, TABLE3_VARIANTS), name)
            + knn_runs(config, dataset, name))


def table4_runs(config: Mapping[str, Any], dataset: str) -> list[str]:
    return runs_of(config, dataset, configured_variants(config, TABLE4_VARIANTS))


def all_runs(config: Mapping[str, Any], dataset: str) -> list[str]:
    """Every configured training run (Table 5, training curves)."""
    return runs_of(config, dataset, configured_variants(config))


def variant_runs(config: Mapping[str, Any], dataset: str) -> list[str]:
    """Every configured run, LLMSeqSim and the kNN baselines included (the
    variants-against-base table)."""
    return all_runs(config, dataset) + llmseqsim_runs(config, dataset) + knn_runs(config,
                                                                                 dataset)


def knn_runs(config: Mapping[str, Any], dataset: str, name: str = METRICS_FILE) -> list[str]:
    """``name`` of the run (``layout.KNN_RUN_DIR``) of each method of ``train.knn``."""
    return [f"{fill(KNN_RUN_DIR, dataset=dataset, method=m)}/{name}"
            for m in _train(config).get("knn") or []]


def decomposition_runs(config: Mapping[str, Any], dataset: str, backbone: str,
                       name: str = METRICS_FILE, source: str = "llm") -> list[str]:
    """The configured variants of ``DECOMPOSITION_SOURCES[source]`` of one backbone."""
    train = _train(config)
    if backbone not in (train.get("backbones") or []):
        return []
    return run_files(dataset, [backbone],
                     configured_variants(config, DECOMPOSITION_SOURCES[source]),
                     train.get("seeds") or [], name)


def decomposition_sources(config: Mapping[str, Any]) -> list[str]:
    """The intent sources whose decomposition has a step to test: the source's ``wo_au``
    and at least one more of its variants are configured."""
    out = []
    for source, variants in DECOMPOSITION_SOURCES.items():
        configured = configured_variants(config, variants)
        if variants[1] in configured and len(configured) >= 2:
            out.append(source)
    return out


def decomposition_table_name(backbone: str, source: str) -> str:
    """``decomposition_{backbone}`` (LLM intents) or ``decomposition_{backbone}-{source}``."""
    return f"decomposition_{backbone}" + ("" if source == "llm" else f"-{source}")


def tuned_pairs(config: Mapping[str, Any]) -> list[str]:
    """The variants V whose tuned pair is configured: ``base-tuned`` and ``V-tuned``."""
    configured = configured_variants(config)
    if "base" + TUNED_SUFFIX not in configured:
        return []
    return [parse_variant(v).untuned for v in configured
            if parse_variant(v).tuned and parse_variant(v).untuned != "base"]


def tuned_pair_runs(config: Mapping[str, Any], dataset: str, variant: str,
                    name: str = METRICS_FILE) -> list[str]:
    """The configured runs of base and ``variant``, each with and without ``-tuned``."""
    wanted = ("base", variant, "base" + TUNED_SUFFIX, variant + TUNED_SUFFIX)
    return runs_of(config, dataset, configured_variants(config, wanted), name)


def fig5_runs(config: Mapping[str, Any], dataset: str) -> list[str]:
    return runs_of(config, dataset, configured_variants(config, FIG5_VARIANTS))


def llmseqsim_runs(config: Mapping[str, Any], dataset: str) -> list[str]:
    """metrics.json of the LLMSeqSim run (``layout.LLMSEQSIM_RUN_DIR``) of each
    aggregation of ``train.llmseqsim`` (absent or empty: none)."""
    aggregations = list(_train(config).get("llmseqsim") or [])
    return [f"{fill(LLMSEQSIM_RUN_DIR, dataset=dataset, aggregation=a)}/{METRICS_FILE}"
            for a in aggregations]


def fig6_runs(config: Mapping[str, Any], dataset: str) -> list[str]:
    return runs_of(config, dataset, configured_variants(config, FIG6_VARIANTS))


def fig7_variants(config: Mapping[str, Any]) -> list[str]:
    r = int((config.get("localize") or {}).get("r", 5))
    return [v for v in configured_variants(config) if r_of_variant(v, r) is not None]


def fig7_runs(config: Mapping[str, Any], dataset: str) -> list[str]:
    return runs_of(config, dataset, fig7_variants(config))


def uses_llm(config: Mapping[str, Any]) -> bool:
    """True when some configured variant reads localized LLM answers (so the grounding
    statistics of Fig. 4 are made anyway; the -items controls read none)."""
    return any(parse_variant(v).reads_llm_intents for v in configured_variants(config))


def report_targets(config: Mapping[str, Any], datasets: Iterable[str]) -> list[str]:
    """The tables and figures of every dataset whose runs are configured (Fig. 6 when a
    view variant besides llm4sbr is, Fig. 7 when at least two values of r are)."""
    targets: list[str] = []
    for d in datasets:
        tables, figures = fill(TABLES_DIR, dataset=d), fill(FIGURES_DIR, dataset=d)
        targets += [f"{tables}/table2.md", f"{tables}/runtime.md", f"{figures}/runtime.png"]
        if table3_runs(config, d):
            targets.append(f"{tables}/table3.md")
        if table4_runs(config, d):
            targets.append(f"{tables}/table4.md")
        if all_runs(config, d):
            targets += [f"{tables}/table5.md", f"{figures}/training_curves.png"]
        if "base" in configured_variants(config) and len(variant_runs(config, d)) > len(
                runs_of(config, d, ["base"])):
            targets.append(f"{tables}/variants.md")
        targets += [f"{tables}/{decomposition_table_name(b, source)}.md"
                    for source in decomposition_sources(config)
                    for b in _train(config).get("backbones") or []]
        targets += [f"{tables}/tuned_{v}.md" for v in tuned_pairs(config)]
        if fig5_runs(config, d) or llmseqsim_runs(config, d):
            targets.append(f"{figures}/fig5_peers.png")
        # Figs. 6 and 7 compare: only when something besides plain llm4sbr is configured.
        if configured_variants(config, set(FIG6_VARIANTS) - {"llm4sbr"}) and \
                fig6_runs(config, d):
            targets.append(f"{figures}/fig6_views.png")
        r = int((config.get("localize") or {}).get("r", 5))
        if len({r_of_variant(v, r) for v in fig7_variants(config)}) > 1 and fig7_runs(config, d):
            targets.append(f"{figures}/fig7_r.png")
        if uses_llm(config):
            targets.append(f"{figures}/fig4_localization.md")
    return targets
