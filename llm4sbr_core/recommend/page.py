"""A static HTML page with a few test sessions of one run explained (rule
``report_explain``): per session the clicks, each view's LLM answer and the items it was
grounded in, the gate weights, the run's top-K next to the backbone-alone top-K, and
where the item actually clicked next landed. Self-contained (inline CSS, no script), so
it opens from the report or from disk alike."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import layout
from ..io import AtomicFiles
from ..localize_stage import NO_TEXT_FLAGS
from .engine import GATE_NAMES, Explanation, Recommender

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ccc; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.target { background: #fff3bf; font-weight: bold; } .new { color: #1b7a1b; }
.gone { color: #a61b1b; } .muted { color: #777; } .session { margin: .3em 0 .8em 1em; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _ranked_rows(items: Sequence[Any], target: int | None, new: set[int] | None) -> str:
    rows = []
    for rank, item in enumerate(items, 1):
        cls = ' class="target"' if item.item_id == target else ""
        mark = ' <span class="new">(entered)</span>' if new and item.item_id in new else ""
        rows.append(f'<tr{cls}><td class="num">{rank}</td><td>[{item.item_id}] '
                    f'{_e(item.title)}{mark}</td><td class="num">{item.score:.4f}</td></tr>')
    return "".join(rows)


def explanation_html(e: Explanation, target: int | None = None,
                     target_title: str | None = None) -> str:
    """One explained session as an HTML section (``target``: the true next click)."""
    parts = ['<section class="explained">',
             f"<h2>Session of {len(e.session)} clicks</h2><ol class=\"session\">"]
    parts += [f"<li>[{s.item_id}] {_e(s.title)}</li>" for s in e.session]
    parts.append("</ol>")
    if target is not None:
        parts.append(f"<p>Next click (the test target): <span class=\"target\">[{target}] "
                     f"{_e(target_title or '')}</span></p>")
    if e.views:
        parts.append("<table><tr><th>view</th><th>LLM answer</th><th>flag</th>"
                     "<th>grounded items (cosine)</th><th>gate α</th></tr>")
        for v in e.views:
            grounded = "<br>".join(f"[{g.item_id}] {_e(g.title)} ({g.score:.3f})"
                                   for g in v.grounded) or '<span class="muted">–</span>'
            if v.flag in NO_TEXT_FLAGS:  # a zero intent: its top-r are placeholders
                grounded = '<span class="muted">no answer text: nothing grounded</span>'
            answer = (_e(v.answer) if v.source != "items"
                      else '<span class="muted">item texts (no LLM)</span>')
            gate = (f"{v.gate:.4f} <span class=\"muted\">{_e(GATE_NAMES.get(v.view, ''))}"
                    "</span>" if v.gate is not None else '<span class="muted">none</span>')
            parts.append(f"<tr><td>{_e(v.view)}</td><td>{answer}</td><td>{_e(v.flag or '')}"
                         f"</td><td>{grounded}</td><td class=\"num\">{gate}</td></tr>")
        parts.append("</table>")
    comparison = e.comparison
    entered = {r.item_id for r in comparison.entered} if comparison else set()
    parts.append("<table><tr><th colspan=\"3\">"
                 f"top {e.k}: {_e(e.variant)}</th>")
    has_base = comparison is not None and comparison.run is not None
    if has_base:
        parts.append("<th colspan=\"3\">the backbone alone (base)</th>")
    parts.append("</tr><tr><td colspan=\"3\" style=\"padding:0\"><table style=\"margin:0\">"
                 f"{_ranked_rows(e.recommendations, target, entered)}</table></td>")
    if has_base:
        gone = {r.item_id for r in comparison.left}
        rows = _ranked_rows(comparison.recommendations, target, None)
        for item_id in gone:  # mark what left the list
            rows = rows.replace(f"<td>[{item_id}] ", f"<td class=\"gone\">[{item_id}] ", 1)
        parts.append(f"<td colspan=\"3\" style=\"padding:0\"><table style=\"margin:0\">{rows}"
                     "</table></td>")
    parts.append("</tr></table>")
    if comparison is not None and not has_base:
        parts.append(f"<p class=\"muted\">Backbone alone: {_e(comparison.note)}</p>")
    parts.append("</section>")
    return "\n".join(parts)


def explain_page(recommender: Recommender, sessions: Sequence[Sequence[int]],
                 targets: Sequence[int | None], k: int = 10) -> str:
    """The page: a heading naming the run, then each session explained."""
    explanations = recommender.explain(sessions, k)
    s = recommender.settings
    record = s.intents or {}
    intro = (f"<p>Run <code>{_e(recommender.files.run_dir)}</code>: backbone "
             f"{_e(s.backbone)}, variant {_e(s.variant.name)}, seed {s.seed}"
             + (f"; LLM {_e(record.get('llm'))}, encoder {_e(record.get('encoder'))}, "
                f"r = {_e(record.get('r'))}" if record.get("llm") else "") + ".</p>"
             "<p>For each test session: what the LLM answered for each view, the real "
             "items that answer was grounded in (eq. 4–5), the gate weight α of each view "
             "in the fused session vector (eqs. 10–12), and the top items next to the "
             "backbone trained alone; the highlighted row is the item clicked next. "
             "Produced by <code>llm4sbr recommend</code> (docs/recommend.md).</p>")
    body = [explanation_html(e, t, recommender.catalog.title(t) if t else None)
            for e, t in zip(explanations, targets, strict=True)]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Explained sessions: {_e(s.dataset)}</title><style>{_STYLE}</style>"
            f"</head><body><h1>Explained test sessions ({_e(s.dataset)})</h1>{intro}"
            + "\n".join(body) + "</body></html>\n")


def write_explain_page(run_dir: str | Path, out: str | Path, *, sessions: int = 5,
                       k: int = 10, config: Mapping[str, Any] | None = None,
                       generate: bool = True) -> None:
    """rule report_explain: the first ``sessions`` test samples of the run's dataset
    explained, written atomically to ``out``."""
    recommender = Recommender.load(run_dir, config=config, generate=generate)
    test = pd.read_parquet(recommender.files.path(layout.SPLIT_FILE, split="test"),
                           columns=["items", "target"]).head(sessions)
    page = explain_page(recommender, [list(map(int, s)) for s in test["items"]],
                        [int(t) for t in test["target"]], k)
    with AtomicFiles() as files:
        files.write_text(out, page)
