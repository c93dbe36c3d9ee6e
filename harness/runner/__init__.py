"""What runs inside a runner, the one process per function under test (candidate code runs only here):
``serve`` (the request loop, started from the run's ``snapshot`` of the sources), ``worker`` (build, call,
time), ``fresh`` (fresh timing inputs), ``clocks``, ``audit`` (process state), ``isolation`` (namespaces,
scheduling) and ``profile`` (line and kernel profiles).  Imports ``harness.core`` only: never the judge's
or the renderers' code (``tests/test_layout.py`` checks it)."""
