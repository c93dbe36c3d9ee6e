"""harness: verify candidate implementations of a PyTorch function against its oracle, time them
honestly and report the speedup.

The stages, one module each: ``target`` (what a function under test declares), ``candidates``
(finding them), ``sandbox`` (running one call in isolation), ``verify``, ``bench`` with ``stats``,
``profile``, ``result`` (the one JSON schema) and ``render`` (pure functions of a result).
"""

import warnings

# torch warns at import when numpy is absent; numpy is not needed here, so keep the CLI output clean.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

from harness.candidates import candidate  # noqa: E402

__version__ = "0.1.0"
__all__ = ["candidate", "__version__"]
