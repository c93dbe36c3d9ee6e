"""Cases for the K-cache quantizer: the seed document's regression cases, edge and error cases, the
hypothesis strategy for property cases, the timing ladder, and how any of them becomes a tensor.

A case's params are plain data: ``num_blocks, block_size, h_k, d, dv, tile_size, dtype, values, layout``.
``values`` names a value family chosen to stress quantization; ``layout`` how the tensor sits in memory.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from harness.core.domain import Domain
from harness.core.target import Case
from oracles.kcache_reference import FP8, FP8_MAX

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
# Order matters for hypothesis: it shrinks towards the first entry.
VALUE_FAMILIES = (
    "randn", "ones", "zeros", "negative", "zero_tiles", "negative_max", "mixed",
    "huge", "tiny", "subnormal", "ties", "nonfinite",
)
LAYOUTS = ("contiguous", "sliced", "transposed", "expanded")
PRODUCTION = {"d": 576, "dv": 512, "tile_size": 128, "dtype": "bfloat16"}

# Positive finite e4m3fn values by code, used to place inputs exactly on rounding ties.
_FP8_VALUES = torch.arange(127, dtype=torch.uint8).view(FP8).float()


def params(num_blocks: int, block_size: int, d: int, dv: int = 512, tile_size: int = 128,
           dtype: str = "float32", values: str = "randn", layout: str = "contiguous", h_k: int = 1) -> dict:
    return dict(num_blocks=num_blocks, block_size=block_size, h_k=h_k, d=d, dv=dv, tile_size=tile_size,
                dtype=dtype, values=values, layout=layout)


def _seed_case(name: str, nb: int, bs: int, d: int, dv: int, tile: int, dtype: str, values: str = "randn",
               h_k: int = 1, family: str = "seed") -> Case:
    return Case(name, family, params(nb, bs, d, dv, tile, dtype, values, h_k=h_k))


def named_cases() -> list[Case]:
    """The seed document's regression tests, then edge and error cases it did not have."""
    cases = [
        # codeflash PR 341, first test file (float32)
        _seed_case("basic_shape_and_dtype_cpu", 1, 1, 192, 128, 64, "float32"),
        _seed_case("basic_values_no_rope", 2, 3, 128, 128, 64, "float32", "ones"),
        _seed_case("edge_minimum_sizes", 1, 1, 128, 128, 128, "float32", "zeros"),
        _seed_case("edge_tile_size_not_divisor", 1, 1, 128, 128, 60, "float32"),
        _seed_case("edge_h_k_not_one", 1, 1, 128, 128, 64, "float32", h_k=2),
        _seed_case("large_scale_512_blocks_32_seq", 512, 32, 300, 256, 64, "float32"),
        _seed_case("large_scale_max_size_under_100mb", 64, 64, 64, 64, 32, "float32"),
        _seed_case("large_scale_randomized", 128, 8, 256, 256, 64, "float32"),
        _seed_case("large_scale_rope_part_consistency", 16, 16, 300, 256, 64, "float32"),
        # second test file (bfloat16 unless said)
        _seed_case("basic_shape_and_dtype", 2, 3, 520, 512, 128, "bfloat16"),
        _seed_case("basic_content_rope_copy", 1, 2, 520, 512, 128, "bfloat16"),
        _seed_case("basic_scale_factor_shape_and_type", 1, 1, 512, 512, 128, "bfloat16"),
        _seed_case("edge_zero_input", 1, 1, 512, 512, 128, "bfloat16", "zeros"),
        _seed_case("edge_negative_input", 1, 1, 128, 128, 128, "bfloat16", "negative"),
        _seed_case("edge_single_tile", 2, 2, 128, 128, 128, "bfloat16"),
        _seed_case("edge_minimal_block", 1, 1, 128, 128, 128, "bfloat16"),
        _seed_case("edge_invalid_h_k", 1, 1, 128, 128, 128, "bfloat16", h_k=2),
        _seed_case("edge_invalid_tile_size", 1, 1, 130, 128, 7, "bfloat16"),
        _seed_case("edge_d_equals_dv", 1, 1, 100, 100, 100, "bfloat16"),
        _seed_case("large_scale_max_size", 8, 16, 512, 512, 128, "bfloat16"),
        _seed_case("large_scale_many_blocks", 32, 16, 256, 256, 128, "bfloat16"),
        _seed_case("large_scale_dv_not_512", 4, 4, 256, 256, 64, "bfloat16"),
        _seed_case("large_scale_varied_dtype_float16", 2, 2, 128, 128, 64, "float16"),
        _seed_case("large_scale_varied_dtype_float32", 2, 2, 128, 128, 64, "float32"),
        _seed_case("large_scale_rope_part_content", 2, 2, 256, 128, 64, "float32"),
    ]
    for dtype in DTYPES:
        cases.append(_seed_case(f"production_layout_{dtype}", 4, 64, 576, 512, 128, dtype, family="edge"))
    for values in VALUE_FAMILIES[3:]:
        cases.append(_seed_case(f"production_{values}", 2, 16, 576, 512, 128, "bfloat16", values, family="edge"))
    for layout in LAYOUTS[1:]:
        cases.append(Case(f"production_{layout}", "edge", params(3, 8, 576, dtype="bfloat16", layout=layout)))
    # Each parameter away from its production value on a production-sized row: a candidate that assumes
    # dv=512 and tile 128 whenever a row looks like production fails here, whatever the example budget.
    cases += [
        _seed_case("production_row_dv_256", 2, 8, 576, 256, 128, "bfloat16", family="edge"),
        _seed_case("production_row_tile_64", 2, 8, 576, 512, 64, "bfloat16", family="edge"),
        _seed_case("production_row_d_544", 2, 8, 544, 512, 128, "bfloat16", family="edge"),
    ]
    cases += [
        _seed_case("d_less_than_dv", 1, 1, 100, 128, 64, "bfloat16", family="error"),
        _seed_case("scale_view_misaligned", 1, 2, 138, 130, 65, "float32", family="error"),
        _seed_case("rope_row_misaligned", 1, 2, 131, 128, 64, "bfloat16", family="error"),
        _seed_case("h_k_two_production", 2, 4, 576, 512, 128, "bfloat16", h_k=2, family="error"),
    ]
    return cases


