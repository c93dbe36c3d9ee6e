"""A candidate that tries, when its runner imports it, to write where the judge reads: into every folder the
runner was asked to see read-only (the checkout, Python's folders, the run's results), also from a user
namespace of its own where it could try to unmount the view; into folders other runners use (``$PROBE_OTHERS``);
then into its scratch and temporary folders and its own compile caches, which must stay writable.  What happened goes, as JSON, to the file ``$PROBE_OUT`` names."""

import json
import os
import subprocess
import tempfile
import uuid

from oracles.kcache_reference import quantize_k_cache_slow

NAME = f".harness_probe_write-{uuid.uuid4().hex[:12]}"  # its own: a file an earlier probe left cannot read as written


def _try(path: str) -> str:
    try:
        with open(os.path.join(path, NAME), "w") as handle:
            handle.write("x")
        return "wrote"
    except OSError as exc:
        return os.strerror(exc.errno) if exc.errno else str(exc)


def _escape(path: str) -> str:
    """From a new user and mount namespace (needs no capability): unmount or remount the view, then write."""
    target = os.path.join(path, NAME)
    script = f"umount {path!r} 2>/dev/null; mount -o remount,rw,bind {path!r} 2>/dev/null; echo x > {target!r}"
    try:
        subprocess.run(["unshare", "-Um", "sh", "-c", script], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"no unshare ({type(exc).__name__})"
    return "wrote" if os.path.exists(target) else "refused"


def _python_folders() -> list[str]:
    """Where a file planted would run at the next interpreter's start: the interpreter's folder, Python's
    prefixes (``pyvenv.cfg``), and where an import-path entry that does not exist yet (the standard
    library's zip) would be created."""
    import sys

    folders = [os.path.dirname(sys.executable), sys.prefix, sys.base_prefix]
    for entry in sys.path:
        while entry and not os.path.isdir(entry):
            entry = os.path.dirname(entry)
        folders.append(entry)
    return sorted({f for f in folders if f and f != "/"})


read_only = [p for p in os.environ.get("HARNESS_READONLY", "").split(os.pathsep) if p]
found = {"name": NAME,
         "read_only": {p: _try(p) for p in read_only},
         "python": {p: _try(p) for p in _python_folders()},
         "relative_import_path": [p for p in __import__("sys").path if not os.path.isabs(p)],
         "escape": {p: _escape(p) for p in read_only},
         "writable": {p: _try(p) for p in (os.getcwd(), tempfile.gettempdir(), os.environ["HARNESS_CACHE"],
                                           os.environ["TRITON_CACHE_DIR"])},
         # another candidate's compile cache, another runner's scratch folder (the test made them)
         "others": {p: _try(p) for p in os.environ.get("PROBE_OTHERS", "").split(os.pathsep) if p}}
if os.environ.get("PROBE_OUT"):
    with open(os.environ["PROBE_OUT"], "w") as handle:
        json.dump(found, handle)


def writes(input_k_cache, dv=512, tile_size=128):
    """The original, once its import has tried the writes."""
    return quantize_k_cache_slow(input_k_cache, dv, tile_size)
