"""The results archive: the run outputs every published number comes from, and the tables
of RESULTS.md regenerated from them.

    archive/{dataset}/runs/{backbone}/{variant}/seed{seed}/metrics.json, ranks.parquet
    archive/{dataset}/data/stats.json

mirrors ``results/`` (``layout.ARCHIVE_ROOT`` in place of ``layout.RESULTS_ROOT``). Each
metrics.json holds the run's resolved settings (``config``), its ``provenance`` (package
versions, commit) and ``runtime``; ranks.parquet the test rank of every sample with its
session. Models, intermediate arrays and datasets are not archived.

RESULTS.md marks each generated table with a pair of comments; the text between them is
what :func:`render_block` gives for the spec in the opening comment::

    <!-- table: decomposition dataset=ml-100k backbone=srgnn resamples=2000 -->
    ...
    <!-- /table -->

Kinds and their keys: ``variants`` (dataset, backbones, variants, reference — the
variant every row is tested against, ``base`` by default —, title), ``decomposition``
(dataset, backbone, source), ``tuned`` (dataset, backbones, variant), ``table3``
(dataset, backbones, variants), ``table2`` (datasets); each takes ``resamples``.

Commands (``python -m llm4sbr_core.report.archive ...``):

    collect RESULTS_DIR [--archive archive] [--datasets d ...]   copy finished runs in
    regenerate RESULTS.md [--archive archive]                    rewrite every block
    check RESULTS.md [--archive archive]                         exit 1 on a difference;
                                                                 list runs no table reads

A table reads the archived runs its spec names (every backbone of the dataset unless
``backbones=`` is given), so a long grid can be archived run by run as its runs finish
and enter a table only once the table's spec names its backbone; ``check`` lists the
archived runs no table reads (:func:`unpublished`).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import InvalidInputError
from ..io import AtomicFiles
from ..layout import ARCHIVE_ROOT, METRICS_FILE, RANKS_FILE
from .render import Table

log = logging.getLogger(__name__)

#: ``<!-- table: KIND key=value ... -->`` ... ``<!-- /table -->``
_BLOCK = re.compile(r"(<!-- table: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /table -->)",
                    re.S)
ARCHIVED_RUN_FILES: tuple[str, ...] = (METRICS_FILE, RANKS_FILE)


# --------------------------------------------------------------------------- collect

def collect(results_dir: str | Path, archive_dir: str | Path = ARCHIVE_ROOT,
            datasets: Sequence[str] | None = None) -> list[Path]:
    """Copy every finished run (metrics.json and ranks.parquet both present) and each
    dataset's stats.json from ``results_dir`` into ``archive_dir``, same layout; returns
    the archived metrics.json files. A run already archived is replaced (atomically)."""
    results_dir, archive_dir = Path(results_dir), Path(archive_dir)
    if not results_dir.is_dir():
        raise InvalidInputError("no such results folder", results_dir)
    names = datasets or sorted(p.name for p in results_dir.iterdir() if (p / "runs").is_dir())
    archived = []
    for dataset in names:
        stats = results_dir / dataset / "data" / "stats.json"
        if stats.is_file():
            _copy(stats, archive_dir / dataset / "data" / "stats.json")
        for metrics in sorted((results_dir / dataset / "runs").glob(f"*/*/seed*/{METRICS_FILE}")):
            run = metrics.parent
            if not (run / RANKS_FILE).is_file():
                continue
            target = archive_dir / run.relative_to(results_dir)
            for name in ARCHIVED_RUN_FILES:
                _copy(run / name, target / name)
            archived.append(target / METRICS_FILE)
    log.info("archived %d runs of %s into %s", len(archived), ", ".join(names), archive_dir)
    return archived


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFiles() as files:
        shutil.copyfile(source, files.temp_path(target))


# --------------------------------------------------------------------------- render

def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"decomposition dataset=ml-100k backbone=srgnn"`` → (kind, {key: value})."""
    kind, *pairs = spec.split()
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise InvalidInputError(f"table spec {spec!r}: {pair!r} is not key=value")
        options[key] = value
    if kind not in RENDERERS:
        raise InvalidInputError(f"table spec {spec!r}: unknown kind {kind!r}; known: "
                                f"{sorted(RENDERERS)}")
    return kind, options


def archived_runs(archive_dir: Path, dataset: str, backbones: str | None = None,
                  variants: str | None = None) -> list[Path]:
    """The archived metrics.json of ``dataset``, restricted to comma-separated
    ``backbones`` / ``variants`` (in that order when given)."""
    root = archive_dir / dataset / "runs"
    if not root.is_dir():
        raise InvalidInputError(f"no archived runs of {dataset!r}", root)
    backbone_order = backbones.split(",") if backbones else None
    variant_order = variants.split(",") if variants else None

    def rank(name: str, order: list[str] | None) -> tuple[int, str]:
        return (order.index(name) if order else 0, name)

    paths = [p for p in root.glob(f"*/*/seed*/{METRICS_FILE}")
             if (backbone_order is None or p.parents[2].name in backbone_order)
             and (variant_order is None or p.parents[1].name in variant_order)]
    paths.sort(key=lambda p: (rank(p.parents[2].name, backbone_order),
                              rank(p.parents[1].name, variant_order), int(p.parent.name[4:])))
    if not paths:
        raise InvalidInputError(f"no archived runs of {dataset!r} with backbones="
                                f"{backbones} variants={variants}", root)
    return paths


