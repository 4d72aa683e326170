"""The workflow through a real SLURM cluster (profiles/slurm-ci), compared with a local run.

`.ci/run` starts a single-node cluster with .ci/slurm/start-cluster.sh; elsewhere these
tests are skipped unless `sinfo` answers. With CI=true a missing cluster is a failure.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, shared_data, snakemake
from llm4sbr_core.layout import DATA_FILES

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

@pytest.fixture(scope="module")
def cluster():
    states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                            timeout=30).stdout.split() if shutil.which("sinfo") else []
    ok = any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states)
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no SLURM cluster answers (.ci/slurm/start-cluster.sh)")
        pytest.skip("no SLURM cluster (start one with .ci/slurm/start-cluster.sh)")
    return str(REPO / "profiles" / "slurm-ci")


def slurm_job_ids(output: str) -> list[str]:
    return re.findall(r"SLURM (?:run ID|jobid)[: ]+(\d+)", output, flags=re.IGNORECASE)


def test_data_stage_through_slurm_is_identical_to_local(cluster, tmp_path):
    args = ("--config", f"raw_dir={shared_data()}", 'datasets=["ml-100k"]', "--", "data_all")
    configs = ("config.yaml", "configs/shared-data.yaml")
    snakemake(tmp_path / "local", *args, configs=configs)
    done = snakemake(tmp_path / "slurm", "--workflow-profile", cluster, *args, configs=configs)
    ids = slurm_job_ids(done.stdout + done.stderr)
    assert ids, "no SLURM job id in snakemake's output:\n" + done.stderr[-3000:]
    for name in DATA_FILES:
        local = (tmp_path / "local/results/ml-100k/data" / name).read_bytes()
        remote = (tmp_path / "slurm/results/ml-100k/data" / name).read_bytes()
        assert local == remote, f"{name} differs between the local and the SLURM run"


def test_failed_cluster_job_leaves_no_output_and_rerun_recovers(cluster, tmp_path):
    raw = tmp_path / "raw" / "ml-100k"
    shutil.copytree(shared_data() / "ml-100k", raw)
    inter = raw / "ml-100k.inter"
    good = inter.read_bytes()
    inter.write_bytes(good.replace(b"\t", b";", 40))  # header and first lines broken
    args = ("--workflow-profile", cluster, "--retries", "0", "--config", f"raw_dir={raw.parent}",
            'datasets=["ml-100k"]', "--", "data_all")
    done = snakemake(tmp_path / "run", *args, check=False)
    assert done.returncode != 0
    assert "Error in rule build_dataset" in done.stdout + done.stderr
    log = (tmp_path / "run/logs/ml-100k/build_dataset.log").read_text()
    assert "ml-100k.inter:1: header field" in log
    out = tmp_path / "run/results/ml-100k/data"
    assert not out.exists() or list(out.iterdir()) == []
    inter.write_bytes(good)
    snakemake(tmp_path / "run", *args)
    assert (out / "stats.json").exists()
