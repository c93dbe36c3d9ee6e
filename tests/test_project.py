"""Project discovery (harness/core/project.py): the root is found like pytest's rootdir, its oracles/ and
candidates/ are loaded by path (never installed), and [tool.harness] holds defaults that flags override."""

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from harness.core import project
from harness.core.errors import UsageError
from tests.test_target import TOY

CANDIDATE = '''
    from harness import candidate

    @candidate
    def good(x):
        """Adds x to itself."""
        assert x.dim() == 1
        return x + x
'''


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_the_nearest_pyproject_with_a_harness_table_is_the_root(tmp_path):
    _write(tmp_path / "pyproject.toml", '[tool.harness]\ntarget = "double"\n')
    _write(tmp_path / "sub" / "pyproject.toml", '[project]\nname = "not-a-harness-project"\n')
    found = project.find(tmp_path / "sub")
    assert found.root == tmp_path.resolve() and found.config == {"target": "double"}
    assert found.pyproject == (tmp_path / "pyproject.toml").resolve()


def test_without_a_harness_table_the_current_folder_is_the_root(tmp_path):
    assert project.find(tmp_path) == project.Project(tmp_path.resolve())


@pytest.mark.parametrize("table, message", [
    ("colour = 1", "unknown key 'colour'; known: target, sizes"),
    ('noise_floor = 0.05', 'noise_floor must be a percentage like "5%", got 0.05'),
    ("timeout = -1", "timeout must be a positive number of seconds"),
    ('sizes = "4096"', "sizes must be a list of sizes (strings)"),
    ("examples = true", "examples must be an integer of at least 1"),
])
def test_a_bad_table_is_a_one_line_usage_error(tmp_path, table, message):
    _write(tmp_path / "pyproject.toml", f"[tool.harness]\n{table}\n")
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        project.find(tmp_path)


def test_a_package_of_the_same_name_from_elsewhere_is_refused(tmp_path, monkeypatch):
    foreign = types.ModuleType("candidates")
    foreign.__path__ = [str(tmp_path / "elsewhere" / "candidates")]
    monkeypatch.setitem(sys.modules, "candidates", foreign)
    monkeypatch.delitem(sys.modules, "oracles", raising=False)  # the suite has this repository's imported
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(UsageError, match="a package 'candidates' from .* is already imported, not the project's"):
        project.activate(project.Project(tmp_path / "mine"))


@pytest.fixture
def toy_project(tmp_path):
    """A second project: the toy target and one candidate, nothing installed, defaults in its table."""
    _write(tmp_path / "pyproject.toml", '[tool.harness]\ntarget = "double"\nwhere = "n>=3"\ntimeout = 120\n')
    _write(tmp_path / "oracles" / "__init__.py", "")
    _write(tmp_path / "oracles" / "double.py", TOY)
    _write(tmp_path / "candidates" / "__init__.py", "")
    _write(tmp_path / "candidates" / "good.py", CANDIDATE)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    return tmp_path


def _harness(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what is installed, as a user has
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)  # seconds alone; generous for a loaded machine


def test_another_project_is_found_from_below_its_root_and_uses_its_table(toy_project):
    done = _harness(toy_project / "deep" / "er", "verify", "--json", str(toy_project / "v.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    (cand,) = json.loads((toy_project / "v.json").read_text())["candidates"]
    assert cand["spec"] == "candidates/good.py:good" or cand["spec"].endswith("candidates/good.py:good")
    v = cand["verification"]
    assert v["domain"] == "n>=3" and v["excluded"] == 2  # [tool.harness] where: the two-dims case and its twin
    done = _harness(toy_project, "verify", "--where", "n>=1", "--json", str(toy_project / "w.json"))
    assert done.returncode == 0, done.stderr
    assert json.loads((toy_project / "w.json").read_text())["candidates"][0]["verification"]["excluded"] == 0


def test_this_repository_installs_only_the_tool():
    import tomllib

    root = Path(__file__).parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]
    assert all(p == "harness" or p.startswith("harness.") for p in packages) and "harness" in config["tool"]
    # ... and all of it: every package folder under harness/ is listed (a plain install would leave one out)
    folders = {".".join(f.parent.relative_to(root).parts) for f in (root / "harness").rglob("__init__.py")}
    assert folders == set(packages)
