"""The dequantizer's Triton launch shapes on this GPU, timed as `harness bench --device cuda` times a call
(harness.runner.clocks.CudaClock: the L2 flushed before each call, device events around it), each checked
bit-exact against the oracle on CUDA first.  Issue 27's bar: at most sglang's upstream kernel at 128 tokens
(4.64 us on the CEO's H100) and at least 55% of copy bandwidth at 16,384 tokens.

    PYTHONPATH=. python benchmarks/dequant_tune_cuda.py [--quick]

Prints, per token count: floors (a one-element kernel; a device copy of the same bytes), the fused
quantizer for comparison (it moves the same bytes per token), then every launch shape (tokens per program,
tile groups per program, warps, rope loaded early or late, streaming hints) with time, GB/s and % of the
machine's copy bandwidth (measured as `harness` measures it), best first; last the host time per call of
``dequant_fused`` (cached launch) against the normal Triton launch, calls back to back.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

import harness  # noqa: F401  (quiet numpy warning)
from candidates import _dequant_triton as kernel
from candidates._dequant import rows_of
from candidates.dequant_fused import dequant_fused
from candidates.fused import fused
from harness.core.target import Call
from harness.runner.clocks import CudaClock, measure_copy_bandwidth
from oracles.kcache_dequant_reference import dequantize_k_cache_slow
from tests._dequant_cases import production_rows

READ, WRITTEN = 656, 1152  # bytes per production token
CLOCK = CudaClock(l2_flush=True)


def per_call_us(fn, *args, calls: int = 200) -> float:
    """Median over 5 batches of the clock's mean per call (each call between its own events, L2 flushed)."""
    call = Call(args, {})
    CLOCK.time(fn, [call], 20)
    return statistics.median(CLOCK.time(fn, [call], calls // 5) for _ in range(5)) * 1e6


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.view(torch.int16), b.view(torch.int16))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer shapes")
    ap.add_argument("--tokens", type=int, nargs="*", default=[128, 16384, 65536])
    args = ap.parse_args()
    copy = measure_copy_bandwidth("cuda")
    print(f"{torch.cuda.get_device_name()}  copy bandwidth {copy:.0f} GB/s (as harness measures it)")
    shapes = list(itertools.product((1, 2, 4, 8, 16), (1, 2, 4), (1, 2, 4, 8), (True, False), (False,)))
    if args.quick:
        shapes = [s for s in shapes if s[2] in (2, 4) and s[1] in (1, 4)]
    shapes += [(8, 4, 4, True, True), (4, 4, 2, True, True), (2, 1, 2, True, True)]
    best: dict[int, list] = {}
    for tokens in args.tokens:
        x = production_rows(tokens // 64, 64, 7).cuda()
        nbytes = tokens * (READ + WRITTEN)
        expected = dequantize_k_cache_slow(x)
        src = torch.empty(nbytes // 2, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        one = torch.empty(1, device="cuda")
        q_in = torch.randn(tokens // 64, 64, 1, 576, device="cuda").to(torch.bfloat16)
        rows = rows_of(x, 512, 128, 576)
        print(f"\n-- {tokens} tokens ({nbytes / 1e6:.2f} MB moved)")
        floors = {"one-element kernel": per_call_us(lambda: one.zero_()),
                  "device copy of the same bytes": per_call_us(lambda: dst.copy_(src)),
                  "quantizer fused (same bytes)": per_call_us(fused, q_in),
                  "dequant_fused as committed": per_call_us(dequant_fused, x)}
        for name, us in floors.items():
            print(f"  {name:34s} {us:8.2f} us {nbytes / us / 1e3:7.0f} GB/s {100 * nbytes / us / 1e3 / copy:5.1f}%")
        results = []
        for block_t, tiles, warps, early, stream in shapes:
            options = dict(block_t=block_t, tiles_per_program=tiles, num_warps=warps, early_rope=early, stream=stream)
            try:
                got = kernel.dequantize(rows, 512, 128, 576, **options).view(x.shape[0], x.shape[1], 1, 576)
            except Exception as exc:  # noqa: BLE001 - a shape Triton cannot compile is reported, not fatal
                print(f"  {options}: {type(exc).__name__}: {str(exc)[:80]}")
                continue
            if not bits_equal(got, expected):
                print(f"  {options}: DIFFERS from the oracle")
                continue
            us = per_call_us(lambda: kernel.dequantize(rows, 512, 128, 576, **options))
            results.append((us, options))
        results.sort(key=lambda r: r[0])
        best[tokens] = results
        for us, options in results[:12]:
            gbps = nbytes / us / 1e3
            print(f"  {us:8.2f} us {gbps:7.0f} GB/s {100 * gbps / copy:5.1f}%  {options}")
        print(f"  ({len(results)} exact shapes; worst {results[-1][0]:.2f} us)")
    if len(best) > 1:  # the shapes good everywhere: rank by the sum of ranks over the token counts
        ranks: dict = {}
        for results in best.values():
            for rank, (_, options) in enumerate(results):
                ranks.setdefault(tuple(options.items()), []).append(rank)
        overall = sorted((sum(r), key) for key, r in ranks.items() if len(r) == len(best))[:8]
        print("\n-- good at every token count (sum of ranks):")
        for total, key in overall:
            times = [next(us for us, o in best[t] if tuple(o.items()) == key) for t in best]
            print(f"  {total:4d}  {dict(key)}  " + "  ".join(f"{t}: {us:.2f} us" for t, us in zip(best, times)))
    x = production_rows(2, 64, 7).cuda()
    dequant_fused(x)
    for name, fn in (("dequant_fused (cached launch)", lambda: dequant_fused(x)),
                     ("normal Triton launch", lambda: kernel.dequantize(rows_of(x, 512, 128, 576), 512, 128, 576))):
        samples = []
        for _ in range(30):
            t0 = time.perf_counter()
            for _ in range(100):
                fn()
            samples.append((time.perf_counter() - t0) / 100 * 1e6)
            torch.cuda.synchronize()
        print(f"host per call at 128 tokens, back to back: {name}: {statistics.median(samples):.1f} us")
    print(f"cached launch: {kernel.fast_path_status()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
