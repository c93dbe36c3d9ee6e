"""Judging one candidate: verify it against the oracle, time it against the baseline on the same device,
profile it — a self-contained task that takes the plan and returns the candidate's ``CandidateResult``.
Runs in the judge, or in a judge worker (``--jobs``); either way it never imports candidate code: the
candidate runs in runners (``sandbox``) from the pool (``pool``).

A candidate that hangs, crashes, misbehaves on the pipe or changes process state only earns its own
verdict.  Timing is done only while this task holds its device's timing lane (``lanes``): on the CPU
nothing else of the run works meanwhile, and on a GPU no other candidate is timed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator

from harness.judge import noise
from harness.runner.audit import StateChanged
from harness.judge.bench import Bench, InputsDiffer, TimingFailed, UnwatchedWork
from harness.core.candidates import Described
from harness.judge.plan import RunPlan
from harness.judge.pool import RunnerPool
from harness.core.result import (CandidateResult, CaseTiming, Profile, SizeTiming, Stages, Verdict, Verification,
                                 could_lead)
from harness.judge.roundtrip import RoundTrips
from harness.judge.sandbox import LoadFailed, Runner, RunnerError
from harness.core.target import Case
from harness.core.reproducer import regression_test
from harness.judge.verify import Verifier

Progress = Callable[..., None]
SPOT_CHECKED_CASES = 8  # named cases checked again in each extra timing runner (``_spot_check``)


class ChangedInExtraRunner(RunnerError):
    """A candidate that behaved otherwise in an extra timing runner than where it was verified: a "fail"."""


def _suspend_all_but(pairs: list[tuple[Runner, Runner]], index: int) -> None:
    """Stop every runner except pair ``index``'s (only the pair being timed may run)."""
    for i, pair in enumerate(pairs):
        for r in pair if i != index else ():
            r.suspend()


@dataclass
class CaseChoice:
    """Whose regression cases are timed (``CandidateTask._timed``).  A report annotates one candidate's tests:
    the best (``result.best_candidate``), or where none could lead, the first with timed cases.  So a run
    times a candidate's cases only where it could be that one: the first timed, and each that could lead
    with a headline speedup above every one annotated so far (about ln N of N candidates in random order;
    each costs about 2 s on a 2-core CPU).  ``state``: [candidates annotated, their largest speedup],
    shared by a run's judge workers (``workers``: a ``multiprocessing.Array``, with ``lock`` its lock);
    ``every``: every timed candidate's (a cluster's workers do not know each other's results)."""

    state: Any = dataclasses.field(default_factory=lambda: [0.0, 0.0])
    lock: Callable[[], ContextManager] = contextlib.nullcontext
    every: bool = False

    def wanted(self, result: CandidateResult) -> bool:
        """Whether ``result`` (with its ladder's timings) could be the candidate the report annotates."""
        with self.lock():
            return self.every or self.state[0] == 0 or (could_lead(result) and result.headline.speedup > self.state[1])

    def annotated(self, result: CandidateResult) -> None:
        """``result``'s cases were timed (after they were: one whose case timing failed is not counted)."""
        with self.lock():
            self.state[0] += 1
            if could_lead(result):
                self.state[1] = max(self.state[1], result.headline.speedup)


class Stopwatch:
    """Wall seconds by stage for one candidate (``result.Stages``); time a stage spent blocked on its
    device's lanes (``blocked``: seconds so far, all told) counts as waiting, not as the stage."""

    def __init__(self, blocked: Callable[[], float] = lambda: 0.0) -> None:
        self.seconds: dict[str, float] = {}
        self._blocked = blocked

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start, blocked = time.perf_counter(), self._blocked()
        try:
            yield
        finally:
            waited = self._blocked() - blocked
            for key, seconds in ((name, time.perf_counter() - start - waited), ("wait", waited)):
                self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    def stamped(self, result: CandidateResult) -> CandidateResult:
        return dataclasses.replace(result, stages=Stages(**{f"{k}_s": v for k, v in self.seconds.items()}))


