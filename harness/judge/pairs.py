"""One size timed in several pairs of runners: when one more pair is needed, and how the pairs vote on one
verdict.  Runs in the judge, as part of ``bench.Bench`` (which provides ``config``, ``_streams`` and
``_measured``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.core import stats
from harness.core.config import BenchConfig
from harness.core.result import SizeTiming
from harness.judge.noise import Watched


DISTURBED = 2.0  # a pair whose baseline (or candidate) median is this many times its fastest pair's


class PairVoting:
    config: BenchConfig

    def _streams(self, bytes_moved: int) -> bool:
        raise NotImplementedError

    def _measured(self, nbytes: int, base_rounds: list[float], cand_rounds: list[float],
                  ci: tuple[float, float]) -> dict[str, Any]:
        raise NotImplementedError

    def combine(self, timings: list[SizeTiming]) -> SizeTiming:
        """One size timed in several runner pairs, as one timing.  A process keeps things no round can
        resample (where its code and data landed, its hash seed), so a pair's interval does not cover how
        another pair would read — pyperf spreads its runs over many processes for this reason.  Measured
        (benchmarks/NOTES.md): on an H200 at a launch-bound size, A-vs-A pairs off by up to 8.5% with narrow
        intervals; on this 2-core CPU, about one pair in a hundred off by 6-17%.  So the pairs vote: the
        verdict is the class ("faster", "slower", inside the floor) more than half of them decided on, its
        interval spans those pairs' intervals and its medians pool their rounds; a pair outvoted is kept in
        ``pair_speedups``/``pair_verdicts`` for the report to show.  With no majority the interval spans
        every pair's, which crosses a floor boundary: "inconclusive".

        A pair whose baseline (or candidate) ran ``DISTURBED`` times slower than in the fastest pair timed the
        same function on the same inputs as the others: it was disturbed (descheduled, starved of a CPU it
        was pinned to), and it votes for nothing — on a busy machine such pairs once made the oracle read
        69x "faster" than itself.  Dropping them can only remove a slowdown of one side, never make one."""
        if len(timings) == 1:
            return timings[0]
        disturbed = self._disturbed(timings)
        voters = [t for i, t in enumerate(timings) if i not in disturbed] or timings
        agreeing = self._majority(voters) or voters
        base = [r for t in agreeing for r in t.baseline_rounds_s]
        cand = [r for t in agreeing for r in t.candidate_rounds_s]
        ci = (min(t.speedup_ci[0] for t in agreeing), max(t.speedup_ci[1] for t in agreeing))
        measured = self._measured(agreeing[0].bytes_moved, base, cand, ci)
        shares = lambda field: [getattr(t, field) for t in timings if getattr(t, field) is not None]  # noqa: E731
        return dataclasses.replace(
            agreeing[0], **measured,
            converged=all(t.converged for t in agreeing) and measured["verdict"] in stats.DECISIVE,
            foreign_cpu=max(shares("foreign_cpu"), default=None), steal_cpu=max(shares("steal_cpu"), default=None),
            pair_speedups=tuple(t.speedup for t in timings),
            pair_verdicts=tuple(stats.INCONCLUSIVE if i in disturbed else t.verdict for i, t in enumerate(timings)))

    @staticmethod
    def _disturbed(timings: list[SizeTiming]) -> set[int]:
        """The pairs whose baseline or candidate median is ``DISTURBED`` times that side's fastest pair's."""
        fastest = (min(t.baseline.median_s for t in timings), min(t.candidate.median_s for t in timings))
        return {i for i, t in enumerate(timings)
                if t.baseline.median_s > DISTURBED * fastest[0] or t.candidate.median_s > DISTURBED * fastest[1]}

    @staticmethod
    def _votes(timings: list[SizeTiming]) -> dict[str, list[SizeTiming]]:
        """The pairs by the class of their verdict (``stats.verdict_class``); an inconclusive pair votes for
        nothing."""
        votes: dict[str, list[SizeTiming]] = {}
        for t in timings:
            if t.verdict in stats.DECISIVE:
                votes.setdefault(stats.verdict_class(t.verdict), []).append(t)
        return votes

    def _majority(self, timings: list[SizeTiming]) -> list[SizeTiming]:
        """The pairs of the class more than half of all pairs decided on; empty if none has that many."""
        return next((ts for ts in self._votes(timings).values() if 2 * len(ts) > len(timings)), [])

    def stands_alone(self, timing: SizeTiming) -> bool:
        """A single pair's verdict that needs no second pair: "faster" or "slower" by more than
        ``confirm_margin`` beyond the floor (an interval from 1.05 * 1.10 up, or from 0.95 / 1.10 down, by
        default), or, at a CPU size beyond the last-level cache, "no significant difference".  On this CPU
        about one pair of runners in fifty read 6-17% off on a quiet machine at sizes the cache holds, and
        such a pair can make a 10%-slower function read "no significant difference"; beyond the cache the
        worst pair seen was 5% off, and a 10%-slower function would need a pair some 10% off to read
        "no significant difference" rather than "within" or "inconclusive" (benchmarks/NOTES.md).  Every
        other verdict of one pair is timed in a second pair (``another_pair``).  ``confirm_margin`` 0
        trusts every pair."""
        floor, margin = self.config.noise_floor, self.config.confirm_margin
        low, high = timing.speedup_ci
        return (margin <= 0 or timing.verdict == stats.FASTER and low > (1 + floor) * (1 + margin)
                or timing.verdict == stats.SLOWER and high < (1 - floor) / (1 + margin)
                or timing.verdict == stats.SAME and self._streams(timing.bytes_moved))

    def overwhelming(self, timing: SizeTiming) -> bool:
        """A first pair's verdict no other pair could overturn: "faster" with its whole interval beyond
        ``1 + alone_beyond`` (1.5x by default), or "slower" under its inverse.  Such a size is timed in that
        pair alone, however many ``processes`` ask for (on CUDA the fused quantizer's 20-40x spent 2-4 s a
        candidate in two more pairs of runners, loaded and spot-checked for it)."""
        beyond = self.config.alone_beyond
        low, high = timing.speedup_ci
        # only on a quiet machine: beside busy processes one pair read amax_vectorized's 1.2x beyond 1.5x
        quiet = not Watched(timing.foreign_cpu, timing.steal_cpu).loaded
        return beyond > 0 and quiet and (timing.verdict == stats.FASTER and low > 1 + beyond
                               or timing.verdict == stats.SLOWER and high < 1 / (1 + beyond))

    def another_pair(self, timings: list[SizeTiming]) -> bool:
        """Whether the pairs timed so far at one size should be joined by one more: a single pair whose
        verdict does not stand alone, or pairs with no majority that one more pair could still give one (two
        that disagree, one of them decisive: a third decides).  At most ``BenchConfig.most_pairs``; each
        pair that joins has half the budget (``pair_budget``)."""
        if len(timings) == 1:
            return self.config.processes == 1 and not self.stands_alone(timings[0])
        if self._majority(timings) or len(timings) >= self.config.most_pairs:
            return False
        most = max(map(len, self._votes(timings).values()), default=0)
        return 2 * (most + 1) > len(timings) + 1

    def pair_budget(self, index: int) -> float:
        """The budget of rounds of pair ``index`` (0 first) at one size: ``budget_s`` for each pair
        ``processes`` asks for, half of it for a pair that joins to settle a verdict.  A size's worst case is
        then 6 + 3 + 3 s by default, not 18: three pairs straddling the floor for 6 s each made a default
        ``harness run`` take 60 s."""
        return self.config.budget_s if index < self.config.processes else self.config.budget_s / 2
