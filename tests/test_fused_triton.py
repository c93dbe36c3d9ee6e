"""The Triton kernel of the fused candidate, run by Triton's interpreter on the CPU (catches indexing and
layout errors without a GPU).  What is checked exactly and what loosely is explained in
tests/_interpret_fused.py; the GPU checks bit-exactness (tests/test_cuda.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="Triton is not installed (pip install -e '.[test]' installs it)")
pytest.importorskip("numpy", reason="Triton's interpreter needs numpy")


def test_kernel_under_the_interpreter():
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "tests._interpret_fused"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "TRITON_INTERPRET": "1", "PYTHONWARNINGS": "ignore"}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ok")]
    assert len(lines) == 26, proc.stdout  # saturation modes, 22 kernel checks, 3 error-parity checks
