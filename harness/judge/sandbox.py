"""Runners as the judge sees them: start one, talk to it, stop it, and leave nothing of it behind.
Runs in the judge.

Each function under test runs in a freshly spawned ``harness.runner.serve`` process in a scratch directory, in
a process session of its own, and holds the only copy of that function: the judge never imports
candidate code, so nothing a candidate does to its own process (rebinding the oracle or the comparison,
flipping flush-to-zero, changing the thread count) can reach the oracle's outputs, the comparison, the
statistics or the verdict.  What comes back is data, checked as it is read (``protocol``).

- A request that gets no answer before the job's deadline kills the runner: "timed out after N s"; a
  runner that dies answers "exited with code N" / "killed by signal SIGSEGV"; bytes that are no frame
  answer "sent malformed data on the runner pipe".
- ``suspend``/``resume`` stop a runner's whole process group while another runner is timed, so a
  background thread or process of one function cannot run during the other's rounds.
- Each runner starts in PID, user and mount namespaces of its own where this machine allows it
  (``isolation``: probed once, ``isolation.describe()`` says which): it sees and can reach no other
  process, and everything it starts dies with it.  Either way it is not dumpable (no ptrace, no reading
  its memory by the same user).
- The judge is a child subreaper (Linux), so processes a runner detaches are re-parented to the judge (or,
  in a namespace, to the runner); when a runner stops, every process of its session and every such orphan
  is killed and reaped, until none has been seen for a moment, and the count is reported.  A runner also
  dies with the judge (``PR_SET_PDEATHSIG``).
- Scheduling is checked from outside every round: before it, every live runner's threads get back the
  CPU affinity, nice value and policy the judge gave them (counted in ``scheduling_restored``); after it, a
  runner that changed its own is failed (``StateChanged``), and one that changed another's (the others are
  stopped while it is timed) gets ``RunnerError``.
- Timing replies are checked against the judge's own clock: a runner cannot report rounds longer than
  the judge saw, nor (on the CPU, on a quiet machine) account for less than a fifth of the time the judge
  saw a median round of 25 ms or more take; and, loaded or not, nor for much less than the CPU time the
  judge read from /proc for its rounds (``release``): gross forgery is caught, not a few percent; and
  on the CPU a runner that has processes of its own running after a timed round is stopped (a helper could
  otherwise slow the other runner down while this one is stopped).  Placing a round's inputs is not timed,
  but on the CPU the judge reads the CPU time its main thread spends on it, and its own clock around it
  (``placing``; ``bench`` compares them with the baseline runner's).
- Each runner started in namespaces sees what the judge reads later read-only (``readonly``), checked in its
  mount table once it has loaded.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from harness.core import messages as m
from harness.core.protocol import Outcome, ProtocolError, decode_outcome, encode_value, write_frame
from harness.judge import checkout
from harness.judge.noise import FOREIGN_CPU_LIMIT, main_thread_cpu_s, main_thread_run_s
from harness.judge.process import (_RUNNERS, RUNNER_ENVIRONMENT, LoadFailed, RunnerError, RunnerProcess, _import_path,
                                   load_cpu, pin)
from harness.judge.strays import _LIVE, become_subreaper, death, has_strays, kill_strays
from harness.runner import isolation, readonly
from harness.runner.audit import StateChanged

__all__ = ["LoadFailed", "Runner", "RunnerError", "death", "has_strays", "kill_strays", "spawn", "start"]

# judge's time / reported time of a median round: ~1.05 on a quiet machine, up to ~2.2 with this 2-core
# machine fully loaded (the pipe's wake-ups wait for the scheduler); only gross forgery is caught
MAX_WALL_RATIO = 5.0
# A size is checked only when its median round, as the judge saw it, lasted this long: a few ms of scheduler
# delay around a short round (5 ms of a tiny function) would look like forgery on a loaded machine.  The
# median of all rounds, not the rounds that happened to be long: those are the delayed ones at a size of
# short rounds, and two of them once failed the baseline of a quiet run.
MIN_CHECKED_ROUND_S = 0.025
# CPU seconds a runner's main thread may use per second its reports account for (``release``): honest
# rounds used 0.5-0.7 beside two busy processes (the oracle, and fused on 2 threads), 0.9-1.4 quiet (tiny
# to production sizes), once 2.65 in the test suite (calls of a few us: the per-call allowance is for
# those); rounds reported at a tenth of what they took, 5 or more, quiet or loaded.  Plus, per round and
# per call, for the runner's own work around the calls
MAX_CPU_RATIO = 2.0
ROUND_CPU_S, CALL_CPU_S = 0.002, 50e-6
MIN_CHECKED_CPU_S = 0.2
# The input writing a runner reports (within the cache, before each call) counts up to this many times the
# judge's estimate (``Bench._write_allowance``); a candidate's runner could claim more to hide slow calls
WRITE_ALLOWANCE_QUIET, WRITE_ALLOWANCE_LOADED = 3.0, 10.0


class _Round(NamedTuple):
    """One timed round as the judge saw it."""
    wall: float  # the judge's clock around the request
    timed: float  # seconds the runner reported for its calls (and its settling call)
    written: float  # seconds it reported writing inputs
    allowed: float  # the judge's estimate of that writing
    cpu: float | None  # CPU seconds of its main thread, read from /proc (None: unreadable)
    calls: int
    placing: tuple[float | None, float] = (None, 0.0)  # placing its inputs: main thread's CPU s, judge's wall s


class Runner(RunnerProcess):
    """The judge's handle on the runner of one function: calls to verify it, and timing requests checked
    against the judge's own clock and the scheduling the judge gave it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rounds: list[_Round] = []
        self._write_allowance = 0.0  # seconds a call a round may spend writing inputs (``prepare``)
        self._warming = True  # the prepare request in flight warms up (and so reports a per-call time)

    def call(self, case: Any, device: str | None = None) -> Outcome:
        reply, blob = self.request(m.CallCase(_case(case), device or self.device), m.Called)
        return self._outcome(reply, blob)

    def call_on(self, call: Any, device: str | None = None) -> Outcome:
        """Call on inputs the judge supplies (tensors and plain keyword values), not built from a case."""
        blobs: list[bytes] = []
        request = m.CallOn(encode_value(tuple(call.args), blobs), dict(call.kwargs), device or self.device)
        reply, blob = self.request(request, m.Called, blob=b"".join(blobs))
        return self._outcome(reply, blob)

    def _outcome(self, reply: dict, blob: bytes) -> Outcome:
        try:
            return decode_outcome(reply, blob)
        except ProtocolError as exc:
            self._kill()
            raise RunnerError(f"sent malformed data on the runner pipe ({exc})", self.spec) from None

    def prepare(self, size: Any, move_inputs: bool = False, write_allowance_s: float = 0.0) -> dict:
        """``size``'s timing inputs (built once, then reused) and a warm-up; the per-call time and digest.
        ``move_inputs``: the runner puts them in fresh memory before each round (``worker.place``), and may
        write each call's input just before the call, for which the round-time cross-check allows
        ``write_allowance_s`` a call (the judge's estimate, ``Bench._write_allowance``)."""
        self.prepare_begin(size, fresh=False, warm=True, move_inputs=move_inputs)
        prepared = self.prepare_end()
        self._write_allowance = write_allowance_s
        return prepared

    def prepare_begin(self, size: Any, fresh: bool = True, warm: bool = False, move_inputs: bool = False) -> None:
        """Ask for ``size``'s timing inputs (``fresh``: built anew; ``warm``: and warmed up) without waiting:
        two runners then build at the same time, so neither's memory is allocated after the other's (see
        ``bench``)."""
        self.resume()
        self._warming = warm
        try:
            write_frame(self._to, m.Prepare(_case(size), fresh, warm, move_inputs).header())
        except OSError:  # the runner is gone: prepare_end reads why
            pass

    def prepare_end(self) -> dict:
        """The reply to ``prepare_begin``: the inputs' digest, and the per-call time if it warmed up."""
        try:
            reply, _ = self._reply("prepare", (m.Prepared,))
        except (RunnerError, StateChanged) as exc:
            exc.spec = self.spec
            raise
        if self._warming and reply.per_call_s is None:
            raise RunnerError("sent malformed data on the runner pipe (a time of None)", self.spec)
        self._rounds = []
        self._write_allowance = 0.0
        return {"per_call_s": reply.per_call_s if self._warming else None, "input_digest": reply.input_digest}

    def round(self, n: int, start: int, first: int = 0) -> float:
        # its memory placement and fresh inputs first, outside the wall time checked below, but not unwatched:
        # its CPU time is compared with the other runner's for the same work (``placing``)
        on_cpu = self.device == "cpu"  # the CPU-time check is the CPU's (``release``): no /proc reads on CUDA
        placing = _placed(self, start, n, first)
        stuck = self._settle_scheduling()
        cpu_before = main_thread_cpu_s(self._pid) if on_cpu else None
        began = time.perf_counter()
        reply, _ = self.request(m.Round(n, start, first), m.Timed)
        wall = time.perf_counter() - began
        cpu_after = main_thread_cpu_s(self._pid) if on_cpu else None
        self._check_scheduling(stuck)
        if self.device == "cpu" and has_strays(self._pid):  # could run while the other runner is timed
            count = self.reap_strays()
            raise RunnerError(f"started {count} process{'es' if count != 1 else ''} while it was timed (killed)",
                              self.spec)
        seconds, written = reply.seconds, reply.written_s
        if seconds * n > wall + 1e-4:
            raise RunnerError(f"reported {seconds * n * 1e3:.3g} ms for a round the judge saw take {wall * 1e3:.3g} ms", self.spec)
        # what the round should have taken by its own report: n timed calls, plus the untimed settling call
        # a runner makes before a round of several calls (worker.round); and the inputs it wrote before each
        # call, within the cache, as it says, but at most a multiple of the judge's estimate (``release``)
        cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        self._rounds.append(_Round(wall, seconds * (n + 1 if n > 1 else 1), float(written), n * self._write_allowance,
                                   cpu, n, placing))
        return seconds

    def place_only(self, n: int, start: int) -> tuple[float | None, float, int]:
        """Placing ``n`` calls' inputs with no round after it, watched as ``round`` watches it, with ``n``."""
        return (*_placed(self, start, n, 0), n)

    def placing(self) -> list[tuple[float, float, int]] | None:
        """Placing each round's inputs since the last ``prepare``: its main thread's CPU seconds, the seconds
        the judge waited, the round's calls (None off the CPU, or where /proc could not be read)."""
        rounds = [(*r.placing, r.calls) for r in self._rounds]
        return None if not rounds or any(c is None for c, _, _ in rounds) else rounds  # type: ignore[misc]

    def _settle_scheduling(self) -> dict[int, frozenset]:
        """Before a timed round: every live runner's threads get back the scheduling the judge gave them
        (counted in each one's ``scheduling_restored``), whoever changed it while they were not timed; what
        could not be put back, by runner.  This runner's cannot be timed so."""
        stuck: dict[int, frozenset] = {}
        for pid, runner in list(_RUNNERS.items()):
            if runner.scheduling is not None:
                found = isolation.audit(pid, runner.scheduling, restore=True)
                runner.scheduling_restored += found.restored
                if found.stuck:
                    stuck[pid] = found.stuck
        if self._pid in stuck and self.scheduling is not None:
            raise RunnerError("its scheduling was changed outside a timed round and the judge cannot put it back "
                              f"({isolation.words(stuck[self._pid], self.scheduling)})", self.spec)
        return stuck

    def _check_scheduling(self, stuck: dict[int, frozenset]) -> None:
        """After a timed round: a change to any live runner's scheduling since ``_settle_scheduling`` was made
        during the round, while every other runner was stopped: by this one.  ``RunnerError`` if it changed
        another's, ``StateChanged`` if its own.  (If another runner was not stopped, nothing is concluded:
        the next round puts it back.)"""
        if any(r is not self and not r.suspended and r.alive() for r in _RUNNERS.values()):
            return
        for pid, runner in sorted(_RUNNERS.items(), key=lambda item: item[1] is self):  # this one's own last
            if runner.scheduling is None:
                continue
            changed = isolation.audit(pid, runner.scheduling).changed - stuck.get(pid, frozenset())
            if not changed:
                continue
            change = isolation.words(changed, runner.scheduling)
            if runner is not self:
                raise RunnerError(f"changed another runner's scheduling ({change})", self.spec)
            exc = StateChanged([change])
            exc.spec = self.spec  # type: ignore[attr-defined]
            raise exc

    def release(self, foreign_cpu: float | None = None) -> None:
        """End a timing size; on the CPU, the rounds' reported times must account for what the judge saw.

        On a quiet machine, by the judge's clock: where the median round lasted at least
        ``MIN_CHECKED_ROUND_S``, the median round took at most ``MAX_WALL_RATIO`` times what the runner
        reported (medians, so that a round delayed by the scheduler does not count).  While other processes
        took more than ``noise.FOREIGN_CPU_LIMIT`` of the CPUs (``foreign_cpu``, measured by the judge), a
        wake-up can wait tens of ms behind them whatever the round's length (an honest 5 ms round once took
        25 ms, an honest candidate once read 10x), so the wall clock proves nothing there.  Always, by the
        CPU time the runner's main thread used during its rounds (read from /proc by the judge,
        ``noise.main_thread_cpu_s``): at most ``MAX_CPU_RATIO`` CPU seconds for each second its report
        accounts for (``cpu_underreported``).  Being made to wait uses no CPU time, so load cannot make an
        honest runner look forged; one that reports a tenth of what it computed used several times that.
        Gross forgery is caught, a few percent is not: a runner is the candidate's own process."""
        self.request(m.Release(), m.Ok)
        if self.device != "cpu":
            return
        loaded = foreign_cpu is not None and foreign_cpu > FOREIGN_CPU_LIMIT
        most = WRITE_ALLOWANCE_LOADED if loaded else WRITE_ALLOWANCE_QUIET  # a loaded machine writes slower too
        rounds = self._rounds
        accounted = [r.timed + min(r.written, most * r.allowed) for r in rounds]
        if not loaded and underreported([(r.wall, r.wall / max(a, 1e-9)) for r, a in zip(rounds, accounted)]):
            raise RunnerError(f"its reported times account for {sum(accounted):.3g} s of rounds that the judge saw "
                              f"take {sum(r.wall for r in rounds):.3g} s", self.spec)
        # CPU time is spent writing inputs however long it takes, so here the writing a runner reports counts
        # in full, up to what the judge saw the round take (the cap above guards the judge's clock)
        worked = sum(r.timed + min(r.written, max(r.wall - r.timed, 0.0)) for r in rounds)
        used = sum(r.cpu for r in rounds if r.cpu is not None)
        if all(r.cpu is not None for r in rounds) and cpu_underreported(used, worked, len(rounds),
                                                                        sum(r.calls for r in rounds)):
            raise RunnerError(f"its reported times account for {worked:.3g} s of rounds in which its main "
                              f"thread alone used {used:.3g} s of CPU time", self.spec)

    def timed_output(self, index: int, digest: bool = False) -> Outcome | str:
        """What timed call ``index`` of its last round returned (or, cheaply, its ``worker.output_digest``)."""
        return self._output(m.TimedOutput(index, digest))

    def output_for(self, start: int, index: int, digest: bool = False) -> Outcome | str:
        """Its output for call ``index`` of round ``start`` (kept from that round, or computed untimed)."""
        return self._output(m.OutputFor(start, index, digest))

    def _output(self, request: m.TimedOutput | m.OutputFor) -> Outcome | str:
        if request.digest:
            return self.request(request, m.Digest)[0].digest
        reply, blob = self.request(request, m.Called)
        return self._outcome(reply, blob)

    def time_case(self, case: Any) -> float:
        return self.request(m.TimeCase(_case(case)), m.Timed)[0].seconds

    def profile(self, size: Any) -> Any:
        from harness.core.result import Profile
        from harness.core.schema import from_dict
        from harness.core.text import SchemaError

        reply, _ = self.request(m.ProfileAt(_case(size)), m.Profiled)
        try:
            return from_dict(Profile, reply.profile)
        except SchemaError as exc:
            raise RunnerError(f"sent malformed data on the runner pipe (profile: {exc})", self.spec) from None


