"""The whole run, in the order the mission reads: cases -> runners -> judge: verify, bench, profile ->
result.  Runs in the judge (the process the user started), which never imports candidate code.

``Pipeline`` reads the target and its candidates (from source, see ``candidates``), then for each
candidate starts a fresh runner (``sandbox``) and: verifies it against the oracle computed here; if it
passed, times it against the baseline — which lives in runners of its own for the whole run, one per pair
of runners a size may need (``Bench.another_pair``) — over the size ladder, times each regression case
once more for the report's annotated tests, and profiles it in its runner.  A candidate that hangs,
crashes, misbehaves on the pipe or changes process state only earns its own verdict.  The checkout is
snapshotted before and after (``checkout``).  It returns one frozen ``RunResult``, reports progress through
a callback and renders nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch

from harness import __version__, checkout, isolation, noise, snapshot
from harness.audit import StateChanged
from harness.bench import Bench, BenchConfig, InputsDiffer, TimingFailed
from harness.candidates import ORACLE_PREFIX, Described, SpecError, absolute, candidates_dir, describe, discover
from harness.domain import Domain, DomainError
from harness.clocks import measure_copy_bandwidth
from harness.errors import UsageError
from harness.result import CandidateResult, CaseTiming, Environment, Profile, RunResult, SizeTiming, Verification
from harness.roundtrip import RoundTrips
from harness.sandbox import LoadFailed, Runner, RunnerError, death as _death_words, spawn, start
from harness.target import Case, Target, discover_targets, get_target, in_run_order
from harness.verify import TimedCheck, Verifier, regression_test

Progress = Callable[..., None]  # progress(event, **details); events: "phase", "step", "advance", "done"


@dataclass
class RunOptions:
    target: str | None = None
    candidates: list[str] = field(default_factory=list)  # specs; empty: every candidate in candidates/
    baseline: str | None = None  # spec; None: the oracle (the original function)
    device: str = "cpu"
    policy: str = "exact"
    seed: int = 0
    examples: int = 100
    quick: bool = False
    sizes: list[str] | None = None
    where: str | None = None  # --where: a domain that focuses the whole run (see ``domain``)
    bench: BenchConfig = field(default_factory=BenchConfig)
    verify: bool = True
    time: bool = True
    profile: bool = False
    timeout: float = 300.0  # seconds per candidate's work in its runner
    fail_fast: bool = False  # stop each candidate's verification at its first failing case


def check_device(device: str) -> None:
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}: choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available on this machine")


def environment(device: str, copy_gbps: float | None, threads: int | None = None) -> Environment:
    try:
        import triton  # type: ignore

        triton_version = triton.__version__
    except Exception:
        triton_version = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip() or None
    except Exception:
        commit = None
    status = checkout.git_status()
    name = torch.cuda.get_device_name() if device == "cuda" else (_cpu_name() or platform.machine())
    return Environment(
        device=device, device_name=name, python=platform.python_version(), torch=torch.__version__,
        triton=triton_version, platform=platform.platform(), threads=threads or torch.get_num_threads(),
        git_commit=commit, harness_version=__version__,
        command=" ".join(["harness", *map(shlex.quote, sys.argv[1:])]), copy_gbps=copy_gbps,
        git_dirty=None if status is None else bool(status),
    )


def available_memory(device: str) -> int | None:
    """Bytes free for new allocations on ``device`` (None where it cannot be read)."""
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cpu_name() -> str | None:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return None


def _failed(reason: str, spec: str, baseline: str) -> str:
    """A runner's failure in words, saying whose runner it was when it was the baseline's."""
    return f"the baseline {baseline} {reason}" if spec == absolute(baseline) else reason


def _suspend_all_but(pairs: list[tuple[Runner, Runner]], index: int) -> None:
    """Stop every runner except pair ``index``'s (only the pair being timed may run)."""
    for i, pair in enumerate(pairs):
        for r in pair if i != index else ():
            r.suspend()


