"""The fused dequantizer as one Triton kernel (CUDA), bit-exact with the oracle on CUDA.

One program handles BLOCK_T tokens and TILES_PER_PROGRAM tiles of each (all four in production): it loads
the codes as a [tokens, tiles, tile] block and the scales as [tokens, tiles], widens each code to float32,
multiplies it by its tile's scale, rounds to bfloat16 and stores the row; the programs of the first tile
group also copy the rope bytes (loaded with the codes, below MANY_TOKENS: small grids wait on every trip to
memory).  A configuration seen before is launched through its cached launch (``cached``: the host path of
a bare launch, ``candidates/_triton_launch.py``).  Every step is integer or one IEEE float32 multiply, so
nothing depends on how the compiler or the hardware converts:
- the e4m3fn code is decoded with integer operations (exponent + 120 and mantissa << 20 for normal codes,
  ``m * 2^-9`` for the subnormal ones, exact in float32), not with the conversion instruction;
- the product is ``a * b`` of two float32 values: one ``mul`` (no addition follows, so nothing can be
  contracted into an FMA, and Triton does not flush float32 subnormals);
- float32 -> bfloat16 is rounded to nearest even with the integer rounding torch's kernels use
  (``(u + 0x7FFF + lsb) >> 16``), and NaN is detected from the bits (no fast-math folding of ``x != x``)
  and written as torch spells it on the device (NAN_BITS, probed once: candidates/_dequant.py).
The same operations run identically under Triton's interpreter, so the kernel is checked bit for bit on
the CPU too (tests/_interpret_dequant.py).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import triton
import triton.language as tl

from candidates import _triton_launch
from candidates._dequant import Rows, oracle_nan_bits

# The production row's launch shape: (tokens per program, warps, the rope loaded with the codes).  Up to
# MANY_TOKENS, the best at 128, 16,384 and 65,536 tokens together of 123 shapes on an H200
# (benchmarks/dequant_tune_cuda.py, dequant-tune-cuda-h200.log: 4.26 / 14.92 / 45.47 us where the large
# shape took 5.59 / 15.60 / 48.14); on an H100, 4.69 us at 128 tokens and 63% of copy bandwidth at 16,384
# (`harness bench`, gpu-session5-h100-bench.txt).  From MANY_TOKENS on, the best of 30 at 1,048,576 tokens
# on an H100 (dequant_gpu_check-h100-tune.log: 686 us, 92%; the small shape took 741 us there).  The switch
# lies between the sizes measured (65,536 and 1,048,576 tokens).
SMALL_SHAPE, LARGE_SHAPE, MANY_TOKENS = (1, 2, True), (8, 4, False), 1 << 18
NUM_WARPS, STREAM = 4, False  # other layouts' warps; streaming cache hints (off: no gain measured)
MAX_ELEMENTS = 4096  # codes per program (tokens x tiles x padded tile) for the other layouts


@triton.jit
def _dequantize_kernel(
    in_ptr, out_ptr, n_tokens, block_size, block_stride, token_stride,
    D: tl.constexpr, DV: tl.constexpr, TILE: tl.constexpr, TILE_P2: tl.constexpr, NUM_TILES: tl.constexpr,
    TILES_PER_PROGRAM: tl.constexpr, ROPE: tl.constexpr, ROPE_P2: tl.constexpr, NAN_BITS: tl.constexpr,
    FLAT: tl.constexpr, FULL_COLUMNS: tl.constexpr, EVICT: tl.constexpr, STORE_CACHE: tl.constexpr,
    BLOCK_T: tl.constexpr, EARLY_ROPE: tl.constexpr,
):
    in_ptr = in_ptr.to(tl.pointer_type(tl.uint8))  # the bytes of the rows, whatever their one-byte dtype
    out_ptr = out_ptr.to(tl.pointer_type(tl.int16))  # the bits of the bfloat16 output
    tok = (tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
    tmask = tok < n_tokens
    if FLAT:  # blocks follow each other: token t's row is t rows in
        row = in_ptr + tok * token_stride
    else:
        row = in_ptr + (tok // block_size) * block_stride + (tok % block_size) * token_stride
    out_row = out_ptr + tok * D  # the output is contiguous

    k = tl.program_id(1) * TILES_PER_PROGRAM + tl.arange(0, TILES_PER_PROGRAM)  # this program's tiles
    i = tl.arange(0, TILE_P2)
    col = k[:, None] * TILE + i[None, :]  # [tiles, tile]: element offsets in the row
    kmask = k < NUM_TILES
    if FULL_COLUMNS:  # every program's tiles exist and fill their blocks: only the tokens are masked
        emask = tmask[:, None, None]
    else:
        emask = tmask[:, None, None] & (kmask[:, None] & (i < TILE)[None, :])[None, :, :]
    codes = tl.load(row[:, None, None] + col[None, :, :], mask=emask, other=0, eviction_policy=EVICT).to(tl.uint32)
    scale_ptr = (row[:, None] + DV + 4 * k[None, :]).to(tl.pointer_type(tl.float32))
    scale = tl.load(scale_ptr, mask=tmask[:, None] & kmask[None, :], other=1.0, eviction_policy=EVICT)
    if ROPE > 0:  # the rope bytes, copied by the programs of the first tile group
        r = tl.arange(0, ROPE_P2)
        rope_len = tl.where(tl.program_id(1) == 0, ROPE, 0)  # the other tile groups copy none
        rmask = tmask[:, None] & (r < rope_len)[None, :]
        rope_in = (row + DV + 4 * NUM_TILES).to(tl.pointer_type(tl.int16))
        if EARLY_ROPE:  # loaded with the codes: one trip to memory, not two in a row (small grids wait on it)
            rope = tl.load(rope_in[:, None] + r[None, :], mask=rmask, eviction_policy=EVICT)

    mag = codes & 0x7F
    normal = (mag << 20) + (120 << 23)
    subnormal = (mag.to(tl.int32).to(tl.float32) * 0.001953125).to(tl.uint32, bitcast=True)  # m * 2^-9
    value = (tl.where(mag < 8, subnormal, normal) | ((codes & 0x80) << 24)).to(tl.float32, bitcast=True)
    product = value * scale[:, :, None]
    u = product.to(tl.uint32, bitcast=True)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    is_nan = (mag == 0x7F) | ((u & 0x7FFFFFFF) > 0x7F800000)
    bits = tl.where(is_nan, NAN_BITS, rounded).to(tl.uint16).to(tl.int16, bitcast=True)
    tl.store(out_row[:, None, None] + col[None, :, :], bits, mask=emask, cache_modifier=STORE_CACHE)

    if ROPE > 0:
        if not EARLY_ROPE:
            rope = tl.load(rope_in[:, None] + r[None, :], mask=rmask, eviction_policy=EVICT)
        tl.store(out_row[:, None] + DV + r[None, :], rope, mask=rmask, cache_modifier=STORE_CACHE)


def supports(x: torch.Tensor) -> bool:
    return x.is_cuda or x.device.type == "cpu"  # the CPU: under TRITON_INTERPRET=1 only (tests)


@lru_cache(maxsize=256)
def _launch_plan(device: str, d: int, dv: int, tile_size: int, flat: bool, nan: int, block_t: int | None,
                 num_warps: int | None, stream: bool | None, tiles_per_program: int | None = None,
                 early_rope: bool | None = None, many: bool = False) -> tuple[int, int, dict]:
    """Tokens per program, tile groups and the kernel's constants for one configuration (``many``: at least
    MANY_TOKENS tokens), computed once."""
    num_tiles = dv // tile_size
    tile_p2 = triton.next_power_of_2(tile_size)
    if tiles_per_program is None:
        tiles_per_program = min(triton.next_power_of_2(max(num_tiles, 1)), max(1, MAX_ELEMENTS // tile_p2))
    per_token = tiles_per_program * tile_p2
    if per_token == dv == 512:  # the production row (512 codes, all in one program) as tuned
        tuned_block_t, tuned_warps, tuned_early = LARGE_SHAPE if many else SMALL_SHAPE
    else:  # ~MAX_ELEMENTS codes per program
        tuned_block_t, tuned_warps, tuned_early = max(1, min(64, MAX_ELEMENTS // per_token)), NUM_WARPS, True
    block_t = block_t or tuned_block_t
    constants = dict(D=d, DV=dv, TILE=tile_size, TILE_P2=tile_p2, NUM_TILES=num_tiles,
                     TILES_PER_PROGRAM=tiles_per_program, ROPE=d - dv, ROPE_P2=triton.next_power_of_2(max(d - dv, 1)),
                     NAN_BITS=nan, FLAT=flat,
                     FULL_COLUMNS=tile_p2 == tile_size and 0 < num_tiles and num_tiles % tiles_per_program == 0,
                     BLOCK_T=block_t, num_warps=num_warps or tuned_warps,
                     EARLY_ROPE=tuned_early if early_rope is None else early_rope)
    if STREAM if stream is None else stream:  # read once, written once: hint both past the caches
        constants.update(EVICT="evict_first", STORE_CACHE=".cs")
    else:
        constants.update(EVICT="", STORE_CACHE="")
    return block_t, triton.cdiv(num_tiles, tiles_per_program), constants


def dequantize(rows: Rows, dv: int, tile_size: int, d: int, block_t: int | None = None,
               num_warps: int | None = None, stream: bool | None = None, tiles_per_program: int | None = None,
               early_rope: bool | None = None, register: torch.Tensor | None = None) -> torch.Tensor:
    """A fresh ``(num_blocks, block_size, d)`` bfloat16 tensor filled from the checked ``rows``.

    ``register``: the caller's input, where ``rows.data`` is that input itself and every check of the
    oracle's passed on its shape, strides, dtype and storage offset alone (``rows_of``'s common case): the
    configuration's launch is then kept, and later calls of it go through ``cached`` (``_triton_launch``)."""
    result = rows.empty_result(d)
    block_size = rows.block_size
    tokens = rows.num_blocks * block_size
    if result.numel():
        flat = rows.block_stride == block_size * rows.token_stride or rows.num_blocks == 1
        device = str(result.device)
        nan = oracle_nan_bits(device, tile_size, tokens)
        per_program, groups, constants = _launch_plan(device, d, dv, tile_size, flat, nan, block_t, num_warps, stream,
                                                      tiles_per_program, early_rope, tokens >= MANY_TOKENS)
        grid = (triton.cdiv(tokens, per_program), max(groups, 1))
        runtime_args = (tokens, block_size, rows.block_stride, rows.token_stride)
        compiled = _dequantize_kernel[grid](rows.data, result, *runtime_args, **constants)
        STATS["normal"] += 1
        options = (block_t, num_warps, stream, tiles_per_program, early_rope)
        if register is not None and register.__class__ is _Tensor and register is rows.data and result.is_cuda:
            _LAUNCHES.add(_key(register, dv, tile_size, d, options),
                          lambda: _make_launch(rows.data, result, grid, runtime_args, constants, compiled), STATS)
    return result


