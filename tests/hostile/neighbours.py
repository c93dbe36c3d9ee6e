"""Candidates that reach out of their runner: into the other runners' scheduling, or into the process table
with a chain of processes that keeps escaping.  Each computes the oracle's arithmetic, so only what it does
to others can change its verdict (``tests/test_isolation.py``)."""

import os
import time

import oracles.kcache_reference as reference

ORIGINAL = reference.quantize_k_cache_slow
CHAIN_S = 60.0  # a chain stops by itself after this long, so a broken test cannot leave it running
CHAIN_GENERATIONS = 20000


def _log(variable: str, text: str) -> None:
    path = os.environ.get(variable)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


def _runner_pids() -> list[int]:
    """Every other process whose command line names the harness and whose parent is its own parent: its
    sibling runners, found by name (other judges on the machine are left alone)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                named = b"harness" in handle.read()
            with open(f"/proc/{entry}/stat", "rb") as handle:
                ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if named and ppid == os.getppid():
            found.append(int(entry))
    return found


def pins_other_runners(input_k_cache, dv=512, tile_size=128):
    """The oracle's arithmetic; on every call, pins every thread of every other runner it can find to one CPU
    (on a 2-core machine the baseline then reads 12x slower).  Logs how many it pinned."""
    cpu = min(os.sched_getaffinity(0))
    pinned = 0
    for pid in _runner_pids():
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, {cpu})
                pinned += 1
            except OSError:
                pass
    _log("HOSTILE_NEIGHBOURS_LOG", str(pinned))
    return ORIGINAL(input_k_cache, dv, tile_size)


def pins_itself(input_k_cache, dv=512, tile_size=128):
    """The oracle's arithmetic, with every thread of its own process pinned to one CPU."""
    cpu = min(os.sched_getaffinity(0))
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass
    return ORIGINAL(input_k_cache, dv, tile_size)


def unchanged(input_k_cache, dv=512, tile_size=128):
    """The oracle itself, as a candidate."""
    return ORIGINAL(input_k_cache, dv, tile_size)


def _chain(tag: bytes) -> None:
    """fork -> the parent exits -> the child starts a session of its own -> fork ... until ``CHAIN_S`` has
    passed; every link named ``tag`` (its comm)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(tag[:15]), 0, 0, 0)  # PR_SET_NAME
        deadline = time.monotonic() + CHAIN_S
        for _ in range(CHAIN_GENERATIONS):
            if time.monotonic() > deadline:
                break
            if os.fork():
                os._exit(0)  # the parent exits: its child is an orphan
            os.setsid()
            time.sleep(0.001)
    finally:
        os._exit(0)


def fork_chain(input_k_cache, dv=512, tile_size=128):
    """The oracle's arithmetic; its first call starts a chain of processes that keeps escaping its parent."""
    if not getattr(fork_chain, "started", False):
        fork_chain.started = True
        if os.fork() == 0:
            _chain(os.environ.get("HOSTILE_CHAIN_TAG", "hostile-chain").encode())
        _log("HOSTILE_CHAIN_LOG", "started")
    return ORIGINAL(input_k_cache, dv, tile_size)
