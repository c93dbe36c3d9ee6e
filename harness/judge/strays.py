"""Processes a runner leaves behind, found and killed from outside: the judge is a child subreaper, so what
a runner detaches is re-parented to it (or, in a PID namespace, to the runner); when a runner stops, every
process of its session and every such orphan is killed and reaped, until none has been seen for a moment.
Runs in the judge."""

from __future__ import annotations

import os
import signal
import sys
import time

from harness.judge.noise import stat_fields

_LIVE: set[int] = set()  # pids of this judge's runners that are still running (and of the unshare above each)
STRAYS_QUIET_S = 0.05  # strays are hunted until none has been seen for this long ...
STRAYS_DEADLINE_S = 60.0  # ... or for this long in all
_SUBREAPER = False


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
    candidates = _children(runner) | (_children(os.getpid()) - _LIVE - _helpers())
    return any((_stat(p) or ("Z",))[0] != "Z" for p in candidates)  # a killed child may linger as a zombie


def _helpers() -> set[int]:
    """The judge's own helper processes, never strays: its judge workers (``--jobs``) and multiprocessing's
    resource tracker (an orphan a runner leaves is adopted by the judge, but is neither)."""
    import multiprocessing
    from multiprocessing import resource_tracker

    tracker = getattr(getattr(resource_tracker, "_resource_tracker", None), "_pid", None)
    return {p.pid for p in multiprocessing.active_children() if p.pid} | ({tracker} if tracker else set())


def _strays(session: int) -> list[int]:
    """Live processes a runner started: its descendants and the rest of its session (other than the
    runner), and orphans re-parented to the judge that are neither runners nor its helpers (``_helpers``)."""
    me, table, helpers = os.getpid(), _processes(), _helpers()
    found = {session}
    for _ in range(len(table)):  # descendants, however deep (a detached child leaves the session)
        grown = found | {pid for pid, (_, ppid, _, _) in table.items() if ppid in found}
        if grown == found:
            break
        found = grown
    return [pid for pid, (state, ppid, _, sid) in table.items()
            if state != "Z" and pid not in (session, me) and pid not in _LIVE
            and (pid in found or sid == session or (ppid == me and pid not in helpers))]


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
    me, helpers = os.getpid(), _helpers()
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
            orphans = (_children(me) | (_children(runner) if runner else set())) - _LIVE - helpers - {me, session, runner}
            found = [p for p in orphans if (_stat(p) or ("Z",))[0] != "Z"]
            if not found:
                time.sleep(0.001)
    _reap_zombies()
    return len(killed)