@dataclass
class CandidateTask:
    """What judging a candidate needs; one per judge (process), reused for every candidate it judges."""

    plan: RunPlan
    pool: RunnerPool
    verifier: Verifier
    bench: Bench
    progress: Progress
    round_trips: RoundTrips | None = None
    lane: Callable[[], ContextManager] = contextlib.nullcontext  # held while timing and profiling
    hold: Callable[[], ContextManager] = contextlib.nullcontext  # held while a runner loads
    ahead: bool = True  # start the next candidate's runner while this one is judged
    blocked: Callable[[], float] = lambda: 0.0  # seconds spent waiting for the device's lanes, all told
    cases: CaseChoice = dataclasses.field(default_factory=CaseChoice)  # whose regression cases are timed

    def share_device(self, lanes: Any) -> None:
        """Judge beside other judges of the same device (``lanes.Lanes``): verification steps and runner
        loads hold the lane shared, timing holds it alone; no runner is started ahead."""
        self.verifier.hold = self.hold = lanes.work
        self.lane, self.ahead = lanes.timing, False
        self.blocked = lambda: lanes.blocked_s

    def judge(self, cand: Described, runner: Runner | None = None) -> CandidateResult:
        """``cand`` judged in ``runner`` (default: its runner from the pool), which is closed after."""
        result = CandidateResult(name=cand.name, spec=cand.spec, doc=cand.doc, verdict=Verdict.ERROR,
                                 control=self.plan.is_control(cand))
        watch = Stopwatch(self.blocked)
        self.progress("step", name=f"{cand.name}: load it in its runner")
        try:
            with watch.stage("load"), self.hold():
                runner = runner or self.pool.take(cand.spec)
                runner.ready()
        except (LoadFailed, RunnerError) as exc:
            return watch.stamped(dataclasses.replace(result, error=str(exc)))
        finally:
            if self.ahead:
                self.pool.start_ahead(self.plan.after(cand))
        try:
            result = self._judge(runner, cand, result, watch)
        finally:
            left = runner.close()
            spares_left = self.pool.drop_spares(cand.spec)
        notes = [*left_running(spares_left, "in its spare runners"), *left_running(left, "after its calls")]
        return watch.stamped(dataclasses.replace(result, notes=(*result.notes, *notes)) if notes else result)

    def _judge(self, runner: Runner, cand: Described, result: CandidateResult, watch: Stopwatch) -> CandidateResult:
        opts, domain = self.plan.options, self.plan.domains[cand.spec]
        try:
            if runner.load_state_changes:
                return dataclasses.replace(result, verdict=Verdict.FAIL, error="changed process state when imported: "
                                           + "; ".join(runner.load_state_changes))
            runner.start_job()
            spares = opts.bench.likely_pairs - 1  # its extra timing pairs' runners, loaded before the lane is taken
            profiled = self._profiled(cand)  # and the one it is profiled in, where that is another (CUDA)
            if opts.time and self.ahead:  # alone: they import in the background while it is verified
                self.pool.start_spares(cand.spec, spares, profiler=profiled)
            verification = None
            if opts.verify:
                self.progress("step", name=f"{cand.name}: verify")
                with watch.stage("verify"):
                    verification = self.verifier.verify(
                        runner, cand.spec, lambda i, n: self.progress("advance", done=i, total=n), domain,
                        sizes=self.plan.sizes if opts.time else (), fail_fast=opts.fail_fast)
                result = dataclasses.replace(result, verdict=verdict_of(verification),
                                             error=None if verification is None else verification.reason(),
                                             verification=verification)
                if verification.passed and self.round_trips is not None:
                    self.progress("step", name=f"{cand.name}: round trips")
                    with watch.stage("verify"):
                        self.round_trips.collect(self.plan.target, runner, cand.spec, domain)
                        self.round_trips.check(self.plan.target, runner, cand.spec, domain)
            else:
                result = dataclasses.replace(result, verdict=Verdict.UNTESTED)
            if opts.time and (verification is None or verification.passed):
                if not self.ahead:  # beside other judges: now that it passed, as a held step (none imports while one times)
                    with watch.stage("load"):
                        self.pool.start_spares(cand.spec, spares, self.hold, profiler=profiled)
                with contextlib.ExitStack() as held:
                    with watch.stage("wait"):
                        held.enter_context(self.lane())
                    result = self._timed(runner, cand, result, watch)
            return result
        except (RunnerError, TimingFailed, StateChanged, InputsDiffer, UnwatchedWork) as exc:
            self.pool.retire(getattr(exc, "spec", ""))
            return failed(result, exc, self.pool.baseline_spec, self.plan.baseline_spec)

    def _timed(self, runner: Runner, cand: Described, result: CandidateResult, watch: Stopwatch) -> CandidateResult:
        """``result`` with the candidate's timings (and profile), measured in its runner and in more pairs."""
        runner.reap_strays()  # nothing it started may run while it or the baseline is timed
        extra: list[Runner] = []
        notes: list[str] = []
        try:
            with watch.stage("time"):
                pairs = [(self.pool.baseline(), runner)]  # more are started as the sizes need them
                cpu = noise.CpuWatch()
                cpu.start([pairs[0][0].pid, pairs[0][1].pid],  # and every runner that may join: its CPU is ours
                          lambda: [r.pid for r in extra + self.pool.extra + self.pool.spares(cand.spec)])
                timings, pairs, notes = self._time(pairs, cand, extra)
            case_timings: tuple[CaseTiming, ...] = ()
            laddered = dataclasses.replace(result, timings=timings)
            if self.cases.wanted(laddered):
                with watch.stage("cases"):
                    case_timings = time_cases(self, pairs, cand)
                self.cases.annotated(laddered)
            foreign, steal = cpu.share(), cpu.steal()  # while the extra runners' CPU time is readable
        finally:
            left = sum(r.close() for r in extra)
        notes += left_running(left, "in its extra timing runners")
        result = dataclasses.replace(result, timings=timings, case_timings=case_timings,
                                     foreign_cpu=foreign, steal_cpu=steal, notes=(*result.notes, *notes))
        if self._profiled(cand):  # at its headline size: the largest timed
            largest = max(self.plan.candidate_sizes(cand), key=self.plan.target.case_bytes)
            with watch.stage("profile"):
                result = dataclasses.replace(result, profile=self.profile(cand.spec, runner, largest))
        return result

    def _profiled(self, cand: Described) -> bool:
        return bool(self.plan.options.profile and self.plan.candidate_sizes(cand) and not self.plan.is_control(cand))

    # -- timing ---------------------------------------------------------------------------------
    def _more_pairs(self, cand: Described, started: list[Runner], count: int) -> list[tuple[Runner, Runner]]:
        """``count`` more pairs of runners, for timing only (``Bench.combine``):
        the first pair is the verified candidate's runner and the baseline's; pair k + 1 holds a fresh runner
        of the candidate and the baseline's k-th extra runner.  Each candidate runner is added to
        ``started`` as soon as it exists: the caller closes them, whatever happens."""
        pairs: list[tuple[Runner, Runner]] = []
        for _ in range(count):
            started.append(self.pool.take_spare(cand.spec))
            pair = (self.pool.extra_baseline(len(started) - 1), started[-1])
            for r in pair:
                try:
                    r.ready()
                except LoadFailed as exc:  # it loaded in the first runner: a flaky import is the candidate's
                    raise RunnerError(f"importing it again for timing failed: {exc}", r.spec) from None
                if r.load_state_changes:
                    raise ChangedInExtraRunner("changed process state when imported again for timing", r.spec)
            if self.plan.options.verify:
                spot_check(self.plan, self.verifier, pair[1], cand)
            for r in pair:
                r.reap_strays()
            pairs.append(pair)
        return pairs

    def _time(self, pairs: list[tuple[Runner, Runner]], cand: Described, started: list[Runner]
              ) -> tuple[tuple[SizeTiming, ...], list[tuple[Runner, Runner]], list[str]]:
        """The size ladder, first in ``pairs[0]`` (baseline, candidate): the measurement that carries the
        verdict; returns its timings, every pair it used and its notes.  Only inside the candidate's domain:
        each size left out is a note.  Each size is timed in ``processes`` pairs (one where the first pair's
        verdict is ``overwhelming``), and while the pairs have not settled a verdict (``another_pair``) in one
        more; each pair is started on first need (into ``started``) and kept for the later sizes, and the
        pairs vote (``Bench.combine``): one pair of processes alone can be off by several percent."""
        for idle in self.pool.idle():  # still loading, or the baseline's runner of a pair not timed yet: stopped
            idle.suspend()  # while anything is timed (a pair's runners are resumed when it is timed)
        domain = self.plan.domains[cand.spec]
        timings, notes = [], []
        pairs = list(pairs)
        for size in self.plan.sizes:
            if not domain.admits(size.params):
                notes.append(f"not timed at {size.name}: outside its domain ({domain.excluded([size.params])})")
                continue
            self.progress("step", name=f"{cand.name}: time @ {size.name}")
            measured = [self._compare(pairs, 0, size)]
            wanted = 1 if self.bench.overwhelming(measured[0]) else self.plan.options.bench.processes
            while len(measured) < wanted or self.bench.another_pair(measured):
                self.progress("step", name=f"{cand.name}: time @ {size.name} in pair {len(measured) + 1} of runners")
                if len(measured) == len(pairs):
                    pairs += self._more_pairs(cand, started, count=1)
                measured.append(self._compare(pairs, len(measured), size))
            timings.append(self.bench.combine(measured))
        return tuple(timings), pairs, notes

    def _compare(self, pairs: list[tuple[Runner, Runner]], index: int, size: Case) -> SizeTiming:
        """Pair ``index`` timed at ``size``, every other pair's runners stopped meanwhile; each size of each
        pair is a job with a deadline of its own (``--timeout``), however many pairs and sizes there are."""
        _suspend_all_but(pairs, index)
        for r in pairs[index]:
            r.start_job()
        return self.bench.compare(*pairs[index], size, self.bench.pair_budget(index))

    def profile(self, spec: str, runner: Runner, size: Case) -> Profile | None:
        return profile_in(self.pool, spec, runner, size, self.progress)