SPOT_CHECKED_CASES = 8  # named cases checked again in each extra timing runner (``Pipeline._spot_check``)


class ChangedInExtraRunner(RunnerError):
    """A candidate that behaved otherwise in an extra timing runner than where it was verified: a "fail"."""


class Pipeline:
    def __init__(self, options: RunOptions, progress: Progress | None = None,
                 targets: Mapping[str, Target] | None = None, round_trips: RoundTrips | None = None) -> None:
        check_device(options.device)
        self.options = options
        self.progress = progress or (lambda *a, **k: None)
        targets = discover_targets() if targets is None else targets
        self.round_trips = round_trips
        try:
            self.target: Target = get_target(options.target, targets)
        except Exception as exc:
            raise UsageError(str(exc)) from None
        if not self.target.ref:
            raise UsageError(f"target {self.target.name!r} was not loaded from a module, so runners cannot load it")
        if options.policy not in self.target.policies:
            raise UsageError(f"unknown policy {options.policy!r}: choose from {', '.join(self.target.policies)}")
        try:
            self.candidates: list[Described] = ([describe(spec) for spec in options.candidates] if options.candidates
                                                else discover(self.target.name, list(targets)))
            if options.baseline and not options.baseline.startswith(ORACLE_PREFIX):
                describe(options.baseline)
        except SpecError as exc:
            raise UsageError(str(exc)) from None
        if options.baseline and options.baseline.startswith(ORACLE_PREFIX) and options.baseline != self.oracle_spec:
            raise UsageError(f"--baseline {options.baseline}: this run's target is {self.target.name!r}")
        if not self.candidates:
            raise UsageError(f"no candidates for {self.target.name}: add one to candidates/ or pass --candidate")
        expected = inspect.signature(self.target.oracle)
        for cand in self.candidates:  # before any case: one line, not one TypeError per case
            if (why := cand.mismatch(expected)) is not None:
                raise UsageError(why)
        self.domains = self._domains()
        self.sizes = self._sizes()
        if options.time:
            self._check_memory()
        self.finished: list[CandidateResult] = []
        self._baseline: Runner | None = None
        self._extra_baselines: list[Runner] = []  # the baseline's runners of pairs 2, 3...: kept for the whole run
        self._next: Runner | None = None
        self._upcoming: str | None = None

    def _domains(self) -> dict[str, Domain]:
        """Each candidate's domain: what it declares it supports, narrowed by ``--where``; every clause must
        name a param the target's cases carry."""
        known = {k for case in self.target.named_cases() for k in case.params}
        try:
            where = Domain.parse(self.options.where) if self.options.where is not None else Domain()
        except DomainError as exc:
            raise UsageError(f"--where: {exc}") from None
        try:
            where.check_keys(known, f"--where (target {self.target.name})")
            for cand in self.candidates:
                cand.supports.check_keys(known, f"{cand.spec}: supports=")
        except DomainError as exc:
            raise UsageError(str(exc)) from None
        domains = {cand.spec: cand.supports & where for cand in self.candidates}
        named = self.target.named_cases()
        for spec, domain in domains.items():  # a domain no named case is in would "pass" on nothing at all
            if domain and not any(domain.admits(case.params) for case in named):
                raise UsageError(f"{spec}: its domain ({domain.text}) admits none of the {len(named)} named cases of "
                                 f"{self.target.name}, so nothing would be checked")
        return domains

    def _sizes(self) -> list[Case]:
        """The sizes to time: ``--sizes`` (each must fit some candidate's domain) or the target's ladder
        (a size no candidate's domain admits is noted, not timed); none left to time is a usage error."""
        opts = self.options
        try:
            sizes = ([self.target.parse_size(s) for s in opts.sizes] if opts.sizes
                     else self.target.sizes(opts.device, opts.quick))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        fits = self._timeable(sizes)
        if opts.time and opts.sizes and len(fits) < len(sizes):
            size = next(s for s in sizes if s not in fits)
            raise UsageError(f"size {size.name} is outside the domain of every candidate "
                             f"({'; '.join(sorted({d.describe() for d in self.domains.values()}))})")
        if opts.time and not fits:
            raise UsageError(f"no size of {self.target.name} fits the domain of any candidate "
                             f"({'; '.join(sorted({d.describe() for d in self.domains.values()}))}): pass --sizes")
        return sizes  # those that fit no candidate stay, to be noted as not timed (see ``_time``)

    def _timeable(self, sizes: list[Case]) -> list[Case]:
        return [s for s in sizes if any(d.admits(s.params) for d in self.domains.values())]

    def _check_memory(self) -> None:
        """Each size must fit, before anything is allocated: every runner of every pair keeps, for each size
        it was timed at, its base input and the XOR mask of fresh inputs (``fresh``; a baseline's runner is
        asked for the same sizes by every candidate: ``Worker.prepare``), and holds one round's fresh inputs
        and kept outputs (at most ``buffer_bytes``, or one call's) on top."""
        available = available_memory(self.options.device)
        cfg = self.options.bench
        runners = 2 * cfg.most_pairs  # pairs that may join to settle a verdict included
        kept = 0  # bytes each runner holds for the sizes before
        for size in self._timeable(self.sizes):
            per_set = max(1, self.target.case_bytes(size))
            kept += 2 * per_set
            need = runners * (kept + 2 * max(per_set, cfg.buffer_bytes))  # this round's inputs and the last's
            if available is not None and need > available:
                raise UsageError(f"size {size.name} needs about {need / 2**30:.1f} GiB on {self.options.device} "
                                 f"(inputs of {per_set / 2**30:.2f} GiB kept twice over in each of {runners} runners, "
                                 f"which keep the inputs of the sizes before it, and a round's fresh inputs), but "
                                 f"{available / 2**30:.1f} GiB is available")

    @property
    def headline_size(self) -> Case:
        """The size the report's headline quotes (the most bytes moved, as ``CandidateResult.headline``),
        which is also the size profiled, so the explanation speaks of the headline's numbers."""
        return max(self._timeable(self.sizes), key=self.target.case_bytes)

    @property
    def oracle_spec(self) -> str:
        return f"{ORACLE_PREFIX}{self.target.name}"

    @property
    def baseline_spec(self) -> str:
        return self.options.baseline or self.oracle_spec

    def _folders(self) -> list[Path]:
        module = sys.modules[self.target.ref.partition(":")[0]]
        return [Path(module.__file__).parent, candidates_dir(), Path(__file__).parent]

    # -- runners --------------------------------------------------------------------------------
    def _start(self, spec: str, env: dict[str, str] | None = None) -> Runner:
        """A runner for ``spec``, loading while the judge goes on (``Runner.ready`` waits for it)."""
        opts = self.options
        return start(absolute(spec), self.target.ref, opts.device, dataclasses.asdict(opts.bench), opts.timeout, env)

    def _baseline_runner(self) -> Runner:
        """The baseline's runner, started on first use (a usage error if the baseline cannot be loaded)."""
        if self._baseline is not None and not self._baseline.alive():
            self._baseline_died(self._baseline)
        if self._baseline is None:
            self._baseline = self._start(self.baseline_spec)
        if self._baseline.threads is None:
            self.progress("step", name=f"baseline {self.baseline_spec}: load it in its runner")
            try:
                self._baseline.ready()
            except (LoadFailed, RunnerError) as exc:
                self._baseline = None
                raise UsageError(f"--baseline {self.baseline_spec}: {exc}") from None
            if self._baseline.load_state_changes:
                raise UsageError(f"--baseline {self.baseline_spec}: changed process state when imported: "
                                 + "; ".join(self._baseline.load_state_changes))
        self._baseline.start_job()
        return self._baseline

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Verify, time and profile each candidate, each in its own runner, keeping what finished in
        ``self.finished`` so an interrupted run can still show it."""
        writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # see checkout._files
        sources = snapshot.take([*(c.spec for c in self.candidates), self.baseline_spec], [self.target.ref])
        try:
            with snapshot.during(sources):  # every runner of the run, restarted ones too, executes this copy
                return self._run()
        finally:
            sys.dont_write_bytecode = writes_bytecode

    def _run(self) -> RunResult:
        opts = self.options
        before = checkout.snapshot(self._folders())
        machine_before = noise.machine_state()
        copy_gbps = None
        if opts.time:
            self.progress("phase", name="copy bandwidth", total=1)
            copy_gbps = measure_copy_bandwidth(opts.device)
            self.progress("done", name="copy bandwidth", ok=True)
        self.verifier = Verifier(self.target, opts.policy, opts.device, opts.examples, opts.seed)
        self.bench = Bench(self.target, opts.device, opts.bench, copy_gbps,
                           check=TimedCheck(self.verifier) if opts.verify else None)
        baseline_profile = None
        # Runners load while the judge works (imports take seconds); each is stopped while others are timed.
        self._next = self._start(self.candidates[0].spec)
        try:
            if opts.time:  # loads during the first candidate's verification; waited for before any timing
                self._baseline = self._start(self.baseline_spec)
                for _ in range(self._likely_pairs - 1):
                    self._extra_baselines.append(self._start(self.baseline_spec))
            self.progress("phase", name="candidates", total=len(self.candidates))
            for i, cand in enumerate(self.candidates):
                runner, self._next = self._next, None
                self._upcoming = self.candidates[i + 1].spec if i + 1 < len(self.candidates) else None
                outcome = self._candidate(cand, runner)
                self.finished.append(outcome)
                self.progress("done", name=cand.name, ok=outcome.verdict == "pass")
            if opts.profile and any(r.timings for r in self.finished):
                self.progress("phase", name="baseline profile", total=1)
                try:
                    baseline_profile = self._profile(self.baseline_spec, self._baseline_runner(), self.headline_size)
                except RunnerError as exc:  # it died after the last candidate was judged: said, not restarted
                    last = self.finished[-1]
                    self.finished[-1] = dataclasses.replace(last, notes=(*last.notes, f"the baseline {exc}"))
                self.progress("done", name="baseline profile", ok=baseline_profile is not None)
        finally:
            threads = self._baseline.threads if self._baseline else None
            for runner in (self._baseline, self._next, *self._extra_baselines):
                if runner is not None:
                    runner.close()
        changed = checkout.changes(before, checkout.snapshot(self._folders()))
        timed = any(r.timings for r in self.finished)
        machine_after = noise.machine_state()
        env = dataclasses.replace(environment(opts.device, copy_gbps, threads), load_start=machine_before.load1,
                                  load_end=machine_after.load1, governor=machine_after.governor,
                                  isolation=isolation.describe())
        return RunResult(
            target=self.target.name, function=self.target.function_name, source=self.target.source,
            baseline=self.baseline_spec, policy=opts.policy,
            created=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            environment=env, candidates=tuple(self.finished), noise=tuple(self._noise()),
            bench=opts.bench.settings(threads) if timed else None, baseline_profile=baseline_profile,
            checkout_changes=tuple(changed), policy_text=self.target.policy_text.get(opts.policy, ""),
        )

    def _noise(self) -> list[str]:
        """Why the timings may not be trusted: other processes took CPU while a size was timed, or the
        baseline's medians at one size disagree across candidates (see ``noise``)."""
        found = []
        for c in self.finished:
            found += noise.loaded_timing(c.name, noise.Watched(c.foreign_cpu, c.steal_cpu),
                                         [(t.size, noise.Watched(t.foreign_cpu, t.steal_cpu)) for t in c.timings])
        for size in self.sizes:
            baselines = [noise.BaselineTiming(c.name, t.baseline.median_s, t.baseline.stderr_s)
                         for c in self.finished for t in c.timings if t.size == size.name]
            found += noise.baseline_disagreements(size.name, baselines)
        return found

    def _candidate(self, cand: Described, runner: Runner) -> CandidateResult:
        result = CandidateResult(name=cand.name, spec=cand.spec, doc=cand.doc, verdict="error")
        self.progress("step", name=f"{cand.name}: load it in its runner")
        try:
            runner.ready()
        except (LoadFailed, RunnerError) as exc:
            self._start_next()
            return dataclasses.replace(result, error=str(exc))
        self._start_next()
        try:
            result = self._judge(runner, cand, result)
        finally:
            left = runner.close()
        if left:
            note = f"left {left} process{'es' if left > 1 else ''} running after its calls (killed by the judge)"
            result = dataclasses.replace(result, notes=(*result.notes, note))
        return result

    def _judge(self, runner: Runner, cand: Described, result: CandidateResult) -> CandidateResult:
        opts = self.options
        try:
            if runner.load_state_changes:
                return dataclasses.replace(result, verdict="fail", error="changed process state when imported: "
                                           + "; ".join(runner.load_state_changes))
            runner.start_job()
            verification = None
            if opts.verify:
                self.progress("step", name=f"{cand.name}: verify")
                verification = self.verifier.verify(
                    runner, cand.spec, lambda i, n: self.progress("advance", done=i, total=n), self.domains[cand.spec],
                    sizes=self.sizes if opts.time else (), fail_fast=opts.fail_fast)
                result = dataclasses.replace(result, verdict=_verdict(verification),
                                             error=_error_reason(verification), verification=verification)
                if verification.passed and self.round_trips is not None:
                    self.progress("step", name=f"{cand.name}: round trips")
                    self.round_trips.collect(self.target, runner, cand.spec, self.domains[cand.spec])
                    self.round_trips.check(self.target, runner, cand.spec, self.domains[cand.spec])
            else:
                result = dataclasses.replace(result, verdict="untested")
            if opts.time and (verification is None or verification.passed):
                runner.reap_strays()  # nothing it started may run while it or the baseline is timed
                extra: list[Runner] = []
                try:
                    pairs = [(self._baseline_runner(), runner), *self._more_pairs(cand, extra)]
                    watch = noise.CpuWatch()
                    watch.start([pairs[0][0].pid, pairs[0][1].pid],
                                lambda: [r.pid for r in extra + self._extra_baselines])
                    timings, case_timings, notes = self._time(pairs, cand, extra)
                    foreign, steal = watch.share(), watch.steal()  # while the extra runners' CPU time is readable
                finally:
                    left = sum(r.close() for r in extra)
                if left:
                    notes.append(f"left {left} process{'es' if left > 1 else ''} running in its extra timing "
                                 "runners (killed by the judge)")
                result = dataclasses.replace(result, timings=timings, case_timings=case_timings,
                                             foreign_cpu=foreign, steal_cpu=steal, notes=(*result.notes, *notes))
                sizes = [s for s in self.sizes if self.domains[cand.spec].admits(s.params)]
                if opts.profile and sizes:  # at its headline size: the largest it was timed at
                    largest = max(sizes, key=self.target.case_bytes)
                    result = dataclasses.replace(result, profile=self._profile(cand.spec, runner, largest))
            return result
        except (RunnerError, TimingFailed, StateChanged, InputsDiffer) as exc:
            self._retire_baselines(getattr(exc, "spec", ""))
            return self._failure(result, exc)

    def _failure(self, result: CandidateResult, exc: Exception) -> CandidateResult:
        """The candidate's verdict when its run failed: whose fault, and in which words."""
        if isinstance(exc, (RunnerError, TimingFailed)):
            reason = _failed(str(exc), exc.spec, self.baseline_spec)
            fails = isinstance(exc, (ChangedInExtraRunner, TimingFailed))  # it is not the function it was verified to be
            verdict = "fail" if fails and exc.spec != absolute(self.baseline_spec) else "error"
            return dataclasses.replace(result, verdict=verdict, error=reason, timings=(), case_timings=())
        if isinstance(exc, StateChanged):
            reason = _failed(f"changed process state: {exc}", getattr(exc, "spec", ""), self.baseline_spec)
            return dataclasses.replace(result, verdict="fail", error=reason, timings=(), case_timings=())
        return dataclasses.replace(result, verdict="error", error=str(exc), timings=(), case_timings=())

    def _retire_baselines(self, spec: str) -> None:
        """After a failure in the baseline's runners (``spec`` is the baseline's), or one that names no runner:
        close them, so the next candidate is timed against fresh ones rather than a baseline process left
        in a changed state (they start again on first need)."""
        if spec and spec != absolute(self.baseline_spec):
            return
        for runner in self._extra_baselines:
            runner.close()
        self._extra_baselines = []
        if spec and self._baseline is not None:
            self._baseline.close()
            self._baseline = None  # ``_baseline_runner`` starts a fresh one

    @property
    def _likely_pairs(self) -> int:
        """The runner pairs most candidates will be timed in: every pair ``--processes`` asks for, and with
        one, a second (any verdict but a large speedup needs one); the baseline's runners for them load
        while the first candidate is verified."""
        cfg = self.options.bench
        return cfg.processes if cfg.most_pairs == 1 else max(cfg.processes, 2)

    def _start_next(self) -> None:
        """Start the next candidate's runner, to load while this one is verified."""
        if self._upcoming is not None and self._next is None:
            self._next = self._start(self._upcoming)

    def _more_pairs(self, cand: Described, started: list[Runner], count: int | None = None) -> list[tuple[Runner, Runner]]:
        """``count`` (default ``processes - 1``) more pairs of runners, for timing only (``Bench.combine``):
        the first pair is the verified candidate's runner and the baseline's; pair k + 1 holds a fresh runner
        of the candidate and the baseline's k-th extra runner, kept for the whole run like its first.  Each
        candidate runner is added to ``started`` as soon as it exists: the caller closes them, whatever
        happens."""
        pairs: list[tuple[Runner, Runner]] = []
        for _ in range(self.options.bench.processes - 1 if count is None else count):
            started.append(self._start(cand.spec))
            pair = (self._extra_baseline(len(started) - 1), started[-1])
            for r in pair:
                try:
                    r.ready()
                except LoadFailed as exc:  # it loaded in the first runner: a flaky import is the candidate's
                    raise RunnerError(f"importing it again for timing failed: {exc}", r.spec) from None
                if r.load_state_changes:
                    raise ChangedInExtraRunner("changed process state when imported again for timing", r.spec)
            if self.options.verify:
                self._spot_check(pair[1], cand)
            for r in pair:
                r.reap_strays()
            pairs.append(pair)
        return pairs

    def _baseline_died(self, runner: Runner) -> None:
        """A baseline runner found dead between requests: it was idle, so something else killed it, and the
        candidate being judged is the one that ran meanwhile.  Never restarted quietly: the candidate gets
        ``error`` naming it (and its replacements start from the run's snapshot, not from the checkout)."""
        runner.close()
        code = runner.process.returncode
        self._retire_baselines(absolute(self.baseline_spec))
        raise RunnerError(f"died while idle ({_death_words(code)}) while this candidate was judged; the judge "
                          "restarts it for the next candidate", absolute(self.baseline_spec))

    def _extra_baseline(self, index: int) -> Runner:
        """The baseline's runner for extra pair ``index`` (0 for the second pair), started on first need and
        again if it died; it keeps its heap and imports from candidate to candidate, as the first one does."""
        while len(self._extra_baselines) <= index:
            self._extra_baselines.append(self._start(self.baseline_spec))
        if not self._extra_baselines[index].alive():
            self._baseline_died(self._extra_baselines.pop(index))
        if self._extra_baselines[index].load_state_changes:
            self._extra_baselines[index].close()
            self._extra_baselines[index] = self._start(self.baseline_spec)
        self._extra_baselines[index].start_job()
        return self._extra_baselines[index]

    def _spot_check(self, runner: Runner, cand: Described, cases: int = SPOT_CHECKED_CASES) -> None:
        """The first named cases of its domain, again, in a candidate's extra timing runner: a function that
        is right in the process it was verified in must be right in the ones it is timed in too."""
        domain = self.domains[cand.spec]
        for case in [c for c in self.target.named_cases() if domain.admits(c.params)][:cases]:
            verdict = self.verifier.check(case, runner)
            if not verdict.passed:  # it was timed only because every case passed when verified
                raise ChangedInExtraRunner(f"in a second runner, for timing, it failed {case.name}, which it passed "
                                           f"when verified: {verdict.reason}", runner.spec)

    def _time(self, pairs: list[tuple[Runner, Runner]], cand: Described,
              started: list[Runner]) -> tuple[tuple[SizeTiming, ...], tuple[CaseTiming, ...], list[str]]:
        """The size ladder, in each pair of runners (baseline, candidate), then each named regression case
        once more (best of a few interleaved calls, in the first pair) for the report's annotated tests; the
        ladder is the measurement that carries the verdict.  Only inside the candidate's domain: each size
        left out is a note.  A size whose pairs have not settled a verdict (``Bench.another_pair``: one pair
        whose verdict does not stand alone, or two that disagree) is timed in one more pair, started on
        first need (into ``started``) and kept for the later sizes, and the pairs vote (``Bench.combine``): one
        pair of processes alone can be off by several percent."""
        for idle in (self._next, *self._extra_baselines):
            if idle is not None:  # still loading, or the baseline's runner of a pair not timed yet: stopped
                idle.suspend()  # while anything is timed (a pair's runners are resumed when it is timed)
        baseline, runner = pairs[0]
        domain = self.domains[cand.spec]
        timings, notes = [], []
        confirming: list[tuple[Runner, Runner]] = []
        for size in self.sizes:
            if not domain.admits(size.params):
                notes.append(f"not timed at {size.name}: outside its domain ({domain.excluded([size.params])})")
                continue
            self.progress("step", name=f"{cand.name}: time @ {size.name}")
            measured = [self._compare(pairs + confirming, i, size) for i in range(len(pairs))]
            while self.bench.another_pair(measured):
                self.progress("step", name=f"{cand.name}: time @ {size.name} in pair {len(measured) + 1} of runners")
                if len(measured) == len(pairs) + len(confirming):
                    confirming += self._more_pairs(cand, started, count=1)
                measured.append(self._compare(pairs + confirming, len(measured), size))
            timings.append(self.bench.combine(measured))
        self.progress("step", name=f"{cand.name}: time each regression case")
        _suspend_all_but(pairs + confirming, 0)  # only the first pair times the cases
        for r in pairs[0]:
            r.start_job()
        cases = []
        for case in self.target.named_cases():
            if case.family not in self.target.annotated_families or not domain.admits(case.params):
                continue
            base_s, cand_s = self.bench.best_of(baseline, runner, case)
            raised = self.verifier.oracle(case)[0]  # the oracle's outcome on the case (memoised)
            cases.append(CaseTiming(case=case.name, baseline_s=base_s, candidate_s=cand_s,
                                    raises=raised.error_line.split(":", 1)[0] if raised.raised else None,
                                    test=regression_test(self.target, case, cand.spec, self.options.policy),
                                    family=case.family, params=dict(case.params), seed=case.seed))
        return tuple(timings), tuple(cases), notes

    def _compare(self, pairs: list[tuple[Runner, Runner]], index: int, size: Case) -> SizeTiming:
        """Pair ``index`` timed at ``size``, every other pair's runners stopped meanwhile; each size of each
        pair is a job with a deadline of its own (``--timeout``), however many pairs and sizes there are."""
        _suspend_all_but(pairs, index)
        for r in pairs[index]:
            r.start_job()
        return self.bench.compare(*pairs[index], size, self.bench.pair_budget(index))

    def _profile(self, spec: str, runner: Runner, size: Case) -> Profile | None:
        """Line and kernel profile of ``spec`` at ``size``, taken in a runner: its own on the CPU, a fresh one
        with ``CUDA_LAUNCH_BLOCKING=1`` on CUDA (see ``profile``).  A failed profile is no verdict."""
        self.progress("step", name=f"{spec}: profile @ {size.name}")
        fresh = self.options.device == "cuda"
        try:
            if fresh:
                runner = self._start(spec, {"CUDA_LAUNCH_BLOCKING": "1"}).ready()
            runner.start_job()
            return dataclasses.replace(runner.profile(size), spec=spec)  # as the user wrote it
        except (RunnerError, LoadFailed, StateChanged):
            return None
        finally:
            if fresh:
                runner.close()


