"""Round trips between a target and its inverse (a target that declares ``inverse_of``).  Runs in the judge.

While the forward target's candidates are judged, each one that passed is asked, in its own runner, for
its outputs on the inverse target's round-trip cases (``collect``); those outputs are data the judge
keeps.  While the inverse target's candidates are judged, each one that passed is handed every kept
output, in its own runner, and the judge checks the answer against the forward input it built itself
(``check``), with the inverse target's ``round_trip_check``.  So every pair of passing candidates is
checked, and neither runner ever sees the other's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from harness.core.domain import Domain
from harness.core.protocol import Outcome
from harness.core.result import RoundTrip
from harness.core.target import Call, Case, Target


@dataclass
class _Forward:
    spec: str
    outputs: list[tuple[Case, Outcome]]


@dataclass
class RoundTrips:
    """What one run collects across its targets (one instance shared by the run's pipelines)."""

    targets: Mapping[str, Target]
    device: str = "cpu"
    forward: dict[str, list[_Forward]] = field(default_factory=dict)  # forward target -> its candidates' outputs
    results: list[RoundTrip] = field(default_factory=list)

    def inverses_of(self, target: Target) -> list[Target]:
        return [t for t in self.targets.values() if t.inverse_of == target.name]

    def collect(self, target: Target, runner: Any, spec: str, domain: Domain = Domain()) -> None:
        """Keep a passing forward candidate's outputs on each inverse target's round-trip cases (those inside
        its domain)."""
        for inverse in self.inverses_of(target):
            outputs = [(case, runner.call(case, self.device)) for case in inverse.round_trip_cases()
                       if domain.admits(case.params)]
            self.forward.setdefault(target.name, []).append(_Forward(spec, outputs))

    def check(self, target: Target, runner: Any, spec: str, domain: Domain = Domain()) -> None:
        """Hand a passing inverse candidate every kept forward output, and judge each answer.  Its domain, if
        it declares one, is over its own target's params: clauses on params the forward case also has are
        applied, the others cannot be (a candidate then handed something it refuses fails the round trip,
        visibly, rather than the round trip being dropped)."""
        forward_target = self.targets.get(target.inverse_of or "")
        if forward_target is None:
            return
        for forward in self.forward.get(forward_target.name, []):
            failed, first = 0, None
            outputs = [(case, out) for case, out in forward.outputs if domain.admits_known(case.params)]
            if not outputs:
                continue
            for case, produced in outputs:
                reason = self._judge(forward_target, target, runner, case, produced)
                if reason:
                    failed += 1
                    first = first or f"{case.name}: {reason}"
            self.results.append(RoundTrip(forward=forward.spec, inverse=spec, forward_target=forward_target.name,
                                          inverse_target=target.name, cases=len(outputs), failed=failed,
                                          first_failure=first))

    def _judge(self, forward_target: Target, target: Target, runner: Any, case: Case, produced: Outcome) -> str:
        if produced.raised:
            return f"the forward candidate raised {produced.error_line}"
        forward_call: Call = forward_target.build(case, self.device)  # the judge's own build of the input
        answer = runner.call_on(target.round_trip_call(forward_call, produced.value), self.device)
        if answer.state_changes:
            return f"changed process state: {'; '.join(answer.state_changes)}"
        if answer.raised:
            return f"raised {answer.error_line}"
        comparison = target.round_trip_check(forward_call, answer.value)
        return "" if comparison.ok else comparison.summary

    def for_target(self, name: str) -> tuple[RoundTrip, ...]:
        return tuple(r for r in self.results if name in (r.forward_target, r.inverse_target))

    def text_for(self, name: str) -> str:
        """The round-trip property in the inverse target's words, for either target's report."""
        for t in self.targets.values():
            if t.inverse_of and name in (t.name, t.inverse_of):
                return t.round_trip_text
        return ""
