"""Rendering and number formatting of the report's tables.

A :class:`Table` is a machine-readable frame (the CSV) plus the display rows (Markdown and
a small HTML page for the Snakemake report), written atomically by :func:`write_table`.
The formatting helpers print means ± sample std over seeds, p-values and relative
changes the same way in every table.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import AtomicFiles

DASH = "—"


#: How a table's warnings start in its Markdown (:func:`warnings_of` finds them).
WARNING = "**Warning:**"


@dataclass
class Section:
    """A further block of a :class:`Table` (e.g. its tests): a ``##`` heading and rows."""

    title: str
    header: list[str]
    rows: list[list[str]]


def _pipe_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    if not rows:
        lines.append("| " + " | ".join(["(no runs)"] + [""] * (len(header) - 1)) + " |")
    return lines


@dataclass
class Table:
    """A rendered table: ``data`` is written as CSV, ``header`` / ``rows`` as Markdown
    and HTML under ``title``; then the ``sections`` (each under its heading), then the
    ``notes`` paragraphs. ``warnings`` (e.g. a test set too small to tell) come first,
    right under the title, each as a paragraph starting with :data:`WARNING`."""

    title: str
    header: list[str]
    rows: list[list[str]]
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for warning in self.warnings:
            lines += [f"{WARNING} {warning}", ""]
        lines += _pipe_table(self.header, self.rows)
        for section in self.sections:
            lines += ["", f"## {section.title}", ""]
            lines += _pipe_table(section.header, section.rows)
        for note in self.notes:
            lines += ["", note]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        return markdown_page(self.markdown())

    def csv(self) -> str:
        buffer = io.StringIO()
        self.data.to_csv(buffer, index=False, float_format="%.6g")
        return buffer.getvalue()


def write_table(table: Table, csv: str | Path, md: str | Path,
                html_path: str | Path | None = None) -> None:
    """Write the CSV, the Markdown and (optionally) the HTML page, all or none."""
    with AtomicFiles() as files:
        files.write_text(csv, table.csv())
        files.write_text(md, table.markdown())
        if html_path is not None:
            files.write_text(html_path, table.html())


_STYLE = ("body{font-family:sans-serif;font-size:13px;margin:1em}"
          "table{border-collapse:collapse;margin-bottom:1em}th,td{border:1px solid #bbb;"
          "padding:3px 6px;vertical-align:top}th{background:#eee}")


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1].replace("\\|", "\0")
    return [c.strip().replace("\0", "|") for c in inner.split("|")]


def markdown_page(markdown: str) -> str:
    """A standalone HTML page from the Markdown subset the report writes: ``#`` / ``##``
    headings, pipe tables and paragraphs."""
    esc = html.escape
    out: list[str] = []
    title = "report"
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 4)
            text = line.lstrip("#").strip()
            title = text if title == "report" else title
            out.append(f"<h{level}>{esc(text)}</h{level}>")
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            head, body = _cells(block[0]), [_cells(b) for b in block[2:]]
            out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                    for row in body]
            out.append("</table>")
            continue
        elif line.strip():
            out.append(f"<p>{esc(line)}</p>")
        i += 1
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{esc(title)}"
            f"</title><style>{_STYLE}</style></head><body>\n" + "\n".join(out)
            + "\n</body></html>\n")


def warnings_of(markdown: str) -> list[str]:
    """The warning paragraphs of a table's Markdown (:attr:`Table.warnings`), whole."""
    return [line for line in markdown.splitlines() if line.startswith(WARNING)]


def write_markdown(markdown: str, md: str | Path, html_path: str | Path | None = None
                   ) -> None:
    """Write Markdown and (optionally) its HTML page, all or none."""
    with AtomicFiles() as files:
        files.write_text(md, markdown)
        if html_path is not None:
            files.write_text(html_path, markdown_page(markdown))


# --- formatting -----------------------------------------------------------------------

def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof = 1; 0 for one value) and count."""
    x = np.asarray(list(values), dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, 0
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0, int(x.size)


def seed_summary(runs: pd.DataFrame, metrics: Sequence[str], shown: Iterable[str]
                 ) -> tuple[list[str], dict[str, float]]:
    """The runs of one variant summarised over seeds: the display cells of ``metrics``
    (mean ± std, in %) and the CSV fields ``{m}_mean``, ``{m}_std`` of every metric of
    ``shown`` (which includes ``metrics``)."""
    stats = {m: mean_std(runs[m]) for m in dict.fromkeys([*metrics, *shown])}
    cells = [fmt_pm(100 * stats[m][0], 100 * stats[m][1], stats[m][2]) for m in metrics]
    fields: dict[str, float] = {}
    for m, (mean, std, _) in stats.items():
        fields[f"{m}_mean"], fields[f"{m}_std"] = 100 * mean, 100 * std
    return cells, fields


def fmt_pm(mean: float, std: float, n: int, digits: int = 2) -> str:
    """``"12.34 ± 0.56"``; one seed prints the mean alone; no value prints a dash."""
    if n == 0 or math.isnan(mean):
        return DASH
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:,.{digits}f}{suffix}"


def fmt_signed(value: float | None, digits: int = 2) -> str:
    """``+1.23`` / ``-0.45``; a dash for no value."""
    if value is None or math.isnan(value):
        return DASH
    return f"{value:+.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return DASH
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def improvement(base: float, new: float) -> float:
    """Relative change of the means in % (the paper's "Improv.")."""
    return 100.0 * (new - base) / base if base else math.nan


def ours_label(n_seeds: int) -> str:
    return f"ours ({n_seeds} seed{'' if n_seeds == 1 else 's'})"


def selection_note(n_seeds: Sequence[int]) -> str:
    seeds = sorted(set(n_seeds))
    count = ", ".join(map(str, seeds)) if seeds else "0"
    return (f"Ours: test-set metrics of the epoch selected on the VALIDATION split, mean ± "
            f"sample std over N = {count} seed{'' if seeds == [1] else 's'}, in %. The paper "
            "selected epochs on the test set and its MRR@5/10 drop samples ranked beyond K: "
            "compare on P@K and the @20 metrics.")