def plan(options: RunOptions, targets: Mapping[str, Target] | None = None,
         progress: Progress | None = None) -> list[Pipeline]:
    """One pipeline per target the run covers — ``--target``'s; else the one target the ``--candidate``
    specs are marked for; else every target of the project, each inverse after what it inverts — all
    checked before any runs (a usage mistake in the last one costs nothing), sharing one ``RoundTrips``."""
    targets = discover_targets() if targets is None else targets
    if options.target is None and options.candidates and len(targets) > 1:
        try:
            marked = {describe(spec).target for spec in options.candidates} - {None}
        except SpecError as exc:
            raise UsageError(str(exc)) from None
        if len(marked) != 1:  # unmarked specs join the target of the marked ones, if they agree on one
            raise UsageError(f"this project has {len(targets)} targets ({', '.join(targets)}): say which one the "
                             f"--candidate specs are for with --target")
        options = dataclasses.replace(options, target=marked.pop())
    chosen = ([get_target_or_usage(options.target, targets)] if options.target is not None
              else in_run_order(targets))
    shared = RoundTrips(targets, options.device) if options.verify and len(chosen) > 1 else None
    return [Pipeline(dataclasses.replace(options, target=t.name), progress, targets, shared) for t in chosen]


def get_target_or_usage(name: str | None, targets: Mapping[str, Target]) -> Target:
    try:
        return get_target(name, targets)
    except Exception as exc:
        raise UsageError(str(exc)) from None


