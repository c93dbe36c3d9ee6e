"""The command line's arguments: every command, its options and their checks (argparse), and the one-line
usage errors argparse's own mistakes become.  Pure declaration: parsing runs nothing, and imports no torch
(``harness --help`` stays fast).  ``cli`` runs what was parsed.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Callable

from harness.core.config import DEFAULTS
from harness.core.errors import EXIT_USAGE


def percent(high: float = 100.0) -> Callable[[str], float]:
    """A percentage written with its sign, ``5%``, above 0 and below ``high``; returned as a fraction."""
    def parse(text: str) -> float:
        try:
            value = float(text[:-1]) if text.endswith("%") else math.nan
        except ValueError:
            value = math.nan
        if not text.endswith("%") or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a percentage with its % sign, like 5%, got {text!r}")
        if not 0 < value < high:
            raise argparse.ArgumentTypeError(f"expected a percentage above 0% and below {high:g}%, got {text!r}")
        return value / 100

    return parse


def _positive(kind: type, minimum: float = 0, inclusive: bool = False) -> Callable[[str], float]:
    """A finite number of ``kind`` above ``minimum`` (or at least it, with ``inclusive``)."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value >= minimum if inclusive else value > minimum)
        if not ok:
            noun = "integer" if kind is int else "number"
            want = f"a positive {noun}" if minimum == 0 and not inclusive else (
                f"an {noun} of at least {minimum:g}" if kind is int else f"a {noun} of at least {minimum:g}")
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return value

    return parse


def _add_common(p: argparse.ArgumentParser, timing: bool, verifying: bool) -> None:
    p.add_argument("--target", help="the function under optimisation (default: every target, in oracles/ or declared "
                                    "in pyproject.toml, or the one the --candidate specs are marked for)")
    p.add_argument("--candidate", action="append", default=[], metavar="SPEC",
                   help="path/to/file.py:function or package.module:function; repeatable "
                        "(default: every candidate marked in candidates/)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--json", metavar="PATH", help="also write the JSON result here")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.add_argument("--where", metavar="CLAUSES",
                   help="judge and time only cases whose params match, e.g. \"d=576 dv=512,256 num_blocks<=4\" "
                        "(clauses: key=v1,v2  key!=v  key<n  key<=n  key>n  key>=n; harness list shows the params)")
    p.add_argument("--timeout", type=_positive(float),
                   help=f"seconds each candidate's work may take in its runner process (default {DEFAULTS.timeout_s:g})")
    if verifying:
        p.add_argument("--show-reproducer", action="store_true",
                       help="print each failing candidate's minimal failing case as a whole pytest file")
        p.add_argument("--policy", help="comparison policy (default: the target's first); each target's "
                                        "policies and what they accept: harness list")
        p.add_argument("--seed", type=_positive(int, 0, inclusive=True), default=0,
                       help="hypothesis seed for property cases (default 0)")
        p.add_argument("--examples", type=_positive(int, 1, inclusive=True),
                       help=f"property-based examples per candidate, at least 1 (default {DEFAULTS.examples})")
        p.add_argument("--jobs", type=_positive(int, 1, inclusive=True),
                       help="judge this many candidates at once, each in a judge worker of its own: verification "
                            "runs concurrently, timing takes turns (default: one per GPU on a machine of several, else 1)")
        p.add_argument("--cluster", metavar="ADDRESS",
                       help="judge the candidates on the Dask cluster whose scheduler is at ADDRESS "
                            "(tcp://host:8786; workers started from this project: see README)")
        p.add_argument("--fail-fast", action="store_true",
                       help="screening: stop a candidate's verification at its first failing case (a property "
                            "failure is still shrunk to a minimal reproducer); it is then not timed")
    if timing:
        p.add_argument("--baseline", metavar="SPEC", help="time against this instead of the oracle (the original)")
        p.add_argument("--sizes", nargs="+", metavar="SIZE",
                       help="sizes to time, in the target's notation (harness list shows it)")
        p.add_argument("--quick", action="store_true", help="fewer sizes (a declared target's first; harness list shows the ladder) "
                                                               "and a smaller time budget")
        p.add_argument("--budget", type=_positive(float),
                       help="at most this many seconds of timing per candidate and size; rounds stop earlier once "
                            f"the verdict is decided (default {DEFAULTS.budget_s:g}, quick {DEFAULTS.quick_budget_s:g})")
        p.add_argument("--rse", type=percent(), default=DEFAULTS.target_rse,
                       help="a decided size also needs each median's relative standard error under this "
                            f"(default {DEFAULTS.target_rse:.0%}%)")
        p.add_argument("--noise-floor", type=percent(),
                       help="faster/slower only when the speedup interval clears 1 +/- this; inside it, "
                            f"\"within +/-{DEFAULTS.noise_floor:.0%}%\" or \"no significant difference\" "
                            f"(default {DEFAULTS.noise_floor:.0%}%)")
        p.add_argument("--processes", type=_positive(int, 1, inclusive=True),
                       help="time each size in this many pairs of runner processes (baseline, candidate), and one "
                            "more where an even number split; the verdict is what most pairs decided (default 1 on "
                            "the CPU, where a second pair, and a third if they disagree, times any verdict but a "
                            "clear speedup or slowdown, or no difference beyond the cache; "
                            f"{DEFAULTS.cuda_processes} on CUDA)")
        p.add_argument("--threads", type=_positive(int), help="torch CPU threads during timing (default: torch's)")
        p.add_argument("--cuda-graphs", action="store_true",
                       help="on CUDA, replay each timed call from a CUDA graph (launch-bound sizes: device work only)")


