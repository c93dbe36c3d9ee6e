"""Settings: what a run and its timing are told to do, with their defaults, in one place (``BenchConfig``
for the timing engine; ``RunDefaults`` for the options argparse, ``[tool.harness]`` and ``RunOptions``
derive from).  Shared by the judge and the runners (a runner gets the judge's ``BenchConfig`` as a dict)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.core.result import BenchSettings


@dataclass(frozen=True)
class RunDefaults:
    """What an option takes when neither the command line nor the project's ``[tool.harness]`` says: the
    parser's help, ``[tool.harness]``'s fallbacks, ``RunOptions`` and ``BenchConfig`` all read these."""

    policy: str | None = None  # None: each target's first policy (what `harness list` shows first)
    timeout_s: float = 300.0  # seconds per candidate's work in its runner
    examples: int = 100  # property-based cases per candidate
    quick_examples: int = 30  # at most, with --quick
    noise_floor: float = 0.05  # faster/slower only beyond 1 +/- this
    target_rse: float = 0.03  # of each median a decided size quotes
    budget_s: float = 6.0  # seconds of rounds per candidate, size and pair of runners
    quick_budget_s: float = 3.0
    cuda_processes: int = 3  # runner pairs per size on CUDA (1 on the CPU, more only where a verdict needs it)


DEFAULTS = RunDefaults()

# A decisive interval over this many times the minimum rounds stops the size even if a median's RSE is
# still above the target: without it the 14x-faster CPU kernel's sizes ran to the budget (68.7 s a run).
PRECISION_ROUNDS = 4


@dataclass(frozen=True)
class BenchConfig:
    target_rse: float = DEFAULTS.target_rse  # of each median, for the per-size medians and GB/s the report quotes
    budget_s: float = DEFAULTS.budget_s  # at most, per candidate and size in one pair of runners, baseline rounds included
    # (a pair that joins to settle a verdict gets half: ``Bench.pair_budget``)
    noise_floor: float = DEFAULTS.noise_floor
    min_rounds: int = 8
    max_rounds: int = 5000
    warmup_max_s: float = 60.0  # compilation can take this long
    round_target_s: float = 0.005  # calls per round are chosen so a round lasts about this long
    buffer_bytes: int = 256 << 20  # at most this many bytes of fresh inputs (and outputs) per round
    threads: int | None = None
    l2_flush: bool = True
    cuda_graphs: bool = False  # replay each call from a CUDA graph: device work without launch overhead
    processes: int = 1  # runner pairs per candidate (``Bench.combine``): 1 on the CPU, 3 on CUDA by default
    # with one pair, only a "faster"/"slower" this far beyond the floor stands alone; any other verdict is timed
    # in a second pair, and a third when two disagree (``stands_alone``, ``another_pair``); 0 trusts one pair
    confirm_margin: float = 0.10
    # a first pair whose whole interval lies beyond 1 + this (or under 1 / (1 + this)) stands alone even where
    # ``processes`` asks for more pairs: no pair of runners measured was off by half as much (8.5% on an H200
    # at launch-bound sizes, 17% at worst on a 2-core CPU); 0 always times every pair
    alone_beyond: float = 0.5
    cache_bytes: int | None = None  # the CPU cache inputs are sized against, as the judge found it (``machine``)

    @property
    def most_pairs(self) -> int:
        """The most runner pairs one size can be timed in (``Bench.another_pair``): one more than
        ``processes`` where an even number of pairs can split evenly (a third after one that did not stand
        alone, or after two that disagree), none more where an odd number leaves no tie to break."""
        if self.processes == 1:
            return 3 if self.confirm_margin > 0 else 1
        return self.processes + (self.processes % 2 == 0)

    @property
    def likely_pairs(self) -> int:
        """The runner pairs most candidates will be timed in: every pair ``processes`` asks for, and with one,
        a second (any verdict but a large speedup needs one).  Their runners are started ahead: the
        baseline's while the first candidate is verified, each candidate's during its own verification."""
        return self.processes if self.most_pairs == 1 else max(self.processes, 2)

    def calls_per_round(self, case_bytes: int, per_call_s: float) -> int:
        """Calls in one round: about ``round_target_s`` of them, but no more fresh inputs than
        ``buffer_bytes`` holds (the judge decides; a runner estimates it to reserve memory at ``prepare``)."""
        most = max(1, self.buffer_bytes // max(1, case_bytes))
        return min(most, max(1, math.ceil(self.round_target_s / max(per_call_s, 1e-9))))

    def settings(self, threads: int | None) -> BenchSettings:
        """What the report says about the timing (``threads``: what the runners used)."""
        return BenchSettings(target_rse=self.target_rse, budget_s=self.budget_s, noise_floor=self.noise_floor,
                             min_rounds=self.min_rounds, warmup_max_s=self.warmup_max_s,
                             threads=threads, l2_flush=self.l2_flush, cuda_graphs=self.cuda_graphs,
                             processes=self.processes, confirm_margin=self.confirm_margin)
