"""The fused candidate's C kernel: its float32 -> e4m3fn conversion against torch's, and the fallback
when it cannot be compiled."""

import warnings

import pytest
import torch

from candidates import _fused_cpu
from candidates.fused import fused
from harness.core.target import get_target
from harness.judge.verify import Verifier
from oracles.kcache_reference import quantize_k_cache_slow

pytestmark = pytest.mark.skipif(_fused_cpu.load() is None, reason="no C compiler: the kernel cannot be built")


def torch_codes(values: torch.Tensor) -> torch.Tensor:
    return values.to(torch.float8_e4m3fn).view(torch.uint8)


def test_conversion_matches_torch_on_every_float_near_the_fp8_range():
    # every 7th float32 with exponent -12..9 (all of e4m3's range, its rounding boundaries and overflow),
    # both signs; the full window (every float) was checked once: 369,098,752 values, no difference
    bits = torch.arange((127 - 12) << 23, (127 + 10) << 23, 7, dtype=torch.int32)
    values = torch.cat([bits.view(torch.float32), -bits.view(torch.float32)])
    assert torch.equal(_fused_cpu.e4m3_from_floats(values), torch_codes(values))


def test_conversion_matches_torch_across_all_bit_patterns():
    bits = torch.arange(0, 2**32, 7919, dtype=torch.int64)
    values = torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32).view(torch.float32)
    ours, theirs = _fused_cpu.e4m3_from_floats(values), torch_codes(values)
    both_nan = ((ours & 0x7F) == 0x7F) & ((theirs & 0x7F) == 0x7F)
    assert bool(((ours == theirs) | both_nan).all())
    specials = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 464.0, 470.0, -1e38, 2**-10, 1.5 * 2**-9])
    assert torch.equal(_fused_cpu.e4m3_from_floats(specials), torch_codes(specials))


def same_codes(ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    both_nan = ((ours & 0x7F) == 0x7F) & ((theirs & 0x7F) == 0x7F)  # a NaN code with either sign
    return bool(((ours == theirs) | both_nan).all())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_conversion_matches_torch_on_every_16_bit_pattern(dtype):
    # each bf16 / fp16 value widened to float32 (what the kernel divides), and each quotient's neighbours
    values = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype).float()
    bits = values.view(torch.int32)
    for v in (values, (bits + 1).view(torch.float32), (bits - 1).view(torch.float32)):
        assert same_codes(_fused_cpu.e4m3_from_floats(v), torch_codes(v))


