"""Verification: is a candidate still the same function as the oracle?  Runs in the judge.

For every case — the target's named cases, a twin of each with different data (so a candidate that caches
results by shape fails), and hypothesis-generated property cases (shrunk to a minimal failing case) — the
oracle runs here, in the judge, on the judge's own build of the case, and the candidate runs in its runner
(``sandbox``) on the runner's fresh build; what the runner sends back is data (``protocol.Outcome``).
The judgement: inputs the same as the judge's, no process setting changed (``audit``), error parity (where
the oracle raises, the candidate must raise, the same type for asserted preconditions), no mutation of the
input, an output of the right kind, then the target's comparison under the chosen policy.  The result is
a frozen ``Verification`` (see ``result``).

A *subject* is anything with ``call(case, device) -> Outcome``: a runner, or ``InProcess`` (a trusted
function called here, for unit tests and generated regression tests).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Mapping, Protocol

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
import torch

from harness.runner.clocks import synchronize
from harness.core.config import DEFAULTS
from harness.core.domain import Domain, failure_pattern, suggest
from harness.core.protocol import Outcome, decode_outcome, digest, error_name
from harness.core.reproducer import REPEAT_SEED_OFFSET, REPRODUCER_IMPORTS, regression_test
from harness.core.result import CaseFailure, FamilyCount, Verification
from harness.core.target import TIMING_FAMILY, Call, Case, Comparison, Target, map_tensors

MAX_FAILURES_KEPT = 10  # per kind of failure, so refusals never crowd wrong answers out (counts keep all)


class Subject(Protocol):
    def call(self, case: Case, device: str) -> Outcome: ...


class InProcess:
    """A trusted function called in this process, through the same encoding a runner uses."""

    def __init__(self, fn: Callable[..., Any], target: Target) -> None:
        from harness.runner.worker import Worker

        self.worker = Worker(fn, target)

    def call(self, case: Case, device: str) -> Outcome:
        reply, blobs = self.worker.call(case, device)
        return decode_outcome(reply, b"".join(blobs))

    def call_on(self, call: Call, device: str) -> Outcome:
        reply, blobs = self.worker.call(None, device, call)
        return decode_outcome(reply, b"".join(blobs))


@dataclass(frozen=True)
class Judgement:
    passed: bool
    reason: str = ""
    comparison: Comparison | None = None
    kind: str = "mismatch"  # "refusal": raised where the oracle returned; "error": returned no output;
    # "state": changed its process (see audit)


def judge(target: Target, call_for_check: Any, expected: Outcome, got: Outcome, policy: str) -> Judgement:
    """The verdict on one case, given what the oracle (run by the judge) and the candidate did."""
    if got.input_digest != expected.input_digest:
        return Judgement(False, "its runner built other inputs for this case than the judge did", kind="state")
    if got.state_changes:
        return Judgement(False, f"changed process state: {'; '.join(got.state_changes)}", kind="state")
    if got.mutated_input:
        return Judgement(False, "changed its input in place")
    if expected.raised:
        if not got.raised:
            return Judgement(False, f"returned normally where the oracle raised {expected.error_line}")
        if expected.precondition and got.error_type != expected.error_type:
            return Judgement(False, f"raised {got.error_line} where the oracle's precondition raised "
                                    f"{expected.error_type.rsplit('.', 1)[-1]}")
        return Judgement(True)
    if got.raised:  # a refusal: not a wrong answer, but a drop-in replacement accepts what the original does
        return Judgement(False, f"raised {got.error_line}", kind="refusal")
    if identical(expected.value, got.value):
        return Judgement(True)
    wrong = target.check_output(call_for_check, got.value)
    if wrong:
        return Judgement(False, wrong, kind="error")
    comparison = target.compare(call_for_check, expected.value, got.value, policy)
    return Judgement(comparison.ok, "" if comparison.ok else comparison.summary, comparison)


def identical(expected: Any, got: Any) -> bool:
    """The same structure, and tensors of the same dtype, shape and device with the same bytes: what passes
    under every policy, decided without a target's comparison (which may decode every element: 0.6 s for
    one production-sized output of the first target)."""
    if isinstance(expected, torch.Tensor) or isinstance(got, torch.Tensor):
        if not (isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor)):
            return False
        if (expected.dtype, expected.shape, expected.device) != (got.dtype, got.shape, got.device):
            return False
        as_bytes = lambda t: t.detach().contiguous().reshape(-1).view(torch.uint8)  # noqa: E731
        return expected.layout == got.layout == torch.strided and torch.equal(as_bytes(expected), as_bytes(got))
    if isinstance(expected, (tuple, list)) or isinstance(got, (tuple, list)):
        return (type(expected) is type(got) and len(expected) == len(got)
                and all(identical(e, g) for e, g in zip(expected, got)))
    return type(expected) is type(got) and repr(expected) == repr(got)


class _OracleMemo:
    """The oracle's outcome per case and the judge's own build of its inputs, computed once and shared by
    every candidate of a run."""

    def __init__(self, target: Target, device: str) -> None:
        self.target, self.device, self._memo = target, device, {}

    def __call__(self, case: Case) -> tuple[Outcome, Call]:
        key = (case.name, case.seed, json.dumps(case.params, sort_keys=True, default=str))
        if key not in self._memo:
            call = self.target.build(case, self.device)
            outcome = self._run(call)
            if digest(call.tensors()) != outcome.input_digest:  # the oracle wrote into its input: build it again
                call = self.target.build(case, self.device)
            self._memo[key] = (outcome, call)
        return self._memo[key]

    def _run(self, call: Call) -> Outcome:
        inputs = digest(call.tensors())
        try:
            value = self.target.oracle(*call.args, **call.kwargs)
            synchronize(self.device)
        except Exception as exc:
            return Outcome(error_type=error_name(exc), error_message=str(exc), input_digest=inputs,
                           precondition=isinstance(exc, self.target.precondition_errors))
        return Outcome(value=value, input_digest=inputs)


def same_output(target: Target, call: Call, expected: Any, got: Any, policy: str) -> str | None:
    """None if ``got`` passes for ``expected`` under ``policy`` (identical bytes always do), else why not."""
    if identical(expected, got):
        return None
    wrong = target.check_output(call, got)
    if wrong:
        return wrong
    comparison = target.compare(call, expected, got, policy)
    return None if comparison.ok else comparison.summary


class TimedCheck:
    """The judge's check of one timed call (``bench.TimedCallCheck``): the candidate's output against the
    baseline's for the same fresh input; where they differ, the judge rebuilds that input (``fresh``) and
    runs the oracle on it here, so a wrong baseline is never blamed on the candidate."""

    def __init__(self, verifier: "Verifier") -> None:
        self.verifier = verifier
        self._inputs: dict[str, Any] = {}  # size name -> its TimingInputs, rebuilt only when needed

    def __call__(self, size: Case, key: int, reference: Any, got: Any) -> tuple[str, str] | None:
        from harness.runner.fresh import TimingInputs

        v = self.verifier
        if size.name not in self._inputs:
            self._inputs[size.name] = TimingInputs.build(v.target, size, v.device)
        call = self._inputs[size.name].fresh(key)
        if same_output(v.target, call, reference, got, v.policy) is None:
            return None  # not the same bytes, but the same under the policy
        oracle = v.target.oracle(*call.args, **call.kwargs)
        synchronize(v.device)
        wrong = same_output(v.target, call, oracle, got, v.policy)
        if wrong is not None:
            return "candidate", wrong
        return "baseline", same_output(v.target, call, oracle, reference, v.policy) or "differed from the candidate"


def timing_cases(sizes: Iterable[Case]) -> list[Case]:
    """Each timing size as a case to verify (family "timing size"): the same params and data seed."""
    return [Case(s.name, TIMING_FAMILY, s.params, s.seed) for s in sizes]


class Verifier:
    """Checks candidates of one target on one device under one policy."""

    def __init__(self, target: Target, policy: str | None = DEFAULTS.policy, device: str = "cpu",
                 examples: int = DEFAULTS.examples, seed: int = 0, named: Iterable[Case] | None = None) -> None:
        policy = policy or target.policies[0]
        if policy not in target.policies:
            raise ValueError(f"unknown policy {policy!r} for {target.name}; choose from {', '.join(target.policies)}")
        self.target, self.policy, self.device = target, policy, device
        self.examples, self.seed = examples, seed
        named = list(target.named_cases() if named is None else named)
        twins = [Case(f"{c.name}_again", "repeat", c.params, c.seed + REPEAT_SEED_OFFSET) for c in named]
        self.cases = named + twins
        self.oracle = _OracleMemo(target, device)
        # On CUDA, the named cases once more on the CPU: a candidate that runs on both devices must match
        # the oracle on each (the oracle itself may differ between devices; see cross_device_notes).
        self.cpu_cases = [Case(c.name, "cross-device (cpu)", c.params, c.seed) for c in named] if device == "cuda" else []
        self.cpu_oracle = _OracleMemo(target, "cpu") if self.cpu_cases else None
        self._device_differences: dict[str, list[tuple[Case, Comparison]]] = {}
        self.hold: Callable[[], ContextManager[Any]] = contextlib.nullcontext  # around each case (``lanes``)

    def check(self, case: Case, subject: Subject, device: str | None = None) -> Judgement:
        device = device or self.device
        oracle = self.cpu_oracle if device == "cpu" and self.cpu_oracle else self.oracle
        with self.hold():
            expected, call = oracle(case)
            return judge(self.target, call, expected, subject.call(case, device), self.policy)

    def _cross_device(self, subject: Subject, domain: Domain) -> tuple[list[tuple[Case, Judgement]], list[str]]:
        """The named cases on the CPU, unless the candidate does not run there at all (a CUDA-only kernel)."""
        judged = [(case, self.check(case, subject, "cpu")) for case in self.cpu_cases if domain.admits(case.params)]
        errors = [j for c, j in judged if j.kind in ("error", "refusal") and not j.passed]
        runnable = [j for c, j in judged if not self.cpu_oracle(c)[0].raised]
        if runnable and len(errors) == len(runnable):
            return [], [f"cross-device: not checked on the CPU, where the candidate does not run ({errors[0].reason})"]
        return judged, self.cross_device_notes()

    def oracle_device_differences(self, policy: str = "exact") -> list[tuple[Case, Comparison]]:
        """The named cases on which the oracle's CPU and CUDA outputs differ under ``policy`` (CUDA runs;
        computed once per policy, since every candidate's notes quote it)."""
        if policy not in self._device_differences:
            found = []
            for case in self.cpu_cases:
                (cpu, call), (gpu, _) = self.cpu_oracle(case), self.oracle(case)
                if not cpu.raised and not gpu.raised:
                    comparison = self.target.compare(call, cpu.value, map_tensors(torch.Tensor.cpu, gpu.value), policy)
                    if not comparison.ok:
                        found.append((case, comparison))
            self._device_differences[policy] = found
        return self._device_differences[policy]

    def cross_device_notes(self) -> list[str]:
        differing = self.oracle_device_differences()
        if not differing:
            return ["cross-device: the oracle gives identical bytes on CPU and CUDA for every named case"]
        case, comparison = differing[0]
        return [f"cross-device: the oracle itself differs between CPU and CUDA on {len(differing)} of "
                f"{len(self.cpu_cases)} named cases, e.g. {case.name} ({comparison.summary})"]

    def verify(self, subject: Subject | Callable[..., Any], spec: str,
               progress: Callable[[int, int], None] | None = None, domain: Domain = Domain(),
               sizes: Iterable[Case] = (), fail_fast: bool = False) -> Verification:
        """Check ``subject`` (a runner, or a plain function to call in this process) on every case inside
        ``domain`` (default: every case), and on each timing size in ``sizes`` it will be timed at (family
        "timing size": the production rows are checked, not only timed); cases outside it are counted, not
        run.  ``fail_fast`` (screening many candidates): stop at the first case that fails — a property
        failure is still shrunk to its minimal case — and say so in the notes."""
        if not hasattr(subject, "call"):
            subject = InProcess(subject, self.target)
        tally = _Tally(self, spec)
        timing = timing_cases(sizes)
        cases = [c for c in self.cases + timing if domain.admits(c.params)]
        outside = [c for c in self.cases if not domain.admits(c.params)]
        total = len(cases) + self.examples
        notes: list[str] = []
        for i, case in enumerate(cases):
            verdict = self.check(case, subject)
            tally.add(case, verdict)
            if progress:
                progress(i + 1, total)
            if fail_fast and not verdict.passed:
                notes.append(f"stopped at its first failure (--fail-fast): {i + 1} of {total} cases checked")
                break
        else:
            if self.cpu_cases:
                judged, cross_notes = self._cross_device(subject, domain)
                notes += cross_notes
                for case, verdict in judged:
                    tally.add(case, verdict)
                    if fail_fast and not verdict.passed:
                        notes.append("stopped at its first failure (--fail-fast), on the CPU")
                        break
            if self.examples and self.target.property_strategy() is not None and not (fail_fast and sum(tally.failed.values())):
                notes += self._properties(subject, tally, domain)
        if progress:
            progress(total, total)
        kept = tally.kept()
        suggested = suggest(tally.accepted, tally.refused)
        return Verification(
            policy=self.policy, device=self.device, seed=self.seed, cases=sum(tally.checked.values()),
            failed=sum(tally.failed.values()),
            families=tuple(FamilyCount(f, tally.checked[f], tally.failed[f]) for f in tally.checked),
            # a changed process state (threads, flush-to-zero) is no parameter's fault: no pattern blames one
            failures=kept, pattern=None if any(f.kind == "state" for f in kept) else failure_pattern(tally.outcomes),
            notes=tuple(notes),
            domain=domain.text, excluded=len(outside), excluded_text=domain.excluded([c.params for c in outside]),
            refused=len(tally.refused), refusal_errors=dict(tally.refusal_errors),
            suggested_where=suggested.text if suggested else None,
            refused_text=suggested.excluded(tally.refused) if suggested else "", accepted=len(tally.accepted),
        )

    def _failure(self, case: Case, verdict: Judgement, spec: str) -> CaseFailure:
        differences = tuple(d.describe() for d in (verdict.comparison.differences if verdict.comparison else ()))
        return CaseFailure(case=case.name, family=case.family, params=dict(case.params), seed=case.seed,
                           input=self.target.describe(case), reason=verdict.reason, kind=verdict.kind,
                           differences=differences,
                           test=REPRODUCER_IMPORTS + regression_test(self.target, case, spec, self.policy))

    def _properties(self, subject: Subject, tally: "_Tally", domain: Domain) -> list[str]:
        """Run ``examples`` hypothesis cases drawn inside ``domain``; a wrong answer is shrunk to a minimal
        case, while refusals are counted and passed over, so that the search goes on for wrong answers."""
        first_failure: list[tuple[Case, Judgement]] = []
        strategy = self.target.property_strategy(domain)
        if domain:  # a safety net only: the target draws each param inside the domain (Domain.restrict)
            strategy = strategy.filter(domain.admits)

        @hypothesis_seed(self.seed)
        @settings(max_examples=self.examples, database=None, deadline=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink],
                  verbosity=Verbosity.quiet, print_blob=False, report_multiple_bugs=False)
        @given(params=strategy, data_seed=st.integers(0, 2**31 - 1))
        def prop(params: dict, data_seed: int) -> None:
            case = Case("property", "property", params, data_seed)
            verdict = self.check(case, subject)
            if not first_failure:  # still generating: count it; a refusal is counted and passed over
                if verdict.passed or verdict.kind == "refusal":
                    tally.add(case if verdict.passed else _named(case), verdict)
                    return
                first_failure.append((case, verdict))
            elif verdict.passed or verdict.kind != first_failure[0][1].kind:
                return  # shrinking: only the kind of failure found first counts
            raise _CaseFailed(case, verdict)  # one raise site: hypothesis tells failures apart by where they raise

        try:
            prop()
        except Unsatisfiable:
            return [f"property: no case could be drawn inside the domain {domain.text}"]
        except BaseException as exc:  # hypothesis re-raises the minimal example's failure (or a Flaky group)
            failed = _find_case_failed(exc)
            if failed is None:
                raise
            case, verdict = failed.case, failed.verdict
            tally.add(_named(case), verdict, keep=True)
        return []


