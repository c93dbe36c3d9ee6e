"""Checks the fused candidate's cached launch (candidates/_fused_triton.py) on a CUDA machine: that later
calls of a configuration really skip Triton's JIT path, that they give the same bytes as Triton's normal
launch and agree with the oracle, over shapes, dtypes, layouts, pointer alignments, token counts down to
one, other streams, CUDA-graph capture and launch hooks; that bad inputs raise what the oracle raises on
every call; then the host time it saves.

    PYTHONPATH=. python benchmarks/launch_check.py [--repeats 300]

One line per check ("ok" / "FAIL"), then timings: host us/call, and per call host + device by CUDA events,
for the normal path (``quantize(fast=False)``: prepare + ``kernel[grid](...)``, what fused did before),
fused (the cached launch), and the bare launch (benchmarks/_bare_launch.py).  Exit status 1 if any check
failed, 2 without CUDA.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import triton

import harness  # noqa: F401
from candidates import _fused_triton as ft
from candidates.fused import fused
from oracles._kcache_cases import build_input, params
from oracles.kcache_reference import quantize_k_cache_slow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bare_launch import bare_launcher, event_us, host_us, jit_launcher  # noqa: E402

FAILED: list[str] = []
JIT_RUNS = [0]  # launches through JITFunction.run (Triton's normal path) of the two quantizer kernels


def check(name: str, ok: bool, detail: str = "") -> bool:
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'  ' + detail if detail else ''}")
    if not ok:
        FAILED.append(name)
    return ok


def count_jit_launches():
    """Count launches through JITFunction.run; returns the function that stops counting."""
    kernels = (ft._quantize_rows_kernel, ft._quantize_kernel)
    for kernel in kernels:
        run = kernel.run

        def counting(*args, _run=run, **kwargs):
            JIT_RUNS[0] += 1
            return _run(*args, **kwargs)

        kernel.run = counting  # KernelInterface.__getitem__ calls self.run: this instance attribute

    def stop() -> None:
        for kernel in kernels:
            del kernel.run

    return stop


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype
            and torch.equal(a.view(torch.uint8), b.view(torch.uint8)))


def agrees_with_oracle(got: torch.Tensor, expected: torch.Tensor, dv: int, tile_size: int) -> bool:
    """Bytes identical up to NaN spelling (fp8 code 0x7F/0xFF, any float32 NaN), as tests/test_candidates.py."""
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return False
    tiles = dv // tile_size
    e = expected.view(torch.uint8).reshape(-1, expected.shape[-1]).cpu()
    g = got.view(torch.uint8).reshape(-1, got.shape[-1]).cpu()
    both_nan = ((e[:, :dv] & 0x7F) == 0x7F) & ((g[:, :dv] & 0x7F) == 0x7F)
    se, sg = (t[:, dv:dv + 4 * tiles].contiguous().view(torch.float32) for t in (e, g))
    return (bool(((e[:, :dv] == g[:, :dv]) | both_nan).all())
            and bool(((se.view(torch.int32) == sg.view(torch.int32)) | (se.isnan() & sg.isnan())).all())
            and torch.equal(e[:, dv + 4 * tiles:], g[:, dv + 4 * tiles:]))


PROD = dict(d=576, dv=512, tile_size=128, dtype="bfloat16")
CASES = [
    ("1 token", params(1, 1, **PROD)),
    ("2 tokens", params(1, 2, **PROD)),
    ("3 tokens", params(1, 3, **PROD)),
    ("17 tokens", params(1, 17, **PROD)),
    ("128 tokens", params(2, 64, **PROD)),
    ("1024 tokens", params(16, 64, **PROD)),
    ("4096 tokens", params(64, 64, **PROD)),
    ("16384 tokens", params(256, 64, **PROD)),
    ("sliced (unaligned rows)", params(3, 8, **PROD, layout="sliced")),
    ("transposed (copied rows)", params(3, 8, **PROD, layout="transposed")),
    ("expanded (stride 0)", params(3, 8, **PROD, layout="expanded")),
    ("float16", params(2, 16, 576, 512, 128, "float16")),
    ("float32", params(2, 16, 576, 512, 128, "float32")),
    ("float32 sliced", params(3, 5, 576, 512, 128, "float32", layout="sliced")),
    ("float16 transposed", params(3, 5, 576, 512, 128, "float16", layout="transposed")),
    ("nonfinite values", params(2, 16, **PROD, values="nonfinite")),
    ("huge values", params(2, 16, 576, 512, 128, "float16", "huge")),
    ("dv 256", params(2, 8, 576, 256, 128, "bfloat16")),
    ("tile 64", params(2, 8, 576, 512, 64, "bfloat16")),
    ("d 544", params(2, 8, 544, 512, 128, "bfloat16")),
    ("tile-loop kernel 230/200/40", params(2, 3, 230, 200, 40, "bfloat16")),
    ("float16 100/60/20 huge", params(1, 7, 100, 60, 20, "float16", "huge")),
    ("no rope 128/128/128", params(2, 3, 128, 128, 128, "bfloat16")),
]
BAD = [
    ("dv not a multiple of tile", params(1, 1, 128, 128, 60, "bfloat16")),
    ("h_k 2", params(1, 2, 128, 128, 64, "bfloat16", h_k=2)),
    ("d < dv", params(1, 1, 100, 128, 64, "bfloat16")),
    ("scales misaligned", params(1, 2, 138, 130, 65, "float32")),
    ("rope misaligned", params(1, 2, 131, 128, 64, "bfloat16")),
]


def check_cases() -> None:
    for label, p in CASES:
        dv, tile = p["dv"], p["tile_size"]
        jit_later, exact, oracle_ok = 0, True, True
        for seed in range(4):  # call 0: the configuration's first (normal path); calls 1-3: its launcher
            x = build_input(p, seed, "cuda")
            before = JIT_RUNS[0]
            got = fused(x, dv, tile)
            if seed:
                jit_later += JIT_RUNS[0] - before
            exact &= same_bytes(got, ft.quantize(x, dv, tile, fast=False))
            oracle_ok &= agrees_with_oracle(got, quantize_k_cache_slow(x, dv, tile), dv, tile)
        x = build_input(p, 0, "cuda")
        taken = ft.launcher(x, dv, tile) is not None and jit_later == 0
        check(f"{label}: fast path taken", taken, f"JIT launches on calls 2-4: {jit_later}; shape {tuple(x.shape)} "
              f"strides {x.stride()} {x.dtype}")
        check(f"{label}: bytes = normal launch", exact)
        check(f"{label}: agrees with the oracle", oracle_ok)


def check_alignments() -> None:
    """One configuration at several element offsets of one buffer: a new alignment goes through Triton once."""
    shape = (4, 16, 1, 576)
    n = 4 * 16 * 576
    buffer = torch.randn(n + 64, device="cuda").to(torch.bfloat16)
    seen, ok_jit, ok_bytes = set(), True, True
    for offset in (0, 1, 8, 3, 0, 1, 5, 8):
        x = buffer[offset:offset + n].view(shape)
        aligned = x.data_ptr() % 16 == 0
        before = JIT_RUNS[0]
        got = fused(x)
        expected_jit = 0 if aligned in seen else 1
        ok_jit &= JIT_RUNS[0] - before == expected_jit
        seen.add(aligned)
        ok_bytes &= same_bytes(got, ft.quantize(x, fast=False))
    check("pointer alignments: Triton once per new alignment, then the launcher", ok_jit)
    check("pointer alignments: bytes = normal launch", ok_bytes)


def check_errors() -> None:
    for label, p in BAD:
        x = build_input(p, 0, "cuda")
        try:
            quantize_k_cache_slow(x, p["dv"], p["tile_size"])
            expected = None
        except Exception as exc:  # noqa: BLE001
            expected = type(exc)
        got = []
        for _ in range(3):
            try:
                fused(x, p["dv"], p["tile_size"])
                got.append(None)
            except Exception as exc:  # noqa: BLE001
                got.append(type(exc))
        check(f"error parity, {label}: every call raises what the oracle raises", expected is not None
              and all(g is expected for g in got), f"oracle {expected}, fused {got}")


def check_stream() -> None:
    """On a side stream held back by a sleep: a kernel launched on another stream would read zeros."""
    p = params(16, 64, **PROD)
    x = build_input(p, 11, "cuda")
    fused(x), fused(x)
    expected = ft.quantize(x, fast=False)
    y = torch.zeros_like(x)
    stream = torch.cuda.Stream()
    torch.cuda.synchronize()
    before = JIT_RUNS[0]
    with torch.cuda.stream(stream):
        torch.cuda._sleep(50_000_000)
        y.copy_(x)
        got = fused(y)
    stream.synchronize()
    check("side stream: launched on the current stream", same_bytes(got, expected) and JIT_RUNS[0] == before)


def check_graph() -> None:
    p = params(16, 64, **PROD)
    static = build_input(p, 12, "cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fused(static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    before = JIT_RUNS[0]
    with torch.cuda.graph(graph):
        out = fused(static)
    during = JIT_RUNS[0] - before
    fresh = build_input(p, 13, "cuda")
    static.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    check("CUDA graph: captured launch replays on new data", same_bytes(out, ft.quantize(fresh, fast=False))
          and during == 0, f"JIT launches during capture: {during}")


def check_hooks() -> None:
    p = params(2, 64, **PROD)
    x = build_input(p, 14, "cuda")
    fused(x), fused(x)
    seen: list = []
    runtime = triton.knobs.runtime
    chain = runtime.launch_enter_hook
    if hasattr(chain, "add"):
        chain.add(seen.append)
    else:
        runtime.launch_enter_hook = seen.append
    try:
        got = fused(x)
        normal = ft.quantize(x, fast=False)
    finally:
        if hasattr(chain, "add"):
            chain.remove(seen.append)
        else:
            runtime.launch_enter_hook = chain
    data = [m.get() if type(m).__name__ == "LazyDict" else m for m in seen]  # Triton's lazy metadata
    names = [d.get("name") if isinstance(d, dict) else None for d in data]
    check("launch enter hook: called with metadata, as by Triton", len(seen) == 2 and names[0] == names[1]
          and names[0] is not None and same_bytes(got, normal), f"metadata names {names}")
    kernel = ft._quantize_rows_kernel
    if hasattr(kernel, "add_pre_run_hook"):
        calls: list = []
        hook = lambda *args, **kwargs: calls.append(1)  # noqa: E731
        kernel.add_pre_run_hook(hook)
        try:
            got = fused(x)
        finally:
            kernel.pre_run_hooks.remove(hook)
        before = JIT_RUNS[0]
        again = fused(x)
        check("pre-run hook: the normal path runs it; removed, the launcher again", calls == [1]
              and JIT_RUNS[0] == before and same_bytes(got, again))


def timings(repeats: int) -> None:
    print("\n-- host us/call at 128 tokens (perf_counter around 100 calls, medians of 60 interleaved batches)")
    x = build_input(params(2, 64, **PROD), 0, "cuda")
    fused(x), fused(x)
    launch, bare, jit = ft.launcher(x), bare_launcher(x), jit_launcher(x)
    host = host_us({"normal path (before)": lambda: ft.quantize(x, fast=False), "fused (after)": lambda: fused(x),
                    "cached launcher alone": lambda: launch(x), "bare launch": lambda: bare(x),
                    "empty + kernel[grid]": lambda: jit(x)})
    print("  " + ", ".join(f"{name} {us:.1f}" for name, us in host.items()))
    print(f"  fused / bare launch: {host['fused (after)'] / host['bare launch']:.2f}x;  "
          f"before / after: {host['normal path (before)'] / host['fused (after)']:.2f}x")
    print("\n-- per call, host + device (CUDA events, medians of interleaved repeats): one call after a sync | "
          "50 back to back")
    for tokens in (128, 1024, 4096, 16384):
        x = build_input(params(tokens // 64, 64, **PROD), 0, "cuda")
        fused(x)
        fns = {"before": lambda x: ft.quantize(x, fast=False), "fused": fused, "bare": bare_launcher(x)}
        one = event_us(fns, x, repeats, calls=1)
        loop = event_us(fns, x, max(repeats // 5, 20), calls=50)
        fmt = lambda t: " ".join(f"{k} {v:6.1f}" for k, v in t.items())  # noqa: E731
        print(f"  {tokens:6d} tokens: {fmt(one)}  fused/bare {one['fused'] / one['bare']:.2f}x | "
              f"{fmt(loop)}  fused/bare {loop['fused'] / loop['bare']:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()} · torch {torch.__version__} · triton {triton.__version__}")
    stop_counting = count_jit_launches()
    for step in (check_cases, check_alignments, check_errors, check_stream, check_graph, check_hooks):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - a crash is a failed check, the others still run
            import traceback
            traceback.print_exc()
            check(f"{step.__name__} ran", False, repr(exc))
    status = ft.fast_path_status()
    check("fast path enabled (no problem recorded)", status["problem"] is None and status["launchers"] > 0,
          str(status))
    stop_counting()  # timings without the counting wrapper
    timings(args.repeats)
    print(f"\n{'ALL CHECKS PASSED' if not FAILED else f'{len(FAILED)} CHECKS FAILED: ' + '; '.join(FAILED)}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
