"""The run's copy of the sources (harness/runner/snapshot.py): every runner executes the code as it was when the run
started — the harness's, the targets', the candidates' — whatever happens to the checkout meanwhile, and
``inspect`` reads that same code.  No test here edits this repository: each edits a throwaway copy."""

import dataclasses
import importlib
import inspect
import json
import linecache
import os
import shutil
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

from harness.judge.noise import FOREIGN_CPU_LIMIT
from harness.runner import snapshot
from harness.core.config import BenchConfig
from harness.judge.sandbox import spawn
from harness.core.target import Case, discover_targets
from tests.test_target import TOY

ROOT = Path(__file__).resolve().parent.parent

HELPER = "def factor():\n    return 2\n"
CANDIDATE = '''
    def lazy(x):
        """Imports its helper only when called: after the disk changed, in the tests below."""
        from {package}.helper import factor
        return x * factor()
'''


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy target in a package of its own (a unique name: modules stay imported in this process), a
    helper module beside it, and a candidate file that imports the helper when called."""
    package = f"snaptoy_{abs(hash(str(tmp_path))) % 10**8}"
    _write(tmp_path / package / "__init__.py", "")
    _write(tmp_path / package / "double.py", TOY)
    _write(tmp_path / package / "helper.py", HELPER)
    _write(tmp_path / "cands.py", CANDIDATE.format(package=package))
    monkeypatch.syspath_prepend(str(tmp_path))
    (target,) = discover_targets(package).values()
    yield target, tmp_path, package
    for name in [m for m in sys.modules if m.startswith(package)]:
        del sys.modules[name]


def _runner(spec: str, target):
    return spawn(spec, target.ref, "cpu", dataclasses.asdict(BenchConfig()), 60.0)


def _factor(runner, target) -> float:
    """What the runner's function multiplies its input by."""
    case = Case("small", "seed", {"n": 3})
    got = runner.call(case)
    assert got.error_type is None, got.error_message
    x = target.build(case, "cpu").args[0]
    return float((got.value / x).mean())


def test_a_snapshot_holds_the_harness_the_project_and_spec_files(toy):
    target, where, package = toy
    spec = f"{where}/cands.py:lazy"
    taken = snapshot.take([spec, "oracle:double"], [target.ref])
    for module in ("harness", "harness.runner.serve", "harness.runner.snapshot", "oracles.kcache_reference", "candidates.fused",
                   package, f"{package}.double", f"{package}.helper"):
        assert module in taken.modules, module
    assert taken.modules["harness"].endswith("harness/__init__.py")
    assert taken.covers(Path(where, "cands.py").resolve()) and not taken.covers(ROOT / "README.md")
    # the wire: 8-byte length, JSON; every byte survives, and the digest says what was sent
    frame = json.loads(taken.frame[8:])
    assert len(taken.frame) - 8 == int.from_bytes(taken.frame[:8], "big")
    assert snapshot._decoded(frame) == taken
    (where / package / "helper.py").write_bytes(b"def factor():\n    return '\xe9'\n")
    assert snapshot.take([spec], [target.ref]).digest != taken.digest


def test_a_runner_executes_the_snapshot_after_the_disk_changed(toy):
    """Started, then the checkout is edited: what the runner imports afterwards is still the old code."""
    target, where, package = toy
    runner = _runner(f"{where}/cands.py:lazy", target)
    try:
        _write(where / package / "helper.py", "def factor():\n    return 3\n")
        _write(where / "cands.py", "def lazy(x):\n    return x * 5\n")
        assert _factor(runner, target) == 2
    finally:
        runner.close()


