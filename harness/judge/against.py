"""``run --against REF``: each passing candidate timed against its own version at git commit REF, side by
side in this run.  Runs in the judge, after the run it gates (``cli``).

REF's ``candidates/`` folder is extracted (``git archive``, nothing in the checkout or its ``.git`` is
touched) into a temporary folder; for each candidate whose file exists there, a timing-only run
(``Pipeline``) takes REF's version as its baseline: the two are timed in interleaved rounds and pairs of
runners, decided with ``--fail-slower`` as the floor, so a regression is a within-run ratio with an
interval as narrow as any timing's — where two saved runs can only be compared through wide intervals
(``gate``).  REF's version runs in a runner whose snapshot holds REF's ``candidates`` package (its helper
modules and C sources too) beside this checkout's harness and target, so both are fed the same inputs.
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from harness.core.candidates import _split, candidates_dir
from harness.core.errors import UsageError
from harness.core.result import CandidateResult, Gate, GateCheck, RunResult
from harness.judge import gate
from harness.judge.plan import RunPlan
from harness.runner import snapshot


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True)


def resolve(ref: str) -> str:
    """The full commit id of ``ref`` in the repository holding ``candidates/``; ``UsageError`` otherwise.
    Called before the run, so a typo costs nothing."""
    if ref.startswith("-"):
        raise UsageError(f"--against {ref}: expected a commit, branch or tag")
    found = _git(candidates_dir(), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if found.returncode != 0:
        raise UsageError(f"--against {ref}: not a commit of the repository holding {candidates_dir()}")
    return found.stdout.decode().strip()


def extract(commit: str, into: Path) -> Path:
    """REF's ``candidates/`` folder under ``into`` (same path below the repository's top); the folder is
    empty where REF had none."""
    folder = candidates_dir().resolve()
    top = Path(_git(folder, "rev-parse", "--show-toplevel").stdout.decode().strip()).resolve()
    below = folder.relative_to(top)
    archive = _git(top, "archive", "--format=tar", commit, "--", str(below))
    if archive.returncode == 0:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(into, filter="data")
    (into / below).mkdir(parents=True, exist_ok=True)
    return into / below


def reference_spec(cand: CandidateResult, here: Path, there: Path) -> tuple[str | None, str]:
    """(REF's spec of ``cand``, "") or (None, why it is not gated)."""
    if cand.verdict != "pass":
        return None, f"{cand.name}: not gated (it did not pass)"
    if not cand.timings:
        return None, f"{cand.name}: not gated (not timed)"
    found = snapshot._spec_file(cand.spec)
    if found is None or not found[1].is_relative_to(here):
        return None, f"{cand.name}: not gated (its file is not in candidates/)"
    file = there / found[1].relative_to(here)
    if not file.is_file():
        return None, f"{cand.name}: not gated (new since the reference)"
    return f"{file}:{_split(cand.spec)[1]}", ""


def against(run_plan: RunPlan, result: RunResult, ref: str, commit: str, fail_slower: float,
            progress=None) -> Gate:
    """The gate of ``result`` against commit ``commit`` (``ref`` as the user named it)."""
    from harness.judge.pipeline import Pipeline

    reference = f"{ref} ({commit[:10]}), timed side by side in this run"
    here = candidates_dir().resolve()
    checks: list[GateCheck] = []
    skipped: list[str] = []
    noise: list[str] = [n.text for n in result.noise]
    with tempfile.TemporaryDirectory(prefix="harness-against-") as tmp:
        there = extract(commit, Path(tmp))
        variant = snapshot.take([], run_plan.target.source_refs, packages={"candidates": there})
        for cand in result.candidates:
            spec, why = reference_spec(cand, here, there)
            if spec is None:
                skipped.append(why)
                continue
            opts = run_plan.options
            options = dataclasses.replace(
                opts, candidates=(cand.spec,), baseline=spec, verify=False, profile=False, jobs=1, cluster=None,
                fail_fast=False, bench=dataclasses.replace(opts.bench, noise_floor=fail_slower))
            timed = Pipeline(options, progress, variants={Path(tmp): variant}).run()
            (judged,) = timed.candidates
            if judged.error or not judged.timings:
                skipped.append(f"{cand.name}: not gated (timing against the reference failed: {judged.error})")
                continue
            checks += [GateCheck(cand.name, t.size, t.speedup, t.speedup_ci, t.verdict, t.label) for t in judged.timings]
            noise += [n.text for n in timed.noise if n.text not in noise]
            noise += [f"the checkout changed while it was gated: {', '.join(timed.checkout_changes)}"] \
                if timed.checkout_changes else []
    return gate.verdict(reference, checks, fail_slower, noise, skipped)
