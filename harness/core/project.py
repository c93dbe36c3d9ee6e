"""The project under test, found the way pytest finds its rootdir.  Runs in the judge; runners inherit its
import path.

``harness`` is the installable tool; a *project* is a folder with ``oracles/`` (its targets) and
``candidates/`` (the implementations under test), loaded by path, never installed as top-level packages
(generic names like these would collide between projects).  The project root is the nearest folder, from
the current directory up, whose ``pyproject.toml`` has a ``[tool.harness]`` table; else the current
directory.  ``activate`` puts the root first on the import path (as pytest's rootdir insertion does), so
``oracles`` and ``candidates`` are the project's, and refuses packages of those names already imported
from elsewhere.

``[tool.harness]`` holds the project's defaults; a flag on the command line overrides them:

    [tool.harness]
    target = "my_function"        # when the project has several
    sizes = ["4096", "65536"]
    policy = "exact"
    timeout = 300                  # seconds per candidate's work in its runner
    noise_floor = "5%"
    examples = 100
    budget = 6                     # seconds of timing per candidate and size
    processes = 1                  # runner pairs per candidate (default 1 on the CPU, 3 on CUDA)
    where = "dtype=float16"
"""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.core.errors import UsageError

PACKAGES = ("oracles", "candidates")


def _text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e9


def _percent(value: Any) -> bool:
    try:
        return isinstance(value, str) and value.endswith("%") and 0 < float(value[:-1]) < 100
    except ValueError:
        return False


# key -> (check, what it must be)
KEYS: Mapping[str, tuple[Any, str]] = {
    "target": (_text, "a target name"),
    "sizes": (lambda v: isinstance(v, list) and v != [] and all(_text(s) for s in v), "a list of sizes (strings)"),
    "policy": (_text, "a policy name"),
    "timeout": (_positive, "a positive number of seconds"),
    "noise_floor": (_percent, 'a percentage like "5%"'),
    "examples": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer of at least 1"),
    "budget": (_positive, "a positive number of seconds"),
    "processes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer of at least 1"),
    "where": (_text, "--where text"),
    "targets": (lambda v: isinstance(v, dict), "tables of declared targets ([tool.harness.targets.NAME])"),
}


@dataclass(frozen=True)
class Project:
    root: Path
    config: Mapping[str, Any] = field(default_factory=dict)  # [tool.harness], checked
    pyproject: Path | None = None  # where the config came from (None: no [tool.harness] found)


def find(start: Path | None = None) -> Project:
    """The project containing ``start`` (default: the current directory)."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        path = folder / "pyproject.toml"
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"{path}: cannot read it ({exc})") from None
        tool = data.get("tool")
        config = tool.get("harness") if isinstance(tool, dict) else None
        if config is not None:
            return Project(folder, _checked(config, path), path)
    return Project(start)


def root_above(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` with an ``oracles`` package (how a generated regression test
    run from another folder finds the project it was exported from)."""
    for folder in (path, *path.parents):
        if (folder / "oracles" / "__init__.py").is_file():
            return folder
    return None


def _checked(config: Any, path: Path) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise UsageError(f"{path}: [tool.harness] must be a table")
    for key, value in config.items():
        if key not in KEYS:
            raise UsageError(f"{path}: [tool.harness] has an unknown key {key!r}; known: {', '.join(KEYS)}")
        check, what = KEYS[key]
        if not check(value):
            raise UsageError(f"{path}: [tool.harness] {key} must be {what}, got {value!r}")
    return dict(config)


_ACTIVE: list[Project] = []  # the activated project (specs are named relative to its root)


def active_root() -> Path | None:
    return _ACTIVE[-1].root if _ACTIVE else None


def active_config() -> Mapping[str, Any]:
    """The activated project's ``[tool.harness]`` table (empty when none is active)."""
    return _ACTIVE[-1].config if _ACTIVE else {}


def activate(project: Project) -> None:
    """Make ``oracles`` and ``candidates`` import from the project root (first on the import path)."""
    root = str(project.root)
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    for name in PACKAGES:
        module = sys.modules.get(name)
        if module is None:
            continue
        where = [Path(p).resolve() for p in getattr(module, "__path__", [])]
        own = (project.root / name).resolve()  # (a linked package resolves elsewhere)
        if where and not any(p == own or p.is_relative_to(project.root) for p in where):
            raise UsageError(f"a package {name!r} from {where[0]} is already imported, not the project's "
                             f"({project.root / name}): run harness from the project, or rename one of them")
    _ACTIVE[:] = [dataclasses.replace(project, root=project.root.resolve())]
