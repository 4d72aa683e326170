"""The ``llm4sbr`` command line (``python -m llm4sbr_core.cli``).

    llm4sbr recommend --run results/<dataset>/runs/<backbone>/<variant>/seed<k>
                      --items <ids or titles…> [--k 20] [--json]
    llm4sbr recommend --run … --batch sessions.parquet --out explained.parquet

Each subcommand is one call of the library (:mod:`llm4sbr_core.recommend`); an error the
package raises on purpose (:class:`~llm4sbr_core.errors.Llm4sbrError`) is printed as one
line and exits with status 2, anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from .errors import InvalidInputError, Llm4sbrError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm4sbr", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser(
        "recommend", help="recommend for a session with a trained run, and explain why",
        description="Top-K items of a trained run for one session (or a Parquet file of "
        "sessions), with each view's LLM answer, the items it was grounded in, the gate "
        "weights, and the backbone-alone top-K. See docs/recommend.md.")
    rec.add_argument("--run", required=True,
                     help="run folder: results/<dataset>/runs/<backbone>/<variant>/seed<k>")
    what = rec.add_mutually_exclusive_group(required=True)
    what.add_argument("--items", nargs="+", metavar="ITEM",
                      help="the session, oldest click first: item ids or titles (exact, "
                           "then ignoring case; prefixes id:, raw:, title: force a kind)")
    what.add_argument("--batch", metavar="PARQUET",
                      help="sessions to explain: a Parquet file with a column `items` "
                           "(list of ids or titles) and optionally `session_id`")
    rec.add_argument("--out", metavar="PARQUET", help="where --batch writes its table")
    rec.add_argument("--k", type=int, default=20, help="how many items to recommend")
    rec.add_argument("--json", action="store_true", help="print one JSON document")
    rec.add_argument("--config", nargs="+", default=[], metavar="YAML",
                     help="the workflow's config files (prompt template, LLM runtime "
                          "settings); default: the schema defaults, checked against the "
                          "run's stored prompts")
    rec.add_argument("--cache-dir", help="answer and embedding stores (default: the store "
                                         "the run's answers are in)")
    rec.add_argument("--device", default="cpu", help="torch device (cpu, cuda, auto)")
    rec.add_argument("--threads", type=int, help="torch CPU threads")
    rec.add_argument("--no-compare", action="store_true",
                     help="skip the backbone-alone comparison (the sibling base run)")
    rec.add_argument("--no-generate", action="store_true",
                     help="use stored LLM answers only; a prompt without one is an error")
    rec.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser


def recommend_command(args: argparse.Namespace) -> int:
    """``llm4sbr recommend``: one session to stdout, or a batch to Parquet."""
    # imported here: `llm4sbr --help` should not wait for torch
    from .recommend import Recommender

    if args.batch and not args.out:
        raise InvalidInputError("--batch needs --out (the Parquet file to write)")
    if args.out and not args.batch:
        raise InvalidInputError("--out goes with --batch")
    recommender = Recommender.load(args.run, config_files=args.config,
                                   cache_dir=args.cache_dir, device=args.device,
                                   threads=args.threads, compare=not args.no_compare,
                                   generate=not args.no_generate)
    try:
        if args.batch:
            return _batch(recommender, args)
        explanation = recommender.explain([args.items], args.k)[0]
    finally:
        recommender.close()
    explanation.timings = {"load": round(recommender.timings["load"], 4),
                           **explanation.timings}
    print(explanation.to_json() if args.json else explanation.to_text())
    return 0


def _batch(recommender: Any, args: argparse.Namespace) -> int:
    """``--batch``: every session of the Parquet file, one LLM pass, one table out."""
    from .io import AtomicFiles
    from .recommend import explanations_table, read_sessions

    sessions, ids = read_sessions(args.batch)
    started = time.perf_counter()
    explanations = recommender.explain(sessions, args.k)
    with AtomicFiles() as files:
        files.write_parquet(args.out, explanations_table(explanations, ids))
    seconds = time.perf_counter() - started
    print(f"{len(explanations)} sessions explained in {seconds:.1f} s "
          f"({len(explanations) / max(seconds, 1e-9):.1f} sessions/s) → {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 a usage or input error)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False)
                        else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return recommend_command(args)
    except Llm4sbrError as e:
        print(f"llm4sbr {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
