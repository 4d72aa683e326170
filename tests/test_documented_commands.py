"""Every `snakemake` command shown in a code block of README.md or docs/*.md runs, as a dry
run with its documented arguments, so a documented command cannot break silently (a target
swallowed by `--configfile`, a renamed rule, a profile that no longer parses).

Each command runs in a scratch folder that holds links to the repository's config files
and profiles, with `-s <repo>/Snakefile` and `-n` added; config files a command names but
the repository does not hold (`mine.yaml`) are written there as small valid overrides, and
`../shared/data` is replaced by the real datasets' folder. Commands that cannot run here
are listed in SKIPPED with the reason.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA

pytestmark = pytest.mark.workflow

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: substring of a command → why it is not run
SKIPPED: dict[str, str] = {
    "--report": "needs the finished outputs of a run; its arguments are those of the run",
    "--use-conda": "needs conda, which this machine does not have",
    "--profile profiles/slurm-ci -j 2": "a transcript of a toy workflow in /tmp/toy",
    "-s /work/main/Snakefile --profile /work/main/profiles/slurm-ci": (
        "a transcript of a run on the CI test cluster, with its absolute paths"),
}

#: written into the scratch folder for config files that the docs name as the user's own
PLACEHOLDER_CONFIG = "cache_dir: cache\n"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)


def commands(block: str) -> list[str]:
    """The snakemake command lines of a code block (continuations joined, prompts and
    trailing comments dropped)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        program = next((i for i, w in enumerate(words) if not re.match(r"\w+=", w)), None)
        if program is not None and (words[program] == "snakemake"
                                    or words[program].endswith("/snakemake")
                                    or "&& snakemake" in line):
            out.append(line)
    return out


def documented() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in code_blocks(doc.read_text()):
            found += [(str(doc.relative_to(REPO)), cmd) for cmd in commands(block)]
    return list(dict.fromkeys(found))


def skip_reason(command: str) -> str | None:
    return next((why for what, why in SKIPPED.items() if what in command), None)


def test_docs_show_commands_and_every_skip_is_used():
    found = documented()
    assert len(found) >= 15, found
    unused = [what for what in SKIPPED if not any(what in cmd for _, cmd in found)]
    assert not unused, f"SKIPPED entries that match no documented command: {unused}"


def test_a_target_after_configfile_is_caught(tmp_path):
    """The checker itself: the mistake it exists for fails the dry run."""
    done = dry_run("snakemake --cores 1 --configfile config.yaml results/x/data/stats.json",
                   tmp_path)
    assert done.returncode != 0


def scratch(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    for name in ("config.yaml", "configs", "profiles"):
        if not (work / name).exists():
            (work / name).symlink_to(REPO / name)
    return work


def dry_run(command: str, tmp_path: Path) -> subprocess.CompletedProcess:
    work = scratch(tmp_path)
    words = shlex.split(command, comments=True)
    if "&&" in words:
        words = words[words.index("&&") + 1:]
    env_words = [w for w in words if re.match(r"\w+=", w) and w == words[0]]
    program = next(i for i, w in enumerate(words) if not re.match(r"\w+=", w))
    env = dict(w.split("=", 1) for w in words[:program]) if env_words else {}
    args = [a.replace("../shared/data", str(SHARED_DATA)) for a in words[program + 1:]]
    if "--configfile" in args:
        for arg in args[args.index("--configfile") + 1:]:
            if arg.startswith("-"):
                break
            if arg.endswith((".yaml", ".yml")) and not (work / arg).exists():
                path = Path(arg) if Path(arg).is_absolute() else work / arg
                if not path.is_absolute() or not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(PLACEHOLDER_CONFIG)
    extra = [] if {"--unlock", "--lint"} & set(args) else ["-n"]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *extra, *args]
    import os

    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


@pytest.mark.parametrize("doc, command", [pytest.param(d, c, id=f"{d}:{c[:60]}")
                                          for d, c in documented()])
def test_documented_command_dry_runs(doc, command, tmp_path):
    reason = skip_reason(command)
    if reason:
        pytest.skip(reason)
    if "../shared/data" in command and not SHARED_DATA.is_dir():
        pytest.skip(f"the datasets are not at {SHARED_DATA}")
    done = dry_run(command, tmp_path)
    assert done.returncode == 0, (f"{doc}: `{command}` failed as a dry run:\n"
                                  f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def test_make_report_passes_args_after_the_target(tmp_path):
    """`make report ARGS="--configfile config.yaml my.yaml"` (README, docs/report.md): the
    snakemake commands make would run, as dry runs."""
    printed = subprocess.run(["make", "-n", "-W", "Makefile", "report",
                              "ARGS=--configfile config.yaml my.yaml"], cwd=REPO,
                             capture_output=True, text=True, timeout=60).stdout
    lines = [line for line in printed.splitlines() if "/snakemake " in line]
    assert len(lines) == 2, printed
    for line in lines:
        if "--report" in line:
            assert line.rstrip().endswith("report_all --configfile config.yaml my.yaml")
            continue
        done = dry_run(line, tmp_path)
        assert done.returncode == 0, f"`{line}`:\n{done.stderr[-3000:]}"
