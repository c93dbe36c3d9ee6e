"""The value families declared targets draw inputs from (harness/core/values.py)."""

import pytest
import torch

from harness.core import values


@pytest.mark.parametrize("family", sorted(values.FAMILIES))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_each_family_fills_the_same_bytes_for_the_same_seed(family, dtype):
    a, b = values.fill(family, (64, 33), dtype, seed=5), values.fill(family, (64, 33), dtype, seed=5)
    assert a.dtype == getattr(torch, dtype) and a.shape == (64, 33)
    assert torch.equal(a.view(torch.int16 if a.element_size() == 2 else torch.int32),
                       b.view(torch.int16 if b.element_size() == 2 else torch.int32))


def test_the_families_hold_what_they_say():
    finfo = torch.finfo(torch.float16)
    huge = values.fill("huge", (4096,), "float16", 1).float()
    assert torch.isfinite(huge).all() and huge.abs().max() > finfo.max / 64
    sub = values.fill("subnormal", (4096,), "float16", 1).float()
    assert ((sub != 0) & (sub.abs() < finfo.tiny)).float().mean() > 0.9
    tiny = values.fill("tiny", (4096,), "float32", 1)
    assert tiny.abs().max() < 1e-36 and (tiny.abs() >= torch.finfo(torch.float32).tiny).float().mean() > 0.5
    odd = values.fill("inf_nan", (4096,), "bfloat16", 1).float()
    assert torch.isnan(odd).any() and (odd == float("inf")).any() and (odd == float("-inf")).any()
    assert not values.fill("zeros", (8,), "float32", 1).any()


def test_integers_take_only_the_families_that_make_sense():
    ints = values.fill("randn", (1000,), "int32", 3)
    assert ints.dtype == torch.int32 and ints.min() >= -100 and ints.max() <= 100
    with pytest.raises(ValueError, match="cannot fill an integer dtype"):
        values.check(["huge"], ["int32"])
    with pytest.raises(ValueError, match="unknown value family"):
        values.check(["gauss"], ["float32"])
