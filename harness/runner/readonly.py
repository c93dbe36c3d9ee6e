"""A runner's read-only view of what the judge reads after runners start: the project's checkout, every folder
on the judge's import path (the virtual environment, the standard library) and the folders the run writes
its results into.  Without it a candidate could rewrite a module the judge imports later (the judge would
run its code), or leave a forged report beside the real ones.

The temporary folder and the compile caches are read-only too (``shared``): each runner gets a temporary
folder of its own and compile caches shared only with the runners of its candidate's file (``private``), so
no candidate can plant a kernel, a module or a file that another runner loads, in this run or a later one.

Runs in both processes.  The judge decides the paths (``environment``: read-only ones, and the folders that
stay writable inside them — the runner's scratch folder, its own caches) and passes them in the runner's
environment; the runner applies them first thing (``apply``, from
``isolation.harden_runner``, while it still holds the capabilities of its own user namespace and before it
has loaded any candidate code), then drops every capability, so the candidate can neither remount nor
unmount (in a user namespace it creates, the kernel locks the mounts it inherits).  The judge then checks
from outside, in ``/proc/PID/mountinfo``, that each path is read-only for that runner (``unprotected``),
rather than take the runner's word.  Only where runners get mount namespaces of their own
(``isolation.available``); elsewhere the checkout is compared before and after the run, and the judge has
imported all of its own code before the first runner starts (``harness.judge.environment.preload``).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path

READ_ONLY, WRITABLE = "HARNESS_READONLY", "HARNESS_WRITABLE"  # the runner's environment: os.pathsep-joined paths
_SYSTEM = ("/proc", "/sys", "/dev")  # never remounted: not code or results, and devices must stay usable
_OCTAL = re.compile(r"\\([0-7]{3})")  # mountinfo writes a space in a path as \040
_results: list[str] = []  # folders this run writes results into (``protect``)

# mount(2) flags, and the statvfs flags a remount must keep (the kernel refuses to drop a locked one)
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
_KEPT = ((2, 2), (4, 4), (8, 8), (1024, 1024), (2048, 2048), (4096, 1 << 21))  # nosuid nodev noexec noatime nodiratime relatime


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _deepest(path: str, roots: list[str]) -> str | None:
    found = [r for r in roots if _under(path, r)]
    return max(found, key=len) if found else None


# -- in the judge ------------------------------------------------------------------------------------------
def protect(folder: str | os.PathLike) -> None:
    """Keep ``folder`` (where this run writes reports, results or saved runs) read-only for its runners."""
    _results.append(str(folder))


def forget() -> None:
    """A new command: no output folders of an earlier one (a test's, say) are kept read-only."""
    _results.clear()


def protected() -> list[str]:
    """The read-only paths: the working folder, the folder holding ``harness/``, every folder on the import
    path (for an entry that does not exist, such as the standard library's zip, the folder it would be
    created in), Python's own folders (its prefixes, the interpreter's folder: ``pyvenv.cfg`` and the
    interpreter are read at start) and the run's result folders; existing folders, resolved, never a system
    filesystem, nor the temporary folder or a folder holding it (``/`` included)."""
    here = os.getcwd()
    python = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, os.path.dirname(sys.executable),
              os.path.dirname(os.path.realpath(sys.executable))]
    candidates = [here, str(Path(__file__).resolve().parents[2]), *(p or here for p in sys.path), *python, *_results]
    paths = {os.path.realpath(_existing(p)) for p in candidates if p}
    temporary = os.path.realpath(tempfile.gettempdir())  # tools write anywhere in it: never read-only as a whole
    return sorted(p for p in paths if not _under(temporary, p) and not any(_under(p, s) for s in _SYSTEM))


def _existing(path: str) -> str:
    """``path`` if it is a folder, else the nearest folder above it (where a planted file would go)."""
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def shared() -> list[str]:
    """Folders every runner could write and others read: the temporary folder (where the runners' scratch
    folders are) and the compile caches (C builds, Triton, CUDA's, torch's).  In the view they are read-only:
    a runner writes only into its own scratch folder and its own candidate's caches (``private``), so no
    candidate can plant a compiled kernel, a module or a file another runner loads, in this run or a later
    one."""
    home, env = Path.home(), os.environ
    paths = [tempfile.gettempdir(), cache_root(), env.get("TRITON_CACHE_DIR"), env.get("XDG_CACHE_HOME"),
             home / ".cache", home / ".triton", home / ".nv"]
    return sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)})  # (one missing: no runner uses it)


def cache_root() -> str:
    """Where the runners' compile caches live: ``$HARNESS_CACHE``, else ``~/.cache/harness``."""
    return os.environ.get("HARNESS_CACHE") or str(Path.home() / ".cache" / "harness")


