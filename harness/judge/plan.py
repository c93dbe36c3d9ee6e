"""The run plan: every option checked, every candidate read from its source, its domain and the sizes to
time fixed, before any runner starts.  Runs in the judge (the process the user started).

``plan(options)`` returns one frozen ``RunPlan`` per target the run covers, all checked first, so a usage
mistake in the last target costs nothing.  A plan is data: the pipeline (``pipeline``) schedules its
candidates, and judging each one (``task``) needs nothing but the plan, so it can run in this process or in
a judge worker of its own (``--jobs``).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from dataclasses import dataclass, field
from typing import Mapping

import torch

from harness.core.config import DEFAULTS, BenchConfig
from harness.core.candidates import ORACLE_PREFIX, Described, SpecError, describe, discover
from harness.core.domain import Domain, DomainError
from harness.core.errors import UsageError
from harness.core.machine import available_memory, visible_gpus
from harness.core.target import Case, Target, discover_targets, get_target, in_run_order


@dataclass(frozen=True)
class RunOptions:
    target: str | None = None
    candidates: tuple[str, ...] | list[str] = ()  # specs; empty: every candidate in candidates/
    baseline: str | None = None  # spec; None: the oracle (the original function)
    device: str = "cpu"
    policy: str | None = DEFAULTS.policy  # None: the target's first policy
    seed: int = 0
    examples: int = DEFAULTS.examples
    quick: bool = False
    sizes: tuple[str, ...] | list[str] | None = None
    where: str | None = None  # --where: a domain that focuses the whole run (see ``domain``)
    bench: BenchConfig = field(default_factory=BenchConfig)
    verify: bool = True
    time: bool = True
    profile: bool = False
    timeout: float = DEFAULTS.timeout_s  # seconds per candidate's work in its runner
    fail_fast: bool = False  # stop each candidate's verification at its first failing case
    jobs: int | None = 1  # candidates judged at once, each by a judge worker of its own; None: ``default_jobs``
    cluster: str | None = None  # a Dask scheduler's address: candidates judged on its workers (``cluster``)


@dataclass(frozen=True)
class RunPlan:
    """One target's run, checked: what the pipeline schedules and each candidate's task reads."""

    options: RunOptions
    target: Target
    candidates: tuple[Described, ...]
    domains: Mapping[str, Domain]  # candidate spec -> the inputs it is judged on
    sizes: tuple[Case, ...]  # the sizes to time, including those no candidate's domain admits (noted)

    @property
    def oracle_spec(self) -> str:
        return f"{ORACLE_PREFIX}{self.target.name}"

    @property
    def baseline_spec(self) -> str:
        return self.options.baseline or self.oracle_spec

    def timeable(self, sizes: tuple[Case, ...] | list[Case] | None = None) -> list[Case]:
        """The sizes some candidate's domain admits."""
        return [s for s in (self.sizes if sizes is None else sizes) if any(d.admits(s.params) for d in self.domains.values())]

    @property
    def headline_size(self) -> Case:
        """The size the report's headline quotes (the most bytes moved, as ``CandidateResult.headline``),
        which is also the size profiled, so the explanation speaks of the headline's numbers."""
        return max(self.timeable(), key=self.target.case_bytes)

    def is_control(self, cand: Described) -> bool:
        """``cand`` is the oracle itself registered as a candidate (read from its source): a control, whose
        timing shows the measurement's noise floor; never the best candidate, not profiled (the baseline's
        profile is the same function)."""
        oracle = self.target.oracle
        return cand.wraps is not None and cand.wraps == f"{getattr(oracle, '__module__', '')}:{getattr(oracle, '__name__', '')}"

    def after(self, cand: Described) -> str | None:
        """The spec of the candidate after ``cand`` (whose runner is started while ``cand`` is judged)."""
        specs = [c.spec for c in self.candidates]
        i = specs.index(cand.spec) if cand.spec in specs else len(specs)
        return specs[i + 1] if i + 1 < len(specs) else None

    def candidate_sizes(self, cand: Described) -> list[Case]:
        """The sizes ``cand`` is timed at: those its domain admits."""
        return [s for s in self.sizes if self.domains[cand.spec].admits(s.params)]


