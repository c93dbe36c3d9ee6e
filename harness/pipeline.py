"""The whole run, in the order the mission reads: cases -> run (isolated) -> verify -> bench -> report data.

``Pipeline`` loads the target and its candidates, then runs one ``Job`` per candidate — verify; if it
passed, time it against the baseline over the size ladder, time each regression case once more for the
report's annotated tests, and profile it — in a child process with a timeout when ``isolate`` is set, so
that a candidate that hangs or crashes only earns the verdict ``error``.  It returns one frozen
``RunResult``, reports progress through a callback and renders nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from harness import __version__
from harness.bench import Bench, BenchConfig, measure_copy_bandwidth
from harness.sandbox import Isolated, run_isolated
from harness.candidates import Described, SpecError, candidate_files, describe, discover, load
from harness.result import CandidateResult, CaseTiming, Environment, Profile, RunResult, SizeTiming, Verification
from harness.target import Case, Target, discover_targets, get_target
from harness.verify import Verifier, regression_test

Progress = Callable[..., None]  # progress(event, **details); events: "phase", "step", "done"


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit code 2."""


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
    bench: BenchConfig = field(default_factory=BenchConfig)
    verify: bool = True
    time: bool = True
    profile: bool = False
    isolate: bool = False  # each candidate's work in a child process (the CLI's default)
    timeout: float = 300.0  # seconds per candidate when isolated


def check_device(device: str) -> None:
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}: choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available on this machine")


def environment(device: str, copy_gbps: float | None) -> Environment:
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
    name = torch.cuda.get_device_name() if device == "cuda" else (_cpu_name() or platform.machine())
    return Environment(
        device=device, device_name=name, python=platform.python_version(), torch=torch.__version__,
        triton=triton_version, platform=platform.platform(), threads=torch.get_num_threads(), git_commit=commit,
        harness_version=__version__, command=" ".join(["harness", *map(shlex.quote, sys.argv[1:])]),
        copy_gbps=copy_gbps,
    )


def _cpu_name() -> str | None:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return None