# -- the cached launch (candidates/_triton_launch.py says how and what it checks) ----------------------------

STATS = _triton_launch.new_stats()  # launches through Triton, launches made, last refusal
_LAUNCHES = _triton_launch.Launches()  # configuration -> launch(x) -> output or None; None: none
_Tensor = torch.Tensor
DEFAULT_OPTIONS = (None, None, None, None, None)


def cached(x: torch.Tensor, dv: int, tile_size: int, d: int) -> torch.Tensor | None:
    """``dequantize(rows_of(x, ...), dv, tile_size, d)``, viewed as ``(num_blocks, block_size, 1, d)``,
    through the configuration's cached launch, or None where there is none (first call of a configuration,
    a layout that needs checks, another device...)."""
    if x.__class__ is not _Tensor:
        return None
    # _key(x, dv, tile_size, d, DEFAULT_OPTIONS), written out: this is the per-call path
    launch = _LAUNCHES.by_key.get((x.shape, x.stride(), x.storage_offset() % 4, x.dtype, x.get_device(),
                                   dv.__class__, dv, tile_size.__class__, tile_size, d.__class__, d, DEFAULT_OPTIONS))
    return None if launch is None else launch(x)


def _key(x: torch.Tensor, dv: int, tile_size: int, d: int, options: tuple) -> tuple:
    """What fixes every check of the oracle's and every launch argument but the pointers: the input's shape,
    strides, storage offset modulo 4 (the scales' float32 view), dtype and device, the three sizes with their
    types, the tuning options."""
    return (x.shape, x.stride(), x.storage_offset() % 4, x.dtype, x.get_device(), dv.__class__, dv,
            tile_size.__class__, tile_size, d.__class__, d, options)


def fast_path_status() -> dict:
    """For checks and benchmarks: counters, launches, and why the fast path is off if it is."""
    return _LAUNCHES.status(STATS)


def _make_launch(data: torch.Tensor, result: torch.Tensor, grid: tuple, runtime_args: tuple, constants: dict,
                 compiled: object) -> object:
    """``launch(x)``: allocate the output, launch on ``x`` itself; None where this Triton does not allow it."""
    if not result.is_contiguous():
        return None
    launch_rows = _triton_launch.make_launch(_dequantize_kernel, grid, data, result, runtime_args, constants,
                                             compiled, STATS)
    if launch_rows is None:
        return None
    nb, bs, d = result.shape
    shape, empty, bf16, device = (nb, bs, 1, d), torch.empty, result.dtype, result.device  # as dequant_fused returns it

    def launch(x: torch.Tensor) -> torch.Tensor | None:
        out = empty(shape, dtype=bf16, device=device)
        return out if launch_rows(x, out) else None

    return launch
