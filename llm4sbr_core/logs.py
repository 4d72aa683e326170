"""Logging set-up for workflow jobs and command-line use."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence


def setup_logging(log_files: Sequence[str] = ()) -> None:
    """Log INFO and above to stderr and to each file in ``log_files`` (overwritten)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers += [logging.FileHandler(path, mode="w") for path in log_files]
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
