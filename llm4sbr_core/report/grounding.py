"""Grounding statistics of localized intents as Markdown (docs, reports).

Reads the ``{view}.grounding.json`` files written by the localize_intents rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..errors import MissingRunError


def _cell(text: object) -> str:
    """``text`` as one Markdown table cell: a ``|`` (in an answer, a title) escaped so it
    does not start a new column, line breaks as spaces."""
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def grounding_table(paths: Iterable[str | Path]) -> str:
    """One row per (dataset, llm, encoder, r, view) and split: top-1 in session, hit@r,
    mean top-1 similarity, answers with no text."""
    lines = ["| dataset | view | r | split | samples | top-1 in session % | target in top-r % "
             "| mean top-1 cosine | answers without text |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for path in paths:
        path = Path(path)
        stats = json.loads(path.read_text())
        dataset = path.parts[path.parts.index("intents") - 1]
        view = path.name.split(".")[0]
        splits = {"all": stats, **stats.get("by_split", {})}
        for split, s in splits.items():
            lines.append(f"| {dataset} | {view} | {stats['r']} | {split} | {s['samples']:,} | "
                         f"{_pct(s.get('top1_in_session'))} | {_pct(s.get('hit_at_r'))} | "
                         f"{s.get('mean_top1_similarity', float('nan')):.3f} | "
                         f"{stats['zero_answers'] if split == 'all' else ''} |")
    return "\n".join(lines)


def grounding_examples(path: str | Path, n: int = 10) -> str:
    """The paper's Fig. 4 as a table: session tail → answer → localized items → target."""
    stats = json.loads(Path(path).read_text())
    lines = ["| last clicks | LLM answer | localized items (cosine) | next click |",
             "|---|---|---|---|"]
    for ex in stats.get("examples", [])[:n]:
        session = " → ".join(ex["session"][-3:])
        localized = "; ".join(f"{name} ({score:.2f})" for name, score in ex["localized"])
        lines.append(f"| {_cell(session)} | {_cell(ex['answer'])} | {_cell(localized)} | "
                     f"{_cell(ex['target'])} |")
    return "\n".join(lines)


def localization_report(paths: Iterable[str | Path], n: int = 10) -> str:
    """Markdown for the report: the grounding statistics of every view's grounding.json,
    then the first ``n`` Fig. 4-like examples of each view."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise MissingRunError(path, "grounding statistics (rule localize_intents)")
    parts = ["# Fig. 4. Intent localization: LLM answers and the items they are localized to",
             "", "Grounding statistics per view and split (top-1 in session: the most similar "
             "item is one of the session's own clicks; target in top-r: the next click is "
             "among the r localized items).", "", grounding_table(paths)]
    for path in paths:
        view = path.name.split(".")[0]
        parts += ["", f"## {view} view: examples", "", grounding_examples(path, n)]
    return "\n".join(parts) + "\n"
