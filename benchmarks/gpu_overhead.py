"""Where the fused candidate's per-call time goes on CUDA: host-side steps timed over many calls, and the
kernel alone by do_bench for a few launch configurations.  PYTHONPATH=. python benchmarks/gpu_overhead.py

Host us/call (time.perf_counter around batches of calls, synchronized between batches, medians; see
benchmarks/_bare_launch.py): prepare() (the oracle's checks and the output's allocation), the cached
launcher alone (allocation + direct launch of the kept kernel), fused (lookup + launcher), the normal Triton
path (``quantize(fast=False)``: prepare + ``kernel[grid](...)``, what fused did before the cached launch), and
the two references: the bare launch (``torch.empty`` + one direct launch) and ``torch.empty`` +
``kernel[grid](...)``."""

import sys
from pathlib import Path

import torch
import triton
import triton.testing

import harness  # noqa: F401
from candidates import _fused_triton as ft
from candidates._kernels import prepare, saturates
from candidates.fused import fused
from harness.core.target import get_target

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bare_launch import bare_launcher, host_us, jit_launcher  # noqa: E402

target = get_target("quantize_k_cache")
print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
for tokens in (128, 16384):
    x = target.build(target.parse_size(str(tokens)), "cuda").args[0]
    fused(x)
    fused(x)  # the second call goes through the configuration's launcher
    launch = ft.launcher(x)
    bare, jit = bare_launcher(x), jit_launcher(x)
    nb, bs, _, d = x.shape
    steps = {
        "saturates": lambda: saturates(str(x.device)),
        "torch.empty": lambda: torch.empty((nb, bs, 1, 656), dtype=torch.float8_e4m3fn, device=x.device),
        "prepare": lambda: prepare(x, 512, 128),
        "cached launcher": (lambda: launch(x)) if launch is not None else None,
        "fused": lambda: fused(x),
        "normal path (fast=False)": lambda: ft.quantize(x, fast=False),
        "bare launch": lambda: bare(x),
        "empty + kernel[grid]": lambda: jit(x),
    }
    times = host_us({name: fn for name, fn in steps.items() if fn is not None})
    print(f"{tokens} tokens, host us/call: " + ", ".join(f"{name} {us:.1f}" for name, us in times.items()))
    if launch is None:
        print(f"  no cached launcher: {ft.fast_path_status()}")
    else:
        print(f"  fused / bare launch (host): {times['fused'] / times['bare launch']:.2f}x")
for tokens in (16384, 1048576):
    x = target.build(target.parse_size(str(tokens)), "cuda").args[0]
    nbytes = target.bytes_moved(target.build(target.parse_size(str(tokens)), "cuda"))
    for block_t, warps in ((2, 2), (4, 2), (4, 4)):
        ms = triton.testing.do_bench(lambda: ft.quantize(x, 512, 128, block_t, warps), warmup=25, rep=200,
                                     return_mode="median")
        print(f"{tokens:8d} tokens BLOCK_T={block_t} warps={warps}: {ms * 1e3:8.1f} us {nbytes / ms / 1e6:6.0f} GB/s")