class Pipeline:
    def __init__(self, options: RunOptions, progress: Progress | None = None,
                 targets: Mapping[str, Target] | None = None) -> None:
        check_device(options.device)
        self.options = options
        self.progress = progress or (lambda *a, **k: None)
        targets = discover_targets() if targets is None else targets
        try:
            self.target: Target = get_target(options.target, targets)
        except Exception as exc:
            raise UsageError(str(exc)) from None
        if options.policy not in self.target.policies:
            raise UsageError(f"unknown policy {options.policy!r}: choose from {', '.join(self.target.policies)}")
        default = next(iter(targets))
        if options.isolate:  # candidate code is imported only in child processes
            self.candidates: list[Any] = self._describe_isolated(default)
            self.baseline = self._describe_isolated(default, [options.baseline])[0] if options.baseline else None
            if self.baseline is not None and self.baseline.crashed:
                raise UsageError(f"--baseline {options.baseline}: importing it {self.baseline.crashed}")
        else:
            try:
                self.candidates = ([load(spec) for spec in options.candidates] if options.candidates
                                   else discover(self.target.name, default))
                self.baseline = load(options.baseline) if options.baseline else None
            except SpecError as exc:
                raise UsageError(str(exc)) from None
        if not self.candidates:
            raise UsageError(f"no candidates for {self.target.name}: add one to candidates/ or pass --candidate")
        try:
            self.sizes: list[Case] = ([self.target.parse_size(s) for s in options.sizes] if options.sizes
                                      else self.target.sizes(options.device, options.quick))
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def _describe_isolated(self, default: str, specs: list[str] | None = None) -> list[Described]:
        """Load or discover candidates in a child process; if importing one kills it, try one spec (or one
        candidates/ file) per child so that only the culprit is marked as crashed."""
        specs = self.options.candidates if specs is None else specs
        try:
            found = run_isolated(describe, (self.target.name, default, specs), self.options.timeout)
        except Isolated:
            found = []
            for spec, files in ([(s, None) for s in specs] if specs else [(None, [f]) for f in candidate_files()]):
                try:
                    part = run_isolated(describe, (self.target.name, default, [spec] if spec else [], files),
                                        self.options.timeout)
                except Isolated as exc:
                    where = spec or f"{files[0].name}:*"
                    part = [Described(Path(where.split(":")[0]).stem, where, "", crashed=str(exc))]
                if isinstance(part, str):
                    raise UsageError(part) from None
                found += part
        if isinstance(found, str):
            raise UsageError(found)
        return found

    @property
    def baseline_fn(self) -> Callable[..., Any]:
        if self.baseline is None:
            return self.target.oracle
        return getattr(self.baseline, "function", None) or _function(self.baseline.spec, None)

    @property
    def baseline_spec(self) -> str:
        return self.baseline.spec if self.baseline else f"oracle:{self.target.name}"

    def run(self) -> RunResult:
        """Verify, time and profile each candidate (one job per candidate, isolated when asked), and keep
        what finished in ``self.finished`` so an interrupted run can still show it."""
        opts = self.options
        copy_gbps = None
        if opts.time:
            self.progress("phase", name="copy bandwidth", total=1)
            copy_gbps = measure_copy_bandwidth(opts.device)
            self.progress("done", name="copy bandwidth", ok=True)
        self.finished: list[CandidateResult] = []
        template = Job(target=self.target.name, spec="", name="", doc="", baseline=self.baseline_spec,
                       device=opts.device, policy=opts.policy, seed=opts.seed, examples=opts.examples,
                       sizes=tuple(self.sizes), bench=opts.bench, verify=opts.verify, time=opts.time,
                       profile=opts.profile, copy_gbps=copy_gbps)
        self.progress("phase", name="candidates", total=len(self.candidates))
        for cand in self.candidates:
            if getattr(cand, "crashed", None):
                self.finished.append(CandidateResult(name=cand.name, spec=cand.spec, doc="", verdict="error",
                                                     error=f"importing it {cand.crashed}"))
                self.progress("done", name=cand.name, ok=False)
                continue
            job = dataclasses.replace(template, spec=cand.spec, name=cand.name, doc=cand.doc)
            outcome = self._run(run_job, job, {cand.spec: getattr(cand, "function", None)})
            if isinstance(outcome, str):
                outcome = CandidateResult(name=cand.name, spec=cand.spec, doc=cand.doc, verdict="error", error=outcome)
            self.finished.append(outcome)
            self.progress("done", name=cand.name, ok=outcome.verdict == "pass")
        timed = any(r.timings for r in self.finished)
        baseline_profile = None
        if opts.profile and timed:
            self.progress("phase", name="baseline profile", total=1)
            job = dataclasses.replace(template, spec=self.baseline_spec, name="baseline", examples=0, verify=False,
                                      time=False, profile=True)
            found = self._run(profile_job, job, {})
            baseline_profile = found if not isinstance(found, str) else None
            self.progress("done", name="baseline profile", ok=baseline_profile is not None)
        return RunResult(
            target=self.target.name, function=self.target.function_name, source=self.target.source,
            baseline=self.baseline_spec, policy=opts.policy,
            created=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            environment=environment(opts.device, copy_gbps), candidates=tuple(self.finished),
            bench=opts.bench.settings() if timed else None, baseline_profile=baseline_profile,
        )

    def _run(self, work: Callable[..., Any], job: "Job", functions: dict[str, Callable[..., Any]]) -> Any:
        """``work(job)`` in a child process (returns a one-line reason string if the child failed) or here."""
        if self.options.isolate:
            try:
                return run_isolated(work, (job,), self.options.timeout, self.progress)
            except Isolated as exc:
                return str(exc)
        return work(job, progress=self.progress, target=self.target,
                    functions={**{k: v for k, v in functions.items() if v is not None},
                               self.baseline_spec: self.baseline_fn})


