"""Paired inference between two sets of runs, with the design's own units of replication.

A comparison pits side A (e.g. a backbone alone) against side B (e.g. LLM4SBR on that
backbone). Each side has ``S`` runs (seeds) that rank the same ``n`` test samples; seed ``s``
of A and seed ``s`` of B share their initial backbone, so the runs are **paired by seed**.
The samples are prefixes of test sessions (Beauty: 18,000 samples from 2,237 sessions), so
they are **clustered by session**. A difference between the sides has two sources of
chance that the estimate must carry:

* training randomness: another set of seeds gives other runs. Its unit is the seed, and
  there are few of them (3);
* the test set: other sessions of the same source give other samples. Its unit is the
  session, not the sample: the prefixes of one session share its items and its user.

:mod:`.significance` averages each sample over seeds and tests over samples: it treats
the seed-averaged runs as fixed and the samples as independent, so its p-values are too
small (see ``benchmarks/calibration.py``). This module works from per-sample metric
matrices ``[n_seeds, n_samples]`` (:func:`metric_values` turns ranks into them, with the
definitions of :func:`llm4sbr_core.metrics.metrics_from_ranks`) and the session of each
sample. The model behind the estimator is

    d[s, i] = b[s, i] − a[s, i] = Δ + α_s + β_c(i) + r[s, i]

with α the seed effect of the pair (A's and B's training randomness), β the effect of a
session on the difference (a session B handles better than A on every seed) and r the
rest (which samples a given pair of runs gets right: seed × session interaction and noise).
Δ̂ is the mean of d over seeds and samples and

    Var(Δ̂) = V_seed + V_session

* ``V_seed`` = s²(m_s) / S, where m_s is seed pair s's mean difference over the test set:
  α and the part of r that does not average out within one test set (S − 1 degrees of
  freedom — this is the seed-level paired t-test's variance);
* ``V_session`` = the session-clustered variance of β only: the covariance, across
  sessions, of the per-session residuals of two *different* seed pairs (r is independent
  across seeds, so it drops out, and is not counted twice), times C / (C − 1).

:func:`paired_two_level_bootstrap` estimates both from one set of resamples — seeds with
replacement (the same seeds on both sides) and sessions with replacement (a drawn
session brings all its samples) — each rescaled for the resampling shrinkage
(S / (S − 1), C / (C − 1)); :func:`variance_components` gives the closed forms they
converge to. The test is a t-test of Δ̂ / SE, SE² = V_seed + V_session, whose degrees of
freedom come from Welch–Satterthwaite with one guard (:func:`conservative_df`):

    df = (k·V_seed + V_session)² / ((k·V_seed)² / (S − 1) + V_session² / (C − 1)),
    k = (S − 1) / χ²_{S−1}(0.25)    (3 seeds: k = 3.48)

so it is the seed-level t-test (df = S − 1) when training randomness dominates and a
t-test over sessions (df ≈ C − 1) when the test set does. Why k: V_seed has only S − 1
degrees of freedom and is right-skewed, so it is usually *under*-estimated, and then the
plain Satterthwaite df comes out too large at the same time as the SE comes out too
small: with 2 df, the plain version rejects a true null up to 7.8 % of the time at
α = 0.05 when the seed share of the variance ρ is 0.5–0.95. k replaces V_seed by its
one-sided 75 % upper confidence bound *in the df only* (the SE keeps the unbiased
estimate). Its size over ρ ∈ [0, 1] (normal model, Monte Carlo,
``benchmarks/calibration.py --df-grid``, 60 sessions): 3.6–5.1 % with 3 seeds,
4.4–5.0 % with 5, 4.8–5.1 % with 10, 2.7–5.6 % with 2. Banerjee's bound and the
Behrens–Fisher fiducial test, both exact at ρ ∈ {0, 1}, fall to 2.3 % in between; a fixed
df = S − 1 falls to 0.0 % (ρ = 0: it gives up all the session-level power).
The p-value and the confidence interval both come from that t distribution, so
"p < 0.05" and "the 95 % CI excludes 0" agree.

Why not the percentile bootstrap (``method="percentile"``, kept for comparison)? With 3
seeds, resampling seeds gives only 10 distinct seed multisets, shrinks the seed variance
by 2/3 and has the tails of a normal, not of a t with 2 df: when training randomness
matters it rejects a true null far more often than 5 % (17 % in the calibration
benchmark with ``--seed-sd 0.3``), and where it does not, it counts the within-run noise
twice (once per resampled level) and rejects far less (0.3 % with ``--seed-sd 0
--session-sd 0``). BCa cannot help: it corrects skew and bias of a distribution whose spread is
already wrong. With one seed, training randomness is not estimable: the test is then
conditional on that pair of runs (sessions only, df = C − 1) and says so in ``method``.

Three seeds give little power to any honest test: when the seeds disagree, the interval
is wide. :func:`minimum_detectable_difference` puts that in numbers, so a table can say
that a test set (or a number of seeds) is too small to detect a difference of a given size.
Families of tests (one table) are corrected with :func:`holm`; :func:`tost` and
:func:`verdict` turn a result into words, claiming equivalence only when two one-sided
tests reject at a stated margin.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
from scipy import stats

from ..errors import InvalidInputError

#: A random source: a seed or seed sequence (same seed → same resamples), a Generator, or
#: None (fresh entropy).
RandomLike = int | Sequence[int] | np.random.Generator | None

_METRIC = re.compile(r"^(P|HR|MRR|NDCG)@([1-9][0-9]*)$")


# --------------------------------------------------------------------------- metrics


def metric_values(ranks: np.ndarray | Sequence[int] | Sequence[Sequence[int]],
                  metric: str) -> np.ndarray:
    """Each sample's value of ``metric`` from its 1-based rank, any shape (e.g.
    ``[n_seeds, n_samples]``), as float64. Same definitions as
    :func:`llm4sbr_core.metrics.metrics_from_ranks`, whose values are the means of these:

    * ``P@K`` (= ``HR@K``): 1 if rank ≤ K else 0
    * ``MRR@K``: 1 / rank if rank ≤ K else 0
    * ``NDCG@K``: 1 / log2(rank + 1) if rank ≤ K else 0
    """
    match = _METRIC.match(metric)
    if match is None:
        raise InvalidInputError(f"unknown metric {metric!r}: expected P@K, HR@K, MRR@K "
                                f"or NDCG@K")
    r = np.asarray(ranks, dtype=np.float64)
    if r.size and not (r >= 1).all():
        raise InvalidInputError("ranks are 1-based")
    kind, k = match[1], int(match[2])
    inside = r <= k
    if kind in ("P", "HR"):
        return inside.astype(np.float64)
    if kind == "MRR":
        return np.where(inside, 1.0 / r, 0.0)
    return np.where(inside, 1.0 / np.log2(r + 1.0), 0.0)


def metric_matrices(ranks: np.ndarray, metrics: Iterable[str]) -> dict[str, np.ndarray]:
    """:func:`metric_values` of each metric in ``metrics`` for the same ranks."""
    return {m: metric_values(ranks, m) for m in metrics}


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class InferenceResult:
    """One comparison of side B against side A (fractions, not percent).

    ``delta`` = mean(B) − mean(A) over seeds and samples; ``[ci_low, ci_high]`` its
    ``confidence`` interval; ``p`` the two-sided p-value of Δ = 0 and ``p_holm`` the same
    after Holm's correction over a family (NaN until :func:`holm_family` fills it).
    ``se`` is the standard error the test used and ``df`` its degrees of freedom
    (``inf``: normal reference). ``n_sessions`` / ``n_samples`` are None for a seed-level
    test given only seed means. ``method`` says in words how p and the CI were made.
    """

    delta: float
    ci_low: float
    ci_high: float
    p: float
    p_holm: float
    n_seeds: int
    n_sessions: int | None
    n_samples: int | None
    method: str
    se: float
    df: float
    mean_a: float = math.nan
    mean_b: float = math.nan
    metric: str = ""
    confidence: float = 0.95
    v_seed: float = math.nan
    v_session: float = math.nan

    def as_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)

    def mdd(self, alpha: float = 0.05, power: float = 0.8) -> float:
        """The smallest true |Δ| this design detects with ``power`` at two-sided
        ``alpha``: see :func:`mdd_from_se`."""
        return mdd_from_se(self.se, self.df, alpha, power)


@dataclass(frozen=True)
class VarianceComponents:
    """The closed-form estimates of Var(Δ̂) = ``v_seed`` + ``v_session`` (module docstring)
    with the degrees of freedom of each part and the total ``df`` of :func:`conservative_df`."""

    delta: float
    v_seed: float
    v_session: float
    df_seed: float
    df_session: float

    @property
    def variance(self) -> float:
        return self.v_seed + self.v_session

    @property
    def se(self) -> float:
        return math.sqrt(self.variance)

    @property
    def df(self) -> float:
        if self.v_seed == 0 and self.df_seed == 0:
            return self.df_session
        return conservative_df(self.v_seed, self.df_seed, self.v_session, self.df_session)


# --------------------------------------------------------------------------- helpers


def _as_matrix(x: np.ndarray | Sequence[float] | Sequence[Sequence[float]], name: str
               ) -> np.ndarray:
    m = np.asarray(x, dtype=np.float64)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[1] == 0:
        raise InvalidInputError(f"{name} must be [n_seeds, n_samples] (or [n_samples] for one "
                                f"seed) with at least one sample, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    return m


@dataclass(frozen=True)
class _Design:
    d: np.ndarray  # [S, n] paired differences b − a
    cells: np.ndarray  # [S, C] per seed, per session sums of d
    sizes: np.ndarray  # [C] samples per session
    mean_a: float
    mean_b: float

    @property
    def n_seeds(self) -> int:
        return self.d.shape[0]

    @property
    def n_samples(self) -> int:
        return self.d.shape[1]

    @property
    def n_sessions(self) -> int:
        return len(self.sizes)


def _design(a: np.ndarray | Sequence, b: np.ndarray | Sequence,
            session_ids: np.ndarray | Sequence) -> _Design:
    am, bm = _as_matrix(a, "a"), _as_matrix(b, "b")
    if am.shape != bm.shape:
        raise InvalidInputError(f"a and b differ in shape: {am.shape} vs {bm.shape}; the "
                                f"sides must pair seed for seed on the same test samples")
    sessions = np.asarray(session_ids)
    if sessions.shape != (am.shape[1],):
        raise InvalidInputError(f"session_ids must have one entry per sample "
                                f"({am.shape[1]}), got shape {sessions.shape}")
    _, inverse = np.unique(sessions, return_inverse=True)
    inverse = inverse.ravel()
    n_sessions = int(inverse.max()) + 1
    if n_sessions < 2:
        raise InvalidInputError("all samples come from one session: the test set gives no "
                                "replication to test over")
    d = bm - am
    cells = np.stack([np.bincount(inverse, weights=row, minlength=n_sessions) for row in d])
    sizes = np.bincount(inverse, minlength=n_sessions).astype(np.float64)
    return _Design(d, cells, sizes, float(am.mean()), float(bm.mean()))


def satterthwaite_df(v1: float, df1: float, v2: float, df2: float) -> float:
    """Welch–Satterthwaite degrees of freedom of ``v1 + v2`` where ``v_k`` is an
    estimated variance with ``df_k`` degrees of freedom (a zero term drops out; ``inf``
    when both are zero)."""
    num = (v1 + v2) ** 2
    den = (v1 * v1 / df1 if v1 > 0 else 0.0) + (v2 * v2 / df2 if v2 > 0 else 0.0)
    return num / den if den > 0 else math.inf


def conservative_df(v_seed: float, df_seed: float, v_session: float, df_session: float,
                    quantile: float = 0.25) -> float:
    """Satterthwaite degrees of freedom of ``v_seed + v_session`` with ``v_seed``
    replaced by its one-sided (1 − ``quantile``) upper confidence bound
    ``v_seed · df_seed / χ²_{df_seed}(quantile)`` (module docstring: keeps the test's size
    near α when ``v_seed`` has few degrees of freedom). Between ``min(df_seed, df_session)``
    -ish and ``df_seed + df_session``; ``df_seed`` exactly when ``v_session`` is 0."""
    k = df_seed / float(stats.chi2.ppf(quantile, df_seed))
    return satterthwaite_df(k * v_seed, df_seed, v_session, df_session)


def _t(df: float):
    return stats.norm if math.isinf(df) else stats.t(df)


def _t_test(delta: float, se: float, df: float, confidence: float
            ) -> tuple[float, float, float]:
    """(p, ci_low, ci_high) of a t (or normal, df = inf) test of delta / se."""
    if se == 0:
        return (1.0 if delta == 0 else 0.0), delta, delta
    dist = _t(df)
    p = float(2.0 * dist.sf(abs(delta) / se))
    half = float(dist.ppf(0.5 + confidence / 2.0)) * se
    return min(p, 1.0), delta - half, delta + half


def _counts(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """[size, n] counts of n draws with replacement from n categories (one row per
    resample), as float64."""
    draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


# --------------------------------------------------------------------------- tests


def variance_components(a: np.ndarray | Sequence, b: np.ndarray | Sequence,
                        session_ids: np.ndarray | Sequence) -> VarianceComponents:
    """Closed-form ``V_seed`` and ``V_session`` of Δ̂ (module docstring): what the
    bootstrap estimates of :func:`paired_two_level_bootstrap` converge to.

    With e[s, c] = (sum of d over session c in seed pair s) − m_s · n_c and n samples:
    ``V_seed`` = var(m_s, ddof=1) / S and, for S ≥ 2,
    ``V_session`` = C / (C − 1) · mean over seed pairs s ≠ t of Σ_c e[s, c] e[t, c] / n²
    (clipped at 0). With one seed, ``V_seed`` = 0 (not estimable) and ``V_session`` =
    C / (C − 1) · Σ_c e[0, c]² / n², the session-clustered variance of that one run pair.
    """
    design = _design(a, b, session_ids)
    n_seeds, n_sessions, n = design.n_seeds, design.n_sessions, design.sizes.sum()
    seed_means = design.cells.sum(axis=1) / n
    e = design.cells - seed_means[:, None] * design.sizes[None, :]
    if n_seeds >= 2:
        v_seed = float(seed_means.var(ddof=1) / n_seeds)
        cross = ((e.sum(axis=0) ** 2 - (e ** 2).sum(axis=0)).sum()
                 / (n_seeds * (n_seeds - 1)))
        v_session = max(0.0, float(cross / n ** 2 * n_sessions / (n_sessions - 1)))
    else:
        v_seed = 0.0
        v_session = float((e[0] ** 2).sum() / n ** 2 * n_sessions / (n_sessions - 1))
    return VarianceComponents(delta=float(seed_means.mean()), v_seed=v_seed,
                              v_session=v_session, df_seed=float(n_seeds - 1),
                              df_session=float(n_sessions - 1))


def paired_two_level_bootstrap(a: np.ndarray | Sequence, b: np.ndarray | Sequence,
                               session_ids: np.ndarray | Sequence, n_resamples: int = 10_000,
                               rng: RandomLike = 0,
                               method: Literal["t", "percentile"] = "t",
                               confidence: float = 0.95, metric: str = "",
                               chunk: int = 512) -> InferenceResult:
    """Compare ``b`` against ``a`` (per-sample metric values ``[n_seeds, n_samples]``, seed
    s of A paired with seed s of B) on test samples clustered by ``session_ids``.

    Each of ``n_resamples`` resamples draws S seeds with replacement (the same seeds for
    both sides: the pairing is kept) and C sessions with replacement (a drawn session
    brings all its samples, in every seed). Work is on per-seed, per-session sums: a
    resample is a vector of seed counts W and session counts K, and its statistics are
    ``R_s = Σ_c K_c D[s, c] / Σ_c K_c n_c`` (seed s's mean difference on the resampled
    sessions), ``Σ_s W_s m_s / S`` (the seed-resampled mean) and ``Σ_s W_s R_s / S`` (the
    two-level resampled Δ*). Memory is O(chunk × C); Beauty's size (3 × 18,000 samples,
    2,237 sessions, 10,000 resamples) takes about a second.

    ``method="t"`` (default): SE² = V_seed + V_session, V_seed = S / (S − 1) × the variance
    of the seed-resampled means, V_session = C / (C − 1) × the mean covariance of R_s and
    R_t over the resamples for s ≠ t (for one seed: the variance of R_0); p is two-sided
    from t(df) at Δ̂ / SE with df from :func:`conservative_df`,
    CI = Δ̂ ± t(df)_{(1+confidence)/2} · SE.
    See the module docstring for why.

    ``method="percentile"``: the naive two-level bootstrap, for comparison only — CI =
    percentiles of Δ*, p = (1 + #{|Δ* − Δ̂| ≥ |Δ̂|}) / (1 + n_resamples) (the resampled
    statistic centred on Δ̂ is the null distribution), SE = sd(Δ*), df = inf. With few
    seeds it rejects a true null too often.

    ``rng``: the same int gives the same resamples (e.g. for every metric of a table).
    """
    if n_resamples < 2:
        raise InvalidInputError(f"n_resamples must be ≥ 2, got {n_resamples}")
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence}")
    if method not in ("t", "percentile"):
        raise InvalidInputError(f"unknown method {method!r}: expected 't' or 'percentile'")
    design = _design(a, b, session_ids)
    generator = np.random.default_rng(rng)
    n_seeds, n_sessions = design.n_seeds, design.n_sessions
    n = design.sizes.sum()
    seed_means = design.cells.sum(axis=1) / n
    delta = float(seed_means.mean())

    seed_resampled = np.empty(n_resamples)
    per_seed = np.empty((n_resamples, n_seeds))
    joint = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        w = _counts(generator, size, n_seeds)
        k = _counts(generator, size, n_sessions)
        r = (k @ design.cells.T) / (k @ design.sizes)[:, None]
        per_seed[start:start + size] = r
        seed_resampled[start:start + size] = w @ seed_means / n_seeds
        joint[start:start + size] = (w * r).sum(axis=1) / n_seeds

    if n_seeds >= 2:
        v_seed = float(seed_resampled.var(ddof=1)) * n_seeds / (n_seeds - 1)
        centred = per_seed - per_seed.mean(axis=0)
        cross = ((centred.sum(axis=1) ** 2 - (centred ** 2).sum(axis=1)).sum()
                 / (n_resamples - 1) / (n_seeds * (n_seeds - 1)))
        v_session = max(0.0, float(cross)) * n_sessions / (n_sessions - 1)
    else:
        v_seed = 0.0
        v_session = float(per_seed[:, 0].var(ddof=1)) * n_sessions / (n_sessions - 1)

    common = dict(n_seeds=n_seeds, n_sessions=n_sessions, n_samples=design.n_samples,
                  mean_a=design.mean_a, mean_b=design.mean_b, metric=metric,
                  confidence=confidence, p_holm=math.nan, v_seed=v_seed,
                  v_session=v_session)
    if method == "percentile":
        if np.all(design.d == 0):
            p = 1.0
        else:
            extreme = int((np.abs(joint - delta) >= abs(delta) - 1e-15).sum())
            p = (extreme + 1) / (n_resamples + 1)
        tail = (1.0 - confidence) / 2.0 * 100.0
        low, high = np.percentile(joint, [tail, 100.0 - tail])
        return InferenceResult(delta=delta, ci_low=float(low), ci_high=float(high), p=p,
                               method="two-level bootstrap (seeds × sessions), percentile "
                                      "CI, centred-bootstrap p",
                               se=float(joint.std(ddof=1)), df=math.inf, **common)

    floored = False
    if n_seeds >= 2 and v_seed + v_session == 0 and np.ptp(design.d) > 0:
        # All seed pairs agree on the mean difference and the between-seed session
        # covariance came out ≤ 0 (tiny designs): a zero SE would claim certainty. Floor
        # the session part at the variance of the seed mean with independent seeds.
        v_session = (float(per_seed.var(axis=0, ddof=1).mean()) * n_sessions
                     / (n_sessions - 1) / n_seeds)
        common["v_session"] = v_session
        floored = True
    se = math.sqrt(v_seed + v_session)
    if n_seeds >= 2:
        df = conservative_df(v_seed, n_seeds - 1, v_session, n_sessions - 1)
        words = (f"two-level bootstrap SE (seeds × sessions), t with guarded "
                 f"Satterthwaite df = {df:.1f}"
                 + ("; session variance floored (no between-seed spread)" if floored else ""))
    else:
        df = float(n_sessions - 1)
        words = (f"one seed: conditional on that pair of runs (training randomness not "
                 f"covered); session bootstrap SE, t with df = {n_sessions - 1}")
    p, low, high = _t_test(delta, se, df, confidence)
    return InferenceResult(delta=delta, ci_low=low, ci_high=high, p=p, method=words, se=se,
                           df=df, **common)


def seed_level_paired_test(a_seed_means: np.ndarray | Sequence[float],
                           b_seed_means: np.ndarray | Sequence[float],
                           confidence: float = 0.95, metric: str = "",
                           n_sessions: int | None = None, n_samples: int | None = None
                           ) -> InferenceResult:
    """Paired t-test over seeds (:func:`scipy.stats.ttest_rel`) of each run's metric
    (e.g. the MRR@20 of metrics.json), seed s of A against seed s of B: Δ = mean(b − a),
    CI = Δ ± t(S − 1)_{(1+confidence)/2} · sd(b − a) / √S.

    It covers training randomness but holds the test set fixed: a session effect on the
    difference shifts every seed pair alike and looks like a real difference to it (10–15 %
    false rejections at α = 0.05 in ``benchmarks/calibration.py`` with session effects and
    no seed effect). With 3 seeds it has 2 degrees of freedom (t critical value 4.30 at
    95 %): it detects only differences several times larger than the seed-to-seed spread.
    Constant differences (sd 0) give p = 1 when they are 0 and 0 otherwise.
    """
    a_m = np.asarray(a_seed_means, dtype=np.float64).ravel()
    b_m = np.asarray(b_seed_means, dtype=np.float64).ravel()
    if a_m.shape != b_m.shape:
        raise InvalidInputError(f"a and b have {a_m.size} and {b_m.size} seeds: the sides "
                                f"pair seed for seed")
    if a_m.size < 2:
        raise InvalidInputError("a seed-level test needs at least 2 seeds per side")
    if not (np.isfinite(a_m).all() and np.isfinite(b_m).all()):
        raise InvalidInputError("seed means contain NaN or infinite values")
    d = b_m - a_m
    n_seeds = d.size
    delta = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n_seeds))
    df = float(n_seeds - 1)
    if se == 0:
        p, low, high = _t_test(delta, 0.0, df, confidence)
    else:
        p = float(stats.ttest_rel(b_m, a_m).pvalue)
        _, low, high = _t_test(delta, se, df, confidence)
    return InferenceResult(delta=delta, ci_low=low, ci_high=high, p=p, p_holm=math.nan,
                           n_seeds=n_seeds, n_sessions=n_sessions, n_samples=n_samples,
                           method=f"seed-level paired t-test, df = {n_seeds - 1}", se=se,
                           df=df, mean_a=float(a_m.mean()), mean_b=float(b_m.mean()),
                           metric=metric, confidence=confidence)


# --------------------------------------------------------------------------- families


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order: with the m finite p-values
    sorted ascending, p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)). NaN entries stay NaN
    and do not count in m. Reject at family-wise level α where p̃ < α."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p.ravel()))
    if finite.size == 0:
        return out
    values = p.ravel()[finite]
    if ((values < 0) | (values > 1)).any():
        raise InvalidInputError("p-values must lie in [0, 1]")
    order = np.argsort(values, kind="stable")
    m = values.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * values[order]))
    flat = out.ravel()
    flat[finite[order]] = adjusted
    return flat.reshape(p.shape)


def holm_family(results: Sequence[InferenceResult]) -> list[InferenceResult]:
    """The results of one family (one table) with ``p_holm`` filled by :func:`holm`."""
    adjusted = holm([r.p for r in results])
    return [replace(r, p_holm=float(q)) for r, q in zip(results, adjusted, strict=True)]


def compare_ranks(ranks_a: np.ndarray, ranks_b: np.ndarray, session_ids: np.ndarray,
                  metrics: Sequence[str] = ("P@20", "MRR@20", "NDCG@20"),
                  n_resamples: int = 10_000, rng: RandomLike = 0,
                  confidence: float = 0.95) -> list[InferenceResult]:
    """:func:`paired_two_level_bootstrap` of every metric from ranks ``[n_seeds,
    n_samples]`` of both sides (the same resamples for every metric), Holm-corrected over
    the metrics as one family."""
    seed = int(np.random.default_rng(rng).integers(2 ** 63)) if not isinstance(rng, int) \
        else rng
    results = [paired_two_level_bootstrap(metric_values(ranks_a, m), metric_values(ranks_b, m),
                                          session_ids, n_resamples, seed,
                                          confidence=confidence, metric=m)
               for m in metrics]
    return holm_family(results)


# --------------------------------------------------------------------------- words


def tost(result: InferenceResult, margin: float) -> float:
    """Two one-sided tests of equivalence within ±``margin`` (> 0): H0 |Δ| ≥ margin.
    p = max(P(T ≥ (Δ̂ + margin) / SE), P(T ≤ (Δ̂ − margin) / SE)) with T ~ t(result.df),
    so it works on the two-level bootstrap's SE and df as on the seed-level test's.
    p < α ⇔ the (1 − 2α) CI lies inside ±margin. SE 0 gives 0 when |Δ̂| < margin else 1."""
    if not margin > 0:
        raise InvalidInputError(f"the equivalence margin must be > 0, got {margin}")
    if result.se == 0 or not math.isfinite(result.se):
        return 0.0 if abs(result.delta) < margin else 1.0
    dist = _t(result.df)
    p_low = float(dist.sf((result.delta + margin) / result.se))
    p_high = float(dist.cdf((result.delta - margin) / result.se))
    return max(p_low, p_high)


def _fmt(x: float, scale: float, unit: str, digits: int) -> str:
    return f"{x * scale:.{digits}f}{unit}"


def verdict(result: InferenceResult, margin: float | None = None, alpha: float = 0.05,
            scale: float = 1.0, unit: str = "", digits: int = 3) -> str:
    """The comparison in words: "B better" / "A better" when the test rejects Δ = 0 at
    ``alpha`` (``p_holm`` when filled, else ``p``); else "equivalent within ±m" when a
    ``margin`` is given and :func:`tost` rejects at ``alpha``; else "not significant
    after Holm (p = … before), 95 % CI [a, b]" when only the family's correction keeps
    the raw p from rejecting, or "no detectable difference, 95 % CI [a, b]". Numbers
    are shown × ``scale`` with ``unit`` (e.g. 100 and " pp" for percentage points)."""
    p = result.p if math.isnan(result.p_holm) else result.p_holm
    if p < alpha:
        return "B better" if result.delta > 0 else "A better"
    if margin is not None and tost(result, margin) < alpha:
        return f"equivalent within ±{_fmt(margin, scale, unit, digits)}"
    level = f"{result.confidence * 100:g}"
    interval = (f"{level} % CI [{_fmt(result.ci_low, scale, unit, digits)}, "
                f"{_fmt(result.ci_high, scale, unit, digits)}]")
    if result.p < alpha:  # only the correction for the other tests of the family removes it
        return f"not significant after Holm (p = {result.p:.2g} before), {interval}"
    return f"no detectable difference, {interval}"


def mdd_from_se(se: float, df: float = math.inf, alpha: float = 0.05, power: float = 0.8
                ) -> float:
    """Minimum detectable difference of a two-sided level-``alpha`` test with standard
    error ``se`` and ``df`` degrees of freedom: (t_{1−α/2} + t_{power}) · se, which is
    (1.96 + 0.84) · se ≈ 2.8 · se for a normal reference and (4.30 + 1.06) · se ≈ 5.4 · se
    with 2 df (3 seeds dominated by training randomness)."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise InvalidInputError("alpha and power must lie in (0, 1)")
    dist = _t(df)
    return float((dist.ppf(1 - alpha / 2) + dist.ppf(power)) * se)


