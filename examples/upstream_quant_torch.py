"""The arithmetic of ``upstream_quant_triton.py`` in plain torch ops, so the harness's diagnosis of an
upstream-style quantizer (float32 scales, reciprocal multiply, clamp) can be tested on a machine without a
GPU.  It mirrors the Triton kernel operation for operation and agrees with it bit for bit
(``check_twin.py``); that module's docstring lists how both differ from the oracle.

Each step is written so its rounding and NaN behaviour are those of the kernel's step, not whatever a
shorter torch spelling would do: tensor / tensor is IEEE division on CPU and CUDA (a Python scalar divisor
may become a multiply by its reciprocal), and the clamp is two ``torch.where`` (``torch.clamp`` would keep
the NaN that the kernel's comparisons turn into +448).
"""

from __future__ import annotations

import torch

from harness.core.candidates import candidate

FP8 = torch.float8_e4m3fn
D, DV, TILE = 576, 512, 128
ROW_BYTES = DV + 4 * (DV // TILE) + 2 * (D - DV)  # 656


@candidate(target="quantize_k_cache",
           supports={"dtype": ("bfloat16",), "d": (576,), "dv": (512,), "tile_size": (128,)})
def quantize(input_k_cache: torch.Tensor, dv: int = 512, tile_size: int = 128) -> torch.Tensor:
    """Upstream-style quantizer (torch twin of the Triton kernel) for the production shape only (bf16,
    d=576, dv=512, tile 128): float32 scales, reciprocal multiply, clamp to +-448.  Not bit-exact with the
    oracle by design: scales differ (float32 vs bf16-rounded), ~1-2% of codes differ by one code, zero and
    subnormal tiles give +-448 codes instead of NaN, bare asserts outside its domain, and a ``.view`` that
    fails on layouts it cannot flatten."""
    assert input_k_cache.dtype == torch.bfloat16
    assert input_k_cache.dim() == 4
    num_blocks, block_size, h_k, d = input_k_cache.shape
    assert h_k == 1 and d == D and dv == DV and tile_size == TILE
    x = input_k_cache.view(num_blocks * block_size, d)  # raises for layouts it cannot flatten, as the kernel
    tiles = x[:, :DV].float().reshape(-1, DV // TILE, TILE)
    amax = torch.where(tiles.isnan(), 0.0, tiles.abs()).amax(-1, keepdim=True)  # NaN left out
    scale = amax / torch.full_like(amax, 448.0)  # float32 IEEE division; not rounded to bf16
    inv = torch.ones_like(scale) / scale  # +inf for a zero (or < 2^-128) scale
    q = tiles * inv  # 0 * inf = NaN on zero elements of such tiles
    q = torch.where(q < 448.0, q, 448.0)  # NaN fails the test: NaN -> +448, as in the kernel
    q = torch.where(q > -448.0, q, -448.0)
    out = torch.empty((x.shape[0], ROW_BYTES), dtype=torch.uint8, device=x.device)
    out[:, :DV] = q.to(FP8).reshape(-1, DV).view(torch.uint8)  # round to nearest even, in range
    out[:, DV : DV + 4 * (DV // TILE)] = scale.reshape(-1, DV // TILE).view(torch.uint8)
    out[:, DV + 4 * (DV // TILE) :] = x[:, DV:].contiguous().view(torch.uint8)  # rope bytes verbatim
    return out.view(FP8).view(num_blocks, block_size, 1, ROW_BYTES)
