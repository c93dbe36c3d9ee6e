"""Target: sglang's FP8 K-cache quantizer ``_quantize_k_cache_slow``.

Declares what the generic harness needs to know about it: the oracle (``kcache_reference``), its cases
(``_kcache_cases``), the layout-aware comparison (``_kcache_compare``), the bytes one call must move, and
the sizes to time.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.core.domain import Domain
from harness.core.target import Call, Case, Comparison, Target
from oracles import _kcache_cases as cases
from oracles._kcache_compare import Tolerances, compare
from oracles.kcache_reference import FP8, KCacheLayout, quantize_k_cache_slow


class QuantizeKCache(Target):
    name = "quantize_k_cache"
    function_name = "_quantize_k_cache_slow"
    source = "python/sglang/srt/layers/attention/nsa/quant_k_cache.py"
    policies = ("exact", "ulp", "dequant")
    policy_text = {
        "exact": "bytes identical, every NaN code counted as one NaN",
        "ulp": "fp8 codes within N ulps (sign checked), scales within a relative tolerance, rope exact, "
               "NaNs at the same places",
        "dequant": "dequantized values within atol/rtol of the oracle's, NaNs at the same places",
    }
    line_kinds = (
        ("loop header", r"^\s*for\b"),
        ("allocation", r"torch\.(empty|zeros|ones|full)\b"),
        ("abs + max reduction", r"\b(abs|amax|max)\b"),
        ("division + fp8 conversion", r"((?<!/)/(?!/)|\bdiv\b|\.to\(|float8)"),
        ("kernel launch", r"\b(quantize|kernel|launch)\w*\("),
        *Target.line_kinds[2:],
    )
    device_kind_names = {"cpu": {"kernel launch": "C call"}}  # on the CPU the one-pass kernels are C functions
    annotated_families = ("seed",)  # the seed document's regression tests, annotated with their runtimes
    growth_params = ("num_blocks", "block_size")  # a size ladder adds tokens; the row shape is its family
    sizes_help = ("sizes to time: N tokens of the production layout (d=576, dv=512, tile 128, bfloat16), "
                  "or NBxBSxD[,dv=..,tile=..,dtype=..]")
    precondition_errors = (AssertionError,)

    def __init__(self, tolerances: Tolerances = Tolerances()) -> None:
        self.tolerances = tolerances

    # The plain function, not a wrapper: profiles of the baseline show its own lines.
    oracle = staticmethod(quantize_k_cache_slow)

    def build(self, case: Case, device: str) -> Call:
        p = case.params
        return Call((cases.build_input(p, case.seed, device),), {"dv": p["dv"], "tile_size": p["tile_size"]})

    def named_cases(self) -> list[Case]:
        return cases.named_cases()

    def property_strategy(self, domain: Domain = Domain()) -> Any:
        return cases.property_params(domain)

    def describe(self, case: Case) -> str:
        p = case.params
        shape = (p["num_blocks"], p["block_size"], p["h_k"], p["d"])
        return (f"x{shape} {p['dtype']} {p['values']} {p['layout']}, dv={p['dv']}, tile_size={p['tile_size']}, "
                f"seed={case.seed}")

    def check_output(self, call: Call, got: Any) -> str | None:
        (x,), dv, tile = call.args, call.kwargs["dv"], call.kwargs["tile_size"]
        if not isinstance(got, torch.Tensor):
            return f"returned {type(got).__name__}, expected a torch.Tensor"
        if got.dtype != FP8:
            return f"returned dtype {got.dtype}, expected {FP8}"
        layout = KCacheLayout.of(x, dv, tile)
        expected_shape = (x.shape[0], x.shape[1], 1, layout.width)
        if tuple(got.shape) != expected_shape:
            return f"returned shape {tuple(got.shape)}, expected {expected_shape}"
        if got.device != x.device:
            return f"returned a tensor on {got.device}, expected {x.device}"
        return None

    def compare(self, call: Call, expected: Any, got: Any, policy: str) -> Comparison:
        (x,), dv, tile = call.args, call.kwargs["dv"], call.kwargs["tile_size"]
        return compare(KCacheLayout.of(x, dv, tile), x.shape[1], expected, got, policy, self.tolerances, x.dtype)

    def bytes_moved(self, call: Call) -> int:
        (x,), dv, tile = call.args, call.kwargs["dv"], call.kwargs["tile_size"]
        tokens = x.shape[0] * x.shape[1]
        return tokens * (x.shape[-1] * x.element_size() + KCacheLayout.of(x, dv, tile).width)

    def case_bytes(self, case: Case) -> int:
        p = case.params
        elem = torch.empty((), dtype=cases.DTYPES[p["dtype"]]).element_size()
        width = p["dv"] + 4 * (p["dv"] // p["tile_size"]) + elem * (p["d"] - p["dv"])
        return p["num_blocks"] * p["block_size"] * (p["d"] * elem + width)

    def sizes(self, device: str, quick: bool) -> list[Case]:
        return cases.sizes(device, quick)

    def parse_size(self, text: str) -> Case:
        return cases.parse_size(text)


TARGET = QuantizeKCache()
