"""How often does each paired test reject a true null? Type-I error at α on simulated runs.

    .venv/bin/python benchmarks/calibration.py --comparisons 2000 --seeds 3 --sessions 60

Each comparison draws two sides with no true difference from
:func:`llm4sbr_core.report.inference.simulate_comparison`: every seed of every side gets
its own random offset (training randomness, sd ``--seed-sd``), every session a per-side
effect shared by its samples (sd ``--session-sd``), every sample noise (sd ``--noise-sd``).
Rows (rejection rate at ``--alpha``, with its Monte-Carlo standard error):

* ``old: sample-level t-test`` — :func:`llm4sbr_core.report.significance.paired_ttest` on
  the seed-averaged per-sample values, as :mod:`.significance` compares runs;
* ``old: sample-level bootstrap`` — :func:`llm4sbr_core.report.significance.bootstrap_test`
  on the same values;
* ``new: two-level bootstrap, percentile`` — seeds × sessions resampled, percentile
  p-value (``method="percentile"``), shown to motivate the t reference;
* ``new: two-level bootstrap, t (guarded df)`` — the default of
  :func:`llm4sbr_core.report.inference.paired_two_level_bootstrap`;
* ``seed-level paired t-test`` — :func:`~llm4sbr_core.report.inference.seed_level_paired_test`
  on the per-seed means.

A calibrated test rejects α of the time (within ±2 MC standard errors).

    .venv/bin/python benchmarks/calibration.py --df-grid --seeds 3 --sessions 60

prints instead the size of the t reference alone, without bootstrap or simulation of
samples: Δ̂ / √(V̂_seed + V̂_session) with V̂_seed ~ ρ·χ²_{S−1}/(S−1) and
V̂_session ~ (1 − ρ)·χ²_{C−1}/(C−1) (normal model; ρ = the seed share of Var(Δ̂)), for
the plain Satterthwaite df, the guarded df of
:func:`~llm4sbr_core.report.inference.conservative_df`, a fixed df = S − 1 and a normal
reference.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from llm4sbr_core.report import significance
from llm4sbr_core.report.inference import (
    paired_two_level_bootstrap,
    seed_level_paired_test,
    simulate_comparison,
)

TESTS = ("old: sample-level t-test", "old: sample-level bootstrap",
         "new: two-level bootstrap, percentile", "new: two-level bootstrap, t (guarded df)",
         "seed-level paired t-test")


def null_p_values(comparisons: int, seeds: int, sessions: int, session_size: float,
                  seed_sd: float, session_sd: float, noise_sd: float, resamples: int,
                  seed: int) -> np.ndarray:
    """[comparisons, len(TESTS)] p-values of every test on simulated null comparisons."""
    out = np.empty((comparisons, len(TESTS)))
    for i in range(comparisons):
        a, b, sessions_of = simulate_comparison([seed, i], seeds, sessions, session_size,
                                                seed_sd, session_sd, noise_sd)
        a_avg, b_avg = a.mean(axis=0), b.mean(axis=0)
        old_boot, _, _ = significance.bootstrap_test(b_avg - a_avg, resamples, seed=i)
        pct = paired_two_level_bootstrap(a, b, sessions_of, resamples, rng=i,
                                         method="percentile")
        t = paired_two_level_bootstrap(a, b, sessions_of, resamples, rng=i)
        seed_level = (seed_level_paired_test(a.mean(axis=1), b.mean(axis=1)).p
                      if seeds >= 2 else math.nan)
        out[i] = (significance.paired_ttest(a_avg, b_avg), old_boot[0], pct.p, t.p,
                  seed_level)
    return out


def df_grid(seeds: int, sessions: int, alpha: float, draws: int, seed: int) -> None:
    """Size of the t reference over the seed share ρ of the variance (normal model)."""
    rng = np.random.default_rng(seed)
    f_seed, f_session = seeds - 1, sessions - 1
    z = rng.normal(size=draws)
    x = rng.chisquare(f_seed, size=draws) / f_seed
    y = rng.chisquare(f_session, size=draws) / f_session
    k = f_seed / stats.chi2.ppf(0.25, f_seed)  # the guard of conservative_df

    def satterthwaite(v_seed: np.ndarray, v_session: np.ndarray) -> np.ndarray:
        return (v_seed + v_session) ** 2 / (v_seed ** 2 / f_seed + v_session ** 2 / f_session)

    rules = {
        "plain Satterthwaite": satterthwaite,
        "guarded (conservative_df)": lambda a, b: satterthwaite(k * a, b),
        "fixed df = S − 1": lambda a, b: np.full(np.shape(a), float(f_seed)),
        "normal": lambda a, b: np.full(np.shape(a), np.inf),
    }
    rhos = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
    print(f"size at α = {alpha:g} of |Δ̂| / SE against t(df): {seeds} seeds, {sessions} "
          f"sessions, {draws} draws per ρ, RNG seed {seed}\n")
    print("| df rule | " + " | ".join(f"ρ = {r:g}" for r in rhos) + " |")
    print("|---|" + "---:|" * len(rhos))
    for name, rule in rules.items():
        cells = []
        for rho in rhos:
            v_seed, v_session = rho * x, (1 - rho) * y
            df = rule(v_seed, v_session)
            crit = np.where(np.isinf(df), stats.norm.ppf(1 - alpha / 2),
                            stats.t.ppf(1 - alpha / 2, np.where(np.isinf(df), 1.0, df)))
            rate = float((np.abs(z) > crit * np.sqrt(v_seed + v_session)).mean())
            cells.append(f"{rate * 100:.1f} %")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--comparisons", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--session-size", type=float, default=4.0,
                        help="mean samples per session (sizes uniform on 1 … 2·mean − 1)")
    parser.add_argument("--seed-sd", type=float, default=0.1)
    parser.add_argument("--session-sd", type=float, default=0.3)
    parser.add_argument("--noise-sd", type=float, default=1.0)
    parser.add_argument("--resamples", type=int, default=400)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--df-grid", action="store_true",
                        help="print the size of each df rule over the seed share ρ instead")
    parser.add_argument("--draws", type=int, default=100_000,
                        help="--df-grid: draws per ρ")
    args = parser.parse_args()
    if args.df_grid:
        df_grid(args.seeds, args.sessions, args.alpha, args.draws, args.seed)
        return

    start = time.perf_counter()
    p = null_p_values(args.comparisons, args.seeds, args.sessions, args.session_size,
                      args.seed_sd, args.session_sd, args.noise_sd, args.resamples, args.seed)
    elapsed = time.perf_counter() - start
    print(f"{args.comparisons} null comparisons: {args.seeds} seeds, {args.sessions} sessions "
          f"(mean size {args.session_size:g}), seed sd {args.seed_sd:g}, session sd "
          f"{args.session_sd:g}, noise sd {args.noise_sd:g}, {args.resamples} resamples, "
          f"α = {args.alpha:g}, RNG seed {args.seed} ({elapsed:.1f} s)\n")
    print("| test | rejection rate | MC s.e. |")
    print("|---|---:|---:|")
    for j, name in enumerate(TESTS):
        column = p[:, j][~np.isnan(p[:, j])]
        if column.size == 0:
            print(f"| {name} | n/a | |")
            continue
        rate = float((column < args.alpha).mean())
        se = math.sqrt(rate * (1 - rate) / column.size)
        print(f"| {name} | {rate * 100:.1f} % | {se * 100:.1f} % |")


if __name__ == "__main__":
    main()
