"""The runner pool: a candidate's spares (the runners of its extra timing pairs) are started while it is
verified and taken by the pairs that join; those it did not need are closed with it."""

from harness.core.config import BenchConfig
from harness.judge.pipeline import Pipeline
from harness.judge.plan import RunOptions
from harness.judge.pool import RunnerPool


def test_extra_timing_pairs_take_the_spares_started_during_verification(monkeypatch):
    started, taken, dropped = [], [], []
    real_start, real_take, real_drop = RunnerPool.start_spares, RunnerPool.take_spare, RunnerPool.drop_spares

    def start_spares(self, spec, count, hold=None):
        real_start(self, spec, count, hold)
        started.append((spec, [r.pid for r in self._spares[spec]]))

    def take_spare(self, spec):
        runner = real_take(self, spec)
        taken.append((spec, runner.pid))
        return runner

    def drop_spares(self, spec):
        dropped.append((spec, len(self._spares.get(spec, []))))
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
