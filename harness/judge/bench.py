"""Timing: a candidate against the baseline, each in its own runner, in interleaved rounds, until the
medians are known well.  Runs in the judge: it decides how many calls a round has, which runner goes
when, and does all the statistics; each runner times its own calls (``clocks``) and only reports seconds.

Per size: each runner builds the target's input and warms up on it until three consecutive calls agree;
the judge checks that both were given the same input.  Every timed call then runs on an input with fresh
content derived from it (``fresh``: built before the round, outside the timed region), so no function
times its own cache or a memo of past answers; in each round one of the candidate's timed calls, chosen
by the judge and told only to the baseline's runner, is checked against the baseline's output for the
same input (``_check_round``; the oracle decides when they differ), and a timing faster than the judge's own copy of the bytes is refused
(``_check_physics``).  On the CPU no process keeps one memory layout: each round shifts the heap before
its inputs are built (``worker``), and sizes beyond the cache are built by both runners at once
(``_prepare``).  Then rounds alternate baseline/candidate (ABBA
order, so drift and order effects fall on both), one runner at a time with the other's processes
stopped — a sequential test: at checkpoints (after ``min_rounds``, then every quarter more) the speedup's
interval is read against the noise floor (``stats.decide``), and rounds go on until it is decisive
(faster, slower, or inside the floor) with both medians' relative standard error under the target, or the
budget is spent (then the verdict is "inconclusive" unless the last interval decided; ``converged`` says
which).  Meanwhile ``noise.CpuWatch`` measures how much CPU other processes took.  The pipeline times a size
in ``processes`` pairs of runners and in more while ``another_pair`` says one pair's verdict cannot stand
alone or the pairs disagree; ``combine`` makes them one timing, by majority.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import random
import time
from typing import Any, Callable, Protocol

from harness.core import machine, stats
from harness.core.config import PRECISION_ROUNDS, BenchConfig
from harness.core.result import SizeTiming
from harness.core.target import Case, Target
from harness.judge import noise
from harness.judge.pairs import PairVoting


def cpu_cache_bytes(device: str, config: BenchConfig | None = None) -> int | None:
    """The last-level cache that decides how inputs are built and how far one pair is trusted: the CPU's,
    on the CPU (as the run found it, ``machine.effective_cache``); None on another device, or where it cannot
    be read."""
    if device != "cpu":
        return None
    return (config.cache_bytes if config is not None else None) or machine.last_level_cache_bytes()


ROUND_KEYS = 1 << 40  # a round's inputs are named by a number drawn from this many (``compare``)



class Timed(Protocol):
    """A function that can be timed: a runner (``sandbox.Runner``) or, in-process, a ``worker.Worker``."""

    def prepare(self, size: Case, move_inputs: bool = False, write_allowance_s: float = 0.0) -> dict: ...
    def round(self, n: int, start: int, first: int = 0) -> float: ...
    def release(self, foreign_cpu: float | None = None) -> None: ...
    def time_case(self, case: Case) -> float: ...
    def suspend(self) -> None: ...
    def timed_output(self, index: int, digest: bool = False) -> Any: ...
    def output_for(self, start: int, index: int, digest: bool = False) -> Any: ...


class InputsDiffer(Exception):
    """The two runners built different inputs for one size (a runner's process was altered)."""


class TimingFailed(Exception):
    """A candidate whose timing shows it is not the function it was verified to be: a "fail".  ``spec``:
    whose runner it was (a wrong baseline is the run's error, not the candidate's fail)."""

    def __init__(self, reason: str, spec: str = "") -> None:
        super().__init__(reason)
        self.spec = spec


class WrongWhileTimed(TimingFailed):
    """A timed call's output differed from the oracle's for the same input."""


class ImpossibleTiming(TimingFailed):
    """A timing faster than the machine can move the bytes."""


class UnwatchedWork(Exception):
    """A runner spent far more CPU time than the baseline's placing a round's inputs (outside the round the
    judge watches): a patched runner computing its answers there."""

    def __init__(self, reason: str, spec: str = "") -> None:
        super().__init__(reason)
        self.spec = spec


# Placing a round's inputs (``worker.place``: fresh content, new memory) is the same work in both runners of a
# pair; a candidate's runner may spend this many times the baseline's per call on it (main-thread CPU time in
# ns, ``noise.main_thread_run_s``, and the judge's clock), plus 1 ms a round.  Rounds last about 5 ms
# (``BenchConfig.round_target_s``), so an allowance of whole milliseconds a round hid a slow forger's work
# whole (it had been 5 ms, judged from 10 ms).  Quiet, honest runners' median rounds read at most 0.3 of it
# (8+ rounds, every target's built-ins, this VM); in 3 rounds up to 0.84, hence the rule below
PLACING_RATIO, PLACING_ROUND_S = 4.0, 0.001
# A pair whose median round reads over that limit is timed on, to at least this many rounds, before it is
# judged: on a 2-core machine an honest runner's placing now and then costs 5-20x its usual (preempted, or
# sharing a core with its own pool threads), and two such rounds in three failed a candidate in CI
PLACING_SUSPECT_ROUNDS = 15


# A timing this many times faster than the judge's copy of the same bytes is impossible: a memory-bound
# kernel moves its bytes at most at copy speed (a read-heavy one somewhat faster, since a copy's writes
# also read their cache lines first); the attacks this catches were 100-2400x.
PHYSICS_FACTOR = 2.0
# ... judged only where the judge's copy takes this long (below, fixed per-call costs dominate it)
PHYSICS_MIN_COPY_S = {"cpu": 20e-6, "cuda": 5e-6}

# The judge's check of a timed call: (size, call key, the baseline's output, the candidate's) -> None if
# they agree, else (whose output was wrong: "candidate" or "baseline", why); see ``verify.TimedCheck``.
TimedCallCheck = Callable[[Case, int, Any, Any], "tuple[str, str] | None"]


def _value(outcome: Any) -> Any:
    """A runner answers with an ``Outcome``; an in-process worker with the value itself."""
    from harness.core.protocol import Outcome  # (torch: this module is also read where torch is not installed)

    return outcome.value if isinstance(outcome, Outcome) else outcome


class Bench(PairVoting):
    """Times candidates of one target against one baseline on one device (one pair of runners at a time;
    ``PairVoting`` decides how many pairs a size needs and makes them one timing)."""

    def __init__(self, target: Target, device: str = "cpu", config: BenchConfig = BenchConfig(),
                 copy_gbps: float | None = None, check: TimedCallCheck | None = None) -> None:
        self.target, self.device, self.config = target, device, config
        self.copy_gbps = copy_gbps
        self.check = check  # None: timed calls' outputs are not checked (unit tests of the statistics)
        self._choose = random.SystemRandom()  # which timed call is checked: not predictable from any seed
        self._copies: dict[int, float] = {}

    def compare(self, baseline: Timed, candidate: Timed, size: Case, budget_s: float | None = None) -> SizeTiming:
        """``size`` timed in one pair of runners, for at most ``budget_s`` of rounds (default the config's)."""
        cfg = self.config
        pair = (baseline, candidate)
        try:
            beyond = self._streams(self.target.case_bytes(size))
            within = self.device == "cpu" and not beyond
            prepared = self._prepare(pair, size, together=beyond, move_inputs=within,
                                     write_allowance_s=self._write_allowance(size) if within else 0.0)
            if prepared[0]["input_digest"] != prepared[1]["input_digest"]:
                raise InputsDiffer(f"its runner built other timing inputs for {size.name} than the baseline's runner")
            n = [cfg.calls_per_round(self.target.case_bytes(size), p["per_call_s"]) for p in prepared]
            rounds: tuple[list[float], list[float]] = ([], [])
            deadline = time.perf_counter() + (cfg.budget_s if budget_s is None else budget_s)
            watch = noise.CpuWatch()
            watch.start(getattr(t, "pid", None) or 0 for t in pair)
            converged, checkpoint = False, cfg.min_rounds
            for r in range(cfg.max_rounds):
                self._round(pair, size, n, r, rounds)
                done = len(rounds[0])
                if done >= checkpoint:
                    checkpoint = done + max(1, done // 4)
                    if self._decided(*rounds):
                        converged = True
                        break
                if time.perf_counter() > deadline and done >= 2:
                    break
            # too few rounds to tell a slow moment from work hidden while placing: more of them first
            reference = placing_reference(pair, n, self._choose)
            while len(rounds[0]) < PLACING_SUSPECT_ROUNDS and placing_excess(*pair, reference) is not None:
                self._round(pair, size, n, len(rounds[0]), rounds)
            foreign, steal, load = watch.share(), watch.steal(), watch.share(minimum_s=0.1)
        except BaseException:
            for timed in pair:
                with contextlib.suppress(Exception):  # the first failure is the one to report
                    timed.release()
            raise
        # the load it saw: on a loaded machine a runner's rounds are checked by the CPU time they used, not
        # by how long the judge waited for them
        baseline.release(load)
        candidate.release(load)
        check_placing(baseline, candidate, loaded=noise.Watched(load).loaded, reference=reference)
        timing = self._timing(size, n[1], converged, *rounds)
        self._check_physics(timing, getattr(candidate, "spec", ""))
        return dataclasses.replace(timing, foreign_cpu=noise.recorded_share(foreign, load), steal_cpu=steal)

    def _round(self, pair: tuple[Timed, Timed], size: Case, n: list[int], r: int,
               rounds: tuple[list[float], list[float]]) -> None:
        """Round ``r`` of both runners, one after the other (each first in turn), the other stopped."""
        # the candidate's call to check, chosen now and told only to the baseline's runner, whose round
        # starts at it (so its output is at hand, not an untimed call more of a slow baseline)
        checked = self._choose.randrange(n[1]) if self.check is not None else 0
        # the round's inputs are named by a number drawn now, not by its index: no runner can build them, or
        # compute their answers, before the judge asks for the round
        start = self._choose.randrange(1, ROUND_KEYS)
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            pair[1 - i].suspend()
            rounds[i].append(pair[i].round(n[i], start, checked) if i == 0 else pair[i].round(n[i], start))
        if self.check is not None:
            self._check_round(pair, size, r, start, n[1], checked)

    def _check_round(self, pair: tuple[Timed, Timed], size: Case, round_index: int, start: int, calls: int,
                     index: int) -> None:
        """Timed call ``index`` of the candidate's round against the baseline's output for the same input
        (``check`` decides, and rebuilds the input to ask the oracle when they differ).  The judge chose
        ``index`` at random (``random.SystemRandom``) and sent it only to the baseline's runner, which the
        candidate's cannot see (``isolation``), so the function cannot know which of its calls is checked."""
        if pair[1].timed_output(index, digest=True) == pair[0].output_for(start, index, digest=True):
            return  # the same bytes: the check needs nothing more
        got = _value(pair[1].timed_output(index))
        reference = _value(pair[0].output_for(start, index))
        assert self.check is not None
        from harness.runner.fresh import call_key

        wrong = self.check(size, call_key(start, index), reference, got)
        if wrong is not None:
            whose, reason = wrong
            spec = getattr(pair[0] if whose == "baseline" else pair[1], "spec", "")
            raise WrongWhileTimed(f"was wrong while timed at {size.name} (round {round_index + 1}, call "
                                  f"{index + 1} of {calls}): {reason}", spec)

    def _check_physics(self, timing: SizeTiming, spec: str) -> None:
        """A candidate's median time that moves its bytes more than ``PHYSICS_FACTOR`` times faster than the
        judge's own copy of as many bytes (on this device, at this footprint) cannot be real: a forged time
        or a call that skipped its work.  Only where that copy takes long enough to be measured rather than
        dominated by call overhead (``PHYSICS_MIN_COPY_S``)."""
        for attempt in range(3):  # a copy preempted on a loaded machine reads slow: measured again before failing
            copy_s = self._copy_seconds(timing.bytes_moved, again=attempt > 0)
            if copy_s < PHYSICS_MIN_COPY_S.get(self.device, 20e-6):
                return
            copy_gbps = max(timing.bytes_moved / copy_s / 1e9, self.copy_gbps or 0.0)
            if timing.gbps <= PHYSICS_FACTOR * copy_gbps:
                return
        raise ImpossibleTiming(f"reported an impossible time at {timing.size}: {timing.gbps:.3g} GB/s, more than "
                               f"{PHYSICS_FACTOR:g}x the judge's own copy of those {timing.bytes_moved} bytes "
                               f"({copy_gbps:.3g} GB/s)", spec)

    def _copy_seconds(self, nbytes: int, again: bool = False) -> float:
        """The judge's best copy of ``nbytes`` bytes moved (half read, half written), measured once per size
        (``again``: measured once more, keeping the best)."""
        if nbytes not in self._copies or again:
            from harness.runner.clocks import copy_seconds

            self._copies[nbytes] = min(self._copies.get(nbytes, math.inf), copy_seconds(self.device, nbytes // 2, 20))
        return self._copies[nbytes]

    def _streams(self, bytes_moved: int) -> bool:
        """A CPU call that moves more than the last-level cache holds (each round streams DRAM)."""
        cache = cpu_cache_bytes(self.device, self.config)
        return cache is not None and bytes_moved > cache

    def _write_allowance(self, size: Case) -> float:
        """Seconds per call a runner may spend writing a call's input just before it, untimed but inside the
        round the judge watches (``worker.place``, within the cache): four of the judge's own copies of the
        size's bytes and a fixed 0.2 ms for the Python around them, for the round-time cross-check
        (``sandbox.Runner.round``)."""
        return 2e-4 + 4 * self._copy_seconds(self.target.case_bytes(size))

    @staticmethod
    def _prepare(pair: tuple[Timed, Timed], size: Case, together: bool = False, move_inputs: bool = False,
                 write_allowance_s: float = 0.0) -> list[dict]:
        """Each runner builds its inputs and warms up alone, the other stopped; ``together`` (sizes beyond the
        last-level cache), both first build fresh inputs at the same time, without warming up.  Measured
        on the 2-core CI machine (benchmarks/NOTES.md, "Timing that decides"): beyond the cache, the runner
        that allocated last measured 2-4% faster at 65,536 tokens, whichever function it held, and building
        together removed that; within it, building together made prod-4096 A-vs-A read "faster" and a 10%
        slowdown "no significant difference", so small sizes keep building one after the other, and instead
        each of their rounds runs on inputs moved to fresh memory (``move_inputs``, ``worker.moved``)."""
        if together and all(hasattr(t, "prepare_begin") for t in pair):
            for timed in pair:
                timed.prepare_begin(size, fresh=True, warm=False)
            for timed in pair:
                timed.prepare_end()
        prepared = []  # then each warms up alone (on the inputs it built), for a per-call time of its own
        for timed, other in (pair, pair[::-1]):
            other.suspend()
            prepared.append(timed.prepare(size, move_inputs=move_inputs, write_allowance_s=write_allowance_s))
        return prepared

    def _decided(self, base_rounds: list[float], cand_rounds: list[float]) -> bool:
        """A decisive interval, backed by medians within the RSE target or by ``PRECISION_ROUNDS`` times the
        minimum rounds (a fast function's jittery rounds may never reach the target; a decisive interval over
        that many rounds is enough)."""
        precise = (len(base_rounds) >= PRECISION_ROUNDS * self.config.min_rounds
                   or max(stats.relative_stderr(base_rounds), stats.relative_stderr(cand_rounds)) < self.config.target_rse)
        if not precise:  # (the bootstrap is the costly part: not taken where it cannot decide)
            return False
        ci = stats.bootstrap_median_ci(stats.paired_ratios(base_rounds, cand_rounds))
        return stats.decide(ci, self.config.noise_floor) in stats.DECISIVE

    def best_of(self, baseline: Timed, candidate: Timed, case: Case, repeats: int = 5) -> tuple[float, float]:
        """Best single-call time of each on ``case``, interleaved.  A call that raises is timed up to its
        raise (an error-parity case costs the precondition check)."""
        best = [math.inf, math.inf]
        pair = (baseline, candidate)
        for _ in range(repeats):  # each repeat on new data of the case's shape, from a seed drawn now: none runs
            # on an input it has seen (or could have computed the answer for) before
            again = Case(case.name, case.family, case.params, self._choose.randrange(1, 1 << 31))
            for i in (0, 1):
                pair[1 - i].suspend()
                best[i] = min(best[i], pair[i].time_case(again))
        return best[0], best[1]

    def _timing(self, size: Case, calls_per_round: int, converged: bool, base_rounds: list[float],
                cand_rounds: list[float]) -> SizeTiming:
        ci = stats.bootstrap_median_ci(stats.paired_ratios(base_rounds, cand_rounds))
        nbytes = self.target.case_bytes(size)
        return SizeTiming(size=size.name, input=self.target.describe(size), bytes_moved=nbytes,
                          family=self.target.size_family(size),
                          calls_per_round=calls_per_round, converged=converged,
                          **self._measured(nbytes, base_rounds, cand_rounds, ci))

    def _measured(self, nbytes: int, base_rounds: list[float], cand_rounds: list[float],
                  ci: tuple[float, float]) -> dict:
        """The fields of a ``SizeTiming`` that follow from its rounds and its speedup interval: the medians,
        the paired speedup, the verdict and its words, GB/s."""
        ratios = stats.paired_ratios(base_rounds, cand_rounds)
        verdict = stats.decide(ci, self.config.noise_floor)
        cand = stats.summarize(cand_rounds)
        gbps = nbytes / cand.median_s / 1e9
        return dict(baseline=stats.summarize(base_rounds), candidate=cand, speedup=stats.median(ratios), speedup_ci=ci,
                    verdict=verdict, label=stats.label(verdict, stats.median(ratios), ci, self.config.noise_floor),
                    gbps=gbps, pct_copy_bandwidth=100 * gbps / self.copy_gbps if self.copy_gbps else None,
                    baseline_rounds_s=tuple(base_rounds), candidate_rounds_s=tuple(cand_rounds))


def check_placing(baseline: Timed, candidate: Timed, loaded: bool = False, reference: list | None = None) -> None:
    """``UnwatchedWork`` where ``placing_excess`` finds one, unless other processes took the CPUs
    (``loaded``; the run is flagged noisy): there a parallel op's main thread spins out time slices waiting
    for preempted workers, and honest runners' median rounds read up to 2x the allowance."""
    excess = None if loaded else placing_excess(baseline, candidate, reference)
    if excess is not None:
        raise UnwatchedWork(excess, getattr(candidate, "spec", ""))


def placing_reference(pair: tuple[Timed, Timed], n: list[int], choose: random.Random) -> list | None:
    """Where the candidate's rounds have fewer calls than the baseline's and its placing reads over the
    allowance, the baseline's runner placing as many calls as the candidate's (5 times, with no round):
    a round's placing has a fixed part (the heap shift, the request) that the baseline's cost per call
    spreads thin over its many calls, so a slower candidate's few calls read over (the gate's planted
    30x slowdown did, in its 1-2 calls a round).  None otherwise."""
    probe = getattr(pair[0], "place_only", None)
    if probe is None or n[1] >= n[0] or placing_excess(*pair) is None:
        return None
    pair[1].suspend()
    return [probe(n[1], choose.randrange(1, ROUND_KEYS)) for _ in range(5)]


def placing_excess(baseline: Timed, candidate: Timed, reference: list | None = None) -> str | None:
    """What the candidate's runner, in its median round, spent placing the round's inputs beyond
    ``PLACING_RATIO`` times the baseline's per call (its median round's, or, given, the median of
    ``reference``: the baseline's runner placing as many calls as the candidate's) for as many calls, plus
    ``PLACING_ROUND_S``: in CPU time of its main thread, and by the judge's clock (work in other threads
    while the main one waits); None within that (or where placing was not measured).  The round's inputs
    are named only as it is placed (``compare``), so a runner that computes their answers ahead, to time an
    empty round, can do so only there, and must in every round it times short."""
    base, cand = (getattr(t, "placing", lambda: None)() for t in (baseline, candidate))
    if not base or not cand:
        return None
    if reference and all(r[0] is not None for r in reference):
        base = reference
    calls = statistics.median(r[2] for r in cand)
    for measure, what in ((0, "CPU time"), (1, "time")):
        per_call = statistics.median(r[measure] / r[2] for r in base)
        spent = statistics.median(r[measure] for r in cand)
        if spent > PLACING_RATIO * per_call * calls + PLACING_ROUND_S:
            needed = per_call * calls
            return (f"spent {spent:.3g} s of {what} a round placing its rounds' inputs, where the baseline's "
                    f"runner needed {f'{needed:.3g} s' if needed >= 0.001 else 'under 1 ms'} for as many calls "
                    "(work done outside the timed rounds)")
    return None
