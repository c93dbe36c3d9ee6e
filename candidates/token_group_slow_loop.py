"""Per-token-group FP8 quantizer: the original slow loop, unchanged (it is the oracle itself: a control)."""

from harness.core.candidates import candidate
from oracles.token_group_reference import per_token_group_quant_fp8_slow

token_group_slow_loop = candidate(
    per_token_group_quant_fp8_slow,
    name="token_group_slow_loop",
    target="per_token_group_quant_fp8",
    doc="""The original loop, unchanged: one Python iteration per group, each making a float32 copy of the
    group for every token, reducing it to its amax, dividing, clamping and converting.  Timing it against
    the baseline (itself) shows the noise floor of the measurement.""",
)
