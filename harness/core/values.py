"""Value families: the shared library of input contents a declared target's cases draw from.

A family is a name a declaration lists (``values = ["randn", "tiny", "inf_nan"]``) and a deterministic
function of (shape, dtype, seed) that fills a tensor: generated in float64 on the CPU with its own seeded
generator, then rounded to the dtype and moved to the device, so the judge and every runner build the same
bytes on any machine.  Pure functions; runs wherever inputs are built (the judge and the runners).

    randn      standard normal values
    uniform    uniform in [0, 1)
    zeros      all zeros (a reduction's degenerate case: amax 0, a division by a clamped epsilon)
    ones       all ones
    huge       normal values scaled to a sixteenth of the dtype's largest finite value (overflow traps)
    tiny       normal values scaled to four times the dtype's smallest normal (underflow traps)
    subnormal  normal values scaled to a quarter of the smallest normal: mostly subnormal numbers
    inf_nan    normal values with one element in eight replaced by +inf, -inf or NaN

Integer dtypes take ``randn`` (integers in [-100, 100]), ``zeros`` and ``ones`` only.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

Filler = Callable[[torch.Generator, tuple[int, ...], torch.dtype], torch.Tensor]


def _randn(g: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    if not dtype.is_floating_point:
        return torch.randint(-100, 101, shape, generator=g, dtype=torch.int64)
    return torch.randn(shape, generator=g, dtype=torch.float64)


def _scaled(scale: Callable[[torch.finfo], float]) -> Filler:
    return lambda g, shape, dtype: torch.randn(shape, generator=g, dtype=torch.float64) * scale(torch.finfo(dtype))


def _inf_nan(g: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    pick = torch.randint(0, 24, shape, generator=g)
    x[pick == 0], x[pick == 1], x[pick == 2] = float("inf"), float("-inf"), float("nan")
    return x


FAMILIES: dict[str, Filler] = {
    "randn": _randn,
    "uniform": lambda g, shape, dtype: torch.rand(shape, generator=g, dtype=torch.float64),
    "zeros": lambda g, shape, dtype: torch.zeros(shape, dtype=torch.float64),
    "ones": lambda g, shape, dtype: torch.ones(shape, dtype=torch.float64),
    "huge": _scaled(lambda f: f.max / 16),
    "tiny": _scaled(lambda f: f.tiny * 4),
    "subnormal": _scaled(lambda f: f.tiny / 4),
    "inf_nan": _inf_nan,
}
INTEGER_FAMILIES = ("randn", "zeros", "ones")


def dtype_of(name: str) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16``; ValueError for a name torch does not know as a dtype."""
    found = getattr(torch, name, None)
    if not isinstance(found, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} (a torch dtype name such as float32, bfloat16, float8_e4m3fn)")
    return found


def check(families: Sequence[str], dtypes: Sequence[str]) -> None:
    """ValueError naming the first family that is unknown, or that cannot fill one of ``dtypes``."""
    for family in families:
        if family not in FAMILIES:
            raise ValueError(f"unknown value family {family!r}; known: {', '.join(FAMILIES)}")
        for name in dtypes:
            if not dtype_of(name).is_floating_point and family not in INTEGER_FAMILIES:
                raise ValueError(f"value family {family!r} cannot fill an integer dtype ({name}); "
                                 f"integers take {', '.join(INTEGER_FAMILIES)}")


def fill(family: str, shape: Sequence[int], dtype: str, seed: int, device: str = "cpu") -> torch.Tensor:
    """A tensor of ``shape`` and ``dtype`` filled by ``family``, the same bytes for the same arguments."""
    g = torch.Generator().manual_seed(seed)
    target = dtype_of(dtype)
    values = FAMILIES[family](g, tuple(shape), target)
    return values.to(target).to(device)
