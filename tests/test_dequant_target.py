"""The dequantizer target: its oracle against values worked out by hand, its cases, its comparison with
deliberately wrong outputs, and the round-trip property with the quantizer."""

import pytest
import torch

from harness.core.target import Case
from harness.judge.verify import InProcess, Verifier
from oracles import _dequant_cases as cases
from oracles.dequantize_k_cache import TARGET
from oracles.kcache_dequant_reference import FP8, dequantize_k_cache_slow, packed_width
from oracles.kcache_reference import quantize_k_cache_slow
from oracles.quantize_k_cache import TARGET as QUANTIZE


def packed(codes: list[int], scales: list[float], rope: list[float]) -> torch.Tensor:
    """One token's row from its parts, as the format lays them out."""
    parts = [torch.tensor(codes, dtype=torch.uint8), torch.tensor(scales, dtype=torch.float32).view(torch.uint8),
             torch.tensor(rope, dtype=torch.bfloat16).view(torch.uint8)]
    return torch.cat(parts).view(1, 1, 1, -1).view(FP8)


def bits(t: torch.Tensor) -> list[int]:
    return t.reshape(-1).view(torch.int16).tolist()


def test_one_row_by_hand():
    # tile 0: codes 0x7E (448), 0xEE (-112), 0x38 (1.0), 0x01 (the smallest subnormal, 2^-9), scale 1/56
    # tile 1: NaN code 0x7F; then 0x40 (2.0) and 0xC0 (-2.0) with scale 3.0; rope [1.5, -0.25]
    row = packed([0x7E, 0xEE, 0x38, 0x01, 0x7F, 0x40, 0xC0, 0x00], [1 / 56, 3.0], [1.5, -0.25])
    assert row.shape[-1] == packed_width(d=10, dv=8, tile_size=4) == 8 + 8 + 4
    out = dequantize_k_cache_slow(row, dv=8, tile_size=4, d=10)
    assert out.dtype == torch.bfloat16 and out.shape == (1, 1, 1, 10)
    values = out.float().reshape(-1).tolist()
    f32_scale = torch.tensor(1 / 56, dtype=torch.float32).item()
    # each product in float32, then rounded to bf16 (8 significant bits): 448/56 = 8 exactly
    expected = [torch.tensor(c * f32_scale, dtype=torch.float32).to(torch.bfloat16).item() for c in (448.0, -112.0, 1.0, 2**-9)]
    assert values[:4] == expected and values[0] == 8.0
    assert values[4] != values[4]  # the NaN code decodes to NaN
    assert values[5:8] == [6.0, -6.0, 0.0]
    assert values[8:] == [1.5, -0.25]  # the rope is copied


def test_nan_and_infinite_scales_spread_to_the_tile():
    row = packed([0x38, 0x00, 0x38, 0x00], [float("nan"), float("inf")], [])
    values = dequantize_k_cache_slow(row, dv=4, tile_size=2, d=4).float().reshape(-1).tolist()
    assert all(v != v for v in values[:2])  # NaN * anything
    assert values[2] == float("inf") and values[3] != values[3]  # 1 * inf, and 0 * inf is NaN


def test_uint8_storage_gives_the_same_bits():
    x = cases.build_input(cases.params(2, 4), seed=1, device="cpu")
    assert bits(dequantize_k_cache_slow(x.view(torch.uint8))) == bits(dequantize_k_cache_slow(x))


def test_preconditions_and_views_raise_like_the_reference():
    raised = {}
    for case in TARGET.named_cases():
        if case.family == "error":
            call = TARGET.build(case, "cpu")
            with pytest.raises(Exception) as info:
                TARGET.oracle(*call.args, **call.kwargs)
            raised[case.name] = info.type
    assert raised == {"h_k_two": AssertionError, "dv_not_multiple_of_tile": AssertionError,
                      "scale_view_misaligned": RuntimeError, "strided_bytes": RuntimeError,
                      "zero_tokens": RuntimeError}


def test_named_cases_include_the_production_row_and_pin_each_parameter_away_from_it():
    named = {c.name: c.params for c in TARGET.named_cases()}
    widths = {n: packed_width(p["d"], p["dv"], p["tile_size"]) for n, p in named.items()}
    assert widths["production_row_656_bytes"] == 656
    assert (named["production_row_dv_256"]["dv"], named["production_row_tile_64"]["tile_size"],
            named["production_row_d_544"]["d"]) == (256, 64, 544)
    assert {p["source"] for p in named.values()} == {"bfloat16", "float16", "float32", "bytes"}
    assert {p["layout"] for p in named.values()} >= {"contiguous", "sliced", "padded", "transposed", "strided"}


