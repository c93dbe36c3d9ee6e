"""Facts about this machine, read where they are needed (the judge, a judge worker, a runner): the device's
name, free memory, the last-level cache, the host a candidate was judged on."""

from __future__ import annotations

import os
import platform
import socket

import torch



def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cuda (not on this machine)"
    return _cpu_name() or platform.machine()


def where_judged(device: str) -> str:
    """The host and device a candidate was judged on, as the result records it."""
    return f"{socket.gethostname()}: {device_name(device)}"


def visible_gpus(device: str) -> list[str]:
    """The GPUs this judge may give its workers, as ``CUDA_VISIBLE_DEVICES`` names them."""
    if device != "cuda":
        return []
    named = os.environ.get("CUDA_VISIBLE_DEVICES")
    if named is not None:
        return [g.strip() for g in named.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


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


def effective_cache(reported: int | None, measured: int | None,
                    half_at_memory_speed: bool = False) -> tuple[int | None, str]:
    """The CPU cache the bench sizes inputs against, and where that figure comes from: the reported size
    (sysfs), unless copies contradict it — a working set of half the reported size copies at memory speed
    (a virtual machine may report its host's whole cache: 480 MiB on a 2-core Intel Xeon VM whose copies
    slow down beyond 64 MiB), or copies slow to memory speed at under an eighth of it — then the copies'
    figure.  (A busy machine's copies read the knee up to four times too small, so the knee alone must be
    far off to overrule a report; a cached copy does not drop to memory speed under load.)"""
    if reported and measured and (half_at_memory_speed or measured * 8 <= reported):
        return measured, f"the system reports {reported >> 20} MiB, but copies slow down beyond {measured >> 20} MiB"
    if reported:
        return reported, "as the system reports it" + (f"; copies agree, fast up to {measured >> 20} MiB" if measured else "")
    return measured, "measured by copies (the system reports none)" if measured else "unknown"


def last_level_cache_bytes() -> int | None:
    """The largest CPU cache's size (Linux sysfs), or None where it cannot be read."""
    sizes = []
    for path in sorted(os.listdir("/sys/devices/system/cpu/cpu0/cache")) if os.path.isdir(
            "/sys/devices/system/cpu/cpu0/cache") else []:
        try:
            text = open(f"/sys/devices/system/cpu/cpu0/cache/{path}/size", encoding="ascii").read().strip()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        if text[:-1].isdigit() and text[-1] in units:
            sizes.append(int(text[:-1]) * units[text[-1]])
        elif text.isdigit():
            sizes.append(int(text))
    return max(sizes, default=None)
