"""The fused quantizer as one Triton kernel (CUDA), bit-exact with the oracle as it runs on CUDA.

One program quantizes BLOCK_T tokens: for each tile it loads the tile once, reduces |x| to the tile maximum,
forms the scale exactly as torch does on CUDA (``amax / 448.0`` with a CPU scalar is computed there as
``amax * (1/448)`` in float32, then rounded to the input dtype), divides with IEEE round-to-nearest
(``div_rn``, not the approximate ``/``), converts to e4m3 and stores the codes, then the tile's float32
scale; last it copies the rope part verbatim.  Output rows are written as their three segments with
row-contiguous stores (production rows are 656 bytes, 16-byte aligned).

Two things the hardware does differently from torch, handled explicitly:
- ``tl.max`` ignores NaN, torch's max propagates it: a tile with a NaN gets a NaN scale.
- the fp32 -> e4m3 instruction saturates (satfinite: beyond the 464 midpoint and infinities become +-448);
  torch's conversion does so or gives the NaN code depending on the torch build and device
  (``_torch_fp8.saturates`` probes it once), so SAT_FINITE / SAT_INF choose; NaN always gives 0x7F | sign.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
import triton
import triton.language as tl

from candidates import _triton_launch
from candidates._kernels import prepare, saturates

FP8 = torch.float8_e4m3fn
ROUNDING = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
ROWS_BLOCK_T, ROWS_NUM_WARPS = 2, 2  # tuned on an H100 at 1M production tokens: benchmarks/NOTES.md
INV_448 = tl.constexpr(1.0 / 448.0)  # as torch on CUDA: amax * (1/448), see the docstring


@triton.jit
def _tile_scales(tiles, AXIS: tl.constexpr, ROUND_SCALE: tl.constexpr):
    """The oracle's scale as torch computes it on CUDA: max |x| along AXIS (a NaN propagates, which
    ``tl.max`` alone would not do), times float32(1/448), rounded to the input dtype (nearest even)."""
    amax = tl.max(tl.abs(tiles), axis=AXIS)
    has_nan = tl.max((tiles != tiles).to(tl.int32), axis=AXIS) > 0
    scale = tl.where(has_nan, float("nan"), amax) * INV_448
    if ROUND_SCALE == 1:
        scale = scale.to(tl.bfloat16, fp_downcast_rounding="rtne").to(tl.float32)
    elif ROUND_SCALE == 2:
        scale = scale.to(tl.float16, fp_downcast_rounding="rtne").to(tl.float32)
    return scale


@triton.jit
def _as_torch_e4m3(q, SAT_FINITE: tl.constexpr, SAT_INF: tl.constexpr):
    """fp32 -> e4m3fn codes (uint8) as torch converts: the hardware's round-to-nearest-even, then torch's
    choice between saturation and NaN beyond the range, NaN always the NaN code with q's sign."""
    code = q.to(tl.float8e4nv).to(tl.uint8, bitcast=True)
    nan_code = ((q.to(tl.uint32, bitcast=True) >> 24) & 0x80).to(tl.uint8) | 0x7F
    if SAT_FINITE and SAT_INF:  # the hardware already saturates both
        code = tl.where(q != q, nan_code, code)
    elif not SAT_FINITE and not SAT_INF:  # one select: beyond 464 (infinities included) or NaN
        code = tl.where((tl.abs(q) > 464.0) | (q != q), nan_code, code)
    else:
        is_inf = tl.abs(q) == float("inf")
        beyond = tl.where(is_inf, SAT_INF == 0, (tl.abs(q) > 464.0) & (SAT_FINITE == 0))
        code = tl.where(beyond | (q != q), nan_code, code)
    return code


