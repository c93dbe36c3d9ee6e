"""Process-wide settings that change numerics or speed, read before and after every call in a runner.

A function that leaves one of these changed (a thread count, flush-to-zero, the default dtype, TF32...)
would change every other computation of the program that calls it, so the judge fails it, with a
one-line reason such as ``changed process state: torch.get_num_threads() 2 -> 1``, even when its bytes are
right.  Runs in the runner process (and in-process for local checks).  Reading everything costs tens of
microseconds; it is done outside timed regions.
"""

from __future__ import annotations

from typing import Callable

import torch


def _flushes_denormals() -> bool:
    """torch has no getter for ``set_flush_denormal``: multiply a float32 subnormal and see if it survives."""
    return float(torch.tensor([1.0e-39], dtype=torch.float32).mul(2.0).item()) == 0.0


def _autocast(device: str) -> Callable[[], object]:
    return lambda: (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))


def _cuda_device() -> object:
    return torch.cuda.current_device() if torch.cuda.is_initialized() else "not initialized"


SETTINGS: dict[str, Callable[[], object]] = {
    "torch.get_num_threads()": torch.get_num_threads,
    "torch.get_num_interop_threads()": torch.get_num_interop_threads,
    "flush denormals (torch.set_flush_denormal)": _flushes_denormals,
    "torch.get_default_dtype()": torch.get_default_dtype,
    "torch.is_grad_enabled()": torch.is_grad_enabled,
    "torch.is_inference_mode_enabled()": torch.is_inference_mode_enabled,
    "torch.is_anomaly_enabled()": torch.is_anomaly_enabled,
    "torch.are_deterministic_algorithms_enabled()": torch.are_deterministic_algorithms_enabled,
    "torch.is_deterministic_algorithms_warn_only_enabled()": torch.is_deterministic_algorithms_warn_only_enabled,
    "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision,
    "torch.backends.cuda.matmul.allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
    "torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction":
        lambda: torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
    "torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction":
        lambda: torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
    "torch.backends.cudnn.enabled": lambda: torch.backends.cudnn.enabled,
    "torch.backends.cudnn.benchmark": lambda: torch.backends.cudnn.benchmark,
    "torch.backends.cudnn.deterministic": lambda: torch.backends.cudnn.deterministic,
    "torch.backends.cudnn.allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
    "torch.backends.mkldnn.enabled": lambda: torch.backends.mkldnn.enabled,
    "autocast (cpu)": _autocast("cpu"),
    "autocast (cuda)": _autocast("cuda"),
    "torch.cuda.current_device()": _cuda_device,
}
if hasattr(torch, "get_default_device"):
    SETTINGS["torch.get_default_device()"] = torch.get_default_device


def snapshot() -> dict[str, str]:
    """Every setting as text ("unavailable" where this torch cannot read it)."""
    state = {}
    for name, read in SETTINGS.items():
        try:
            state[name] = str(read())
        except Exception:  # a getter this build lacks: nothing to compare
            state[name] = "unavailable"
    return state


class StateChanged(Exception):
    """A function left a process-wide setting changed."""

    def __init__(self, changes: list[str]) -> None:
        super().__init__("; ".join(changes))
        self.changes = changes


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """``name before -> after`` for each setting that differs."""
    return [f"{name} {before[name]} -> {after.get(name)}" for name in before if after.get(name) != before[name]]
