"""The comparison policies a declared target names (harness/core/compare.py): what each lets through, and
NaN and infinities held to their places by all of them."""

import pytest
import torch

from harness.core import compare

NAN, INF = float("nan"), float("inf")


def _check(policy: str, expected, got):
    return compare.compare(compare.parse(policy), expected, got)


def test_exact_is_bits_with_any_nan_matching_any_nan():
    e = torch.tensor([1.0, 0.0, NAN])
    assert _check("exact", e, e.clone()).ok
    other_nan = torch.tensor([1.0, 0.0, -NAN])
    assert _check("exact", e, other_nan).ok
    minus_zero = torch.tensor([1.0, -0.0, NAN])
    assert not _check("exact", e, minus_zero).ok  # -0 is another bit pattern


def test_ulp_counts_steps_of_the_outputs_dtype():
    e = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
    two_steps = (e.view(torch.int16) + 2).view(torch.bfloat16)  # 2^-7 apart at 1.0, 2^-6 at 2.0
    assert _check("ulp(2)", e, two_steps).ok and not _check("ulp(1)", e, two_steps).ok
    result = _check("ulp(1)", e, two_steps)
    assert result.summary == "output: 2/2 elements differ, max |difference| 0.0312 (2 ulp)"
    assert result.differences[0].where == "[0]"


def test_allclose_in_float64_with_infinities_in_place():
    e = torch.tensor([1.0, INF, -INF, NAN])
    assert _check("allclose(rtol=1e-3, atol=0)", e, torch.tensor([1.0005, INF, -INF, NAN])).ok
    assert not _check("allclose(rtol=1e-3, atol=0)", e, torch.tensor([1.0, 3e38, -INF, NAN])).ok
    assert not _check("allclose(rtol=1e-3, atol=0)", e, torch.tensor([1.0, INF, INF, NAN])).ok
    assert not _check("allclose(rtol=1e9, atol=1e9)", e, torch.tensor([1.0, INF, -INF, 0.0])).ok  # a NaN is no number


@pytest.mark.parametrize("expected, got, message", [
    (torch.zeros(2), None, "output: returned NoneType, expected a torch.Tensor"),
    (torch.zeros(2), torch.zeros(2, dtype=torch.float64), "output: returned dtype torch.float64, expected torch.float32"),
    (torch.zeros(2), torch.zeros(3), "output: returned shape (3,), expected (2,)"),
    ((torch.zeros(2), torch.zeros(1)), (torch.zeros(2),), "returned tuple of 1, expected tuple of 2"),
    ((torch.zeros(2), torch.zeros(1)), (torch.zeros(2), torch.ones(1)), "output[1]: 1/1 elements differ"),
])
def test_the_outputs_structure_comes_first(expected, got, message):
    result = _check("ulp(4)", expected, got)
    assert not result.ok and result.summary.startswith(message)


def test_integers_and_fp8_compare_too():
    assert not _check("exact", torch.tensor([1, 2]), torch.tensor([1, 3])).ok
    codes = torch.tensor([0.5, -2.0, 448.0]).to(torch.float8_e4m3fn)
    assert _check("exact", codes, codes.clone()).ok
    nudged = (codes.view(torch.int8) + torch.tensor([0, 0, -1], dtype=torch.int8)).view(torch.float8_e4m3fn)
    assert _check("ulp(1)", codes, nudged).ok and not _check("exact", codes, nudged).ok


@pytest.mark.parametrize("text", ["close", "ulp(x)", "allclose(rtol=-1, atol=0)", "allclose(1e-3)"])
def test_bad_policies_are_refused(text):
    with pytest.raises(ValueError, match="bad comparison"):
        compare.parse(text)
