import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

from pathlib import Path  # noqa: E402

from harness.core import project  # noqa: E402

# This repository is a harness project: its oracles/ and candidates/ come from its root, wherever pytest
# was started from (they are not installed; see harness/core/project.py).
project.activate(project.find(Path(__file__).parent))
