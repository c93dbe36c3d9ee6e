"""From parsed arguments to what a run is told: each flag left unset filled from the project's
``[tool.harness]``, else from the built-in defaults (``harness.core.config.DEFAULTS``), and the checked
``RunOptions``.  Runs in the judge, before any command's work."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from harness.cli.arguments import percent
from harness.core.config import DEFAULTS, BenchConfig
from harness.core.errors import UsageError

if TYPE_CHECKING:
    from harness.judge.plan import RunOptions


# What a flag left unset takes when the project's [tool.harness] does not say either.
BUILT_IN = {"policy": DEFAULTS.policy, "timeout": DEFAULTS.timeout_s, "examples": DEFAULTS.examples,
            "noise_floor": DEFAULTS.noise_floor}
MAX_PROCESSES = 16  # runner pairs per candidate: each holds every size's inputs while the candidate is timed
PROJECT_COMMANDS = ("list", "run", "verify", "bench", "profile", "export-tests")


def in_project(args: argparse.Namespace) -> None:
    """Find the project (``project``), make its ``oracles``/``candidates`` importable, and fill each flag the
    user left unset from its ``[tool.harness]``, else from ``BUILT_IN``."""
    from harness.core import project

    found = project.find()
    project.activate(found)
    if not hasattr(args, "policy"):  # bench has no --policy, but its report names the project's
        args.policy = found.config.get("policy")
    for key in project.KEYS:
        if not hasattr(args, key) or getattr(args, key) not in (None, []):
            continue
        value = found.config.get(key, BUILT_IN.get(key))
        if key == "noise_floor" and isinstance(value, str):
            value = percent()(value)
        setattr(args, key, value)


def run_options(args: argparse.Namespace, verify: bool, time: bool) -> "RunOptions":
    from harness.judge.plan import RunOptions  # torch is imported only by commands that need it

    quick = getattr(args, "quick", False)
    budget = getattr(args, "budget", None) or (DEFAULTS.quick_budget_s if quick else DEFAULTS.budget_s)
    examples = getattr(args, "examples", DEFAULTS.examples)
    if (getattr(args, "processes", None) or 1) > MAX_PROCESSES:
        raise UsageError(f"--processes {args.processes}: at most {MAX_PROCESSES} runner pairs per candidate")
    return RunOptions(
        target=args.target, candidates=args.candidate, baseline=getattr(args, "baseline", None), device=args.device,
        policy=getattr(args, "policy", None), seed=getattr(args, "seed", 0),
        examples=min(examples, DEFAULTS.quick_examples) if quick else examples,
        quick=quick, sizes=getattr(args, "sizes", None), verify=verify, time=time, where=args.where,
        fail_fast=getattr(args, "fail_fast", False), jobs=args.jobs if hasattr(args, "jobs") else 1,  # None: the machine's default
        cluster=getattr(args, "cluster", None),
        profile=time and verify and not getattr(args, "no_profile", True), timeout=args.timeout,
        bench=BenchConfig(target_rse=getattr(args, "rse", DEFAULTS.target_rse), budget_s=budget,
                          noise_floor=getattr(args, "noise_floor", DEFAULTS.noise_floor),
                          threads=getattr(args, "threads", None), cuda_graphs=getattr(args, "cuda_graphs", False),
                          processes=getattr(args, "processes", None)
                          or (DEFAULTS.cuda_processes if args.device.startswith("cuda") else 1)),
    )
