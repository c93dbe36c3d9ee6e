"""Where the fused candidate's per-call time goes on CUDA: host-side steps timed over many calls, and the
kernel alone by do_bench for a few launch configurations.  PYTHONPATH=. python benchmarks/gpu_overhead.py"""

import time

import torch
import triton
import triton.testing

import harness  # noqa: F401
from candidates import _fused_triton as ft
from candidates._kernels import prepare, saturates
from candidates.fused import _kernel, fused
from harness.target import get_target


def host_us(fn, n=2000):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / n * 1e6


target = get_target("quantize_k_cache")
small = target.build(target.parse_size("128"), "cuda").args[0]
print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
print(f"host us/call: saturates {host_us(lambda: saturates(str(small.device))):.1f}, "
      f"prepare {host_us(lambda: prepare(small, 512, 128)):.1f}, _kernel {host_us(lambda: _kernel(small)):.1f}, "
      f"ft.quantize {host_us(lambda: ft.quantize(small)):.1f}, fused {host_us(lambda: fused(small)):.1f}, "
      f"torch.empty {host_us(lambda: torch.empty(128, 656, dtype=torch.uint8, device='cuda')):.1f}")
for tokens in (16384, 1048576):
    x = target.build(target.parse_size(str(tokens)), "cuda").args[0]
    nbytes = target.bytes_moved(target.build(target.parse_size(str(tokens)), "cuda"))
    for block_t, warps in ((2, 2), (4, 2), (4, 4)):
        ms = triton.testing.do_bench(lambda: ft.quantize(x, 512, 128, block_t, warps), warmup=25, rep=200,
                                     return_mode="median")
        print(f"{tokens:8d} tokens BLOCK_T={block_t} warps={warps}: {ms * 1e3:8.1f} us {nbytes / ms / 1e6:6.0f} GB/s")
