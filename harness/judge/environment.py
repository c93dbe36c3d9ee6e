"""The ``Environment`` a result records: device, versions, the command, the commit and whether the
checkout was clean.  Runs in the judge."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys

import torch

from harness import __version__
from harness.core.machine import device_name, last_level_cache_bytes
from harness.core.result import Environment
from harness.judge import checkout


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
        cache_bytes=last_level_cache_bytes() if device == "cpu" else None,
    )
