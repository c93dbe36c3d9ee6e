import torch

from harness.core.candidates import candidate


@candidate
def no_max(x: torch.Tensor) -> torch.Tensor:
    """Wrong: leaves out subtracting the row's maximum, so large inputs overflow exp (inf / inf is NaN)."""
    exps = torch.exp(x.float())
    return (exps / exps.sum(dim=-1, keepdim=True)).to(x.dtype)
