"""One call on the GPU machine: every candidate checked bit-exact against the oracle on CUDA, then a table
of time, GB/s and % of measured copy bandwidth for the production layout at several token counts.

    PYTHONPATH=. python benchmarks/gpu_check.py [--tokens 16384 131072 1048576] [--examples 200] [--tune]

As `harness run --device cuda` does: the oracle computed here (the judge), every candidate and the
baseline each in its own runner process.  Prints a table last; with --json writes every number.  Numbers
go into benchmarks/NOTES.md with the card.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

import harness  # noqa: F401  (quiet numpy warning)
import dataclasses

from harness.bench import Bench, BenchConfig
from harness.candidates import absolute, discover
from harness.clocks import measure_copy_bandwidth
from harness.sandbox import spawn
from harness.fmt import fmt_time
from harness.target import discover_targets, get_target
from harness.verify import Verifier


def tune(target, tokens: int) -> None:
    import triton.testing

    from candidates import _fused_triton as ft

    call = target.build(target.parse_size(str(tokens)), "cuda")
    x = call.args[0]
    nbytes = target.bytes_moved(call)
    print(f"\n-- tuning the Triton kernel at {tokens} tokens (do_bench median)")
    configs = [("tiles", 4, 2), ("tiles", 8, 4)] + [("rows", b, w) for b in (1, 2, 4, 8, 16) for w in (1, 2, 4, 8)]
    for variant, block_t, warps in configs:
        ms = triton.testing.do_bench(lambda: ft.quantize(x, 512, 128, block_t, warps, variant), warmup=25,
                                     rep=200, return_mode="median")
        print(f"  {variant:5s} BLOCK_T={block_t:3d} num_warps={warps}: {ms * 1e3:8.1f} us  {nbytes / ms / 1e6:7.0f} GB/s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, nargs="+", default=[16384, 131072, 1048576])
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    target = get_target("quantize_k_cache")
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    card = torch.cuda.get_device_name()
    print(f"{card} · torch {torch.__version__} · triton {triton_version} · Python {platform.python_version()}")
    copy_gbps = measure_copy_bandwidth("cuda")
    print(f"copy bandwidth (device-to-device, read+write): {copy_gbps:.0f} GB/s")

    verifier = Verifier(target, "exact", "cuda", examples=args.examples, seed=0)
    print("\n-- oracle, CPU vs CUDA (exact; torch divides by 448 on the CPU, multiplies by 1/448 on CUDA):")
    print("\n".join(f"  {case.name}: {cmp.summary}" for case, cmp in verifier.oracle_device_differences())
          or "  identical on every named case")

    candidates = discover(target.name, list(discover_targets()))
    config = BenchConfig(budget_s=args.budget)
    runners = {spec: spawn(absolute(spec), target.ref, "cuda", dataclasses.asdict(config), 1200)
               for spec in ["oracle:quantize_k_cache", *(c.spec for c in candidates)]}
    verdicts = {}
    print(f"\n-- verification on CUDA, policy exact, {args.examples} property examples")
    for cand in candidates:
        v = verifier.verify(runners[cand.spec], cand.spec)
        verdicts[cand.name] = v
        print(f"  {cand.name:16s} {v.cases - v.failed}/{v.cases} passed" + (f"  FIRST: {v.first_failure}  {v.pattern}" if v.failed else ""))

    if args.tune:
        tune(target, max(args.tokens))

    bench = Bench(target, "cuda", config, copy_gbps=copy_gbps)
    rows = []
    for tokens in args.tokens:
        size = target.parse_size(str(tokens))
        for cand in candidates:
            t = bench.compare(runners["oracle:quantize_k_cache"], runners[cand.spec], size)
            rows.append(dict(candidate=cand.name, tokens=tokens, median_s=t.candidate.median_s,
                             baseline_s=t.baseline.median_s, speedup=t.speedup, ci=t.speedup_ci, gbps=t.gbps,
                             pct=t.pct_copy_bandwidth, rounds=t.candidate.rounds, verdict=t.verdict))

    print(f"\n{card}, production layout (bf16, d=576, dv=512, tile=128), copy bandwidth {copy_gbps:.0f} GB/s")
    print(f"{'candidate':16s} {'tokens':>8s} {'median':>10s} {'slow loop':>10s} {'speedup [95% CI]':>22s} {'GB/s':>7s} {'% copy':>7s}  exact")
    for r in rows:
        v = verdicts[r["candidate"]]
        print(f"{r['candidate']:16s} {r['tokens']:8d} {fmt_time(r['median_s']):>10s} {fmt_time(r['baseline_s']):>10s} "
              f"{r['speedup']:6.2f}x [{r['ci'][0]:.2f}-{r['ci'][1]:.2f}] {r['gbps']:7.0f} {r['pct']:6.1f}%  "
              f"{'pass' if v.passed else 'FAIL'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(card=card, copy_gbps=copy_gbps, rows=rows,
                           verification={k: dict(cases=v.cases, failed=v.failed, first=v.first_failure)
                                         for k, v in verdicts.items()}), f, indent=2)
    for runner in runners.values():
        runner.close()
    return 0 if all(v.passed for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
