"""Dequantizer candidate 1: the original slow tile loop, unchanged (it is the oracle itself)."""

from harness.core.candidates import candidate
from oracles.kcache_dequant_reference import dequantize_k_cache_slow

dequant_slow_loop = candidate(
    dequantize_k_cache_slow,
    name="dequant_slow_loop",
    target="dequantize_k_cache",
    doc="""The original `_dequantize_k_cache_slow`, unchanged: the packed rows are viewed as fp8 codes,
    float32 scales and bfloat16 rope; the rope is copied, then one Python iteration per tile widens the
    tile's codes to a float32 temporary, multiplies it by the tile's scale (a second float32 temporary)
    and stores the product into a strided slice of the bfloat16 output.  Timing it against the baseline
    (itself) shows the noise floor of the measurement.""",
)
