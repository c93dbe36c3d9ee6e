"""Cases for the K-cache dequantizer: named regression cases in the style of the quantizer's, the
hypothesis strategy for property cases, the timing ladder, the round-trip cases, and how any of them
becomes a packed tensor.

A case's params are plain data: ``num_blocks, block_size, h_k, d, dv, tile_size, source, values, storage,
layout``.  ``source`` says where the packed rows come from: the quantizer's output for an original K cache
of that dtype (``bfloat16``, ``float16``, ``float32``; the rope part stored as bfloat16, as the format
requires), or ``bytes`` — every byte random, so codes take all 256 values (NaN codes included) and scales
are any float32 (zero, negative, subnormal, infinite, NaN).  ``values`` is the quantizer's value family of
the original; ``storage`` the packed tensor's dtype (``float8_e4m3fn`` or ``uint8``); ``layout`` how it
sits in memory.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from harness.core.domain import Domain
from harness.core.target import Case
from oracles import _kcache_cases as quant_cases
from oracles.kcache_dequant_reference import FP8, packed_width
from oracles.kcache_reference import quantize_k_cache_slow

SOURCES = ("bfloat16", "float16", "float32", "bytes")
STORAGES = {"float8_e4m3fn": FP8, "uint8": torch.uint8}
LAYOUTS = ("contiguous", "sliced", "padded", "transposed")
VALUE_FAMILIES = ("randn", "zero_tiles", "negative_max", "mixed", "huge", "tiny", "subnormal", "ties", "nonfinite")
PRODUCTION = {"d": 576, "dv": 512, "tile_size": 128}

# Float32 scales that stress the multiply: signed zeros, subnormals, the extremes, infinities and NaN.
_SPECIAL_SCALES = torch.tensor([0.0, -0.0, 1e-45, -3e-39, 1.17549435e-38, 3.4e38, -3.4e38, float("inf"),
                                float("-inf"), float("nan"), 1.0, -1.0, 2.0**-9, 448.0])


def params(num_blocks: int, block_size: int, d: int = 576, dv: int = 512, tile_size: int = 128,
           source: str = "bfloat16", values: str = "randn", storage: str = "float8_e4m3fn",
           layout: str = "contiguous", h_k: int = 1) -> dict:
    return dict(num_blocks=num_blocks, block_size=block_size, h_k=h_k, d=d, dv=dv, tile_size=tile_size,
                source=source, values=values, storage=storage, layout=layout)


def named_cases() -> list[Case]:
    """Regression cases mirroring the quantizer's seed shapes, then edge and error cases."""
    seed = lambda name, nb, bs, d, dv, tile, source="bfloat16", values="randn": Case(  # noqa: E731
        name, "seed", params(nb, bs, d, dv, tile, source, values))
    cases = [
        seed("basic_shape_and_dtype", 2, 3, 520, 512, 128),
        seed("basic_content_rope_copy", 1, 2, 520, 512, 128),
        seed("basic_no_rope_float32_original", 2, 3, 128, 128, 64, "float32"),
        seed("edge_zero_input", 1, 1, 512, 512, 128, values="zero_tiles"),
        seed("edge_negative_max", 1, 1, 128, 128, 128, values="negative_max"),
        seed("edge_single_tile", 2, 2, 128, 128, 128),
        seed("edge_d_equals_dv", 1, 1, 100, 100, 100),
        seed("large_scale_many_blocks", 32, 16, 256, 256, 128),
        seed("large_scale_dv_not_512", 4, 4, 256, 256, 64),
        seed("large_scale_float16_original", 2, 2, 128, 128, 64, "float16"),
        seed("large_scale_rope_part_content", 2, 2, 256, 128, 64),
        seed("production_row_656_bytes", 4, 64, 576, 512, 128),
    ]
    for values in VALUE_FAMILIES[1:]:
        cases.append(Case(f"production_{values}", "edge", params(2, 16, values=values)))
    cases += [
        Case("production_random_bytes", "edge", params(2, 16, source="bytes", values="bytes")),
        Case("production_uint8_storage", "edge", params(2, 16, storage="uint8")),
        Case("random_bytes_uint8_small_tiles", "edge", params(3, 5, 192, 128, 32, "bytes", "bytes", "uint8")),
        # Each parameter away from its production value on a production-sized row: a candidate that
        # assumes dv=512, tile 128 or d=576 whenever the row looks like production fails here.
        Case("production_row_dv_256", "edge", params(2, 8, 576, 256, 128)),
        Case("production_row_tile_64", "edge", params(2, 8, 576, 512, 64)),
        Case("production_row_d_544", "edge", params(2, 8, 544, 512, 128)),
    ]
    for layout in LAYOUTS[1:]:
        cases.append(Case(f"production_{layout}", "edge", params(3, 8, layout=layout)))
    cases += [
        Case("h_k_two", "error", params(1, 2, 128, 128, 64, h_k=2)),
        Case("dv_not_multiple_of_tile", "error", params(1, 2, 130, 128, 60, source="bytes", values="bytes")),
        Case("scale_view_misaligned", "error", params(1, 2, 129, 128, 64, source="bytes", values="bytes")),
        Case("strided_bytes", "error", params(1, 2, 576, 512, 128, layout="strided")),
        Case("zero_tokens", "error", params(0, 64)),  # viewing 0 elements as (0, 64, -1) is ambiguous
    ]
    return cases


