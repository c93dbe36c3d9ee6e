"""Facts about the machine a run judges on: its name, free memory, and the ``Environment`` a result
records.  Runs in the judge (and in each judge worker, which records where it judged)."""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys

import torch

from harness import __version__, checkout
from harness.result import Environment


def environment(device: str, copy_gbps: float | None, threads: int | None = None) -> Environment:
    try:
        import triton  # type: ignore

        triton_version = triton.__version__
    except Exception:
        triton_version = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip() or None
    except Exception:
        commit = None
    status = checkout.git_status()
    return Environment(
        device=device, device_name=device_name(device), python=platform.python_version(), torch=torch.__version__,
        triton=triton_version, platform=platform.platform(), threads=threads or torch.get_num_threads(),
        git_commit=commit, harness_version=__version__,
        command=" ".join(["harness", *map(shlex.quote, sys.argv[1:])]), copy_gbps=copy_gbps,
        git_dirty=None if status is None else bool(status),
    )


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cuda (not on this machine)"
    return _cpu_name() or platform.machine()


def where_judged(device: str) -> str:
    """The host and device a candidate was judged on, as the result records it."""
    return f"{socket.gethostname()}: {device_name(device)}"


def available_memory(device: str) -> int | None:
    """Bytes free for new allocations on ``device`` (None where it cannot be read)."""
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cpu_name() -> str | None:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return None