def _add_rendering(p: argparse.ArgumentParser, formats: list[str]) -> None:
    """The options of a command that renders saved results (the first format is the default)."""
    p.add_argument("--format", choices=formats, default=formats[0])
    p.add_argument("-o", "--output", metavar="PATH", help="write here instead of standard output")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in the one line every other usage error gets (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"harness: error: {self.prog.removeprefix('harness ')}: {' '.join(message.split())} "
              f"(see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="harness", description=(
        "Verify candidate implementations of a PyTorch function against its oracle, time them honestly "
        "and report the speedup."))
    from harness import __version__

    ap.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="the targets and each candidate with its spec")
    p.add_argument("--target", help="only this target")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    p = sub.add_parser("run", help="verify, time and write a markdown report and a JSON result",
                       description="For every target (or --target), check every candidate against the oracle, "
                                   "time those that pass against the baseline over a ladder of sizes, and write "
                                   "reports/<target>-<device>.md and .json, and reports/index-<device>.md.")
    _add_common(p, timing=True, verifying=True)
    p.add_argument("--out", default="reports", metavar="DIR", help="where the report and JSON go (default reports/)")
    p.add_argument("--no-profile", action="store_true", help="skip the line and kernel profiles")
    gated = p.add_mutually_exclusive_group()
    gated.add_argument("--against", metavar="REF", help="gate against git commit REF: each passing candidate timed "
                       "beside its version at REF in this run (a within-run ratio: catches a few percent)")
    gated.add_argument("--compare", metavar="PREVIOUS.json", help="gate against a saved result (through each run's "
                       "speedup over its baseline, with both runs' spread: catches large slowdowns only)")
    p.add_argument("--fail-slower", type=percent(1000), default=0.05,
                   help="with --against or --compare: exit 1 if a candidate is decided slower than the "
                        "reference by more than this (default 5%%)")
    p.add_argument("--save", metavar="DIR", help="also keep each result as DIR/<commit>/<target>-<device>.json "
                                                 "(the history `harness history DIR` reads)")

    p = sub.add_parser("verify", help="verification only",
                       description="Check candidates against the oracle: named regression cases, error parity, "
                                   "repeated calls with new data, and hypothesis property cases.")
    _add_common(p, timing=False, verifying=True)

    p = sub.add_parser("bench", help="timing only (no verification)",
                       description="Time candidates against the baseline in interleaved rounds, with a 95% "
                                   "interval on each speedup.")
    _add_common(p, timing=True, verifying=False)

    p = sub.add_parser("profile", help="line-by-line and kernel profile of one candidate",
                       description="Profile SPEC (a candidate spec, or oracle:<target> for the original) on one "
                                   "size: line_profiler per line (device time on CUDA) and torch.profiler per op/kernel.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--target", help="the function under optimisation (default: the one SPEC is marked for, or the "
                                    "project's only target)")
    p.add_argument("--size", default=None, help="one size (default: the largest of the quick ladder)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--json", metavar="PATH", help="also write the profile as JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    p = sub.add_parser("export-tests", help="a saved run's regression cases as a standalone pytest file")
    p.add_argument("--from", dest="source", required=True, metavar="RESULT.json")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the pytest file to write")
    p.add_argument("--candidate", metavar="SPEC", help="the candidate the tests check (default: the run's best)")
    p.add_argument("--all", action="store_true", dest="every_case",
                   help="every named case the run checked (and its twin), not only the annotated regression family")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    p = sub.add_parser("comment", help="the PR comment body for a saved run; --post creates or updates it",
                       description="Print the pull-request comment for RESULT.json (one per target, repeat --from "
                                   "for several: one comment). With --post --pr N, create the comment on PR N "
                                   "through the gh CLI, or update the one an earlier run posted.")
    p.add_argument("--from", dest="source", required=True, action="append", metavar="RESULT.json")
    p.add_argument("--post", action="store_true", help="post it with gh instead of printing it")
    p.add_argument("--pr", type=_positive(int), metavar="N", help="the pull request number (with --post)")
    p.add_argument("--repo", metavar="OWNER/NAME", help="default: $GITHUB_REPOSITORY or gh's current repository")
    p.add_argument("--author", metavar="LOGIN",
                   help="the account that posts: only its own marked comment is edited (default: the token's "
                        "user; github-actions[bot] in GitHub Actions)")
    p.add_argument("--head-sha", metavar="SHA",
                   help="post only if the PR's head commit is this one (the commit the result was made from)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    p = sub.add_parser("machine", help="this machine's device, measured copy bandwidth and cache: what a run's "
                                       "figures depend on (every run's report ends with the same line)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    p = sub.add_parser("report", help="re-render a saved JSON result without re-running anything")
    p.add_argument("--from", dest="source", required=True, metavar="RESULT.json")
    _add_rendering(p, ["markdown", "pr-comment", "terminal"])

    p = sub.add_parser("history", help="saved runs (run --save DIR) in order: each candidate's headline speedup "
                                       "per commit, and a chart (SVG, where matplotlib is installed)")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--target", help="the target (default: the only one saved)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    _add_rendering(p, ["terminal", "markdown"])

    p = sub.add_parser("compare", help="two saved results side by side: per candidate and size, old and new "
                                       "medians and the speedup between them, with its interval and verdict")
    p.add_argument("old", metavar="OLD.json")
    p.add_argument("new", metavar="NEW.json")
    p.add_argument("--noise-floor", type=percent(), default=0.05,
                   help="faster/slower only when the interval clears 1 +/- this (default 5%%)")
    _add_rendering(p, ["terminal", "markdown"])
    return ap
