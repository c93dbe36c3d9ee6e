"""Runners as the judge sees them: start one, talk to it, stop it, and leave nothing of it behind.
Runs in the judge.

Each function under test runs in a freshly spawned ``harness.runner`` process in a scratch directory, in
a process session of its own, and holds the only copy of that function: the judge never imports
candidate code, so nothing a candidate does to its own process (rebinding the oracle or the comparison,
flipping flush-to-zero, changing the thread count) can reach the oracle's outputs, the comparison, the
statistics or the verdict.  What comes back is data, checked as it is read (``protocol``).

- A request that gets no answer before the job's deadline kills the runner: "timed out after N s"; a
  runner that dies answers "exited with code N" / "killed by signal SIGSEGV"; bytes that are no frame
  answer "sent malformed data on the runner pipe".
- ``suspend``/``resume`` stop a runner's whole process group while another runner is timed, so a
  background thread or process of one function cannot run during the other's rounds.
- The judge is a child subreaper (Linux), so processes a runner detaches are re-parented to the judge;
  when a runner stops, every process of its session and every such orphan is killed and reaped, and the
  count is reported.  A runner also dies with the judge (``PR_SET_PDEATHSIG``).
- Timing replies are checked against the judge's own clock: a runner cannot report rounds longer than
  the judge saw, nor (on the CPU) account for less than a fifth of the time the judge saw a median round
  of 25 ms or more take: gross forgery of long rounds is caught, not a few percent; and
  on the CPU a runner that has processes of its own running after a timed round is stopped (a helper could
  otherwise slow the other runner down while this one is stopped).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.audit import StateChanged
from harness.fmt import plain
from harness.noise import FOREIGN_CPU_LIMIT, stat_fields
from harness.protocol import Closed, Outcome, ProtocolError, Timeout, decode_outcome, encode_value, read_frame, write_frame

# Every runner's C allocator in the same, history-free state: glibc serves all memory from its heap and
# never gives it back, as a long-running process with a warm caching allocator would.  Otherwise each
# process's dynamic mmap threshold and page faults on memory new to the (virtual) machine make the same
# function 30% faster in one runner than in another (benchmarks/NOTES.md); set these yourself to override.
# PYTHONDONTWRITEBYTECODE: a runner writes no .pyc, so one that appears during a run was planted.
RUNNER_ENVIRONMENT = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(16 << 30), "PYTHONDONTWRITEBYTECODE": "1"}
# judge's time / reported time of a median round: ~1.05 on a quiet machine, up to ~2.2 with this 2-core
# machine fully loaded (the pipe's wake-ups wait for the scheduler); only gross forgery is caught
MAX_WALL_RATIO = 5.0
# A size is checked only when its median round, as the judge saw it, lasted this long: a few ms of scheduler
# delay around a short round (5 ms of a tiny function) would look like forgery on a loaded machine.  The
# median of all rounds, not the rounds that happened to be long: those are the delayed ones at a size of
# short rounds, and two of them once failed the baseline of a quiet run.
MIN_CHECKED_ROUND_S = 0.025
# ... and on a loaded machine (``release``), where a wake-up can wait tens of ms whatever the round's length
LOADED_MIN_ROUND_S = 0.1
_LIVE: set[int] = set()  # pids of this judge's runners that are still running
_SUBREAPER = False


class RunnerError(Exception):
    """A runner failed: timed out, died, sent malformed data, or its function failed while timed.
    ``spec`` says whose runner it was (the baseline's runner can fail during a candidate's timing)."""

    def __init__(self, reason: str, spec: str = "") -> None:
        super().__init__(reason)
        self.spec = spec


class LoadFailed(Exception):
    """The runner could not load its spec (the message says why, in one line)."""


def become_subreaper() -> None:
    """Orphans of this process's descendants become its children (Linux ``PR_SET_CHILD_SUBREAPER``), and
    the judge cannot be attached to by a debugger running as an ordinary user (``PR_SET_DUMPABLE`` 0; root
    can still: see the README's trust model)."""
    global _SUBREAPER
    if _SUBREAPER or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
        libc.prctl(4, 0)  # PR_SET_DUMPABLE
        _SUBREAPER = True
    except Exception:
        pass


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _processes() -> dict[int, tuple[str, int, int, int]]:
    """pid -> (state, ppid, process group, session) of every process (Linux /proc; empty elsewhere)."""
    found = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat is not None:
            found[int(entry)] = stat
    return found


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, process group, session) of one process, or None if it is gone."""
    fields = stat_fields(pid)
    try:
        return (fields[0], int(fields[1]), int(fields[2]), int(fields[3])) if fields else None
    except (IndexError, ValueError):
        return None


def _children(pid: int) -> set[int]:
    """The children of every thread of ``pid`` (Linux ``/proc/PID/task/TID/children``; cheap)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                found.update(int(p) for p in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def has_strays(runner: int) -> bool:
    """Whether a runner has a descendant, or the judge an adopted orphan (a quick check, between rounds)."""
    if not os.path.exists("/proc/self/task"):
        return False
    candidates = _children(runner) | (_children(os.getpid()) - _LIVE)
    return any((_stat(p) or ("Z",))[0] != "Z" for p in candidates)  # a killed child may linger as a zombie


def _strays(session: int) -> list[int]:
    """Live processes a runner started: its descendants and the rest of its session (other than the
    runner), and orphans re-parented to the judge that are not runners (the judge starts no other
    long-lived process)."""
    me, table = os.getpid(), _processes()
    found = {session}
    for _ in range(len(table)):  # descendants, however deep (a detached child leaves the session)
        grown = found | {pid for pid, (_, ppid, _, _) in table.items() if ppid in found}
        if grown == found:
            break
        found = grown
    return [pid for pid, (state, ppid, _, sid) in table.items()
            if state != "Z" and pid not in (session, me) and pid not in _LIVE
            and (pid in found or sid == session or ppid == me)]


def _reap_zombies() -> None:
    me = os.getpid()
    for pid, (state, ppid, _, _) in _processes().items():
        if ppid == me and state == "Z" and pid not in _LIVE:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def kill_strays(session: int) -> int:
    """Kill (and reap) every stray of ``session``, repeatedly, since killing one may orphan others."""
    killed: set[int] = set()
    for _ in range(50):
        found = _strays(session)
        if not found:
            break
        for pid in found:
            group = _group(pid)
            try:
                if group not in (None, os.getpgrp()):
                    os.killpg(group, signal.SIGKILL)  # atomic against fork: a process that keeps forking dies too
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
        _reap_zombies()
    _reap_zombies()
    return len(killed)


class Runner:
    """The judge's handle on one runner process."""

    def __init__(self, spec: str, process: subprocess.Popen, to_runner: int, from_runner: int, scratch: str,
                 device: str, timeout: float) -> None:
        self.spec, self.process, self.device = spec, process, device
        self._to, self._from, self._scratch = to_runner, from_runner, scratch
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.suspended = False
        self.strays_killed = 0
        self.load_state_changes: tuple[str, ...] = ()
        self.threads: int | None = None
        self._wall = self._reported = 0.0
        self._ratios: list[tuple[float, float]] = []  # (judge's wall time, wall / reported) per round
        self._warming = True  # the prepare request in flight warms up (and so reports a per-call time)

    # -- lifetime -------------------------------------------------------------------------------
    def start_job(self, timeout: float | None = None) -> None:
        """A new deadline for the next piece of work (each candidate's job has its own)."""
        self.timeout = timeout or self.timeout
        self.deadline = time.monotonic() + self.timeout

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def pid(self) -> int:
        return self.process.pid

    def suspend(self) -> None:
        if self.alive() and not self.suspended:
            os.killpg(self.process.pid, signal.SIGSTOP)
            self.suspended = True

    def resume(self) -> None:
        """Continue the runner's process group (always: something else may have stopped it)."""
        self.suspended = False
        try:
            os.killpg(self.process.pid, signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass

    def reap_strays(self) -> int:
        """Kill processes the function started that are still running; how many there were."""
        count = kill_strays(self.process.pid)
        self.strays_killed += count
        return count

    def close(self) -> int:
        """Stop the runner and everything it started; the number of its processes that were still running.
        The runner is killed, not asked to exit: it holds nothing worth a clean shutdown, and torch's
        takes most of a second."""
        self.resume()
        self._kill()
        self.reap_strays()
        for fd in (self._to, self._from):
            try:
                os.close(fd)
            except OSError:
                pass
        self._relay_output()
        shutil.rmtree(self._scratch, ignore_errors=True)
        return self.strays_killed

    def _relay_output(self, max_lines: int = 40) -> None:
        """What the function printed (warnings, say), to the judge's stderr with control characters shown
        as ``?`` (so it cannot rewrite the terminal) and its runner named."""
        try:
            with open(os.path.join(self._scratch, "output.log"), "rb") as handle:
                text = handle.read(1 << 16).decode("utf-8", errors="replace")
        except OSError:
            return
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            return
        shown = plain(self.spec)
        for line in lines[:max_lines]:
            sys.stderr.write(f"[{shown}] {plain(line)}\n")
        if len(lines) > max_lines:
            sys.stderr.write(f"[{shown}] ({len(lines) - max_lines} more lines)\n")

    def _kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _LIVE.discard(self.process.pid)

    def ready(self) -> "Runner":
        """Wait until the runner has loaded its spec (within a fresh deadline).  ``LoadFailed`` if the spec
        cannot be loaded, ``RunnerError`` ("importing it ...") if the runner died, hung or misbehaved."""
        if self.threads is not None:
            return self
        self.start_job()
        try:
            self.resume()
            reply, _ = self._reply("spec", ("ready", "load_failed"))
        except (RunnerError, StateChanged) as exc:
            self.close()
            reason = str(exc) if isinstance(exc, RunnerError) else "sent malformed data on the runner pipe (a state report)"
            raise RunnerError(f"importing it {reason}", self.spec) from None
        if reply["kind"] == "load_failed":
            self.close()
            raise LoadFailed(" ".join(str(reply.get("message", "cannot load it")).split())[:500])
        changes = reply.get("state_changes", [])
        self.load_state_changes = tuple(str(c) for c in changes) if isinstance(changes, list) else ()
        self.threads = reply.get("threads") if isinstance(reply.get("threads"), int) else 0
        return self

    # -- requests -------------------------------------------------------------------------------
    def request(self, header: dict, *expected: str, blob: bytes = b"") -> tuple[dict, bytes]:
        """Send one request and read its reply; any failure of the runner becomes ``RunnerError``."""
        self.resume()
        try:
            try:
                write_frame(self._to, header, blob)
            except OSError:  # the runner is gone: its exit status says why
                pass
            return self._reply(header["kind"], expected)
        except (RunnerError, StateChanged) as exc:
            exc.spec = self.spec
            raise

    def _reply(self, answering: str, expected: tuple[str, ...]) -> tuple[dict, bytes]:
        """The next frame from the runner, which must be one of ``expected``; its failures as exceptions."""
        try:
            reply, blob = read_frame(self._from, self.deadline)
        except Timeout:
            self._kill()
            raise RunnerError(f"timed out after {self.timeout:g} s") from None
        except (Closed, OSError):
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
            _LIVE.discard(self.process.pid)
            raise RunnerError(_death(self.process.returncode)) from None
        except ProtocolError as exc:
            self._kill()
            raise RunnerError(f"sent malformed data on the runner pipe ({exc})") from None
        kind = reply["kind"]
        if kind == "state_changed" and isinstance(reply.get("changes"), list):
            raise StateChanged([str(c) for c in reply["changes"]])
        if kind == "failed":
            raise RunnerError(str(reply.get("message", "failed"))[:500])
        if kind not in expected:
            self._kill()
            raise RunnerError(f"sent malformed data on the runner pipe (a {kind!r} reply to {answering!r})")
        return reply, blob

    def call(self, case: Any, device: str | None = None) -> Outcome:
        reply, blob = self.request({"kind": "call", "case": _case(case), "device": device or self.device}, "called")
        return self._outcome(reply, blob)

    def call_on(self, call: Any, device: str | None = None) -> Outcome:
        """Call on inputs the judge supplies (tensors and plain keyword values), not built from a case."""
        blobs: list[bytes] = []
        header = {"kind": "call_on", "args": encode_value(tuple(call.args), blobs), "kwargs": dict(call.kwargs),
                  "device": device or self.device}
        reply, blob = self.request(header, "called", blob=b"".join(blobs))
        return self._outcome(reply, blob)

    def _outcome(self, reply: dict, blob: bytes) -> Outcome:
        try:
            return decode_outcome(reply, blob)
        except ProtocolError as exc:
            self._kill()
            raise RunnerError(f"sent malformed data on the runner pipe ({exc})", self.spec) from None

    def prepare(self, size: Any, move_inputs: bool = False) -> dict:
        """``size``'s timing inputs (built once, then reused) and a warm-up; the per-call time and digest.
        ``move_inputs``: the runner copies them to fresh memory before each round (``worker.moved``)."""
        self.prepare_begin(size, fresh=False, warm=True, move_inputs=move_inputs)
        return self.prepare_end()

    def prepare_begin(self, size: Any, fresh: bool = True, warm: bool = False, move_inputs: bool = False) -> None:
        """Ask for ``size``'s timing inputs (``fresh``: built anew; ``warm``: and warmed up) without waiting:
        two runners then build at the same time, so neither's memory is allocated after the other's (see
        ``bench``)."""
        self.resume()
        self._warming = warm
        try:
            write_frame(self._to, {"kind": "prepare", "size": _case(size), "fresh": fresh, "warm": warm,
                                   "move_inputs": move_inputs})
        except OSError:  # the runner is gone: prepare_end reads why
            pass

    def prepare_end(self) -> dict:
        """The reply to ``prepare_begin``: the inputs' digest, and the per-call time if it warmed up."""
        try:
            reply, _ = self._reply("prepare", ("prepared",))
        except (RunnerError, StateChanged) as exc:
            exc.spec = self.spec
            raise
        per_call = self._seconds(reply.get("per_call_s")) if self._warming else None
        if not isinstance(reply.get("input_digest"), str):
            raise RunnerError("sent malformed data on the runner pipe (no input digest)", self.spec)
        self._wall = self._reported = 0.0
        self._ratios = []
        return {"per_call_s": per_call, "input_digest": reply["input_digest"]}

    def round(self, n: int, start: int) -> float:
        if self.device == "cpu":  # its memory placement first, outside the wall time checked below
            self.request({"kind": "place", "start": start}, "ok")
        began = time.perf_counter()
        reply, _ = self.request({"kind": "round", "n": n, "start": start}, "timed")
        wall = time.perf_counter() - began
        if self.device == "cpu" and has_strays(self.process.pid):  # could run while the other runner is timed
            count = self.reap_strays()
            raise RunnerError(f"started {count} process{'es' if count != 1 else ''} while it was timed (killed)",
                              self.spec)
        seconds = self._seconds(reply.get("seconds"))
        if seconds * n > wall + 1e-4:
            raise RunnerError(f"reported {seconds * n * 1e3:.3g} ms for a round the judge saw take {wall * 1e3:.3g} ms", self.spec)
        # what the round should have taken by its own report: n timed calls, plus the untimed settling call
        # a runner makes before a round of several calls (worker.round)
        expected = seconds * (n + 1 if n > 1 else 1)
        self._wall, self._reported = self._wall + wall, self._reported + expected
        self._ratios.append((wall, wall / expected))
        return seconds

    def release(self, foreign_cpu: float | None = None) -> None:
        """End a timing size; on the CPU, the rounds' reported times must account for what the judge saw:
        where the median round lasted at least ``MIN_CHECKED_ROUND_S`` by the judge's clock, the median round
        took at most ``MAX_WALL_RATIO`` times what the runner reported (medians, so that a round delayed by
        the scheduler does not count).  Gross forgery of long rounds is caught, a few percent is not: a
        runner is the candidate's own process.  While other processes took more than
        ``noise.FOREIGN_CPU_LIMIT`` of the CPUs (``foreign_cpu``, measured by the judge) each wake-up can
        wait tens of ms behind them (a fully loaded 2-core machine once made honest 5 ms rounds take 25 ms),
        a delay that does not grow with the round: then only rounds of at least ``LOADED_MIN_ROUND_S`` are
        judged."""
        self.request({"kind": "release"}, "ok")
        # the pipe, the audit, waking threads: ~0.1-0.3 ms a round here, but each of the round's two wake-ups
        # can wait for a scheduler tick on a loaded machine; this catches gross forgery, not a few percent
        loaded = foreign_cpu is not None and foreign_cpu > FOREIGN_CPU_LIMIT
        minimum = LOADED_MIN_ROUND_S if loaded else MIN_CHECKED_ROUND_S
        if self.device == "cpu" and underreported(self._ratios, minimum):
            raise RunnerError(f"its reported times account for {self._reported:.3g} s of rounds that the judge saw "
                              f"take {self._wall:.3g} s", self.spec)

    def time_case(self, case: Any) -> float:
        reply, _ = self.request({"kind": "time_case", "case": _case(case)}, "timed")
        return self._seconds(reply.get("seconds"))

    def profile(self, size: Any) -> Any:
        from harness.result import Profile, SchemaError, from_dict

        reply, _ = self.request({"kind": "profile", "size": _case(size)}, "profiled")
        try:
            return from_dict(Profile, reply.get("profile"))
        except SchemaError as exc:
            raise RunnerError(f"sent malformed data on the runner pipe (profile: {exc})", self.spec) from None

    def _seconds(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < 1e6):
            raise RunnerError(f"sent malformed data on the runner pipe (a time of {value!r})", self.spec)
        return float(value)


def _case(case: Any) -> dict:
    return {"name": case.name, "family": case.family, "params": dict(case.params), "seed": case.seed}


def _import_path() -> list[str]:
    """The judge's import path, absolute, so the runner finds targets and specs as the judge does."""
    return [os.path.abspath(p or os.getcwd()) for p in sys.path]


def underreported(rounds: list[tuple[float, float]], minimum_s: float = MIN_CHECKED_ROUND_S) -> bool:
    """Whether a size's rounds, as (judge's wall time, wall / reported time) each, show reported times that
    cannot account for what the judge saw: its median round long enough to judge (``minimum_s``) and more
    than ``MAX_WALL_RATIO`` times what the runner reported."""
    if len(rounds) < 2 or statistics.median(wall for wall, _ in rounds) < minimum_s:
        return False
    return statistics.median(ratio for _, ratio in rounds) > MAX_WALL_RATIO


def runner_cpus(device: str) -> list[int] | None:
    """The CPUs a runner may use: on CUDA one, the judge's first, shared by every runner, so that a
    function's host-side work (Python, dispatch, launches) runs on the same core whichever runner it is
    in; None (no pinning) on the CPU.  Set when the runner starts, so torch sizes its thread pool to it
    (moved there later, torch's idle threads spun on that one core beside the launching thread: the slow
    loop measured 3x slower).  On an H200's host, A-vs-A pairs of a launch-bound function with runners on
    four CPUs were off by up to 40% (SD of pair speedups 6.7% and 13.9%), on one shared CPU by up to 8.5%
    (SD 1.2-3.6%; benchmarks/NOTES.md, "Runner pairs on CUDA")."""
    if device != "cuda" or not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))[:1]