def property_params(domain: Domain = Domain()) -> Any:
    """The hypothesis strategy of ``_draw_params``.  hypothesis is imported here, not with the module:
    every runner imports this target, and hypothesis took 0.2 s of each runner's start."""
    from hypothesis import strategies as st

    return st.composite(_draw_params)(domain)


def _draw_params(draw: Any, domain: Domain = Domain()) -> dict:
    """Every shape the oracle accepts (and a few it rejects, for error parity), on small shapes, drawn inside
    ``domain``: each param in turn is restricted to it (dependent params from the restricted ones)."""
    from hypothesis import strategies as st

    def pick(key: str, value: Any) -> Any:  # a value derived or drawn already, replaced where the domain says
        return draw(domain.restrict(key, st.just(value))) if key in domain.keys else value

    tile_size = draw(domain.restrict("tile_size", st.sampled_from([128, 64, 32, 16, 8, 4])
                                     | st.integers(1, 96).map(lambda t: 4 * t)))
    dv = pick("dv", tile_size * draw(st.integers(1, 4)))
    rope_dim = draw(st.sampled_from([0, 64, 2, 8]) | st.integers(0, 36).map(lambda r: 2 * r))  # even: rows stay
    # aligned for the float32 view of the scales (odd ones are the named error cases')
    source = draw(domain.restrict("source", st.sampled_from(SOURCES)))
    return params(
        num_blocks=pick("num_blocks", draw(st.integers(1, 4))), block_size=pick("block_size", draw(st.integers(1, 8))),
        d=pick("d", dv + rope_dim), dv=dv, tile_size=tile_size, source=source,
        values=pick("values", "bytes") if source == "bytes" else draw(domain.restrict("values", st.sampled_from(VALUE_FAMILIES))),
        storage=draw(domain.restrict("storage", st.sampled_from(list(STORAGES)))),
        layout=draw(domain.restrict("layout", st.sampled_from(LAYOUTS))),
        h_k=pick("h_k", draw(st.sampled_from([1] * 19 + [2]))),
    )


