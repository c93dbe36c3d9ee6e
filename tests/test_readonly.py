"""The runner's read-only view (``harness/runner/readonly.py``): in mount namespaces, a candidate can write
neither into the checkout, nor into Python's folders, nor where the run writes its results — not even from
a user namespace of its own — while its scratch and temporary folders stay writable, and the judge confirms
the view from the runner's mount table.  Everywhere, the judge has all of its code in memory before the
first runner starts."""

import dataclasses
import importlib
import json
import os
import pkgutil
import sys
import tempfile
from pathlib import Path

import pytest

import harness
from harness.core.config import BenchConfig
from harness.core.target import get_target
from harness.judge import checkout
from harness.judge.sandbox import spawn
from harness.runner import isolation, readonly

ROOT = Path(__file__).resolve().parent.parent
TARGET = get_target("quantize_k_cache")
namespaced = pytest.mark.skipif(not isolation.available(), reason=f"no namespaces here: {isolation.describe()}")


def test_the_paths_cover_the_checkout_the_import_path_and_the_results(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(readonly, "_results", [str(results)])
    paths = readonly.protected()
    assert str(ROOT) in paths or any(str(ROOT).startswith(p + "/") for p in paths)
    assert str(results.resolve()) in paths
    site = next(p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p))
    assert any(os.path.realpath(site) == p or os.path.realpath(site).startswith(p + "/") for p in paths)
    assert "/" not in paths and not any(p.startswith(("/proc", "/sys", "/dev")) for p in paths)
    covered = lambda path: any(os.path.realpath(path) == p or os.path.realpath(path).startswith(p + "/") for p in paths)
    for python_folder in (sys.prefix, sys.base_prefix, os.path.dirname(sys.executable)):
        assert covered(python_folder), python_folder
    missing = tmp_path / "nowhere" / "python311.zip"  # an import-path entry that does not exist: its folder is
    monkeypatch.setattr(sys, "path", [*sys.path, str(missing)])  # where a planted one would go
    assert os.path.realpath(tmp_path) in readonly.protected()
    scratch = str(tmp_path / "scratch")
    assert readonly.writable(scratch) == [os.path.realpath(scratch)]  # no more, unless the judge's environment says
    monkeypatch.setenv("HARNESS_RUNNER_WRITABLE", str(tmp_path / "logs"))
    assert readonly.writable(scratch) == sorted([os.path.realpath(scratch), os.path.realpath(tmp_path / "logs")])
    assert os.path.realpath(tempfile.gettempdir()) in readonly.shared()


def test_each_candidate_file_has_compile_caches_of_its_own_and_each_runner_a_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    one = readonly.private(str(tmp_path / "a"), f"{ROOT}/candidates/fused.py:fused")
    again = readonly.private(str(tmp_path / "b"), f"{ROOT}/candidates/fused.py:other_function")
    other = readonly.private(str(tmp_path / "c"), f"{ROOT}/candidates/amax_vectorized.py:amax_vectorized")
    assert one["TMPDIR"] == str(tmp_path / "a" / "tmp") and again["TMPDIR"] == str(tmp_path / "b" / "tmp")
    for name in ("HARNESS_CACHE", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "CUDA_CACHE_PATH", "XDG_CACHE_HOME"):
        assert one[name] == again[name] != other[name]  # one file's runners share them, another file's do not
        assert one[name].startswith(str(tmp_path / "cache" / "runners")) and os.path.isdir(one[name])
    assert os.path.realpath(tmp_path / "cache") in readonly.shared()  # read-only in the view, but for the runner's own


def test_the_judge_reads_a_mount_table_deepest_and_topmost_first(tmp_path):
    table = tmp_path / "mountinfo"
    table.write_text("1 0 8:1 / / rw,relatime - ext4 /dev/a rw\n"
                     "2 1 8:1 /p /p\\040q rw,relatime - ext4 /dev/a rw\n"
                     "3 1 8:1 /p /p\\040q ro,relatime - ext4 /dev/a rw\n"
                     "4 1 8:1 /w /p\\040q/w rw - ext4 /dev/a rw\n")
    real_open = open

    def fake_open(path, *a, **k):
        return real_open(table, *a, **k) if str(path) == "/proc/7/mountinfo" else real_open(path, *a, **k)

    import builtins

    builtins.open, saved = fake_open, builtins.open
    try:
        assert readonly.unprotected(7, ["/p q", "/p q/sub", "/p q/w", "/elsewhere"]) == ["/p q/w", "/elsewhere"]
    finally:
        builtins.open = saved
    assert readonly.unprotected(2 ** 22 + 12345, ["/x"]) == ["/x"]  # no such process: nothing is assumed


