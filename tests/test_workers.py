"""``--jobs``: candidates judged by several judge workers at once give the verdicts one judge gives, and a
worker that dies mid-run costs a re-judging, not a result."""

import multiprocessing
import os
import signal
import threading
import time

import pytest

from harness.runner import snapshot
from harness.cli.commands import main
from harness.judge.plan import RunOptions, plan_target
from harness.judge.workers import judge_in_workers
from tests._eight import EIGHT_ARGV, quiet, verdicts_of


def test_two_jobs_give_the_verdicts_of_one(tmp_path, one_job, one_job_out):
    two = tmp_path / "two"
    assert main([*EIGHT_ARGV, "--out", str(two), "--jobs", "2"]) == 1  # the wrong ones fail
    by_two = verdicts_of(two)
    assert list(by_two) == list(one_job)  # the plan's order, whichever worker finished first
    assert {n: v for n, (v, _) in by_two.items()} == {n: v for n, (v, _) in one_job.items()}
    if quiet(two, one_job_out):  # a clear speedup reads the same, where neither machine was noisy
        assert by_two["fused"] == one_job["fused"] == ("pass", "faster")
    assert [by_two[n][0] for n in ("slow_loop", "amax_vectorized")] == ["pass", "pass"]


def test_a_worker_killed_mid_run_leaves_a_complete_result(tmp_path):
    slow = tmp_path / "slow.py"
    slow.write_text("import time\nfrom candidates.fused import fused\n"
                    + "".join(f"def {n}(input_k_cache, dv=512, tile_size=128):\n    time.sleep(0.02)\n"
                              f"    return fused(input_k_cache, dv, tile_size)\n" for n in ("a", "b", "c")))
    run_plan = plan_target(RunOptions(target="quantize_k_cache", time=False, jobs=2, examples=5,
                                      candidates=[f"{slow}:{n}" for n in "abc"]))
    sources = snapshot.take([c.spec for c in run_plan.candidates], [run_plan.target.ref])
    killed: list[int] = []

    def progress(event, **details):
        if event == "step" and details.get("name", "").endswith(": verify") and not killed:
            threading.Timer(1.0, kill_a_worker).start()
            killed.append(0)

    def kill_a_worker():
        workers = [p for p in multiprocessing.active_children() if p.is_alive()]
        os.kill(workers[0].pid, signal.SIGKILL)
        killed.append(workers[0].pid)

    finished = []
    with snapshot.during(sources):
        judged = judge_in_workers(run_plan, None, sources, progress, finished.append)
    assert len(killed) == 2  # a worker was killed while candidates were being verified
    assert [r.name for r, _ in judged] == ["a", "b", "c"] and sorted(r.name for r in finished) == ["a", "b", "c"]
    assert [r.verdict for r, _ in judged] == ["pass", "pass", "pass"]  # re-judged by fresh workers, not lost


def test_jobs_by_default_fit_the_machine_and_the_candidates():
    from harness.judge.plan import default_jobs

    assert default_jobs(8, "cpu", cpus=2) == 1 and default_jobs(8, "cpu", cpus=64) == 1  # one device: one judge
    assert default_jobs(8, "cuda", gpus=1, cpus=16) == 1  # one GPU: timing takes turns (measured: no gain)
    assert default_jobs(24, "cuda", gpus=4, cpus=64) == 4 and default_jobs(2, "cuda", gpus=4, cpus=64) == 2
    assert default_jobs(24, "cuda", gpus=8, cpus=16) == 4  # as many as the CPUs feed


