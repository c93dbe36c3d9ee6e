"""Domains: which inputs a candidate is meant for, as data.  Runs in the judge.

A real fast kernel is often specialised (one dtype, one row shape).  A *domain* says which cases it is
judged and timed on: a conjunction of clauses over a case's plain-data params, written the same way in two
places —

- by the candidate, ``@candidate(supports={"dtype": ("bfloat16",), "d": (576,)})`` or
  ``@candidate(supports="dtype=bfloat16 d=576")``, read by the judge from the source (never by running it);
- by the user, ``--where "dtype=bfloat16 d>=512"``, which focuses a whole run (every candidate, every size).

Clause syntax: ``key=v1,v2`` (one of), ``key!=v1,v2`` (none of), ``key<n``, ``key<=n``, ``key>n``,
``key>=n``.  A case without the key is outside any clause on it.  Nothing here names a target: the keys are
whatever params the target's cases carry, checked against them (``check_keys``).

The domain also restricts hypothesis: a target's strategy draws each param through ``restrict``, so property
cases are drawn inside the domain rather than filtered out of it.  And when a candidate without a declared
domain refuses cases (raises where the oracle returns), ``suggest`` finds a ``--where`` that keeps every
case it accepted and leaves out every case it refused, where one exists; ``failure_pattern`` says which
param values a candidate's failures are confined to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

OPERATORS = ("!=", "<=", ">=", "=", "<", ">")  # longest first, so "<=" is not read as "<"
_CLAUSE = re.compile(r"^([A-Za-z_]\w*)(!=|<=|>=|=|<|>)(.+)$")
_VALUE = re.compile(r"[\w.+-]+")  # a value reads back from the --where text as itself
EVERYTHING = "everything the oracle accepts"


class DomainError(ValueError):
    """A domain that cannot be read (a user mistake, reported in one line)."""


def _value(text: str) -> Any:
    """A clause value: an int or a float where it reads as one, else the text."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _same(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b
    return str(a) == str(b)


def _show(value: Any) -> str:
    return str(value)


@dataclass(frozen=True)
class Clause:
    key: str
    op: str
    values: tuple[Any, ...]

    def admits(self, params: Mapping[str, Any]) -> bool:
        if self.key not in params:
            return False
        value = params[self.key]
        if self.op == "=":
            return any(_same(value, v) for v in self.values)
        if self.op == "!=":
            return not any(_same(value, v) for v in self.values)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        bound = self.values[0]
        return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound}[self.op]

    @property
    def text(self) -> str:
        return f"{self.key}{self.op}{','.join(_show(v) for v in self.values)}"


@dataclass(frozen=True)
class Domain:
    """A conjunction of clauses; the empty domain admits every case."""

    clauses: tuple[Clause, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.clauses)

    def admits(self, params: Mapping[str, Any]) -> bool:
        return all(c.admits(params) for c in self.clauses)

    def admits_known(self, params: Mapping[str, Any]) -> bool:
        """``admits``, ignoring clauses on keys ``params`` lacks (another target's case: a round trip's)."""
        return all(c.admits(params) for c in self.clauses if c.key in params)

    def __and__(self, other: "Domain") -> "Domain":
        return Domain(self.clauses + tuple(c for c in other.clauses if c not in self.clauses))

    @property
    def text(self) -> str:
        """The ``--where`` text of this domain ("" for the empty one)."""
        return " ".join(c.text for c in self.clauses)

    def describe(self) -> str:
        return self.text or EVERYTHING

    @property
    def keys(self) -> set[str]:
        return {c.key for c in self.clauses}

    # -- reading ----------------------------------------------------------------------------------
    @staticmethod
    def parse(text: str) -> "Domain":
        """``--where`` text, e.g. ``"dtype=bfloat16,float16 d>=512"``."""
        clauses = []
        for word in text.replace(";", " ").split():
            match = _CLAUSE.match(word)
            if not match:
                raise DomainError(f"bad clause {word!r}: expected key=value[,value...], key!=value, key<n, "
                                  "key<=n, key>n or key>=n")
            key, op, rest = match.groups()
            parts = [v for v in rest.split(",") if v != ""]
            if not parts or not all(_VALUE.fullmatch(v) for v in parts):
                raise DomainError(f"bad clause {word!r}: values are words or numbers, comma-separated")
            values = tuple(_value(v) for v in parts)
            if op not in ("=", "!=") and (len(values) != 1 or not isinstance(values[0], (int, float))):
                raise DomainError(f"bad clause {word!r}: {op} takes one number")
            clauses.append(Clause(key, op, values))
        if not clauses:
            raise DomainError("empty domain: give at least one clause, e.g. dtype=bfloat16")
        return Domain(tuple(clauses))

    @staticmethod
    def of(supports: Any) -> "Domain":
        """A ``supports=`` literal: ``--where`` text, or a mapping of key to one allowed value or several."""
        if supports is None:
            return Domain()
        if isinstance(supports, str):
            return Domain.parse(supports)
        if not isinstance(supports, Mapping) or not supports:
            raise DomainError("supports= must be a non-empty mapping of parameter to allowed values, or --where text")
        clauses = []
        for key, allowed in supports.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise DomainError(f"supports=: {key!r} is not a parameter name")
            values = tuple(allowed) if isinstance(allowed, (tuple, list, set, frozenset)) else (allowed,)
            if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                     and _VALUE.fullmatch(str(v)) for v in values):
                raise DomainError(f"supports=: {key} needs one or more values, each a word or a number")
            clauses.append(Clause(key, "=", tuple(sorted(values, key=str)) if isinstance(allowed, (set, frozenset))
                                  else values))
        return Domain(tuple(clauses))

    def check_keys(self, known: Iterable[str], where: str) -> None:
        """Every clause names a param the target's cases carry (a typo would silently exclude everything)."""
        known = set(known)
        unknown = sorted(self.keys - known)
        if unknown:
            raise DomainError(f"{where}: unknown parameter {', '.join(unknown)}; this target's cases have "
                              f"{', '.join(sorted(known))}")

    # -- hypothesis -------------------------------------------------------------------------------
    def restrict(self, key: str, strategy: Any) -> Any:
        """``strategy`` for param ``key`` drawn inside this domain: the allowed values themselves where a
        clause lists them, else the strategy filtered by the clauses on ``key`` (ranges, exclusions)."""
        from hypothesis import strategies as st

        on_key = [c for c in self.clauses if c.key == key]
        if not on_key:
            return strategy
        listed = [c for c in on_key if c.op == "="]
        if listed:
            allowed = [v for v in listed[0].values if all(c.admits({key: v}) for c in on_key)]
            return st.sampled_from(allowed) if allowed else st.nothing()
        return strategy.filter(lambda v: all(c.admits({key: v}) for c in on_key))

    # -- explaining -------------------------------------------------------------------------------
    def excluded(self, cases: Iterable[Mapping[str, Any]]) -> str:
        """What the domain left out of ``cases``, by clause: "dtype float16, float32; d 128, 192"."""
        parts = []
        for clause in self.clauses:
            values = sorted({_show(p.get(clause.key, "(none)")) for p in cases if not clause.admits(p)},
                            key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v))
            if values:
                shown = values[:6] + ([f"… ({len(values) - 6} more)"] if len(values) > 6 else [])
                parts.append(f"{clause.key} {', '.join(shown)}")
        return "; ".join(parts)


