"""CPU times of the dequantizer candidates on production rows (bf16 output), timeit-style.

    PYTHONPATH=. python benchmarks/dequant_cpu_time.py [--tokens 4096 65536] [--repeat 15] [--threads N]

Each candidate called ``repeat`` times on the same input (quantized random bf16 data, blocks of 64 tokens);
prints the best and the median call and GB/s (656 bytes read + 1152 written per token) against a plain
``torch`` copy of the same number of bytes into a fresh tensor.  The fused candidate's first call compiles
its C kernel (cached in $HARNESS_CACHE) outside the timing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import harness  # noqa: F401
from candidates.dequant_fused import dequant_fused
from candidates.dequant_slow_loop import dequant_slow_loop
from candidates.dequant_vectorized import dequant_vectorized
from tests._dequant_cases import production_rows

CANDIDATES = {"dequant_slow_loop": dequant_slow_loop, "dequant_vectorized": dequant_vectorized,
              "dequant_fused": dequant_fused}


def times(fn, repeat: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def timing_args() -> argparse.Namespace:
    """The options both CPU timing scripts take (--tokens, --repeat, --threads), threads applied."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, nargs="+", default=[4096, 65536])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def main() -> int:
    args = timing_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'candidate':20s} {'tokens':>7s} {'best':>10s} {'median':>10s} {'GB/s':>6s} {'vs slow loop':>12s}")
    for tokens in args.tokens:
        x = production_rows(tokens // 64, 64, 0)
        nbytes = tokens * (656 + 1152)
        src = torch.empty(nbytes // 2, dtype=torch.uint8).fill_(1)
        copy = times(lambda: torch.empty_like(src).copy_(src), args.repeat)
        medians = {}
        for name, fn in CANDIDATES.items():
            t = times(lambda: fn(x), args.repeat)
            medians[name] = statistics.median(t)
            print(f"{name:20s} {tokens:7d} {min(t) * 1e6:8.0f}us {medians[name] * 1e6:8.0f}us "
                  f"{nbytes / medians[name] / 1e9:6.1f} {medians['dequant_slow_loop'] / medians[name]:11.1f}x")
        print(f"{'(copy, same bytes)':20s} {tokens:7d} {min(copy) * 1e6:8.0f}us {statistics.median(copy) * 1e6:8.0f}us "
              f"{nbytes / statistics.median(copy) / 1e9:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
