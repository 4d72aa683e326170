"""Time and peak memory of the data stage per dataset (each run in a fresh process).

    .venv/bin/python benchmarks/data_stage.py --configfile config.yaml configs/shared-data.yaml

Prints a Markdown table: median wall time over --repeats runs and the peak resident set
size of the worst run, for `build_dataset` writing into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys
from llm4sbr_core.config import load_config, dataset_settings
from llm4sbr_core.data.build import DataOutputs, build_dataset
cfg = load_config(*sys.argv[3:])
name = sys.argv[1]
stats = build_dataset(dataset_settings(cfg, name), cfg["raw_dir"],
                      DataOutputs.in_dir(sys.argv[2]), name)
print(json.dumps({k: stats[k] for k in ("sessions", "clicks", "items", "train_samples",
                                         "valid_samples", "test_samples")}))
"""


def run_once(dataset: str, configs: list[str]) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (MiB) and stats of one build in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryFile("w+") as stdout:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD, dataset, out, *configs],
                                stdout=stdout, stderr=subprocess.DEVNULL, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # reaps the child: its own peak RSS
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{dataset}: build failed (exit {proc.returncode})")
        stdout.seek(0)
        return wall, usage.ru_maxrss / 1024, json.loads(stdout.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", nargs="+", default=["config.yaml"])
    ap.add_argument("--datasets", nargs="+", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llm4sbr_core.config import load_config

    datasets = args.datasets or load_config(*args.configfile)["datasets"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB, "
          f"Python {platform.python_version()}")
    print("\n| dataset | sessions | clicks | items | samples (train/valid/test) "
          "| wall s (median) | peak RSS MiB |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for ds in datasets:
        walls, peaks = [], []
        for _ in range(args.repeats):
            wall, peak, s = run_once(ds, args.configfile)
            walls.append(wall)
            peaks.append(peak)
        print(f"| {ds} | {s['sessions']:,} | {s['clicks']:,} | {s['items']:,} | "
              f"{s['train_samples']:,} / {s['valid_samples']:,} / {s['test_samples']:,} | "
              f"{statistics.median(walls):.2f} | {max(peaks):.0f} |")


if __name__ == "__main__":
    main()
