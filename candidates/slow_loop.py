"""Candidate 1: the original slow tile loop, unchanged (it is the oracle itself)."""

from harness.core.candidates import candidate
from oracles.kcache_reference import quantize_k_cache_slow

slow_loop = candidate(
    quantize_k_cache_slow,
    name="slow_loop",
    target="quantize_k_cache",
    doc="""The original `_quantize_k_cache_slow`, unchanged: one Python iteration per tile, each slicing the
    input three times, reducing with `torch.abs(...).max(dim=-1).values`, dividing in float32 and writing
    the tile's codes and scale into strided views of the output.  Timing it against the baseline (itself)
    shows the noise floor of the measurement.""",
)
