"""Per-token-group FP8 quantizer, fused: one pass (a Triton kernel on CUDA, a C kernel on the CPU)."""

import torch

from harness.core.candidates import candidate
from oracles.token_group_reference import EPS, FP8, FP8_MAX


def _kernel(x: torch.Tensor):
    """The one-pass kernel for ``x``'s device, or None (no Triton, no C compiler, another dtype)."""
    if x.is_cuda:
        try:
            from candidates import _token_group_triton as kernel
        except ImportError:
            return None
    else:
        from candidates import _token_group_cpu as kernel
    return kernel if kernel.supports(x) else None


@candidate(target="per_token_group_quant_fp8")
def token_group_fused(x: torch.Tensor, group_size: int = 128, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Each group read once and written once: its amax, scale and codes in one pass, with no float32 copy
    of the input and no temporaries (the loop makes a float32 copy, a quotient and a clamped copy of every
    group).  On CUDA one Triton kernel (`candidates/_token_group_triton.py`), on the CPU one C loop parallel
    over tokens (`candidates/_token_group_cpu.c`); both keep the oracle's arithmetic on their device, so the
    codes and scales are bit-identical.  Elsewhere, the vectorised torch pass."""
    assert x.shape[-1] % group_size == 0, "the last dimension must be a multiple of group_size"
    assert x.is_contiguous(), "x must be contiguous"
    codes = torch.empty(x.shape, dtype=FP8, device=x.device)
    scales = torch.empty((*x.shape[:-1], x.shape[-1] // group_size), dtype=torch.float32, device=x.device)
    kernel = _kernel(x)
    if kernel is not None:
        kernel.quantize(x, group_size, eps, codes, scales)
        return codes, scales
    groups = x.float().unflatten(-1, (-1, group_size))
    scale = groups.abs().amax(dim=-1, keepdim=True).clamp(min=eps) / FP8_MAX
    codes.copy_((groups / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8).flatten(-2))
    scales.copy_(scale.squeeze(-1))
    return codes, scales