def minimum_detectable_difference(a: np.ndarray | Sequence, b: np.ndarray | Sequence,
                                  session_ids: np.ndarray | Sequence, alpha: float = 0.05,
                                  power: float = 0.8, n_resamples: int = 2_000,
                                  rng: RandomLike = 0) -> float:
    """The |Δ| that :func:`paired_two_level_bootstrap` on this design (these seeds, these
    sessions, this spread of per-sample values) detects with ``power`` at ``alpha``:
    :func:`mdd_from_se` of its SE and df."""
    result = paired_two_level_bootstrap(a, b, session_ids, n_resamples, rng)
    return result.mdd(alpha, power)


def detectability(mdd: float, size: float, scale: float = 1.0, unit: str = "",
                  digits: int = 3, power: float = 0.8) -> str:
    """Words for a table: whether a true difference of ``size`` is detectable given the
    minimum detectable difference ``mdd`` (e.g. "too small to detect a difference of
    0.500 pp (80 % power needs ≥ 1.800 pp)" for a 25-sample test set)."""
    needed = _fmt(mdd, scale, unit, digits)
    shown = _fmt(size, scale, unit, digits)
    if abs(size) >= mdd:
        return f"a difference of {shown} is detectable ({power * 100:g} % power from {needed})"
    return (f"too small to detect a difference of {shown} "
            f"({power * 100:g} % power needs ≥ {needed})")


