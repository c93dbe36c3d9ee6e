"""How often the regression gate cries wolf, and how often it catches a planted slowdown (issue 26).

A throwaway git project holds a copy of this project's ``oracles/`` and ``candidates/``; ``harness run
--against HEAD`` is run TRIALS times on the unchanged candidate, then TRIALS times with ``candidates/fused.py``
made PLANTED slower (a busy wait of that share of each call's own time, added in the working tree).  Prints
each trial's gate status and checks, and the counts: false alarms (a check decided "slower" or "faster" on
unchanged code) and catches (the gate failed on the planted slowdown).

    python benchmarks/gate_trials.py [TRIALS] [PLANTED] [SIZES...]   # default 20 0.10 4096 65536

``GATE_TRIALS_MODE=saved`` tries the other form instead, ``run --compare PREVIOUS.json``: each unchanged
run is compared with the run before it (so TRIALS + 1 runs), and each planted run with one of those.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLANT = '''

import time as _time

_unplanted = fused


@candidate(target="quantize_k_cache")
def fused(input_k_cache, dv=512, tile_size=128):
    """fused, then a busy wait of {share:.0%} of the call's own time (a planted slowdown)."""
    began = _time.perf_counter()
    out = _unplanted(input_k_cache, dv, tile_size)
    end = _time.perf_counter() + {share!r} * (_time.perf_counter() - began)
    while _time.perf_counter() < end:
        pass
    return out
'''


def _project(into: Path) -> Path:
    for folder in ("oracles", "candidates"):
        shutil.copytree(ROOT / folder, into / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (into / "pyproject.toml").write_text('[tool.harness]\ntarget = "quantize_k_cache"\n')
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "trial"]):
        subprocess.run([*git, *args], cwd=into, check=True, capture_output=True)
    return into


def _trial(project: Path, sizes: list[str], previous: Path | None = None, keep: Path | None = None,
           gated: bool = True) -> dict:
    """One gated run: against HEAD, or (``previous``) against that saved result; ``keep``: copy the result
    there (the next saved-run trial's previous); not ``gated``: a plain run."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = project / "out"
    began = time.perf_counter()
    gating = ["--compare", str(previous)] if previous else ["--against", "HEAD"] if gated else []
    done = subprocess.run([sys.executable, "-m", "harness", "run", *gating, "--candidate",
                           "candidates/fused.py:fused", "--sizes", *sizes, "--no-profile", "--examples", "5",
                           "--out", str(out)], cwd=project, env=env, capture_output=True, text=True)
    if keep is not None:
        shutil.copy(out / "quantize_k_cache-cpu.json", keep)
    gate = json.loads((out / "quantize_k_cache-cpu.json").read_text())["gate"] or {}
    gate["exit"], gate["seconds"] = done.returncode, time.perf_counter() - began
    return gate


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    share = float(sys.argv[2]) if len(sys.argv) > 2 else 0.10
    sizes = sys.argv[3:] or ["4096", "65536"]
    saved = os.environ.get("GATE_TRIALS_MODE") == "saved"
    with tempfile.TemporaryDirectory(prefix="gate-trials-") as tmp:
        project = _project(Path(tmp) / "project")
        runs = [Path(tmp) / f"run-{i}.json" for i in range(trials + 1)]
        if saved:  # the first unchanged run: what the first comparison compares with
            _trial(project, sizes, None, runs[0], gated=False)
        counts = {}
        for planted in (False, True):
            if planted:
                with open(project / "candidates" / "fused.py", "a") as handle:
                    handle.write(PLANT.format(share=share))
            statuses = []
            for i in range(trials):
                g = (_trial(project, sizes) if not saved else
                     _trial(project, sizes, runs[i], None) if planted else _trial(project, sizes, runs[i], runs[i + 1]))
                checks = ", ".join(f"{c['size']} {c['speedup']:.3f} [{c['speedup_ci'][0]:.3f}-{c['speedup_ci'][1]:.3f}] "
                                   f"{c['verdict']}" for c in g["checks"])
                print(f"{'planted' if planted else 'same   '} {i + 1:2d}: {g['status']:9s} exit {g['exit']} "
                      f"{g['seconds']:5.1f} s  {checks}", flush=True)
                statuses.append((g["status"], [c["verdict"] for c in g["checks"]]))
            counts[planted] = statuses
    same, planted = counts[False], counts[True]
    false_alarms = sum(any(v in ("slower", "faster") for v in verdicts) for _, verdicts in same)
    caught = sum(status == "failed" for status, _ in planted)
    print(f"\nunchanged: {false_alarms} of {trials} gates with a check decided slower or faster "
          f"({', '.join(f'{s} {sum(x == s for x, _ in same)}' for s in ('passed', 'undecided', 'noisy', 'failed'))})")
    print(f"planted {share:.0%} slower: caught (gate failed) in {caught} of {trials} "
          f"({', '.join(f'{s} {sum(x == s for x, _ in planted)}' for s in ('passed', 'undecided', 'noisy', 'failed'))})")


if __name__ == "__main__":
    main()
