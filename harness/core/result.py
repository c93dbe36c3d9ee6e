"""The one JSON schema: frozen dataclasses for everything a run produces (``schema`` reads and writes them).

Every renderer is a pure function of a ``RunResult``; ``load`` rebuilds one from its JSON exactly (floats
round-trip through ``repr``), so a report re-rendered from the JSON is byte-for-byte the original.  A
result file is untrusted input (a PR bot renders what a workflow uploaded): loading checks every field's
type against the dataclasses (an enumerated field, a ``Literal``, must hold one of its values) and every
string for what no renderer should meet (a control character other than newline and tab, a lone surrogate),
and refuses anything else with a one-line ``SchemaError`` naming the field.  The other way round, a
``RunResult`` never holds such characters: building one replaces them with ``?`` (``clean``), so that what a
candidate's messages carry cannot make the harness write a file it would refuse.  Writes are atomic
(temporary file, then rename) with the mode a new file would get (0644 under the usual umask), so an
interrupted run never leaves half a report.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from harness.core.text import SchemaError, clean, shown
from harness.core.verification import CaseFailure, FailureKind, FamilyCount, Verification  # noqa: F401  (in the schema)

SCHEMA_VERSION = 2  # 2: noise as records (``Noise``), stages; a version-1 file still loads (``schema``)
READABLE_SCHEMAS = (1, 2)
MAX_PAIRS = 64  # runner pairs one size can be timed in (--processes is at most 16): more is not a harness result


class Verdict(StrEnum):
    """A candidate's verdict: ``pass`` (verified; timed if asked), ``fail`` (not the oracle's function:
    wrong, refused, changed process state, or wrong while timed), ``error`` (it or its runner broke, or the
    baseline did), ``untested`` (timed only)."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    UNTESTED = "untested"


class SpeedVerdict(StrEnum):
    """What one size's timing decided (``stats.decide``)."""

    FASTER = "faster"
    SLOWER = "slower"
    SAME = "no significant difference"  # the interval straddles 1.00
    WITHIN = "within the noise floor"  # significant, but smaller than the floor
    INCONCLUSIVE = "inconclusive"  # the interval crosses a floor boundary


# The enumerated fields (with the enums above): what the harness writes, and so all a result file may hold.
KernelClock = Literal["device", "cpu"]
NoiseKind = Literal["load", "baseline", "advice", "other"]
EXCEPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")  # AssertionError, torch.OutOfMemoryError


@dataclass(frozen=True)
class Summary:
    """Statistics of per-call times (seconds) over the timed rounds of one function at one size."""

    rounds: int
    min_s: float
    median_s: float
    mean_s: float
    iqr_s: float
    stderr_s: float  # standard error of the median
    rse: float  # stderr_s / median_s


@dataclass(frozen=True)
class SizeTiming:
    size: str
    input: str
    bytes_moved: int
    calls_per_round: int
    converged: bool  # the verdict was decided (and the medians' RSE target met) within the budget
    baseline: Summary
    candidate: Summary
    speedup: float  # median over paired rounds of baseline time / candidate time
    speedup_ci: tuple[float, float]  # 95% bootstrap interval of that median
    verdict: SpeedVerdict  # stats.decide
    gbps: float  # bytes_moved / candidate median
    pct_copy_bandwidth: float | None
    baseline_rounds_s: tuple[float, ...]
    candidate_rounds_s: tuple[float, ...]
    label: str = ""  # the verdict in the words every renderer shows (stats.label), e.g. "within ±5% (0.97x)"
    foreign_cpu: float | None = None  # share of all CPUs other processes used while this size was timed (>= 0.5 s;
    # a shorter size records its reading only where it shows load: noise.recorded_share)
    steal_cpu: float | None = None  # of which the share a virtual machine's host took (steal time)
    # timed in several runner pairs (Bench.combine): each pair's own speedup and verdict, in the order timed;
    # the fields above then pool the rounds of the pairs whose verdict won the vote, and the interval spans
    # their intervals (every pair's, when no verdict won)
    pair_speedups: tuple[float, ...] = ()
    pair_verdicts: tuple[SpeedVerdict, ...] = ()  # empty in a file from before pairs voted
    family: str = ""  # the size's shape family (``Target.size_family``): charts join only sizes of one family

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", SpeedVerdict(self.verdict))
        object.__setattr__(self, "pair_verdicts", tuple(map(SpeedVerdict, self.pair_verdicts)))
        if self.pair_verdicts and len(self.pair_verdicts) != len(self.pair_speedups):
            raise SchemaError(f"SizeTiming {self.size!r}: {len(self.pair_speedups)} pair speedups but "
                              f"{len(self.pair_verdicts)} pair verdicts")
        if len(self.pair_speedups) > MAX_PAIRS:
            raise SchemaError(f"SizeTiming {self.size!r}: {len(self.pair_speedups)} pairs of runners (at most {MAX_PAIRS})")

    @property
    def significant(self) -> bool:
        """The interval excludes 1.00 (faster, slower, or a difference smaller than the noise floor)."""
        return self.speedup_ci[0] > 1.0 or self.speedup_ci[1] < 1.0

    @property
    def shown(self) -> str:
        return self.label or self.verdict


