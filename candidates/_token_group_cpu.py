"""The per-token-group quantizer's CPU kernel: ``_token_group_cpu.c`` compiled on first use (``_cbuild``) and
called through ctypes.  ``load()`` is None where no compiler is available; the candidate then falls back to
its vectorised torch pass."""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from candidates import _cbuild

SOURCE = Path(__file__).with_name("_token_group_cpu.c")
FUNCTIONS = {torch.bfloat16: "token_groups_bf16", torch.float16: "token_groups_f16", torch.float32: "token_groups_f32"}


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL | None:
    i64, ptr = _cbuild.I64, _cbuild.PTR
    return _cbuild.load_kernels(SOURCE, "per-token-group CPU kernel",
                                {name: [ptr, i64, i64, i64, ptr, ptr, ctypes.c_float, ctypes.c_int]
                                 for name in FUNCTIONS.values()})


def supports(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in FUNCTIONS and load() is not None


def quantize(x: torch.Tensor, group_size: int, eps: float, codes: torch.Tensor, scales: torch.Tensor) -> None:
    """Fill ``codes`` and ``scales`` (contiguous, the oracle's shapes) for the contiguous ``x``."""
    hidden = x.shape[-1]
    tokens = x.numel() // hidden if hidden else 0
    if tokens and hidden:
        kernel = getattr(load(), FUNCTIONS[x.dtype])
        args = (x.data_ptr(), tokens, hidden, group_size, codes.data_ptr(), scales.data_ptr(), eps,
                torch.get_num_threads())
        if torch.autograd._profiler_enabled():  # name the C kernel in profiles
            with torch.profiler.record_function(f"_token_group_cpu.c::{FUNCTIONS[x.dtype]}"):
                kernel(*args)
        else:
            kernel(*args)
