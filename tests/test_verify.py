"""Verification catches each family of wrong candidate under `exact`, and lets a correct one through."""

import pytest

from harness.core.target import Case, get_target
from harness.core.reproducer import regression_test
from harness.judge.verify import InProcess, Verifier, check_case
from tests import wrong_candidates as wrong

TARGET = get_target("quantize_k_cache")


@pytest.fixture(scope="module")
def exact():
    return Verifier(TARGET, "exact", examples=60, seed=0)


def verify(verifier, fn):
    return verifier.verify(fn, f"tests/wrong_candidates.py:{fn.__name__}")


def failed_families(result):
    return {f.family for f in result.families if f.failed}


def test_correct_candidate_in_another_style_passes(exact):
    result = verify(exact, wrong.correct_other_style)
    assert result.passed, result.first_failure
    assert result.cases > 100
    assert {f.family for f in result.families} == {"seed", "edge", "error", "repeat", "property"}


def test_wrong_only_for_one_dtype(exact):
    result = verify(exact, wrong.wrong_for_fp16)
    assert not result.passed
    assert result.pattern.startswith("only where dtype in {float16}")
    assert all(f.params["dtype"] == "float16" for f in result.failures)


def test_wrong_only_for_some_configurations(exact):
    result = verify(exact, wrong.wrong_small_tiles)
    assert not result.passed
    assert all(f.params["dv"] >= 256 and f.params["dv"] % 128 == 0 and f.params["tile_size"] < 128 for f in result.failures)


def test_wrong_only_for_a_value_pattern(exact):
    result = verify(exact, wrong.zero_tile_as_zero)
    assert not result.passed
    assert {f.params["values"] for f in result.failures} <= {"zeros", "zero_tiles", "subnormal"}
    assert "NaN where the other is a number" in result.failures[0].reason


def test_wrong_only_for_non_contiguous_layouts(exact):
    result = verify(exact, wrong.assumes_contiguous)
    assert not result.passed
    assert {f.params["layout"] for f in result.failures} <= {"sliced", "transposed", "expanded"}
    assert result.pattern.startswith("only where layout in {expanded, sliced, transposed}")


@pytest.mark.parametrize("fn, reason", [
    (wrong.no_h_k_check, "returned normally where the oracle raised AssertionError"),
    (wrong.value_error_precondition, "raised ValueError: dv must be a multiple of tile_size where the oracle's precondition raised AssertionError"),
])
def test_error_parity(exact, fn, reason):
    result = verify(exact, fn)
    assert not result.passed
    assert any(reason in f.reason for f in result.failures)


def test_caching_across_calls_fails_on_the_repeat_cases(exact):
    wrong._cache.clear()
    result = verify(exact, wrong.caches_by_shape)
    assert "repeat" in failed_families(result)


def test_mutating_the_input_fails(exact):
    result = verify(exact, wrong.mutates_input)
    assert any(f.reason == "changed its input in place" for f in result.failures)


@pytest.mark.parametrize("fn, reason, kind", [
    (wrong.returns_uint8, "returned dtype torch.uint8, expected torch.float8_e4m3fn", "error"),
    (wrong.returns_none, "returned NoneType, expected a torch.Tensor", "error"),
    (wrong.raises_always, "raised RuntimeError: not implemented on this backend", "refusal"),
])
def test_wrong_output_kind_is_named_with_a_clear_message(exact, fn, reason, kind):
    from harness.judge.task import verdict_of

    result = verify(exact, fn)
    assert result.failures[0].reason == reason and result.failures[0].kind == kind
    # a wrong shape or dtype is a wrong answer (fail), as wrong values are; only raising on everything is error
    assert verdict_of(result) == ("error" if kind == "refusal" else "fail")


def test_float32_scale_fails_exact_with_a_precise_diagnosis(exact):
    result = verify(exact, wrong.float32_scale)
    assert result.pattern.startswith("only where dtype in {bfloat16, float16} (never with float32)")
    first = result.failures[0]
    assert "scales:" in first.reason and "codes:" in first.reason and "max 1 ulp" in first.reason
    assert first.differences[0].startswith("codes at block ")
    assert any(d.startswith("scales at block") and "relative difference" in d for f in result.failures for d in f.differences)


def test_float32_scale_passes_dequant_except_where_the_oracle_scale_underflows():
    """Under `dequant` the float32-scale kernel agrees everywhere except bf16/fp16 inputs so small that the
    oracle's scale rounds to zero in the input dtype and its codes become NaN: a real difference, reported."""
    result = Verifier(TARGET, "dequant", examples=60, seed=0).verify(wrong.float32_scale, "x")
    assert all(f.params["values"] == "subnormal" for f in result.failures), [f.reason for f in result.failures]
    assert all("NaN where the other is a number" in f.reason for f in result.failures)
    named = [c for c in TARGET.named_cases() if c.params["values"] != "subnormal"]
    assert Verifier(TARGET, "dequant", examples=0, named=named).verify(wrong.float32_scale, "x").passed