class _Tally:
    """What ``verify`` counts while it checks: cases and failures per family, failures kept per kind (the
    first ``MAX_FAILURES_KEPT`` of each, and the shrunk property failure always), refusals' params and error
    types (for the verdict line and the suggested ``--where``), and outcomes for ``failure_pattern``."""

    def __init__(self, verifier: Verifier, spec: str) -> None:
        self.verifier, self.spec = verifier, spec
        self.checked: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.failures: list[tuple[CaseFailure, bool]] = []
        self.outcomes: list[tuple[Mapping[str, Any], bool]] = []
        self.accepted: list[Mapping[str, Any]] = []
        self.refused: list[Mapping[str, Any]] = []
        self.refusal_errors: Counter[str] = Counter()

    def add(self, case: Case, verdict: Judgement, keep: bool = False) -> None:
        self.checked[case.family] += 1
        self.outcomes.append((case.params, verdict.passed))
        oracle_raised = self.verifier.oracle(case)[0].raised if case.family != "cross-device (cpu)" else False
        if verdict.kind == "refusal" and not verdict.passed:
            self.refused.append(case.params)
            self.refusal_errors[verdict.reason.removeprefix("raised ").split(":", 1)[0]] += 1
        elif not oracle_raised and verdict.kind not in ("state", "error"):
            self.accepted.append(case.params)
        if not verdict.passed:
            self.failed[case.family] += 1
            self.failures.append((self.verifier._failure(case, verdict, self.spec), keep))

    def kept(self) -> tuple[CaseFailure, ...]:
        seen: Counter[str] = Counter()
        kept = []
        for failure, always in self.failures:
            seen[failure.kind] += 1
            if always or seen[failure.kind] <= MAX_FAILURES_KEPT:
                kept.append(failure)
        return tuple(kept)


