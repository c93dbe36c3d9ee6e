"""Comparison policies a declared target names in words: ``exact``, ``ulp(N)``, ``allclose(rtol=R, atol=A)``.

Each compares an output — a tensor, or a tuple/list of tensors and plain values — with the oracle's, element
by element, and says where they differ in the words a report prints.  Every policy asks for the same
structure, dtypes and shapes first, and for NaN, +inf and -inf at the same places (an allclose that let a
NaN pass for a number would hide the bugs these kernels have):

    exact                   the same bits (any NaN matches any NaN)
    ulp(N)                  at most N representable steps of the output's dtype apart (per dtype: float32,
                            bfloat16, float16, float8 steps are its own)
    allclose(rtol=R, atol=A)  |got - expected| <= A + R * |expected|, computed in float64

Pure functions, no I/O; runs in the judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from harness.core.target import Comparison, Difference

MAX_SHOWN = 5
_POLICY = re.compile(r"^(exact|ulp\((\d+)\)|allclose\(rtol=([0-9.eE+-]+), *atol=([0-9.eE+-]+)\))$")


@dataclass(frozen=True)
class Policy:
    text: str  # as declared, e.g. "ulp(2)"
    kind: str  # exact, ulp, allclose
    ulps: int = 0
    rtol: float = 0.0
    atol: float = 0.0

    @property
    def name(self) -> str:
        """The ``--policy`` word: the declared text without spaces."""
        return self.text.replace(" ", "")

    @property
    def describe(self) -> str:
        return {"exact": "outputs bit-identical (any NaN matches any NaN)",
                "ulp": f"every element within {self.ulps} representable step{'s' if self.ulps != 1 else ''} of "
                       "the output's dtype, NaN and infinities at the same places",
                "allclose": f"|got - expected| <= {self.atol:g} + {self.rtol:g}·|expected| (float64), NaN and "
                            "infinities at the same places"}[self.kind]


def parse(text: str) -> Policy:
    """A policy from its declared text; ValueError with the forms it takes."""
    match = _POLICY.match(text.strip())
    if not match:
        raise ValueError(f"bad comparison {text!r}: expected exact, ulp(N) or allclose(rtol=R, atol=A)")
    kind = match.group(1).split("(")[0]
    if kind == "ulp":
        return Policy(text.strip(), kind, ulps=int(match.group(2)))
    if kind == "allclose":
        rtol, atol = float(match.group(3)), float(match.group(4))
        if not (rtol >= 0 and atol >= 0):
            raise ValueError(f"bad comparison {text!r}: rtol and atol must be at least 0")
        return Policy(text.strip(), kind, rtol=rtol, atol=atol)
    return Policy("exact", "exact")


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view({1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _ordered(t: torch.Tensor) -> torch.Tensor:
    """Float bit patterns onto integers whose differences count representable steps (-0 and +0 are one)."""
    b = _bits(t).to(torch.int64)
    magnitude = b & ((1 << (8 * t.element_size() - 1)) - 1)
    return torch.where(b < 0, -magnitude, magnitude)


def _bad_elements(policy: Policy, expected: torch.Tensor, got: torch.Tensor) -> torch.Tensor:
    """A boolean mask of the elements that fail ``policy`` (same shape and dtype already checked)."""
    if not expected.dtype.is_floating_point:
        return expected != got
    e, g = expected.double(), got.double()
    nan_e, nan_g = torch.isnan(e), torch.isnan(g)
    special = nan_e | nan_g | torch.isinf(e) | torch.isinf(g)
    # NaN where the other is not, or infinities that are not the same infinity
    bad_special = special & ~(nan_e & nan_g) & ~(torch.isinf(e) & (e == g))
    if policy.kind == "exact":
        differs = _bits(expected) != _bits(got)
    elif policy.kind == "ulp":
        differs = (_ordered(expected) - _ordered(got)).abs() > policy.ulps
    else:
        differs = (g - e).abs() > policy.atol + policy.rtol * e.abs()
    return bad_special | (differs & ~special)


def _segment(policy: Policy, where: str, expected: torch.Tensor, got: torch.Tensor,
             differences: list[Difference]) -> str | None:
    """Why one tensor of the output fails, or None; located differences appended to ``differences``."""
    if not isinstance(got, torch.Tensor):
        return f"{where}: returned {type(got).__name__}, expected a torch.Tensor"
    if got.dtype != expected.dtype:
        return f"{where}: returned dtype {got.dtype}, expected {expected.dtype}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"{where}: returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    expected, got = expected.detach().cpu(), got.detach().cpu()  # once: a CUDA output is copied here
    bad = _bad_elements(policy, expected, got)
    count = int(bad.sum())
    if not count:
        return None
    for index in bad.nonzero()[:MAX_SHOWN].tolist():
        at = tuple(index)
        differences.append(Difference(where, str(list(at)), repr(expected[at].item()), repr(got[at].item())))
    detail = ""
    if expected.dtype.is_floating_point:
        e, g = expected.double(), got.double()
        finite = bad & torch.isfinite(e) & torch.isfinite(g)
        if finite.any():
            detail = f", max |difference| {float((g - e).abs()[finite].max()):.3g}"
            if policy.kind != "allclose":
                detail += f" ({int((_ordered(expected) - _ordered(got)).abs()[finite].max())} ulp)"
    return f"{where}: {count}/{expected.numel()} elements differ{detail}"


def compare(policy: Policy, expected: Any, got: Any) -> Comparison:
    """``got`` against the oracle's ``expected`` under ``policy``."""
    differences: list[Difference] = []
    if isinstance(expected, torch.Tensor):
        pairs = [("output", expected, got)]
    elif isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            shown = f"{type(got).__name__} of {len(got)}" if isinstance(got, (tuple, list)) else type(got).__name__
            return Comparison(False, f"returned {shown}, expected {type(expected).__name__} of {len(expected)}")
        pairs = [(f"output[{i}]", e, g) for i, (e, g) in enumerate(zip(expected, got))]
    else:
        ok = type(got) is type(expected) and (got == expected or (got != got and expected != expected))
        return Comparison.passed() if ok else Comparison(False, f"returned {got!r}, expected {expected!r}")
    reasons = []
    for where, e, g in pairs:
        if isinstance(e, torch.Tensor):
            why = _segment(policy, where, e, g, differences)
        else:
            plain = compare(policy, e, g)
            why = None if plain.ok else f"{where}: {plain.summary}"
        if why:
            reasons.append(why)
    if not reasons:
        return Comparison.passed()
    return Comparison(False, "; ".join(reasons), tuple(differences))
