"""The CPU kernels built with other compiler flags, timed on this machine: why a kernel that reaches ~80% of
copy bandwidth on an AMD EPYC can be compute-bound on an Intel Xeon (issue 27).  gcc's tuning for Intel's
AVX-512 server parts (``-march=native`` on a Xeon picks sapphirerapids or icelake-server) keeps to 256-bit
registers unless told ``-mprefer-vector-width=512``; this EPYC's native tuning uses 512-bit ones.  So the
Xeon's code is built here too (``-march=icelake-server``, whose instructions this EPYC runs) and timed with
and without the preference, 1 and 2 threads.

    PYTHONPATH=. python benchmarks/cpu_kernel_flags.py [--calls 15]

Each candidate's whole call (allocation included) at its production size, median of --calls calls after a
warm-up; % of the copy bandwidth `harness` measures.  The libraries go to a temporary cache: the user's is
not touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

import harness  # noqa: F401  (quiet numpy warning)
from candidates import _cbuild, _dequant_cpu, _fused_cpu, _token_group_cpu
from candidates.dequant_fused import dequant_fused
from candidates.fused import fused
from candidates.token_group_fused import token_group_fused
from harness.runner.clocks import measure_copy_bandwidth
from tests._dequant_cases import production_rows

BASE = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fopenmp", "-shared", "-fPIC"]
VARIANTS = {
    "native (before)": ["-march=native"],
    "native, 512-bit preferred (now)": ["-march=native", "-mprefer-vector-width=512"],
    "icelake-server (a Xeon's native)": ["-march=icelake-server"],
    "icelake-server, 512-bit preferred": ["-march=icelake-server", "-mprefer-vector-width=512"],
}


def cases() -> dict:
    tokens = 65536
    k = torch.randn(tokens // 64, 64, 1, 576).to(torch.bfloat16)
    packed = production_rows(tokens // 64, 64, 3)
    x = torch.randn(4096, 7168).to(torch.bfloat16)
    return {  # name: (function, arguments, bytes moved)
        "fused (K-cache quantizer, 65,536 tokens bf16)": (fused, (k,), tokens * (1152 + 656)),
        "dequant_fused (65,536 tokens)": (dequant_fused, (packed,), tokens * (656 + 1152)),
        "token_group_fused (4096 x 7168 bf16)": (token_group_fused, (x,), x.numel() * 3 + 4096 * 56 * 4),
    }


def median_s(fn, args, calls: int) -> float:
    for _ in range(3):
        fn(*args)
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=15)
    args = ap.parse_args()
    os.environ["HARNESS_CACHE"] = tempfile.mkdtemp(prefix="harness-flags-")
    copy = measure_copy_bandwidth("cpu")
    print(f"copy bandwidth {copy:.1f} GB/s; torch {torch.__version__}; {os.cpu_count()} CPUs")
    work = cases()
    for variant, flags in VARIANTS.items():
        _cbuild.KERNEL_FLAGS = [*BASE[:1], *flags, *BASE[1:]]
        for module in (_fused_cpu, _dequant_cpu, _token_group_cpu):
            module.load.cache_clear()
        print(f"\n-- {variant}: {' '.join(_cbuild.KERNEL_FLAGS)}")
        for name, (fn, fn_args, nbytes) in work.items():
            row = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                s = median_s(fn, fn_args, args.calls)
                row.append(f"{threads} thread{'s' if threads > 1 else ' '} {s * 1e3:7.2f} ms "
                           f"{100 * nbytes / s / 1e9 / copy:5.1f}%")
            print(f"  {name:46s} " + "   ".join(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
