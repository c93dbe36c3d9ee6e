"""What the judge/runner split costs: the pipe's round trip and its throughput for outputs.

    python benchmarks/transport.py

1. an empty request (``release``) answered by a runner, many times: the latency of one round trip;
2. one call of the oracle on a case, through a runner vs the same ``Worker`` in this process (encode and
   decode included in both), for small and large outputs: the transport's share of a verification call,
   and its throughput in MB/s for a 43 MB output.
Numbers go into benchmarks/NOTES.md with the machine.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import harness  # noqa: F401
from harness.core import messages as m
from harness.core.config import BenchConfig
from harness.core.protocol import decode_outcome
from harness.judge.sandbox import spawn
from harness.core.target import get_target
from harness.runner.worker import Worker


def timed(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    target = get_target("quantize_k_cache")
    runner = spawn("oracle:quantize_k_cache", target.ref, "cpu", dataclasses.asdict(BenchConfig()), 600)
    local = Worker(target.oracle, target)
    try:
        empty = timed(lambda: runner.request(m.Release(), m.Ok), 2000)
        print(f"empty request round trip: {empty * 1e6:.1f} us (median of 2000)")
        for size in ("1x16x576", "16x64x576", "4096", "65536"):
            case = target.parse_size(size)
            out_bytes = target.case_bytes(case) - case.params["num_blocks"] * case.params["block_size"] * 576 * 2
            repeats = 50 if out_bytes < 1 << 20 else 8
            remote = timed(lambda: runner.call(case), repeats)
            here = timed(lambda: decode_outcome(*(lambda r: (r[0], b"".join(r[1])))(local.call(case))), repeats)
            extra = remote - here
            print(f"call @ {size:9s} output {out_bytes / 1e6:7.3f} MB: runner {remote * 1e3:8.3f} ms, in-process "
                  f"{here * 1e3:8.3f} ms, transport {extra * 1e3:7.3f} ms"
                  + (f" ({out_bytes / extra / 1e6:.0f} MB/s)" if extra > 0 and out_bytes > 1 << 20 else ""))
    finally:
        runner.close()


if __name__ == "__main__":
    main()
