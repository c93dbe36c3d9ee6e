"""``python -m harness`` is the ``harness`` command (useful where the package is on PYTHONPATH only)."""

import sys

from harness.cli.commands import main

sys.exit(main())
