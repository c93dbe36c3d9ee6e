"""Inputs for the dequantizer candidates' tests (tests/test_dequant_candidates.py), the Triton kernel under
the interpreter (tests/_interpret_dequant.py) and the GPU check (benchmarks/dequant_gpu_check.py).

Each case builds ``(quant_k_cache, dv, tile_size, d)`` on the CPU from a seed; callers move it to their
device with ``to_device`` (which keeps the layout: a slice of a larger buffer stays a slice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from oracles.kcache_dequant_reference import packed_width
from oracles.kcache_reference import quantize_k_cache_slow

FP8 = torch.float8_e4m3fn
PRODUCTION = (576, 512, 128)  # (d, dv, tile_size)
CONFIGS = [PRODUCTION, (192, 128, 64), (128, 128, 32), (100, 100, 100), (132, 128, 4), (230, 200, 40),
           (40, 32, 8), (8, 4, 1), (64, 0, 16)]  # every one whose packed row is a legal view (W % 4 == 0)

# float32 scales worth having: zeros of both signs, negatives, subnormals, the extremes, non-finite values
# and NaNs with other payloads and signs (given as bits)
SPECIAL_SCALE_BITS = [
    0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x3B800000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00400000,
    0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF,
    0x7FBFFFFF, 0x3E000000, 0x1F000000, 0x5F000000, 0x7E800000, 0x2C800000,
]


def _bits_as_float32(bits: list[int]) -> torch.Tensor:
    signed = [b - (1 << 32) if b >= 1 << 31 else b for b in bits]
    return torch.tensor(signed, dtype=torch.int32).view(torch.float32)


def production_rows(num_blocks: int, block_size: int, seed: int, dtype=torch.bfloat16, d: int = 576, dv: int = 512,
                    tile: int = 128) -> torch.Tensor:
    """What the quantizer writes: ``quantize_k_cache_slow`` of random data (normal values over a wide range
    of magnitudes, a few all-zero tiles, which give NaN codes and a zero scale)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_blocks, block_size, 1, d, generator=g, dtype=torch.float32)
    spread = 8 if dtype == torch.float16 else 20  # orders of magnitude, as far as the dtype allows
    x *= torch.exp2(torch.randint(-spread, spread, (num_blocks, block_size, 1, 1), generator=g).float())
    tokens = x.view(-1, d)
    if tokens.shape[0] > 2 and dv:
        tokens[1, :tile] = 0.0  # an all-zero tile
        tokens[2, dv - tile : dv] = 0.0
    return quantize_k_cache_slow(x.to(dtype), dv, tile)


