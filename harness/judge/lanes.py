"""Who may use the device when several candidates are judged at once (``--jobs``).  Runs in each judge
worker; the locks are files in the run's temporary folder, so they hold across processes.

Verification of different candidates runs concurrently; timing does not.  A worker that times (or
profiles) a candidate holds the device's timing lane alone: it waits until no worker is in the middle of a
verification step, and none starts one until it is done — on the CPU nothing else of the run works while a
candidate is timed, on a GPU no other candidate is.  Verification steps (a case, loading a runner) hold
the lane shared.  A turnstile lock keeps a waiting timer from being starved by a stream of short steps.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class Lanes:
    def __init__(self, folder: str | Path, device: str) -> None:
        folder, name = Path(folder), re.sub(r"[^A-Za-z0-9_.-]", "_", device)  # a GPU's name may hold "/" (MIG)
        self._gate = os.open(folder / f"{name}.gate", os.O_RDWR | os.O_CREAT, 0o600)
        self._lane = os.open(folder / f"{name}.lane", os.O_RDWR | os.O_CREAT, 0o600)
        self._timing = False  # this worker holds the lane alone: its own verification steps need nothing more
        self.blocked_s = 0.0  # seconds this worker has waited for the locks, all told (``task.Stopwatch``)

    def _lock(self, fd: int, how: int) -> None:
        start = time.perf_counter()
        fcntl.flock(fd, how)
        self.blocked_s += time.perf_counter() - start

    @contextmanager
    def timing(self) -> Iterator[None]:
        """The device alone: every other worker's verification step finished, none starting."""
        self._lock(self._gate, fcntl.LOCK_EX)  # no new step starts anywhere
        try:
            self._lock(self._lane, fcntl.LOCK_EX)  # the steps in flight are done
            self._timing = True
            try:
                yield
            finally:
                self._timing = False
                fcntl.flock(self._lane, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)

    @contextmanager
    def work(self) -> Iterator[None]:
        """One verification step, alongside other workers' steps; it waits while anyone times."""
        if self._timing:
            yield
            return
        self._lock(self._gate, fcntl.LOCK_EX)  # the turnstile: blocked while a timer waits or times
        fcntl.flock(self._gate, fcntl.LOCK_UN)
        self._lock(self._lane, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self._lane, fcntl.LOCK_UN)

    def close(self) -> None:
        for fd in (self._gate, self._lane):
            os.close(fd)
