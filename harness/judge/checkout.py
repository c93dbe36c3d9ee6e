"""The checkout as evidence: the project's files as the judge saw them before and after a run.  Runs in
the judge.

A function under test could edit or delete files of the project it is judged in (an oracle, another
candidate, the harness itself, or their bytecode caches).  Runners work in scratch directories, and the judge hashes every file
under the folders that define the run (``oracles/``, ``candidates/``, ``harness/``) and records
``git status`` before and after; any difference fails the run, with the paths named, and the report's
commit line says whether the checkout was clean to begin with.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Snapshot:
    hashes: dict[str, str]  # path -> sha256 of its bytes
    status: tuple[str, ...] | None  # ``git status --porcelain`` lines; None outside a git checkout


def _files(folder: Path) -> list[Path]:
    """Every file, bytecode caches included: runners never write them (PYTHONDONTWRITEBYTECODE) and the
    judge writes none during a run, so a .pyc that appears or changes is a function under test planting
    code for the next run to load."""
    return [p for p in sorted(folder.rglob("*")) if p.is_file()]


def git_status() -> tuple[str, ...] | None:
    try:
        proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return tuple(proc.stdout.splitlines()) if proc.returncode == 0 else None


def snapshot(folders: list[Path]) -> Snapshot:
    hashes = {}
    for folder in folders:
        for path in _files(folder) if folder.is_dir() else [folder] if folder.is_file() else []:
            try:
                hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                hashes[str(path)] = "unreadable"
    return Snapshot(hashes, git_status())


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """One line per file that appeared, disappeared or changed, then any change of ``git status``."""
    out = []
    for path in sorted(set(before.hashes) | set(after.hashes)):
        old, new = before.hashes.get(path), after.hashes.get(path)
        if old != new:
            out.append(f"{path} {'created' if old is None else 'deleted' if new is None else 'modified'}")
    if before.status is not None and after.status is not None and before.status != after.status:
        added = sorted(set(after.status) - set(before.status))
        removed = sorted(set(before.status) - set(after.status))
        out += [f"git status: now {line.strip()}" for line in added]
        out += [f"git status: no longer {line.strip()}" for line in removed]
    return out


_preloaded = False


def preload() -> None:
    """Import every module of ``harness/`` and of the project's ``oracles`` package now, once, before the first
    runner starts.  A module the judge imported lazily would be read from disk after candidates ran, and a
    candidate could have rewritten it in between (and put the bytes back, leaving the comparison above
    nothing to see) to run its own code in the judge.  Runners in mount namespaces see these folders
    read-only anyway (``harness.runner.readonly``); this covers machines without."""
    global _preloaded
    if _preloaded:
        return
    _preloaded = True
    import importlib
    import pkgutil
    import sys

    import harness

    packages = [harness] + [sys.modules[name] for name in ("oracles",) if name in sys.modules]
    for package in packages:
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not info.name.endswith(".__main__"):
                try:
                    importlib.import_module(info.name)
                except ImportError:  # an optional dependency (Dask, line_profiler) that is not installed
                    pass
