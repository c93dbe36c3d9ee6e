"""What the dequantizer candidates share: the oracle's checks and views, taken in its order so that they
raise what it raises, and how the installed torch spells a NaN when it rounds float32 to bfloat16 (the
kernels must write the same bytes).

``unpack`` returns None for a row layout that is not the packed one (a row width that does not match
``d``, ``d < dv``, a tile size that is not positive): the oracle gives those odd answers (a one-element
rope broadcast over the rope part, a size-1 slice broadcast over a tile) or raises on them part-way, and
the candidates then run the oracle's own code (``reference``), which raises or broadcasts exactly as it
does.  Every packed layout (``W = dv + 4 * dv/tile + 2 * (d - dv)``) goes the fast way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from oracles.kcache_dequant_reference import dequantize_k_cache_slow as reference  # noqa: F401  (re-exported)
from oracles.kcache_dequant_reference import packed_width

FP8 = torch.float8_e4m3fn


@dataclass(frozen=True)
class Unpacked:
    rows: torch.Tensor  # (num_blocks, block_size, W) float8_e4m3fn: a view of the input, last stride 1
    nope: torch.Tensor  # (num_blocks, block_size, dv) the codes
    scales: torch.Tensor  # (num_blocks, block_size, num_tiles) float32
    rope: torch.Tensor  # (num_blocks, block_size, d - dv) bfloat16
    num_tiles: int

    def empty_result(self, d: int) -> torch.Tensor:
        """The fresh contiguous bfloat16 output ``(num_blocks, block_size, d)``, to be filled."""
        nb, bs = self.rows.shape[:2]
        return torch.empty((nb, bs, d), dtype=torch.bfloat16, device=self.rows.device)


def unpack(quant_k_cache: torch.Tensor, dv: int, tile_size: int, d: int) -> Unpacked | None:
    """The oracle's preconditions and views, in its order (AssertionError, then the RuntimeError of a view
    the input does not allow); None where the layout is not the packed one (see the module docstring)."""
    assert dv % tile_size == 0
    num_tiles = dv // tile_size
    num_blocks, block_size, h_k, _ = quant_k_cache.shape
    assert h_k == 1
    if not (tile_size > 0 and 0 <= dv <= d):
        return None
    rows = quant_k_cache.view(num_blocks, block_size, -1)
    if rows.dtype != FP8:  # uint8 storage holds the same bytes
        rows = rows.view(FP8)
    nope = rows[..., :dv]
    scales = rows[..., dv : dv + num_tiles * 4].view(torch.float32)
    rope = rows[..., dv + num_tiles * 4 :].view(torch.bfloat16)
    if rows.shape[-1] != packed_width(d, dv, tile_size):
        return None
    return Unpacked(rows, nope, scales, rope, num_tiles)


@dataclass(frozen=True)
class Rows:
    """What the one-pass kernels read: token ``(b, t)``'s packed row starts ``b * block_stride + t *
    token_stride`` bytes after ``data.data_ptr()`` (``data`` has a one-byte dtype)."""

    data: torch.Tensor
    num_blocks: int
    block_size: int
    block_stride: int
    token_stride: int

    def empty_result(self, d: int) -> torch.Tensor:
        """The fresh contiguous bfloat16 output ``(num_blocks, block_size, d)``, to be filled."""
        return torch.empty((self.num_blocks, self.block_size, d), dtype=torch.bfloat16, device=self.data.device)


BYTE_STORAGE = (torch.uint8, torch.int8, FP8)


def rows_of(quant_k_cache: torch.Tensor, dv: int, tile_size: int, d: int) -> Rows | None:
    """``unpack``'s checks, errors and None for the kernels, which need only where the rows are.  A
    contiguous packed input of one-byte storage whose scales fall on 4-byte offsets passes every check of
    the oracle's (its views cannot fail): that case, the common one, is recognised without making them
    (the views cost more host time than the kernel's own work at small sizes)."""
    x = quant_k_cache
    if (x.dtype in BYTE_STORAGE and x.dim() == 4 and x.shape[2] == 1 and isinstance(tile_size, int) and tile_size > 0
            and isinstance(dv, int) and isinstance(d, int) and 0 <= dv <= d and dv % tile_size == 0
            and x.shape[3] == packed_width(d, dv, tile_size) and x.shape[3] % 4 == 0
            and (x.storage_offset() + dv) % 4 == 0 and x.numel() > 0 and x.is_contiguous()):
        return Rows(x, x.shape[0], x.shape[1], x.stride(0), x.stride(1))
    parts = unpack(x, dv, tile_size, d)
    if parts is None:
        return None
    rows = parts.rows
    return Rows(rows, rows.shape[0], rows.shape[1], rows.stride(0), rows.stride(1))


@lru_cache(maxsize=None)
def nan_bits(device: str, strided: bool) -> int:
    """The bfloat16 bits torch writes on ``device`` for a float32 NaN stored into a bfloat16 tensor, probed
    once.  On the CPU they depend on the store: a contiguous one goes through the vectorised conversion
    (AVX2/AVX-512: 0xFFFF), one whose innermost stride is not 1 through c10's scalar conversion
    (0x7FC0); CUDA's ``__float2bfloat16`` gives 0x7FFF both ways.  Raises where the two signs of NaN are
    spelled differently: one constant would not do, the kernels could not be bit-exact."""
    nan = float("nan")
    source = torch.tensor([[nan] * 40, [-nan] * 40], device=device)
    out = torch.empty((2, 48), dtype=torch.bfloat16, device=device)
    if strided:  # the oracle's store into one-element tiles: shape (tokens, 1), rows 48 apart
        out[:, :1] = source[:, :1]
        written = out[:, :1]
    else:
        out[:, :40] = source
        written = out[:, :40]
    spelled = set((written.contiguous().view(torch.int16).to(torch.int32) & 0xFFFF).flatten().tolist())
    if len(spelled) != 1:
        raise RuntimeError(f"torch spells a bfloat16 NaN several ways on {device}: {sorted(map(hex, spelled))}")
    return spelled.pop()


def oracle_nan_bits(device: str, tile_size: int, tokens: int) -> int:
    """How the oracle's output spells NaN for this call: it stores each tile's float32 product into a slice
    of its bfloat16 output, which is contiguous unless the tile has one element and there is more than one
    token (then torch converts element by element, strided)."""
    return nan_bits(device, tile_size == 1 and tokens > 1)


def as_int16(bits: int) -> int:
    """A 16-bit pattern as the int16 value that holds it."""
    return bits - 0x10000 if bits >= 0x8000 else bits
