"""What verification found, as frozen data in the one JSON schema (``result`` holds the rest of a run):
counts per family of cases, the failures kept, and the verdict's reason in words.  Pure data and the
functions of it every renderer shares; built in the judge (``judge.verify``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FailureKind = Literal["mismatch", "refusal", "error", "state"]  # an enumerated field: all a result file may hold


@dataclass(frozen=True)
class FamilyCount:
    family: str
    checked: int
    failed: int


@dataclass(frozen=True)
class CaseFailure:
    case: str
    family: str
    params: dict
    seed: int
    input: str  # one-line description of the input
    reason: str  # one-line diagnosis (segment counts, exception, ...)
    kind: FailureKind  # "mismatch" (a wrong answer), "refusal" (raised where the oracle returned), "error" (returned
    # something that is no output) or "state" (changed its process, or built other inputs)
    differences: tuple[str, ...]  # the first located differences, decoded
    test: str  # a ready-to-paste pytest test reproducing it (renderers make it anew from the fields above)


@dataclass(frozen=True)
class Verification:
    policy: str
    device: str
    seed: int
    cases: int
    failed: int
    families: tuple[FamilyCount, ...]
    failures: tuple[CaseFailure, ...]
    pattern: str | None  # e.g. "only where dtype in {bfloat16, float16}"
    notes: tuple[str, ...] = ()  # facts worth knowing that are not failures (e.g. about the oracle itself)
    domain: str = ""  # the --where text of the cases it was judged on ("": everything the oracle accepts)
    excluded: int = 0  # named cases (and their twins) left out as outside the domain
    excluded_text: str = ""  # what those were, by clause, e.g. "dtype float16, float32; d 128, 192"
    refused: int = 0  # cases it raised on where the oracle returned (counted among ``failed``)
    refusal_errors: dict = field(default_factory=dict)  # error type -> refusals
    suggested_where: str | None = None  # a --where keeping every case it accepted and none it refused
    refused_text: str = ""  # what the refused cases had that the accepted ones did not, by param
    accepted: int | None = None  # cases where the oracle returned and so did it, right or wrong (None: not counted)

    @property
    def passed(self) -> bool:
        # no case checked, or only cases the oracle rejects (error parity), is no pass: nothing was compared
        return self.failed == 0 and self.cases > 0 and self.accepted != 0

    @property
    def broken(self) -> bool:
        """It raised on every case the oracle returns on: no output to judge at all."""
        return self.refused > 0 and self.accepted == 0 and any(f.kind == "refusal" for f in self.failures)

    @property
    def wrong(self) -> int:
        """Failures other than refusals: wrong answers, non-outputs, changed process state."""
        return self.failed - self.refused

    @property
    def property_cases(self) -> int:
        return sum(f.checked for f in self.families if f.family == "property")

    @property
    def coverage(self) -> str:
        """Which cases the verdict covers, in one line: the domain, how many cases ran in it, what it left out."""
        named = self.cases - self.property_cases
        text = (f"on its domain {self.domain}: " if self.domain else "on everything the oracle accepts: ")
        cases = lambda n, kind: f"{n} {kind} case{'s' * (n != 1)}"  # noqa: E731
        text += cases(named, "named") + (f" and {cases(self.property_cases, 'property')}" if self.property_cases else "")
        if self.excluded:
            text += f"; {self.excluded} named cases outside it not run ({self.excluded_text})"
        return text

    def notable(self, wrong: int = 5, refused: int = 2) -> list[CaseFailure]:
        """The failures worth showing first: wrong answers (the shrunk property case among them), then a few
        refusals — so refusals never hide a wrong answer."""
        return ([f for f in self.failures if f.kind != "refusal"][:wrong]
                + [f for f in self.failures if f.kind == "refusal"][:refused])

    def minimal(self) -> CaseFailure | None:
        """The case to reproduce: the shrunk property case where hypothesis found one, else the first wrong
        answer, else the first failure."""
        if not self.failures:
            return None
        shrunk = [f for f in self.failures if f.family == "property" and f.kind != "refusal"]
        return shrunk[-1] if shrunk else self.notable(1, 1)[0]

    def reason(self) -> str | None:
        """The verdict's reason in one line, refusals apart from wrong answers, e.g. "wrong on 3 of the 40
        cases it did not refuse (scales: ...); refused 71 (AssertionError) where dtype float32 — what it
        accepted fits --where "dtype=bfloat16"" (None when it passed)."""
        if self.passed:
            return None
        if self.failed == 0:
            return (f"nothing compared: of its {self.cases} cases none is one the oracle returns on (only error parity "
                    f"was checked{'; its domain ' + self.domain if self.domain else ''})")
        priority = {"state": 0, "error": 1}  # what broke the process or the output first, then wrong answers
        wrong = sorted((f for f in self.failures if f.kind != "refusal"), key=lambda f: priority.get(f.kind, 2))
        if wrong and wrong[0].kind in priority:
            return wrong[0].reason  # it changed its process or returned no output: that is the verdict
        if self.broken:
            return next(f.reason for f in self.failures if f.kind == "refusal")
        parts = []
        if self.wrong:
            first = (wrong[0].reason if wrong else "")
            parts.append((f"wrong on {self.wrong} of the {self.cases - self.refused} cases it did not refuse" if self.refused
                          else f"wrong on {self.wrong} of {self.cases} cases")
                         + (f" ({first})" if first else ""))
        if self.refused:
            errors = ", ".join(f"{name} ×{n}" if len(self.refusal_errors) > 1 else name
                               for name, n in sorted(self.refusal_errors.items(), key=lambda kv: -kv[1]))
            refusal = f"refused {self.refused} case{'s' * (self.refused != 1)} ({errors})"
            example = next((f for f in self.failures if f.kind == "refusal"), None)
            if self.refused_text:
                refusal += f" where {self.refused_text}"
            elif example is not None:
                refusal += f", e.g. {example.input}"
            if self.suggested_where:
                refusal += f" — what it accepted fits --where \"{self.suggested_where}\""
            parts.append(refusal)
        return "; ".join(parts)

    @property
    def first_failure(self) -> str | None:
        if not self.failures:
            return None
        f = self.failures[0]
        return f"{f.family} case {f.case} [{f.input}]: {f.reason}"
