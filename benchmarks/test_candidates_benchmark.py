"""pytest-benchmark suite for the candidates, for people who live in pytest-benchmark:

    pytest benchmarks/ --benchmark-json=bench.json
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=median:5%

Each benchmark first checks the candidate against the oracle on the same input (a wrong candidate's
timing is not reported), then times it with fresh inputs rotated by pytest-benchmark's setup, so no
round reuses a cached result.  The harness's own engine (`harness bench`) adds interleaving with the
baseline and confidence intervals; this suite gives the familiar JSON and compare workflow.
"""

import itertools

import pytest
import torch

from harness.candidates import discover, load
from harness.target import Case, discover_targets, get_target

TARGET = get_target("quantize_k_cache")
CANDIDATES = {c.name: load(c.spec) for c in discover(TARGET.name, list(discover_targets()))}  # in-process: your own benchmarks
SIZES = ["512x32x300,dv=256,tile=64,dtype=float32", "4096", "16384"]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_candidate(benchmark, name, size):
    case = TARGET.parse_size(size)
    call = TARGET.build(case, "cpu")
    expected = TARGET.oracle(*call.args, **call.kwargs)
    got = CANDIDATES[name].function(*call.args, **call.kwargs)
    assert TARGET.compare(call, expected, got, "exact").ok
    inputs = [TARGET.build(Case(case.name, case.family, case.params, seed), "cpu") for seed in range(3)]
    rotation = itertools.cycle(inputs)

    def setup():
        c = next(rotation)
        return c.args, dict(c.kwargs)

    benchmark.extra_info.update(size=size, bytes_moved=TARGET.bytes_moved(call), threads=torch.get_num_threads())
    benchmark.pedantic(CANDIDATES[name].function, setup=setup, rounds=15, warmup_rounds=2)
