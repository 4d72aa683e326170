"""Comparisons of finished runs for the report's tables, with the design's own units.

A comparison sets side B (a variant, e.g. ``llm4sbr``) against side A (``base`` of the
same backbone). :func:`compare_sides` reads both sides' ``ranks.parquet`` and runs
:func:`.inference.paired_two_level_bootstrap` on every tested metric;
:func:`assess_family` corrects the p-values of one table with Holm and puts each result
in words;
:func:`family_notes` says what was tested and when a table cannot tell. The units:

* **seeds, paired**: seed s of B against seed s of A, common seeds only
  (:func:`pair_by_seed`; a seed on one side only is dropped, and the note names it).
  A deterministic method (one run without training randomness: LLMSeqSim, the kNN
  baselines, :data:`DETERMINISTIC_BACKBONES`) is paired with *every* seed of the other
  side: its side has no seed variance, the other side's is covered.
* **sessions, as clusters**: the test samples are prefixes of sessions, so a session's
  samples are resampled together. Its ``session_id`` comes from ranks.parquet, else from
  the test samples file (``sample_id``, ``session_id``) when one is given; without either,
  every sample is its own cluster and the note says so (p-values then too small).
* per metric: Δ = mean(B) − mean(A) over the seed pairs and samples, its 95 % CI and the
  two-sided p of a t test with the two-level bootstrap's SE and guarded df; the Holm
  adjusted p over every test of the table (the family); the verdict of
  :func:`.inference.verdict` ("B better" / "A better" / "no detectable difference, CI"),
  "equivalent within ±m" only when the two one-sided tests at margin m reject after Holm
  over the same family; and the minimum detectable difference at 80 % power
  (:meth:`.inference.InferenceResult.mdd`).

The sample-level functions further down (:func:`per_sample_metric`, :func:`seed_average`,
:func:`paired_ttest`, :func:`bootstrap_test`, :func:`paired_tests`, :func:`compare_runs`)
average each sample over seeds and test over samples: they ignore training randomness and
the sessions, and their p-values are too small (``benchmarks/calibration.py``). No table
uses them; they stay for that calibration benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..errors import InvalidInputError, MissingRunError
from ..layout import LLMSEQSIM
from .inference import (
    InferenceResult,
    holm,
    metric_values,
    paired_two_level_bootstrap,
    tost,
    verdict,
)
from .render import fmt, fmt_p, fmt_signed, improvement
from .runs import METRICS, ranks_path

#: Methods whose one run has no training randomness (no seed): paired with every seed.
DETERMINISTIC_BACKBONES: frozenset[str] = frozenset(
    {LLMSEQSIM, "pop", "sknn", "vsknn", "stan", "vstan"})
#: The metrics each comparison table tests (one Holm family per table).
TESTED_METRICS: tuple[str, ...] = ("P@20", "MRR@20")
#: Equivalence margins of the TOST, in percentage points of the metric; a tested metric
#: without a margin never gets an equivalence verdict.
EQUIVALENCE_MARGINS_PP: dict[str, float] = {"P@20": 1.0, "MRR@20": 0.5}
#: A table warns that it cannot tell when its test set has fewer sessions than this ...
MIN_SESSIONS = 100
#: ... or when a tested metric's minimum detectable difference exceeds this many points.
MAX_MDD_PP = 5.0
#: The display columns of one test (after the columns naming the comparison).
TEST_HEADER: tuple[str, ...] = ("metric", "seed pairs", "Δ pp [95 % CI]", "Δ %", "p",
                                "p (Holm)", "MDD pp", "verdict")


def untested_cells(seed_pairs: int) -> list[str]:
    """The cells of :data:`TEST_HEADER` for a comparison that could not be tested."""
    return ["—", str(seed_pairs), *["—"] * 5, "not tested (see the notes)"]


#: The CSV fields of one test (:meth:`Tested.record`), in order.
TEST_FIELDS: tuple[str, ...] = (
    "mean_diff", "ci_low", "ci_high", "change_pct", "p", "p_holm", "holm_family", "margin",
    "tost_p", "tost_p_holm", "mdd", "se", "df", "seed_pairs", "test_sessions",
    "test_samples", "verdict")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its runs' ranks.parquet by seed, the ``name`` its
    verdict uses ("llm4sbr better"), and whether it is a deterministic method."""

    name: str
    ranks: Mapping[int, Path]
    deterministic: bool = False

    @classmethod
    def of_runs(cls, name: str, runs: pd.DataFrame, deterministic: bool = False) -> Side:
        """The side of the runs in ``runs`` (a :func:`.runs.load_runs` frame): the
        ranks.parquet beside each run's metrics.json, by seed."""
        return cls(name, {int(s): ranks_path(p) for s, p in
                          zip(runs["seed"], runs["path"], strict=True)}, deterministic)

    @property
    def single_run(self) -> bool:
        return self.deterministic and len(self.ranks) == 1


