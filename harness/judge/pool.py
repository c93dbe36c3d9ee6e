"""The runner processes of one target's run on one device, and who owns them.  Runs in the judge (or in a
judge worker, ``--jobs``: each worker has a pool of its own).

The baseline's runners live for the whole run — the first pair's, and one per extra pair a size may need
(``Bench.another_pair``) — so each candidate is timed against the same warm processes; the next candidate's
runner is started ahead, to import while the one before is judged, and a candidate's spares (the runners of
its extra timing pairs, and on CUDA the one it is profiled in) while it is verified.  On CUDA runners import
on CPUs other than the timed pairs' and move there when handed out (``process.place``).  A baseline runner
found dead is never restarted quietly: the candidate judged meanwhile gets ``error`` naming it, and its replacement starts
from the run's snapshot (``snapshot``), not from the checkout.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, ContextManager

from harness.core.candidates import absolute
from harness.core.errors import UsageError
from harness.judge.plan import RunPlan
from harness.judge.process import place
from harness.judge.sandbox import LoadFailed, Runner, RunnerError, death, start

Progress = Callable[..., None]  # progress(event, **details); events: "phase", "step", "advance", "done"


class RunnerPool:
    def __init__(self, plan: RunPlan, progress: Progress | None = None) -> None:
        self.plan = plan
        self.progress = progress or (lambda *a, **k: None)
        self.first: Runner | None = None  # the baseline's runner of the first pair
        self.extra: list[Runner] = []  # the baseline's runners of pairs 2, 3...
        self._ahead: dict[str, Runner] = {}  # candidate spec -> its runner, started ahead
        self._spares: dict[str, list[Runner]] = {}  # candidate spec -> runners for its extra timing pairs
        self._profilers: dict[str, Runner] = {}  # candidate spec -> the runner it is profiled in (CUDA)

    @property
    def baseline_spec(self) -> str:
        return absolute(self.plan.baseline_spec)

    def start(self, spec: str, env: dict[str, str] | None = None) -> Runner:
        """A runner for ``spec``, loading while the judge goes on (``Runner.ready`` waits for it)."""
        opts = self.plan.options
        return start(absolute(spec), self.plan.target.ref, opts.device, dataclasses.asdict(opts.bench), opts.timeout, env)

    # -- candidates -----------------------------------------------------------------------------
    def start_ahead(self, spec: str | None) -> None:
        """Start ``spec``'s runner now, to import while the candidate before it is judged."""
        if spec is not None and spec not in self._ahead:
            self._ahead[spec] = self.start(spec)

    def take(self, spec: str) -> Runner:
        """``spec``'s runner: the one started ahead, else a new one."""
        return _placed(self._ahead.pop(spec, None) or self.start(spec))

    def start_spares(self, spec: str, count: int, hold: Callable[[], ContextManager] | None = None,
                     profiler: bool = False) -> None:
        """Start ``count`` more runners of ``spec`` for its extra timing pairs (``take_spare``), and with
        ``profiler`` the one it is profiled in where that is a runner of its own (``take_profiler``), so
        that they import while it is verified rather than while the device's timing lane waits for them.
        With ``hold`` (beside other judges of the same device: ``lanes``), they load now, as a verification
        step holding it, so that nothing imports while anyone times; one that fails to load leaves none (a
        pair that needs one starts it afresh and says what went wrong)."""
        spares, env = self._spares.setdefault(absolute(spec), []), profiler_env(self.plan.options.device)
        with hold() if hold is not None else contextlib.nullcontext():
            started: list[Runner] = []
            while len(spares) < count:  # each kept as it starts: the pool closes it, whatever happens next
                spares.append(self.start(spec))
                started.append(spares[-1])
            if profiler and env is not None and absolute(spec) not in self._profilers:
                started.append(self._profilers.setdefault(absolute(spec), self.start(spec, env)))
            try:
                for runner in started if hold is not None else ():
                    runner.ready()
            except (LoadFailed, RunnerError):
                self.drop_spares(spec)

    def spares(self, spec: str) -> list[Runner]:
        """``spec``'s spares not taken yet, its profiler's runner included."""
        key = absolute(spec)
        return [*self._spares.get(key, ()), *([self._profilers[key]] if key in self._profilers else [])]

    def take_spare(self, spec: str) -> Runner:
        """A runner of ``spec`` for one more timing pair: a spare started ahead, else a new one."""
        spares = self._spares.get(absolute(spec))
        return _placed(spares.pop(0) if spares else self.start(spec))

    def take_profiler(self, spec: str, runner: Runner) -> Runner:
        """The runner to profile ``spec`` in: ``runner`` (its own) where profiles need no other, else its
        profiler's started ahead (unless it died meanwhile) or a new one; the caller closes a runner it did
        not pass in."""
        env = profiler_env(self.plan.options.device)
        if env is None:
            return runner
        ahead = self._profilers.pop(absolute(spec), None)
        if ahead is not None and not ahead.alive():
            ahead.close()
            ahead = None
        return _placed(ahead or self.start(spec, env))

    def drop_spares(self, spec: str) -> int:
        """Close the spares ``spec`` did not need (and its profiler's runner); how many processes they had
        left running."""
        key = absolute(spec)
        unused = [*self._spares.pop(key, []), *([self._profilers.pop(key)] if key in self._profilers else [])]
        return sum(runner.close() for runner in unused)

    def idle(self) -> list[Runner]:
        """Runners no pair is using: those started ahead (still importing, perhaps), spares, and the
        baseline's extra ones; stopped while anything is timed (a pair's runners are resumed when it is timed)."""
        return [*self._ahead.values(), *(r for spares in self._spares.values() for r in spares),
                *self._profilers.values(), *self.extra]

    # -- the baseline ---------------------------------------------------------------------------
    def start_baselines(self, pairs: int, profiler: bool = False) -> None:
        """Start the baseline's runners the first candidate will likely need, to load during its verification,
        and with ``profiler`` the one the baseline is profiled in at the end, where that is one of its own."""
        if self.first is None:
            self.first = self.start(self.baseline_spec)
        while len(self.extra) < pairs - 1:
            self.extra.append(self.start(self.baseline_spec))
        env = profiler_env(self.plan.options.device)
        if profiler and env is not None and self.baseline_spec not in self._profilers:
            self._profilers[self.baseline_spec] = self.start(self.baseline_spec, env)

    def baseline(self) -> Runner:
        """The baseline's first runner, started on first use (a usage error if the baseline cannot be loaded)."""
        if self.first is not None and not self.first.alive():
            if self.first.threads is None:  # it never said it loaded: an import that failed is the user's to fix
                try:
                    self.first.ready()
                except LoadFailed as exc:
                    self.first = None
                    raise UsageError(f"--baseline {self.plan.baseline_spec}: {exc}") from None
                except RunnerError:
                    pass  # killed before it could say: as any other death
            self.died(self.first)
        if self.first is None:
            self.first = self.start(self.baseline_spec)
        if self.first.threads is None:
            self.progress("step", name=f"baseline {self.plan.baseline_spec}: load it in its runner")
            try:
                self.first.ready()
            except (LoadFailed, RunnerError) as exc:
                self.first = None
                raise UsageError(f"--baseline {self.plan.baseline_spec}: {exc}") from None
            if self.first.load_state_changes:
                raise UsageError(f"--baseline {self.plan.baseline_spec}: changed process state when imported: "
                                 + "; ".join(self.first.load_state_changes))
            self._loaded_profiler(self.baseline_spec)
        self.first.start_job()
        return _placed(self.first)

    def _loaded_profiler(self, spec: str) -> None:
        """Wait for ``spec``'s profiler started ahead to finish importing (it had the first verification to
        do it), so that it is not stopped mid-import, holding what an import holds, until it is used; one
        that fails to load is closed (the profile starts a new one)."""
        profiler = self._profilers.get(spec)
        try:
            if profiler is not None:
                profiler.ready()
        except (LoadFailed, RunnerError):
            self._profilers.pop(spec).close()

    def extra_baseline(self, index: int) -> Runner:
        """The baseline's runner for extra pair ``index`` (0 for the second pair), started on first need; it
        keeps its heap and imports from candidate to candidate, as the first one does."""
        while len(self.extra) <= index:
            self.extra.append(self.start(self.baseline_spec))
        if self.extra[index].threads is not None and not self.extra[index].alive():
            self.died(self.extra.pop(index))
        if self.extra[index].load_state_changes:
            self.extra[index].close()
            self.extra[index] = self.start(self.baseline_spec)
        self.extra[index].start_job()
        return _placed(self.extra[index])

    def died(self, runner: Runner) -> None:
        """A baseline runner found dead between requests: it was idle, so something else killed it, and the
        candidate being judged is the one that ran meanwhile.  Never restarted quietly: ``RunnerError`` for
        that candidate, naming it (its replacements start from the run's snapshot on first need)."""
        runner.close()
        code = runner.process.returncode
        self.retire(self.baseline_spec)
        raise RunnerError(f"died while idle ({death(code)}) while this candidate was judged; the judge "
                          "restarts it for the next candidate", self.baseline_spec)

    def retire(self, spec: str) -> None:
        """After a failure in the baseline's runners (``spec`` is the baseline's), or one that names no runner:
        close them, so the next candidate is timed against fresh ones rather than a baseline process left
        in a changed state (they start again on first need)."""
        if spec and spec != self.baseline_spec:
            return
        for runner in self.extra:
            runner.close()
        self.extra = []
        if spec and self.first is not None:
            self.first.close()
            self.first = None

    @property
    def threads(self) -> int | None:
        """The torch threads the baseline's runner used (what the report says the timing ran with)."""
        return self.first.threads if self.first is not None else None

    def close(self) -> None:
        for runner in (self.first, *self._ahead.values(), *self.extra):
            if runner is not None:
                runner.close()
        for spec in {*self._spares, *self._profilers}:
            self.drop_spares(spec)
        self.first, self.extra, self._ahead = None, [], {}


def profiler_env(device: str) -> dict[str, str] | None:
    """The environment of a runner of its own that a profile on ``device`` needs (None: none needed, the
    candidate's runner serves): on CUDA launches that block, so each line's time includes its kernels."""
    return {"CUDA_LAUNCH_BLOCKING": "1"} if device == "cuda" else None


def _placed(runner: Runner) -> Runner:
    """``runner``, moved from the CPU it imported on to where runners work (``process.place``)."""
    place(runner)
    return runner
