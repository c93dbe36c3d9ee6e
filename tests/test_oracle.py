"""The oracle against values worked out by hand, and the dequantizer against the oracle."""

import math

import pytest
import torch

from oracles.kcache_reference import FP8, KCacheLayout, dequantize_k_cache, quantize_k_cache_slow


def row_bytes(out: torch.Tensor) -> list[int]:
    return out.view(torch.uint8).reshape(-1).tolist()


def f32(value: float) -> float:
    """``value`` rounded to float32, as the float32 division by 448 rounds it."""
    return torch.tensor(value, dtype=torch.float32).item()


def test_one_tile_by_hand():
    # One token, one tile of 4 elements, no rope, float32.  amax = 8 -> scale = 8/448 = 1/56.
    # codes (e4m3: sign, 4 exponent bits with bias 7, 3 mantissa bits), x / (1/56) = 56 * x:
    #   8 -> 448 = 1.75 * 2^8 -> 0 1111 110 = 0x7E;  -2 -> -112 = -1.75 * 2^6 -> 1 1101 110 = 0xEE
    #   0.5 -> 28 = 1.75 * 2^4 -> 0 1011 110 = 0x5E; 0.1 -> 5.6 -> nearest 5.5 = 1.375 * 2^2 -> 0 1001 011 = 0x4B
    x = torch.tensor([8.0, -2.0, 0.5, 0.1]).view(1, 1, 1, 4)
    out = quantize_k_cache_slow(x, dv=4, tile_size=4)
    assert out.shape == (1, 1, 1, 4 + 4)
    assert out.dtype == FP8
    b = row_bytes(out)
    assert b[:4] == [0x7E, 0xEE, 0x5E, 0x4B]
    assert torch.tensor(b[4:8], dtype=torch.uint8).view(torch.float32).item() == f32(8 / 448)
    # the fp8 codes decode to 448, -112, 28 and 5.5 (5.6 rounds to the nearest e4m3 value)
    assert out[..., :4].float().reshape(-1).tolist() == [448.0, -112.0, 28.0, 5.5]


def test_bf16_scale_is_rounded_to_bf16_before_widening():
    # amax = 3.0 in bf16: 3/448 = 0.0066964..., bf16 keeps 8 significant bits -> 0.00669861 (not the float32 value)
    x = torch.full((1, 1, 1, 4), 3.0, dtype=torch.bfloat16)
    out = quantize_k_cache_slow(x, dv=4, tile_size=4)
    scale = torch.tensor(row_bytes(out)[4:8], dtype=torch.uint8).view(torch.float32).item()
    assert scale == torch.tensor(3.0 / 448.0).to(torch.bfloat16).float().item()
    assert scale != torch.tensor(3.0, dtype=torch.float32).div(448.0).item()
    # and the codes are computed with that rounded scale: 3 / 0.00669861 = 447.85 -> 448
    assert row_bytes(out)[:4] == [0x7E] * 4


def test_zero_tile_gives_zero_scale_and_nan_codes():
    x = torch.zeros(1, 1, 1, 8)
    out = quantize_k_cache_slow(x, dv=8, tile_size=4)
    b = row_bytes(out)
    assert all((c & 0x7F) == 0x7F for c in b[:8]), "0/0 is NaN, encoded 0x7F or 0xFF"
    assert torch.tensor(b[8:16], dtype=torch.uint8).view(torch.float32).tolist() == [0.0, 0.0]


def test_negative_maximum_sets_the_scale_by_magnitude():
    x = torch.tensor([-4.0, 1.0, 2.0, -1.0, 0.5, 0.25, 0.125, -0.5]).view(1, 1, 1, 8)
    out = quantize_k_cache_slow(x, dv=8, tile_size=4)
    scales = torch.tensor(row_bytes(out)[8:16], dtype=torch.uint8).view(torch.float32).tolist()
    assert scales == [f32(4 / 448), f32(0.5 / 448)]
    assert out[..., 0].float().item() == -448.0  # the negative maximum lands on the most negative code
    assert out[..., 7].float().item() == -448.0


def test_rope_bytes_are_copied_verbatim():
    x = torch.randn(2, 3, 1, 10, dtype=torch.bfloat16)
    x[0, 0, 0, 9] = float("nan")
    out = quantize_k_cache_slow(x, dv=8, tile_size=4)
    layout = KCacheLayout.of(x, 8, 4)
    assert layout.width == 8 + 8 + 2 * 2
    _, _, rope = layout.split(out)
    assert torch.equal(rope.reshape(2, 3, 4), x[..., 8:].reshape(2, 3, 2).contiguous().view(torch.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("bad", [dict(dv=8, tile_size=3), dict(dv=8, tile_size=4, h_k=2)])
def test_asserted_preconditions(bad):
    h_k = bad.pop("h_k", 1)
    with pytest.raises(AssertionError):
        quantize_k_cache_slow(torch.randn(1, 1, h_k, 8), **bad)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_dequantizer_inverts_up_to_fp8_rounding(dtype):
    x = torch.randn(4, 8, 1, 576).to(dtype)
    out = quantize_k_cache_slow(x)
    back = dequantize_k_cache(out, 512, 128, dtype)
    assert back.shape == x.shape
    assert torch.equal(back[..., 512:], x[..., 512:].float())  # rope is exact
    rel = ((back[..., :512] - x[..., :512].float()).abs() / x[..., :512].float().abs().clamp_min(1e-3)).max()
    assert rel <= 1 / 16 + 1e-2 or math.isclose(rel, 0.0)  # half an e4m3 step, plus the scale's rounding