@dataclass(frozen=True)
class Pairing:
    """Which run of A meets which run of B: ``pairs`` of (seed of A, seed of B); the
    seeds of each side left without a partner; ``deterministic``: "a" or "b" when that
    side's single deterministic run is paired with every seed of the other."""

    pairs: tuple[tuple[int, int], ...]
    dropped_a: tuple[int, ...] = ()
    dropped_b: tuple[int, ...] = ()
    deterministic: str | None = None


def pair_by_seed(a: Side, b: Side) -> Pairing:
    """Seed s of A with seed s of B, for the seeds both sides have. When one side is a
    single deterministic run and the other is not, that run is paired with every seed of
    the other side (its side has no seed variance: the test covers the other side's
    training randomness). Two single deterministic runs make one pair."""
    if a.single_run and b.single_run:
        return Pairing(((next(iter(a.ranks)), next(iter(b.ranks))),))
    if b.single_run:
        (only,) = b.ranks
        return Pairing(tuple((s, only) for s in sorted(a.ranks)), deterministic="b")
    if a.single_run:
        (only,) = a.ranks
        return Pairing(tuple((only, s) for s in sorted(b.ranks)), deterministic="a")
    common = sorted(set(a.ranks) & set(b.ranks))
    return Pairing(tuple((s, s) for s in common),
                   tuple(sorted(set(a.ranks) - set(b.ranks))),
                   tuple(sorted(set(b.ranks) - set(a.ranks))))


#: Where the session clusters came from (:attr:`Comparison.clusters`).
CLUSTERS_RANKS, CLUSTERS_TEST, CLUSTERS_NONE = "ranks", "test samples", "none"


