"""The SVG charts (harness/render/charts.py): which points each line joins, and the legend's words."""

import dataclasses

import pytest

from harness.render import charts
from tests.test_console import _run


def _families(run, family_of):
    """``run`` with each timing's shape family set by its size name, and sizes of growing bytes."""
    return dataclasses.replace(run, candidates=tuple(
        dataclasses.replace(c, timings=tuple(dataclasses.replace(t, family=family_of(t.size), bytes_moved=4096 << i)
                                             for i, t in enumerate(c.timings)))
        for c in run.candidates))


def test_sizes_of_different_shapes_are_never_joined():
    family = {"prod-65536": "d=576, dtype=bfloat16", "seed-bf16-512x32x300": "d=300, dtype=bfloat16",
              "quick-1x8x576": "d=576, dtype=bfloat16"}
    run = _families(_run(), family.get)
    series = charts.size_series(run)
    assert len(series) == 2 * len(run.candidates)  # each candidate: the d=576 ladder, and the lone d=300 point
    first = [s for s in series if s.label.startswith(run.candidates[0].name + " ·")]
    assert sorted(s.label.split(" · ")[1] for s in first) == ["d=300", "d=576"]  # the shared dtype left out
    assert {len(s.x) for s in first} == {1, 2} and len({s.colour for s in first}) == 1
    assert len({s.marker for s in first}) == 2
    for s in series:
        assert list(s.x) == sorted(s.x)


def test_one_family_is_one_line_per_candidate_named_plainly():
    run = _families(_run(), lambda size: "")
    series = charts.size_series(run)
    assert [s.label for s in series] == [c.name for c in run.candidates]
    assert len({s.colour for s in series}) == len(series)


def test_the_chart_draws_every_series():
    pytest.importorskip("matplotlib", reason="charts need matplotlib (in the [test] extra)")
    run = _families(_run(), lambda size: "d=300" if "300" in size else "d=576")
    svg = charts.speedup_by_size(run)
    assert svg.startswith("<?xml")
    for s in charts.size_series(run):
        assert s.label.replace("·", "&#183;") in svg or s.label in svg


def test_one_timed_size_draws_without_warnings():
    """A run timed at one size (--quick of a declared target): one point, on an axis that spans something."""
    import warnings

    pytest.importorskip("matplotlib", reason="charts need matplotlib (in the [test] extra)")
    run = _run()
    run = dataclasses.replace(run, candidates=tuple(dataclasses.replace(c, timings=c.timings[:1]) for c in run.candidates))
    assert {t.bytes_moved for c in run.candidates for t in c.timings} and len(
        {t.size for c in run.candidates for t in c.timings}) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert charts.speedup_by_size(run).startswith("<?xml")
