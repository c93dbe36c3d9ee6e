"""Deliberately wrong (and one deliberately unusual but correct) quantizers, one per failure family that
verification must catch.  Each is the fused candidate with one realistic mistake."""

from __future__ import annotations

import torch

from candidates.fused import fused
from oracles.kcache_reference import quantize_k_cache_slow

FP8 = torch.float8_e4m3fn
_cache: dict = {}


def _pack(x: torch.Tensor, dv: int, tile_size: int, scales: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    nb, bs, _, d = x.shape
    nt = dv // tile_size
    out = torch.empty((nb, bs, dv + 4 * nt + x.element_size() * (d - dv)), dtype=FP8, device=x.device)
    out[..., dv : dv + 4 * nt].view(torch.float32).copy_(scales)
    out[..., :dv].copy_(codes.flatten(-2))
    out[..., dv + 4 * nt :].view(x.dtype).copy_(x.squeeze(2)[..., dv:])
    return out.view(nb, bs, 1, -1)


def float32_scale(input_k_cache, dv=512, tile_size=128):
    """sglang-style: the scale is computed in float32 (never rounded to the input dtype)."""
    assert dv % tile_size == 0 and input_k_cache.shape[2] == 1
    tiles = input_k_cache.squeeze(2)[..., :dv].float().unflatten(-1, (dv // tile_size, tile_size))
    scales = tiles.abs().amax(-1) / 448.0
    return _pack(input_k_cache, dv, tile_size, scales, (tiles / scales.unsqueeze(-1)).to(FP8))


def reciprocal_multiply(input_k_cache, dv=512, tile_size=128):
    """Multiplies by the reciprocal of the scale instead of dividing: rare single-code differences."""
    assert dv % tile_size == 0 and input_k_cache.shape[2] == 1
    tiles = input_k_cache.squeeze(2)[..., :dv].unflatten(-1, (dv // tile_size, tile_size))
    scales = tiles.abs().amax(-1) / 448.0
    codes = (tiles.float() * (1.0 / scales.float()).unsqueeze(-1)).to(FP8)
    return _pack(input_k_cache, dv, tile_size, scales, codes)


def wrong_for_fp16(input_k_cache, dv=512, tile_size=128):
    """Right except for float16 input, whose scale it computes in float32."""
    if input_k_cache.dtype == torch.float16:
        return float32_scale(input_k_cache, dv, tile_size)
    return fused(input_k_cache, dv, tile_size)


def wrong_small_tiles(input_k_cache, dv=512, tile_size=128):
    """Hard-codes the production tile size of 128 for the scale reduction when tiles are smaller."""
    if tile_size >= 128 or dv % 128:
        return fused(input_k_cache, dv, tile_size)
    out = fused(input_k_cache, dv, tile_size)
    return out.view(torch.uint8).flip(-1).view(FP8) if dv >= 256 else out


def zero_tile_as_zero(input_k_cache, dv=512, tile_size=128):
    """Guards against division by zero: an all-zero tile gives codes 0 instead of the oracle's NaN."""
    out = fused(input_k_cache, dv, tile_size)
    nt = dv // tile_size
    rows = out.view(torch.uint8).view(-1, out.shape[-1])
    zero = rows[:, dv : dv + 4 * nt].contiguous().view(torch.float32) == 0
    codes = rows[:, :dv].view(-1, nt, tile_size)
    codes.masked_fill_(zero.unsqueeze(-1), 0)
    return out


def assumes_contiguous(input_k_cache, dv=512, tile_size=128):
    """Reads the input's storage as if it were contiguous (wrong for sliced/transposed/expanded input)."""
    x = input_k_cache
    flat = torch.as_strided(x, x.shape, torch.empty(x.shape, device="meta").stride(), x.storage_offset())
    return fused(flat, dv, tile_size)


def no_h_k_check(input_k_cache, dv=512, tile_size=128):
    """Forgets the h_k == 1 precondition and quantizes head 0 of a multi-head cache."""
    if input_k_cache.shape[2] != 1:
        input_k_cache = input_k_cache[:, :, :1]
    return fused(input_k_cache, dv, tile_size)


def value_error_precondition(input_k_cache, dv=512, tile_size=128):
    """Raises ValueError instead of the oracle's AssertionError for dv % tile_size != 0."""
    if dv % tile_size:
        raise ValueError("dv must be a multiple of tile_size")
    return fused(input_k_cache, dv, tile_size)


def caches_by_shape(input_k_cache, dv=512, tile_size=128):
    """Memoises on (shape, dtype, dv, tile_size): returns the first call's output for later data."""
    key = (tuple(input_k_cache.shape), input_k_cache.dtype, dv, tile_size)
    if key not in _cache:
        _cache[key] = fused(input_k_cache, dv, tile_size)
    return _cache[key]


def mutates_input(input_k_cache, dv=512, tile_size=128):
    """Right output, but scales its input in place on the way."""
    out = fused(input_k_cache, dv, tile_size)
    if input_k_cache.numel():
        input_k_cache.mul_(2)
    return out


def returns_uint8(input_k_cache, dv=512, tile_size=128):
    """Right bytes, wrong dtype."""
    return fused(input_k_cache, dv, tile_size).view(torch.uint8)


def returns_none(input_k_cache, dv=512, tile_size=128):
    """Forgets to return."""
    fused(input_k_cache, dv, tile_size)


def raises_always(input_k_cache, dv=512, tile_size=128):
    raise RuntimeError("not implemented on this backend")


def correct_other_style(input_k_cache, dv=512, tile_size=128):
    """Correct, in another style: chunks of 7 tokens, writes through a uint8 view, and states the oracle's
    implicit preconditions (rows the float32 scales can be viewed in) as explicit checks."""
    assert dv % tile_size == 0
    nb, bs, h_k, d = input_k_cache.shape
    assert h_k == 1
    nt = dv // tile_size
    x = input_k_cache.reshape(nb * bs, d)
    width = dv + 4 * nt + x.element_size() * (d - dv)
    if d < dv:
        raise IndexError("d must be at least dv")
    if dv % 4 or width % 4:
        raise RuntimeError("rows must hold float32 scales at 4-byte aligned offsets")
    out = torch.empty((nb * bs, width), dtype=torch.uint8, device=x.device)
    for start in range(0, nb * bs, 7):
        chunk = x[start : start + 7]
        tiles = chunk[:, :dv].reshape(-1, nt, tile_size)
        scale = torch.amax(torch.abs(tiles), dim=2) / 448.0
        out[start : start + 7, dv : dv + 4 * nt] = scale.to(torch.float32).view(torch.uint8)
        q = torch.div(tiles.to(torch.float32), scale.to(torch.float32)[:, :, None]).to(FP8)
        out[start : start + 7, :dv] = q.reshape(-1, dv).view(torch.uint8)
        out[start : start + 7, dv + 4 * nt :] = chunk[:, dv:].contiguous().view(torch.uint8)
    return out.view(FP8).view(nb, bs, 1, width)


def assumes_production_when_wide(input_k_cache, dv=512, tile_size=128):
    """Wrong: ignores dv and tile_size whenever d >= 512 (assumes the production 512/128)."""
    if input_k_cache.shape[-1] >= 512:
        dv, tile_size = 512, 128
    return quantize_k_cache_slow(input_k_cache, dv, tile_size)
