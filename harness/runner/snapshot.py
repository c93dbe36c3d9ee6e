"""The code of a run, read once: a copy in memory of the checkout's Python sources that every runner
imports from, so that editing the checkout during a run — even an edit undone before the run ends —
cannot change what any runner executes (the oracle as the baseline, the harness's own runner code, another
candidate).

Two halves, in two processes:

- **The judge** (``take``, ``during``, ``for_runner``, ``send``, ``BOOT``): when a run starts it reads every
  ``.py`` file of the ``harness`` package, of the project's ``oracles/`` and ``candidates/`` packages (and of
  the package of each target it names), and the file of every candidate spec, into a ``Snapshot``.  A runner
  is started as ``python -c BOOT`` — the bootstrap is a string the judge holds, not a file that could be
  edited — and the snapshot is the first frame on its pipe, before ``hello``: an 8-byte big-endian length,
  then JSON (sources as latin-1 text, so any bytes survive).  A runner started again during the run (a
  baseline whose process died) gets the same snapshot, not what the disk holds by then.
- **The runner** (``install``, ``Finder``, ``file_spec``): ``BOOT`` reads the frame, executes this module from
  the snapshot's bytes, and ``install`` puts a ``Finder`` first on ``sys.meta_path`` that serves the
  snapshot's modules from memory (compiled from its bytes: no ``.pyc`` read or written; ``__file__`` is the
  original path, for messages) and refuses modules of those packages it does not hold (a file planted
  after the run started).  It also fills ``linecache`` with every snapshot file's lines, entries that are
  never checked against the disk, so that what ``inspect`` (and triton's JIT through it) and tracebacks
  read is the source that was compiled (``profile`` still reads a line table's text from the file itself).
  ``BOOT`` then imports ``harness.runner.serve`` (from the snapshot) and calls its ``main``.

Not covered: the virtual environment and the standard library (torch, triton, ...) load from disk as usual
and are trusted (README, trust model); data files next to the modules (a C source a candidate compiles) are
read from disk; a module spec (``package.module:function``) outside those packages is read into the
snapshot, its parent packages are not.  Changes to the checkout are still found and reported by ``checkout``.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import linecache
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

PACKAGES = ("harness", "oracles", "candidates")
SELF = "harness.runner.snapshot"


@dataclass(frozen=True)
class Snapshot:
    """The sources a run executes: absolute path -> bytes, and module name -> path (a package's path is
    its ``__init__.py``); ``digest`` names the whole."""

    sources: Mapping[str, bytes]
    modules: Mapping[str, str]
    digest: str

    @staticmethod
    def of(sources: Mapping[str, bytes], modules: Mapping[str, str]) -> "Snapshot":
        return Snapshot(dict(sources), dict(modules), _digest(sources, modules))

    @cached_property
    def frame(self) -> bytes:
        """The snapshot on the wire: 8-byte big-endian length, then JSON."""
        body = json.dumps({"digest": self.digest, "modules": self.modules,
                           "sources": {p: s.decode("latin-1") for p, s in self.sources.items()}}).encode("ascii")
        return len(body).to_bytes(8, "big") + body

    def covers(self, path: str | Path) -> bool:
        return str(path) in self.sources


def _digest(sources: Mapping[str, bytes], modules: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for path in sorted(sources):
        h.update(f"{path}\0{len(sources[path])}\0".encode("utf-8", "surrogateescape") + sources[path])
    h.update(json.dumps(sorted(modules.items())).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


# -- the judge's half ---------------------------------------------------------------------------------

# The bootstrap a runner is started with (``python -c BOOT READ_FD WRITE_FD``): read the snapshot, run this
# module from it, install it, then the runner's main from it.  Only the standard library is imported first.
BOOT = """\
import os, sys
sys.path[:] = [p for p in sys.path if os.path.isabs(p)]  # never the working folder: other runners can write it
import json, types
fd = int(sys.argv[1])
def read(n):
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise SystemExit(0)  # the judge is gone
        data += chunk
    return bytes(data)
