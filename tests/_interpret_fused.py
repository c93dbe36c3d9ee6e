"""Run with TRITON_INTERPRET=1 (tests/test_fused_triton.py does): the Triton kernel on CPU tensors.

The interpreter's float32 -> e4m3 conversion rounds differently from the GPU (codes off by up to one
exponent step, 8 codes), so here the fp8 codes are checked loosely (same NaN positions, within 8 codes of the
conversion of the kernel's own x / scale); the rope bytes exactly; the scales exactly against a CPU
emulation of what torch computes on CUDA (scale = round_to_dtype(amax * float32(1/448))) for float16 and
float32 input.  For bfloat16 the interpreter truncates float32 -> bfloat16 whatever rounding mode the kernel
asks for (its cast ignores it), so a bf16 scale must be the round-to-nearest-even value or the truncated one.  Bit-exactness of the codes is checked on the GPU
(tests/test_cuda.py, benchmarks/gpu_check.py).
"""

import os
import sys

import torch
import triton
import triton.language as tl

import harness  # noqa: F401
from candidates import _fused_triton as kernel
from oracles.kcache_reference import KCacheLayout
from oracles._kcache_cases import build_input, params

assert os.environ.get("TRITON_INTERPRET") == "1", "run me with TRITON_INTERPRET=1"
INV_448 = torch.tensor(1.0 / 448.0, dtype=torch.float32)


def cuda_semantics_scales(x: torch.Tensor, dv: int, tile: int) -> torch.Tensor:
    tiles = x.reshape(-1, x.shape[-1])[:, :dv].unflatten(-1, (dv // tile, tile))
    amax = tiles.abs().amax(-1).float()
    return (amax * INV_448).to(x.dtype).float()


def truncated_bf16_scales(x: torch.Tensor, dv: int, tile: int) -> torch.Tensor:
    tiles = x.reshape(-1, x.shape[-1])[:, :dv].unflatten(-1, (dv // tile, tile))
    product = tiles.abs().amax(-1).float() * INV_448
    return (product.view(torch.int32) & ~0xFFFF).view(torch.float32)


def ordered(codes: torch.Tensor) -> torch.Tensor:
    magnitude = (codes & 0x7F).to(torch.int32)
    return torch.where(codes >= 0x80, -magnitude, magnitude)


def check(p: dict, variant: str | None) -> str:
    x = build_input(p, seed=3, device="cpu")
    dv, tile = p["dv"], p["tile_size"]
    out = kernel.quantize(x, dv, tile, variant=variant)
    layout = KCacheLayout.of(x, dv, tile)
    assert out.shape == (p["num_blocks"], p["block_size"], 1, layout.width), out.shape
    codes, scales, rope = layout.split(out)
    expected_scales = cuda_semantics_scales(x, dv, tile)
    same = (scales.view(torch.int32) == expected_scales.view(torch.int32)) | (scales.isnan() & expected_scales.isnan())
    if x.dtype == torch.bfloat16:  # the interpreter truncates: accept that value too
        same |= scales.view(torch.int32) == (truncated_bf16_scales(x, dv, tile).view(torch.int32))
    assert bool(same.all()), f"scales differ at {(~same).nonzero()[:3].tolist()}"
    expected_rope = x.reshape(-1, x.shape[-1])[:, dv:].contiguous().view(torch.uint8)
    assert torch.equal(rope, expected_rope), "rope bytes differ"
    q = (x.reshape(-1, x.shape[-1])[:, :dv].float().unflatten(-1, (dv // tile, tile))
         / scales.unsqueeze(-1)).flatten(-2).to(torch.float8_e4m3fn).view(torch.uint8)
    nan_k, nan_e = (codes & 0x7F) == 0x7F, (q & 0x7F) == 0x7F
    assert torch.equal(nan_k, nan_e), "NaN codes at different places"
    finite = ~nan_k & ~nan_e
    worst = int((ordered(codes) - ordered(q)).abs()[finite].max()) if bool(finite.any()) else 0
    assert worst <= 8, f"codes more than one exponent step apart ({worst})"
    return f"ok  {variant or 'auto':5s} {p}  max code distance {worst}"


CASES = [
    params(3, 5, 576, 512, 128, "bfloat16"),
    params(3, 5, 576, 512, 128, "float16", "mixed"),
    params(2, 4, 576, 512, 128, "float32", "negative_max"),
    params(2, 3, 576, 512, 128, "bfloat16", "zero_tiles"),
    params(2, 3, 576, 512, 128, "bfloat16", "nonfinite"),
    params(3, 4, 576, 512, 128, "bfloat16", layout="sliced"),
    params(3, 4, 576, 512, 128, "bfloat16", layout="transposed"),
    params(3, 4, 576, 512, 128, "float32", layout="expanded"),
    params(2, 3, 300, 256, 64, "float32"),
    params(2, 3, 128, 128, 128, "bfloat16"),  # no rope
    params(2, 3, 230, 200, 40, "bfloat16"),  # tiling that is not a power of two: the tile-loop kernel
    params(1, 7, 100, 60, 20, "float16", "huge"),
]


@triton.jit
def _convert(q_ptr, out_ptr, N: tl.constexpr, SAT_FINITE: tl.constexpr, SAT_INF: tl.constexpr):
    offsets = tl.arange(0, N)
    tl.store(out_ptr + offsets, kernel._as_torch_e4m3(tl.load(q_ptr + offsets), SAT_FINITE, SAT_INF))


def check_saturation_modes() -> str:
    """Each mode gives the NaN code wherever torch would; where torch saturates, the code comes from the
    conversion instruction, which the interpreter does not reproduce (it gives NaN), so those entries are
    checked on the GPU only."""
    q = torch.tensor([470.0, -470.0, float("inf"), -float("inf"), float("nan"), 1.0, 400.0, -3.0])  # no 464 tie:
    # the interpreter rounds that one up to a NaN code where the GPU rounds it to even (448)
    nan_where = {(0, 0): [1, 1, 1, 1, 1, 0, 0, 0], (1, 0): [0, 0, 1, 1, 1, 0, 0, 0],
                 (0, 1): [1, 1, 0, 0, 1, 0, 0, 0], (1, 1): [0, 0, 0, 0, 1, 0, 0, 0]}
    for (finite, inf), expected in nan_where.items():
        out = torch.empty(8, dtype=torch.uint8)
        _convert[(1,)](q, out, N=8, SAT_FINITE=finite, SAT_INF=inf)
        is_nan = [int((c & 0x7F) == 0x7F) for c in out.tolist()]
        assert all(got for got, want in zip(is_nan, expected) if want), (finite, inf, out.tolist())
        assert not any(is_nan[5:]), (finite, inf, out.tolist())  # in-range values are not touched
        assert out[1] & 0x80 and out[3] & 0x80 and not out[0] & 0x80, "signs kept"
    return "ok  saturation modes (0,0) (1,0) (0,1) (1,1): NaN codes where torch gives them"


def main() -> int:
    print(check_saturation_modes())
    for p in CASES:
        variants = [None, "tiles"] if p["tile_size"] & (p["tile_size"] - 1) == 0 else [None]
        for variant in variants:
            print(check(p, variant))
    for bad, error in ((params(1, 1, 128, 128, 60), AssertionError), (params(1, 1, 128, 128, 64, h_k=2), AssertionError),
                       (params(1, 2, 138, 130, 65), RuntimeError)):
        try:
            kernel.quantize(build_input(bad, 0, "cpu"), bad["dv"], bad["tile_size"])
        except error:
            print(f"ok  raises {error.__name__} for {bad}")
        else:
            raise AssertionError(f"no {error.__name__} for {bad}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
