"""A runner process as the judge holds it: started in a session (and namespaces) of its own, pinned where
the device asks, suspended while another is timed, stopped with everything it started, and talked to one
checked frame at a time.  Runs in the judge; ``sandbox`` builds the function-level requests on it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Sequence

from harness.core import messages as m
from harness.core.fmt import plain
from harness.core.protocol import Closed, ProtocolError, Timeout, read_frame, write_frame
from harness.judge.strays import _LIVE, death, kill_strays
from harness.runner import isolation, readonly
from harness.runner.audit import StateChanged

if TYPE_CHECKING:
    from harness.judge.sandbox import Runner

# Every runner's C allocator in the same, history-free state: glibc serves all memory from its heap and
# never gives it back, as a long-running process with a warm caching allocator would.  Otherwise each
# process's dynamic mmap threshold and page faults on memory new to the (virtual) machine make the same
# function 30% faster in one runner than in another (benchmarks/NOTES.md); set these yourself to override.
# PYTHONDONTWRITEBYTECODE: a runner writes no .pyc, so one that appears during a run was planted.
RUNNER_ENVIRONMENT = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(16 << 30), "PYTHONDONTWRITEBYTECODE": "1"}
_RUNNERS: dict[int, "Runner"] = {}  # this judge's live runners by pid: whose scheduling each round checks


class RunnerError(Exception):
    """A runner failed: timed out, died, sent malformed data, or its function failed while timed.
    ``spec`` says whose runner it was (the baseline's runner can fail during a candidate's timing)."""

    def __init__(self, reason: str, spec: str = "") -> None:
        super().__init__(reason)
        self.spec = spec


class LoadFailed(Exception):
    """The runner could not load its spec (the message says why, in one line)."""


class RunnerProcess:
    """The judge's handle on one runner process: its lifetime (start, stop, suspend, strays) and the pipe
    (one request, one checked reply).  ``sandbox.Runner`` adds the requests a function under test answers."""

    def __init__(self, spec: str, process: subprocess.Popen, to_runner: int, from_runner: int, scratch: str,
                 device: str, timeout: float, pid: int | None = None, cpus: list[int] | None = None) -> None:
        self.spec, self.process, self.device = spec, process, device
        # the runner's own pid: ``process`` is unshare's where it runs in namespaces (``isolation``)
        self._pid = pid or process.pid
        self._pidfd = _pidfd(self._pid) if self._pid != process.pid else None  # signals it race-free
        self.cpus = cpus  # where it was pinned when started (None: not pinned)
        self.scheduling = isolation.Scheduling.expected(cpus) if isolation.supported() else None
        self.scheduling_restored = 0  # threads whose scheduling the judge put back before a round
        self._to, self._from, self._scratch = to_runner, from_runner, scratch
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.suspended = False
        self._closed = False
        self.strays_killed = 0
        self.load_state_changes: tuple[str, ...] = ()
        self.threads: int | None = None
        self.read_only: list[str] = []  # the paths it was asked to see read-only (``readonly``)

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
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, sig)
        elif self._pid != self.process.pid and self.alive():  # no pidfd here: unshare still holds its pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self._pid, sig)

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
        takes most of a second.  Closing it again does nothing (its pid may belong to another process by then)."""
        if self._closed:
            return self.strays_killed
        self._closed = True
        self.resume()
        self.reap_strays()  # first, to count them: in a PID namespace the runner's death kills them uncounted
        self._kill()
        self.reap_strays()
        for fd in (self._to, self._from):
            with contextlib.suppress(OSError):
                os.close(fd)
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

    def ready(self) -> "RunnerProcess":
        """Wait until the runner has loaded its spec (within a fresh deadline).  ``LoadFailed`` if the spec
        cannot be loaded, ``RunnerError`` ("importing it ...") if the runner died, hung or misbehaved."""
        if self.threads is not None:
            return self
        self.start_job()
        try:
            self.resume()
            reply, _ = self._reply("spec", (m.Ready, m.LoadFailed))
        except (RunnerError, StateChanged) as exc:
            self.close()
            reason = str(exc) if isinstance(exc, RunnerError) else "sent malformed data on the runner pipe (a state report)"
            raise RunnerError(f"importing it {reason}", self.spec) from None
        if isinstance(reply, m.LoadFailed):
            self.close()
            raise LoadFailed(" ".join(reply.message.split())[:500])
        self.load_state_changes = tuple(reply.state_changes)
        self.threads = reply.threads
        if self.read_only:  # checked from outside, in its mount table, not taken on its word
            readonly.check(self._pid, self.read_only)
        return self

    # -- requests -------------------------------------------------------------------------------
    def request(self, message: m.Message, *expected: type[m.Message], blob: bytes = b"") -> tuple[Any, bytes]:
        """Send one request and read its reply (a message of one of the ``expected`` classes, or a ``called``
        reply's JSON for ``protocol.decode_outcome``); any failure of the runner becomes ``RunnerError``."""
        self.resume()
        try:
            try:
                write_frame(self._to, message.header(), blob)
            except OSError:  # the runner is gone: its exit status says why
                pass
            return self._reply(message.kind, expected)
        except (RunnerError, StateChanged) as exc:
            exc.spec = self.spec
            raise

    def _reply(self, answering: str, expected: tuple[type[m.Message], ...]) -> tuple[Any, bytes]:
        """The next frame from the runner, which must be one of ``expected``; its failures as exceptions."""
        try:
            header, blob = read_frame(self._from, self.deadline)
            if header.get("kind") == m.Called.kind and m.Called in expected:
                return header, blob  # checked field by field as it is decoded (``protocol.decode_outcome``)
            reply = m.parse(header, *expected, m.StateChanged, m.Failed)
        except Timeout:
            self._kill()
            raise RunnerError(f"timed out after {self.timeout:g} s") from None
        except (Closed, OSError):
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
            self._forget()
            raise RunnerError(death(self.process.returncode)) from None
        except ProtocolError as exc:
            self._kill()
            raise RunnerError(f"sent malformed data on the runner pipe ({exc})") from None
        if isinstance(reply, m.StateChanged):
            raise StateChanged(list(reply.changes))
        if isinstance(reply, m.Failed):
            raise RunnerError(reply.message[:500])
        return reply, blob


