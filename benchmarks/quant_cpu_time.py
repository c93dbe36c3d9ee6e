"""CPU times of the quantizer candidates on production input (bf16 (blocks, 64, 1, 576), dv=512, tile 128).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 \\
        PYTHONPATH=. python benchmarks/quant_cpu_time.py [--tokens 4096 65536] [--repeat 15] [--threads N]

Each candidate called ``repeat`` times on the same input (random bf16 over a wide range of magnitudes);
prints the best and the median call and GB/s (1152 bytes read + 656 written per token) against a plain
``torch`` copy of the same number of bytes into a fresh tensor.  ``fused kernel (touched out)`` calls the
C kernel alone into an output already written once, so its difference from ``fused`` is the price of the
fresh output's page faults (and the Python-side checks).  Set the malloc variables like the harness's
runners, before Python starts, or the fresh outputs are mmapped and faulted in anew on every call.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import torch

import harness  # noqa: F401
from candidates import _fused_cpu
from candidates._kernels import prepare, saturates
from candidates.fused import fused
from oracles.kcache_reference import quantize_k_cache_slow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dequant_cpu_time import times, timing_args  # noqa: E402  (one timing loop and options for both)


def production_input(tokens: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens // 64, 64, 1, 576, generator=g)
    x *= torch.exp2(torch.randint(-20, 20, (tokens // 64, 64, 1, 1), generator=g).float())
    return x.to(torch.bfloat16)


def touched_kernel(x: torch.Tensor):
    """The C kernel alone, into one output allocated and written once: no page faults, no checks."""
    prep = prepare(x, 512, 128)
    prep.out.view(torch.uint8).fill_(0)
    kernel, rows = getattr(_fused_cpu.load(), _fused_cpu.FUNCTIONS[x.dtype]), prep.rows
    args = (rows.data_ptr(), rows.shape[0], rows.stride(0), rows.stride(1), prep.out.data_ptr(), prep.width, 512,
            128, rows.shape[1] - 512, *saturates("cpu"), torch.get_num_threads())
    return lambda: kernel(*args) or prep  # the closure keeps the output alive


def main() -> int:
    args = timing_args()
    env = {k: os.environ.get(k) for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {env}")
    print(f"{'candidate':28s} {'tokens':>7s} {'best':>10s} {'median':>10s} {'GB/s':>6s} {'vs slow loop':>12s}")
    for tokens in args.tokens:
        x = production_input(tokens)
        nbytes = tokens * (1152 + 656)
        src = torch.empty(nbytes // 2, dtype=torch.uint8).fill_(1)
        rows = {"slow loop": lambda: quantize_k_cache_slow(x), "fused": lambda: fused(x),
                "fused kernel (touched out)": touched_kernel(x),
                "(copy, same bytes)": lambda: torch.empty_like(src).copy_(src)}
        slow = None
        for name, fn in rows.items():
            t = times(fn, args.repeat)
            med = statistics.median(t)
            slow = slow or med
            print(f"{name:28s} {tokens:7d} {min(t) * 1e6:8.0f}us {med * 1e6:8.0f}us {nbytes / med / 1e9:6.1f} "
                  f"{slow / med:11.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
