"""The fused quantizer's CPU kernel: ``_fused_cpu.c`` compiled on first use with the system C compiler
(no Python build dependency) and called through ctypes.  ``load()`` returns None where no compiler is
available; the fused candidate then falls back to its vectorised torch pass and says so once.

Compiling, caching and loading are ``candidates/_cbuild.py``'s: the shared library is cached per source and
compiler flags in ``$HARNESS_CACHE`` (default ``~/.cache/harness``) and written atomically, so concurrent
first uses cannot see half a file.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from candidates import _cbuild
from candidates._kernels import prepare, saturates

SOURCE = Path(__file__).with_name("_fused_cpu.c")
FUNCTIONS = {torch.bfloat16: "quantize_bf16", torch.float16: "quantize_f16", torch.float32: "quantize_f32"}


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL | None:
    i64, ptr, c_int = _cbuild.I64, _cbuild.PTR, ctypes.c_int
    kernel = [ptr, i64, i64, i64, ptr, i64, i64, i64, i64, c_int, c_int, c_int]
    return _cbuild.load_kernels(SOURCE, "fused CPU kernel", {**{name: kernel for name in FUNCTIONS.values()},
                                                             "e4m3_from_floats": [ptr, ptr, i64, c_int, c_int]})


def supports(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in FUNCTIONS and load() is not None


def quantize(input_k_cache: torch.Tensor, dv: int, tile_size: int) -> torch.Tensor:
    """The quantizer's contract (same preconditions and errors as the oracle), computed in one pass."""
    prep = prepare(input_k_cache, dv, tile_size)
    x = prep.rows
    if x.shape[0]:
        kernel = getattr(load(), FUNCTIONS[x.dtype])
        args = (x.data_ptr(), x.shape[0], x.stride(0), x.stride(1), prep.out.data_ptr(), prep.width, dv, tile_size,
                x.shape[1] - dv, *saturates("cpu"), torch.get_num_threads())
        if torch.autograd._profiler_enabled():  # name the C kernel in profiles; free when none is running
            with torch.profiler.record_function(f"_fused_cpu.c::{FUNCTIONS[x.dtype]}"):
                kernel(*args)
        else:
            kernel(*args)
    return prep.result()


def e4m3_from_floats(values: torch.Tensor, saturation: tuple[int, int] | None = None) -> torch.Tensor:
    """The kernel's float32 -> e4m3fn conversion alone (for tests against torch's), with torch's CPU
    saturation flags or the given (finite overflow saturates, infinity saturates)."""
    values = values.contiguous().float()
    out = torch.empty(values.shape, dtype=torch.uint8)
    flags = saturates("cpu") if saturation is None else saturation
    load().e4m3_from_floats(values.data_ptr(), out.data_ptr(), values.numel(), *flags)
    return out
