"""The original: a row-wise softmax, one Python iteration per row, in float32."""

import torch


def softmax_slow(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        row = x[i].float()
        exps = torch.exp(row - row.max())
        out[i] = (exps / exps.sum()).to(x.dtype)
    return out
