"""Candidates specialised to the production row (bf16, d=576, dv=512, tile 128), as real fast kernels are:
outside it they fail a bare assert.  One is right on its domain, one is wrong there too (float32 scale),
one declares its domain, one is a drop-in that refuses nothing."""

from __future__ import annotations

import torch

from candidates.fused import fused
from harness.core.candidates import candidate
from tests.wrong_candidates import float32_scale

PRODUCTION = {"dtype": ("bfloat16",), "d": (576,), "dv": (512,), "tile_size": (128,)}


def _assert_production(x: torch.Tensor, dv: int, tile_size: int) -> None:
    assert x.dtype == torch.bfloat16 and x.shape[-1] == 576 and dv == 512 and tile_size == 128


def production_only(input_k_cache, dv=512, tile_size=128):
    """Right on the production row, a bare AssertionError elsewhere."""
    _assert_production(input_k_cache, dv, tile_size)
    return fused(input_k_cache, dv, tile_size)


def production_only_float32_scale(input_k_cache, dv=512, tile_size=128):
    """A bare AssertionError off the production row, and a float32 scale on it (wrong under exact)."""
    _assert_production(input_k_cache, dv, tile_size)
    return float32_scale(input_k_cache, dv, tile_size)


@candidate(target="quantize_k_cache", supports={"dtype": ("bfloat16",), "d": (576,), "dv": (512,), "tile_size": (128,)})
def declared(input_k_cache, dv=512, tile_size=128):
    """Declares the production row as its domain."""
    _assert_production(input_k_cache, dv, tile_size)
    return fused(input_k_cache, dv, tile_size)


@candidate(target="quantize_k_cache", supports="dtype=float16")
def nothing_to_time(input_k_cache, dv=512, tile_size=128):
    """A domain that no default size falls in (named cases do)."""
    return fused(input_k_cache, dv, tile_size)


@candidate(target="quantize_k_cache", supports="dtype=float32 d>=4096")
def nothing_to_check(input_k_cache, dv=512, tile_size=128):
    """A domain that no named case falls in: it would pass on nothing."""
    return fused(input_k_cache, dv, tile_size)



@candidate(target="quantize_k_cache", supports="h_k=2")
def only_error_cases(input_k_cache, dv=512, tile_size=128):
    """Its domain holds only inputs the oracle rejects: it raises as the oracle does, and computes nothing."""
    raise AssertionError