def _placed(runner: Runner, start: int, n: int, first: int) -> tuple[float | None, float]:
    """Placing a round's inputs (``worker.place``): the runner's main-thread CPU seconds (None off the CPU,
    where the judge reads no /proc, or where unreadable) and the seconds the judge waited."""
    before = main_thread_run_s(runner.pid) if runner.device == "cpu" else None
    began = time.perf_counter()
    runner.request(m.Place(start, n, first), m.Ok)
    wall = time.perf_counter() - began
    after = main_thread_run_s(runner.pid) if before is not None else None
    return None if before is None or after is None else after - before, wall


def _case(case: Any) -> dict:
    return {"name": case.name, "family": case.family, "params": dict(case.params), "seed": case.seed}


def cpu_underreported(cpu_s: float, reported_s: float, rounds: int, calls: int = 0) -> bool:
    """Whether ``rounds`` rounds of ``calls`` calls in all, whose main thread used ``cpu_s`` of CPU time,
    could not have been the ``reported_s`` the runner's reports account for, each round allowed
    ``ROUND_CPU_S`` and each call ``CALL_CPU_S`` of the runner's own work around it (the pipe, the audit, the
    loop, writing the call's input); judged once ``MIN_CHECKED_CPU_S`` was used (the kernel counts in 10 ms
    ticks).  As with the judge's clock, forgery of tiny calls goes unseen: their own work dwarfs them."""
    allowed = reported_s + rounds * ROUND_CPU_S + calls * CALL_CPU_S
    return cpu_s >= MIN_CHECKED_CPU_S and cpu_s > MAX_CPU_RATIO * allowed


