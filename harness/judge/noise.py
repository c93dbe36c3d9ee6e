"""Is the machine quiet enough to trust the timings?  Runs in the judge; reads Linux ``/proc`` and
``/sys`` only (elsewhere every reading is None and nothing is flagged).

Three signals, after pyperf's ``system show``/``check`` and its habit of distrusting a noisy run instead of
reporting it with confidence:
- the machine's state at the start and the end of the run: load average and the CPU frequency governor
  (``MachineState``; "powersave" or a load above the core count is worth a note);
- **foreign CPU while timing** (``CpuWatch``): the CPU time the whole machine used while a candidate was
  timed against the baseline, minus what the judge and those two runners used (the other runners are
  stopped then).  What is left was taken by other processes: measured, not inferred from a load average.
  On a virtual machine it includes steal time, the host running other guests on our CPUs, which is named
  apart (``Watched.words``): no process here can be stopped to mend it.  Judged over each candidate's
  whole timing and over each of its sizes (``loaded_timing``);
- **baseline agreement** (``baseline_disagreements``): within one run the baseline is timed at each size
  once per candidate — the same function on the same inputs — so its medians must agree; if one is more
  than ``BASELINE_DRIFT`` times another, beyond their standard errors, the machine changed under the run.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from harness.core.result import Noise

FOREIGN_CPU_LIMIT = 0.25  # share of all CPUs other processes may take while a candidate is timed
MIN_WATCH_S = 0.5  # shorter stretches are not judged: /proc counts CPU time in ticks of 10 ms
# The baseline's medians at one size, beside different candidates, may differ by this factor: on a quiet
# 2-core VM they drift by 6-17% over a run (benchmarks/NOTES.md); a loaded machine shows 2x to 100x.
BASELINE_DRIFT = 1.5


@dataclass(frozen=True)
class MachineState:
    load1: float | None
    governor: str | None


def machine_state() -> MachineState:
    load = governor = None
    try:
        load = float(open("/proc/loadavg", encoding="ascii").read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    try:
        governor = open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", encoding="ascii").read().strip()[:40]
    except OSError:
        pass
    return MachineState(load, governor)


TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # the kernel's CPU-time unit


def _machine_ticks() -> tuple[int, int] | None:
    """Ticks all CPUs spent busy (user, nice, system, irq, softirq, steal) since boot, and of those the
    steal: time a virtual machine's CPUs were ready to run but its host ran something else."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        return user + nice + system + irq + softirq + steal, steal
    except (OSError, ValueError, IndexError):
        return None


