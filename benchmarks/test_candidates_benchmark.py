"""pytest-benchmark suite for the quantizer's candidates, for people who live in pytest-benchmark:

    pytest benchmarks/ --benchmark-autosave                        # a baseline, saved under .benchmarks/
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=min:10%

Results are grouped by size (relative columns compare candidates at one size, never across sizes).  Rounds
follow the plugin's own options: at least ``--benchmark-min-rounds`` (default 5) and as many more as fit in
``--benchmark-max-time`` seconds (default 1.0).  ``HARNESS_CANDIDATE="path/to/file.py:function ..."`` adds
your own candidates (space-separated specs) beside the built-in ones.

Each benchmark first checks the candidate against the oracle on the same input (a wrong candidate's
timing is not reported), then times it with fresh inputs rotated by pytest-benchmark's setup, so no round
reuses a cached result.  The compare threshold: four back-to-back runs of this unchanged suite on the
2-core CI machine moved by up to 6.9% at the minimum and 6.7% at the median between consecutive runs
(benchmarks/NOTES.md), so ``min:10%`` passes an unchanged function there (checked: an autosave, then two
compares) and ``median:5%`` does not.  The harness's own engine
(``harness bench``, ``harness compare``) interleaves with the baseline and gives confidence intervals;
this suite gives the familiar JSON and compare workflow.  Functions run in this process: only your own
code belongs here (the harness runs candidates in runner processes).
"""

import itertools
import math
import os
import time

import pytest
import torch

from harness.core.candidates import discover
from harness.runner.load import load
from harness.core.target import Case, discover_targets, get_target

TARGET = get_target("quantize_k_cache")
SPECS = [c.spec for c in discover(TARGET.name, list(discover_targets()))] + os.environ.get("HARNESS_CANDIDATE", "").split()
CANDIDATES = {spec: load(spec) for spec in SPECS}  # in-process: your own benchmarks
SIZES = ["512x32x300,dv=256,tile=64,dtype=float32", "4096", "16384"]


def _rounds(config: pytest.Config, seconds_per_call: float) -> int:
    """The plugin's own budget: --benchmark-min-rounds, and more while --benchmark-max-time allows."""
    min_rounds = int(config.getoption("benchmark_min_rounds"))
    max_time = float(config.getoption("benchmark_max_time"))
    return max(min_rounds, min(1000, math.floor(max_time / max(seconds_per_call, 1e-9))))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: CANDIDATES[spec].name)
def test_candidate(benchmark, request, spec, size):
    function = CANDIDATES[spec].function
    case = TARGET.parse_size(size)
    call = TARGET.build(case, "cpu")
    expected = TARGET.oracle(*call.args, **call.kwargs)
    started = time.perf_counter()
    got = function(*call.args, **call.kwargs)
    once = time.perf_counter() - started
    assert TARGET.compare(call, expected, got, "exact").ok, f"{spec} is not the oracle at {size}: not timed"
    inputs = [TARGET.build(Case(case.name, case.family, case.params, seed), "cpu") for seed in range(3)]
    rotation = itertools.cycle(inputs)

    def setup():
        c = next(rotation)
        return c.args, dict(c.kwargs)

    benchmark.group = f"size {size}"
    benchmark.extra_info.update(size=size, spec=spec, bytes_moved=TARGET.bytes_moved(call),
                                threads=torch.get_num_threads())
    benchmark.pedantic(function, setup=setup, rounds=_rounds(request.config, once), warmup_rounds=2)
