"""Target: sglang's FP8 K-cache dequantizer ``_dequantize_k_cache_slow`` (``docs/dequantizer.md``).

Declares what the generic harness needs: the oracle (``kcache_dequant_reference``), its cases
(``_dequant_cases``), a comparison suited to a bfloat16 output, bytes moved, sizes — and the round trip
with the quantizer it inverts: ``dequantize(quantize(x))`` must give ``x`` back within fp8 precision.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.core.domain import Domain
from harness.core.target import Call, Case, Comparison, Difference, Target
from oracles import _dequant_cases as cases
from oracles.kcache_dequant_reference import dequantize_k_cache_slow

MAX_SHOWN = 5
# The round trip's bound per element, for a tile of maximum magnitude ``amax`` whose scale is a normal
# float: half an e4m3 step relative to the value (2^-4), the bfloat16 rounding of the scale and of the
# product (2^-9 each, and their products), and half an e4m3 subnormal step of the scale (2^-10 * amax/448).
ROUND_TRIP_RELATIVE = 2.0**-4 + 2.0**-7
ROUND_TRIP_AMAX = 2.0**-17


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1, t.shape[-1]).cpu().contiguous().view(torch.int16)


def _ordered(bits: torch.Tensor) -> torch.Tensor:
    """bfloat16 bit patterns onto integers whose difference counts representable steps."""
    b = bits.to(torch.int32)
    return torch.where(b < 0, -(b & 0x7FFF), b)


class DequantizeKCache(Target):
    name = "dequantize_k_cache"
    function_name = "_dequantize_k_cache_slow"
    source = "python/sglang/srt/layers/attention/nsa/dequant_k_cache.py"
    policies = ("exact", "ulp")
    policy_text = {
        "exact": "bfloat16 bits identical, every NaN counted as one NaN",
        "ulp": "values within 1 bfloat16 ulp (infinities and NaNs at the same places), rope part bit-exact",
    }
    line_kinds = (
        ("loop header", r"^\s*for\b"),
        ("allocation", r"torch\.(empty|zeros|ones|full)\b"),
        ("decode + multiply", r"(\*|\.to\(|float32|float8)"),
        ("kernel launch", r"\b(dequant\w*|kernel|launch)\w*\("),
        *Target.line_kinds[2:],
    )
    device_kind_names = {"cpu": {"kernel launch": "C call"}}  # on the CPU the one-pass kernels are C functions
    annotated_families = ("seed",)
    growth_params = ("num_blocks", "block_size")  # a size ladder adds tokens; the row shape is its family
    sizes_help = "sizes to time: N tokens of the production row (656 bytes: d=576, dv=512, tile 128), or NBxBSxD[,dv=..,tile=..]"
    precondition_errors = (AssertionError,)
    inverse_of = "quantize_k_cache"
    round_trip_text = (
        "dequantize(quantize(x)) on bfloat16 K caches: every element within 2^-4·|x| + 2^-7·|x| + 2^-17·amax "
        "of x (amax: the largest magnitude of its tile; half an e4m3 step, the bfloat16 roundings of the scale "
        "and of the product, half a subnormal step), the rope part bit-exact, and all-zero tiles NaN throughout.")

    oracle = staticmethod(dequantize_k_cache_slow)  # the plain function: profiles show its own lines

    def build(self, case: Case, device: str) -> Call:
        p = case.params
        return Call((cases.build_input(p, case.seed, device),), {"dv": p["dv"], "tile_size": p["tile_size"], "d": p["d"]})

    def named_cases(self) -> list[Case]:
        return cases.named_cases()

    def property_strategy(self, domain: Domain = Domain()) -> Any:
        return cases.property_params(domain)

    def describe(self, case: Case) -> str:
        p = case.params
        return (f"packed ({p['num_blocks']}, {p['block_size']}, {p['h_k']}, W) {p['storage']} {p['layout']} from "
                f"{p['source']} {p['values']}, d={p['d']}, dv={p['dv']}, tile_size={p['tile_size']}, seed={case.seed}")

    def check_output(self, call: Call, got: Any) -> str | None:
        (packed,), d = call.args, call.kwargs["d"]
        if not isinstance(got, torch.Tensor):
            return f"returned {type(got).__name__}, expected a torch.Tensor"
        if got.dtype != torch.bfloat16:
            return f"returned dtype {got.dtype}, expected torch.bfloat16"
        expected_shape = (packed.shape[0], packed.shape[1], 1, d)
        if tuple(got.shape) != expected_shape:
            return f"returned shape {tuple(got.shape)}, expected {expected_shape}"
        if got.device != packed.device:
            return f"returned a tensor on {got.device}, expected {packed.device}"
        return None

    def compare(self, call: Call, expected: Any, got: Any, policy: str) -> Comparison:
        dv, tile, block_size = call.kwargs["dv"], call.kwargs["tile_size"], call.args[0].shape[1]
        e, g = _bits(expected), _bits(got)
        nan_e, nan_g = expected.detach().reshape(e.shape).cpu().isnan(), got.detach().reshape(g.shape).cpu().isnan()
        if policy == "exact":
            bad = (e != g) & ~(nan_e & nan_g)
        elif policy == "ulp":
            steps = (_ordered(e) - _ordered(g)).abs()
            inf = expected.detach().reshape(e.shape).cpu().isinf() | got.detach().reshape(g.shape).cpu().isinf()
            bad = (nan_e != nan_g) | (~nan_e & ~nan_g & (steps > 1)) | (inf & (e != g))
            bad[:, dv:] |= (e[:, dv:] != g[:, dv:]) & ~(nan_e[:, dv:] & nan_g[:, dv:])
        else:
            raise ValueError(f"unknown policy {policy!r}")
        counts = []
        for segment, columns in (("values", slice(0, dv)), ("rope", slice(dv, None))):
            n = int(bad[:, columns].sum())
            if n:
                counts.append(f"{segment}: {n}/{bad[:, columns].numel()} differ")
        if not counts:
            return Comparison.passed()
        differences = []
        as_float = lambda bits: float(bits.view(torch.bfloat16).float())  # noqa: E731
        for token, column in (tuple(int(i) for i in idx) for idx in bad.nonzero()[:MAX_SHOWN]):
            block, position = divmod(token, block_size)
            where = f"block {block} token {position} " + (
                f"tile {column // tile} element {column % tile}" if column < dv else f"rope element {column - dv}")
            exp, got_bits = e[token, column], g[token, column]
            steps = int((_ordered(exp.view(1)) - _ordered(got_bits.view(1))).abs())
            differences.append(Difference("values" if column < dv else "rope", where,
                                          f"{as_float(exp):.6g} (0x{int(exp) & 0xFFFF:04X})",
                                          f"{as_float(got_bits):.6g} (0x{int(got_bits) & 0xFFFF:04X})", f"{steps} ulp"))
        return Comparison(ok=False, summary="; ".join(counts), differences=tuple(differences))

    def bytes_moved(self, call: Call) -> int:
        (packed,), d = call.args, call.kwargs["d"]
        tokens = packed.shape[0] * packed.shape[1]
        return tokens * (packed.shape[-1] * packed.element_size() + 2 * d)

    def case_bytes(self, case: Case) -> int:
        p = case.params
        tokens = p["num_blocks"] * p["block_size"]
        return tokens * (p["dv"] + 4 * (p["dv"] // p["tile_size"]) + 2 * (p["d"] - p["dv"]) + 2 * p["d"])

    def sizes(self, device: str, quick: bool) -> list[Case]:
        return cases.sizes(device, quick)

    def parse_size(self, text: str) -> Case:
        return cases.parse_size(text)

    # -- the round trip with the quantizer ----------------------------------------------------------
    def round_trip_cases(self) -> list[Case]:
        return cases.round_trip_cases()

    def round_trip_call(self, forward: Call, forward_output: Any) -> Call:
        x = forward.args[0]
        return Call((forward_output,), {"dv": forward.kwargs["dv"], "tile_size": forward.kwargs["tile_size"],
                                        "d": x.shape[-1]})

    def round_trip_check(self, forward: Call, output: Any) -> Comparison:
        x, dv, tile = forward.args[0], forward.kwargs["dv"], forward.kwargs["tile_size"]
        if not isinstance(output, torch.Tensor) or output.dtype != torch.bfloat16 or output.shape != x.shape:
            return Comparison(False, f"returned {getattr(output, 'dtype', type(output).__name__)} "
                                     f"{tuple(getattr(output, 'shape', ()))}, expected bfloat16 {tuple(x.shape)}")
        x, y = x.detach().cpu().float().reshape(-1, x.shape[-1]), output.detach().cpu().float().reshape(-1, x.shape[-1])
        tiles_x, tiles_y = x[:, :dv].unflatten(-1, (-1, tile)), y[:, :dv].unflatten(-1, (-1, tile))
        amax = tiles_x.abs().amax(dim=-1, keepdim=True)
        zero = (amax == 0).expand_as(tiles_x)
        allowed = ROUND_TRIP_RELATIVE * tiles_x.abs() + ROUND_TRIP_AMAX * amax
        wrong_zero = zero & ~tiles_y.isnan()
        too_far = ~zero & ~((tiles_y - tiles_x).abs() <= allowed)
        rope_bits = lambda t: t[:, dv:].to(torch.bfloat16).view(torch.int16)  # noqa: E731
        wrong_rope = rope_bits(x) != rope_bits(y)
        problems = [f"{int(m.sum())} {what}" for m, what in (
            (too_far, "element(s) beyond the bound"), (wrong_zero, "element(s) of all-zero tiles not NaN"),
            (wrong_rope, "rope element(s) changed")) if bool(m.any())]
        if not problems:
            return Comparison.passed()
        if bool(too_far.any()):
            token, t, i = (int(v) for v in too_far.nonzero()[0])
            problems.append(f"e.g. token {token} tile {t} element {i}: x={float(tiles_x[token, t, i]):.6g}, "
                            f"got {float(tiles_y[token, t, i]):.6g}, allowed ±{float(allowed[token, t, i]):.3g}")
        return Comparison(False, "; ".join(problems))


TARGET = DequantizeKCache()
