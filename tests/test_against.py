"""``run --against REF`` (harness/judge/against.py): each passing candidate timed beside its own version at a
git commit, in the same run, and the gate decided on that within-run ratio.  In a throwaway project (the toy
target of test_project) that is a git repository of its own."""

import json
import subprocess
import textwrap

import pytest

from harness.core.errors import EXIT_FAILED
from tests.test_project import _harness, toy_project  # noqa: F401  (a fixture)

SLOWER = '''
    from harness import candidate

    @candidate
    def good(x):
        """Adds x to itself, and again, thirty times over (a planted slowdown)."""
        assert x.dim() == 1
        for _ in range(30):
            out = x + x
        return out
'''


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture
def committed(toy_project):  # noqa: F811
    _git(toy_project, "init", "-q")
    _git(toy_project, "add", "-A")
    _git(toy_project, "commit", "-qm", "toy")
    return toy_project


def _gate(project, *argv):
    done = _harness(project, "run", "--out", str(project / "out"), "--no-profile", "--examples", "5", *argv)
    result = json.loads((project / "out" / "double-cpu.json").read_text())
    return done, result["gate"]


def test_a_planted_slowdown_fails_the_gate_and_the_same_code_does_not(committed):
    done, gate = _gate(committed, "--against", "HEAD")
    assert gate["reference"].startswith("HEAD (") and "side by side" in gate["reference"]
    assert gate["checks"] and all(c["verdict"] not in ("slower", "faster") for c in gate["checks"]), gate
    assert gate["status"] in ("passed", "undecided", "noisy") and done.returncode != EXIT_FAILED, done.stderr
    (committed / "candidates" / "good.py").write_text(textwrap.dedent(SLOWER))
    done, gate = _gate(committed, "--against", "HEAD", "--fail-slower", "10%")
    # failed — or, on a machine too busy to judge, "noisy" with its own exit (3), never passed
    assert (done.returncode, gate["status"]) in ((EXIT_FAILED, "failed"), (3, "noisy")), (gate, done.stderr)
    if gate["status"] == "failed":  # (a machine too busy to judge says so instead)
        assert "regression gate failed: 1 of 1 candidate/size pair slower than HEAD" in " ".join(done.stderr.split())
        assert gate["checks"][0]["speedup_ci"][1] < 0.9
    report = (committed / "out" / "double-cpu.md").read_text()
    assert report.splitlines()[0].endswith(f"regression gate {gate['status']}")
    assert f"**Regression gate {gate['status']}** against HEAD (" in report


def test_a_new_candidate_is_not_gated_and_a_bad_ref_costs_nothing(committed):
    (committed / "candidates" / "fresh.py").write_text((committed / "candidates" / "good.py").read_text()
                                                       .replace("def good", "def fresh"))
    done, gate = _gate(committed, "--against", "HEAD", "--candidate", "candidates/fresh.py:fresh")
    assert gate["skipped"] == ["fresh: not gated (new since the reference)"] and not gate["checks"]
    assert gate["status"] == "failed" and "compared nothing" in gate["reason"] and done.returncode == EXIT_FAILED
    done = _harness(committed, "run", "--against", "no-such-ref", "--out", str(committed / "o2"))
    assert done.returncode == 2 and "--against no-such-ref: not a commit" in done.stderr
    assert not (committed / "o2").exists() or not any((committed / "o2").iterdir())
