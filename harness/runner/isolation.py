"""What keeps one runner from reaching another: namespaces, a hardened runner, and scheduling state that the
judge reads and restores from outside.  Runs in the judge, except ``harden_runner``, which each runner calls
first thing (``harness.runner.serve.main``), before it has read its spec.

This module owns:
- **the probe** (``available``/``describe``): once per judge process, whether ``unshare --user
  --map-root-user --pid --fork --mount-proc --kill-child`` starts a process as PID 1 of a fresh PID
  namespace (a failed probe costs one short-lived process and prints nothing); ``describe()`` says, for
  the report, which isolation the runners got;
- **the wrapper** (``wrap``, ``runner_pid``): the runner's argv behind that prefix (and behind
  ``setpriv --pdeathsig KILL`` where it exists, so unshare, and with it the runner, dies with the judge as
  the runner itself does), and the runner's pid as the judge sees it (``Popen.pid`` is unshare's; the runner
  is its only child);
- **the runner's hardening** (``harden_runner``): not dumpable (``PR_SET_DUMPABLE`` 0: a process of the
  same user can neither ptrace it nor read its memory, and its ``/proc/PID`` files belong to root), no new
  privileges, and every capability dropped (in its namespace a runner is root; without this it could
  unmount its fresh ``/proc`` and see the machine's);
- **scheduling state** (``Scheduling``, ``audit``): every thread's CPU affinity, nice value and scheduling
  policy, read by the judge with syscalls on the thread ids under ``/proc/PID/task`` (never from the
  runner's own report), compared with what the judge set when it started the runner, and put back.
  ``sandbox.Runner.round`` restores every live runner before each timed round and checks them all after it.

What is protected.  In its own PID namespace a runner sees no other process in ``/proc`` and can name none
in a syscall: it cannot pin, renice, signal, ptrace or read another runner or the judge, and every process
it starts dies with it (the kernel kills a PID namespace with its first process).  Without namespaces
(``describe()`` says "none: ..."), a runner can still find its siblings' pids and change their scheduling
(``sched_setaffinity``, ``setpriority``; no root needed): a change made while the others are stopped, during
its own timed round, is caught and fails it; one made at another time is put back before the next round
(and counted), unless the judge lacks the right to (an unprivileged judge cannot lower a nice value another
process raised: then the round is refused).  Not dumpable, it still cannot be ptraced or read by them.

What is not.  The runner still runs as your user: it can read and write whatever you can (files outside
the checkout, ``/sys``, ``/dev/shm``), and other processes of your user outside the judge can reach it
(through ``/proc`` of the machine).  As real root a process can do anything, including leave its
namespaces' reach; run untrusted code in a throwaway machine (README, "What it does").  Scheduling is
checked per thread: affinity, nice and policy, not cgroups, autogroup nice (a runner's ``/proc/PID/autogroup``
belongs to root once it is not dumpable), real-time priorities or I/O priority.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Iterable

NAMESPACES = ("--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--kill-child")
ISOLATED = "own PID, user and mount namespaces"
_PROBED: tuple[list[str] | None, str] | None = None  # (argv prefix, or None and the reason) once probed


def _probe() -> tuple[list[str] | None, str]:
    """The prefix that starts a process as PID 1 of new namespaces here, or None and why not (one line)."""
    if not sys.platform.startswith("linux"):
        return None, f"not Linux ({sys.platform})"
    if os.environ.get("HARNESS_NO_NAMESPACES"):
        return None, "turned off by HARNESS_NO_NAMESPACES"
    import shutil
    import subprocess

    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "no unshare command (util-linux)"
    setpriv = shutil.which("setpriv")
    prefixes = ([[setpriv, "--pdeathsig", "KILL", unshare, *NAMESPACES]] if setpriv else []) + [[unshare, *NAMESPACES]]
    reason = ""
    for prefix in prefixes:
        try:
            done = subprocess.run([*prefix, sys.executable, "-S", "-c", "import os; print(os.getpid())"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            reason = f"unshare could not run ({type(exc).__name__})"
            continue
        if done.returncode == 0 and done.stdout.strip() == b"1":
            return prefix, ""
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = f"unshare refused ({' '.join(said[-1].split())[:160] if said else f'exit code {done.returncode}'})"
    return None, reason


def _probed() -> tuple[list[str] | None, str]:
    global _PROBED
    if _PROBED is None:
        _PROBED = _probe()
    return _PROBED


def available() -> bool:
    """Whether runners start in namespaces of their own (probed once per judge process)."""
    return _probed()[0] is not None


def describe() -> str:
    """The isolation runners get, for the report: "own PID, user and mount namespaces", or "none: why"."""
    prefix, reason = _probed()
    if prefix is None:
        return f"none: {reason}"
    from harness.runner import readonly

    view = readonly.describe()
    return f"{ISOLATED}; {view}" if view else ISOLATED


def wrap(argv: list[str]) -> list[str]:
    """``argv`` started in namespaces of its own where they are available, else unchanged."""
    prefix = _probed()[0]
    return [*prefix, *argv] if prefix is not None else list(argv)


def runner_pid(process: Any, wrapped: bool) -> int:
    """The runner's pid as the judge sees it: ``process.pid`` unless ``wrapped``; then unshare's child, which
    it forks at once (waited for as long as unshare lives: it never takes long; if unshare is gone, its pid)."""
    if not wrapped:
        return process.pid
    pause = 0.0002
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/task/{process.pid}/children", encoding="ascii") as handle:
                found = handle.read().split()
        except OSError:
            found = []
        if found:
            return int(found[0])
        import time

        time.sleep(pause)
        pause = min(pause * 2, 0.01)
    return process.pid


# -- in the runner -----------------------------------------------------------------------------------------
def harden_runner() -> None:
    """Called by a runner before it loads anything: not dumpable, no new privileges, no capabilities (best
    effort; each step that this kernel refuses is skipped)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except Exception:
        return
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    if not _has_capabilities():
        return
    from harness.runner import readonly

    why = readonly.apply()  # while it may still mount: the judge checks the result from outside
    if why is not None:
        print(f"harness runner: no read-only view: {why}", file=sys.stderr)
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap", encoding="ascii").read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: an exec cannot bring them back
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    libc.capset(header, (ctypes.c_uint32 * 6)())  # effective, permitted, inheritable: none


