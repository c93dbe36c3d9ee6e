"""The PR bot and export-tests, against a stand-in `gh` on PATH that records its arguments."""

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.render import report


from harness.core import schema
from harness.core.target import get_target
from harness.core.config import BenchConfig
from harness.cli.commands import main
from harness.render.export import export_tests
from harness.judge.pipeline import Pipeline
from harness.judge.plan import RunOptions

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    run = Pipeline(RunOptions(target="quantize_k_cache", sizes=["1x32x576"], examples=5, bench=BenchConfig(budget_s=0.2, min_rounds=3))).run()
    path = tmp_path_factory.mktemp("run") / "result.json"
    schema.write_atomic(path, schema.dumps(run))
    return run, path


def fake_gh(tmp_path, existing: list[dict], login: str = "harness-bot", head: str = "abc123", hang: bool = False) -> Path:
    """A `gh` that logs each call's arguments (and --input payload) and answers the comments listing, the
    token's user and the PR's head commit (or hangs, with ``hang``)."""
    log = tmp_path / "gh.log"
    script = tmp_path / "bin" / "gh"
    script.parent.mkdir()
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, sys, time
        args = sys.argv[1:]
        entry = {{"args": args}}
        if "--input" in args:
            entry["payload"] = json.load(open(args[args.index("--input") + 1]))
        with open({str(log)!r}, "a") as f:
            f.write(json.dumps(entry) + "\\n")
        if {hang!r}:
            time.sleep(600)
        if args[:2] == ["api", "--paginate"]:
            print(json.dumps({json.dumps(existing)}))
        elif args[:2] == ["api", "user"]:
            print({login!r})
        elif len(args) > 1 and "/pulls/" in args[1]:
            print({head!r})
        elif "-X" in args:
            print(json.dumps({{"html_url": "https://example.invalid/comment/1"}}))
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_post_creates_a_comment(saved, tmp_path, monkeypatch, capsys):
    run, path = saved
    log = fake_gh(tmp_path, existing=[{"id": 5, "body": "an unrelated comment"}])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GH_TOKEN", "token")
    monkeypatch.setenv("GITHUB_REPOSITORY", "owner/repo")
    assert main(["comment", "--from", str(path), "--post", "--pr", "7"]) == 0
    user, listing, create = calls(log)
    assert user["args"][:2] == ["api", "user"]
    assert listing["args"] == ["api", "--paginate", "repos/owner/repo/issues/7/comments"]
    assert create["args"][:4] == ["api", "-X", "POST", "repos/owner/repo/issues/7/comments"]
    assert create["payload"]["body"] == report.pr_comment(run)
    assert "created the comment on PR 7" in capsys.readouterr().out


def test_post_updates_its_own_earlier_comment_and_no_one_elses(saved, tmp_path, monkeypatch):
    run, path = saved
    forged = {"id": 42, "user": {"login": "someone-else"}, "body": report.marker(run) + "\n# ✅ All good"}
    earlier = {"id": 99, "user": {"login": "github-actions[bot]"}, "body": report.marker(run) + "\nold report"}
    log = fake_gh(tmp_path, existing=[{"id": 5, "user": {"login": "x"}, "body": "hello"}, forged, earlier])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GH_TOKEN", "token")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # posts as github-actions[bot]
    assert main(["comment", "--from", str(path), "--post", "--pr", "7", "--repo", "o/r"]) == 0
    update = calls(log)[-1]
    assert update["args"][:4] == ["api", "-X", "PATCH", "repos/o/r/issues/comments/99"]


def test_a_marked_comment_by_another_author_is_never_edited(saved, tmp_path, monkeypatch):
    run, path = saved
    forged = {"id": 42, "user": {"login": "someone-else"}, "body": report.marker(run) + "\n# ✅ All good"}
    log = fake_gh(tmp_path, existing=[forged])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GH_TOKEN", "token")
    assert main(["comment", "--from", str(path), "--post", "--pr", "7", "--repo", "o/r", "--author", "bot"]) == 0
    assert calls(log)[-1]["args"][:4] == ["api", "-X", "POST", "repos/o/r/issues/7/comments"]


def test_posting_needs_the_pr_head_to_be_the_commit_that_was_run(saved, tmp_path, monkeypatch, capsys):
    _, path = saved
    log = fake_gh(tmp_path, existing=[], head="def456")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GH_TOKEN", "token")
    argv = ["comment", "--from", str(path), "--post", "--pr", "7", "--repo", "o/r", "--author", "bot"]
    assert main([*argv, "--head-sha", "abc123"]) == 1
    assert "PR 7's head is def456, not the commit that was run (abc123): not posting" in capsys.readouterr().err
    assert not any("-X" in c["args"] for c in calls(log))
    assert main([*argv, "--head-sha", "def456"]) == 0


