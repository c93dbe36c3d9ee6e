"""harness: verify candidate implementations of a PyTorch function against its oracle, time them
honestly and report the speedup.

cases -> runners (one process per function) -> judge: verify, bench, profile -> report.

In the judge (the process the user started, which never imports candidate code): ``project`` (the
project root and its ``[tool.harness]`` defaults), ``target`` (what a function under test declares),
``candidates`` (finding them by reading their source), ``domain`` (the inputs a candidate is judged on),
``sandbox`` (starting, talking to, stopping runners), ``verify``, ``bench`` with ``stats`` and ``noise``,
``roundtrip``, ``profile.explain``, ``checkout`` (the project before and after), ``machine`` (facts about
this machine), ``plan`` (the options checked into a frozen plan), ``pool`` (a run's runner processes),
``task`` (judging one candidate), ``pipeline`` (scheduling the tasks and merging their results), ``workers``
and ``lanes`` (``--jobs``: judge workers, and their turns at the device), ``result`` (the one JSON schema), and the renderers, pure functions of results: ``report``
(markdown, PR comment), ``console`` (terminal), ``charts`` (SVG), ``export`` (pytest file), with ``fmt``
(units, and untrusted text made safe); plus ``gate`` (runs compared across time), ``history`` (saved
runs), ``prbot`` (posting through gh), ``errors`` and ``cli``.  In a runner (``runner``, one process per
function under test): ``worker`` (build, call, time, profile), ``clocks`` and ``audit`` (process state).
``protocol`` is the wire between the two.
"""

import warnings

# torch warns at import when numpy is absent; numpy is not needed here, so keep the CLI output clean.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

from harness.candidates import candidate  # noqa: E402

__version__ = "0.1.0"
__all__ = ["candidate", "__version__"]