def property_params(domain: Domain = Domain()) -> Any:
    """The hypothesis strategy of ``_draw_params``.  hypothesis is imported here, not with the module:
    every runner imports this target, and hypothesis took 0.2 s of each runner's start."""
    from hypothesis import strategies as st

    return st.composite(_draw_params)(domain)


def _draw_params(draw: Any, domain: Domain = Domain()) -> dict:
    """Every combination the oracle accepts (and a few it rejects, for error parity), on small shapes, drawn
    inside ``domain``: each param in turn is restricted to it (dependent params from the restricted ones)."""
    from hypothesis import strategies as st

    def pick(key: str, value: Any) -> Any:  # a value derived or drawn already, replaced where the domain says
        return draw(domain.restrict(key, st.just(value))) if key in domain.keys else value

    tile_size = draw(domain.restrict("tile_size", st.sampled_from([128, 64, 32, 16, 8, 4, 1, 2, 48, 96, 20, 24])
                                     | st.integers(1, 160)))
    num_tiles = draw(st.integers(1, 5))
    dv = pick("dv", tile_size * num_tiles + draw(st.sampled_from([0] * 9 + [1])))  # sometimes dv % tile != 0
    rope_dim = draw(st.sampled_from([0, 64, 2, 4, 8, 16]) | st.integers(0, 72))
    return params(
        num_blocks=pick("num_blocks", draw(st.integers(1, 4))),
        block_size=pick("block_size", draw(st.integers(1, 8))),
        h_k=pick("h_k", draw(st.sampled_from([1] * 9 + [2]))),
        d=pick("d", dv + rope_dim),
        dv=dv,
        tile_size=tile_size,
        dtype=draw(domain.restrict("dtype", st.sampled_from(list(DTYPES)))),
        values=draw(domain.restrict("values", st.sampled_from(VALUE_FAMILIES))),
        layout=draw(domain.restrict("layout", st.sampled_from(LAYOUTS))),
    )


def production(tokens: int, block_size: int = 64) -> Case:
    num_blocks = max(1, tokens // block_size)
    block_size = min(block_size, tokens)  # (fewer tokens than a block: one short block)
    return Case(f"prod-{num_blocks * block_size}", "size",
                params(num_blocks, block_size, **PRODUCTION))


def sizes(device: str, quick: bool) -> list[Case]:
    """From the seed's largest cases up to the production layout at many tokens."""
    seed_large = [
        Case("seed-512x32x300-fp32", "size", params(512, 32, 300, 256, 64, "float32")),
        Case("seed-8x16x512-bf16", "size", params(8, 16, 512, 512, 128, "bfloat16")),
    ]
    if quick:
        return seed_large[:1] + [production(4096)]
    if device == "cuda":
        return seed_large + [production(t) for t in (16384, 131072, 1048576)]
    return seed_large + [production(t) for t in (4096, 16384, 65536)]


_SIZE_RE = re.compile(r"^(\d+)x(\d+)x(\d+)((?:,[a-z_]+=[\w.]+)*)$")


def parse_size(text: str) -> Case:
    """``N`` is N tokens of the production layout; ``NBxBSxD[,dv=..,tile=..,dtype=..,values=..]`` any shape."""
    text = text.strip()
    if text.isdigit() and int(text) > 0:
        return production(int(text))
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"bad size {text!r}: expected a token count like 65536 or NBxBSxD[,dv=512,tile=128,dtype=bfloat16]")
    nb, bs, d = (int(g) for g in match.groups()[:3])
    options = dict(kv.split("=", 1) for kv in match.group(4).split(",") if kv)
    allowed = {"dv", "tile", "dtype", "values"}
    if unknown := set(options) - allowed:
        raise ValueError(f"bad size {text!r}: unknown option(s) {', '.join(sorted(unknown))}; allowed {sorted(allowed)}")
    dtype = options.get("dtype", "bfloat16")
    if dtype not in DTYPES:
        raise ValueError(f"bad size {text!r}: dtype must be one of {', '.join(DTYPES)}")
    dv, tile = int(options.get("dv", min(512, d))), int(options.get("tile", 128))
    return Case(text, "size", params(nb, bs, d, dv, tile, dtype, options.get("values", "randn")))


