"""Fit and full-ranking evaluation time of the non-neural baselines (POP, SKNN, V-SKNN,
STAN, V-STAN; llm4sbr_core.models.knn), with their metrics.

    .venv/bin/python benchmarks/knn_speed.py --data results/beauty/data
    .venv/bin/python benchmarks/knn_speed.py --synthetic            # Beauty-sized, no data needed
    .venv/bin/python benchmarks/knn_speed.py --synthetic --tune     # plus the validation grid

Each method runs with its default parameters: "fit" rebuilds the training sessions from the
training samples and the sparse session × item matrices; "valid" and "test" rank every
target of the split among all N items. ``--tune`` also runs the default grid on the
validation split (then one test pass) and reports its total time.

``--synthetic`` draws Beauty-sized random data (default 22,000 items, 20,000 training
sessions, 18,000 validation and 18,000 test prefixes, mean session length ≈ 9): item
popularity follows a Zipf law and each session mostly stays within one of ``--topics``
item groups, so that neighbours carry signal. Its metrics say nothing about real data.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import torch

from llm4sbr_core.data.batches import count_items
from llm4sbr_core.metrics import metrics_from_ranks
from llm4sbr_core.models.knn import (
    METHODS,
    KnnIndex,
    Samples,
    SessionArrays,
    default_params,
    make_model,
    model_ranks,
    read_samples,
    training_sessions,
    tune_knn,
)


def synthetic_sessions(rng: np.random.Generator, n_sessions: int, n_items: int, topics: int,
                       mean_length: float) -> list[np.ndarray]:
    """Random sessions of ≥ 2 clicks: a Zipf-popular catalogue split into topic groups;
    70 % of a session's clicks come from its topic, the rest from the whole catalogue."""
    popularity = 1.0 / np.arange(1, n_items + 1)
    items = rng.permutation(np.arange(1, n_items + 1))  # item at popularity rank r
    cumulative = np.cumsum(popularity) / popularity.sum()
    topic_of = rng.integers(0, topics, n_items)
    by_topic = [items[topic_of == t] for t in range(topics)]
    lengths = 2 + rng.geometric(1.0 / (mean_length - 1.0), n_sessions) - 1
    lengths = np.minimum(lengths, 50)
    out = []
    for length in lengths:
        group = by_topic[int(rng.integers(0, topics))]
        from_topic = rng.random(length) < 0.7
        clicks = items[np.minimum(np.searchsorted(cumulative, rng.random(length)), n_items - 1)]
        if len(group):
            clicks[from_topic] = group[rng.integers(0, len(group), int(from_topic.sum()))]
        out.append(clicks)
    return out


def prefix_samples(sessions: list[np.ndarray], limit: int, first_session: int,
                   first_sample: int) -> Samples:
    """Every prefix of each session (input seq[:k], target seq[k]), the first ``limit``."""
    prefixes, targets, session_ids = [], [], []
    for j, seq in enumerate(sessions):
        for k in range(1, len(seq)):
            if len(targets) == limit:
                break
            prefixes.append(seq[:k])
            targets.append(int(seq[k]))
            session_ids.append(first_session + j)
    n = len(targets)
    return Samples(SessionArrays.from_lists(prefixes), np.asarray(targets, dtype=np.int64),
                   np.arange(first_sample, first_sample + n, dtype=np.int64),
                   np.asarray(session_ids, dtype=np.int64))