@dataclass(frozen=True)
class LineStat:
    line: int
    hits: int
    total_s: float  # per call
    per_hit_s: float
    percent: float
    source: str
    kind: str = "other"  # the kind of work of the statement this line belongs to (profile.KINDS)


@dataclass(frozen=True)
class KernelStat:
    name: str
    calls: int
    total_s: float
    mean_s: float
    percent: float


@dataclass(frozen=True)
class Profile:
    spec: str
    function: str
    file: str
    size: str
    device: str
    timing: str  # which clock the line times are (WALL or DEVICE)
    calls: int
    total_s: float  # per call, summed over the function's lines
    lines: tuple[LineStat, ...]
    kernel_clock: KernelClock  # what the kernel table's times are
    kernels: tuple[KernelStat, ...]

    def hottest(self) -> LineStat | None:
        return max(self.lines, key=lambda s: s.total_s, default=None)


@dataclass(frozen=True)
class CaseTiming:
    """One regression case timed for the report's annotated tests: per-call medians of two rounds on fresh
    inputs, checked as the size ladder's are, or, for an error-parity case, one call up to its raise (best
    of a few, as the runners time it)."""

    case: str
    baseline_s: float  # an error-parity case times the call up to its raise
    candidate_s: float
    test: str  # its pytest test as written (renderers make it anew from the case's fields)
    family: str = ""
    params: dict = field(default_factory=dict)
    seed: int = 0
    raises: str | None = None  # the oracle's error type where the case is an error-parity case (no speedup)

    def __post_init__(self) -> None:
        if self.raises is not None and not (len(self.raises) <= 200 and EXCEPTION_NAME.fullmatch(self.raises)):
            raise SchemaError(f"raises: expected an exception's name, like AssertionError, got {shown(self.raises)}")


@dataclass(frozen=True)
class Stages:
    """Where judging one candidate's wall time went, in seconds (``--jobs``: its own worker's clock)."""

    load_s: float = 0.0  # starting its runner and importing it
    verify_s: float = 0.0  # every case, round trips included
    wait_s: float = 0.0  # waiting while other candidates were timed on its device (``--jobs``)
    time_s: float = 0.0  # the size ladder, extra runner pairs included
    cases_s: float = 0.0  # each annotated regression case timed again (checked rounds in the first pair)
    profile_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.load_s + self.verify_s + self.wait_s + self.time_s + self.cases_s + self.profile_s


@dataclass(frozen=True)
class CandidateResult:
    name: str
    spec: str
    doc: str
    verdict: Verdict
    error: str | None = None
    verification: Verification | None = None
    timings: tuple[SizeTiming, ...] = ()
    case_timings: tuple[CaseTiming, ...] = ()
    profile: Profile | None = None
    notes: tuple[str, ...] = ()  # facts about how it behaved that are not verdicts (processes left running)
    foreign_cpu: float | None = None  # share of all CPUs other processes used while it was timed (noise)
    steal_cpu: float | None = None  # of which the share a virtual machine's host took (steal time)
    judged_on: str | None = None  # "host: device" where a cluster worker judged it (``--cluster``)
    control: bool = False  # the oracle itself registered as a candidate (``RunPlan.is_control``)
    stages: Stages = Stages()  # wall seconds by stage

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    @property
    def headline(self) -> SizeTiming | None:
        """The timing at the largest size (the one the report's headline quotes)."""
        return max(self.timings, key=lambda t: t.bytes_moved) if self.timings else None


def could_lead(c: CandidateResult) -> bool:
    """A candidate a report may lead with: passed, is no control, and is significantly faster at its headline."""
    return (c.verdict == Verdict.PASS and not c.control and c.headline is not None
            and c.headline.verdict == SpeedVerdict.FASTER)


def best_candidate(candidates: "tuple[CandidateResult, ...] | list[CandidateResult]") -> CandidateResult | None:
    """The candidate a report leads with and annotates: of those that ``could_lead``, the largest speedup at
    its headline size."""
    return max(filter(could_lead, candidates), key=lambda c: c.headline.speedup, default=None)  # type: ignore[union-attr]


