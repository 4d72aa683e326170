"""Logging set-up for workflow jobs and command-line use."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

# A batch job's log (SLURM, Snakemake's per-job log) gets one progress line per this many
# seconds instead of one per update.
NON_TTY_PROGRESS_INTERVAL_S = 30.0


def setup_logging(log_files: Sequence[str] = ()) -> None:
    """Log INFO and above to stderr and to each file in ``log_files`` (overwritten).

    An uncaught exception is logged too, so a failed job's log file says why it failed.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers += [logging.FileHandler(path, mode="w") for path in log_files]
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # faiss reports each SIMD build it could not load at INFO: noise in every job log.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)

    def log_uncaught(exc_type, exc, tb):
        logging.getLogger("llm4sbr_core").critical("%s: %s", exc_type.__name__, exc,
                                                   exc_info=(exc_type, exc, tb))

    sys.excepthook = log_uncaught


@contextmanager
def log_to(path: str, logger: str = "llm4sbr_core") -> Iterator[None]:
    """Send ``logger``'s records to ``path`` for the duration (for ``run:`` rules, which
    execute inside Snakemake's own process and must not reconfigure its logging)."""
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    target = logging.getLogger(logger)
    level = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield
    finally:
        target.removeHandler(handler)
        target.setLevel(level)
        handler.close()


def progress(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr that refreshes every second on a terminal and every
    ``NON_TTY_PROGRESS_INTERVAL_S`` seconds in a file (a job log), so a long job's log
    stays readable. Keyword arguments go to tqdm (``disable``, ``total``, ``desc``…)."""
    kwargs.setdefault("file", sys.stderr)
    interactive = kwargs["file"].isatty() if hasattr(kwargs["file"], "isatty") else False
    kwargs.setdefault("mininterval", 1.0 if interactive else NON_TTY_PROGRESS_INTERVAL_S)
    return tqdm(iterable, **kwargs)
