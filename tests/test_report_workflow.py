"""The report rules through Snakemake: what a table asks for, and the HTML report rendered
in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from conftest import REPO, shared_data, snakemake
from llm4sbr_core.config import validate_config
from llm4sbr_core.llm.generate import llm_name
from llm4sbr_core.text.encoder import EncoderSettings
from report_synthetic import (
    write_benchmark,
    write_grounding,
    write_llmseqsim,
    write_run,
    write_stats,
)

pytestmark = pytest.mark.workflow

ARTIFACTS = REPO / "tests" / "artifacts"
REPORT_RULES = ("report_all", "report_table2", "report_table3", "report_table4",
                "report_table5", "report_runtime", "report_fig5", "report_fig6", "report_fig7",
                "report_training_curves", "report_localization", "report_variants",
                "report_decomposition", "report_decomposition_items")
VARIANTS = ["base", "llm4sbr", "wo_au", "wo_long", "wo_short", "normal", "wo_sbr", "textinit",
            "llm4sbr-r0", "llm4sbr-r1"]


def _skip_if_variants_unknown(done: subprocess.CompletedProcess) -> None:
    if done.returncode != 0 and "train.variants" in done.stderr:
        pytest.skip("the config schema does not accept the LLM4SBR variants yet")


def test_table3_plans_only_the_base_and_llm4sbr_runs(tmp_path):
    overrides = tmp_path / "train.yaml"
    overrides.write_text(yaml.safe_dump({"train": {
        "backbones": ["srgnn"], "seeds": [0, 1],
        "variants": ["base", "llm4sbr", "wo_au", "textinit", "llm4sbr-r0"]}}))
    done = snakemake(tmp_path, "-n", "--config", f"raw_dir={shared_data()}",
                     'datasets=["ml-100k"]', "--", "results/ml-100k/tables/table3.md",
                     configs=("config.yaml", "configs/shared-data.yaml", str(overrides)),
                     check=False)
    _skip_if_variants_unknown(done)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    runs = set(re.findall(r"wildcards: dataset=ml-100k, backbone=srgnn, variant=([\w.-]+), "
                          r"seed=(\d+)", out))
    assert runs == {("base", "0"), ("base", "1"), ("llm4sbr", "0"), ("llm4sbr", "1")}
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    assert counts["train_run"] == "4" and counts["report_table3"] == "1"
    assert not {r for r in counts if r.startswith("report_")} - {"report_table3"}
    assert not (tmp_path / "results").exists()


def _synthetic_results(root) -> str:
    """Runs, dataset statistics, grounding statistics and benchmarks of a small grid."""
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    rng = np.random.default_rng(0)
    for variant in VARIANTS:
        for seed in (0, 1):
            write_run(root, "srgnn", variant, seed, rng.integers(1, 60, size=200), model=True)
    write_llmseqsim(root, "mean", rng.integers(1, 200, size=200))
    write_stats(root)
    for view in config["views"]:
        write_grounding(root, view, llm=llm_name(config["llm"]),
                        encoder=EncoderSettings.from_config(config["encoder"]).slug,
                        r=config["localize"]["r"])
    write_benchmark(root, "train/srgnn.base.seed0.tsv", 120)
    write_benchmark(root, "build_dataset.tsv", 12)
    (root / "grid.yaml").write_text(yaml.safe_dump({
        "raw_dir": "raw", "datasets": ["ml-100k"],
        "train": {"backbones": ["srgnn"], "variants": VARIANTS, "seeds": [0, 1],
                  "llmseqsim": ["mean"]}}))
    return str(root / "grid.yaml")


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    message = "no headless browser: apt-get install -y chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)


def _captions(dom: str) -> list[str]:
    """The result captions the report embeds (JSON strings in its data script)."""
    return [json.loads(s) for s in re.findall(r'"caption": ("(?:[^"\\]|\\.)*")', dom)]


def test_report_renders_in_a_headless_browser(tmp_path):
    browser = _browser()
    configs = ("config.yaml", _synthetic_results(tmp_path))
    # Only the report rules may run: the synthetic runs have no upstream data or LLM files.
    rules = ["--allowed-rules", *REPORT_RULES]
    done = snakemake(tmp_path, *rules, "--", "report_all", configs=configs)
    assert "report_table3" in done.stderr
    for name in ("table2", "table3", "table4", "table5", "runtime", "variants",
                 "decomposition_srgnn"):
        for ext in ("csv", "md", "html"):
            assert (tmp_path / f"results/ml-100k/tables/{name}.{ext}").stat().st_size > 0
    for name in ("fig5_peers", "fig6_views", "fig7_r", "training_curves", "runtime"):
        assert (tmp_path / f"results/ml-100k/figures/{name}.png").stat().st_size > 5000
    # a finished workflow is a fixed point: planning it again finds nothing to do
    again = snakemake(tmp_path, *rules, "-n", "--", "report_all", configs=configs)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    snakemake(tmp_path, *rules, "--report", "report.html", "--", "report_all", configs=configs)
    report = tmp_path / "report.html"
    assert report.stat().st_size > 100_000

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=1400,1000", "--virtual-time-budget=10000"]
    shot = subprocess.run([*flags, f"--screenshot={screenshot}", report.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    print(f"report screenshot: {screenshot}")
    pixels = imread(screenshot)
    assert pixels.shape[:2] == (1000, 1400)
    assert np.std(pixels[..., :3]) > 0.05  # the page drew something, not a blank canvas
    dump = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True,
                          text=True, timeout=120)
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom = dump.stdout
    (ARTIFACTS / "report.dom.html").write_text(dom)
    # rendered by the page's scripts: the navigation and the workflow description
    assert "<span>Tables</span>" in dom and "<span>Figures</span>" in dom
    assert re.search(r"reproduced as a\s+Snakemake workflow", dom)
    captions = "\n".join(_captions(dom))
    for caption in ("Table 2 — dataset statistics (ml-100k)",
                    "Table 3 — the backbones with and without LLM4SBR (ml-100k)",
                    "Table 4 — ablations (ml-100k)", "Table 5 — training cost (ml-100k)",
                    "Runtime per workflow stage (ml-100k)",
                    "Fig. 5 — LLM4SBR and other ways of using an LLM (ml-100k)",
                    "Fig. 6 — which LLM views help (ml-100k)",
                    "Fig. 7 — the localization parameter r (ml-100k)",
                    "Fig. 4 — intent localization examples (ml-100k)",
                    "Training curves (ml-100k)"):
        assert caption in captions, caption
