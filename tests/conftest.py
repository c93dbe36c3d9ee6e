import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

from pathlib import Path  # noqa: E402

from harness.core import project  # noqa: E402

# This repository is a harness project: its oracles/ and candidates/ come from its root, wherever pytest
# was started from (they are not installed; see harness/core/project.py).
project.activate(project.find(Path(__file__).parent))

import pytest  # noqa: E402
import torch  # noqa: E402

_NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")


def cuda(test):
    """A CUDA-only test: marked ``cuda`` (so ``pytest -m cuda`` on the GPU machine selects it) and skipped,
    with the reason, where there is no CUDA device."""
    return pytest.mark.cuda(_NO_CUDA(test))


from tests._eight import EIGHT_ARGV, verdicts_of  # noqa: E402


@pytest.fixture(scope="session")
def one_job_out(tmp_path_factory):
    from harness.cli.commands import main

    out = tmp_path_factory.mktemp("one-job")
    assert main([*EIGHT_ARGV, "--out", str(out)]) == 1  # the wrong ones fail
    return out


@pytest.fixture(scope="session")
def one_job(one_job_out):
    return verdicts_of(one_job_out)


@pytest.fixture(params=["namespaces", "fallback"])
def isolated(request, monkeypatch):
    """Runners in namespaces (skipped where unavailable), or with the probe saying they are unavailable:
    True in namespaces."""
    from harness.runner import isolation

    if request.param == "namespaces":
        if not isolation.available():
            pytest.skip(f"no namespaces here: {isolation.describe()}")
    else:
        monkeypatch.setattr(isolation, "_PROBED", (None, "turned off by a test"))
    return request.param == "namespaces"