def test_runners_started_later_in_a_run_get_the_runs_snapshot(toy):
    """A runner started (or restarted, as a baseline whose process died) after the edit still loads the
    code as it was when the run began: the oracle and the candidate."""
    target, where, package = toy
    with snapshot.during(snapshot.take([f"{where}/cands.py:lazy"], [target.ref])):
        _write(where / package / "double.py", TOY.replace("return x * 2", "return x * 3"))
        _write(where / package / "helper.py", "def factor():\n    return 3\n")
        _write(where / "planted.py", "")
        for spec in ("oracle:double", f"{where}/cands.py:lazy"):
            runner = _runner(spec, target)
            try:
                assert _factor(runner, target) == 2, spec
            finally:
                runner.close()


KERNEL = '''
    import inspect

    def jit(fn):
        """Reads its function's source when applied, as triton.jit does."""
        fn.source_seen = inspect.getsource(fn)
        return fn

    @jit
    def scale(x):
        return x * {factor}

    def fails():
        raise ValueError("from the snapshot")
'''


@pytest.fixture
def served(tmp_path, request):
    """A package served by a ``Finder`` installed as in a runner, for this test only; its module ``kernel``
    is ``KERNEL`` (or the text the test passes, parametrized indirectly)."""
    package = f"snapsrc_{abs(hash(str(tmp_path))) % 10**8}"
    init = _write(tmp_path / package / "__init__.py", "")
    kernel = _write(tmp_path / package / "kernel.py", getattr(request, "param", KERNEL.format(factor=2)))
    taken = snapshot.Snapshot.of({str(p): p.read_bytes() for p in (init, kernel)},
                                 {package: str(init), f"{package}.kernel": str(kernel)})
    finder = snapshot.Finder(taken).install()
    try:
        yield package, kernel
    finally:
        sys.meta_path.remove(finder)
        for path in taken.sources:
            linecache.cache.pop(path, None)
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def test_inspect_reads_the_snapshot_after_the_disk_changed(served):
    package, kernel = served
    kernel.write_text(textwrap.dedent(KERNEL.format(factor=3)) + "\n# edited\n")  # before the import, and after
    module = importlib.import_module(f"{package}.kernel")
    assert module.scale(1) == 2 and module.__file__ == str(kernel)
    assert module.scale.source_seen == "@jit\ndef scale(x):\n    return x * 2\n"  # what a JIT would compile
    linecache.checkcache()  # what traceback and inspect do before reading: the entries stay
    assert inspect.getsource(module.scale) == module.scale.source_seen
    assert inspect.getsourcelines(module.scale)[1] == 9
    assert inspect.getsource(module) == textwrap.dedent(KERNEL.format(factor=2))
    try:
        module.fails()
    except ValueError as exc:
        assert traceback.format_exception(exc)[-2].strip().endswith('raise ValueError("from the snapshot")')
    assert module.__spec__.loader.get_source(module.__name__) == inspect.getsource(module)
    assert importlib.import_module(package).__path__ == [str(kernel.parent)]
    (kernel.parent / "planted.py").write_text("x = 1\n")  # not there when the snapshot was taken
    with pytest.raises(ModuleNotFoundError, match="not in this run's snapshot"):
        importlib.import_module(f"{package}.planted")


TRITON_KERNEL = """
    import triton
    import triton.language as tl

    @triton.jit
    def add(x_ptr, BLOCK: tl.constexpr):
        offsets = tl.arange(0, BLOCK)
        tl.store(x_ptr + offsets, tl.load(x_ptr + offsets) + 1)
"""


@pytest.mark.parametrize("served", [TRITON_KERNEL], indirect=True)
def test_tritons_jit_compiles_the_snapshots_source(served, monkeypatch):
    """triton.jit reads its function's source with inspect when applied (at import): the snapshot's."""
    pytest.importorskip("triton", reason="Triton is not installed")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the JIT, as on CUDA, not the interpreter
    package, kernel = served
    kernel.write_text(kernel.read_text().replace("+ 1)", "+ 2)"))
    add = importlib.import_module(f"{package}.kernel").add
    assert "tl.load(x_ptr + offsets) + 1)" in add.src and "+ 2)" not in add.src


