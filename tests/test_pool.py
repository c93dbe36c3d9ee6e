"""The runner pool: a candidate's spares (the runners of its extra timing pairs) are started while it is
verified and taken by the pairs that join; those it did not need are closed with it."""

from harness.core.config import BenchConfig
from harness.judge.pipeline import Pipeline
from harness.judge.plan import RunOptions
from harness.judge.pool import RunnerPool


def test_extra_timing_pairs_take_the_spares_started_during_verification(monkeypatch):
    started, taken, dropped = [], [], []
    real_start, real_take, real_drop = RunnerPool.start_spares, RunnerPool.take_spare, RunnerPool.drop_spares

    def start_spares(self, spec, count, hold=None, profiler=False):
        real_start(self, spec, count, hold, profiler)
        started.append((spec, [r.pid for r in self.spares(spec)]))

    def take_spare(self, spec):
        runner = real_take(self, spec)
        taken.append((spec, runner.pid))
        return runner

    def drop_spares(self, spec):
        dropped.append((spec, len(self.spares(spec))))
        return real_drop(self, spec)

    monkeypatch.setattr(RunnerPool, "start_spares", start_spares)
    monkeypatch.setattr(RunnerPool, "take_spare", take_spare)
    monkeypatch.setattr(RunnerPool, "drop_spares", drop_spares)
    # the oracle against itself at a size inside the cache: "no significant difference" never stands alone
    spec = "candidates/slow_loop.py:slow_loop"
    run = Pipeline(RunOptions(target="quantize_k_cache", candidates=[spec], sizes=["1x32x576"], examples=3,
                              profile=False, bench=BenchConfig(budget_s=0.5, min_rounds=3))).run()
    assert run.candidates[0].verdict == "pass"
    (start_spec, spare_pids), = started  # one spare (likely pairs: 2), started before timing
    assert start_spec.endswith(spec) and len(spare_pids) == 1
    if len(run.candidates[0].timings[0].pair_speedups) >= 2:  # as on a quiet machine: a second pair
        assert taken[0] == (start_spec, spare_pids[0])  # the second pair's candidate runner is that spare
        assert dropped == [(start_spec, 0)]  # nothing left over to close
    else:  # beside busy processes one pair can decide alone: the spare was not needed, and is closed with it
        assert taken == [] and dropped == [(start_spec, 1)]


def test_a_profile_that_needs_a_runner_of_its_own_gets_one_started_during_verification(monkeypatch):
    """On CUDA a profile is taken in a runner whose launches block (``pool.profiler_env``); a candidate's
    is started with its spares, while it is verified, the baseline's with the baseline's runners, not
    inside the timing lane.  Here (a CPU) a harmless
    variable stands in for CUDA's, so the path is the one CUDA takes."""
    from harness.judge import pool as pool_module

    monkeypatch.setattr(pool_module, "profiler_env", lambda device: {"HARNESS_TEST_PROFILER": "1"})
    events = []
    real_start, real_take = RunnerPool.start, RunnerPool.take_profiler

    def start(self, spec, env=None):
        runner = real_start(self, spec, env)
        events.append(("start", spec.rsplit(":", 1)[-1], env is not None, runner.pid))
        return runner

    def take_profiler(self, spec, runner):
        profiler = real_take(self, spec, runner)
        events.append(("take", spec.rsplit(":", 1)[-1], profiler is not runner, profiler.pid))
        return profiler

    monkeypatch.setattr(RunnerPool, "start", start)
    monkeypatch.setattr(RunnerPool, "take_profiler", take_profiler)
    spec = "candidates/amax_vectorized.py:amax_vectorized"
    run = Pipeline(RunOptions(target="quantize_k_cache", candidates=[spec], sizes=["1x32x576"], examples=3,
                              profile=True, bench=BenchConfig(budget_s=0.3, min_rounds=3)),
                   progress=lambda event, **d: events.append(("step", d.get("name", "")))).run()
    result = run.candidates[0]
    assert result.verdict == "pass" and result.profile is not None and result.profile.spec == spec
    assert run.baseline_profile is not None
    profilers = [e for e in events if e[0] == "start" and e[2]]  # one each: the candidate's, the baseline's
    assert sorted(e[1] for e in profilers) == ["amax_vectorized", "quantize_k_cache"]
    first_timed = next(i for i, e in enumerate(events) if e[0] == "step" and "time @" in e[1])
    for _, name, _, pid in profilers:
        assert ("take", name, True, pid) in events  # each profile was taken in the runner started for it
        assert events.index(("start", name, True, pid)) < first_timed  # before the timing lane was taken


class _Fake:
    """A runner as the pool holds it, without a process."""

    def __init__(self, spec: str, env: dict | None) -> None:
        self.spec, self.env, self.device, self.cpus = spec, env, "cpu", None
        self.dead = self.closed = False

    def alive(self) -> bool:
        return not self.dead

    def close(self) -> int:
        self.closed = True
        return 0


def test_a_profiler_started_ahead_is_found_by_any_spelling_of_its_spec_and_replaced_if_it_died(monkeypatch):
    """The baseline's spec reaches the pool as typed (``candidates/x.py:f``) in one place and absolute in
    another: the profiler started for it is the one the profile gets.  One that died while idle is closed
    and a new one started, rather than a profile silently missing."""
    import os

    from harness.judge import pool as pool_module
    from harness.judge.plan import plan_target

    monkeypatch.setattr(pool_module, "profiler_env", lambda device: {"HARNESS_TEST_PROFILER": "1"})
    started: list[_Fake] = []
    monkeypatch.setattr(RunnerPool, "start", lambda self, spec, env=None: started.append(_Fake(spec, env)) or started[-1])
    typed = "candidates/fused.py:fused"
    pool = RunnerPool(plan_target(RunOptions(target="quantize_k_cache", candidates=[typed], examples=3)))
    pool.start_spares(typed, 1, profiler=True)
    spare, profiler = started
    assert profiler.env is not None and spare.env is None and pool.spares(typed) == [spare, profiler]
    assert pool.take_profiler(os.path.abspath("candidates/fused.py") + ":fused", None) is profiler
    pool.start_spares(typed, 1, profiler=True)
    died = started[-1]
    died.dead = True
    fresh = pool.take_profiler(typed, None)
    assert fresh is started[-1] and fresh is not died and died.closed
    assert pool.drop_spares(typed) == 0 and spare.closed  # the spare not taken is closed with the candidate