def suggest(accepted: list[Mapping[str, Any]], refused: list[Mapping[str, Any]]) -> Domain | None:
    """The fewest ``key=values`` clauses that keep every accepted case and leave out every refused one
    (greedy set cover over the params, then redundant clauses dropped), or None where no such clauses
    exist (the refusals do not follow parameter values)."""
    if not accepted or not refused:
        return None
    keys = sorted({k for p in accepted for k in p} & {k for p in refused for k in p})
    options = []
    for key in keys:
        if any(isinstance(p.get(key), (dict, list)) for p in accepted):
            continue
        allowed = []
        for p in accepted:
            if not any(_same(p.get(key), v) for v in allowed):
                allowed.append(p.get(key))
        options.append(Clause(key, "=", tuple(sorted(allowed, key=lambda v: (str(type(v)), v)))))
    chosen: list[Clause] = []
    left = list(refused)
    while left:
        best = max(options, key=lambda c: sum(not c.admits(p) for p in left), default=None)
        if best is None or not any(not best.admits(p) for p in left):
            return None
        chosen.append(best)
        options.remove(best)
        left = [p for p in left if best.admits(p)]
    for clause in list(chosen):  # drop what the others already cover
        rest = [c for c in chosen if c is not clause]
        if rest and not any(Domain(tuple(rest)).admits(p) for p in refused):
            chosen = rest
    return Domain(tuple(sorted(chosen, key=lambda c: keys.index(c.key))))


def _natural(value: str) -> tuple:
    """Numbers by value, before words: {7, 8, 32, 60, 64, 99, 100, 132}, not {100, 132, 32, ...}."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def failure_pattern(outcomes: list[tuple[Mapping[str, Any], bool]], max_clauses: int = 1) -> str | None:
    """Say which parameter values the failures are confined to, e.g.
    "only where dtype in {bfloat16, float16} (never with float32)".  A parameter is named only when some of
    its values were checked at least 3 times without a failure and those clean cases are at least a fifth
    of all cases, so that a value seen once does not pass for a pattern."""
    if all(ok for _, ok in outcomes):
        return None
    clauses = []
    for key in sorted({k for params, _ in outcomes for k in params}):
        tally: dict[str, list[int]] = {}
        for params, ok in outcomes:
            value = params.get(key)
            counts = tally.setdefault("default" if value is None else str(value), [0, 0])
            counts[0] += not ok
            counts[1] += 1
        bad = sorted((v for v, (failed, _) in tally.items() if failed), key=_natural)
        clean = sorted((v for v, (failed, total) in tally.items() if not failed and total >= 3), key=_natural)
        clean_cases = sum(tally[v][1] for v in clean)
        if clean and clean_cases >= 0.2 * len(outcomes):
            clauses.append((clean_cases, f"{key} in {{{', '.join(bad)}}} (never with {', '.join(clean)})"))
    if not clauses:
        return "across all parameter values"
    clauses.sort(key=lambda c: -c[0])
    return "only where " + " and ".join(text for _, text in clauses[:max_clauses])
