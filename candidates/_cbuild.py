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
import platform
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
    headers = b"".join(h.read_bytes() for h in sorted(source.parent.glob("_*.h")))  # what it may include
    digest = hashlib.sha256(source.read_bytes() + headers + " ".join(flags).encode()).hexdigest()[:16]
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


def _kernel_flags() -> list[str]:
    """The kernels' compiler flags: optimised for this machine, IEEE float32 as written (no contraction into
    FMAs, no fast-math), OpenMP.  On x86-64, 512-bit vectors where the CPU has them: gcc's tuning for Intel's
    AVX-512 server parts (what -march=native picks on a Xeon) otherwise keeps to 256-bit registers (gcc 12:
    no zmm register in the fused kernel with -march=sapphirerapids or icelake-server, 2302 with this EPYC's
    native tuning): that code, built and run on an EPYC, took 1.4-1.7x as long on one thread
    (benchmarks/cpu_kernel_flags.py)."""
    flags = ["-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-fopenmp", "-shared", "-fPIC"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags.insert(2, "-mprefer-vector-width=512")  # no effect where the CPU has no AVX-512
    return flags


KERNEL_FLAGS = _kernel_flags()
I64, PTR = ctypes.c_int64, ctypes.c_void_p


def load_kernels(source: Path, what: str, signatures: dict[str, list], flags: Sequence[str] | None = None
                 ) -> ctypes.CDLL | None:
    """``load``, with each named function given its argument types (``signatures``: name -> argtypes)
    and no return value; None where the library is unavailable.  ``flags``: ``KERNEL_FLAGS`` by default
    (read at the call: benchmarks/cpu_kernel_flags.py compares others)."""
    lib = load(source, KERNEL_FLAGS if flags is None else flags, what)
    for name, argtypes in signatures.items() if lib is not None else ():
        getattr(lib, name).argtypes, getattr(lib, name).restype = argtypes, None
    return lib


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
