"""One call on the GPU machine: every candidate checked bit-exact against the oracle on CUDA, then a table
of time, GB/s and % of measured copy bandwidth for the production layout at several token counts, then the
fused candidate's per-call cost at launch-bound sizes against a bare launch of the same kernel.

    PYTHONPATH=. python benchmarks/gpu_check.py [--tokens 16384 131072 1048576] [--examples 200] [--tune]
        [--launch-tokens 128 1024 4096 16384] [--launch-repeats 300]

As `harness run --device cuda` does: the oracle computed here (the judge), every candidate and the
baseline each in its own runner process.  The launch-overhead table is measured in this process, after the
runners are gone: `fused`, the bare launch (`torch.empty` + one direct call of the compiled kernel's
launcher, benchmarks/_bare_launch.py) and `torch.empty` + `kernel[grid](...)`, interleaved, per call host +
device by CUDA events (one call after a synchronize, and 50 back to back), medians; and fused, the bare
launch and the oracle compared byte for byte.  Prints the tables last; with --json writes every number.
Numbers go into benchmarks/NOTES.md with the card.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

import harness  # noqa: F401  (quiet numpy warning)
import dataclasses

from harness.judge.bench import Bench, BenchConfig
from harness.core.candidates import absolute, discover
from harness.runner.clocks import measure_copy_bandwidth
from harness.judge.sandbox import spawn
from harness.core.fmt import fmt_time
from harness.core.target import discover_targets, get_target
from harness.judge.verify import Verifier


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


def launch_overhead(target, tokens_list: list[int], repeats: int) -> tuple[list[dict], bool]:
    """Per-call cost of fused at launch-bound sizes against the bare launch of the same kernel (see the
    module docstring), and whether fused, the bare launch and the oracle agree byte for byte."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _bare_launch import bare_launcher, event_us, jit_launcher

    from candidates import _fused_triton as ft
    from candidates.fused import fused
    from oracles.kcache_reference import quantize_k_cache_slow

    rows, all_exact = [], True
    for tokens in tokens_list:
        x = target.build(target.parse_size(str(tokens)), "cuda").args[0]
        fused(x)  # the configuration's first call: checks, Triton's launch, the launcher kept
        fns = {"fused": fused, "bare": bare_launcher(x), "jit": jit_launcher(x)}
        outputs = {name: fn(x) for name, fn in fns.items()}
        outputs["oracle"] = quantize_k_cache_slow(x)
        same = {name: out.shape == outputs["oracle"].shape and out.stride() == outputs["oracle"].stride()
                and torch.equal(out.view(torch.uint8), outputs["oracle"].view(torch.uint8))
                for name, out in outputs.items() if name != "oracle"}
        exact = all(same.values())
        all_exact &= exact
        single = event_us(fns, x, repeats, calls=1)
        loop = event_us(fns, x, max(repeats // 5, 20), calls=50)
        rows.append(dict(tokens=tokens, single_us=single, loop_us=loop, exact=same,
                         fast_path=ft.launcher(x) is not None,
                         ratio_single=single["fused"] / single["bare"], ratio_loop=loop["fused"] / loop["bare"]))
    return rows, all_exact


def print_launch_overhead(rows: list[dict], card: str) -> None:
    from candidates import _fused_triton as ft

    print(f"\n{card}, launch-bound sizes (production layout, bf16): per call, host + device, CUDA events, medians")
    print(f"  bare = torch.empty + one direct launch of the compiled kernel; jit = torch.empty + kernel[grid](...)")
    print(f"{'tokens':>8s} | {'one call after a sync':^36s} | {'50 calls back to back':^36s} | exact (fused, bare, jit = oracle)")
    print(f"{'':8s} | {'fused':>8s} {'bare':>8s} {'jit':>8s} {'f/bare':>9s} | {'fused':>8s} {'bare':>8s} {'jit':>8s} {'f/bare':>9s} |")
    for r in rows:
        s, b = r["single_us"], r["loop_us"]
        mark = lambda ratio: f"{ratio:5.2f}x{' ok' if ratio <= 1.2 else ' >1.2'}"  # noqa: E731
        print(f"{r['tokens']:8d} | {s['fused']:6.1f}us {s['bare']:6.1f}us {s['jit']:6.1f}us {mark(r['ratio_single']):>9s} | "
              f"{b['fused']:6.1f}us {b['bare']:6.1f}us {b['jit']:6.1f}us {mark(r['ratio_loop']):>9s} | "
              + ", ".join("yes" if v else "NO" for v in r["exact"].values())
              + ("" if r["fast_path"] else "  (no cached launcher!)"))
    print(f"  fused's cached launch: {ft.fast_path_status()}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, nargs="+", default=[16384, 131072, 1048576])
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--launch-tokens", type=int, nargs="*", default=[128, 1024, 4096, 16384],
                    help="launch-bound sizes for fused against the bare launch (none: skip)")
    ap.add_argument("--launch-repeats", type=int, default=300)
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
    for runner in runners.values():
        runner.close()
    launch_rows, launch_exact = [], True
    if args.launch_tokens:
        launch_rows, launch_exact = launch_overhead(target, args.launch_tokens, args.launch_repeats)
        print_launch_overhead(launch_rows, card)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(card=card, copy_gbps=copy_gbps, rows=rows,
                           verification={k: dict(cases=v.cases, failed=v.failed, first=v.first_failure)
                                         for k, v in verdicts.items()}, launch=launch_rows), f, indent=2)
    return 0 if all(v.passed for v in verdicts.values()) and launch_exact else 1


if __name__ == "__main__":
    sys.exit(main())