def random_rows(num_blocks: int, block_size: int, seed: int, d: int, dv: int, tile: int,
                storage=torch.uint8) -> torch.Tensor:
    """Random bytes everywhere, then every code value (0x00..0xFF: NaN codes 0x7F and 0xFF, subnormals,
    both zeros) in the first tokens' codes, and the special scales in turn, the rest of the scales random
    float32 bit patterns (NaNs with any payload included)."""
    g = torch.Generator().manual_seed(seed)
    width = packed_width(d, dv, tile)
    rows = torch.randint(0, 256, (num_blocks * block_size, width), generator=g, dtype=torch.uint8)
    if dv:
        codes = rows[:, :dv].clone().reshape(-1)
        n = min(codes.numel(), 256)
        codes[:n] = torch.arange(n, dtype=torch.uint8)
        rows[:, :dv] = codes.view(rows.shape[0], dv)
        scales = rows[:, dv : dv + 4 * (dv // tile)].clone().view(torch.float32).reshape(-1)
        special = _bits_as_float32(SPECIAL_SCALE_BITS)
        picks = torch.randint(0, len(special), (scales.numel(),), generator=g)
        use_special = torch.rand(scales.numel(), generator=g) < 0.6
        scales[use_special] = special[picks[use_special]]
        scales[: min(len(special), scales.numel())] = special[: min(len(special), scales.numel())]
        rows[:, dv : dv + 4 * (dv // tile)] = scales.view(torch.uint8).view(rows.shape[0], -1)
    return rows.view(num_blocks, block_size, 1, width).view(storage)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], tuple]  # -> (quant_k_cache, dv, tile_size, d) on the CPU


def _case(name: str, build: Callable[[], tuple]) -> Case:
    return Case(name, build)


def value_cases() -> list[Case]:
    """Inputs the oracle accepts: every candidate must give its bytes."""
    cases = [
        _case("production-bf16", lambda: (production_rows(4, 16, 0), 512, 128, 576)),
        _case("production-4096-tokens", lambda: (production_rows(64, 64, 17), 512, 128, 576)),  # a huge-page output
        _case("production-bf16-small-1x1", lambda: (production_rows(1, 1, 1), 512, 128, 576)),
        _case("production-bf16-1x3", lambda: (production_rows(1, 3, 2), 512, 128, 576)),
        _case("production-bf16-5x1", lambda: (production_rows(5, 1, 3), 512, 128, 576)),
        _case("production-fp8-storage", lambda: (production_rows(3, 8, 4), 512, 128, 576)),
        _case("production-uint8-storage", lambda: (production_rows(3, 8, 4).view(torch.uint8), 512, 128, 576)),
        _case("from-float16-no-rope", lambda: (production_rows(3, 7, 5, torch.float16, 512), 512, 128, 512)),
        _case("from-float32-no-rope", lambda: (production_rows(3, 7, 6, torch.float32, 512), 512, 128, 512)),
        _case("from-bf16-192-128-64", lambda: (production_rows(2, 9, 7, torch.bfloat16, 192, 128, 64), 128, 64, 192)),
        _case("from-float32-128-32", lambda: (production_rows(2, 5, 8, torch.float32, 128, 128, 32), 128, 32, 128)),
    ]
    for d, dv, tile in CONFIGS:
        for nb, bs in ((1, 1), (2, 3), (3, 16)):
            for storage in (torch.uint8, FP8):
                seed = d * 7 + dv * 3 + tile + nb * bs
                cases.append(_case(f"random-{d}-{dv}-{tile}-{nb}x{bs}-{str(storage).split('.')[-1]}",
                                   lambda d=d, dv=dv, tile=tile, nb=nb, bs=bs, storage=storage, seed=seed:
                                   (random_rows(nb, bs, seed, d, dv, tile, storage), dv, tile, d)))
    cases += [
        _case("sliced-blocks", lambda: (production_rows(7, 4, 9)[2:5], 512, 128, 576)),
        _case("every-other-block", lambda: (random_rows(6, 4, 10, *PRODUCTION)[::2], 512, 128, 576)),
        _case("every-other-token", lambda: (random_rows(3, 8, 11, *PRODUCTION)[:, ::2], 512, 128, 576)),
        _case("blocks-transposed", lambda: (random_rows(3, 5, 12, *PRODUCTION).transpose(0, 1), 512, 128, 576)),
        _case("blocks-expanded", lambda: (random_rows(1, 4, 13, *PRODUCTION).expand(3, 4, 1, 656), 512, 128, 576)),
        _case("sliced-tile-1", lambda: (random_rows(4, 3, 14, 8, 4, 1)[1:3], 4, 1, 8)),
        _case("row-in-a-wider-buffer", lambda: (random_rows(2, 3, 15, 600, 512, 128)[..., :656], 512, 128, 576)),
        _case("rope-broadcast-from-one-element", lambda: (_one_element_rope(), 512, 128, 576)),
    ]
    return cases


def _one_element_rope() -> torch.Tensor:
    """Rows of 530 bytes (one bf16 of rope) 532 bytes apart: the oracle broadcasts that element over the rope
    part (an odd layout that its views allow)."""
    buffer = random_rows(2, 3, 16, 514, 512, 128)  # 2 x 3 rows of 532 bytes
    return buffer[..., :530]


def error_cases() -> list[Case]:
    """Inputs the oracle raises on: every candidate must raise the same type."""
    return [
        _case("h_k-2", lambda: (torch.zeros(2, 3, 2, 656, dtype=torch.uint8), 512, 128, 576)),
        _case("dv-not-a-multiple-of-tile", lambda: (torch.zeros(2, 3, 1, 656, dtype=torch.uint8), 512, 100, 576)),
        _case("tile-0", lambda: (torch.zeros(2, 3, 1, 656, dtype=torch.uint8), 512, 0, 576)),
        _case("zero-blocks", lambda: (torch.zeros(0, 3, 1, 656, dtype=torch.uint8), 512, 128, 576)),
        _case("zero-block-size", lambda: (torch.zeros(2, 0, 1, 656, dtype=torch.uint8), 512, 128, 576)),
        _case("last-dim-strided", lambda: (torch.zeros(2, 3, 1, 1312, dtype=torch.uint8)[..., ::2], 512, 128, 576)),
        _case("last-dim-not-innermost", lambda: (torch.zeros(656, 2, 3, 1, dtype=torch.uint8).permute(1, 2, 3, 0),
                                                 512, 128, 576)),
        _case("misaligned-offset", lambda: (torch.zeros(2, 3, 1, 657, dtype=torch.uint8)[..., 1:], 512, 128, 576)),
        _case("row-stride-not-a-multiple-of-4", lambda: (torch.zeros(2, 3, 1, 654, dtype=torch.uint8), 512, 128, 576)),
        _case("width-inconsistent-with-d", lambda: (torch.zeros(2, 3, 1, 656, dtype=torch.uint8), 512, 128, 580)),
        _case("d-smaller-than-dv", lambda: (torch.zeros(2, 3, 1, 656, dtype=torch.uint8), 512, 128, 500)),
        _case("d-smaller-than-dv-tile-1", lambda: (torch.zeros(2, 3, 1, 32, dtype=torch.uint8), 8, 1, 4)),
        _case("three-dims", lambda: (torch.zeros(2, 3, 656, dtype=torch.uint8), 512, 128, 576)),
    ]


def to_device(x: torch.Tensor, device: str) -> torch.Tensor:
    """``x`` on ``device`` with the same sizes, strides and offset into a copy of its storage."""
    if device == "cpu":
        return x
    base = torch.empty(x.untyped_storage().nbytes(), dtype=torch.uint8)
    base.untyped_storage().copy_(x.untyped_storage())
    moved = base.to(device).view(x.dtype)
    return moved.as_strided(x.shape, x.stride(), x.storage_offset())
