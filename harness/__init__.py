"""harness: verify candidate implementations of a PyTorch function against its oracle, time them
honestly and report the speedup.

The stages, one module each: ``target`` (what a function under test declares), ``candidates`` (finding
them), ``sandbox`` (one call guarded, one job in a child process), ``verify``, ``bench`` with ``stats``,
``profile``, ``pipeline`` (the stages in order), ``result`` (the one JSON schema), and the renderers, pure
functions of a result: ``report`` (markdown, PR comment), ``console`` (terminal), ``export`` (pytest
file); plus ``gate`` (regression check), ``prbot`` (posting through gh) and ``cli``.
"""

import warnings

# torch warns at import when numpy is absent; numpy is not needed here, so keep the CLI output clean.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

from harness.candidates import candidate  # noqa: E402

__version__ = "0.1.0"
__all__ = ["candidate", "__version__"]