@dataclass(frozen=True)
class Job:
    """Everything one candidate's work needs, as data a child process can receive."""

    target: str
    spec: str
    name: str
    doc: str
    baseline: str  # a spec, or oracle:<target>
    device: str
    policy: str
    seed: int
    examples: int
    sizes: tuple[Case, ...]
    bench: BenchConfig
    verify: bool
    time: bool
    profile: bool
    copy_gbps: float | None


def _function(spec: str, functions: dict[str, Callable[..., Any]] | None) -> Callable[..., Any]:
    from harness.profile import resolve

    return (functions or {}).get(spec) or resolve(spec)[0]


def run_job(job: Job, progress: Progress, target: Target | None = None,
            functions: dict[str, Callable[..., Any]] | None = None) -> CandidateResult:
    """One candidate: verify it, and if it passed time it against the baseline over the sizes, time each
    regression case once more for the report, and profile it at the last size."""
    target = target or get_target(job.target)
    fn = _function(job.spec, functions)
    verification = None
    if job.verify:
        progress("step", name=f"{job.name}: verify")
        verification = Verifier(target, job.policy, job.device, job.examples, job.seed).verify(
            fn, job.spec, lambda i, n: progress("advance", done=i, total=n))
    timings: list[SizeTiming] = []
    case_timings: tuple[CaseTiming, ...] = ()
    profile = None
    if job.time and (verification is None or verification.passed):
        baseline = _function(job.baseline, functions)
        bench = Bench(target, job.device, job.bench, job.copy_gbps)
        for size in job.sizes:
            progress("step", name=f"{job.name}: time @ {size.name}")
            timings.append(bench.compare(baseline, fn, size))
        progress("step", name=f"{job.name}: time each regression case")
        case_timings = _case_timings(target, bench, baseline, fn, job)
        if job.profile:
            profile = profile_job(job, progress, target, functions)
    return CandidateResult(name=job.name, spec=job.spec, doc=job.doc, verdict=_verdict(verification),
                           error=_error_reason(verification), verification=verification, timings=tuple(timings),
                           case_timings=case_timings, profile=profile)


def profile_job(job: Job, progress: Progress, target: Target | None = None,
                functions: dict[str, Callable[..., Any]] | None = None) -> Profile:
    """Line and kernel profile of one spec at the last (largest) size."""
    from harness import profile as profiling

    target = target or get_target(job.target)
    size = job.sizes[-1]
    progress("step", name=f"{job.name}: profile @ {size.name}")
    (found,) = profiling.profile_specs([job.spec], target, size, job.device, {job.spec: _function(job.spec, functions)})
    return found


def _case_timings(target: Target, bench: Bench, baseline: Callable[..., Any], fn: Callable[..., Any],
                  job: Job) -> tuple[CaseTiming, ...]:
    """Each named regression case timed once more (best of a few interleaved calls), for the report's
    annotated tests; the size ladder is the measurement that carries the verdict."""
    out = []
    for case in target.named_cases():
        if case.family != "seed":
            continue
        base_s, cand_s = bench.best_of(baseline, fn, target.build(case, job.device))
        out.append(CaseTiming(case=case.name, baseline_s=base_s, candidate_s=cand_s,
                              test=regression_test(target, case, job.spec, job.policy),
                              family=case.family, params=dict(case.params), seed=case.seed))
    return tuple(out)


def _verdict(v: Verification | None) -> str:
    if v is None:
        return "untested"
    if v.passed:
        return "pass"
    return "error" if any(f.kind == "error" for f in v.failures) else "fail"


def _error_reason(v: Verification | None) -> str | None:
    if v is None or v.passed:
        return None
    errors = [f for f in v.failures if f.kind == "error"]
    return (errors[0] if errors else v.failures[0]).reason
