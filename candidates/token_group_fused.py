"""Per-token-group FP8 quantizer, fused: one pass (a Triton kernel on CUDA, a C kernel on the CPU)."""

import torch

from candidates._kernels import one_pass_kernel
from candidates.token_group_vectorized import token_group_vectorized
from harness.core.candidates import candidate
from oracles.token_group_reference import EPS, FP8


@candidate(target="per_token_group_quant_fp8")
def token_group_fused(x: torch.Tensor, group_size: int = 128, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Each group read once and written once: its amax, scale and codes in one pass, with no float32 copy
    of the input and no temporaries (the loop makes a float32 copy, a quotient and a clamped copy of every
    group).  On CUDA one Triton kernel (`candidates/_token_group_triton.py`), on the CPU one C loop parallel
    over tokens (`candidates/_token_group_cpu.c`); both keep the oracle's arithmetic on their device, so the
    codes and scales are bit-identical.  Elsewhere, the vectorised torch pass."""
    kernel = one_pass_kernel(x, "_token_group_triton", "_token_group_cpu")
    if kernel is None:
        return token_group_vectorized(x, group_size, eps)
    assert x.shape[-1] % group_size == 0, "the last dimension must be a multiple of group_size"
    assert x.is_contiguous(), "x must be contiguous"
    codes = torch.empty(x.shape, dtype=FP8, device=x.device)
    scales = torch.empty((*x.shape[:-1], x.shape[-1] // group_size), dtype=torch.float32, device=x.device)
    kernel.quantize(x, group_size, eps, codes, scales)
    return codes, scales