def stat_fields(pid: int, tid: int | None = None) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` (``tid``: of that thread's ``/proc/PID/task/TID/stat``) after the
    command name (state first), or None if it is gone.  The one reader of that file: ``strays`` takes process
    states and groups from it, this module CPU ticks."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_ticks(pid: int) -> int:
    """User + system ticks of every thread of ``pid`` (0 if it is gone)."""
    fields = stat_fields(pid)
    try:
        return int(fields[11]) + int(fields[12]) if fields else 0
    except (IndexError, ValueError):
        return 0


def main_thread_cpu_s(pid: int) -> float | None:
    """CPU seconds of ``pid``'s main thread (user + system) and of the children it waited for; None where
    unreadable.  Not its other threads': a thread pool's workers spin for a while after each parallel region
    (OpenMP's wait policy), on a loaded machine for longer than the work itself, so their CPU time says
    little about the work done; the main thread runs every call (``sandbox.Runner.release`` checks it)."""
    thread, process = stat_fields(pid, pid), stat_fields(pid)
    try:  # fields 14-15 (utime, stime) of the thread, 16-17 (cutime, cstime) of the process in proc(5)
        return (int(thread[11]) + int(thread[12]) + int(process[13]) + int(process[14])) / TICKS_PER_S
    except (TypeError, IndexError, ValueError):
        return None


def main_thread_run_s(pid: int) -> float | None:
    """Seconds ``pid``'s main thread has run, from ``/proc/PID/task/PID/schedstat`` in nanoseconds (None where
    unreadable): precise where ``main_thread_cpu_s`` counts 10 ms ticks, for short stretches such as placing a
    round's inputs.  The main thread only, as there: a thread pool's workers spin after each parallel region
    (a multi-threaded candidate's runner spent 10 ms a round that way beside busy processes, where the
    single-threaded baseline's spent none)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat", encoding="ascii") as handle:
            return int(handle.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class CpuWatch:
    """Foreign CPU share over a stretch of timing: ``start(pids)`` ... ``share()`` (and ``steal()``, the part
    of it the host of a virtual machine took)."""

    def __init__(self) -> None:
        self._tick = TICKS_PER_S
        self._cpus = os.cpu_count() or 1
        self._start: tuple[float, int, int, int] | None = None
        self._pids: tuple[int, ...] = ()
        self._more: Callable[[], Iterable[int]] = tuple

    def _ours(self) -> int:
        own = {os.getpid(), *self._pids, *self._more()}
        return sum(_process_ticks(pid) for pid in own)

    def start(self, pids: Iterable[int], more: Callable[[], Iterable[int]] = tuple) -> None:
        """Watch from now; ``pids`` (and whatever ``more`` returns when read: processes started later, whose
        ticks since they started all count as ours) are ours, not foreign."""
        self._pids, self._more = tuple(pids), more
        ticks = _machine_ticks()
        self._start = None if ticks is None else (time.monotonic(), *ticks, self._ours())

    def _since_start(self, minimum_s: float) -> tuple[float, int, int, int] | None:
        """Wall ticks of all CPUs, busy ticks, steal ticks and our own ticks since ``start``; None where
        unreadable or under ``minimum_s``."""
        ticks = _machine_ticks()
        if self._start is None or ticks is None:
            return None
        began, busy0, steal0, ours0 = self._start
        seconds = time.monotonic() - began
        if seconds < minimum_s:
            return None
        return seconds * self._tick * self._cpus, ticks[0] - busy0, ticks[1] - steal0, self._ours() - ours0

    def share(self, minimum_s: float = MIN_WATCH_S) -> float | None:
        """Fraction of all CPUs that other processes (or the host, as steal) used since ``start`` (None where
        unreadable or too short to say: under ``minimum_s``; the report's figure needs ``MIN_WATCH_S``, a
        rough "was it loaded" less)."""
        since = self._since_start(minimum_s)
        if since is None:
            return None
        wall, busy, _steal, ours = since
        return min(1.0, max(0.0, (busy - ours) / wall))

    def steal(self, minimum_s: float = MIN_WATCH_S) -> float | None:
        """Fraction of all CPUs the host of this virtual machine took since ``start`` (0 on bare metal)."""
        since = self._since_start(minimum_s)
        return None if since is None else min(1.0, max(0.0, since[2] / since[0]))


@dataclass(frozen=True)
class Watched:
    """What a ``CpuWatch`` saw over one stretch: a candidate's whole timing, or one size of it."""
    foreign: float | None
    steal: float | None = None

    @property
    def loaded(self) -> bool:
        return self.foreign is not None and self.foreign > FOREIGN_CPU_LIMIT

    def words(self) -> str:
        """'other processes used 40% of the CPUs', naming the host's share where it took a noticeable one."""
        steal = self.steal or 0.0
        host = f" (the virtual machine's host took {steal:.0%} of them: steal time)" if steal >= 0.05 else ""
        return f"other processes used {self.foreign or 0.0:.0%} of the CPUs{host}"


def recorded_share(whole: float | None, rough: float | None) -> float | None:
    """The foreign CPU share a size's timing records: the reading over its whole stretch (``MIN_WATCH_S``
    or more), else a shorter stretch's rough reading where that one shows load (a loaded short size must
    not pass for quiet: beside two busy processes a 0.2 s size read amax_vectorized's 1.2x beyond 1.5x and
    stood alone as "overwhelming"); else None, unknown, as before."""
    if whole is not None:
        return whole
    return rough if Watched(rough).loaded else None


def threads_advice(threads: int | None) -> Noise | None:
    """What to do about timings beside other processes when the runners' ops ran on several threads: a
    parallel op waits for its slowest thread, so one thread waiting for a CPU another process holds stalls
    the whole call, now and then by a time slice or more (measured: a 0.27 ms call, 2 threads beside one
    busy process: 32 ms at worst; with 1 thread at most 2.2 ms)."""
    if not threads or threads < 2:
        return None
    return Noise("advice", f"the runners' ops ran on {threads} threads: beside other processes a call waits for "
                 "its slowest thread, and at times for a whole time slice of another process; --threads 1 times on "
                 "one CPU and holds steadier on a shared machine")


def loaded_timing(candidate: str, whole: Watched, sizes: Sequence[tuple[str, Watched]]) -> list[Noise]:
    """Why one candidate's timings may not be trusted: other processes took CPU over its whole timing, or
    over one size of it (a burst there, diluted in the whole, still decided that size's verdict)."""
    if whole.loaded:
        return [Noise("load", f"{whole.words()} while {candidate} was timed", candidate, None, whole.foreign)]
    return [Noise("load", f"{watched.words()} while {candidate} was timed at {size}", candidate, size, watched.foreign)
            for size, watched in sizes if watched.loaded]


@dataclass(frozen=True)
class BaselineTiming:
    candidate: str
    median_s: float
    stderr_s: float


def baseline_disagreements(size: str, timings: Sequence[BaselineTiming]) -> list[Noise]:
    """The baseline's slowest and fastest medians at one size, in words, when one is more than
    ``BASELINE_DRIFT`` times the other and they differ by more than three combined standard errors."""
    found = []
    if len(timings) < 2:
        return found
    low = min(timings, key=lambda t: t.median_s)
    high = max(timings, key=lambda t: t.median_s)
    spread = high.median_s - low.median_s
    se = math.sqrt(low.stderr_s**2 + high.stderr_s**2) if math.isfinite(low.stderr_s + high.stderr_s) else 0.0
    if low.median_s > 0 and high.median_s / low.median_s > BASELINE_DRIFT and spread > 3 * se:
        from harness.core.fmt import fmt_time

        found.append(Noise("baseline", f"the baseline measured {fmt_time(low.median_s)} beside {low.candidate} and "
                           f"{fmt_time(high.median_s)} beside {high.candidate} at {size} (the same function on "
                           "the same inputs): the machine's speed changed during the run", None, size,
                           high.median_s / low.median_s))
    return found