# --------------------------------------------------------------------------- simulation


def simulate_comparison(rng: RandomLike, n_seeds: int = 3, n_sessions: int = 60,
                        mean_session_size: float = 4.0, seed_sd: float = 0.1,
                        session_sd: float = 0.3, noise_sd: float = 1.0,
                        delta: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic comparison ``(a, b, session_ids)`` with a known true difference
    ``delta``, for calibration and power checks. Session sizes are uniform on
    1 … 2·mean − 1. For side X, seed s, sample i of session c:

        x[s, i] = difficulty_i + g_s + u_{X,s} + v_{X,c} + e_{X,s,i}  (+ delta on side B)

    difficulty ~ N(0, 1) and the shared seed offset g_s ~ N(0, seed_sd) are common to
    both sides (same sample, same initial backbone) and cancel in the pairing; u (each
    side's training randomness, sd ``seed_sd``), v (each side's affinity to a session,
    sd ``session_sd``) and e (sd ``noise_sd``) do not.
    """
    gen = np.random.default_rng(rng)
    high = max(2, int(round(2 * mean_session_size)))
    sizes = gen.integers(1, high, size=n_sessions)
    session_ids = np.repeat(np.arange(n_sessions), sizes)
    n = session_ids.size
    difficulty = gen.normal(0.0, 1.0, n)
    shared_seed = gen.normal(0.0, seed_sd, (n_seeds, 1))

    def side() -> np.ndarray:
        u = gen.normal(0.0, seed_sd, (n_seeds, 1))
        v = gen.normal(0.0, session_sd, n_sessions)[session_ids]
        e = gen.normal(0.0, noise_sd, (n_seeds, n))
        return difficulty + shared_seed + u + v + e

    a = side()
    b = side() + delta
    return a, b, session_ids
