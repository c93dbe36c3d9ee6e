"""Every discovered target against what the harness assumes of one (``harness.core.target.Target``): a
target a newcomer adds in ``oracles/`` is checked here without a test of its own.  Each check is a
property the judge, the runners and the renderers rely on; the message says which target broke it."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from harness.core.declared import MODULE as DECLARED, declared_targets
from harness.core.domain import Domain
from harness.core.target import Call, Case, Target, discover_targets
from harness.runner.fresh import TimingInputs

TARGETS = discover_targets()
# ... and the declared target of the worked example (examples/row_softmax), whose oracle lives there
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "row_softmax"
sys.path.append(str(EXAMPLE))  # appended: the example's candidates/ must not shadow this project's
TARGETS.update(declared_targets(tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["tool"]["harness"]))
LARGEST_CASE_BYTES = 64 << 20  # named cases beyond this are left to the targets' own tests (time)


def _ids(targets: dict[str, Target]) -> list[str]:
    return sorted(targets)


@pytest.fixture(params=_ids(TARGETS))
def target(request) -> Target:
    return TARGETS[request.param]


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride() \
            and torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_some_target_is_discovered():
    assert TARGETS, "no TARGET in any public module of oracles/"


def test_it_names_itself_and_its_policies(target):
    assert target.name and target.function_name and target.source, f"{target.name!r}: name, function_name, source"
    assert target.ref.endswith(":TARGET") or target.ref.startswith(DECLARED + ":"), target.ref
    assert target.policies and len(set(target.policies)) == len(target.policies)
    missing = [p for p in target.policies if not target.policy_text.get(p)]
    assert not missing, f"{target.name}: policies without a line of text for the report: {missing}"
    for kind, pattern in target.line_kinds:
        assert kind and pattern, f"{target.name}: a line kind needs a name and a pattern"
    if target.inverse_of is not None:
        assert target.inverse_of in TARGETS, f"{target.name} inverts {target.inverse_of!r}, which is not a target here"
        assert target.round_trip_cases() and target.round_trip_text


def test_the_oracle_is_the_function_itself(target):
    """``oracle = staticmethod(f)``: a wrapper method would make the baseline's line profile one line at 100%."""
    import inspect

    assert not inspect.ismethod(target.oracle), f"{target.name}: oracle is a method; use staticmethod(the function)"


def test_named_cases_have_unique_names_and_build_deterministically(target):
    cases = target.named_cases()
    assert cases, f"{target.name}: no named cases"
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), f"{target.name}: named cases share a name"
    for case in cases[:12]:
        first, again = target.build(case, "cpu"), target.build(case, "cpu")
        assert isinstance(first, Call), f"{target.name}.build({case.name}) must return a Call"
        assert _same(list(first.args), list(again.args)) and first.kwargs.keys() == again.kwargs.keys(), \
            f"{target.name}: {case.name} built twice differs (build must depend on params and seed only)"
        description = target.describe(case)
        assert description and "\n" not in description


def test_the_oracle_passes_against_itself_where_it_returns(target):
    """On each named case where the oracle returns (error cases raise: a candidate must raise there too), its
    output is an output (``check_output``) and the same as itself under every policy."""
    returned = 0
    for case in target.named_cases():
        if target.case_bytes(case) > LARGEST_CASE_BYTES:
            continue
        call = target.build(case, "cpu")
        try:
            out = target.oracle(*call.args, **call.kwargs)
        except Exception:  # an error case: verification asks for error parity there
            continue
        returned += 1
        assert target.check_output(call, out) is None, f"{target.name}: the oracle's own output rejected on {case.name}"
        for policy in target.policies:
            comparison = target.compare(call, out, out, policy)
            assert comparison.ok, f"{target.name}: {policy} rejects the oracle's output against itself on {case.name}"
    assert returned, f"{target.name}: the oracle raised on every named case"


def test_sizes_have_names_and_move_bytes(target):
    for quick in (False, True):
        sizes = target.sizes("cpu", quick)
        assert sizes, f"{target.name}: no sizes to time (quick={quick})"
        assert len({s.name for s in sizes}) == len(sizes), f"{target.name}: sizes share a name"
        for size in sizes:
            assert target.case_bytes(size) > 0, f"{target.name}: size {size.name} moves no bytes"
    with pytest.raises(ValueError) as refused:  # --sizes with a user's typo: a one-line reason, not a traceback
        target.parse_size("not a size")
    assert str(refused.value) and "\n" not in str(refused.value)


def test_timing_inputs_keep_the_layout(target):
    """Fresh timing inputs (``fresh``) have the base's shapes, dtypes and strides, and other content."""
    size = min(target.sizes("cpu", True), key=target.case_bytes)
    inputs = TimingInputs.build(target, size, "cpu")
    fresh = inputs.fresh(1)
    base_tensors, fresh_tensors = inputs.base.tensors(), fresh.tensors()
    assert [(t.dtype, t.shape, t.stride()) for t in base_tensors] == [(t.dtype, t.shape, t.stride()) for t in fresh_tensors]
    if target.fresh_timing_inputs:
        assert inputs.mixed and not _same(list(inputs.base.args), list(fresh.args))
    target.oracle(*fresh.args, **fresh.kwargs)  # a fresh input is a valid input


def test_property_cases_are_valid_inputs(target):
    strategy = target.property_strategy(Domain())
    if strategy is None:
        return

    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def drawn(params):
        case = Case("drawn", "property", params, seed=1)
        call = target.build(case, "cpu")
        assert isinstance(call, Call)
        assert target.describe(case)

    drawn()


def test_a_target_without_its_three_essentials_cannot_be_made():
    class Incomplete(Target):
        name = "incomplete"

        def build(self, case, device):
            return Call(())

    with pytest.raises(TypeError, match="oracle|compare"):
        Incomplete()