@triton.jit
def _quantize_kernel(
    x_ptr, out_ptr, n_tokens, x_row_stride, x_col_stride, row_bytes,
    DV: tl.constexpr, TILE: tl.constexpr, TILE_P2: tl.constexpr, NUM_TILES: tl.constexpr,
    ROPE: tl.constexpr, ROPE_P2: tl.constexpr,
    ROUND_SCALE: tl.constexpr, SAT_FINITE: tl.constexpr, SAT_INF: tl.constexpr, BLOCK_T: tl.constexpr,
):
    pid = tl.program_id(0)
    tok = (pid * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
    tmask = tok < n_tokens
    col = tl.arange(0, TILE_P2)
    mask = tmask[:, None] & (col < TILE)[None, :]
    x_rows = x_ptr + tok[:, None] * x_row_stride
    out_rows = out_ptr.to(tl.pointer_type(tl.uint8)) + tok[:, None] * row_bytes  # bytes of the fp8 rows
    for t in tl.static_range(NUM_TILES):
        x = tl.load(x_rows + (t * TILE + col)[None, :] * x_col_stride, mask=mask, other=0.0).to(tl.float32)
        scale = _tile_scales(x, 1, ROUND_SCALE)
        q = tl.math.div_rn(x, scale[:, None])
        code = _as_torch_e4m3(q, SAT_FINITE, SAT_INF)
        tl.store(out_rows + (t * TILE + col)[None, :], code, mask=mask)
        tl.store((out_rows + DV + 4 * t).to(tl.pointer_type(tl.float32)), scale[:, None], mask=tmask[:, None])
    if ROPE > 0:
        rcol = tl.arange(0, ROPE_P2)
        rmask = tmask[:, None] & (rcol < ROPE)[None, :]
        rope = tl.load(x_rows + (DV + rcol)[None, :] * x_col_stride, mask=rmask)
        rope_out = (out_rows + DV + 4 * NUM_TILES).to(tl.pointer_type(x_ptr.dtype.element_ty))
        tl.store(rope_out + rcol[None, :], rope, mask=rmask)


@triton.jit
def _quantize_rows_kernel(
    x_ptr, out_ptr, n_tokens, x_row_stride, x_col_stride, row_bytes,
    DV: tl.constexpr, TILE: tl.constexpr, NUM_TILES: tl.constexpr,
    ROPE: tl.constexpr, ROPE_P2: tl.constexpr,
    ROUND_SCALE: tl.constexpr, SAT_FINITE: tl.constexpr, SAT_INF: tl.constexpr, BLOCK_T: tl.constexpr,
):
    """The same arithmetic for power-of-two tiling: the whole nope row and the rope are loaded up front
    (more independent loads in flight), the row is viewed as [tokens, tiles, tile] for the reduction."""
    pid = tl.program_id(0)
    tok = (pid * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
    tmask = tok < n_tokens
    col = tl.arange(0, DV)
    x_rows = x_ptr + tok[:, None] * x_row_stride
    out_rows = out_ptr.to(tl.pointer_type(tl.uint8)) + tok[:, None] * row_bytes  # bytes of the fp8 rows
    x = tl.load(x_rows + col[None, :] * x_col_stride, mask=tmask[:, None], other=0.0)
    if ROPE > 0:
        rcol = tl.arange(0, ROPE_P2)
        rmask = tmask[:, None] & (rcol < ROPE)[None, :]
        rope = tl.load(x_rows + (DV + rcol)[None, :] * x_col_stride, mask=rmask)
    tiles = tl.reshape(x.to(tl.float32), (BLOCK_T, NUM_TILES, TILE))
    scale = _tile_scales(tiles, 2, ROUND_SCALE)
    q = tl.math.div_rn(tiles, scale[:, :, None])
    code = _as_torch_e4m3(q, SAT_FINITE, SAT_INF)
    tl.store(out_rows + col[None, :], tl.reshape(code, (BLOCK_T, DV)), mask=tmask[:, None])
    scales_out = (out_rows + DV).to(tl.pointer_type(tl.float32))
    tl.store(scales_out + tl.arange(0, NUM_TILES)[None, :], scale, mask=tmask[:, None])
    if ROPE > 0:
        rope_out = (out_rows + DV + 4 * NUM_TILES).to(tl.pointer_type(x_ptr.dtype.element_ty))
        tl.store(rope_out + rcol[None, :], rope, mask=rmask)


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def supports(x: torch.Tensor) -> bool:
    return x.dtype in ROUNDING and (x.is_cuda or x.device.type == "cpu")


@lru_cache(maxsize=256)
def _launch_plan(dtype: torch.dtype, device: str, d: int, dv: int, tile_size: int, block_t: int | None,
                 num_warps: int | None, variant: str | None) -> tuple[Any, int, dict]:
    """The kernel, tokens per program and constants for one configuration, computed once."""
    num_tiles = dv // tile_size
    sat_finite, sat_inf = saturates(device)
    constants = dict(DV=dv, TILE=tile_size, NUM_TILES=num_tiles, ROPE=d - dv,
                     ROPE_P2=triton.next_power_of_2(max(d - dv, 1)), ROUND_SCALE=ROUNDING[dtype],
                     SAT_FINITE=sat_finite, SAT_INF=sat_inf)
    if variant is None:
        variant = "rows" if _power_of_two(tile_size) and _power_of_two(num_tiles) and dv <= 1024 else "tiles"
    if variant == "rows":
        block_t = block_t or ROWS_BLOCK_T
        return _quantize_rows_kernel, block_t, dict(constants, BLOCK_T=block_t, num_warps=num_warps or ROWS_NUM_WARPS)
    tile_p2 = triton.next_power_of_2(tile_size)
    block_t = block_t or max(1, min(64, 4096 // tile_p2))
    return _quantize_kernel, block_t, dict(constants, TILE_P2=tile_p2, BLOCK_T=block_t, num_warps=num_warps or 4)


def quantize(input_k_cache: torch.Tensor, dv: int = 512, tile_size: int = 128, block_t: int | None = None,
             num_warps: int | None = None, variant: str | None = None, fast: bool = True) -> torch.Tensor:
    """The quantizer's contract (same preconditions and errors as the oracle), computed by one kernel.

    With ``fast`` (the default) a configuration seen before is launched by its cached launcher (``cached``);
    the first call of a configuration checks and launches through Triton (``kernel[grid](...)``) and keeps
    what that launch compiled.  ``fast=False`` is that normal path every time, registering nothing."""
    options = None if block_t is None and num_warps is None and variant is None else (block_t, num_warps, variant)
    if fast:
        out = cached(input_k_cache, dv, tile_size, options)
        if out is not None:
            return out
    prep = prepare(input_k_cache, dv, tile_size)
    x = prep.rows
    tokens = x.shape[0]
    if tokens:
        kernel, per_program, constants = _launch_plan(x.dtype, str(x.device), x.shape[1], dv, tile_size, block_t,
                                                       num_warps, variant)
        grid = (triton.cdiv(tokens, per_program),)
        runtime_args = (tokens, x.stride(0), x.stride(1), prep.width)
        compiled = kernel[grid](x, prep.out, *runtime_args, **constants)
        STATS["normal"] += 1
        if fast and input_k_cache.is_cuda:
            _register(input_k_cache, dv, tile_size, options, x, prep.result(), kernel, grid, runtime_args,
                      constants, compiled)
    return prep.result()


# -- the cached launch (candidates/_triton_launch.py says how and what it checks) ----------------------------

STATS = _triton_launch.new_stats()  # launches through Triton, launches made, last refusal
_LAUNCHES = _triton_launch.Launches()  # configuration -> launch(x) -> output or None; None: none
_Tensor = torch.Tensor


def cached(x: torch.Tensor, dv: int, tile_size: int, options: tuple | None = None) -> torch.Tensor | None:
    """The output of ``quantize(x, dv, tile_size)`` through the configuration's cached launch, or None where
    there is none (first call of a configuration, a bad input, another device...): then call ``quantize``."""
    if x.__class__ is not _Tensor:
        return None
    # _key(x, dv, tile_size, options), written out: this is the per-call path
    launch = _LAUNCHES.by_key.get((x.shape, x.stride(), x.dtype, x.get_device(), dv.__class__, dv,
                                   tile_size.__class__, tile_size, options))
    return None if launch is None else launch(x)


def launcher(x: torch.Tensor, dv: int = 512, tile_size: int = 128, options: tuple | None = None) -> Any:
    """The configuration's launch function (``launch(x)`` -> output, or None: take the normal path), or None
    where it has none yet (benchmarks time it alone)."""
    return _LAUNCHES.get(_key(x, dv, tile_size, options)) if x.__class__ is _Tensor else None


def _key(x: torch.Tensor, dv: int, tile_size: int, options: tuple | None) -> tuple:
    """What fixes every argument of the launch but the pointers: the input's shape, strides, dtype and device,
    dv and tile_size (with their types: 512.0 must not find 512's launcher), the tuning options."""
    return x.shape, x.stride(), x.dtype, x.get_device(), dv.__class__, dv, tile_size.__class__, tile_size, options


def fast_path_status() -> dict:
    """For checks and benchmarks: counters, launches, and why the fast path is off if it is."""
    return _LAUNCHES.status(STATS)


def _register(x: torch.Tensor, dv: int, tile_size: int, options: tuple | None, rows: torch.Tensor,
              out: torch.Tensor, kernel: Any, grid: tuple, runtime_args: tuple, constants: dict,
              compiled: Any) -> None:
    """After a normal launch of a checked input: keep the configuration's launch (None where it cannot be
    made).  Never raises."""
    if x.__class__ is _Tensor:
        _LAUNCHES.add(_key(x, dv, tile_size, options),
                      lambda: _make_launcher(x, rows, out, kernel, grid, runtime_args, constants, compiled), STATS)


def _make_launcher(x: torch.Tensor, rows: torch.Tensor, out: torch.Tensor, kernel: Any, grid: tuple,
                   runtime_args: tuple, constants: dict, compiled: Any) -> Any:
    """``launch(x)`` of one configuration: allocate the output, find the rows, launch; None where this Triton
    or input does not allow one."""
    if x.numel() == 0 or out.numel() == 0 or not out.is_contiguous():  # out: the result, as quantize returns it
        return None
    if list(kernel.arg_names[:2]) != ["x_ptr", "out_ptr"]:
        return None
    launch_rows = _triton_launch.make_launch(kernel, grid, rows, out, runtime_args, constants, compiled, STATS)
    if launch_rows is None:
        return None
    view = rows.data_ptr() == x.data_ptr() and rows.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    rows_shape, rows_strides = tuple(rows.shape), rows.stride()
    out_shape, out_dtype, out_device, empty = tuple(out.shape), out.dtype, out.device, torch.empty

    def launch(x: torch.Tensor) -> torch.Tensor | None:
        out = empty(out_shape, dtype=out_dtype, device=out_device)
        if view:
            rows = x
        else:  # the layout cannot be viewed as rows: the copy prepare() makes
            rows = x.reshape(rows_shape)
            if rows.stride() != rows_strides:
                return None
        return out if launch_rows(rows, out) else None

    return launch
