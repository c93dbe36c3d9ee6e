"""sglang's per-token-group FP8 activation quantizer, as a slow reference loop (``docs/token-group-quantizer.md``
states its semantics).  ``per_token_group_quant_fp8`` turns each token's activations into float8 e4m3 codes
with one float32 scale per group of ``group_size`` consecutive values: scale = max(|group|, eps) / 448,
code = clamp(x / scale, -448, 448) rounded to e4m3.  This loop walks the groups one at a time (every
token at once), as a readable original would; candidates must give the same bytes."""

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0  # the largest finite e4m3fn value
EPS = 1e-10  # the smallest amax a scale is made from (an all-zero group gets a tiny scale, not 0)


def per_token_group_quant_fp8_slow(x: torch.Tensor, group_size: int = 128,
                                   eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    assert x.shape[-1] % group_size == 0, "the last dimension must be a multiple of group_size"
    assert x.is_contiguous(), "x must be contiguous"
    groups = x.shape[-1] // group_size
    codes = torch.empty(x.shape, dtype=FP8, device=x.device)
    scales = torch.empty((*x.shape[:-1], groups), dtype=torch.float32, device=x.device)
    for g in range(groups):
        part = x[..., g * group_size:(g + 1) * group_size].float()
        amax = part.abs().amax(dim=-1, keepdim=True).clamp(min=eps)
        scale = amax / FP8_MAX
        codes[..., g * group_size:(g + 1) * group_size] = (part / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
        scales[..., g] = scale.squeeze(-1)
    return codes, scales
