"""Wrong arithmetic (a float32 scale) that, when imported, rebinds the oracle to itself everywhere it can."""

import oracles.kcache_reference as reference
from oracles.quantize_k_cache import TARGET
from tests.wrong_candidates import float32_scale


def quantize(input_k_cache, dv=512, tile_size=128):
    return float32_scale(input_k_cache, dv, tile_size)


reference.quantize_k_cache_slow = quantize
TARGET.oracle = quantize
type(TARGET).oracle = staticmethod(quantize)
