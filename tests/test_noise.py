"""Noise signals: foreign CPU measured from /proc, and the baseline's agreement with itself."""

import os
import subprocess
import sys
import time

import pytest

from harness.judge import noise
from harness.core.result import Noise
from harness.judge.noise import BaselineTiming, CpuWatch, Watched, baseline_disagreements, loaded_timing


def test_baseline_medians_that_agree_or_drift_a_little_are_not_flagged():
    agree = [BaselineTiming("a", 2.50e-3, 0.02e-3), BaselineTiming("b", 2.67e-3, 0.02e-3)]  # 7% drift
    assert baseline_disagreements("prod-4096", agree) == []
    assert baseline_disagreements("prod-4096", agree[:1]) == []  # one candidate: nothing to compare


def test_a_baseline_that_measured_100x_apart_is_flagged_with_both_numbers():
    (found,) = baseline_disagreements("prod-4096", [BaselineTiming("amax", 250e-6, 5e-6),
                                                    BaselineTiming("fused", 30e-3, 1e-3),
                                                    BaselineTiming("slow", 260e-6, 5e-6)])
    assert found.text.startswith("the baseline measured 250 μs beside amax and 30.0 ms beside fused at prod-4096")
    assert found.kind == "baseline" and found.size == "prod-4096" and found.figure == pytest.approx(120)


def test_a_difference_within_the_standard_errors_is_not_flagged():
    wide = [BaselineTiming("a", 1e-3, 0.5e-3), BaselineTiming("b", 2e-3, 0.5e-3)]  # 2x, but 3 SE is 2.1 ms
    assert baseline_disagreements("s", wide) == []


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux /proc")
def test_cpu_taken_by_another_process_is_seen_as_foreign():
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.3)
        watch = CpuWatch()
        watch.start([])  # only this process is ours; it sleeps
        time.sleep(1.0)
        share = watch.share()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert share is not None and share > noise.FOREIGN_CPU_LIMIT


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux /proc")
def test_the_runners_being_timed_are_ours_not_foreign():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # stands for a runner being timed
    try:
        counted, ignored = CpuWatch(), CpuWatch()
        busy_before = noise._process_ticks(busy.pid)
        began = time.monotonic()
        counted.start([busy.pid])
        ignored.start([])
        assert counted.share() is None  # under MIN_WATCH_S
        time.sleep(1.0)
        with_it, without_it = counted.share(), ignored.share()
        busy_ticks = noise._process_ticks(busy.pid) - busy_before
        wall = time.monotonic() - began
    finally:
        busy.kill()
        busy.wait()
    cpus = os.cpu_count() or 1
    busy_share = busy_ticks / (wall * os.sysconf("SC_CLK_TCK") * cpus)  # what it took, however busy the machine
    # counted as ours, exactly its CPU time is missing from the foreign share (ticks of 10 ms: a tolerance)
    assert busy_share > 0.1 / cpus and abs((without_it - with_it) - busy_share) < 0.08, (with_it, without_it, busy_share)
    assert noise.machine_state().load1 is not None


def test_steal_time_is_foreign_and_named_as_the_hosts(monkeypatch):
    """/proc/stat scripted: over 1 s on every CPU, 60% of the ticks busy, a third of those steal."""
    cpus, tick = os.cpu_count() or 1, os.sysconf("SC_CLK_TCK")
    end = (1000 + int(0.6 * tick * cpus), 100 + int(0.2 * tick * cpus))
    readings = iter([(1000, 100), end, end])  # start, share, steal
    clock = iter([10.0, 11.0, 11.0])
    monkeypatch.setattr(noise, "_machine_ticks", lambda: next(readings))
    monkeypatch.setattr(noise, "_process_ticks", lambda pid: 0)
    monkeypatch.setattr(noise, "time", type("Clock", (), {"monotonic": staticmethod(lambda: next(clock))}))
    watch = CpuWatch()
    watch.start([])
    watched = Watched(watch.share(), watch.steal())
    assert watched.foreign == pytest.approx(0.6, abs=0.02) and watched.steal == pytest.approx(0.2, abs=0.02)
    assert watched.words() == "other processes used 60% of the CPUs (the virtual machine's host took 20% of them: steal time)"
    assert Watched(0.4, 0.01).words() == "other processes used 40% of the CPUs"  # bare metal, or a quiet host


def test_a_burst_at_one_size_is_flagged_at_that_size_and_a_loaded_whole_once():
    quiet, burst = Watched(0.02, 0.0), Watched(0.55, None)
    assert loaded_timing("fused", quiet, [("prod-4096", quiet), ("prod-65536", quiet)]) == []
    assert loaded_timing("fused", Watched(0.1), [("prod-4096", burst), ("prod-65536", quiet)]) == [
        Noise("load", "other processes used 55% of the CPUs while fused was timed at prod-4096", "fused", "prod-4096",
              0.55)]
    assert loaded_timing("fused", Watched(0.5), [("prod-4096", burst), ("prod-65536", burst)]) == [
        Noise("load", "other processes used 50% of the CPUs while fused was timed", "fused", None, 0.5)]
    assert loaded_timing("fused", Watched(None), [("prod-4096", Watched(None))]) == []  # not readable: nothing said


def test_several_threads_beside_other_processes_get_advice_and_one_thread_none():
    assert noise.threads_advice(None) is None and noise.threads_advice(1) is None
    advice = noise.threads_advice(2)
    assert advice.kind == "advice" and advice.text.startswith("the runners' ops ran on 2 threads")
    assert "--threads 1" in advice.text


def test_a_short_size_records_its_rough_reading_only_where_it_shows_load():
    assert noise.recorded_share(0.1, 0.9) == 0.1  # the whole stretch's reading wins
    assert noise.recorded_share(None, 0.6) == 0.6  # under 0.5 s but loaded: recorded, so it is not taken as quiet
    assert noise.recorded_share(None, 0.05) is None  # quiet and short: unknown, no noise flag from a rough reading
    assert noise.recorded_share(None, None) is None
