"""The whole run, in the order the mission reads: cases -> run (isolated) -> verify -> bench -> report data.

``Pipeline`` loads the target and its candidates, verifies each candidate, times those that passed against
the baseline over the size ladder, times each regression case once more for the report's annotated tests,
and returns one frozen ``RunResult``.  It reports progress through a callback and renders nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from harness import __version__
from harness.bench import Bench, BenchConfig, measure_copy_bandwidth
from harness.candidates import Candidate, SpecError, discover, load
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
        try:
            self.candidates: list[Candidate] = (
                [load(spec) for spec in options.candidates] if options.candidates
                else discover(self.target.name, default)
            )
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

    @property
    def baseline_fn(self) -> Callable[..., Any]:
        return self.baseline.function if self.baseline else self.target.oracle

    @property
    def baseline_spec(self) -> str:
        return self.baseline.spec if self.baseline else f"oracle:{self.target.name}"

    def run(self) -> RunResult:
        opts = self.options
        verifications: dict[str, Verification] = {}
        if opts.verify:
            verifier = Verifier(self.target, opts.policy, opts.device, opts.examples, opts.seed)
            self.progress("phase", name="verify", total=len(self.candidates))
            for cand in self.candidates:
                self.progress("step", name=cand.name)
                verifications[cand.spec] = verifier.verify(
                    cand.function, cand.spec, lambda i, n: self.progress("advance", done=i, total=n))
                self.progress("done", name=cand.name, ok=verifications[cand.spec].passed)
        copy_gbps = None
        results: list[CandidateResult] = []
        timed = [c for c in self.candidates if not opts.verify or verifications[c.spec].passed] if opts.time else []
        if timed:
            self.progress("phase", name="copy bandwidth", total=1)
            copy_gbps = measure_copy_bandwidth(opts.device)
            self.progress("done", name="copy bandwidth", ok=True)
            bench = Bench(self.target, opts.device, opts.bench, copy_gbps)
            self.progress("phase", name="bench", total=len(timed) * len(self.sizes))
            inputs = {size.name: bench.inputs(size) for size in self.sizes}
        for cand in self.candidates:
            verification = verifications.get(cand.spec)
            timings: tuple[SizeTiming, ...] = ()
            case_timings: tuple[CaseTiming, ...] = ()
            if cand in timed:
                timing_list = []
                for size in self.sizes:
                    self.progress("step", name=f"{cand.name} @ {size.name}")
                    timing_list.append(bench.compare(self.baseline_fn, cand.function, size, inputs[size.name]))
                    self.progress("done", name=f"{cand.name} @ {size.name}", ok=True)
                timings = tuple(timing_list)
                case_timings = self._case_timings(bench, cand)
            results.append(CandidateResult(
                name=cand.name, spec=cand.spec, doc=cand.doc, verdict=_verdict(verification),
                error=_error_reason(verification), verification=verification, timings=timings,
                case_timings=case_timings,
            ))
        profiles = self._profiles([c for c in self.candidates if c in timed]) if opts.profile and timed else {}
        results = [dataclasses.replace(r, profile=profiles.get(r.spec)) for r in results]
        return RunResult(
            target=self.target.name, function=self.target.function_name, source=self.target.source,
            baseline=self.baseline_spec, policy=opts.policy,
            created=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            environment=environment(opts.device, copy_gbps), candidates=tuple(results),
            bench=opts.bench.settings() if timed else None, baseline_profile=profiles.get(self.baseline_spec),
        )

    def _profiles(self, candidates: list[Candidate]) -> dict[str, Profile]:
        """Line and kernel profiles of the baseline and each timed candidate at the last (largest) size."""
        from harness import profile as profiling

        size = self.sizes[-1]  # the ladder ends with its largest size
        functions = {self.baseline_spec: self.baseline_fn, **{c.spec: c.function for c in candidates}}
        self.progress("phase", name=f"profile @ {size.name}", total=1)
        found = profiling.profile_specs(list(functions), self.target, size, self.options.device, functions)
        self.progress("done", name="profile", ok=True)
        return {p.spec: p for p in found}

    def _case_timings(self, bench: Bench, cand: Candidate) -> tuple[CaseTiming, ...]:
        """Each named regression case timed once more (best of a few interleaved calls), for the report's
        annotated tests; the size ladder above is the measurement that carries the verdict."""
        out = []
        for case in self.target.named_cases():
            if case.family != "seed":
                continue
            base_s, cand_s = bench.best_of(self.baseline_fn, cand.function, self.target.build(case, self.options.device))
            out.append(CaseTiming(case=case.name, baseline_s=base_s, candidate_s=cand_s,
                                  test=regression_test(self.target, case, cand.spec, self.options.policy),
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
