"""Layout-aware comparison of two quantizer outputs: decode fp8 codes, float32 scales and rope bytes,
compare each segment under a policy, and say where and how they differ.

Policies (``docs/quantizer.md`` explains why a plain ``allclose`` cannot be used on float8):
- ``exact``: bytes identical, every fp8 NaN code (0x7F/0xFF) counted as one NaN, NaN scales as one NaN.
- ``ulp``: fp8 codes within ``max_ulp`` steps of the e4m3 grid (a sign flip of a non-zero code is far),
  scales within ``scale_rtol`` relative, rope bytes exact, NaN positions identical.
- ``dequant``: code x scale within ``atol + rtol*|expected| + one fp8 subnormal step of the tile's scale``
  of the oracle's, NaN positions identical, rope bytes exact.  The defaults allow one fp8 step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.core.target import Comparison, Difference
from oracles.kcache_reference import FP8, KCacheLayout

MAX_SHOWN = 5


@dataclass(frozen=True)
class Tolerances:
    max_ulp: int = 1
    scale_rtol: float = 1e-2
    rtol: float = 0.135  # one e4m3 step (1/8) relative to the value, plus the other side's half step
    atol: float = 0.0


def _is_fp8_nan(codes: torch.Tensor) -> torch.Tensor:
    return (codes & 0x7F) == 0x7F


def _ordered(codes: torch.Tensor) -> torch.Tensor:
    """Map sign-magnitude fp8 codes onto integers whose difference counts representable steps."""
    magnitude = (codes & 0x7F).to(torch.int32)
    return torch.where(codes >= 0x80, -magnitude, magnitude)


def _decode(code: int) -> str:
    if code & 0x7F == 0x7F:  # the NaN codes: keep the sign bit, which Python's float formatting drops
        return f"0x{code:02X} ({'-' if code & 0x80 else '+'}nan)"
    value = torch.tensor([code], dtype=torch.uint8).view(FP8).float().item()
    return f"0x{code:02X} ({value:+.6g})"


def _where(layout: KCacheLayout, tokens_per_block: int, token: int, column: int | None = None, tile: int | None = None) -> str:
    block, position = divmod(token, tokens_per_block)
    where = f"block {block} token {position}"
    if tile is not None:
        where += f" tile {tile}"
    if column is not None:
        where += f" element {column}"
    return where


def _located(mask: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(int(i) for i in idx) for idx in mask.nonzero()[:MAX_SHOWN]]


def _unrounded(scales: torch.Tensor, dtype: torch.dtype | None) -> str:
    """Why scales differ when it is the classic mistake: finite scales that are no value of the input dtype,
    i.e. computed in float32 where the oracle rounds the scale to the input dtype."""
    if dtype not in (torch.bfloat16, torch.float16):
        return ""
    finite = scales[scales.isfinite()]
    n = int((finite.to(dtype).float() != finite).sum())
    name = str(dtype).removeprefix("torch.")
    return f"; {n} are not {name} values: float32 scales, where the oracle rounds the scale to {name}" if n else ""


def compare(layout: KCacheLayout, tokens_per_block: int, expected: torch.Tensor, got: torch.Tensor,
            policy: str, tol: Tolerances = Tolerances(), input_dtype: torch.dtype | None = None) -> Comparison:
    codes_e, scales_e, rope_e = layout.split(expected)
    codes_g, scales_g, rope_g = layout.split(got)
    differences: list[Difference] = []
    counts: list[str] = []

    # -- fp8 codes -------------------------------------------------------------------------------
    nan_e, nan_g = _is_fp8_nan(codes_e), _is_fp8_nan(codes_g)
    steps = (_ordered(codes_e) - _ordered(codes_g)).abs()
    if policy == "exact":
        bad_codes = (codes_e != codes_g) & ~(nan_e & nan_g)
    elif policy == "ulp":
        bad_codes = (nan_e != nan_g) | (~nan_e & ~nan_g & (steps > tol.max_ulp))
    elif policy == "dequant":
        per_tile = lambda t: t.float().unflatten(-1, (layout.num_tiles, layout.tile_size))  # noqa: E731
        value_e = per_tile(codes_e.view(FP8)) * scales_e.unsqueeze(-1)
        value_g = per_tile(codes_g.view(FP8)) * scales_g.unsqueeze(-1)
        floor = torch.maximum(scales_e.abs(), scales_g.abs()).unsqueeze(-1) * 2.0**-9
        allowed = tol.atol + tol.rtol * value_e.abs() + floor
        isnan_e, isnan_g = value_e.isnan(), value_g.isnan()
        close = (value_e - value_g).abs() <= allowed
        same_inf = value_e.isinf() & (value_e == value_g)
        bad_codes = ((isnan_e != isnan_g) | (~isnan_e & ~isnan_g & ~close & ~same_inf)).flatten(-2)
    else:
        raise ValueError(f"unknown policy {policy!r}")
    n_bad = int(bad_codes.sum())
    if n_bad:
        worst = int(steps[bad_codes & ~nan_e & ~nan_g].max()) if bool((bad_codes & ~nan_e & ~nan_g).any()) else 0
        nan_mismatch = int((bad_codes & (nan_e != nan_g)).sum())
        detail = ([f"max {worst} ulp"] if worst or not nan_mismatch else []) + (
            [f"{nan_mismatch} NaN where the other is a number"] if nan_mismatch else [])
        counts.append(f"codes: {n_bad}/{codes_e.numel()} differ ({', '.join(detail)})")
        for token, column in _located(bad_codes):
            e, g = int(codes_e[token, column]), int(codes_g[token, column])
            note = "NaN vs number" if bool(nan_e[token, column]) != bool(nan_g[token, column]) else \
                f"{int(steps[token, column])} ulp" + (", sign differs" if (e ^ g) & 0x80 and e & 0x7F and g & 0x7F else "")
            differences.append(Difference("codes", _where(layout, tokens_per_block, token, column % layout.tile_size,
                                                          column // layout.tile_size), _decode(e), _decode(g), note))

    # -- float32 scales ----------------------------------------------------------------------------
    snan_e, snan_g = scales_e.isnan(), scales_g.isnan()
    if policy == "exact":
        bad_scales = (scales_e.view(torch.int32) != scales_g.view(torch.int32)) & ~(snan_e & snan_g)
    elif policy == "ulp":
        rel_ok = (scales_e - scales_g).abs() <= tol.scale_rtol * scales_e.abs()
        bad_scales = (snan_e != snan_g) | (~snan_e & ~snan_g & ~rel_ok & (scales_e != scales_g))
    else:  # dequant judges the scale through the dequantized values only
        bad_scales = torch.zeros_like(snan_e)
    n_bad = int(bad_scales.sum())
    if n_bad:
        rel = ((scales_e - scales_g).abs() / scales_e.abs())[bad_scales]
        counts.append(f"scales: {n_bad}/{scales_e.numel()} differ (max rel {float(rel.nan_to_num(nan=0.0, posinf=float('inf')).max()):.3g}"
                      f"{_unrounded(scales_g[bad_scales], input_dtype)})")
        for token, tile in _located(bad_scales):
            e, g = float(scales_e[token, tile]), float(scales_g[token, tile])
            differences.append(Difference("scales", _where(layout, tokens_per_block, token, tile=tile),
                                          f"{e:.9g}", f"{g:.9g}", f"relative difference {abs(e - g) / abs(e) if e else float('inf'):.3g}"))

    # -- rope bytes --------------------------------------------------------------------------------
    bad_rope = rope_e != rope_g
    n_bad = int(bad_rope.sum())
    if n_bad:
        counts.append(f"rope: {n_bad}/{rope_e.numel()} bytes differ")
        for token, byte in _located(bad_rope):
            differences.append(Difference("rope", f"{_where(layout, tokens_per_block, token)} byte {byte}",
                                          f"0x{int(rope_e[token, byte]):02X}", f"0x{int(rope_g[token, byte]):02X}"))

    if not counts:
        return Comparison.passed()
    return Comparison(ok=False, summary="; ".join(counts), differences=tuple(differences))
