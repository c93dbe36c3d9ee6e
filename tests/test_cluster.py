"""``--cluster``: a real Dask scheduler and two ``dask worker`` processes, started here from this project,
judge eight candidates with the verdicts one judge gives; a worker killed mid-run still leaves a complete
result (its task runs again on the other worker)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


from harness.core import schema
from harness.cli.commands import main
from tests._eight import EIGHT_ARGV, quiet, verdicts_of

pytest.importorskip("distributed", reason="--cluster needs Dask distributed (pip install -e '.[cluster]')")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cluster(tmp_path):
    """(scheduler address, worker processes); everything stopped after the test."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen([*dask, "--scheduler-file", str(file), "--port", "0", "--dashboard-address", ":0",
                                  "--host", "127.0.0.1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(file.read_text())["address"]
    workers = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                 "--no-nanny", "--dashboard-address", ":0", "--host", "127.0.0.1"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    from distributed import Client

    with Client(address, timeout=120) as client:
        client.wait_for_workers(2, timeout=180)
    try:
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            process.kill()
            process.wait(timeout=30)


def test_a_cluster_gives_the_verdicts_of_one_judge_and_says_where(tmp_path, cluster, one_job, one_job_out):
    address, _ = cluster
    out = tmp_path / "cluster"
    assert main([*EIGHT_ARGV, "--out", str(out), "--cluster", address]) == 1  # the wrong ones fail
    by_cluster = verdicts_of(out)
    assert list(by_cluster) == list(one_job)
    assert {n: v for n, (v, _) in by_cluster.items()} == {n: v for n, (v, _) in one_job.items()}
    if quiet(out, one_job_out):  # a clear speedup reads the same, where neither machine was noisy
        assert by_cluster["fused"] == one_job["fused"] == ("pass", "faster")
    run = schema.load(out / "quantize_k_cache-cpu.json")
    assert all(c.judged_on and ": " in c.judged_on for c in run.candidates)  # host: device, for each
    assert "judged on " in (out / "quantize_k_cache-cpu.md").read_text()


def test_a_worker_killed_mid_run_leaves_a_complete_result(tmp_path, cluster):
    address, workers = cluster
    out = tmp_path / "killed"
    specs = ["candidates/slow_loop.py:slow_loop", "candidates/amax_vectorized.py:amax_vectorized",
             "candidates/fused.py:fused", "tests/wrong_candidates.py:wrong_for_fp16"]
    killer = threading.Timer(8.0, lambda: os.kill(workers[0].pid, signal.SIGKILL))
    killer.start()
    try:
        code = main(["run", "--target", "quantize_k_cache", "--sizes", "4096", "--budget", "0.5", "--examples", "5",
                     "--no-profile", "--out", str(out), "--cluster", address,
                     *(a for spec in specs for a in ("--candidate", spec))])
    finally:
        killer.cancel()
    assert workers[0].poll() is not None  # it was killed during the run
    run = schema.load(out / "quantize_k_cache-cpu.json")
    assert code == 1 and [c.verdict for c in run.candidates] == ["pass", "pass", "pass", "fail"]
