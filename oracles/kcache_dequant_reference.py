"""The reference semantics of sglang's FP8 K-cache dequantizer ``_dequantize_k_cache_slow``.

``dequantize_k_cache_slow`` is the oracle of the ``dequantize_k_cache`` target, written from the prose in
``docs/dequantizer.md``: the inverse of the quantizer's packed rows.  As with the quantizer, its operations
and their order *are* the specification: the rope bytes are read as bfloat16 and copied, then each tile's
fp8 codes are widened to float32, multiplied by the tile's float32 scale (one IEEE multiply) and stored into
the bfloat16 output (rounded to nearest even).  Do not "clean it up": candidates are judged against this code.
"""

from __future__ import annotations

import torch

FP8 = torch.float8_e4m3fn


def packed_width(d: int, dv: int, tile_size: int) -> int:
    """Bytes in one packed row: ``dv`` codes, a float32 scale per tile, the rope part as bfloat16."""
    return dv + 4 * (dv // tile_size) + 2 * (d - dv)


def dequantize_k_cache_slow(quant_k_cache: torch.Tensor, dv: int = 512, tile_size: int = 128,
                            d: int = 576) -> torch.Tensor:
    """Turn packed rows ``(num_blocks, block_size, 1, W)`` back into a bfloat16 K cache
    ``(num_blocks, block_size, 1, d)``.  The original slow tile loop, kept as the oracle."""
    assert dv % tile_size == 0
    num_tiles = dv // tile_size
    num_blocks, block_size, h_k, _ = quant_k_cache.shape
    assert h_k == 1

    result = torch.empty((num_blocks, block_size, d), dtype=torch.bfloat16, device=quant_k_cache.device)
    rows = quant_k_cache.view(num_blocks, block_size, -1)  # a view: some non-contiguous inputs raise here
    if rows.dtype != FP8:  # uint8 storage holds the same bytes
        rows = rows.view(FP8)
    input_nope = rows[..., :dv]
    input_scale = rows[..., dv : dv + num_tiles * 4].view(torch.float32)  # [num_blocks, block_size, num_tiles]
    input_rope = rows[..., dv + num_tiles * 4 :].view(torch.bfloat16)
    result[..., dv:] = input_rope

    for tile_idx in range(0, num_tiles):
        cur_nope = input_nope[..., tile_idx * tile_size : (tile_idx + 1) * tile_size].to(torch.float32)
        cur_scales = input_scale[..., tile_idx].unsqueeze(-1)
        result[..., tile_idx * tile_size : (tile_idx + 1) * tile_size] = cur_nope * cur_scales

    return result.view(num_blocks, block_size, 1, d)