def _import_path() -> list[str]:
    """The judge's import path, absolute, so the runner finds targets and specs as the judge does."""
    return [os.path.abspath(p or os.getcwd()) for p in sys.path]


_WORKER_CPUS: dict[str, list[int]] = {}  # a judge worker's own CPUs (``pin_runners``): "run" and "load"
_LOADS_STARTED = [0]  # runners started so far, to deal the load CPUs round-robin


def pin_runners(cpu: int, load: Sequence[int] = ()) -> None:
    """In a judge worker (``--jobs``): its runners on CUDA work on ``cpu``, not the judge's first CPU, so that
    workers verifying side by side do not all run their candidates on one core; they import on ``load``."""
    _WORKER_CPUS.update(run=[cpu], load=list(load) or [cpu])


def runner_cpus(device: str) -> list[int] | None:
    """The CPUs a runner works on: on CUDA one, the judge's first (a judge worker's own), shared by every
    runner of that judge, so that a function's host-side work (Python, dispatch, launches) runs on the same
    core whichever runner it is in; None (no pinning) on the CPU.  On an H200's host, A-vs-A pairs of a
    launch-bound function with runners on four CPUs were off by up to 40% (SD of pair speedups 6.7% and
    13.9%), on one shared CPU by up to 8.5% (SD 1.2-3.6%; benchmarks/NOTES.md, "Runner pairs on CUDA")."""
    if device != "cuda" or not hasattr(os, "sched_getaffinity"):
        return None
    return _WORKER_CPUS.get("run") or sorted(os.sched_getaffinity(0))[:1]


def load_cpu(device: str) -> list[int] | None:
    """The one CPU a runner starting now imports on (``None`` on the CPU device): on CUDA one of the judge's
    CPUs other than ``runner_cpus``, dealt round-robin, so that the runners imported ahead (the next
    candidate's, spares, the profiler) neither share the timed pair's core nor queue on one; a runner moves
    to ``runner_cpus`` when handed out (``place``; one started only when needed moves at once, and imports
    there while nothing is timed).  One CPU, not several: torch sizes its thread pool to the CPUs a process
    has when it imports (moved to one core later, a pool sized for more spun beside the launching thread:
    the slow loop measured 3x slower)."""
    run = runner_cpus(device)
    if run is None:
        return None
    spare = _WORKER_CPUS.get("load") or [c for c in sorted(os.sched_getaffinity(0)) if c not in run] or run
    _LOADS_STARTED[0] += 1
    return [spare[(_LOADS_STARTED[0] - 1) % len(spare)]]


def place(runner: RunnerProcess) -> None:
    """Move every thread of ``runner`` to the CPUs a runner works on (``runner_cpus``), from the one it
    imported on (``load_cpu``); a no-op where it was started there, or is not pinned."""
    cpus = runner_cpus(runner.device)
    if cpus is None or runner.cpus == cpus:
        return
    runner.cpus = cpus
    if runner.scheduling is not None:
        runner.scheduling = isolation.Scheduling.expected(cpus)
    isolation.move(runner.pid, cpus)


def pin(pids: tuple[int, ...], cpus: list[int] | None) -> None:
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