@namespaced
def test_a_candidate_cannot_write_where_the_judge_or_another_runner_reads(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    readonly.protect(results)
    try:
        probe = tmp_path / "logs" / "probe.json"
        probe.parent.mkdir()
        monkeypatch.setenv("HARNESS_RUNNER_WRITABLE", str(probe.parent))  # where it may report
        others = [readonly.private(tempfile.mkdtemp(prefix="harness-runner-"), f"{ROOT}/candidates/fused.py:fused")]
        others = [others[0]["HARNESS_CACHE"], os.path.dirname(others[0]["TMPDIR"])]
        runner = spawn(f"{ROOT}/tests/hostile/writes.py:writes", TARGET.ref, "cpu", dataclasses.asdict(BenchConfig()), 120.0,
                       env={"PROBE_OUT": str(probe), "PROBE_OTHERS": os.pathsep.join(others)})
        try:
            assert readonly.unprotected(runner.pid, runner.read_only) == []
        finally:
            runner.close()
    finally:
        readonly._results.remove(str(results))
    found = json.loads(probe.read_text())
    assert str(ROOT) in found["read_only"] or any(str(ROOT).startswith(p + "/") for p in found["read_only"])
    assert str(results.resolve()) in found["read_only"]
    assert set(found["read_only"].values()) == {os.strerror(30)}, found  # EROFS everywhere
    assert set(found["python"].values()) == {os.strerror(30)}, found["python"]  # no planted stdlib zip, pyvenv.cfg
    assert found["relative_import_path"] == []  # the working folder (other runners can write it) is not on it
    assert set(found["escape"].values()) <= {"refused"} or "no unshare" in str(found["escape"]), found
    assert set(found["writable"].values()) == {"wrote"}, found
    assert len(found["others"]) == 2 and set(found["others"].values()) == {os.strerror(30)}, found["others"]
    shared = {os.path.realpath(tempfile.gettempdir()), os.path.realpath(readonly.cache_root())}
    assert shared <= set(found["read_only"])  # the temporary folder and the compile caches: only its own writable
    for path in found["read_only"]:
        assert not os.path.exists(os.path.join(path, found["name"]))
    assert "read-only" in isolation.describe()


@pytest.mark.parametrize("isolated", ["namespaces", "without"], indirect=True)
def test_a_module_planted_in_a_runners_scratch_folder_is_not_imported(tmp_path, monkeypatch, isolated):
    """Another runner can write into a new runner's scratch folder (its working folder) before it starts:
    modules planted there are not imported (an attacker's pass planted ``json.py``, which the bootstrap
    imported first, and rewrote the next runner's snapshot to sabotage another candidate)."""
    from harness.judge import sandbox

    marker = tmp_path / "planted-module-ran"
    monkeypatch.setenv("HARNESS_RUNNER_WRITABLE", str(tmp_path))  # so a planted module that ran could say so
    real = tempfile.mkdtemp

    def planted(*args, **kwargs):
        folder = real(*args, **kwargs)
        for name in ("json", "types", "typing", "torch", "harness", "oracles", "sitecustomize"):
            Path(folder, f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
        return folder

    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", planted)
    runner = spawn(f"{ROOT}/oracles/kcache_reference.py:quantize_k_cache_slow", TARGET.ref, "cpu",
                   dataclasses.asdict(BenchConfig()), 120.0)
    try:
        outcome = runner.call(TARGET.named_cases()[0])
    finally:
        runner.close()
    assert not marker.exists(), marker.read_text()
    assert not outcome.raised or "planted" not in outcome.error_line


def test_the_judge_has_all_of_its_code_in_memory_before_a_runner_starts():
    checkout.preload()
    for info in pkgutil.walk_packages(harness.__path__, "harness."):
        if info.name.endswith(".__main__"):
            continue
        try:
            importlib.util.find_spec(info.name)
        except ImportError:
            continue
        if info.name == "harness.judge.cluster":  # needs the optional [cluster] extra
            continue
        assert info.name in sys.modules, info.name


def test_each_command_keeps_only_its_own_output_folders_read_only(tmp_path, monkeypatch):
    from harness.cli.commands import main

    monkeypatch.setattr(readonly, "_results", [])
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    readonly.protect(earlier)
    assert str(earlier.resolve()) in readonly.protected()
    assert main(["list"]) == 0  # a new command forgets them
    assert str(earlier.resolve()) not in readonly.protected()