def block_runs(archive: Path, kind: str, o: Mapping[str, str]) -> list[Path]:
    """The archived metrics.json files a block of ``kind`` with options ``o`` reads."""
    if kind == "table2":
        return []
    if kind == "decomposition":
        return archived_runs(archive, o["dataset"], o["backbone"])
    variants = None if kind == "tuned" else o.get("variants")
    return archived_runs(archive, o["dataset"], o.get("backbones"), variants)


def _variants(runs: list[Path], archive: Path, o: Mapping[str, str]) -> Table:
    from .compare import variant_comparison

    return variant_comparison(runs, reference=o.get("reference", "base"),
                              n_resamples=int(o.get("resamples", 10_000)),
                              title=o.get("title", "").replace("_", " ") or None)


def _decomposition(runs: list[Path], archive: Path, o: Mapping[str, str]) -> Table:
    from .decomposition import decomposition_table

    return decomposition_table(runs, o["backbone"], o.get("source", "llm"),
                               n_resamples=int(o.get("resamples", 10_000)))


def _tuned(runs: list[Path], archive: Path, o: Mapping[str, str]) -> Table:
    from .tuned import tuned_pairs_table

    return tuned_pairs_table(runs, o.get("variant", "llm4sbr"),
                             n_resamples=int(o.get("resamples", 10_000)))


def _table3(runs: list[Path], archive: Path, o: Mapping[str, str]) -> Table:
    from .tables import table3

    return table3(runs, n_resamples=int(o.get("resamples", 10_000)))


def _table2(runs: list[Path], archive: Path, o: Mapping[str, str]) -> Table:
    from .tables import table2

    return table2([archive / d / "data" / "stats.json" for d in o["datasets"].split(",")])


RENDERERS: dict[str, Callable[[list[Path], Path, Mapping[str, str]], Table]] = {
    "variants": _variants, "decomposition": _decomposition, "table3": _table3,
    "table2": _table2, "tuned": _tuned,
}


def render_block(spec: str, archive_dir: str | Path = ARCHIVE_ROOT) -> str:
    """The Markdown of one generated block: the table with its headings moved four
    levels down (it sits inside a RESULTS.md section)."""
    kind, options = parse_spec(spec)
    archive = Path(archive_dir)
    markdown = RENDERERS[kind](block_runs(archive, kind, options), archive, options).markdown()
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 3) + " ", markdown,
                  flags=re.M)


def regenerated(text: str, archive_dir: str | Path = ARCHIVE_ROOT) -> str:
    """``text`` (a RESULTS.md) with every generated block rendered anew."""
    return _BLOCK.sub(lambda m: m.group(1) + render_block(m.group("spec"), archive_dir)
                      + m.group(4), text)


def check(results_md: str | Path, archive_dir: str | Path = ARCHIVE_ROOT) -> list[str]:
    """The unified diff between ``results_md`` and what the archive gives (empty when
    they agree)."""
    text = Path(results_md).read_text()
    return list(difflib.unified_diff(text.splitlines(), regenerated(text, archive_dir)
                                     .splitlines(), str(results_md), "from the archive",
                                     lineterm=""))


def unpublished(results_md: str | Path, archive_dir: str | Path = ARCHIVE_ROOT) -> list[Path]:
    """The archived runs that no generated block of ``results_md`` reads: a grid whose
    finished runs are archived as they finish (a long grid outlives a working session)
    before the tables that will read it are written."""
    archive = Path(archive_dir)
    read: set[Path] = set()
    for match in _BLOCK.finditer(Path(results_md).read_text()):
        kind, options = parse_spec(match.group("spec"))
        read.update(block_runs(archive, kind, options))
    return sorted(set(archive.glob(f"*/runs/*/*/seed*/{METRICS_FILE}")) - read)


# --------------------------------------------------------------------------- command

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm4sbr_core.report.archive",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("collect", help="copy finished runs into the archive")
    c.add_argument("results_dir")
    c.add_argument("--datasets", nargs="+")
    for name in ("regenerate", "check"):
        p = commands.add_parser(name, help=f"{name} the generated tables of a RESULTS.md")
        p.add_argument("results_md")
    for p in commands.choices.values():
        p.add_argument("--archive", default=ARCHIVE_ROOT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "collect":
        collect(args.results_dir, args.archive, args.datasets)
        return 0
    if args.command == "regenerate":
        text = Path(args.results_md).read_text()
        with AtomicFiles() as files:
            files.write_text(args.results_md, regenerated(text, args.archive))
        return 0
    diff = check(args.results_md, args.archive)
    print("\n".join(diff) if diff else f"{args.results_md} agrees with {args.archive}")
    waiting = unpublished(args.results_md, args.archive)
    if waiting:
        print(f"{len(waiting)} archived runs are read by no table of {args.results_md}: "
              + ", ".join(str(p.parent.relative_to(args.archive)) for p in waiting))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