class _CaseFailed(Exception):
    def __init__(self, case: Case, verdict: Judgement) -> None:
        super().__init__(verdict.reason)
        self.case, self.verdict = case, verdict


def _find_case_failed(exc: BaseException) -> _CaseFailed | None:
    if isinstance(exc, _CaseFailed):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        if (found := _find_case_failed(inner)) is not None:
            return found
    cause = exc.__cause__ or exc.__context__
    return _find_case_failed(cause) if cause is not None and cause is not exc else None


def _named(case: Case) -> Case:
    """A property case named after its params, for the report and a reproducer's test name."""
    return Case("property_" + "_".join(str(v) for v in case.params.values())[:60], "property", case.params, case.seed)


def check_case(target: str, spec: str, case: Case, policy: str = "exact", device: str = "cpu") -> None:
    """Assert that candidate ``spec`` agrees with the oracle of ``target`` on ``case`` (used by generated tests,
    which run from any folder: the project is the nearest one above the calling test file, else the current
    directory's, and a relative candidate path not found from here is looked up in the project)."""
    from harness.core import project
    from harness.runner.load import load
    from harness.core.target import get_target

    caller = Path(sys._getframe(1).f_code.co_filename).resolve().parent
    root = project.root_above(caller)
    found_project = project.Project(root) if root else project.find()
    project.activate(found_project)
    where, _, attr = spec.rpartition(":")
    if where.endswith(".py") and not Path(where).is_file() and (found_project.root / where).is_file():
        spec = f"{found_project.root / where}:{attr}"
    found = get_target(target)
    verdict = Verifier(found, policy, device, examples=0, named=[]).check(case, InProcess(load(spec).function, found))
    assert verdict.passed, f"{case.name}: {verdict.reason}"
