import torch

from harness.core.candidates import candidate


@candidate
def vectorized(x: torch.Tensor) -> torch.Tensor:
    """Every row at once, in float32: the loop's arithmetic, but each row summed in another order."""
    x32 = x.float()
    exps = torch.exp(x32 - x32.amax(dim=-1, keepdim=True))
    return (exps / exps.sum(dim=-1, keepdim=True)).to(x.dtype)