def underreported(rounds: list[tuple[float, float]], minimum_s: float = MIN_CHECKED_ROUND_S,
                  limit: float = MAX_WALL_RATIO) -> bool:
    """Whether a size's rounds, as (judge's wall time, wall / reported time) each, show reported times that
    cannot account for what the judge saw: its median round long enough to judge (``minimum_s``) and more
    than ``limit`` times what the runner reported."""
    if len(rounds) < 2 or statistics.median(wall for wall, _ in rounds) < minimum_s:
        return False
    return statistics.median(ratio for _, ratio in rounds) > limit


def start(spec: str, target_ref: str, device: str, config: dict, timeout: float,
          env: dict[str, str] | None = None) -> Runner:
    """Start a runner for ``spec`` and hand it its spec; it loads it while the judge goes on (the judge
    calls ``ready`` before the first request, and may ``suspend`` it meanwhile)."""
    become_subreaper()
    checkout.preload()  # all of the judge's code in memory before any candidate code runs
    to_runner_r, to_runner_w = os.pipe()
    from_runner_r, from_runner_w = os.pipe()
    scratch = tempfile.mkdtemp(prefix="harness-runner-")
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding harness/
    environment = {**RUNNER_ENVIRONMENT, **os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [environment.get("PYTHONPATH")])])
    log = open(os.path.join(scratch, "output.log"), "wb")
    try:
        # -P: the working folder (the scratch folder, which other runners can write) is not on the import path
        argv = [sys.executable, "-P", "-c", __import__("harness.runner.snapshot", fromlist=["BOOT"]).BOOT,  # snapshot.BOOT
                str(to_runner_r), str(from_runner_w)]
        wrapped = isolation.wrap(argv)  # in namespaces of its own where this machine allows it
        own = readonly.private(scratch, spec)  # its temporary folder and its candidate's compile caches
        view = readonly.environment(scratch, own) if wrapped != argv else {}  # where it can mount: a read-only view
        environment.update({**own, **view})
        process = subprocess.Popen(wrapped,
                                   pass_fds=(to_runner_r, from_runner_w), cwd=scratch, env=environment,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    finally:
        os.close(to_runner_r)
        os.close(from_runner_w)
        log.close()
    pid = isolation.runner_pid(process, wrapped != argv)  # before it reads anything: pinned before torch loads
    _LIVE.update((process.pid, pid))
    cpus = load_cpu(device)
    pin((process.pid, pid), cpus)
    runner = Runner(spec, process, to_runner_w, from_runner_r, scratch, device, timeout, pid, cpus)
    runner.read_only = [p for p in view.get(readonly.READ_ONLY, "").split(os.pathsep) if p]
    _RUNNERS[pid] = runner
    from harness.runner import snapshot  # what the runner executes: the run's copy of the sources, sent before hello

    snapshot.send(to_runner_w, snapshot.for_runner(spec, target_ref))
    write_frame(to_runner_w, {"kind": "hello", "spec": spec, "target": target_ref, "device": device,
                              "config": config, "path": _import_path()})
    return runner


def spawn(spec: str, target_ref: str, device: str, config: dict, timeout: float,
          env: dict[str, str] | None = None) -> Runner:
    """Start a runner for ``spec`` and wait until it has loaded it (see ``Runner.ready``)."""
    return start(spec, target_ref, device, config, timeout, env).ready()
