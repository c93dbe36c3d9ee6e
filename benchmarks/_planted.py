"""Planted candidates for benchmarks/noise_floor.py, loaded in runners like any candidate."""

import os
import time

from oracles.kcache_reference import quantize_k_cache_slow


def identical(input_k_cache, dv=512, tile_size=128):
    """The slow loop itself, as a candidate (A against A)."""
    return quantize_k_cache_slow(input_k_cache, dv, tile_size)


def ten_percent_slower(input_k_cache, dv=512, tile_size=128):
    """The slow loop plus a busy wait of PLANTED_EXTRA_S seconds (a tenth of its median, set by the script)."""
    out = quantize_k_cache_slow(input_k_cache, dv, tile_size)
    end = time.perf_counter() + float(os.environ.get("PLANTED_EXTRA_S", "0"))
    while time.perf_counter() < end:
        pass
    return out