def _has_capabilities() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            return any(line.startswith(("CapEff:", "CapPrm:")) and int(line.split()[1], 16)
                       for line in handle)
    except (OSError, ValueError, IndexError):
        return False


# -- scheduling state, read and restored by the judge ------------------------------------------------------
POLICIES = {getattr(os, name): name for name in ("SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE", "SCHED_FIFO", "SCHED_RR")
            if hasattr(os, name)}


@dataclass(frozen=True)
class Scheduling:
    """One thread's scheduling state: the CPUs it may run on, its nice value and its policy."""
    cpus: frozenset[int]
    nice: int
    policy: int

    @classmethod
    def expected(cls, cpus: Iterable[int] | None = None) -> "Scheduling":
        """What a runner the judge starts now gets: ``cpus`` (its pinning) or the judge's CPUs, the judge's
        nice value and policy (SCHED_OTHER unless the judge was started under another)."""
        return cls(frozenset(cpus if cpus else os.sched_getaffinity(0)), os.getpriority(os.PRIO_PROCESS, 0),
                   os.sched_getscheduler(0))


def supported() -> bool:
    return all(hasattr(os, f) for f in ("sched_getaffinity", "sched_getscheduler", "getpriority")) and \
        os.path.isdir("/proc/self/task")


def _read(tid: int) -> Scheduling | None:
    try:
        return Scheduling(frozenset(os.sched_getaffinity(tid)), os.getpriority(os.PRIO_PROCESS, tid),
                          os.sched_getscheduler(tid))
    except OSError:  # the thread is gone
        return None


def _restore(tid: int, found: Scheduling, want: Scheduling) -> None:
    try:
        if found.cpus != want.cpus:
            os.sched_setaffinity(tid, want.cpus)
        if found.policy != want.policy:
            os.sched_setscheduler(tid, want.policy, os.sched_param(0))
        if found.nice != want.nice:
            os.setpriority(os.PRIO_PROCESS, tid, want.nice)
    except OSError:  # gone, or the judge may not (an unprivileged judge cannot lower a nice value)
        pass


def move(pid: int, cpus: Iterable[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (threads it starts later inherit that)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except (OSError, ValueError):
        return
    for tid in tids:
        try:
            os.sched_setaffinity(tid, set(cpus))
        except OSError:  # gone
            pass


def _cpus(cpus: frozenset[int]) -> str:
    return "{" + ",".join(str(c) for c in sorted(cpus)) + "}"


@dataclass(frozen=True)
class Audit:
    """A runner's threads against what they should be: ``changed`` the (setting, value) pairs found other than
    expected, ``restored`` how many threads were put back, ``stuck`` the pairs still wrong after that."""
    changed: frozenset[tuple[str, str]] = frozenset()
    restored: int = 0
    stuck: frozenset[tuple[str, str]] = frozenset()


def _differences(found: Scheduling, want: Scheduling) -> set[tuple[str, str]]:
    out = set()
    if found.cpus != want.cpus:
        out.add(("CPU affinity", _cpus(found.cpus)))
    if found.nice != want.nice:
        out.add(("nice", str(found.nice)))
    if found.policy != want.policy:
        out.add(("scheduling policy", POLICIES.get(found.policy, str(found.policy))))
    return out


def audit(pid: int, want: Scheduling, restore: bool = False) -> Audit:
    """Every thread of ``pid`` against ``want``; with ``restore``, each that differs is put back (and read
    again).  Threads the runner starts inherit its state, so a new thread that differs was started by a
    thread that did; a process that is gone has nothing to audit."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except (OSError, ValueError):
        return Audit()
    changed: set[tuple[str, str]] = set()
    stuck: set[tuple[str, str]] = set()
    restored = 0
    for tid in tids:
        found = _read(tid)
        if found is None or found == want:
            continue
        diff = _differences(found, want)
        changed |= diff
        if restore:
            _restore(tid, found, want)
            again = _read(tid)
            left = _differences(again, want) if again is not None else set()
            stuck |= left
            restored += not left
    return Audit(frozenset(changed), restored, frozenset(stuck))


def words(changes: Iterable[tuple[str, str]], want: Scheduling) -> str:
    """'CPU affinity of its threads {0,1} -> {0}' (and so on for nice and policy), one clause per setting."""
    expected = {"CPU affinity": _cpus(want.cpus), "nice": str(want.nice),
                "scheduling policy": POLICIES.get(want.policy, str(want.policy))}
    by_setting: dict[str, list[str]] = {}
    for setting, value in sorted(changes):
        by_setting.setdefault(setting, []).append(value)
    return "; ".join(f"{setting} of its threads {expected[setting]} -> {' / '.join(values)}"
                     for setting, values in by_setting.items())