def time_cases(task: CandidateTask, pairs: list[tuple[Runner, Runner]], cand: Described) -> tuple[CaseTiming, ...]:
    """Each named regression case of the annotated families once more, in the first pair (two checked
    rounds; an error-parity case as the best of a few single calls), for the report's annotated tests."""
    task.progress("step", name=f"{cand.name}: time each regression case")
    _suspend_all_but(pairs, 0)  # only the first pair times the cases
    baseline, runner = pairs[0]
    for r in pairs[0]:
        r.start_job()
    cases = []
    target, domain = task.plan.target, task.plan.domains[cand.spec]
    for case in target.named_cases():
        if case.family not in target.annotated_families or not domain.admits(case.params):
            continue
        raised = task.verifier.oracle(case)[0]  # the oracle's outcome on the case (memoised)
        if raised.raised:  # error parity: a single call up to its raise, as the runners time it
            base_s, cand_s = task.bench.best_of(baseline, runner, case)
        else:  # two rounds on fresh inputs, checked as the ladder's are (the runners' single-call reports
            # were taken as they came: one patched to divide them by 20 showed "1.9e+03% faster")
            checked = task.bench.compare(baseline, runner, case, budget_s=0.0)
            base_s, cand_s = checked.baseline.median_s, checked.candidate.median_s
        cases.append(CaseTiming(case=case.name, baseline_s=base_s, candidate_s=cand_s,
                                raises=raised.error_line.split(":", 1)[0] if raised.raised else None,
                                test=regression_test(target, case, cand.spec, task.plan.options.policy),
                                family=case.family, params=dict(case.params), seed=case.seed))
    return tuple(cases)