frame = json.loads(read(int.from_bytes(read(8), "big")))
path = frame["modules"]["harness.runner.snapshot"]
module = types.ModuleType("harness.runner.snapshot")
module.__file__ = path
sys.modules["harness.runner.snapshot"] = module
exec(compile(frame["sources"][path].encode("latin-1"), path, "exec", dont_inherit=True), module.__dict__)
module.install(frame)
del frame
from harness.runner.serve import main
sys.exit(main(sys.argv[1:]))
"""


def _package_folder(name: str) -> Path | None:
    """The folder of the importable package ``name`` (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations or not spec.origin:
        return None  # not a package, or a namespace package (no __init__.py)
    return Path(spec.origin).resolve().parent


def _read(path: Path, sources: dict[str, bytes]) -> bool:
    try:
        sources[str(path)] = path.read_bytes()
        return True
    except OSError:
        return False


def _add_package(name: str, folder: Path, sources: dict[str, bytes], modules: dict[str, str]) -> None:
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        if "__pycache__" in parts or not all(p.isidentifier() for p in parts):
            continue
        module = ".".join([name, *(parts[:-1] if parts[-1] == "__init__" else parts)])
        if _read(path, sources):
            modules[module] = str(path)


def _spec_file(spec: str) -> tuple[str | None, Path] | None:
    """(module name or None, file) of a candidate spec, as a runner will load it; None for the oracle."""
    from harness.core.candidates import ORACLE_PREFIX, SpecError, _is_path, _module_file, _split, absolute

    if spec.startswith(ORACLE_PREFIX):
        return None
    try:
        where, _ = _split(absolute(spec))
        if _is_path(where):
            return None, Path(where).resolve()
        path = _module_file(where)
    except SpecError:
        return None  # the runner will say why it cannot load it
    return (where, path.resolve()) if path is not None else None


def take(specs: Iterable[str] = (), target_refs: Iterable[str] = (),
         packages: Mapping[str, Path] | None = None) -> Snapshot:
    """Read, now, the sources a run's runners will execute: ``PACKAGES`` (as this process finds them: the
    activated project's, or from the folder ``packages`` names for one), the package (or module) of each
    target reference, and each spec's file."""
    sources: dict[str, bytes] = {}
    modules: dict[str, str] = {}
    tops = [*PACKAGES, *(ref.partition(":")[0].split(".")[0] for ref in target_refs)]
    for name in dict.fromkeys(tops):
        folder = (packages or {}).get(name) or _package_folder(name)
        if folder is not None:
            _add_package(name, folder, sources, modules)
        elif name not in PACKAGES:  # a target defined by a top-level module
            found = _spec_file(f"{name}:TARGET")
            if found is not None and _read(found[1], sources):
                modules[name] = str(found[1])
    for spec in specs:
        found = _spec_file(spec)
        if found is not None and str(found[1]) not in sources and _read(found[1], sources) and found[0]:
            modules.setdefault(found[0], str(found[1]))
    return Snapshot.of(sources, modules)


# the snapshot of the run in progress, and others for specs whose file lies in a folder of their own (``during``)
_RUN: list[tuple[Snapshot, Mapping[Path, Snapshot]]] = []


@contextmanager
def during(snapshot: Snapshot, variants: Mapping[Path, Snapshot] | None = None) -> Iterator[Snapshot]:
    """Every runner started meanwhile (restarted ones too) loads from ``snapshot``; one for a spec whose
    file lies under a folder of ``variants`` from that folder's snapshot (``run --against``: another commit's
    ``candidates`` package, beside this run's harness and target)."""
    entry = (snapshot, dict(variants or {}))
    _RUN.append(entry)
    try:
        yield snapshot
    finally:
        _RUN.remove(entry)


def for_runner(spec: str, target_ref: str) -> Snapshot:
    """What a runner for ``spec`` starts from: the run's snapshot (or its variant for the spec's folder), or
    outside a run (``harness profile``, a test's runner) one taken now."""
    if not _RUN:
        return take([spec], [target_ref])
    run, variants = _RUN[-1]
    found = _spec_file(spec) if variants else None
    for folder, variant in variants.items():
        if found is not None and found[1].is_relative_to(folder):
            return variant
    return run


def send(fd: int, snapshot: Snapshot) -> None:
    """Write the snapshot frame, first growing the pipe (Linux) so that the judge need not wait for the
    runner to start reading it."""
    frame = snapshot.frame
    try:
        import fcntl

        fcntl.fcntl(fd, 1031, min(len(frame) + (64 << 10), 1 << 20))  # F_SETPIPE_SZ, at most the usual limit
    except (ImportError, OSError):
        pass
    view = memoryview(frame)
    try:
        while view:
            view = view[os.write(fd, view):]
    except BrokenPipeError:  # the runner is gone already: ``Runner.ready`` reads why
        pass


# -- the runner's half --------------------------------------------------------------------------------

class Loader:
    """Loads one module from the snapshot's bytes (``get_source`` serves ``inspect`` and ``linecache``)."""

    def __init__(self, path: str, source: bytes, package: bool) -> None:
        self.path, self.source, self.package = path, source, package

    def create_module(self, spec: Any) -> None:
        return None

    def get_code(self, name: str | None = None) -> Any:
        return compile(self.source, self.path, "exec", dont_inherit=True)

    def exec_module(self, module: Any) -> None:
        exec(self.get_code(), module.__dict__)

    def get_source(self, name: str | None = None) -> str:
        return importlib.util.decode_source(self.source)

    def get_filename(self, name: str | None = None) -> str:
        return self.path

    def is_package(self, name: str | None = None) -> bool:
        return self.package


class Finder:
    """First on ``sys.meta_path`` in a runner: the snapshot's modules from memory, and no other module of
    the packages it holds."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.packages = {name for name, path in snapshot.modules.items() if path.endswith("__init__.py")}

    def spec(self, name: str, path: str) -> importlib.machinery.ModuleSpec:
        package = name in self.packages
        spec = importlib.machinery.ModuleSpec(name, Loader(path, self.snapshot.sources[path], package),
                                              origin=path, is_package=package)
        spec.has_location = True  # sets __file__
        if package:
            spec.submodule_search_locations = [os.path.dirname(path)]
        return spec

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name in self.snapshot.modules:
            return self.spec(name, self.snapshot.modules[name])
        if name.rpartition(".")[0] in self.packages:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this run's snapshot of the checkout)",
                                      name=name)
        return None

    def invalidate_caches(self) -> None:
        pass

    def install(self) -> "Finder":
        """First on ``sys.meta_path``, and every snapshot file's lines in ``linecache`` (an entry whose mtime is
        None is never compared with the disk)."""
        sys.meta_path.insert(0, self)
        for path, source in self.snapshot.sources.items():
            lines = importlib.util.decode_source(source).splitlines(keepends=True)
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            linecache.cache[path] = (len(source), None, lines, path)
        return self


_INSTALLED: list[Finder] = []


def _decoded(frame: Mapping[str, Any]) -> Snapshot:
    sources = {str(p): str(s).encode("latin-1") for p, s in frame["sources"].items()}
    modules = {str(n): str(p) for n, p in frame["modules"].items() if str(p) in sources}
    snapshot = Snapshot.of(sources, modules)
    if snapshot.digest != frame.get("digest"):
        raise SystemExit("harness runner: the snapshot frame does not match its digest")
    return snapshot


def install(frame: Mapping[str, Any]) -> Finder:
    """In a runner, from ``BOOT``: the snapshot's modules and lines served first (``Finder.install``), and
    this module, which ``BOOT`` ran from the snapshot, made the ``harness.runner.snapshot`` of ``harness``."""
    snapshot = _decoded(frame)
    finder = Finder(snapshot).install()
    _INSTALLED[:] = [finder]
    me = sys.modules[SELF]  # as if imported through the finder
    me.__spec__ = finder.spec(SELF, snapshot.modules[SELF])
    me.__loader__ = me.__spec__.loader
    import harness.runner

    harness.runner.snapshot = me  # type: ignore[attr-defined]
    return finder


def file_spec(module_name: str, path: str | Path) -> importlib.machinery.ModuleSpec | None:
    """A runner's spec for a candidate file loaded by path (``candidates._import_file``), from the
    snapshot; None where no snapshot is installed (the judge, a test) or it lacks the file."""
    if not _INSTALLED or not _INSTALLED[0].snapshot.covers(path):
        return None
    return _INSTALLED[0].spec(module_name, str(path))
