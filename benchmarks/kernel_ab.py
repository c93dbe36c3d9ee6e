"""The CPU kernels of a git revision against the working tree's, on this machine: each kernel alone (C
function through ctypes, into outputs already touched, so page faults stay out), both builds interleaved
call by call, 1 and 2 threads, medians; the outputs compared byte for byte.

    PYTHONPATH=. python benchmarks/kernel_ab.py [REV] [--calls 40]

REV defaults to HEAD; a folder holding the C sources and headers stands for a revision where git is not
there (the device machines get the working tree without .git).  Same compiler flags for both
(candidates/_cbuild.py's), libraries in a temporary cache.  Sizes: the K-cache quantizer and dequantizer at 65,536 production tokens (bfloat16), the
per-token-group quantizer at 4096 x 7168 (bfloat16).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import harness  # noqa: F401  (quiet numpy warning)
from candidates import _cbuild
from candidates._kernels import saturates
from oracles.token_group_reference import EPS
from tests._dequant_cases import production_rows

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("_fused_cpu.c", "_token_group_cpu.c", "_dequant_cpu.c")


def build(folder: Path, name: str) -> ctypes.CDLL:
    lib = _cbuild.load(folder / name, _cbuild.KERNEL_FLAGS, name)
    assert lib is not None, f"{name} did not build"
    return lib


def checkout(rev: str) -> Path:
    """The candidates' C sources and headers of ``rev`` in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="harness-ab-"))
    listed = subprocess.run(["git", "ls-tree", "--name-only", rev, "candidates/"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    for path in listed:
        if path.endswith((".c", ".h")):
            blob = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True).stdout
            (folder / Path(path).name).write_bytes(blob)
    return folder


def workloads(libs: dict[str, ctypes.CDLL]) -> dict:
    """name -> (call(threads), output tensors, bytes moved), with one build's libraries."""
    i64, ptr, c_int = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    fused, groups, dequant = libs["_fused_cpu.c"], libs["_token_group_cpu.c"], libs["_dequant_cpu.c"]
    dequant.dequantize.argtypes = [ptr, i64, i64, i64, i64, ptr, i64, i64, i64, ctypes.c_uint16, c_int]
    fused.quantize_bf16.argtypes = [ptr, i64, i64, i64, ptr, i64, i64, i64, i64, c_int, c_int, c_int]
    groups.token_groups_bf16.argtypes = [ptr, i64, i64, i64, ptr, ptr, ctypes.c_float, c_int]
    k = torch.randn(65536, 576, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    k_out = torch.zeros(65536, 656, dtype=torch.uint8)
    x = torch.randn(4096, 7168, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    codes, scales = torch.zeros(4096, 7168, dtype=torch.uint8), torch.zeros(4096, 56)
    packed = production_rows(1024, 64, 3).view(65536, 656)
    bf16_out = torch.zeros(65536, 576, dtype=torch.bfloat16)
    sat = saturates("cpu")
    return {
        "K-cache fused, 65,536 tokens": (
            lambda t: fused.quantize_bf16(k.data_ptr(), 65536, 576, 1, k_out.data_ptr(), 656, 512, 128, 64, *sat, t),
            (k_out,), 65536 * (1152 + 656)),
        "token group fused, 4096 x 7168": (
            lambda t: groups.token_groups_bf16(x.data_ptr(), 4096, 7168, 128, codes.data_ptr(), scales.data_ptr(), EPS, t),
            (codes, scales), x.numel() * 3 + 4096 * 56 * 4),
        "K-cache dequant, 65,536 tokens": (
            lambda t: dequant.dequantize(packed.data_ptr(), 1024, 64, 64 * 656, 656, bf16_out.data_ptr(), 576, 512,
                                         128, 0x7FC0, t),
            (bf16_out,), 65536 * (656 + 1152)),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("rev", nargs="?", default="HEAD")
    ap.add_argument("--calls", type=int, default=40)
    args = ap.parse_args()
    os.environ["HARNESS_CACHE"] = tempfile.mkdtemp(prefix="harness-ab-cache-")
    old_folder = Path(args.rev) if Path(args.rev).is_dir() else checkout(args.rev)  # a folder of sources, or a rev
    builds = {args.rev: {n: build(old_folder, n) for n in SOURCES},
              "working tree": {n: build(ROOT / "candidates", n) for n in SOURCES}}
    loads = {label: workloads(libs) for label, libs in builds.items()}
    from harness.runner.clocks import measure_copy_bandwidth
    copy = measure_copy_bandwidth("cpu")
    print(f"copy bandwidth {copy:.1f} GB/s; flags {' '.join(_cbuild.KERNEL_FLAGS)}")
    for name in loads[args.rev]:
        (old_call, old_out, nbytes), (new_call, new_out, _) = loads[args.rev][name], loads["working tree"][name]
        for threads in (1, 2):
            old_call(threads), new_call(threads)
            same = all(torch.equal(a.view(torch.uint8), b.view(torch.uint8)) for a, b in zip(old_out, new_out))  # NaN bits too
            times: dict[str, list[float]] = {args.rev: [], "working tree": []}
            for _ in range(args.calls):
                for label, call in ((args.rev, old_call), ("working tree", new_call)):
                    t0 = time.perf_counter()
                    call(threads)
                    times[label].append(time.perf_counter() - t0)
            row = "   ".join(f"{label} {statistics.median(v) * 1e3:6.2f} ms {100 * nbytes / statistics.median(v) / 1e9 / copy:5.1f}%"
                             for label, v in times.items())
            print(f"{name:32s} {threads} thread{'s' if threads > 1 else ' '}: {row}   outputs "
                  f"{'identical' if same else 'DIFFER'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
