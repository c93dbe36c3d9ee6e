"""The fused candidate's C kernel: its float32 -> e4m3fn conversion against torch's, and the fallback
when it cannot be compiled."""

import warnings

import pytest
import torch

from candidates import _fused_cpu
from candidates.fused import fused
from harness.target import get_target
from harness.verify import Verifier
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
