"""The dequantizer's candidates on a GPU, in one call: bit-exactness against the oracle on CUDA, then time,
GB/s and % of copy bandwidth for the production layout at several token counts.

    PYTHONPATH=. python benchmarks/dequant_gpu_check.py [--tokens 4096 65536 1048576] [--tune] [--json F]

1. Every case of tests/_dequant_cases.py on CUDA: each candidate's output bits (int16 view) against the
   oracle's computed on CUDA (or the oracle's exception type), plus a large random-bytes input (every code,
   special and random float32 scales) and production rows quantized from random bf16 data.
2. Host time per call of each candidate (small input, calls back to back).
3. With --tune, the Triton kernel's launch shapes (tokens per program x warps) at the largest token count,
   each also checked bit-exact there.
4. The table: each candidate's whole call (views, allocation, launch) timed with
   ``triton.testing.do_bench`` (median, L2 cleared between calls), bytes moved = tokens x (656 read +
   1152 written), against a plain ``torch`` device-to-device copy of the same number of bytes (half read,
   half written) timed the same way.
Numbers go into benchmarks/NOTES.md with the card.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

import harness  # noqa: F401  (quiet numpy warning)
from candidates import _dequant_triton
from candidates._dequant import nan_bits, rows_of
from candidates.dequant_fused import dequant_fused
from candidates.dequant_slow_loop import dequant_slow_loop
from candidates.dequant_vectorized import dequant_vectorized
from oracles.kcache_dequant_reference import dequantize_k_cache_slow
from tests._dequant_cases import error_cases, production_rows, random_rows, to_device, value_cases

CANDIDATES = {"dequant_slow_loop": dequant_slow_loop, "dequant_vectorized": dequant_vectorized,
              "dequant_fused": dequant_fused}
READ, WRITTEN = 656, 1152  # bytes per production token


def differing(got: torch.Tensor, expected: torch.Tensor) -> int:
    if got.shape != expected.shape or got.dtype != expected.dtype or not got.is_contiguous():
        return -1
    return int((got.view(torch.int16) != expected.view(torch.int16)).sum())


def verdict(count: int) -> str:
    return "exact" if count == 0 else ("WRONG SHAPE/DTYPE" if count < 0 else f"{count} DIFFER")


def check_exactness() -> bool:
    print(f"-- bit-exactness on CUDA (NaN spelled 0x{nan_bits('cuda', False):04X} by torch's CUDA stores; "
          f"0x{nan_bits('cuda', True):04X} strided)")
    ok = True
    for case in value_cases() + error_cases():
        x, dv, tile, d = case.build()
        x = to_device(x, "cuda")
        try:
            expected = dequantize_k_cache_slow(x, dv, tile, d)
        except Exception as exc:  # noqa: BLE001
            verdicts = []
            for name, fn in CANDIDATES.items():
                try:
                    fn(x, dv, tile, d)
                    verdicts.append(f"{name}: NO ERROR")
                    ok = False
                except Exception as mine:  # noqa: BLE001
                    same = type(mine) is type(exc)
                    ok &= same
                    verdicts.append(f"{name}: {'same' if same else type(mine).__name__}")
            print(f"  {case.name:42s} oracle raises {type(exc).__name__:17s} {', '.join(verdicts)}")
            continue
        counts = {name: differing(fn(x, dv, tile, d), expected) for name, fn in CANDIDATES.items()}
        ok &= not any(counts.values())
        print(f"  {case.name:42s} " + "  ".join(f"{n}: {verdict(c)}" for n, c in counts.items()))
    for name, x in (("random-bytes-65536-tokens", random_rows(1024, 64, 99, 576, 512, 128)),
                    ("quantized-bf16-65536-tokens", production_rows(1024, 64, 98))):
        x = x.cuda()
        expected = dequantize_k_cache_slow(x)
        counts = {n: differing(fn(x), expected) for n, fn in CANDIDATES.items()}
        ok &= not any(counts.values())
        print(f"  {name:42s} " + "  ".join(f"{n}: {verdict(c)}" for n, c in counts.items())
              + f"  ({int(expected.isnan().sum())} NaN)")
    print(f"  => {'all bit-identical' if ok else 'DIFFERENCES FOUND'}")
    return ok


def production_input(tokens: int) -> torch.Tensor:
    """Production rows for ``tokens`` tokens (blocks of 64) on the GPU: quantized random bf16 data, at most
    65,536 tokens of it, repeated (the time does not depend on the values)."""
    base = production_rows(max(min(tokens, 65536) // 64, 1), min(tokens, 64), 11).cuda()
    return base.repeat(max(tokens // base.shape[0] // base.shape[1], 1), 1, 1, 1)


def bench_ms(fn) -> float:
    import triton.testing

    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


def tune(tokens: int) -> dict:
    x = production_input(tokens)
    expected = dequantize_k_cache_slow(x)
    parts = rows_of(x, 512, 128, 576)
    nbytes = tokens * (READ + WRITTEN)
    print(f"\n-- tuning the Triton kernel at {tokens} tokens (do_bench median, whole kernel call)")
    results = {}
    for stream in (False, True):
        for block_t in (2, 4, 8, 16, 32):
            for warps in (2, 4, 8):
                run = lambda: _dequant_triton.dequantize(parts, 512, 128, 576, block_t, warps, stream)  # noqa: E731
                exact = differing(run().view(expected.shape), expected) == 0
                ms = bench_ms(run)
                results[(block_t, warps, stream)] = ms
                print(f"  BLOCK_T={block_t:3d} num_warps={warps} stream={stream!s:5s}: {ms * 1e3:8.1f} us  "
                      f"{nbytes / ms / 1e6:7.0f} GB/s  {'exact' if exact else 'DIFFERS'}")
    best = min(results, key=results.get)
    print(f"  best: BLOCK_T={best[0]} num_warps={best[1]} stream={best[2]} ({results[best] * 1e3:.1f} us); default "
          f"BLOCK_T={_dequant_triton.BLOCK_T} num_warps={_dequant_triton.NUM_WARPS} stream={_dequant_triton.STREAM}")
    return {f"{b}x{w}{'-stream' if s else ''}": ms for (b, w, s), ms in results.items()}


def table(token_counts: list[int]) -> list[dict]:
    rows = []
    for tokens in token_counts:
        x = production_input(tokens)
        assert x.shape[0] * x.shape[1] == tokens, x.shape
        nbytes = tokens * (READ + WRITTEN)
        half = nbytes // 2
        src = torch.empty(half, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        copy_ms = bench_ms(lambda: dst.copy_(src))
        copy_gbps = nbytes / copy_ms / 1e6
        del src, dst
        for name, fn in CANDIDATES.items():
            ms = bench_ms(lambda: fn(x))
            gbps = nbytes / ms / 1e6
            rows.append(dict(candidate=name, tokens=tokens, us=ms * 1e3, gbps=gbps, copy_us=copy_ms * 1e3,
                             copy_gbps=copy_gbps, pct_copy=100 * gbps / copy_gbps))
    return rows


def host_overhead(tokens: int = 4096, calls: int = 300) -> dict:
    """Host time per call: back-to-back calls on a small input (the GPU keeps up), wall time / calls."""
    import time

    x = production_input(tokens)
    print(f"\n-- host time per call at {tokens} tokens ({calls} calls back to back, then one synchronize)")
    out = {}
    for name, fn in CANDIDATES.items():
        for _ in range(20):
            fn(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn(x)
        torch.cuda.synchronize()
        out[name] = (time.perf_counter() - start) / calls * 1e6
        print(f"  {name:20s} {out[name]:7.1f} us/call")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, nargs="+", default=[4096, 65536, 1048576])
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    import triton

    card = torch.cuda.get_device_name()
    print(f"{card} · torch {torch.__version__} · triton {triton.__version__} · Python {platform.python_version()}")
    ok = check_exactness()
    tuned = tune(max(args.tokens)) if args.tune else None
    host = host_overhead()
    rows = table(args.tokens)
    print(f"\n{card}, production layout (d=576, dv=512, tile 128; {READ} B read + {WRITTEN} B written per token), "
          "do_bench medians")
    print(f"{'candidate':20s} {'tokens':>8s} {'time':>11s} {'GB/s':>7s} {'copy (same bytes)':>18s} {'copy GB/s':>9s} "
          f"{'% copy':>7s}")
    for r in rows:
        print(f"{r['candidate']:20s} {r['tokens']:8d} {r['us']:9.1f}us {r['gbps']:7.0f} {r['copy_us']:16.1f}us "
              f"{r['copy_gbps']:9.0f} {r['pct_copy']:6.1f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(card=card, torch=torch.__version__, triton=triton.__version__, exact=ok, rows=rows,
                           tune=tuned, host_us_per_call=host), f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
