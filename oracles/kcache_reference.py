"""The reference semantics of sglang's FP8 K-cache quantizer, its output layout and its inverse.

``quantize_k_cache_slow`` is the oracle: a faithful transcription of sglang's ``_quantize_k_cache_slow``
(``python/sglang/srt/layers/attention/nsa/quant_k_cache.py``) as specified in ``docs/quantizer.md``.
Its operations and their order *are* the specification: the scale is computed in the input dtype
(so bf16 input rounds it to bf16), then IEEE float32 division, then torch's float32 -> e4m3fn
conversion.  Do not "clean it up": every candidate is judged against exactly this code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite e4m3fn value


def quantize_k_cache_slow(input_k_cache: torch.Tensor, dv: int = 512, tile_size: int = 128) -> torch.Tensor:
    """Quantize a K cache ``(num_blocks, block_size, 1, d)`` into per-token rows of fp8 codes, float32
    tile scales and the verbatim rope bytes.  The original slow tile loop, kept as the oracle."""
    assert dv % tile_size == 0
    num_tiles = dv // tile_size
    num_blocks, block_size, h_k, d = input_k_cache.shape
    assert h_k == 1
    input_k_cache = input_k_cache.squeeze(2)  # [num_blocks, block_size, d]
    input_elem_size = input_k_cache.element_size()

    result = torch.empty(
        (num_blocks, block_size, dv + num_tiles * 4 + input_elem_size * (d - dv)),
        dtype=FP8,
        device=input_k_cache.device,
    )
    result_k_nope_part = result[..., :dv]
    result_k_scale_factor = result[..., dv : dv + num_tiles * 4].view(torch.float32)
    result_k_rope_part = result[..., dv + num_tiles * 4 :].view(input_k_cache.dtype)
    result_k_rope_part[:] = input_k_cache[..., dv:]

    for tile_idx in range(0, num_tiles):
        cur_scale_factors_inv = (
            torch.abs(input_k_cache[..., tile_idx * tile_size : (tile_idx + 1) * tile_size]).max(dim=-1).values
            / FP8_MAX
        )  # [num_blocks, block_size]
        result_k_scale_factor[:, :, tile_idx] = cur_scale_factors_inv

        cur_scale_factors_inv.unsqueeze_(-1)  # [num_blocks, block_size, 1]
        cur_quantized_nope = (
            input_k_cache[..., tile_idx * tile_size : (tile_idx + 1) * tile_size].float()
            / cur_scale_factors_inv.float()
        ).to(FP8)
        result_k_nope_part[..., tile_idx * tile_size : (tile_idx + 1) * tile_size] = cur_quantized_nope

    result = result.view(num_blocks, block_size, 1, -1)
    return result


@dataclass(frozen=True)
class KCacheLayout:
    """Byte offsets of the three segments of one output row."""

    dv: int
    tile_size: int
    rope_dim: int
    elem_size: int

    @property
    def num_tiles(self) -> int:
        return self.dv // self.tile_size

    @property
    def scale_start(self) -> int:
        return self.dv

    @property
    def rope_start(self) -> int:
        return self.dv + 4 * self.num_tiles

    @property
    def width(self) -> int:
        return self.rope_start + self.elem_size * self.rope_dim

    @staticmethod
    def of(input_k_cache: torch.Tensor, dv: int, tile_size: int) -> "KCacheLayout":
        d = input_k_cache.shape[-1]
        return KCacheLayout(dv, tile_size, d - dv, input_k_cache.element_size())

    def split(self, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows of ``packed`` as (fp8 codes as uint8 [T, dv], scales float32 [T, tiles], rope bytes [T, R])."""
        rows = packed.detach().reshape(-1, self.width).view(torch.uint8).cpu()
        codes = rows[:, : self.dv]
        scales = rows[:, self.scale_start : self.rope_start].contiguous().view(torch.float32)
        rope = rows[:, self.rope_start :]
        return codes, scales, rope


def dequantize_k_cache(packed: torch.Tensor, dv: int, tile_size: int, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of the quantizer up to fp8 rounding: ``(nb, bs, 1, d)`` float32 with each fp8 code times its
    tile's scale, and the rope part read back from its bytes (exact)."""
    num_blocks, block_size = packed.shape[0], packed.shape[1]
    elem_size = torch.empty((), dtype=dtype).element_size()
    rope_bytes = packed.shape[-1] - dv - 4 * (dv // tile_size)
    layout = KCacheLayout(dv, tile_size, rope_bytes // elem_size, elem_size)
    codes, scales, rope = layout.split(packed)
    nope = codes.view(FP8).float().unflatten(-1, (layout.num_tiles, tile_size)) * scales.unsqueeze(-1)
    rope_values = rope.contiguous().view(dtype).float()
    return torch.cat([nope.flatten(-2), rope_values], dim=-1).view(num_blocks, block_size, 1, -1)