def test_workers_are_placed_one_gpu_lane_each_and_a_cpu_each(monkeypatch):
    """Several GPUs: dealt round-robin, so each has its own timing lane; every worker's runners get a CPU of
    their own (on CUDA the runners of one judge share one core; two workers' must not).  One GPU: no
    placement on a GPU at all (the worker keeps what the judge sees)."""
    from harness.judge.workers import Placement, placement, visible_gpus

    places = [placement(slot, ["0", "1"], [0, 1, 2, 3, 4, 5, 6, 7], jobs=4) for slot in range(4)]
    assert places == [Placement("0", 0, (4,)), Placement("1", 1, (5,)), Placement("0", 2, (6,)),
                      Placement("1", 3, (7,))]  # the CPUs no worker's runners work on are where they import
    assert [placement(slot, ["0"], list(range(16)), jobs=6).load for slot in (0, 5)] == [(6, 12), (11,)]
    assert [placement(slot, ["0"], [0, 1, 2], jobs=2).load for slot in (0, 1)] == [(2,), (2,)]  # shared
    assert [placement(slot, ["0"], [5, 9], jobs=3) for slot in range(3)] == [Placement(None, 5), Placement(None, 9),
                                                                              Placement(None, 5)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpus("cuda") == ["2", "3"] and visible_gpus("cpu") == []


def test_a_worker_pins_its_cuda_runners_to_its_own_cpu():
    import os

    from harness.judge import process

    first = sorted(os.sched_getaffinity(0))
    assert process.runner_cpus("cuda") == first[:1] and process.runner_cpus("cpu") is None
    process.pin_runners(first[-1], [first[0]])
    try:
        assert process.runner_cpus("cuda") == [first[-1]] and process.runner_cpus("cpu") is None
        assert process.load_cpu("cuda") == [first[0]] and process.load_cpu("cpu") is None
    finally:
        process._WORKER_CPUS.clear()


def test_cuda_runners_import_on_another_cpu_and_work_on_the_judges():
    """A runner imports on a CPU other than the one the timed pair works on (dealt round-robin over the
    rest) and is moved there, every thread, when handed out (``process.place``)."""
    import os
    import subprocess
    import sys

    from harness.judge import process

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    loads = [process.load_cpu("cuda") for _ in range(len(cpus) - 1)]
    assert sorted(c for [c] in loads) == cpus[1:]  # each other CPU once, the timed pair's never
    child = subprocess.Popen([sys.executable, "-c", "import threading, time; "
                              "threading.Thread(target=time.sleep, args=(30,)).start(); time.sleep(30)"])
    try:
        process.pin((child.pid,), [cpus[-1]])
        time.sleep(0.5)  # its second thread started (inheriting the load CPU)
        runner = process.RunnerProcess("spec", child, -1, -1, "", "cuda", 10.0, cpus=[cpus[-1]])
        assert runner.cpus == [cpus[-1]]
        process.place(runner)
        threads = os.listdir(f"/proc/{child.pid}/task")
        assert len(threads) == 2 and all(os.sched_getaffinity(int(t)) == {cpus[0]} for t in threads)
        assert runner.cpus == process.runner_cpus("cuda") == [cpus[0]]
        assert runner.scheduling is None or runner.scheduling.cpus == {cpus[0]}
    finally:
        child.kill()
        child.wait()


def test_round_trips_are_taken_with_two_jobs_too(tmp_path):
    """With --jobs the workers judge; the judge then loads each passing candidate once more for its round
    trips (a few importing at once): every pair of the K-cache targets' passing candidates, as with one job."""
    from harness.core import schema

    out = tmp_path / "out"
    assert main(["verify", "--examples", "3", "--jobs", "2", "--json", str(out / "v.json")]) == 0
    for target in ("quantize_k_cache", "dequantize_k_cache"):
        run = schema.load(out / f"v-{target}.json")
        assert len(run.round_trips) == 9 and all(r.passed for r in run.round_trips), run.round_trips


def test_the_default_number_of_jobs_shrinks_to_fit_memory_and_an_explicit_one_does_not(monkeypatch):
    """Each job keeps runners of its own: the machine's default gives way (down to one) where its runners
    would not fit; a number the user asked for is the user's to change (a usage error, as before)."""
    import pytest

    from harness.core.errors import UsageError
    from harness.judge import plan as plan_module

    monkeypatch.setattr(plan_module, "default_jobs", lambda candidates, device, gpus=None, cpus=None: 8)
    options = dict(target="quantize_k_cache", sizes=["4096"], candidates=[f"candidates/{n}.py:{n}" for n in (
        "slow_loop", "fused", "amax_vectorized")])
    one = plan_target(RunOptions(jobs=1, **options))
    need = {}
    monkeypatch.setattr(plan_module, "available_memory", lambda device: need["bytes"])
    need["bytes"] = 1 << 50
    assert plan_target(RunOptions(jobs=None, **options)).options.jobs == 8
    # room for one job's runners, not for two
    per_job = 2 * one.options.bench.most_pairs * (2 * one.target.case_bytes(one.sizes[0])
                                                  + 2 * max(one.target.case_bytes(one.sizes[0]), one.options.bench.buffer_bytes))
    need["bytes"] = int(per_job * 1.5)
    assert plan_target(RunOptions(jobs=None, **options)).options.jobs == 1
    with pytest.raises(UsageError, match="needs about"):
        plan_target(RunOptions(jobs=2, **options))


def test_run_and_verify_default_their_jobs_to_the_machine_and_bench_keeps_one_judge():
    from harness.cli.arguments import parser
    from harness.cli.options import run_options

    assert run_options(parser().parse_args(["run"]), True, True).jobs is None  # plan_target: default_jobs
    assert run_options(parser().parse_args(["run", "--jobs", "3"]), True, True).jobs == 3
    assert run_options(parser().parse_args(["bench"]), False, True).jobs == 1
