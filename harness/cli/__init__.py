"""The ``harness`` command: ``arguments`` (the parser) and ``commands`` (one function per subcommand)."""

from harness.cli.commands import main

__all__ = ["main"]
