"""What the one-pass kernels (``_fused_triton``, ``_fused_cpu``) share: the oracle's contract for inputs
and output (preconditions, errors, the output row), and how the installed torch converts float32 to
float8_e4m3fn beyond its range, which they must reproduce to stay bit-exact.  And how a fused candidate
picks its device's kernel module (``one_pass_kernel``)."""

from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType

import torch


class Prepared:
    """A checked input and its output, to be filled (a plain class: built on every call)."""

    __slots__ = ("out", "rows", "width", "num_tiles")

    def __init__(self, out: torch.Tensor, rows: torch.Tensor, width: int, num_tiles: int) -> None:
        self.out = out  # (num_blocks, block_size, 1, width) float8_e4m3fn, contiguous: the result itself
        self.rows = rows  # the input as (tokens, d): a view when its layout allows, else a copy
        self.width = width  # output bytes per token
        self.num_tiles = num_tiles

    def result(self) -> torch.Tensor:
        """The output as the oracle returns it, (num_blocks, block_size, 1, width): ``out`` is allocated so."""
        return self.out


def prepare(input_k_cache: torch.Tensor, dv: int, tile_size: int) -> Prepared:
    """Check what the oracle checks (raising what it raises, in its order) and allocate the output."""
    assert dv % tile_size == 0
    num_tiles = dv // tile_size
    num_blocks, block_size, h_k, d = input_k_cache.shape
    assert h_k == 1
    width = dv + 4 * num_tiles + input_k_cache.element_size() * (d - dv)
    if d < dv:
        raise IndexError(f"d={d} is smaller than dv={dv}")
    if dv % 4 or width % 4:  # the oracle's float32 view of the scales fails the same way
        raise RuntimeError(f"rows of {width} bytes with scales at byte {dv} are not 4-byte aligned")
    # allocated in the result's own shape: the oracle's (num_blocks, block_size, width) viewed as
    # (num_blocks, block_size, 1, width) has exactly these strides, and no view is made per call
    out = torch.empty((num_blocks, block_size, 1, width), dtype=torch.float8_e4m3fn, device=input_k_cache.device)
    return Prepared(out, input_k_cache.reshape(num_blocks * block_size, d), width, num_tiles)


@lru_cache(maxsize=None)
def saturates(device: str) -> tuple[int, int]:
    """(finite overflow saturates, infinity saturates) for torch's conversion on ``device``: 1 where it
    gives +-448, 0 where it gives the NaN code.  c10's scalar routine (torch 2.11 on CUDA, for one) gives
    NaN above the 464 midpoint and for infinities; torch 2.13 on the CPU saturates both."""
    probe = torch.tensor([470.0, float("inf")], device=device).to(torch.float8_e4m3fn)
    codes = probe.view(torch.uint8).tolist()
    return int(codes[0] == 0x7E), int(codes[1] == 0x7E)


def one_pass_kernel(x: torch.Tensor, cuda: str, cpu: str) -> ModuleType | None:
    """The kernel module for ``x``'s device — ``candidates.<cuda>`` (Triton) on CUDA, ``candidates.<cpu>``
    (C) on the CPU — where it ``supports(x)``; None where Triton is missing, no compiler is found, or the
    device is another: the candidate then takes its vectorised torch pass."""
    if x.is_cuda:
        try:
            kernel = importlib.import_module(f"candidates.{cuda}")
        except ImportError:
            return None
    elif x.device.type == "cpu":
        kernel = importlib.import_module(f"candidates.{cpu}")
    else:
        return None
    return kernel if kernel.supports(x) else None


class OnePass:
    """A fused candidate's kernels: ``kernels(x)`` is ``one_pass_kernel(x, cuda, cpu)``, and once a CUDA input
    has imported the Triton module, ``kernels.cached`` is that module's ``cached``: the configuration's cached
    launch (``candidates/_triton_launch.py``), which the candidate tries first on later calls."""

    def __init__(self, cuda: str, cpu: str) -> None:
        self.cuda, self.cpu = cuda, cpu
        self.cached = None

    def __call__(self, x: torch.Tensor) -> ModuleType | None:
        kernel = one_pass_kernel(x, self.cuda, self.cpu)
        if kernel is not None and x.is_cuda:
            self.cached = kernel.cached
        return kernel