def check_device(device: str) -> None:
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}: choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available on this machine")


def plan(options: RunOptions, targets: Mapping[str, Target] | None = None) -> list[RunPlan]:
    """One plan per target the run covers — ``--target``'s; else the one target the ``--candidate`` specs
    are marked for; else every target of the project, each inverse after what it inverts — all checked
    before any runs."""
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
    chosen = [target_or_usage(options.target, targets)] if options.target is not None else in_run_order(targets)
    return [plan_target(dataclasses.replace(options, target=t.name), targets) for t in chosen]


CORES_PER_JOB = 4  # a judge worker, its candidate's runners and the baseline's keep about this many CPUs busy
MOST_JOBS = 8


def default_jobs(candidates: int, device: str, gpus: int | None = None, cpus: int | None = None) -> int:
    """Judge workers a run gets without ``--jobs``: on a machine of several GPUs one per GPU (each a timing
    lane of its own; as many as the CPUs feed, ``CORES_PER_JOB`` each, at most ``MOST_JOBS``, never more
    than the candidates), else one.  On one device timing takes turns, and judging side by side did not pay
    where measured: an H100's three quantizer candidates (``--quick``) took 82.8 s with three workers and
    75 s with one; this 2-core VM's, 21.3 s with two and 16.6 s with one (benchmarks/NOTES.md)."""
    if device != "cuda":
        return 1
    gpus = len(visible_gpus(device)) if gpus is None else gpus
    cpus = cpus if cpus is not None else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(candidates, gpus, (cpus or 1) // CORES_PER_JOB, MOST_JOBS)) if gpus > 1 else 1


def target_or_usage(name: str | None, targets: Mapping[str, Target]) -> Target:
    try:
        return get_target(name, targets)
    except Exception as exc:
        raise UsageError(str(exc)) from None


def plan_target(options: RunOptions, targets: Mapping[str, Target] | None = None) -> RunPlan:
    """The plan of ``options.target``'s run; ``UsageError`` (one line) for anything the user must fix."""
    if options.cluster is None:  # on a cluster, the workers have the device (and the memory)
        check_device(options.device)
    elif options.device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {options.device!r}: choose cpu or cuda")
    if options.jobs is not None and options.jobs < 1:
        raise UsageError(f"--jobs {options.jobs}: at least 1")
    targets = discover_targets() if targets is None else targets
    target = target_or_usage(options.target, targets)
    if not target.ref:
        raise UsageError(f"target {target.name!r} was not loaded from a module, so runners cannot load it")
    if options.policy is None:  # the target's own default: the first it lists
        options = dataclasses.replace(options, policy=target.policies[0])
    if options.policy not in target.policies:
        raise UsageError(f"unknown policy {options.policy!r}: choose from {', '.join(target.policies)}")
    try:
        candidates = ([describe(spec) for spec in options.candidates] if options.candidates
                      else discover(target.name, list(targets)))
        if options.baseline and not options.baseline.startswith(ORACLE_PREFIX):
            describe(options.baseline)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    if options.baseline and options.baseline.startswith(ORACLE_PREFIX) and options.baseline != f"{ORACLE_PREFIX}{target.name}":
        raise UsageError(f"--baseline {options.baseline}: this run's target is {target.name!r}")
    if not candidates:
        raise UsageError(f"no candidates for {target.name}: add one to candidates/ or pass --candidate")
    expected = inspect.signature(target.oracle)
    for cand in candidates:  # before any case: one line, not one TypeError per case
        if (why := cand.mismatch(expected)) is not None:
            raise UsageError(why)
    defaulted = options.jobs is None
    if defaulted:
        options = dataclasses.replace(options, jobs=default_jobs(len(candidates), options.device))
    domains = _domains(options, target, candidates)
    partial = RunPlan(options, target, tuple(candidates), domains, ())
    result = dataclasses.replace(partial, sizes=tuple(_sizes(partial)))
    while options.time and options.cluster is None:
        try:
            _check_memory(result)
            break
        except UsageError:
            if not defaulted or result.options.jobs == 1:
                raise
            # the machine's default number of jobs does not fit its memory: fewer, down to one, before failing
            result = dataclasses.replace(result, options=dataclasses.replace(result.options, jobs=result.options.jobs // 2))
    if options.time and options.sizes:
        _oracle_accepts(result)
    return result


def _oracle_accepts(plan: RunPlan) -> None:
    """Each ``--sizes`` entry run through the oracle once (a fraction of a second at production sizes): a
    size it rejects is the user's mistake, not a candidate's or the baseline's failure."""
    target, device = plan.target, plan.options.device
    for size in plan.timeable():
        try:
            call = target.build(size, device)
            target.oracle(*call.args, **call.kwargs)
        except Exception as exc:  # whatever the oracle raises on this input
            message = str(exc).strip().splitlines()
            raise UsageError(f"size {size.name}: the oracle {target.function_name or target.name} rejects it "
                             f"({type(exc).__name__}{': ' + message[0][:200] if message else ''}); "
                             "pass a size it accepts") from None


def _domains(options: RunOptions, target: Target, candidates: list[Described]) -> dict[str, Domain]:
    """Each candidate's domain: what it declares it supports, narrowed by ``--where``; every clause must
    name a param the target's cases carry."""
    named = target.named_cases()
    known = {k for case in named for k in case.params}
    try:
        where = Domain.parse(options.where) if options.where is not None else Domain()
    except DomainError as exc:
        raise UsageError(f"--where: {exc}") from None
    try:
        where.check_keys(known, f"--where (target {target.name})")
        for cand in candidates:
            cand.supports.check_keys(known, f"{cand.spec}: supports=")
    except DomainError as exc:
        raise UsageError(str(exc)) from None
    domains = {cand.spec: cand.supports & where for cand in candidates}
    for spec, domain in domains.items():  # a domain no named case is in would "pass" on nothing at all
        if domain and not any(domain.admits(case.params) for case in named):
            raise UsageError(f"{spec}: its domain ({domain.text}) admits none of the {len(named)} named cases of "
                             f"{target.name}, so nothing would be checked")
    return domains


def _sizes(plan: RunPlan) -> list[Case]:
    """The sizes to time: ``--sizes`` (each must fit some candidate's domain) or the target's ladder (a size
    no candidate's domain admits is noted, not timed); none left to time is a usage error."""
    opts, target = plan.options, plan.target
    try:
        sizes = [target.parse_size(s) for s in opts.sizes] if opts.sizes else target.sizes(opts.device, opts.quick)
    except ValueError as exc:
        raise UsageError(f"{target.name}: {exc}") from None
    fits = plan.timeable(sizes)
    described = "; ".join(sorted({d.describe() for d in plan.domains.values()}))
    if opts.time and opts.sizes and len(fits) < len(sizes):
        size = next(s for s in sizes if s not in fits)
        raise UsageError(f"size {size.name} is outside the domain of every candidate ({described})")
    if opts.time and not fits:
        raise UsageError(f"no size of {target.name} fits the domain of any candidate ({described}): pass --sizes")
    return sizes


def _check_memory(plan: RunPlan) -> None:
    """Each size must fit, before anything is allocated: every runner of every pair keeps, for each size it
    was timed at, its base input and the XOR mask of fresh inputs (``fresh``; a baseline's runner is asked
    for the same sizes by every candidate: ``Worker.prepare``), and holds one round's fresh inputs and kept
    outputs (at most ``buffer_bytes``, or one call's) on top; with ``--jobs N``, N candidates at once."""
    opts = plan.options
    available = available_memory(opts.device)
    cfg = opts.bench
    runners = 2 * cfg.most_pairs * opts.jobs  # pairs that may join to settle a verdict included
    kept = 0  # bytes each runner holds for the sizes before
    for size in plan.timeable():
        per_set = max(1, plan.target.case_bytes(size))
        kept += 2 * per_set
        need = runners * (kept + 2 * max(per_set, cfg.buffer_bytes))  # this round's inputs and the last's
        if available is not None and need > available:
            raise UsageError(f"size {size.name} needs about {need / 2**30:.1f} GiB on {opts.device} "
                             f"(inputs of {per_set / 2**30:.2f} GiB kept twice over in each of {runners} runners, "
                             f"which keep the inputs of the sizes before it, and a round's fresh inputs), but "
                             f"{available / 2**30:.1f} GiB is available")