def production(tokens: int, block_size: int = 64) -> Case:
    num_blocks = max(1, tokens // block_size)
    block_size = min(block_size, tokens)  # (fewer tokens than a block: one short block)
    return Case(f"prod-{num_blocks * block_size}", "size", params(num_blocks, block_size))


def sizes(device: str, quick: bool) -> list[Case]:
    if quick:
        return [production(4096)]
    if device == "cuda":
        return [production(t) for t in (4096, 131072, 1048576)]
    return [production(t) for t in (4096, 65536)]


def parse_size(text: str) -> Case:
    """``N`` is N tokens of the production row; ``NBxBSxD[,dv=..,tile=..]`` any shape."""
    text = text.strip()
    if text.isdigit() and int(text) > 0:
        return production(int(text))
    match = re.fullmatch(r"(\d+)x(\d+)x(\d+)((?:,(?:dv|tile)=\d+)*)", text)
    if not match:
        raise ValueError(f"bad size {text!r}: expected a token count like 65536 or NBxBSxD[,dv=512,tile=128]")
    nb, bs, d = (int(g) for g in match.groups()[:3])
    options = dict(kv.split("=", 1) for kv in match.group(4).split(",") if kv)
    return Case(text, "size", params(nb, bs, d, int(options.get("dv", min(512, d))), int(options.get("tile", 128))))


def round_trip_cases() -> list[Case]:
    """Quantizer cases (bf16 originals, the only dtype whose rope the packed format keeps) on which
    ``dequantize(quantize(x))`` is checked against ``x``: finite values whose tile scales are normal floats."""
    q = quant_cases.params
    return [Case(f"round_trip_{name}", "round_trip", q(*shape, dtype="bfloat16", values=values), seed)
            for seed, (name, shape, values) in enumerate([
                ("production_randn", (2, 16, 576, 512, 128), "randn"),
                ("production_zero_tiles", (2, 16, 576, 512, 128), "zero_tiles"),
                ("production_negative_max", (2, 16, 576, 512, 128), "negative_max"),
                ("production_mixed", (2, 16, 576, 512, 128), "mixed"),
                ("production_huge", (1, 8, 576, 512, 128), "huge"),
                ("production_tiny", (1, 8, 576, 512, 128), "tiny"),
                ("production_ties", (1, 8, 576, 512, 128), "ties"),
                ("small_tiles_with_rope", (3, 5, 192, 128, 32), "randn"),
            ])]


# -- building tensors ------------------------------------------------------------------------------

def _packed_rows(p: Mapping[str, Any], seed: int) -> torch.Tensor:
    """``(num_blocks, block_size, 1, W)`` uint8 rows, contiguous, on the CPU."""
    nb, bs, d, dv, tile = p["num_blocks"], p["block_size"], p["d"], p["dv"], p["tile_size"]
    width = packed_width(d, dv, tile) if tile > 0 else dv + 2 * (d - dv)
    gen = torch.Generator().manual_seed(seed)
    if p["source"] == "bytes" or dv % tile or d < dv or nb * bs == 0:
        rows = torch.randint(0, 256, (nb, bs, 1, width), dtype=torch.uint8, generator=gen)
        scale_bytes = slice(dv, dv + 4 * (dv // tile))
        scales = rows[..., scale_bytes].reshape(-1, 4).clone()  # written back below
        if scales.numel():  # a quarter of the scales are special values
            pick = torch.randint(0, len(_SPECIAL_SCALES) * 4, (scales.shape[0],), generator=gen)
            special = pick < len(_SPECIAL_SCALES)
            scales[special] = _SPECIAL_SCALES[pick[special]].view(torch.uint8).view(-1, 4)
            rows[..., scale_bytes] = scales.view(rows[..., scale_bytes].shape)
        return rows
    original = quant_cases.params(nb, bs, d, dv, tile, p["source"], p["values"])
    x = quant_cases.build_input(original, seed, "cpu")
    packed = quantize_k_cache_slow(x, dv, tile).view(torch.uint8).view(nb, bs, -1)
    rope = x[..., dv:].to(torch.bfloat16).reshape(nb, bs, d - dv).contiguous().view(torch.uint8)
    head = packed[..., : dv + 4 * (dv // tile)]
    return torch.cat([head, rope], dim=-1).view(nb, bs, 1, width)


def build_input(p: Mapping[str, Any], seed: int, device: str) -> torch.Tensor:
    """The packed input of a case, with its storage dtype and memory layout."""
    rows = _packed_rows(p, seed)
    if p["h_k"] != 1:
        rows = rows.expand(-1, -1, p["h_k"], -1).contiguous()
    rows = rows.to(device).view(STORAGES[p["storage"]])
    layout = p["layout"]
    if layout == "contiguous":
        return rows
    if layout == "sliced":  # blocks 1..nb of a larger buffer: offset but viewable
        wide = torch.zeros((rows.shape[0] + 2, *rows.shape[1:]), dtype=rows.dtype, device=device)
        wide[1:-1] = rows
        return wide[1:-1]
    if layout == "padded":  # each row padded by 16 bytes: strided rows, still viewable
        wide = torch.zeros((*rows.shape[:-1], rows.shape[-1] + 16), dtype=rows.dtype, device=device)
        wide[..., : rows.shape[-1]] = rows
        return wide[..., : rows.shape[-1]]
    if layout == "transposed":  # stored block-minor, then transposed back
        return rows.transpose(0, 1).contiguous().transpose(0, 1)
    if layout == "strided":  # every other byte: the rows cannot be viewed as float32 scales
        wide = torch.zeros((*rows.shape[:-1], 2 * rows.shape[-1]), dtype=rows.dtype, device=device)
        wide[..., ::2] = rows
        return wide[..., ::2]
    raise ValueError(f"unknown layout {layout!r}")
