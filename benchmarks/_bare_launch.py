"""The floor the fused candidate's host path on CUDA is measured against, and the timing loops that compare
them (benchmarks/gpu_check.py, gpu_overhead.py, launch_check.py import this).

``bare_launcher(x)``: the same Triton kernel for a contiguous production input, with nothing around the
launch but the output's allocation: ``torch.empty`` and one direct call of the compiled kernel's launcher —
no checks, no lookup, no hooks, the stream fetched as Triton fetches it.  Valid only for inputs like the one
it was built from (same shape, dtype, device, contiguous, 16-byte aligned): it is a reference, not a
candidate.  ``jit_launcher(x)``: ``torch.empty`` and the usual ``kernel[grid](...)`` (Triton's own per-call
binding and cache lookup), the "minimal one-kernel Triton launch" of issue 17.

Both rely on the launch convention of Triton >= 3.3 (``CompiledKernel.run(grid_0, grid_1, grid_2, stream,
function, packed_metadata, launch_metadata, enter_hook, exit_hook, *every bound argument)``), as
``JITFunction.run`` itself calls it.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
import triton

from candidates import _fused_triton as ft

FP8 = torch.float8_e4m3fn


def _plan(x: torch.Tensor, dv: int, tile_size: int):
    if not (x.is_cuda and x.dim() == 4 and x.shape[2] == 1 and x.is_contiguous() and x.data_ptr() % 16 == 0):
        raise ValueError("a bare launch takes a contiguous, 16-byte aligned (num_blocks, block_size, 1, d) CUDA tensor")
    num_blocks, block_size, _, d = x.shape
    tokens = num_blocks * block_size
    width = dv + 4 * (dv // tile_size) + x.element_size() * (d - dv)
    kernel, per_program, constants = ft._launch_plan(x.dtype, str(x.device), d, dv, tile_size, None, None, None)
    grid = (triton.cdiv(tokens, per_program),)
    # the contiguous input viewed as rows: row stride d, column stride 1
    return kernel, grid, constants, (num_blocks, block_size, 1, width), (tokens, d, 1, width)


def bare_launcher(x: torch.Tensor, dv: int = 512, tile_size: int = 128) -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.empty`` + one direct launch of the compiled kernel (compiled here by one normal launch)."""
    kernel, grid, constants, shape, ints = _plan(x, dv, tile_size)
    device = x.device
    compiled = kernel[grid](x, torch.empty(shape, dtype=FP8, device=device), *ints, **constants)
    run, function, packed = compiled.run, compiled.function, compiled.packed_metadata
    names = kernel.arg_names
    assert list(names[:6]) == ["x_ptr", "out_ptr", "n_tokens", "x_row_stride", "x_col_stride", "row_bytes"], names
    args = ints + tuple(constants[name] for name in names[6:])  # every bound argument after the pointers
    index = device.index if device.index is not None else torch.cuda.current_device()
    stream_of = triton.runtime.driver.active.get_current_stream  # what JITFunction.run calls
    grid_0, empty = grid[0], torch.empty

    def launch(x: torch.Tensor) -> torch.Tensor:
        out = empty(shape, dtype=FP8, device=device)
        run(grid_0, 1, 1, stream_of(index), function, packed, None, None, None, x, out, *args)
        return out

    return launch


def jit_launcher(x: torch.Tensor, dv: int = 512, tile_size: int = 128) -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.empty`` + ``kernel[grid](...)``: one kernel launched the usual Triton way, no checks."""
    kernel, grid, constants, shape, ints = _plan(x, dv, tile_size)
    device, empty, launcher = x.device, torch.empty, kernel[grid]

    def launch(x: torch.Tensor) -> torch.Tensor:
        out = empty(shape, dtype=FP8, device=device)
        launcher(x, out, *ints, **constants)
        return out

    return launch


_MADE: dict = {}


def bare(input_k_cache: torch.Tensor, dv: int = 512, tile_size: int = 128) -> torch.Tensor:
    """The bare launch as a spec ``harness bench`` can time beside ``fused`` (issue 17's own measure):
    a reference for contiguous production inputs only, never a candidate (no checks at all)."""
    key = ("bare", input_k_cache.shape, input_k_cache.dtype, input_k_cache.device, dv, tile_size)
    launch = _MADE.get(key) or _MADE.setdefault(key, bare_launcher(input_k_cache, dv, tile_size))
    return launch(input_k_cache)


def jit(input_k_cache: torch.Tensor, dv: int = 512, tile_size: int = 128) -> torch.Tensor:
    """``torch.empty`` + ``kernel[grid](...)`` as a spec ``harness bench`` can time (a reference, no checks)."""
    key = ("jit", input_k_cache.shape, input_k_cache.dtype, input_k_cache.device, dv, tile_size)
    launch = _MADE.get(key) or _MADE.setdefault(key, jit_launcher(input_k_cache, dv, tile_size))
    return launch(input_k_cache)


def event_us(fns: dict[str, Callable], x: torch.Tensor, repeats: int = 300, calls: int = 1) -> dict[str, float]:
    """Per-call time, host and device together, in microseconds: after a synchronize, CUDA events around
    ``calls`` back-to-back calls (calls=1: one call's latency, the GPU idle until its kernel arrives; more:
    the throughput of a loop of calls).  The functions are interleaved, their order rotated every repeat;
    the median over repeats."""
    names = list(fns)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for fn in fns.values():
        fn(x)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            torch.cuda.synchronize()
            start.record()
            for _ in range(calls):
                fn(x)
            end.record()
            end.synchronize()
            samples[name].append(start.elapsed_time(end) * 1e3 / calls)
    return {name: statistics.median(v) for name, v in samples.items()}


def host_us(fns: dict[str, Callable[[], object]], batches: int = 60, calls: int = 100) -> dict[str, float]:
    """Host time per call in microseconds (time.perf_counter around ``calls`` calls, synchronized between
    batches so the launch queue never fills; few enough calls that the GPU cannot fall behind by a whole
    queue), interleaved, the median over batches."""
    names = list(fns)
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for b in range(batches):
        for name in names[b % len(names):] + names[:b % len(names)]:
            fn = fns[name]
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - t0) / calls * 1e6)
    torch.cuda.synchronize()
    return {name: statistics.median(v) for name, v in samples.items()}
