"""Building the C kernels of the candidates: a C source compiled on first use with the system compiler (no
Python build dependency), cached, loaded through ctypes.

``load(source, flags, what)`` returns the ``ctypes.CDLL``, or None with one RuntimeWarning ("<what>
unavailable, using the torch fallback: <why>") where no compiler is found or compiling fails; the caller
then falls back to torch.  The shared library is cached per source text and compiler flags in
``$HARNESS_CACHE`` (default ``~/.cache/harness``) as ``<source stem>_<digest>.so`` and written
atomically (compiled to a temporary file in the cache, then renamed), so concurrent first uses cannot see
half a file.  The compiler is ``$CC``, else ``cc``, else ``gcc``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Sequence


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


def library_path(source: Path, flags: Sequence[str]) -> Path:
    """Where the library built from ``source`` with ``flags`` is cached."""
    digest = hashlib.sha256(source.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    return cache_dir() / f"{source.stem.lstrip('_')}_{digest}.so"


def compile_library(source: Path, flags: Sequence[str], target: Path) -> None:
    """Compile ``source`` into the shared library ``target`` (atomically); OSError saying why on failure."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler found (set CC)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([compiler, *flags, str(source), "-o", tmp, "-lm"], check=True, capture_output=True, text=True)
        os.replace(tmp, target)
    except subprocess.CalledProcessError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(f"compiling {source.name} failed: {exc.stderr.strip()[:500]}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(source: Path, flags: Sequence[str], what: str) -> ctypes.CDLL | None:
    """The library built from ``source`` (compiled now if not cached), or None with a warning."""
    try:
        library = library_path(source, flags)
        if not library.exists():
            compile_library(source, flags, library)
        return ctypes.CDLL(str(library))
    except OSError as exc:
        warnings.warn(f"{what} unavailable, using the torch fallback: {exc}", RuntimeWarning, stacklevel=3)
        return None
