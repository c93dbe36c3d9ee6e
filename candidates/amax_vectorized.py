"""Candidate 2: the seed PR's amax-vectorized tile loop."""

import torch

from harness.core.candidates import candidate


@candidate(target="quantize_k_cache")
def amax_vectorized(input_k_cache: torch.Tensor, dv: int = 512, tile_size: int = 128) -> torch.Tensor:
    """The tile loop of codeflash PR 341: `amax` replaces `max(dim=-1).values` (no index tensor is
    computed), the scale is broadcast with an out-of-place `unsqueeze` instead of the in-place
    `unsqueeze_`, each tile's slice bounds are computed once and the tile is sliced once instead of
    three times.  Same arithmetic in the same order, so the output is bit-identical; it saves Python
    and dispatcher work per tile, which matters most for small inputs."""
    assert dv % tile_size == 0
    num_tiles = dv // tile_size
    num_blocks, block_size, h_k, d = input_k_cache.shape
    assert h_k == 1
    input_k_cache = input_k_cache.squeeze(2)
    input_elem_size = input_k_cache.element_size()

    result = torch.empty(
        (num_blocks, block_size, dv + num_tiles * 4 + input_elem_size * (d - dv)),
        dtype=torch.float8_e4m3fn,
        device=input_k_cache.device,
    )
    result_k_nope_part = result[..., :dv]
    result_k_scale_factor = result[..., dv : dv + num_tiles * 4].view(torch.float32)
    result_k_rope_part = result[..., dv + num_tiles * 4 :].view(input_k_cache.dtype)
    result_k_rope_part[:] = input_k_cache[..., dv:]

    for tile_idx in range(num_tiles):
        start = tile_idx * tile_size
        end = start + tile_size
        input_tile = input_k_cache[..., start:end]
        cur_scale_factors_inv = torch.abs(input_tile).amax(dim=-1) / 448.0
        result_k_scale_factor[:, :, tile_idx] = cur_scale_factors_inv
        result_k_nope_part[..., start:end] = (
            input_tile.float() / cur_scale_factors_inv.float().unsqueeze(-1)
        ).to(torch.float8_e4m3fn)

    return result.view(num_blocks, block_size, 1, -1)