@dataclass(frozen=True)
class BenchSettings:
    target_rse: float
    budget_s: float
    noise_floor: float
    min_rounds: int
    warmup_max_s: float
    threads: int | None
    l2_flush: bool
    cuda_graphs: bool = False
    processes: int = 1  # runner pairs each candidate was timed in at least (a verdict needs most of them to agree)
    confirm_margin: float = 0.0  # with one pair, only a faster/slower this far beyond the floor stood alone


@dataclass(frozen=True)
class Environment:
    device: str
    device_name: str
    python: str
    torch: str
    triton: str | None
    platform: str
    threads: int
    git_commit: str | None
    harness_version: str
    command: str
    copy_gbps: float | None = None
    git_dirty: bool | None = None  # the checkout had uncommitted changes when the run started
    load_start: float | None = None  # 1-minute load average when the run started and ended
    load_end: float | None = None
    governor: str | None = None  # the CPU frequency governor, where readable
    isolation: str | None = None  # how runners were kept apart (``isolation.describe``), e.g. own PID namespaces
    cache_bytes: int | None = None  # the last-level CPU cache timing inputs were sized against (CPU runs)
    cache_source: str | None = None  # where that figure comes from (``machine.effective_cache``)


@dataclass(frozen=True)
class Noise:
    """One reason a run's timings may not be trusted (``judge.noise``): in words, and the figures behind it."""

    kind: NoiseKind  # "load": other processes took CPU while it was timed; "baseline": the baseline's medians at
    # one size disagree across candidates; "advice": what to do about the load; "other": from an older result
    text: str
    candidate: str | None = None  # whose timing it concerns ("load")
    size: str | None = None  # at which size (None: the whole timing)
    figure: float | None = None  # "load": the share of the CPUs others took; "baseline": slowest / fastest median


@dataclass(frozen=True)
class RoundTrip:
    """One pair of passing candidates, a forward target's and its inverse's, checked on the round-trip
    property over the inverse target's round-trip cases."""

    forward: str  # the forward candidate's spec
    inverse: str  # the inverse candidate's spec
    forward_target: str
    inverse_target: str
    cases: int
    failed: int
    first_failure: str | None = None  # "case name: reason" of the first case that broke the property

    @property
    def passed(self) -> bool:
        return self.cases > 0 and self.failed == 0


GateStatus = Literal["passed", "failed", "noisy", "undecided"]


@dataclass(frozen=True)
class GateCheck:
    """One candidate at one size, this run against the gate's reference (``gate``)."""

    candidate: str
    size: str
    speedup: float  # the reference's time / this run's: below 1.00x it got slower
    speedup_ci: tuple[float, float]
    verdict: SpeedVerdict  # stats.decide, with --fail-slower as the floor
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", SpeedVerdict(self.verdict))


@dataclass(frozen=True)
class Gate:
    """The regression gate's outcome: "failed" only where a check decided "slower" on a run with no noise
    flagged; a noisy run is "noisy" whatever it read, and an interval across the threshold "undecided"."""

    reference: str  # what the run was gated against, e.g. "HEAD~1 (3f2a9c1), timed side by side in this run"
    fail_slower: float
    status: GateStatus
    reason: str  # one line, the gate's verdict in words
    checks: tuple[GateCheck, ...] = ()
    skipped: tuple[str, ...] = ()  # candidates not gated, each with why (new since the reference, failed)


@dataclass(frozen=True)
class RunResult:
    target: str
    function: str
    source: str
    baseline: str
    policy: str
    created: str
    environment: Environment
    candidates: tuple[CandidateResult, ...]
    bench: BenchSettings | None = None
    baseline_profile: Profile | None = None
    checkout_changes: tuple[str, ...] = ()  # files of the project that changed during the run
    policy_text: str = ""  # what the policy accepts, in the target's words
    round_trips: tuple[RoundTrip, ...] = ()  # pairs with the target this one inverts or that inverts it
    round_trip_text: str = ""  # the round-trip property, in the inverse target's words
    noise: tuple[Noise, ...] = ()  # why the timings may not be trusted (other processes, a drifting baseline)
    chart: str | None = None  # an SVG beside the local report, linked from it (``charts``; never in a PR comment)
    gate: Gate | None = None  # run --against / --compare: this run against a reference

    @property
    def when(self) -> str:
        """When it ran, to the minute: "2026-11-25 23:48"."""
        return self.created[:16].replace("T", " ")
    schema: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            cleaned = clean(value)
            if cleaned is not value:
                object.__setattr__(self, f.name, cleaned)