def test_a_hanging_gh_is_a_one_line_error(saved, tmp_path, monkeypatch, capsys):
    from harness.render import prbot

    _, path = saved
    fake_gh(tmp_path, existing=[], hang=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GH_TOKEN", "token")
    monkeypatch.setattr(prbot, "GH_TIMEOUT_S", 2.0)
    assert main(["comment", "--from", str(path), "--post", "--pr", "7", "--repo", "o/r", "--author", "bot"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: gh api --paginate") and err.endswith("timed out after 2 s") and "\n" not in err


def test_post_without_gh_says_so_in_one_line(saved, tmp_path, monkeypatch, capsys):
    _, path = saved
    monkeypatch.setenv("PATH", str(tmp_path))  # no gh here
    assert main(["comment", "--from", str(path), "--post", "--pr", "7"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: cannot post: the GitHub CLI `gh` is not on PATH") and "\n" not in err


def test_comment_prints_the_body(saved, capsys):
    run, path = saved
    assert main(["comment", "--from", str(path)]) == 0
    assert capsys.readouterr().out == report.pr_comment(run)


def test_exported_tests_run_and_catch_a_wrong_candidate(saved, tmp_path):
    run, path = saved
    out = tmp_path / "generated" / "test_quant_regression.py"
    assert main(["export-tests", "--from", str(path), "-o", str(out)]) == 0
    text = out.read_text()
    assert text == export_tests(run) and text.count("\ndef test_") == 25
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    good = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert good.returncode == 0 and "25 passed" in good.stdout, good.stdout[-1500:]
    bad = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out)], cwd=ROOT,
                         env={**env, "HARNESS_CANDIDATE": "tests/wrong_candidates.py:wrong_for_fp16"},
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "1 failed" in bad.stdout, bad.stdout[-1500:]



def test_exported_tests_run_from_any_folder(saved, tmp_path):
    """Kept inside the project (here a project of links to this one's packages), the file finds its oracles
    and candidates whatever folder pytest runs from."""
    run, path = saved
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    for package in ("oracles", "candidates"):
        (project / package).symlink_to(ROOT / package)
    out = project / "tests" / "test_exported.py"
    assert main(["export-tests", "--from", str(path), "-o", str(out)]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(elsewhere),
                           str(out)], cwd=elsewhere, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "25 passed" in proc.stdout, proc.stdout[-1500:]

WORKFLOWS = ROOT / ".github" / "workflows"


def test_the_job_that_runs_pr_code_has_nothing_to_write_with():
    workflow = (WORKFLOWS / "harness.yml").read_text()
    assert not re.search(r"^\s*pull_request_target\s*:", workflow, re.M)  # never the privileged trigger
    assert "\n  pull_request:\n" in workflow
    assert "persist-credentials: false" in workflow  # no token left in .git/config
    code = "\n".join(line for line in workflow.splitlines() if not line.lstrip().startswith("#"))
    assert ": write" not in code and "GH_TOKEN" not in code and "secrets." not in code
    assert "upload-artifact" in workflow and "harness comment" not in workflow
    for path in ("candidates/**", "oracles/**", "harness/**"):
        assert f'"{path}"' in workflow


def test_the_job_that_posts_runs_no_pr_code():
    workflow = (WORKFLOWS / "harness-comment.yml").read_text()
    assert "\n  workflow_run:\n    workflows: [harness]" in workflow
    assert "ref:" not in workflow  # the default branch's harness, never the pull request's
    assert "persist-credentials: false" in workflow and "pull-requests: write" in workflow
    assert "--head-sha" in workflow and "--author 'github-actions[bot]'" in workflow
    assert "${{ github.event.workflow_run.head_sha }}" in workflow.split("env:")[1]  # via env, not inline in run:


def test_workflows_pass_actionlint():
    import shutil

    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (the test extra installs it on Linux x86-64)")
    proc = subprocess.run([actionlint, *sorted(map(str, WORKFLOWS.glob("*.yml")))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_export_all_gives_every_named_case_and_its_twin(saved, tmp_path):
    run, path = saved
    out = tmp_path / "all.py"
    assert main(["export-tests", "--from", str(path), "-o", str(out), "--all"]) == 0
    text = out.read_text()
    named = get_target(run.target).named_cases()
    assert text.count("\ndef test_") == 2 * len(named) > 25
    assert "_again" in text and "'repeat'" in text
    namespace: dict = {}
    exec(compile(text, str(out), "exec"), namespace)  # importable as written
    tests = [v for k, v in namespace.items() if k.startswith("test_")]
    tests[0]()  # and the first one passes against the run's best candidate
