"""A worked example: a K-cache quantizer written the way production Triton kernels are (sglang's fused
quantizer behaves like this), specialised to the production shape.  Deliberately *not* a drop-in
replacement for the oracle (``oracles/kcache_reference.py``); the harness should say so, and say how:

- Domain: bfloat16 input of shape ``(num_blocks, block_size, 1, 576)``, ``dv=512``, ``tile_size=128``
  only.  Anything else fails a bare ``assert`` (AssertionError without a message), which is what the
  oracle raises too when *it* rejects an input, but here also for inputs the oracle accepts.
- The input is flattened with ``.view(tokens, 576)``: a layout the view cannot flatten (transposed
  blocks, expanded blocks) raises RuntimeError, where the oracle copes.  Padded rows the view accepts
  are read through their strides.
- Scale: ``amax / 448`` in float32 (IEEE division).  The oracle rounds it to bfloat16 (8 significant
  bits), so nearly every stored scale differs, by up to 2^-8 relative (~0.33% seen on randn).
- Codes: ``x * (1 / scale)`` (a reciprocal, then a multiply: two roundings) instead of ``x / scale``,
  then clamped to [-448, 448], then float32 -> e4m3fn with round-to-nearest-even.  With the other
  scale and the double rounding, about 1-2% of codes on randn input land one code away from the oracle's.
- The clamp swallows NaN: it is written ``q < 448 ? q : 448`` then ``q > -448 ? q : -448`` (what a
  NaN-ignoring ``minimum`` then ``maximum`` gives), and a NaN fails the first comparison.  An all-zero
  tile has scale 0, reciprocal +inf, and 0 * inf = NaN for every element, so its codes are all +448
  (0x7E, whatever the zeros' signs) where the oracle's 0 / 0 gives NaN codes.  Tiles whose scale is
  below 2^-128 (all-subnormal tiles, and normal ones below ~1.3e-36) also get an infinite reciprocal:
  nonzero elements become +-448 and zeros +448.  Dequantized, such a tile is about +-amax everywhere (zeros
  included); an all-zero tile dequantizes to exact zeros (448 * 0), the oracle's to NaN.
- NaN elements are left out of the tile maximum (as ``tl.max`` does on a GPU); their codes are +448.

Choices made so that ``upstream_quant_torch.py`` (the same arithmetic in torch, on the CPU) agrees bit
for bit, on the GPU and in Triton's interpreter (``check_twin.py`` checks both):
- Divisions use ``tl.math.div_rn`` (IEEE, as torch divides); Triton's ``/`` on float32 is approximate on
  NVIDIA GPUs, a production kernel would typically use it and differ from the twin in rare scales.
- The clamp is ``tl.where`` on comparisons, whose NaN behaviour is the same everywhere; ``tl.clamp``,
  ``tl.minimum``/``tl.maximum`` differ by backend and argument order (the interpreter's ``tl.clamp`` is
  fmin(fmax(q, -448), 448) and gives -448 for NaN) and ``torch.clamp`` propagates NaN.
- The tile maximum ignores NaN explicitly (``tl.max`` propagates NaN in the interpreter, not on a GPU).
- The input is read as its 16-bit patterns and widened by a shift (exact; the interpreter's
  bfloat16 -> float32 cast mangles subnormals, e.g. -9.2e-41 becomes -0.0); the rope is copied as bits.
- float32 -> e4m3fn: on a GPU the conversion instruction (``cvt.rn.satfinite``), which after the clamp
  only sees finite values in range, where it is round-to-nearest-even like torch.  The interpreter's
  conversion does not round to nearest even, so there (or with ``hw_cvt=False``) the codes are computed
  with integer operations instead (``_e4m3_rne``), exact everywhere.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from harness.core.candidates import candidate

FP8_MAX = 448.0  # largest finite e4m3fn value
D, DV, TILE = 576, 512, 128
ROW_BYTES = DV + 4 * (DV // TILE) + 2 * (D - DV)  # 656: codes, 4 float32 scales, 64 bf16 rope values
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _e4m3_rne(q):
    """fp32 -> e4m3fn codes (uint8) by integer operations, round to nearest even, for finite |q| <= 448
    (the clamp guarantees it).  Used where the conversion instruction is unavailable or not exact."""
    bits = q.to(tl.uint32, bitcast=True)
    sign = ((bits >> 24) & 0x80).to(tl.uint8)
    a = tl.abs(q)
    abits = a.to(tl.uint32, bitcast=True)
    # |q| >= 2^-6 (normal e4m3): rebias the exponent (127 -> 7) and round the mantissa to 3 bits, ties to
    # even; a carry out of the mantissa correctly bumps the exponent.
    normal = (abits - (120 << 23) + 0x7FFFF + ((abits >> 20) & 1)) >> 20
    # |q| < 2^-6 (subnormal e4m3, steps of 2^-9): adding 2^14 makes the float32 add round |q| to a
    # multiple of 2^-9 (nearest even), and the low bits of the sum are that multiple.
    sub = (a + 16384.0).to(tl.uint32, bitcast=True) - 0x46800000
    magnitude = tl.where(abits < (121 << 23), sub, normal)
    return sign | magnitude.to(tl.uint8)


@triton.jit
def _quantize_kernel(x_ptr, out_ptr, n_tokens, row_stride, col_stride,
                     DV: tl.constexpr, TILE: tl.constexpr, ROPE: tl.constexpr, ROW_BYTES: tl.constexpr,
                     BLOCK_T: tl.constexpr, HW_CVT: tl.constexpr):
    pid = tl.program_id(0)
    tok = (pid * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
    tmask = tok < n_tokens
    col = tl.arange(0, TILE)
    x_rows = x_ptr + tok[:, None] * row_stride
    out_rows = out_ptr + tok[:, None] * ROW_BYTES  # out_ptr is the output's bytes (uint8)
    for t in tl.static_range(DV // TILE):
        bits = tl.load(x_rows + (t * TILE + col)[None, :] * col_stride, mask=tmask[:, None], other=0)
        x = (bits.to(tl.uint32) << 16).to(tl.float32, bitcast=True)  # bf16 -> fp32, exact everywhere
        amax = tl.max(tl.where(x == x, tl.abs(x), 0.0), axis=1)  # NaN left out, on every backend
        scale = tl.math.div_rn(amax, 448.0)  # float32, not rounded to bf16 (the oracle rounds)
        inv = tl.math.div_rn(1.0, scale)  # +inf for a zero (or < 2^-128) scale
        q = x * inv[:, None]  # 0 * inf = NaN on zero elements of such tiles
        q = tl.where(q < 448.0, q, 448.0)  # NaN fails the test: NaN -> +448
        q = tl.where(q > -448.0, q, -448.0)
        if HW_CVT:
            code = q.to(tl.float8e4nv).to(tl.uint8, bitcast=True)
        else:
            code = _e4m3_rne(q)
        tl.store(out_rows + (t * TILE + col)[None, :], code, mask=tmask[:, None])
        tl.store((out_rows + DV + 4 * t).to(tl.pointer_type(tl.float32)), scale[:, None], mask=tmask[:, None])
    rcol = tl.arange(0, ROPE)
    rope = tl.load(x_rows + (DV + rcol)[None, :] * col_stride, mask=tmask[:, None])
    rope_out = (out_rows + DV + 4 * (DV // TILE)).to(tl.pointer_type(tl.uint16))
    tl.store(rope_out + rcol[None, :], rope, mask=tmask[:, None])


@candidate(target="quantize_k_cache",
           supports={"dtype": ("bfloat16",), "d": (576,), "dv": (512,), "tile_size": (128,)})
def quantize(input_k_cache: torch.Tensor, dv: int = 512, tile_size: int = 128, block_t: int = 16,
             hw_cvt: bool | None = None) -> torch.Tensor:
    """Upstream-style fused Triton quantizer for the production shape only (bf16, d=576, dv=512,
    tile 128): float32 scales, reciprocal multiply, clamp to +-448.  Not bit-exact with the oracle by
    design: scales differ (float32 vs bf16-rounded), ~1-2% of codes differ by one code, zero and
    subnormal tiles give +-448 codes instead of NaN, bare asserts outside its domain, and a
    ``.view`` that fails on layouts it cannot flatten."""
    assert input_k_cache.dtype == torch.bfloat16
    assert input_k_cache.dim() == 4
    num_blocks, block_size, h_k, d = input_k_cache.shape
    assert h_k == 1 and d == D and dv == DV and tile_size == TILE
    x = input_k_cache.view(num_blocks * block_size, d)  # raises for layouts it cannot flatten
    out = torch.empty((num_blocks, block_size, 1, ROW_BYTES), dtype=torch.float8_e4m3fn, device=x.device)
    tokens = x.shape[0]
    if tokens:
        _quantize_kernel[(triton.cdiv(tokens, block_t),)](
            x.view(torch.uint16), out.view(torch.uint8), tokens, x.stride(0), x.stride(1),
            DV=DV, TILE=TILE, ROPE=D - DV, ROW_BYTES=ROW_BYTES, BLOCK_T=block_t,
            HW_CVT=(not INTERPRETED) if hw_cvt is None else hw_cvt)
    return out
