"""Renderers, pure functions of results (``harness.core.result``): ``report`` (markdown, PR comment),
``console`` (terminal), ``charts`` (SVG), ``export`` (a pytest file), ``history`` (saved runs) and ``prbot``
(posting a comment through gh).  Nothing here runs a function or times anything."""
