"""Runs across time, kept on disk: ``run --save DIR`` files each result under its commit, ``harness history
DIR`` reads them back in order.  Runs in the judge; saved results are untrusted input like any result file
(``schema.load`` checks every field).

Layout: ``DIR/<commit>/<target>-<device>.json`` (``<commit>-dirty`` for a checkout with uncommitted
changes, ``no-commit`` outside git); a later run of the same commit replaces the earlier one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


from harness.core import schema
from harness.core.errors import UsageError
from harness.core.result import RunResult


def headline_names(runs: list[RunResult]) -> list[str]:
    """Every candidate with a headline timing in any of ``runs``, in order of first appearance."""
    return list(dict.fromkeys(c.name for run in runs for c in run.candidates if c.headline))


def key(run: RunResult) -> str:
    env = run.environment
    commit = "".join(c for c in (env.git_commit or "no-commit") if c.isalnum() or c == "-")[:40] or "no-commit"
    return commit + ("-dirty" if env.git_dirty else "")


def path_of(directory: Path, run: RunResult) -> Path:
    return directory / key(run) / f"{run.target}-{run.environment.device}.json"


@dataclass(frozen=True)
class Saved:
    label: str  # the folder: the commit
    run: RunResult


def chart_name(target: str, device: str) -> str:
    """The history chart's file name in DIR: only safe characters, whatever a result file says."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"history-{target}-{device}")[:120] + ".svg"


def load(directory: Path, target: str | None, device: str) -> list[Saved]:
    """Every saved run of ``target`` (default: the only target saved) on ``device``, oldest first; each
    file must hold what its name says (its target, its device)."""
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}: choose cpu or cuda")
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a folder of saved runs (harness run --save {directory} makes one)")
    files = sorted(directory.glob(f"*/*-{device}.json"))
    targets = sorted({f.name.removesuffix(f"-{device}.json") for f in files})
    if target is None:
        if len(targets) != 1:
            raise UsageError(f"{directory} holds runs of {len(targets)} targets on {device} "
                             f"({', '.join(targets) or 'none'}): choose one with --target")
        target = targets[0]
    found = []
    for f in files:
        if f.name == f"{target}-{device}.json":
            try:
                run = schema.load(f)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            if (run.target, run.environment.device) != (target, device):
                raise UsageError(f"{f} holds a result of {run.target} on {run.environment.device}, not what its "
                                 f"name says ({target} on {device})")
            found.append(Saved(f.parent.name, run))
    if not found:
        raise UsageError(f"{directory}: no saved run of {target} on {device}")
    return sorted(found, key=lambda s: s.run.created)
