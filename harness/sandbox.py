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

from harness import isolation
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
_LIVE: set[int] = set()  # pids of this judge's runners that are still running (and of the unshare above each)
_RUNNERS: dict[int, "Runner"] = {}  # this judge's live runners by pid: whose scheduling each round checks
STRAYS_QUIET_S = 0.05  # strays are hunted until none has been seen for this long ...
STRAYS_DEADLINE_S = 60.0  # ... or for this long in all
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


death = _death  # public: the pipeline names a baseline runner's death in words


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


def _reap(pids: set[int]) -> set[int]:
    """Those of ``pids`` that are gone: reaped now if they were the judge's children (no scan of /proc)."""
    gone = set()
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                gone.add(pid)
        except ChildProcessError:  # not the judge's child (or reaped already)
            gone.add(pid)
    return gone


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def kill_strays(session: int, runner: int | None = None) -> int:
    """Kill (and reap) every stray of ``session`` (whose runner is ``runner``), until none has been seen for
    ``STRAYS_QUIET_S`` (killing one may orphan others, and a process may keep forking); the number killed.
    Between full scans of ``/proc``, the judge's and the runner's own children are read (cheap) and every one
    that is not a runner is killed at once: an orphan is re-parented to the judge (a subreaper) or, in a PID
    namespace, to the runner, so even a chain of fork, exit, setsid, fork... is caught as each link is
    orphaned.  Gives up after ``STRAYS_DEADLINE_S``."""
    me = os.getpid()
    killed: set[int] = set()
    found = [p for p in _strays(session) if p != runner]  # the runner is killed by ``Runner._kill``, not here
    if not found:
        _reap_zombies()
        return 0
    deadline = time.monotonic() + STRAYS_DEADLINE_S
    seen = scanned = time.monotonic()
    reaped: set[int] = set()
    while True:
        for pid in found:
            group = _group(pid)
            try:
                if group not in (None, os.getpgrp()):
                    os.killpg(group, signal.SIGKILL)  # atomic against fork: a process that keeps forking dies too
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        if found:
            seen = time.monotonic()
            reaped |= _reap(killed - reaped)
        now = time.monotonic()
        if now - seen > STRAYS_QUIET_S or now > deadline:
            break
        if now - scanned > 0.01:  # the whole table now and then (descendants that are not orphans yet) ...
            found, scanned = [p for p in _strays(session) if p != runner], now
        else:  # ... and in between only the orphans' new parents: quick enough to win a race with fork
            orphans = (_children(me) | (_children(runner) if runner else set())) - _LIVE - {me, session, runner}
            found = [p for p in orphans if (_stat(p) or ("Z",))[0] != "Z"]
            if not found:
                time.sleep(0.001)
    _reap_zombies()
    return len(killed)