@pytest.mark.parametrize("saturation", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_each_saturation_mode(saturation):
    # the kernel inlines one conversion per (finite overflow saturates, infinity saturates); beyond the
    # 464 midpoint each gives +-448 (0x7E) or the NaN code, NaN stays NaN, the rest is torch's rounding
    bits = torch.arange((127 - 12) << 23, 0x7F800000 + 2, 97, dtype=torch.int32)
    mags = torch.cat([bits.view(torch.float32), torch.tensor([464.0, 464.00003, 480.0, 1e30, float("inf")])])
    values = torch.cat([mags, -mags, torch.tensor([float("nan"), -float("nan")])])
    sat_finite, sat_inf = saturation
    expected = torch_codes(values).clone()
    sign = (values.view(torch.int32) < 0).to(torch.uint8) << 7
    finite_over, inf = (values.abs() > 464.0) & values.isfinite(), values.isinf()
    expected[finite_over] = (0x7E if sat_finite else 0x7F) | sign[finite_over]
    expected[inf] = (0x7E if sat_inf else 0x7F) | sign[inf]
    assert same_codes(_fused_cpu.e4m3_from_floats(values, saturation), expected)


def special_input(dtype: torch.dtype, num_blocks: int = 3, block_size: int = 16, d: int = 576) -> torch.Tensor:
    """Random values over the dtype's range, with zero tiles, infinities, NaNs, subnormals and ties."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(num_blocks * block_size, d, generator=g)
    x *= torch.exp2(torch.randint(-10, 10, (x.shape[0], 1), generator=g).float())
    info = torch.finfo(dtype)
    x[1, :128] = 0.0
    x[2, 5], x[3, 200], x[4, 300] = float("inf"), -float("inf"), float("nan")
    x[5, :128] = info.tiny * torch.rand(128, generator=g)  # subnormal / tiny tiles
    x[6, 128:256] = torch.tensor([448.0, 464.0, 472.0, 2**-9 * 1.5, -(2**-9) * 2.5, 1.0, -1.0, 3.0] * 16)
    x[7, 256:384] = info.max * torch.rand(128, generator=g)
    return x.to(dtype).view(num_blocks, block_size, 1, d)


def assert_matches_oracle(x: torch.Tensor, dv: int = 512, tile: int = 128) -> None:
    expected, got = quantize_k_cache_slow(x, dv, tile), _fused_cpu.quantize(x, dv, tile)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    e, g = (t.view(torch.uint8).reshape(-1, t.shape[-1]) for t in (expected, got))
    tiles = dv // tile
    assert same_codes(g[:, :dv], e[:, :dv])
    se, sg = (t[:, dv : dv + 4 * tiles].contiguous().view(torch.float32) for t in (e, g))
    assert bool(((se.view(torch.int32) == sg.view(torch.int32)) | (se.isnan() & sg.isnan())).all())
    assert torch.equal(e[:, dv + 4 * tiles :], g[:, dv + 4 * tiles :])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("layout", ["contiguous", "strided columns", "strided rows"])
def test_kernel_matches_the_oracle_on_special_values_in_each_layout(dtype, layout):
    x = special_input(dtype)
    if layout == "strided columns":  # column stride 2: the kernel's general path
        wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=dtype)
        wide[..., ::2] = x
        x = wide[..., ::2]
    elif layout == "strided rows":
        x = torch.cat([x, x], dim=-1)[..., : x.shape[-1]]
    assert_matches_oracle(x)
    assert_matches_oracle(x, dv=256, tile=16)  # 16 tiles: two groups of 8 scales
    assert_matches_oracle(x, dv=576, tile=64)  # 9 tiles (a group and a remainder), no rope


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_tiles_whose_scale_rounds_far_down_saturate_as_the_oracle_does(dtype):
    """A scale that rounds to a subnormal of the dtype can lose a third of its value, so x / scale reaches
    far beyond 448 (saturated or NaN codes by torch's flags); the kernel's shortcut for bounded tiles must not
    take such a tile.  Amax at 1.49 subnormal steps of the dtype times 448, and tiles of every size."""
    step = 2.0 ** -133 if dtype == torch.bfloat16 else 2.0 ** -24
    amaxes = torch.tensor([1.49, 1.51, 2.49, 3.5, 7.49, 100.5]) * 448 * step
    x = torch.randn(len(amaxes), 2, 1, 576).abs().clamp(max=1) * amaxes.view(-1, 1, 1, 1)
    x[..., 0] = amaxes.view(-1, 1, 1)
    x[..., 1] = -amaxes.view(-1, 1, 1)
    assert_matches_oracle(x.to(dtype))
    assert_matches_oracle(x.to(dtype), dv=256, tile=16)


def test_the_fused_candidate_uses_the_kernel_on_cpu():
    x = torch.randn(4, 16, 1, 576, dtype=torch.bfloat16)
    assert _fused_cpu.supports(x)
    assert torch.equal(fused(x).view(torch.uint8), quantize_k_cache_slow(x).view(torch.uint8))


def test_without_a_compiler_it_warns_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "/bin/false")
    _fused_cpu.load.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _fused_cpu.load() is None
        assert "using the torch fallback" in str(caught[0].message)
        x = torch.randn(2, 8, 1, 576, dtype=torch.bfloat16)
        assert torch.equal(fused(x).view(torch.uint8), quantize_k_cache_slow(x).view(torch.uint8))
        fallback = Verifier(get_target("quantize_k_cache"), "exact", examples=20).verify(fused, "fallback")
        assert fallback.passed, fallback.first_failure
    finally:
        _fused_cpu.load.cache_clear()