def with_round_trips(pipeline: Pipeline, result: RunResult) -> RunResult:
    """A finished target's result with the round trips it took part in (known once every target ran)."""
    trips = pipeline.round_trips
    if trips is None:
        return result
    return dataclasses.replace(result, round_trips=trips.for_target(result.target),
                               round_trip_text=trips.text_for(result.target))


def profile_spec(spec: str, target: Target, size: Case, device: str, timeout: float = 300.0) -> Profile:
    """``harness profile``: one spec's profile, taken in a runner."""
    env = {"CUDA_LAUNCH_BLOCKING": "1"} if device == "cuda" else None
    try:
        runner = spawn(absolute(spec), target.ref, device, dataclasses.asdict(BenchConfig()), timeout, env)
    except (LoadFailed, RunnerError) as exc:
        raise UsageError(f"{spec}: {exc}") from None
    try:
        runner.start_job()
        return dataclasses.replace(runner.profile(size), spec=spec)
    except (RunnerError, StateChanged) as exc:
        raise UsageError(f"{spec}: profiling failed: {exc}") from None
    finally:
        runner.close()


def _verdict(v: Verification | None) -> str:
    if v is None:
        return "untested"
    if v.passed:
        return "pass"
    return "error" if v.broken or any(f.kind == "error" for f in v.failures) else "fail"


def _error_reason(v: Verification | None) -> str | None:
    return None if v is None else v.reason()