def _pin(pid: int, device: str) -> None:
    cpus = runner_cpus(device)
    if cpus:
        try:
            os.sched_setaffinity(pid, cpus)
        except OSError:
            pass


def start(spec: str, target_ref: str, device: str, config: dict, timeout: float,
          env: dict[str, str] | None = None) -> Runner:
    """Start a runner for ``spec`` and hand it its spec; it loads it while the judge goes on (the judge
    calls ``ready`` before the first request, and may ``suspend`` it meanwhile)."""
    become_subreaper()
    to_runner_r, to_runner_w = os.pipe()
    from_runner_r, from_runner_w = os.pipe()
    scratch = tempfile.mkdtemp(prefix="harness-runner-")
    package_root = str(Path(__file__).resolve().parent.parent)
    environment = {**RUNNER_ENVIRONMENT, **os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [environment.get("PYTHONPATH")])])
    log = open(os.path.join(scratch, "output.log"), "wb")
    try:
        process = subprocess.Popen([sys.executable, "-m", "harness.runner", str(to_runner_r), str(from_runner_w)],
                                   pass_fds=(to_runner_r, from_runner_w), cwd=scratch, env=environment,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    finally:
        os.close(to_runner_r)
        os.close(from_runner_w)
        log.close()
    _LIVE.add(process.pid)
    _pin(process.pid, device)
    runner = Runner(spec, process, to_runner_w, from_runner_r, scratch, device, timeout)
    write_frame(to_runner_w, {"kind": "hello", "spec": spec, "target": target_ref, "device": device,
                              "config": config, "path": _import_path()})
    return runner


def spawn(spec: str, target_ref: str, device: str, config: dict, timeout: float,
          env: dict[str, str] | None = None) -> Runner:
    """Start a runner for ``spec`` and wait until it has loaded it (see ``Runner.ready``)."""
    return start(spec, target_ref, device, config, timeout, env).ready()