class RankReader:
    """Reads each ranks.parquet once (sample_id, rank and, when present, session_id) and
    finds the session of each test sample: from ranks.parquet, else from
    ``test_samples`` (a parquet file with ``sample_id`` and ``session_id``, e.g.
    ``results/{dataset}/data/test.parquet``), else none (each sample its own cluster)."""

    def __init__(self, test_samples: str | Path | None = None):
        self.test_samples = Path(test_samples) if test_samples is not None else None
        self._frames: dict[Path, pd.DataFrame] = {}
        self._test: pd.Series | None = None

    def frame(self, path: str | Path) -> pd.DataFrame:
        """The run's ranks indexed by sample_id (sorted): ``rank`` and maybe
        ``session_id``."""
        path = Path(path)
        if path not in self._frames:
            if not path.is_file():
                raise MissingRunError(path, "ranks.parquet")
            names = pq.read_schema(path).names
            columns = ["sample_id", "rank"] + (["session_id"] if "session_id" in names else [])
            table = pq.read_table(path, columns=columns).to_pandas()
            if table["sample_id"].duplicated().any():
                raise InvalidInputError("duplicate sample_id values", path)
            self._frames[path] = table.set_index("sample_id").sort_index()
        return self._frames[path]

    def _test_sessions(self) -> pd.Series:
        if self._test is None:
            assert self.test_samples is not None
            if not self.test_samples.is_file():
                raise MissingRunError(self.test_samples, "test samples (rule build_dataset)")
            table = pq.read_table(self.test_samples, columns=["sample_id", "session_id"]
                                  ).to_pandas()
            self._test = table.set_index("sample_id")["session_id"]
        return self._test

    def design(self, paths_a: Sequence[Path], paths_b: Sequence[Path]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """``(ranks_a, ranks_b, session_ids, clusters)``: ranks ``[pairs, n_samples]`` of
        the paired runs (row k of A meets row k of B), in sample_id order, and where the
        sessions came from. Every run must rank the same samples."""
        paths = [*paths_a, *paths_b]
        frames = [self.frame(p) for p in paths]
        index = frames[0].index
        for path, f in zip(paths[1:], frames[1:], strict=True):
            if not f.index.equals(index):
                raise InvalidInputError(
                    f"ranks other test samples than {paths[0]} ({len(f)} vs {len(index)} "
                    f"sample ids): the runs of a comparison must share one test set", path)
        with_sessions = [(p, f["session_id"]) for p, f in zip(paths, frames, strict=True)
                         if "session_id" in f]
        if with_sessions:
            first_path, sessions = with_sessions[0]
            for path, other in with_sessions[1:]:
                if not other.equals(sessions):
                    raise InvalidInputError(f"assigns other sessions to the test samples "
                                            f"than {first_path}", path)
            clusters, session_ids = CLUSTERS_RANKS, sessions.to_numpy()
        elif self.test_samples is not None:
            test = self._test_sessions()
            missing = index.difference(test.index)
            if len(missing):
                raise InvalidInputError(f"{len(missing)} sample ids of {paths[0]} are not "
                                        f"test samples (e.g. {missing[0]})", self.test_samples)
            clusters, session_ids = CLUSTERS_TEST, test.loc[index].to_numpy()
        else:
            clusters, session_ids = CLUSTERS_NONE, index.to_numpy()
        ranks_a = np.stack([self.frame(p)["rank"].to_numpy() for p in paths_a])
        ranks_b = np.stack([self.frame(p)["rank"].to_numpy() for p in paths_b])
        return ranks_a, ranks_b, session_ids, clusters


# --------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class Comparison:
    """Side B against side A: the pairing, one :class:`.inference.InferenceResult` per
    tested metric (none when no pair was formed), where the session clusters came from,
    and the test set's size (samples, sessions)."""

    a: Side
    b: Side
    pairing: Pairing
    results: dict[str, InferenceResult] = field(default_factory=dict)
    clusters: str = CLUSTERS_NONE
    n_samples: int = 0
    n_sessions: int = 0


def compare_sides(reader: RankReader, a: Side, b: Side,
                  metrics: Sequence[str] = TESTED_METRICS, n_resamples: int = 10_000,
                  seed: int = 0, confidence: float = 0.95) -> Comparison:
    """:func:`.inference.paired_two_level_bootstrap` of B against A on each metric, runs
    paired by :func:`pair_by_seed`, samples clustered by session (the same resamples
    for every metric)."""
    pairing = pair_by_seed(a, b)
    if not pairing.pairs:
        return Comparison(a, b, pairing)
    ranks_a, ranks_b, sessions, clusters = reader.design(
        [a.ranks[s] for s, _ in pairing.pairs], [b.ranks[s] for _, s in pairing.pairs])
    n_sessions = len(np.unique(sessions))
    results = {}
    if n_sessions >= 2:
        results = {m: paired_two_level_bootstrap(metric_values(ranks_a, m),
                                                 metric_values(ranks_b, m), sessions,
                                                 n_resamples, seed, confidence=confidence,
                                                 metric=m)
                   for m in metrics}
    return Comparison(a, b, pairing, results, clusters, int(ranks_a.shape[1]), n_sessions)


@dataclass(frozen=True)
class Tested:
    """One test of a table: the result with ``p_holm`` over the table's family, the
    equivalence margin (fraction; None: no equivalence test), the TOST p-value raw and
    Holm-adjusted over the same family, the verdict in words and the minimum detectable
    difference (fraction, 80 % power at α)."""

    result: InferenceResult
    margin: float | None
    tost_p: float
    tost_p_holm: float
    verdict: str
    mdd: float
    family: int

    @property
    def change_pct(self) -> float:
        """Relative change of the paired means in % (the paper's "Improv.")."""
        return improvement(self.result.mean_a, self.result.mean_b)

    def record(self, prefix: str = "") -> dict[str, float | str | None]:
        """The CSV fields (percentage points, where a metric's unit), keys ``prefix`` +
        name."""
        r = self.result
        values = (100 * r.delta, 100 * r.ci_low, 100 * r.ci_high, self.change_pct, r.p,
                  r.p_holm, self.family,
                  100 * self.margin if self.margin is not None else math.nan, self.tost_p,
                  self.tost_p_holm, 100 * self.mdd, 100 * r.se, r.df, r.n_seeds,
                  r.n_sessions, r.n_samples, self.verdict)
        return {prefix + k: v for k, v in zip(TEST_FIELDS, values, strict=True)}

    def cells(self) -> list[str]:
        """Display cells of :data:`TEST_HEADER` (after "metric")."""
        r = self.result
        return [str(r.n_seeds), f"{fmt_signed(100 * r.delta)} "
                f"[{fmt_signed(100 * r.ci_low)}, {fmt_signed(100 * r.ci_high)}]",
                fmt(self.change_pct, 1, "%"), fmt_p(r.p), fmt_p(r.p_holm),
                fmt(100 * self.mdd), self.verdict]


def _names(words: str, a: Side, b: Side) -> str:
    if words.startswith("B better"):
        return f"{b.name} better" + words[len("B better"):]
    if words.startswith("A better"):
        return f"{a.name} better" + words[len("A better"):]
    return words


def assess_family(comparisons: Sequence[Comparison],
                  margins_pp: Mapping[str, float] = EQUIVALENCE_MARGINS_PP,
                  alpha: float = 0.05, power: float = 0.8) -> list[dict[str, Tested]]:
    """Every test of ``comparisons`` as one family (one table): Holm-adjusted p-values of
    Δ = 0 and, for the metrics with a margin (percentage points), of the TOST; verdicts
    from :func:`.inference.verdict` on the adjusted p — "equivalent within ±m" only when
    the Holm-adjusted TOST rejects at ``alpha``. One dict per comparison, metric →
    :class:`Tested` (empty for a comparison without a test)."""
    keys = [(i, m) for i, c in enumerate(comparisons) for m in c.results]
    results = [comparisons[i].results[m] for i, m in keys]
    p_holm = holm([r.p for r in results])
    margins = [margins_pp[m] / 100 if margins_pp.get(m) else None for _, m in keys]
    tost_p = [tost(r, mg) if mg is not None else math.nan
              for r, mg in zip(results, margins, strict=True)]
    tost_holm = holm(tost_p)
    out: list[dict[str, Tested]] = [{} for _ in comparisons]
    for k, (i, m) in enumerate(keys):
        c = comparisons[i]
        r = replace(results[k], p_holm=float(p_holm[k]))
        equivalent = margins[k] is not None and tost_holm[k] < alpha
        words = verdict(r, margins[k] if equivalent else None, alpha, scale=100,
                        unit=" pp", digits=2)
        out[i][m] = Tested(r, margins[k], float(tost_p[k]), float(tost_holm[k]),
                           _names(words, c.a, c.b), r.mdd(alpha, power), len(keys))
    return out


# --------------------------------------------------------------------------- notes


def _seeds(seeds: Iterable[int]) -> str:
    seeds = list(seeds)
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _count(values: Iterable[int]) -> str:
    values = sorted(set(values))
    if not values:
        return "0"
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def family_notes(comparisons: Sequence[Comparison], tested: Sequence[Mapping[str, Tested]],
                 labels: Sequence[str], reference: str, sides: str, metrics: Sequence[str],
                 margins_pp: Mapping[str, float] = EQUIVALENCE_MARGINS_PP,
                 n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05,
                 power: float = 0.8, min_sessions: int = MIN_SESSIONS,
                 max_mdd_pp: float = MAX_MDD_PP) -> tuple[list[str], list[str]]:
    """``(warnings, notes)`` of a comparison table: what was tested and how, the pairing
    (pairs, dropped seeds, deterministic runs), the session clusters, the minimum
    detectable difference per metric, and a warning when the table cannot tell (fewer
    than ``min_sessions`` test sessions or an MDD above ``max_mdd_pp`` points).
    ``labels[i]`` names comparison ``i`` (e.g. "srgnn llm4sbr-r3"); ``sides`` says which
    runs are B and A (e.g. "B = the row's variant, A = `base` of the same backbone")."""
    all_tests = [t for per in tested for t in per.values()]
    family = len(all_tests)
    margins = [f"±{margins_pp[m]:g} pp for {m}" for m in metrics if margins_pp.get(m)]
    no_margin = [m for m in metrics if not margins_pp.get(m)]
    notes = [
        f"Tests: Δ = B − A in percentage points of the metric ({sides}), mean over "
        f"seed pairs and test samples, with its 95 % CI and "
        f"two-sided p from a paired two-level bootstrap (seeds × sessions, "
        f"{n_resamples:,} resamples, seed {seed}; t with guarded Satterthwaite df). "
        f"p (Holm) = Holm–Bonferroni over the family of all {family} tests of this table "
        f"({', '.join(metrics)}). Δ % = relative change of the paired means. Verdict at "
        f"α = {alpha:g} on the Holm p: 'X better', else 'equivalent within ±m' only "
        f"when two one-sided tests (TOST) reject at margin m after Holm over the same "
        f"family (m = {', '.join(margins) or 'none'}"
        + (f"; no equivalence test for {', '.join(no_margin)}" if no_margin else "")
        + "), else 'no detectable difference' with the 95 % CI. MDD = minimum "
        f"detectable difference ({power * 100:g} % power at α = {alpha:g} before Holm)."]

    pairs = [len(c.pairing.pairs) for c in comparisons if c.pairing.pairs]
    pairing = (f"Pairs: seed s of each run against seed s of `{reference}` of the same "
               f"backbone, common seeds only: {_count(pairs)} seed pair"
               f"{'' if pairs and max(pairs) == 1 else 's'} per comparison.")
    dropped = []
    for c, label in zip(comparisons, labels, strict=True):
        # One wording for both kinds of label: a row's variant ("srgnn llm4sbr" against
        # `base`) and a step ("llm4sbr − base", its sides called B and `A`).
        if c.pairing.dropped_b:
            dropped.append(f"{label}: B {_seeds(c.pairing.dropped_b)} (no `{reference}` "
                           f"partner)")
        if c.pairing.dropped_a:
            dropped.append(f"{label}: `{reference}` {_seeds(c.pairing.dropped_a)} (no B "
                           f"partner)")
    if dropped:
        pairing += " Dropped, without a partner seed: " + "; ".join(dropped) + "."
    unpaired = [label for c, label in zip(comparisons, labels, strict=True)
                if not c.pairing.pairs]
    if unpaired:
        pairing += (" Not tested (no seed in common with `" + reference + "`): "
                    + ", ".join(unpaired) + ".")
    one_session = [label for c, label in zip(comparisons, labels, strict=True)
                   if c.pairing.pairs and not c.results]
    if one_session:
        pairing += (" Not tested (all test samples in one session): "
                    + ", ".join(one_session) + ".")
    determ = [label for c, label in zip(comparisons, labels, strict=True)
              if c.pairing.deterministic]
    if determ:
        pairing += (f" Deterministic methods (one run, no seed: {', '.join(determ)}) are "
                    f"paired with every seed of `{reference}`: their side has no training "
                    f"randomness, the test covers `{reference}`'s.")
    single = [label for c, label in zip(comparisons, labels, strict=True)
              if len(c.pairing.pairs) == 1 and c.results]
    if single:
        pairing += (" One seed pair (" + ", ".join(single) + "): the test is conditional "
                    "on those two runs and does not cover training randomness.")
    notes.append(pairing)

    done = [c for c in comparisons if c.results]
    sizes = sorted({(c.n_samples, c.n_sessions, c.clusters == CLUSTERS_NONE) for c in done})
    size_words = " or ".join(f"{n:,} test samples, each its own cluster" if unknown
                             else f"{n:,} test samples in {s:,} sessions"
                             for n, s, unknown in sizes)
    clusters = {c.clusters for c in done}
    if CLUSTERS_NONE in clusters:
        notes.append("Sessions: no session_id in ranks.parquet and no test samples file, so "
                     "every test sample is its own cluster: prefixes of one session count "
                     "as independent, and the p-values and CIs are too small.")
    elif clusters:
        source = " and ".join(sorted("ranks.parquet" if c == CLUSTERS_RANKS
                                     else "the test samples file" for c in clusters))
        notes.append(f"Sessions: test samples are clustered by session (session_id from "
                     f"{source}): {size_words}.")

    warnings: list[str] = []
    if done:
        mdds = {m: [100 * per[m].mdd for per in tested if m in per] for m in metrics}
        parts = []
        for m, values in mdds.items():
            if values:
                spread = (f" (median of {len(values)} comparisons; "
                          f"{min(values):.2f}–{max(values):.2f})" if len(values) > 1 else "")
                parts.append(f"{m} below {float(np.median(values)):.2f} points{spread}")
        pairs_done = [c.results[next(iter(c.results))].n_seeds for c in done]
        notes.append(f"Detectable: with {size_words} and {_count(pairs_done)} seed "
                     f"pair{'' if max(pairs_done) == 1 else 's'}, differences of "
                     + " and of ".join(parts)
                     + f" cannot be detected ({power * 100:g} % power at α = {alpha:g}).")
        worst = max((float(np.median(v)), m) for m, v in mdds.items() if v)
        fewest = min(s for _, s, _ in sizes)
        if fewest < min_sessions or worst[0] > max_mdd_pp:
            why = "; ".join(([f"fewer than {min_sessions} sessions or clusters"]
                             if fewest < min_sessions else [])
                            + ([f"an MDD above {max_mdd_pp:g} points"]
                               if worst[0] > max_mdd_pp else []))
            warnings.append(
                f"this test set ({size_words}, {_count(pairs_done)} seed pair"
                f"{'' if max(pairs_done) == 1 else 's'}) is too small to detect a "
                f"difference of less than {worst[0]:.1f} points of {worst[1]} "
                f"({power * 100:g} % power; {why}): these numbers show the pipeline, "
                f"not a verdict.")
    return warnings, notes


# --------------------------------------------------------------------------- legacy
# Sample-level tests: training randomness and sessions ignored, kept for
# benchmarks/calibration.py only. No table uses them.


def per_sample_metric(ranks: np.ndarray | Sequence[int], metric: str) -> np.ndarray:
    """Each sample's value of ``metric`` from its rank (:func:`.inference.metric_values`)."""
    return metric_values(ranks, metric)


def read_ranks(path: str | Path) -> pd.Series:
    """A run's ranks.parquet as a Series: index sample_id, values rank (int64)."""
    path = Path(path)
    if not path.is_file():
        raise MissingRunError(path, "ranks.parquet")
    table = pq.read_table(path, columns=["sample_id", "rank"]).to_pandas()
    if table["sample_id"].duplicated().any():
        raise InvalidInputError("duplicate sample_id values", path)
    return table.set_index("sample_id")["rank"].astype(np.int64).sort_index()


def seed_average(paths: Iterable[str | Path], metrics: Sequence[str] = METRICS
                 ) -> pd.DataFrame:
    """Per-sample metrics averaged over the runs (seeds) in ``paths``: one row per
    sample_id (sorted), one column per metric. All runs must rank the same samples."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise InvalidInputError("no ranks.parquet files given")
    total: np.ndarray | None = None
    index: pd.Index | None = None
    for path in paths:
        ranks = read_ranks(path)
        if index is None:
            index = ranks.index
        elif not ranks.index.equals(index):
            raise InvalidInputError(f"ranks other samples than {paths[0]} ({len(ranks)} vs "
                                    f"{len(index)} sample ids)", path)
        values = np.column_stack([per_sample_metric(ranks.to_numpy(), m) for m in metrics])
        total = values if total is None else total + values
    assert total is not None and index is not None
    return pd.DataFrame(total / len(paths), index=index, columns=list(metrics))


@dataclass(frozen=True)
class PairedTest:
    """One metric's comparison of side B against side A (fractions, not percent)."""

    metric: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    p_ttest: float
    p_bootstrap: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def paired_ttest(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p-value of mean(b − a) = 0. Constant differences (zero
    variance) give 1.0 when they are all 0 and 0.0 otherwise."""
    from scipy import stats

    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if d.size < 2:
        return float("nan")
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(stats.ttest_rel(b, a).pvalue)


def bootstrap_means(d: np.ndarray, n_resamples: int = 10_000, seed: int = 0,
                    chunk: int = 256) -> np.ndarray:
    """Means of ``n_resamples`` paired bootstrap resamples of ``d`` [n] or of each column
    of ``d`` [n, m] (the same resampled rows for every column): shape [n_resamples] or
    [n_resamples, m]. Resample counts × d in chunks: memory O(chunk × n)."""
    d = np.asarray(d, dtype=np.float64)
    flat = d.ndim == 1
    d2 = d.reshape(len(d), -1)
    n = len(d2)
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, d2.shape[1]))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws = rng.integers(0, n, size=(size, n))
        offsets = (np.arange(size) * n)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=size * n).reshape(size, n)
        out[start:start + size] = counts @ d2 / n
    return out[:, 0] if flat else out


def bootstrap_test(d: np.ndarray, n_resamples: int = 10_000, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paired bootstrap of mean differences ``d`` [n, m]: per column the two-sided p-value
    (share of the resampled means of the mean-centred differences at least as far from
    0 as the observed mean, with the +1 correction) and the 95% percentile interval."""
    d = np.asarray(d, dtype=np.float64).reshape(len(d), -1)
    observed = d.mean(axis=0)
    means = bootstrap_means(d, n_resamples, seed)
    centred = means - observed
    extreme = (np.abs(centred) >= np.abs(observed) - 1e-15).sum(axis=0)
    p = (extreme + 1) / (n_resamples + 1)
    p = np.where(np.all(d == 0, axis=0), 1.0, p)
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return p, low, high


def paired_tests(a: pd.DataFrame, b: pd.DataFrame, n_resamples: int = 10_000, seed: int = 0
                 ) -> list[PairedTest]:
    """Compare per-sample metrics ``b`` against ``a`` (frames from :func:`seed_average`,
    same columns). Their sample ids must be the same set."""
    if set(a.index) != set(b.index):
        only_a, only_b = len(a.index.difference(b.index)), len(b.index.difference(a.index))
        raise InvalidInputError(f"the two sides ranked different samples ({only_a} sample ids "
                                f"only in A, {only_b} only in B): not the same test set")
    if list(a.columns) != list(b.columns):
        raise InvalidInputError(f"different metrics: {list(a.columns)} vs {list(b.columns)}")
    b = b.loc[a.index]
    diff = b.to_numpy() - a.to_numpy()
    p_boot, low, high = bootstrap_test(diff, n_resamples, seed)
    tests = []
    for j, metric in enumerate(a.columns):
        xa, xb = a[metric].to_numpy(), b[metric].to_numpy()
        tests.append(PairedTest(metric=metric, n=len(a), mean_a=float(xa.mean()),
                                mean_b=float(xb.mean()), mean_diff=float(diff[:, j].mean()),
                                p_ttest=paired_ttest(xa, xb), p_bootstrap=float(p_boot[j]),
                                ci_low=float(low[j]), ci_high=float(high[j])))
    return tests


def compare_runs(ranks_a: Iterable[str | Path], ranks_b: Iterable[str | Path],
                 metrics: Sequence[str] = METRICS, n_resamples: int = 10_000, seed: int = 0
                 ) -> pd.DataFrame:
    """Paired tests of runs B (e.g. the LLM4SBR seeds) against runs A (the backbone
    seeds) from their ranks.parquet files: one row per metric with the fields of
    :class:`PairedTest`."""
    tests = paired_tests(seed_average(ranks_a, metrics), seed_average(ranks_b, metrics),
                         n_resamples, seed)
    return pd.DataFrame([t.as_dict() for t in tests])
