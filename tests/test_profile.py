"""Profiling: the line table's structure and sums on a candidate of known shape, kinds of work by
statement, the kernel table, and the derived explanation."""

import time

import pytest

from candidates.fused import fused
from harness.core.target import Target
from harness.render.explain import by_kind, explain
from harness.runner.profile import WALL, kind_of, profile, statement_sources
from harness.core.target import get_target

TARGET = get_target("quantize_k_cache")
SIZE = TARGET.parse_size("256")


def sleepy(input_k_cache, dv=512, tile_size=128):
    # 100 ms dwarfs the few-ms scheduling noise a 2-core machine adds to the other lines
    prepared = input_k_cache.contiguous()
    time.sleep(0.1)
    return fused(prepared, dv, tile_size)


@pytest.fixture(scope="module")
def sleepy_profile():
    return profile(sleepy, "tests/test_profile.py:sleepy", TARGET, SIZE, min_calls=3, budget_s=0.1)


def test_line_table_structure_and_sums(sleepy_profile):
    p = sleepy_profile
    assert [s.line for s in p.lines] == sorted(s.line for s in p.lines)
    assert [s.source for s in p.lines] == ["prepared = input_k_cache.contiguous()", "time.sleep(0.1)",
                                           "return fused(prepared, dv, tile_size)"]
    assert sum(s.percent for s in p.lines) == pytest.approx(100.0)
    assert all(s.hits == p.calls for s in p.lines)
    assert p.hottest().source == "time.sleep(0.1)" and p.hottest().percent > 80
    assert p.hottest().total_s == pytest.approx(0.1, rel=0.5)
    assert p.total_s == pytest.approx(sum(s.total_s for s in p.lines))
    assert p.timing == WALL and p.device == "cpu"


def test_slow_loop_hottest_line_is_the_reduction_or_conversion():
    p = profile(TARGET.oracle, "oracle:quantize_k_cache", TARGET, TARGET.parse_size("2048"), min_calls=3, budget_s=0.3)
    assert sum(s.percent for s in p.lines) == pytest.approx(100.0)
    assert p.hottest().kind in ("abs + max reduction", "division + fp8 conversion")
    shares = by_kind(p)
    assert shares["abs + max reduction"][0] + shares["division + fp8 conversion"][0] > 60
    ops = {k.name for k in p.kernels}
    assert {"aten::abs", "aten::max"} <= ops


def test_fused_profile_names_its_kernel():
    p = profile(fused, "candidates/fused.py:fused", TARGET, SIZE, min_calls=3, budget_s=0.1)
    kernel = next(k for k in p.kernels if k.name.startswith("_fused_cpu.c::quantize_"))  # named, as the C function
    # most of the time, on a quiet machine (beside busy processes one allocation once took 4 ms: 96%)
    assert kernel is p.kernels[0] or p.kernels[0].name == "aten::empty", p.kernels
    kinds = {stat.kind for stat in p.lines}
    assert "C call" in kinds and "kernel launch" not in kinds  # on the CPU the kernel is a C function


def test_kinds_are_named_in_the_words_of_the_device():
    assert dict(TARGET.kinds_on("cpu"))["C call"] == dict(TARGET.line_kinds)["kernel launch"]
    assert TARGET.kinds_on("cuda") == TARGET.line_kinds


def test_kinds_come_from_whole_statements():
    text = "x = (\n    torch.abs(t)\n    .amax(-1)\n    / 448.0\n)\nfor i in range(3):\n    y = t[..., i:i + 1]\n"
    spans = statement_sources(text)
    kinds = TARGET.line_kinds  # the target's words for its operations
    assert kind_of(spans[3], kinds) == kind_of(spans[1], kinds) == "abs + max reduction"
    assert kind_of(spans[6], kinds) == "loop header"
    assert kind_of(spans[7], kinds) == "slicing / indexing"
    assert kind_of("n = dv // tile", kinds) == "other"
    assert kind_of(spans[3], Target.line_kinds) == "other"  # the generic kinds know no reduction


def test_explanation_compares_kinds_of_work():
    base = profile(TARGET.oracle, "oracle:quantize_k_cache", TARGET, SIZE, min_calls=3, budget_s=0.1)
    facts = explain(base, profile(fused, "candidates/fused.py:fused", TARGET, SIZE, min_calls=3, budget_s=0.1))
    assert any(f.startswith("abs + max reduction: ") and f.endswith("→ gone") for f in facts)
    assert any("_fused_cpu.c::quantize_bf16" in f for f in facts)