class Runner:
    """The judge's handle on one runner process."""

    def __init__(self, spec: str, process: subprocess.Popen, to_runner: int, from_runner: int, scratch: str,
                 device: str, timeout: float, pid: int | None = None) -> None:
        self.spec, self.process, self.device = spec, process, device
        # the runner's own pid: ``process`` is unshare's where it runs in namespaces (``isolation``)
        self._pid = pid or process.pid
        self._pidfd = _pidfd(self._pid) if self._pid != process.pid else None  # signals it race-free
        self.scheduling = isolation.Scheduling.expected(runner_cpus(device)) if isolation.supported() else None
        self.scheduling_restored = 0  # threads whose scheduling the judge put back before a round
        self._to, self._from, self._scratch = to_runner, from_runner, scratch
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.suspended = False
        self.strays_killed = 0
        self.load_state_changes: tuple[str, ...] = ()
        self.threads: int | None = None
        self._wall = self._reported = 0.0
        self._ratios: list[tuple[float, float]] = []  # (judge's wall time, wall / reported) per round
        self._write_allowance = 0.0  # seconds a call a round may spend writing inputs (``prepare``)
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
        """The runner process's pid (as the judge sees it, also when it runs in a PID namespace)."""
        return self._pid

    def _signal(self, sig: int) -> None:
        """``sig`` to the runner's process group, and to the runner itself where it is not the group's leader
        (in a namespace, under unshare: it could have left the group)."""
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, sig)
            except OSError:
                pass
        elif self._pid != self.process.pid and self.alive():  # no pidfd here: unshare still holds its pid
            try:
                os.kill(self._pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def suspend(self) -> None:
        if self.alive() and not self.suspended:
            self._signal(signal.SIGSTOP)
            self.suspended = True

    def resume(self) -> None:
        """Continue the runner's process group (always: something else may have stopped it)."""
        self.suspended = False
        self._signal(signal.SIGCONT)

    def reap_strays(self) -> int:
        """Kill processes the function started that are still running; how many there were."""
        count = kill_strays(self.process.pid, self._pid)
        self.strays_killed += count
        return count

    def close(self) -> int:
        """Stop the runner and everything it started; the number of its processes that were still running.
        The runner is killed, not asked to exit: it holds nothing worth a clean shutdown, and torch's
        takes most of a second."""
        self.resume()
        self.reap_strays()  # first, to count them: in a PID namespace the runner's death kills them uncounted
        self._kill()
        self.reap_strays()
        for fd in (self._to, self._from):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
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
        self._signal(signal.SIGKILL)  # in a PID namespace, the runner's death kills every process in it
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._reap_runner()
        self._forget()

    def _reap_runner(self, timeout: float = 10.0) -> None:
        """Under unshare, a runner that outlived it (killed at the same time, its memory still being torn
        down) is now the judge's child (a subreaper): wait until it is gone, so that it is not taken for
        another runner's stray."""
        if self._pid == self.process.pid or self.process.returncode is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                if os.waitpid(self._pid, os.WNOHANG)[0] or time.monotonic() > deadline:
                    return
            except ChildProcessError:  # unshare reaped it
                return
            time.sleep(0.001)

    def _forget(self) -> None:
        """No longer a live runner of this judge."""
        _LIVE.difference_update((self.process.pid, self._pid))
        _RUNNERS.pop(self._pid, None)

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
            self._forget()
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
        self._write_allowance = 0.0
        return {"per_call_s": per_call, "input_digest": reply["input_digest"]}

    def round(self, n: int, start: int, first: int = 0) -> float:
        # its memory placement and fresh inputs first, outside the wall time checked below
        self.request({"kind": "place", "start": start, "n": n, "first": first}, "ok")
        stuck = self._settle_scheduling()
        began = time.perf_counter()
        reply, _ = self.request({"kind": "round", "n": n, "start": start, "first": first}, "timed")
        wall = time.perf_counter() - began
        self._check_scheduling(stuck)
        if self.device == "cpu" and has_strays(self._pid):  # could run while the other runner is timed
            count = self.reap_strays()
            raise RunnerError(f"started {count} process{'es' if count != 1 else ''} while it was timed (killed)",
                              self.spec)
        seconds = self._seconds(reply.get("seconds"))
        if seconds * n > wall + 1e-4:
            raise RunnerError(f"reported {seconds * n * 1e3:.3g} ms for a round the judge saw take {wall * 1e3:.3g} ms", self.spec)
        # what the round should have taken by its own report: n timed calls, plus the untimed settling call
        # a runner makes before a round of several calls (worker.round)
        expected = seconds * (n + 1 if n > 1 else 1) + n * self._write_allowance
        self._wall, self._reported = self._wall + wall, self._reported + expected
        self._ratios.append((wall, wall / expected))
        return seconds

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

    def timed_output(self, index: int, digest: bool = False) -> Outcome | str:
        """What timed call ``index`` of its last round returned (or, cheaply, its ``worker.output_digest``)."""
        return self._output({"kind": "timed_output", "index": index}, digest)

    def output_for(self, start: int, index: int, digest: bool = False) -> Outcome | str:
        """Its output for call ``index`` of round ``start`` (kept from that round, or computed untimed)."""
        return self._output({"kind": "output_for", "start": start, "index": index}, digest)

    def _output(self, header: dict, digest: bool) -> Outcome | str:
        if digest:
            reply, _ = self.request({**header, "digest": True}, "digest")
            if not isinstance(reply.get("digest"), str) or len(reply["digest"]) > 1 << 16:
                self._kill()
                raise RunnerError("sent malformed data on the runner pipe (an output digest)", self.spec)
            return reply["digest"]
        reply, blob = self.request(header, "called")
        return self._outcome(reply, blob)

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


def _pin(pids: tuple[int, ...], device: str) -> None:
    cpus = runner_cpus(device)
    for pid in pids if cpus else ():
        try:
            os.sched_setaffinity(pid, cpus)
        except OSError:
            pass


def _pidfd(pid: int) -> int | None:
    """A file descriptor naming process ``pid`` (Linux 5.3+): a signal sent through it cannot reach another
    process that reused the pid."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


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
        argv = [sys.executable, "-c", __import__("harness.snapshot", fromlist=["BOOT"]).BOOT,  # snapshot.BOOT
                str(to_runner_r), str(from_runner_w)]
        wrapped = isolation.wrap(argv)  # in namespaces of its own where this machine allows it
        process = subprocess.Popen(wrapped,
                                   pass_fds=(to_runner_r, from_runner_w), cwd=scratch, env=environment,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    finally:
        os.close(to_runner_r)
        os.close(from_runner_w)
        log.close()
    pid = isolation.runner_pid(process, wrapped != argv)  # before it reads anything: pinned before torch loads
    _LIVE.update((process.pid, pid))
    _pin((process.pid, pid), device)
    runner = Runner(spec, process, to_runner_w, from_runner_r, scratch, device, timeout, pid)
    _RUNNERS[pid] = runner
    from harness import snapshot  # what the runner executes: the run's copy of the sources, sent before hello

    snapshot.send(to_runner_w, snapshot.for_runner(spec, target_ref))
    write_frame(to_runner_w, {"kind": "hello", "spec": spec, "target": target_ref, "device": device,
                              "config": config, "path": _import_path()})
    return runner


def spawn(spec: str, target_ref: str, device: str, config: dict, timeout: float,
          env: dict[str, str] | None = None) -> Runner:
    """Start a runner for ``spec`` and wait until it has loaded it (see ``Runner.ready``)."""
    return start(spec, target_ref, device, config, timeout, env).ready()
