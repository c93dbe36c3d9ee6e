"""The fused dequantizer's CPU kernel: ``_dequant_cpu.c`` compiled on first use with the system C compiler
and called through ctypes (compiling, caching and loading: ``candidates/_cbuild.py``).  ``load()`` returns
None where no compiler is available; the fused candidate then falls back to the vectorised torch pass and
says so once."""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from candidates import _cbuild
from candidates._dequant import Rows, oracle_nan_bits

SOURCE = Path(__file__).with_name("_dequant_cpu.c")


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL | None:
    i64, ptr = _cbuild.I64, _cbuild.PTR
    return _cbuild.load_kernels(SOURCE, "fused CPU dequantizer kernel",
                                {"dequantize": [ptr, i64, i64, i64, i64, ptr, i64, i64, i64, ctypes.c_uint16, ctypes.c_int]})


def supports(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and load() is not None


def dequantize(rows: Rows, dv: int, tile_size: int, d: int) -> torch.Tensor:
    """A fresh ``(num_blocks, block_size, d)`` bfloat16 tensor filled from the checked ``rows``."""
    result = rows.empty_result(d)
    if result.numel():
        nan = oracle_nan_bits("cpu", tile_size, rows.num_blocks * rows.block_size)
        args = [rows.data.data_ptr(), rows.num_blocks, rows.block_size, rows.block_stride, rows.token_stride,
                result.data_ptr(), d, dv, tile_size, nan, torch.get_num_threads()]
        kernel = load().dequantize
        if torch.autograd._profiler_enabled():  # name the C kernel in profiles; free when none is running
            with torch.profiler.record_function("_dequant_cpu.c::dequantize"):
                kernel(*args)
        else:
            kernel(*args)
    return result
