"""Paired significance tests between two sets of runs ranked on the same test set.

Every run writes ``ranks.parquet`` (``sample_id``, ``rank`` = 1-based rank of the target
among all items). A rank gives each sample its own value of every metric:

* P@K (= hit@K): 1 if rank ≤ K else 0
* MRR@K: 1 / rank if rank ≤ K else 0
* NDCG@K: 1 / log2(rank + 1) if rank ≤ K else 0

whose mean over the samples is the metric of ``metrics.json``. With several seeds per
side, a sample's value is its mean over that side's seeds; the two sides are then paired
by ``sample_id``. Reported per metric: the mean difference (B − A), a two-sided paired
t-test p-value (scipy.stats.ttest_rel) and a paired bootstrap p-value with a 95%
percentile interval of the mean difference (seeded; the same resamples for every metric).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..errors import InvalidInputError, MissingRunError
from .runs import METRICS

_METRIC = re.compile(r"^(P|HR|MRR|NDCG)@([1-9][0-9]*)$")


def per_sample_metric(ranks: np.ndarray | Sequence[int], metric: str) -> np.ndarray:
    """Each sample's value of ``metric`` (``"P@20"``, ``"MRR@5"``, ``"NDCG@10"``; HR@K is
    P@K) from its 1-based rank, as float64."""
    match = _METRIC.match(metric)
    if match is None:
        raise InvalidInputError(f"unknown metric {metric!r}: expected P@K, HR@K, MRR@K or "
                                "NDCG@K")
    r = np.asarray(ranks, dtype=np.float64)
    if (r < 1).any():
        raise InvalidInputError(f"ranks are 1-based, got rank {r.min():g}")
    kind, k = match[1], int(match[2])
    inside = r <= k
    if kind in ("P", "HR"):
        return inside.astype(np.float64)
    if kind == "MRR":
        return np.where(inside, 1.0 / r, 0.0)
    return np.where(inside, 1.0 / np.log2(r + 1.0), 0.0)


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