def left_running(count: int, where: str) -> list[str]:
    """The note for processes a candidate left running ``where`` (none when ``count`` is 0)."""
    return [f"left {count} process{'es' if count > 1 else ''} running {where} (killed by the judge)"] if count else []


def spot_check(plan: RunPlan, verifier: Verifier, runner: Runner, cand: Described,
               cases: int = SPOT_CHECKED_CASES) -> None:
    """The first named cases of its domain, again, in a candidate's extra timing runner: a function that is
    right in the process it was verified in must be right in the ones it is timed in too."""
    domain = plan.domains[cand.spec]
    for case in [c for c in plan.target.named_cases() if domain.admits(c.params)][:cases]:
        verdict = verifier.check(case, runner)
        if not verdict.passed:  # it was timed only because every case passed when verified
            raise ChangedInExtraRunner(f"in a second runner, for timing, it failed {case.name}, which it passed "
                                       f"when verified: {verdict.reason}", runner.spec)


def profile_in(pool: RunnerPool, spec: str, runner: Runner, size: Case, progress: Progress) -> Profile | None:
    """Line and kernel profile of ``spec`` at ``size``, taken in a runner: its own on the CPU, on CUDA one
    with launches that block, started ahead (``RunnerPool.take_profiler``).  A failed profile is no verdict."""
    progress("step", name=f"{spec}: profile @ {size.name}")
    profiler = pool.take_profiler(spec, runner)
    try:
        profiler.ready().start_job()
        return dataclasses.replace(profiler.profile(size), spec=spec)  # as the user wrote it
    except (RunnerError, LoadFailed, StateChanged):
        return None
    finally:
        if profiler is not runner:
            profiler.close()


def failed(result: CandidateResult, exc: Exception, baseline: str, baseline_name: str) -> CandidateResult:
    """The candidate's verdict when its run failed: whose fault, and in which words (a failure of the
    runner of ``baseline`` is the run's error, named as the baseline's (``baseline_name``: as the user wrote
    it), not the candidate's fail)."""

    def whose(reason: str, spec: str) -> str:
        return f"the baseline {baseline_name} {reason}" if spec == baseline else reason

    if isinstance(exc, (RunnerError, TimingFailed)):
        reason = whose(str(exc), exc.spec)
        fails = isinstance(exc, (ChangedInExtraRunner, TimingFailed))  # it is not the function it was verified to be
        verdict = Verdict.FAIL if fails and exc.spec != baseline else Verdict.ERROR
        return dataclasses.replace(result, verdict=verdict, error=reason, timings=(), case_timings=())
    if isinstance(exc, StateChanged):
        reason = whose(f"changed process state: {exc}", getattr(exc, "spec", ""))
        return dataclasses.replace(result, verdict=Verdict.FAIL, error=reason, timings=(), case_timings=())
    return dataclasses.replace(result, verdict=Verdict.ERROR, error=str(exc), timings=(), case_timings=())


def verdict_of(v: Verification | None) -> Verdict:
    if v is None:
        return Verdict.UNTESTED
    if v.passed:
        return Verdict.PASS
    # an output of the wrong type, shape or dtype is a wrong answer like wrong values (fail); error is for a
    # candidate that produced nothing to judge (it raised on everything, crashed, hung or broke its pipe)
    return Verdict.ERROR if v.broken else Verdict.FAIL
