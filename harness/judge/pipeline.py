"""The whole run of one target, in the order the mission reads: cases -> runners -> judge: verify, bench,
profile -> result.  Runs in the judge (the process the user started), which never imports candidate code.

``Pipeline`` takes a checked ``RunPlan`` (``plan``), snapshots the code the run executes (``snapshot``) and
the checkout, measures the device's copy bandwidth, then schedules one task per candidate (``task``): here,
one after the other, with the next candidate's runner importing while one is judged; or, with ``--jobs N``,
in N judge workers (``workers``) that verify concurrently and take turns at timing (``lanes``).  It merges
the candidates' results into one frozen ``RunResult``, reports progress through a callback and renders
nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from pathlib import Path
from typing import Callable, Mapping

from harness.judge import checkout, noise

from harness.runner import isolation, snapshot
from harness.runner.audit import StateChanged
from harness.core.config import DEFAULTS, BenchConfig
from harness.judge.bench import Bench
from harness.core.candidates import absolute, candidates_dir
from harness.runner.clocks import cpu_cache, measure_copy_bandwidth
from harness.core.errors import UsageError
from harness.judge.environment import environment
from harness.judge.plan import RunOptions, RunPlan, plan, plan_target
from harness.judge.pool import RunnerPool, profiler_env
from harness.judge.process import place
from harness.core.result import CandidateResult, Noise, Profile, RunResult, Verdict
from harness.judge.roundtrip import RoundTrips
from harness.judge.sandbox import LoadFailed, Runner, RunnerError, spawn
from harness.core.target import Case, Target
from harness.judge.task import CandidateTask
from harness.judge.verify import TimedCheck, Verifier

Progress = Callable[..., None]  # progress(event, **details); events: "phase", "step", "advance", "done"


def make_task(run_plan: RunPlan, progress: Progress, copy_gbps: float | None,
              round_trips: RoundTrips | None = None) -> CandidateTask:
    """The judge's tools for the plan's candidates: a runner pool, a verifier, a bench."""
    opts = run_plan.options
    verifier = Verifier(run_plan.target, opts.policy, opts.device, opts.examples, opts.seed)
    bench = Bench(run_plan.target, opts.device, opts.bench, copy_gbps,
                  check=TimedCheck(verifier) if opts.verify else None)
    return CandidateTask(run_plan, RunnerPool(run_plan, progress), verifier, bench, progress, round_trips)


class Pipeline:
    def __init__(self, options: RunOptions | RunPlan, progress: Progress | None = None,
                 targets: Mapping[str, Target] | None = None, round_trips: RoundTrips | None = None,
                 variants: Mapping[Path, snapshot.Snapshot] | None = None) -> None:
        self.plan = options if isinstance(options, RunPlan) else plan_target(options, targets)
        self.variants = variants  # specs under these folders load from their own snapshot (``against``)
        self.progress = progress or (lambda *a, **k: None)
        self.round_trips = round_trips
        self.finished: list[CandidateResult] = []
        self.cache_source: str | None = None  # where the CPU cache figure came from, once found

    # what the CLI shows of a run, interrupted or not
    @property
    def options(self) -> RunOptions:
        return self.plan.options

    @property
    def target(self) -> Target:
        return self.plan.target

    @property
    def candidates(self) -> tuple:
        return self.plan.candidates

    @property
    def baseline_spec(self) -> str:
        return self.plan.baseline_spec

    def _folders(self) -> list[Path]:
        """What the run watches for changes: the oracle's package (a top-level module: its file alone, not
        the whole project root it lies in), ``candidates/`` and ``harness/``."""
        module = sys.modules[self.target.oracle.__module__]
        home = Path(module.__file__).parent if module.__package__ else Path(module.__file__)
        return [home, candidates_dir(), Path(__file__).parent.parent]

    def run(self) -> RunResult:
        """Verify, time and profile each candidate, each in its own runner, keeping what finished in
        ``self.finished`` so an interrupted run can still show it."""
        writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # see checkout._files
        sources = snapshot.take([*(c.spec for c in self.candidates), self.baseline_spec], self.target.source_refs)
        try:
            with snapshot.during(sources, self.variants):  # every runner of the run, restarted ones too, runs this copy
                return self._run(sources)
        finally:
            sys.dont_write_bytecode = writes_bytecode

    def _run(self, sources: snapshot.Snapshot) -> RunResult:
        opts = self.options
        before = checkout.snapshot(self._folders())
        machine_before = noise.machine_state()
        copy_gbps = None
        if opts.time and opts.cluster is None:  # (a cluster's workers measure their own devices')
            self.progress("phase", name="copy bandwidth and cache", total=1)
            copy_gbps = measure_copy_bandwidth(opts.device)
            if opts.device == "cpu":
                self._find_cache()
                opts = self.options
            self.progress("done", name="copy bandwidth and cache", ok=True)
        here = opts.jobs == 1 and opts.cluster is None
        task = make_task(self.plan, self.progress, copy_gbps, self.round_trips if here else None)
        baseline_profile, worker_threads = None, None
        try:
            self.progress("phase", name="candidates", total=len(self.candidates))
            if here:
                self._judge_here(task)
            else:
                if opts.cluster is not None:
                    from harness.judge.cluster import judge_on_cluster

                    judged = judge_on_cluster(self.plan, sources, opts.cluster, self._done)
                else:
                    from harness.judge.workers import judge_in_workers

                    judged = judge_in_workers(self.plan, copy_gbps, sources, self.progress, self._done)
                self.finished = [outcome for outcome, _ in judged]  # in the plan's order, as with one job
                worker_threads = next((threads for _, threads in judged if threads), None)
                if self.round_trips is not None:
                    self._round_trips(task)
            if opts.profile and any(r.timings for r in self.finished):
                self.progress("phase", name="baseline profile", total=1)
                try:
                    baseline_profile = task.profile(self.baseline_spec, task.pool.baseline(), self.plan.headline_size)
                except RunnerError as exc:  # it died after the last candidate was judged: said, not restarted
                    last = self.finished[-1]
                    self.finished[-1] = dataclasses.replace(last, notes=(*last.notes, f"the baseline {exc}"))
                self.progress("done", name="baseline profile", ok=baseline_profile is not None)
        finally:
            threads = task.pool.threads
            task.pool.close()
        threads = threads or worker_threads
        changed = checkout.changes(before, checkout.snapshot(self._folders()))
        timed = any(r.timings for r in self.finished)
        machine_after = noise.machine_state()
        env = environment(opts.device, copy_gbps, threads)
        env = dataclasses.replace(env, load_start=machine_before.load1, cache_bytes=opts.bench.cache_bytes or env.cache_bytes,
                                  cache_source=self.cache_source,
                                  load_end=machine_after.load1, governor=machine_after.governor,
                                  isolation=isolation.describe())
        return RunResult(
            target=self.target.name, function=self.target.function_name, source=self.target.source,
            baseline=self.baseline_spec, policy=opts.policy,
            created=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            environment=env, candidates=tuple(self.finished), noise=tuple(self._noise(threads)),
            bench=opts.bench.settings(threads) if timed else None, baseline_profile=baseline_profile,
            checkout_changes=tuple(changed), policy_text=self.target.policy_text.get(opts.policy, ""),
        )

    def _find_cache(self) -> None:
        """The CPU cache the run's inputs are sized against (``machine.effective_cache``), into the plan's
        bench settings, so the judge and every runner use the same figure."""
        cache, self.cache_source = cpu_cache()
        opts = self.plan.options
        self.plan = dataclasses.replace(self.plan, options=dataclasses.replace(
            opts, bench=dataclasses.replace(opts.bench, cache_bytes=cache)))

    def _judge_here(self, task: CandidateTask) -> None:
        """Every candidate in this process, one after the other; runners load while the judge works (imports
        take seconds), each stopped while others are timed."""
        opts = self.options
        task.pool.start_ahead(self.candidates[0].spec)
        if opts.time:  # loads during the first candidate's verification; waited for before any timing
            task.pool.start_baselines(opts.bench.likely_pairs, profiler=opts.profile)
        for cand in self.candidates:
            self._done(task.judge(cand))

    def _done(self, outcome: CandidateResult) -> None:
        self.finished.append(outcome)
        self.progress("done", name=outcome.name, ok=outcome.verdict == Verdict.PASS)

    def _round_trips(self, task: CandidateTask) -> None:
        """With ``--jobs``, round trips are taken here once the workers are done: each passing candidate is
        loaded once more, in a runner of this judge (all of them importing at once), and collects or checks
        its round trips."""
        assert self.round_trips is not None
        self.progress("phase", name="round trips", total=1)
        passed = {r.spec for r in self.finished if r.verification is not None and r.verification.passed}
        queue = [c for c in self.candidates if c.spec in passed]
        window = max(2, self.options.jobs or 1)  # runners importing at once
        started: dict[str, Runner] = {}
        try:
            for i, cand in enumerate(queue):
                for upcoming in queue[i:i + window]:
                    if upcoming.spec not in started:
                        started[upcoming.spec] = task.pool.start(upcoming.spec)
                runner = started.pop(cand.spec)
                try:
                    runner.ready()
                    runner.start_job()
                    self.round_trips.collect(self.target, runner, cand.spec, self.plan.domains[cand.spec])
                    self.round_trips.check(self.target, runner, cand.spec, self.plan.domains[cand.spec])
                except (LoadFailed, RunnerError, StateChanged):
                    pass  # it was judged: a runner that fails now leaves its round trips untaken
                finally:
                    runner.close()
        finally:
            for runner in started.values():
                runner.close()
        self.progress("done", name="round trips", ok=True)

    def _noise(self, threads: int | None) -> list[Noise]:
        """Why the timings may not be trusted: other processes took CPU while a size was timed (and on the
        CPU with several threads, what to do about it), or the baseline's medians at one size disagree
        across candidates (see ``noise``)."""
        found = []
        for c in self.finished:
            found += noise.loaded_timing(c.name, noise.Watched(c.foreign_cpu, c.steal_cpu),
                                         [(t.size, noise.Watched(t.foreign_cpu, t.steal_cpu)) for t in c.timings])
        if found and self.options.device == "cpu" and (advice := noise.threads_advice(threads)) is not None:
            found.append(advice)
        for size in self.plan.sizes:
            baselines = [noise.BaselineTiming(c.name, t.baseline.median_s, t.baseline.stderr_s)
                         for c in self.finished for t in c.timings if t.size == size.name]
            found += noise.baseline_disagreements(size.name, baselines)
        return found


def pipelines(options: RunOptions, targets: Mapping[str, Target] | None = None,
              progress: Progress | None = None) -> list[Pipeline]:
    """One pipeline per plan (``plan.plan``: all checked before any runs), sharing one ``RoundTrips``."""
    from harness.core.target import discover_targets

    targets = discover_targets() if targets is None else targets
    plans = plan(options, targets)
    shared = RoundTrips(targets, options.device) if options.verify and len(plans) > 1 else None
    return [Pipeline(p, progress, targets, shared) for p in plans]


def with_round_trips(pipeline: Pipeline, result: RunResult) -> RunResult:
    """A finished target's result with the round trips it took part in (known once every target ran)."""
    trips = pipeline.round_trips
    if trips is None:
        return result
    return dataclasses.replace(result, round_trips=trips.for_target(result.target),
                               round_trip_text=trips.text_for(result.target))


def profile_spec(spec: str, target: Target, size: Case, device: str, timeout: float = DEFAULTS.timeout_s) -> Profile:
    """``harness profile``: one spec's profile, taken in a runner."""
    try:
        runner = spawn(absolute(spec), target.ref, device, dataclasses.asdict(BenchConfig()), timeout, profiler_env(device))
        place(runner)  # on the core a run's profiles are taken on
    except (LoadFailed, RunnerError) as exc:
        raise UsageError(f"{spec}: {exc}") from None
    try:
        runner.start_job()
        return dataclasses.replace(runner.profile(size), spec=spec)
    except (RunnerError, StateChanged) as exc:
        raise UsageError(f"{spec}: profiling failed: {exc}") from None
    finally:
        runner.close()
