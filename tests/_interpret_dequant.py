"""Run with TRITON_INTERPRET=1 (tests/test_dequant_candidates.py does): the dequantizer's Triton kernel on CPU
tensors, every case of tests/_dequant_cases.py.

Unlike the quantizer's kernel (tests/_interpret_fused.py), this one uses no conversion instruction: the
e4m3 decoding, the bfloat16 rounding and the NaN test are integer operations and the product one float32
multiply, all of which the interpreter computes as the GPU does.  So the check here is exact: the output's
bits against the oracle's on the CPU (NaN written as torch spells it on the CPU), and the oracle's
exception type where it raises.  CUDA checks the same on the GPU (tests/test_dequant_candidates.py,
benchmarks/dequant_gpu_check.py).
"""

import os
import sys

import torch

import harness  # noqa: F401
from candidates import _dequant_triton as kernel
from candidates._dequant import reference, rows_of
from oracles.kcache_dequant_reference import dequantize_k_cache_slow
from tests._dequant_cases import error_cases, production_rows, value_cases

assert os.environ.get("TRITON_INTERPRET") == "1", "run me with TRITON_INTERPRET=1"


def through_kernel(x, dv, tile, d, **launch):
    """The fused candidate's path with the Triton kernel: the oracle's checks, then the kernel."""
    rows = rows_of(x, dv, tile, d)
    if rows is None:
        return reference(x, dv, tile, d)
    return kernel.dequantize(rows, dv, tile, d, **launch).view(x.shape[0], x.shape[1], 1, d)


def same_bits(got: torch.Tensor, expected: torch.Tensor) -> bool:
    return (got.dtype == expected.dtype and got.shape == expected.shape and got.is_contiguous()
            and torch.equal(got.view(torch.int16), expected.view(torch.int16)))


def main() -> int:
    for case in value_cases():
        x, dv, tile, d = case.build()
        expected = dequantize_k_cache_slow(x, dv, tile, d)
        got = through_kernel(x, dv, tile, d)
        differ = int((got.view(torch.int16) != expected.view(torch.int16)).sum()) if got.shape == expected.shape else -1
        assert same_bits(got, expected), f"{case.name}: {differ} elements differ"
        print(f"ok  {case.name}: bit-identical")
    for case in error_cases():
        x, dv, tile, d = case.build()
        try:
            dequantize_k_cache_slow(x, dv, tile, d)
        except Exception as exc:  # noqa: BLE001
            error = type(exc)
        else:
            raise AssertionError(f"the oracle did not raise on {case.name}")
        try:
            through_kernel(x, dv, tile, d)
        except error:
            print(f"ok  {case.name}: raises {error.__name__}")
        else:
            raise AssertionError(f"no {error.__name__} for {case.name}")
    x = production_rows(5, 7, 3)  # other launch shapes: tokens per program not dividing the tokens, warps
    expected = dequantize_k_cache_slow(x)
    for block_t, warps, tiles, early in ((1, 1, 1, True), (2, 2, 2, False), (4, 4, 4, True), (16, 8, 1, False)):
        got = through_kernel(x, 512, 128, 576, block_t=block_t, num_warps=warps, tiles_per_program=tiles,
                             early_rope=early)
        assert same_bits(got, expected), (block_t, warps, tiles, early)
    print("ok  launch shapes BLOCK_T 1, 2, 4, 16, tiles per program 1, 2, 4, rope early and late: bit-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