def synthetic_splits(args: argparse.Namespace) -> tuple[Samples, Samples, Samples, int]:
    rng = np.random.default_rng(args.seed)
    train_sessions = synthetic_sessions(rng, args.train_sessions, args.items, args.topics,
                                        args.mean_length)
    train = prefix_samples(train_sessions, sys.maxsize, 0, 0)
    per_session = args.mean_length - 1
    n_eval = int(args.test_prefixes / per_session * 1.3) + 10
    valid = prefix_samples(synthetic_sessions(rng, n_eval, args.items, args.topics,
                                              args.mean_length),
                           args.test_prefixes, args.train_sessions, len(train))
    test = prefix_samples(synthetic_sessions(rng, n_eval, args.items, args.topics,
                                             args.mean_length),
                          args.test_prefixes, args.train_sessions + n_eval,
                          len(train) + len(valid))
    return train, valid, test, args.items


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a dataset's data folder (results/<dataset>/data)")
    source.add_argument("--synthetic", action="store_true",
                        help="Beauty-sized random sessions instead of a dataset")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--tune", action="store_true",
                        help="also run the default validation grid of each method")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (ranking)")
    parser.add_argument("--items", type=int, default=22_000)
    parser.add_argument("--train-sessions", type=int, default=20_000)
    parser.add_argument("--test-prefixes", type=int, default=18_000,
                        help="prefixes of the validation and of the test split each")
    parser.add_argument("--mean-length", type=float, default=9.0)
    parser.add_argument("--topics", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    if args.synthetic:
        train, valid, test, n_items = synthetic_splits(args)
        what = (f"synthetic (seed {args.seed}, {args.topics} topics; its metrics say nothing "
                "about real data)")
    else:
        data = Path(args.data)
        n_items = count_items(data / "items.parquet")
        train, valid, test = (read_samples(data / f"{s}.parquet")
                              for s in ("train", "valid", "test"))
        what = str(data)
    load_s = time.perf_counter() - t0
    sessions = training_sessions(train)
    print(f"data: {what}; {n_items:,} items, {len(sessions):,} training sessions "
          f"({len(train):,} samples, mean length {sessions.lengths.mean():.2f}), "
          f"{len(valid):,} valid / {len(test):,} test prefixes; built in {load_s:.1f} s")
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy "
          f"{scipy.__version__}, torch {torch.__version__}, {args.threads} torch threads\n")

    rows = []
    for method in args.methods:
        start = time.perf_counter()
        index = KnnIndex.from_samples(train, n_items)
        model = make_model(method, index)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        valid_metrics = metrics_from_ranks(model_ranks(model, valid))
        valid_s = time.perf_counter() - start
        start = time.perf_counter()
        test_metrics = metrics_from_ranks(model_ranks(model, test))
        test_s = time.perf_counter() - start
        row = {"method": method, "params": default_params(method), "fit": fit_s,
               "valid": valid_s, "test_s": test_s, "valid_mrr": valid_metrics["MRR@20"],
               "test": test_metrics}
        if args.tune:
            start = time.perf_counter()
            tuned = tune_knn(method, index, valid, test, n_items)
            row["tune_s"] = time.perf_counter() - start
            row["tuned"] = tuned
        rows.append(row)
        print(f"{method}: {row['params']} — fit {fit_s:.2f} s, valid {valid_s:.1f} s, "
              f"test {test_s:.1f} s, peak RSS {peak_rss_mb():.0f} MB", flush=True)

    print("\n| method | fit s | valid s | test s | valid MRR@20 | test P@20 | test MRR@20 "
          "| test NDCG@20 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t = r["test"]
        print(f"| {r['method']} | {r['fit']:.2f} | {r['valid']:.1f} | {r['test_s']:.1f} | "
              f"{100 * r['valid_mrr']:.2f} | {100 * t['P@20']:.2f} | {100 * t['MRR@20']:.2f} "
              f"| {100 * t['NDCG@20']:.2f} |")
    if args.tune:
        print("\nTuned on validation MRR@20 (default grids), tested once:\n")
        print("| method | grid points | tune + test s | best params | valid MRR@20 "
              "| test P@20 | test MRR@20 |")
        print("|---|---:|---:|---|---:|---:|---:|")
        for r in rows:
            tuned = r["tuned"]
            best = {k: v for k, v in tuned.best_params.items()
                    if any(k in g["params"] for g in tuned.grid)}
            print(f"| {r['method']} | {len(tuned.grid)} | {r['tune_s']:.0f} | {best} | "
                  f"{100 * tuned.valid['MRR@20']:.2f} | {100 * tuned.test['P@20']:.2f} | "
                  f"{100 * tuned.test['MRR@20']:.2f} |")
    print(f"\npeak RSS {peak_rss_mb():.0f} MB; metrics in %, full ranking over all "
          f"{n_items:,} items, pessimistic ties")


if __name__ == "__main__":
    main()
