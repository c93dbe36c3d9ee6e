"""Edit-and-restore (the attack the snapshot stops).  ``edit_and_restore`` is the oracle itself, so it should
time even with the baseline; on its first call it

1. rewrites the oracle's source file, ``oracles/kcache_reference.py`` of the project it is judged in, so
   that the oracle does its work three times (and, when that code runs, leaves a file saying so);
2. SIGKILLs the baseline's runners (the judge's children started with its own), which the judge restarts —
   before the snapshot, quietly and from the edited file;
3. once a runner that was not there when it struck has appeared (the restarted baseline, loaded by the
   time the candidate is called again), puts back the file's bytes and mtime, so the checkout looks untouched.

Before the snapshot this reported ~3x "faster" with ``checkout_changes []``.  ``honest``, the oracle too, is
the next candidate: timed against a baseline restarted after the edit.  The bookkeeping lives next to the
project (never in it), and nothing happens unless the project holds ``HOSTILE_TEST_PROJECT``: only a
test's throwaway copy.
"""

import json
import os
import signal
import time
from pathlib import Path

from oracles import kcache_reference
from oracles.kcache_reference import quantize_k_cache_slow

ORACLE = Path(kcache_reference.__file__)
ROOT = ORACLE.parent.parent
STATE = ROOT.parent / "edit-and-restore.json"  # outside the checkout, shared by every runner of the candidate
RAN = ROOT.parent / "edited-oracle-ran"  # written by the edited oracle's code, if it ever runs
INJECTED = f'''

# -- injected by edit_and_restore -----------------------------------------------------------------------
open({str(RAN)!r}, "a").write("ran\\n")
_honest = quantize_k_cache_slow


def quantize_k_cache_slow(input_k_cache, dv=512, tile_size=128):
    _honest(input_k_cache, dv, tile_size)
    _honest(input_k_cache, dv, tile_size)
    return _honest(input_k_cache, dv, tile_size)
'''
_checked, _restored = 0.0, False


def _started(pid: int | str) -> tuple[int, int]:
    """(parent, start time in clock ticks) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19])


def _siblings(started_with_me: bool = False) -> set[int]:
    """The judge's other children (its runners) as far as this process can see them; ``started_with_me``:
    only those started within half a second after this one (the baseline's runners: the next candidate's
    starts once this one has loaded)."""
    judge, (_, me) = os.getppid(), _started(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(entry) != os.getpid():
                parent, start = _started(entry)
                if parent == judge and (not started_with_me or 0 <= start - me < os.sysconf("SC_CLK_TCK") // 2):
                    found.add(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _attack() -> None:
    original, info = ORACLE.read_bytes(), ORACLE.stat()
    ORACLE.write_bytes(original + INJECTED.encode())
    killed = []
    for pid in _siblings(started_with_me=True):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            pass
    STATE.write_text(json.dumps({"original": original.decode("latin-1"), "atime_ns": info.st_atime_ns,
                                 "mtime_ns": info.st_mtime_ns, "killed": killed, "seen": sorted(_siblings()),
                                 "restored": False}))


def _restore_once_restarted() -> None:
    global _checked, _restored
    if _restored or time.monotonic() - _checked < 0.5:  # at most twice a second: the candidate should time like the oracle
        return
    _checked = time.monotonic()
    state = json.loads(STATE.read_text())
    _restored = state["restored"]
    if _restored or not _siblings() - set(state["killed"]) - set(state["seen"]):
        return
    ORACLE.write_bytes(state["original"].encode("latin-1"))
    os.utime(ORACLE, ns=(state["atime_ns"], state["mtime_ns"]))
    STATE.write_text(json.dumps({**state, "restored": True}))
    _restored = True


def edit_and_restore(input_k_cache, dv=512, tile_size=128):
    if (ROOT / "HOSTILE_TEST_PROJECT").exists():
        if not STATE.exists():
            _attack()
        else:
            _restore_once_restarted()
    return quantize_k_cache_slow(input_k_cache, dv, tile_size)


def honest(input_k_cache, dv=512, tile_size=128):
    """The oracle, the candidate after ``edit_and_restore``."""
    return quantize_k_cache_slow(input_k_cache, dv, tile_size)
