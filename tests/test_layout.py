"""The layout is the architecture: ``harness.core`` imports nothing of the other subpackages; code that runs
in a runner (``harness.runner``) imports no judge or renderer code; renderers import no judge or runner code
(they are pure functions of results); no module outgrows a few hundred lines, no class 200.  Every import
is read from the source (also those inside functions), so a lazy import cannot slip past."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "harness"
FORBIDDEN = {  # subpackage -> subpackages it must not import
    "core": {"runner", "judge", "render", "cli"},
    "runner": {"judge", "render", "cli"},
    "render": {"judge", "runner", "cli"},
    "judge": {"render", "cli"},
}
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 200


def _modules() -> list[Path]:
    return sorted(p for p in HARNESS.rglob("*.py") if "__pycache__" not in p.parts)


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("harness.")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_subpackage_imports_only_what_it_may(package):
    wrong = [f"{path.relative_to(HARNESS.parent)} imports {name}"
             for path in sorted((HARNESS / package).rglob("*.py"))
             for name in sorted(_imported(path)) if name.split(".")[1] in FORBIDDEN[package]]
    assert not wrong, "\n".join(wrong)


def test_every_module_lives_in_a_subpackage():
    loose = [p.name for p in HARNESS.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert not loose


def test_no_module_or_class_outgrows_its_limit():
    too_long = []
    for path in _modules():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(HARNESS.parent)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"{path.relative_to(HARNESS.parent)}: class {node.name} "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "\n".join(too_long)
