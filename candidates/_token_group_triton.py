"""The per-token-group FP8 quantizer as one Triton kernel (CUDA), bit-exact with the oracle as torch runs it
on CUDA (``docs/token-group-quantizer.md``).

One program takes one token and GROUPS consecutive groups of it as a (GROUPS, G) block: |x| reduced to
each group's maximum, clamped below at eps, the scale formed as torch forms ``amax / 448.0`` on CUDA
(a CPU scalar divisor becomes a multiplication by its float32 reciprocal there), each value divided with
IEEE round-to-nearest (``div_rn``, not the approximate ``/``), clamped to +-448 and converted to e4m3
(round to nearest even; nothing left to saturate after the clamp), codes and scales stored.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

INV_448 = tl.constexpr(1.0 / 448.0)
GROUPS_PER_PROGRAM, NUM_WARPS = 8, 2  # tuned on an H200: benchmarks/token-group-tune-h200.log


@triton.jit
def _token_groups(x_ptr, codes_ptr, scales_ptr, n_groups, hidden, eps, G: tl.constexpr, GROUPS: tl.constexpr):
    token = tl.program_id(0).to(tl.int64)
    first = tl.program_id(1) * GROUPS
    g = first + tl.arange(0, GROUPS)
    col = tl.arange(0, G)
    mask = (g < n_groups)[:, None]
    offsets = token * hidden + g[:, None] * G + col[None, :]
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    amax = tl.maximum(tl.max(tl.abs(x), axis=1), eps)
    scale = amax * INV_448
    q = tl.math.div_rn(x, scale[:, None])
    q = tl.minimum(tl.maximum(q, -448.0), 448.0)
    tl.store(codes_ptr + offsets, q.to(tl.float8e4nv), mask=mask)
    tl.store(scales_ptr + token * n_groups + g, scale, mask=g < n_groups)


def supports(x: torch.Tensor) -> bool:
    return x.is_cuda and x.dtype in (torch.bfloat16, torch.float16, torch.float32)


def quantize(x: torch.Tensor, group_size: int, eps: float, codes: torch.Tensor, scales: torch.Tensor,
             groups_per_program: int = GROUPS_PER_PROGRAM, num_warps: int = NUM_WARPS) -> None:
    """Fill ``codes`` and ``scales`` (contiguous, the oracle's shapes) for the contiguous CUDA tensor ``x``
    (the launch configuration overridable for ``benchmarks/token_group_tune.py``)."""
    hidden = x.shape[-1]
    tokens = x.numel() // hidden if hidden else 0
    groups = hidden // group_size
    if tokens and groups:
        grid = (tokens, triton.cdiv(groups, groups_per_program))
        _token_groups[grid](x, codes, scales, groups, hidden, eps, G=group_size, GROUPS=groups_per_program,
                            num_warps=num_warps)