# -- building tensors ------------------------------------------------------------------------------

def _tile_view(x: torch.Tensor, dv: int, tile: int) -> torch.Tensor:
    return x[..., : dv - dv % tile].unflatten(-1, (-1, tile)) if dv >= tile > 0 else x[..., :0].unsqueeze(-1)


def _values(family: str, shape: tuple[int, ...], dv: int, tile: int, dtype: str, gen: torch.Generator) -> torch.Tensor:
    """float32 values of one family; every value is exactly representable in ``dtype``."""
    randn = lambda: torch.randn(shape, generator=gen)  # noqa: E731
    small_range = dtype == "float16"
    if family == "randn":
        x = randn()
    elif family == "ones":
        x = torch.ones(shape)
    elif family == "zeros":
        x = torch.zeros(shape)
    elif family == "negative":
        x = -randn().abs() - 0.01
    elif family == "mixed":
        x = randn() * torch.pow(10.0, torch.rand(shape, generator=gen) * 6 - 3)
    elif family == "huge":
        x = randn() * (1.0e4 if small_range else 1.0e36)
    elif family == "tiny":
        x = randn() * (1.0e-3 if small_range else 1.0e-30)
    elif family == "subnormal":
        x = randn() * (1.0e-6 if small_range else 1.0e-39)
    elif family == "nonfinite":
        x = randn()
        pick = torch.rand(shape, generator=gen)
        x[pick < 0.03] = float("inf")
        x[(pick >= 0.03) & (pick < 0.06)] = float("-inf")
        x[(pick >= 0.06) & (pick < 0.09)] = float("nan")
    elif family in ("zero_tiles", "negative_max", "ties"):
        x = randn()
        tiles = _tile_view(x, dv, tile)
        if family == "zero_tiles":
            tiles.mul_((torch.rand(tiles.shape[:-1], generator=gen) < 0.5).unsqueeze(-1))
        elif family == "negative_max":  # the largest magnitude of each tile is a negative number
            tiles[..., int(torch.randint(tile, (1,), generator=gen))] = -8.0
        else:  # every element exactly halfway between two fp8 codes once divided by a power-of-two scale
            code = torch.randint(0, 126, tiles.shape, generator=gen)
            sign = torch.where(torch.rand(tiles.shape, generator=gen) < 0.5, -1.0, 1.0)
            halfway = (_FP8_VALUES[code] + _FP8_VALUES[code + 1]) / 2
            scale = 2.0 ** int(torch.randint(-6, 7, (1,), generator=gen))
            tiles.copy_(sign * halfway * scale)
            tiles[..., 0] = FP8_MAX * scale  # sets the tile's scale to exactly ``scale``
    else:
        raise ValueError(f"unknown value family {family!r}")
    return x.to(DTYPES[dtype]).float()


def build_input(p: Mapping[str, Any], seed: int, device: str) -> torch.Tensor:
    """The input tensor of a case, with the requested memory layout."""
    shape = (p["num_blocks"], p["block_size"], p["h_k"], p["d"])
    gen = torch.Generator().manual_seed(seed)
    dtype = DTYPES[p["dtype"]]
    layout = p.get("layout", "contiguous")
    if layout == "expanded":  # every block aliases block 0's memory (stride 0)
        x = _values(p["values"], (1, *shape[1:]), p["dv"], p["tile_size"], p["dtype"], gen)
        return x.to(device=device, dtype=dtype).expand(shape)
    x = _values(p["values"], shape, p["dv"], p["tile_size"], p["dtype"], gen).to(device=device, dtype=dtype)
    if layout == "contiguous":
        return x
    if layout == "sliced":  # rows padded and offset by one element: unaligned, non-contiguous
        wide = torch.full((*shape[:-1], shape[-1] + 3), float("nan"), dtype=dtype, device=device)
        wide[..., 1 : shape[-1] + 1] = x
        return wide[..., 1 : shape[-1] + 1]
    if layout == "transposed":  # stored block-minor, then transposed back
        return x.transpose(0, 1).contiguous().transpose(0, 1)
    raise ValueError(f"unknown layout {layout!r}")
