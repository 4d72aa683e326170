"""Use a trained run: recommend for new sessions and show why (the LLM's intents, the
items that grounded them, each view's gate weight, and what the intents changed against
the backbone alone). ``llm4sbr recommend`` (:mod:`llm4sbr_core.cli`) is its command line;
docs/recommend.md describes both."""

from .catalog import ItemCatalog, ItemNotFoundError
from .engine import (
    BackboneComparison,
    Explanation,
    Ranked,
    Recommender,
    ViewExplanation,
    explanations_table,
    read_sessions,
    recommend,
)
from .run_files import RunFiles, RunMismatchError

__all__ = ["BackboneComparison", "Explanation", "ItemCatalog", "ItemNotFoundError", "Ranked",
           "Recommender", "RunFiles", "RunMismatchError", "ViewExplanation",
           "explanations_table", "read_sessions", "recommend"]
