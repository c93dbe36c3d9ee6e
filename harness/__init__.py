"""harness: verify candidate implementations of a PyTorch function against its oracle, time them
honestly and report the speedup.

cases -> runners (one process per function) -> judge: verify, bench, profile -> report.

The layout follows it: ``harness.core`` (targets, domains, the result schema, the wire, settings,
statistics: shared, running nothing), ``harness.runner`` (inside a runner process, the only place candidate
code runs), ``harness.judge`` (the process that decides: verify, bench, profile, schedule), ``harness.render``
(reports, pure functions of results) and ``harness.cli``.  Each subpackage's docstring lists its modules.
"""

import warnings

# torch warns at import when numpy is absent; numpy is not needed here, so keep the CLI output clean.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

from harness.core.candidates import candidate  # noqa: E402

__version__ = "0.1.0"
__all__ = ["candidate", "__version__"]
