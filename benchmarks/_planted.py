"""Planted candidates for benchmarks/noise_floor.py, loaded in runners like any candidate.  They call the
oracle of the target named by PLANTED_TARGET (set by the script; default the quantizer)."""

import os
import time
from functools import lru_cache

from harness.core.target import get_target


@lru_cache(maxsize=1)
def _oracle():
    return get_target(os.environ.get("PLANTED_TARGET", "quantize_k_cache")).oracle


def identical(*args, **kwargs):
    """The oracle itself, as a candidate (A against A)."""
    return _oracle()(*args, **kwargs)


def ten_percent_slower(*args, **kwargs):
    """The oracle plus a busy wait of PLANTED_EXTRA_S seconds (a tenth of its median, set by the script)."""
    out = _oracle()(*args, **kwargs)
    end = time.perf_counter() + float(os.environ.get("PLANTED_EXTRA_S", "0"))
    while time.perf_counter() < end:
        pass
    return out