def test_random_byte_rows_hold_every_code_and_special_scales():
    call = TARGET.build(Case("b", "edge", cases.params(8, 64, source="bytes", values="bytes")), "cpu")
    rows = call.args[0].view(torch.uint8).reshape(-1, 656)
    assert set(rows[:, :512].unique().tolist()) == set(range(256))
    scales = rows[:, 512:528].contiguous().view(torch.float32)
    assert bool(scales.isnan().any()) and bool(scales.isinf().any()) and bool((scales == 0).any())


def truncating(quant_k_cache, dv=512, tile_size=128, d=576):
    """Wrong: rounds the float32 products to bf16 by truncation, not to nearest."""
    out = dequantize_k_cache_slow(quant_k_cache, dv, tile_size, d).float()  # bf16 values, exact in float32
    rows = quant_k_cache.reshape(*quant_k_cache.shape[:2], -1).view(torch.uint8)
    codes = rows[..., :dv].view(FP8).float().unflatten(-1, (-1, tile_size))
    scales = rows[..., dv:dv + 4 * (dv // tile_size)].contiguous().view(torch.float32).unsqueeze(-1)
    product = (codes * scales).flatten(-2)
    truncated = (product.view(torch.int32) & ~0xFFFF).view(torch.float32)
    out = out.reshape(*quant_k_cache.shape[:2], d)
    out[..., :dv] = torch.where(product.isnan(), product, truncated)
    return out.to(torch.bfloat16).view(*quant_k_cache.shape[:2], 1, d)


def drops_rope(quant_k_cache, dv=512, tile_size=128, d=576):
    """Wrong: zeroes the rope part."""
    out = dequantize_k_cache_slow(quant_k_cache, dv, tile_size, d).clone()
    out[..., dv:] = 0
    return out


def test_exact_policy_catches_truncation_and_ulp_allows_it():
    named = [c for c in TARGET.named_cases() if c.name in ("production_row_656_bytes", "production_mixed")]
    exact = Verifier(TARGET, "exact", examples=0, named=named).verify(InProcess(truncating, TARGET), "truncating")
    assert not exact.passed
    failure = exact.failures[0]
    assert failure.reason.startswith("values: ") and "rope" not in failure.reason
    assert "1 ulp" in failure.differences[0]
    ulp = Verifier(TARGET, "ulp", examples=0, named=named).verify(InProcess(truncating, TARGET), "truncating")
    assert ulp.passed, ulp.first_failure


def test_both_policies_catch_a_changed_rope():
    named = [c for c in TARGET.named_cases() if c.name == "basic_content_rope_copy"]
    for policy in TARGET.policies:
        v = Verifier(TARGET, policy, examples=0, named=named).verify(InProcess(drops_rope, TARGET), "drops_rope")
        assert not v.passed and v.failures[0].reason.startswith("rope: "), policy


def test_the_oracle_passes_its_own_verification_with_property_cases():
    v = Verifier(TARGET, "exact", examples=25).verify(InProcess(dequantize_k_cache_slow, TARGET), "oracle")
    assert v.passed, v.first_failure
    assert {f.family for f in v.families} == {"seed", "edge", "error", "repeat", "property"}


# -- the round trip --------------------------------------------------------------------------------

def round_trip(case: Case, dequantize=dequantize_k_cache_slow):
    forward = QUANTIZE.build(case, "cpu")
    call = TARGET.round_trip_call(forward, quantize_k_cache_slow(*forward.args, **forward.kwargs))
    return TARGET.round_trip_check(forward, dequantize(*call.args, **call.kwargs))


def test_the_oracles_round_trip_within_the_stated_bound_on_every_case():
    for case in TARGET.round_trip_cases():
        assert round_trip(case).ok, (case.name, round_trip(case).summary)


def test_the_bound_is_tight_enough_to_catch_an_error_of_a_tenth():
    sloppy = lambda *a, **k: (dequantize_k_cache_slow(*a, **k).float() * 1.1).to(torch.bfloat16)  # noqa: E731
    result = round_trip(TARGET.round_trip_cases()[0], sloppy)
    assert not result.ok and "beyond the bound" in result.summary and "allowed" in result.summary


def test_a_zero_tile_must_come_back_as_nan_and_the_rope_unchanged():
    zero_case = next(c for c in TARGET.round_trip_cases() if c.params["values"] == "zero_tiles")
    finite = lambda *a, **k: dequantize_k_cache_slow(*a, **k).nan_to_num(0.0)  # noqa: E731
    assert "of all-zero tiles not NaN" in round_trip(zero_case, finite).summary
    assert "rope element(s) changed" in round_trip(zero_case, drops_rope).summary


def test_round_trip_cases_are_the_quantizers_and_bf16():
    for case in TARGET.round_trip_cases():
        assert case.params["dtype"] == "bfloat16"
        QUANTIZE.build(case, "cpu")  # buildable by the forward target