def test_reciprocal_multiply_passes_ulp_on_ordinary_data():
    named = [c for c in TARGET.named_cases() if c.params["values"] not in ("subnormal",)]
    exact = Verifier(TARGET, "exact", examples=0, named=named).verify(wrong.reciprocal_multiply, "x")
    ulp = Verifier(TARGET, "ulp", examples=0, named=named).verify(wrong.reciprocal_multiply, "x")
    assert not exact.passed and "max 1 ulp" in exact.failures[0].reason
    assert ulp.passed, ulp.first_failure


def test_property_failure_is_shrunk_and_printed_as_a_pytest_test(exact):
    result = verify(exact, wrong.wrong_for_fp16)
    prop = [f for f in result.failures if f.family == "property"]
    assert len(prop) == 1
    p = prop[0].params
    assert p["dtype"] == "float16" and p["num_blocks"] == 1 and p["block_size"] == 1  # shrunk to the minimum
    namespace: dict = {}
    exec("from harness.core.target import Case\nfrom harness.judge.verify import check_case\n" + prop[0].test, namespace)
    test = next(v for k, v in namespace.items() if k.startswith("test_"))
    with pytest.raises(AssertionError, match="codes:|scales:"):
        test()


def test_same_seed_same_cases():
    a = Verifier(TARGET, "exact", examples=30, seed=5).verify(wrong.wrong_for_fp16, "x")
    b = Verifier(TARGET, "exact", examples=30, seed=5).verify(wrong.wrong_for_fp16, "x")
    assert a == b


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown policy 'close'"):
        Verifier(TARGET, "close")


def test_check_case_passes_for_the_oracle_semantics():
    case = Case("one", "seed", TARGET.named_cases()[0].params, 3)
    check_case("quantize_k_cache", "candidates/fused.py:fused", case)
    assert "check_case('quantize_k_cache', 'candidates/fused.py:fused', case, policy='exact')" in \
        regression_test(TARGET, case, "candidates/fused.py:fused", "exact")


def test_named_cases_alone_catch_a_candidate_that_assumes_the_production_shape():
    v = Verifier(TARGET, "exact", examples=0).verify(InProcess(wrong.assumes_production_when_wide, TARGET), "wide")
    failed = {f.case for f in v.failures}
    assert {"production_row_dv_256", "production_row_tile_64"} <= failed, failed


def test_identical_outputs_are_decided_without_the_targets_comparison():
    import math

    import torch

    from harness.judge.verify import identical

    x = torch.randn(4, 8)
    assert identical((x, 1.5, None), (x.clone(), 1.5, None))
    assert identical(torch.tensor([math.nan]), torch.tensor([math.nan]))  # the same bytes, NaN or not
    assert identical(x.t(), x.t().contiguous())  # the same logical elements, whatever the layout
    assert not identical(torch.tensor([0.0]), torch.tensor([-0.0]))  # equal as numbers, not as bytes
    assert not identical(x, x.to(torch.float64))
    assert not identical(x, x.reshape(8, 4))
    assert not identical((x,), [x])
    assert not identical(x, 1.0)


def test_a_write_into_the_input_is_seen_by_the_digest():
    import torch

    from harness.core.protocol import digest

    x = torch.zeros(1 << 23, dtype=torch.uint8)  # above the sampled size: every byte counts unless sampled
    before = digest([x])
    x[12345] = 1
    assert digest([x]) != before
    assert digest([x], sample=True) != digest([torch.zeros_like(x)], sample=True)  # byte 12345 is in the sample


def test_a_timing_size_is_timed_on_the_build_it_was_verified_on_unless_the_call_wrote_into_it():
    from harness.core.target import TIMING_FAMILY
    from harness.runner.worker import Worker

    size = TARGET.sizes("cpu", True)[0]
    case = Case(size.name, TIMING_FAMILY, size.params, size.seed)
    worker = Worker(TARGET.oracle, TARGET)
    worker.call(case)
    verified = worker._verified_builds[worker._key(size)]
    assert worker.inputs(size).base is verified  # not built a second time
    assert worker._key(size) not in worker._verified_builds  # handed over once

    def scribbles(kv_cache, *args, **kwargs):
        out = TARGET.oracle(kv_cache, *args, **kwargs)
        kv_cache.view(-1)[0] += 1
        return out

    writer = Worker(scribbles, TARGET)
    reply, _ = writer.call(case)
    assert "error" not in reply and reply["after_digest"] != reply["input_digest"]
    assert writer._key(size) not in writer._verified_builds


def test_outputs_of_any_structure_come_back_to_the_cpu_for_the_cross_device_check():
    """(On CUDA the oracle's CUDA output is compared with its CPU output; a tuple once crashed a run there.)"""
    import torch

    from harness.core.target import map_tensors

    out = map_tensors(torch.Tensor.cpu, (torch.zeros(2), [torch.ones(1), 3], "x"))
    assert isinstance(out, tuple) and isinstance(out[1], list) and out[1][1] == 3 and out[2] == "x"
    assert all(t.device.type == "cpu" for t in (out[0], out[1][0]))