def private(scratch: str, spec: str) -> dict[str, str]:
    """The runner's environment entries for its own folders: its temporary folder (in its scratch folder) and
    its compile caches, one folder per candidate source file (``runners/<digest of its path>`` under
    ``cache_root``), shared only by the runners of that file, in this run and later ones, so a candidate's
    C and Triton builds stay warm across its runners and runs, and no other candidate can write them."""
    source = os.path.realpath(spec.rsplit(":", 1)[0]) if ":" in spec else spec
    own = Path(cache_root()) / "runners" / hashlib.sha256(source.encode()).hexdigest()[:16]
    folders = {"TMPDIR": Path(scratch) / "tmp", "HARNESS_CACHE": own / "harness", "TRITON_CACHE_DIR": own / "triton",
               "TORCHINDUCTOR_CACHE_DIR": own / "inductor", "CUDA_CACHE_PATH": own / "nv", "XDG_CACHE_HOME": own / "xdg"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {name: str(folder) for name, folder in folders.items()}


def writable(scratch: str, own: dict[str, str] | None = None) -> list[str]:
    """What stays writable inside a read-only path: the runner's scratch folder, its own caches (``private``'s
    folders) and any folder named in the judge's ``HARNESS_RUNNER_WRITABLE`` (``os.pathsep``-joined: where
    candidates may leave logs; none by default)."""
    extra = os.environ.get("HARNESS_RUNNER_WRITABLE", "").split(os.pathsep)
    paths = [scratch, *(own or {}).values(), *extra]
    return sorted({os.path.realpath(p) for p in paths if p})


def environment(scratch: str, own: dict[str, str] | None = None) -> dict[str, str]:
    """The runner's environment entries that ask for the view (``own``: its ``private`` folders); a writable
    path inside a read-only one is created now, so that the runner can keep it writable."""
    read_only = sorted({*protected(), *shared()})
    holes = writable(scratch, own)
    for hole in holes:
        if _deepest(hole, read_only) is not None:
            os.makedirs(hole, exist_ok=True)
    return {READ_ONLY: os.pathsep.join(read_only), WRITABLE: os.pathsep.join(holes)}


def _mounts(pid: int | str = "self") -> list[tuple[str, str]]:
    """(mount point, mount options) of each mount ``pid`` sees, in order (a later one at a path is on top)."""
    out = []
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 5:
                out.append((_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4]), fields[5]))
    return out


def unprotected(pid: int, read_only: list[str]) -> list[str]:
    """The paths of ``read_only`` that runner ``pid`` can still write, read from its mount table by the judge
    (every path, where the table cannot be read)."""
    try:
        mounts = _mounts(pid)
    except OSError:
        return list(read_only)
    left = []
    for path in read_only:
        over = [(point, options) for point, options in mounts if _under(path, point)]
        top = max(over, key=lambda m: len(m[0]), default=None)  # max keeps the first: take the last of the longest
        if top is not None:
            top = [m for m in over if m[0] == top[0]][-1]
        if top is None or "ro" not in top[1].split(","):
            left.append(path)
    return left


_checked: dict[str, list[str]] = {"ok": [], "left": []}  # runners' paths found read-only / still writable


def check(pid: int, read_only: list[str]) -> None:
    """Record whether runner ``pid`` sees ``read_only`` read-only (for ``describe``)."""
    left = unprotected(pid, read_only)
    _checked["left" if left else "ok"].extend(left or read_only)


def describe() -> str:
    """What the report says of the view: "", "the checkout and Python's folders read-only", or why not."""
    if _checked["left"]:
        shown = ", ".join(sorted(set(_checked["left"]))[:3])
        return f"no read-only view (writable: {shown})"
    return "the checkout, Python's folders and the results read-only" if _checked["ok"] else ""


# -- in the runner -----------------------------------------------------------------------------------------
def apply() -> str | None:
    """Make the paths the judge named read-only for this process (in its own mount namespace), the writable
    ones inside them excepted; None, or why not (one line).  Called before any candidate code is loaded."""
    read_only = [p for p in os.environ.get(READ_ONLY, "").split(os.pathsep) if p]
    holes = [p for p in os.environ.get(WRITABLE, "").split(os.pathsep) if p]
    if not read_only or not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def mount(source: str | None, target: str, flags: int) -> None:
        if libc.mount(source and source.encode(), target.encode(), None, flags, None) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), target)

    try:
        # shallow first: a read-only folder, then a writable one inside it (copied from its bind, still
        # writable), or a read-only folder inside a writable one
        for path in sorted({*read_only, *holes}, key=len):
            if not os.path.isdir(path):
                continue
            enclosing = _deepest(path, [p for p in (*read_only, *holes) if p != path])
            wanted_ro = path in read_only
            if enclosing is None and not wanted_ro:
                continue  # a writable folder outside every read-only one is writable already
            if enclosing is not None and (enclosing in read_only) == wanted_ro:
                continue  # the enclosing bind already gives it what it needs
            mount(path, path, MS_BIND | MS_REC)
        for point in dict.fromkeys(point for point, _ in _mounts()):
            if any(_under(point, s) for s in _SYSTEM) or _deepest(point, read_only) is None:
                continue
            hole = _deepest(point, holes)
            if hole is not None and len(hole) > len(_deepest(point, read_only) or ""):
                continue
            kept = os.statvfs(point).f_flag
            mount(None, point, MS_REMOUNT | MS_BIND | MS_RDONLY | sum(ms for st, ms in _KEPT if kept & st))
    except OSError as exc:
        return f"{exc.strerror} ({exc.filename})"
    return None