PROFILED = """
    from oracles.kcache_reference import quantize_k_cache_slow

    def profiled(input_k_cache, dv=512, tile_size=128):
        out = quantize_k_cache_slow(input_k_cache, dv, tile_size)  # {mark}
        return out
"""


def test_a_runners_line_profile_shows_the_snapshots_lines(tmp_path):
    """The line table's text is the code that ran: the snapshot's (linecache's in the runner), not the disk's."""
    from harness.core.target import get_target

    target = get_target("quantize_k_cache")
    path = _write(tmp_path / "profiled.py", PROFILED.format(mark="as it was"))
    runner = spawn(f"{path}:profiled", target.ref, "cpu", dataclasses.asdict(BenchConfig()), 120.0)
    try:
        _write(path, PROFILED.format(mark="edited"))
        runner.start_job()
        lines = [line.source for line in runner.profile(target.parse_size("1x32x576")).lines]
    finally:
        runner.close()
    assert lines == ["out = quantize_k_cache_slow(input_k_cache, dv, tile_size)  # as it was", "return out"]


def _project(where: Path) -> Path:
    """A throwaway copy of this repository's project: its oracles, an empty candidates package, its table."""
    root = where / "project"
    shutil.copytree(ROOT / "oracles", root / "oracles", ignore=shutil.ignore_patterns("__pycache__"))
    _write(root / "candidates" / "__init__.py", "")
    _write(root / "pyproject.toml", '[tool.harness]\ntarget = "quantize_k_cache"\n')
    _write(root / "HOSTILE_TEST_PROJECT", "tests/hostile/edit_and_restore.py may edit this copy\n")
    return root


def test_editing_and_restoring_the_oracle_during_a_run_changes_nothing(tmp_path):
    """tests/hostile/edit_and_restore.py edits the oracle to do its work three times and kills the baseline's
    runners, which are started again (before the snapshot: from the edited file), then restores the file's
    bytes and mtime.  The baseline still runs the oracle as it was: the edited code never runs, and neither
    candidate — each the oracle itself — is faster.  Namespaces off, so that the attacker can reach the
    baseline's runner (what stops it here is the snapshot)."""
    root = _project(tmp_path)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    hostile = f"{ROOT}/tests/hostile/edit_and_restore.py"
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--out", str(out), "--sizes", "4x64x576",
                           "--budget", "1", "--examples", "5", "--no-profile",
                           "--candidate", f"{hostile}:edit_and_restore", "--candidate", f"{hostile}:honest"],
                          cwd=root, env={**env, "HARNESS_NO_NAMESPACES": "1"}, capture_output=True, text=True,
                          timeout=900)
    state = json.loads((tmp_path / "edit-and-restore.json").read_text())  # the attack did happen
    assert not (tmp_path / "edited-oracle-ran").exists(), "the edited oracle ran in a runner"
    run = json.loads((out / "quantize_k_cache-cpu.json").read_text())
    attacker, honest = run["candidates"]
    assert honest["verdict"] == "pass" and honest["timings"], (honest["error"], done.stderr[-2000:])
    for cand in (attacker, honest):  # timed against the baseline's runner, restarted or not
        for timing in cand["timings"]:
            loaded = (timing["foreign_cpu"] or 0) > FOREIGN_CPU_LIMIT or any(
                n["text"].startswith("other processes used ") for n in run["noise"])
            if not loaded:  # loaded, the run says not to trust its timings: rightly, the oracle against itself
                # read 0.01x-59x beside busy processes (NOTES.md); no bound is asserted
                assert timing["speedup"] < 1.5 and not timing["label"].startswith("faster"), (cand["name"], timing["label"])
    if state["killed"]:  # the baseline died while the attacker was judged: not restarted quietly
        assert attacker["verdict"] == "error" and not attacker["timings"], attacker
    if state["restored"]:
        assert run["checkout_changes"] == []
    else:  # the edit is still there, and reported
        assert any(c.endswith("kcache_reference.py modified") for c in run["checkout_changes"]), run["checkout_changes"]
