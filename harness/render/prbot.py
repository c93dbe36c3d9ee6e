"""The PR bot: post the report as a pull-request comment through the ``gh`` CLI, editing the bot's own
earlier comment instead of adding another.  Runs in the judge's process (``harness comment``), in the
workflow that holds the write token and runs the default branch's harness, never the pull request's.

- "Its own" comment is one whose author is the posting identity *and* whose body starts with the hidden
  marker: anyone can write the marker into a comment of theirs.
- With ``head_sha`` the PR's current head must be the commit whose run is being posted (a result file
  names its PR number, and a result file is untrusted).
- Every ``gh`` call has a timeout; a hanging ``gh`` is a one-line error, as is a missing ``gh`` or token.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass


class PostError(Exception):
    """The comment could not be posted (reported in one line, non-zero exit)."""


@dataclass(frozen=True)
class Posted:
    action: str  # "created" or "updated"
    url: str


GH_TIMEOUT_S = 60.0
ACTIONS_BOT = "github-actions[bot]"  # who GITHUB_TOKEN posts as


def _gh(args: list[str], gh: str, timeout: float | None = None) -> str:
    timeout = timeout or GH_TIMEOUT_S
    try:
        proc = subprocess.run([gh, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PostError(f"gh {' '.join(args[:3])} timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise PostError(f"gh {' '.join(args[:3])} failed: {detail[-1] if detail else f'exit code {proc.returncode}'}")
    return proc.stdout


def _repository(gh: str, repo: str | None) -> str:
    repo = repo or os.environ.get("GITHUB_REPOSITORY")
    if repo:
        return repo
    return _gh(["repo", "view", "--json", "nameWithOwner", "--jq", ".nameWithOwner"], gh).strip()


def _author(gh: str, author: str | None) -> str:
    """The login the comment will be posted as: given, or the token's user, or the Actions bot."""
    if author:
        return author
    if os.environ.get("GITHUB_ACTIONS") == "true":
        return ACTIONS_BOT  # GITHUB_TOKEN cannot read /user
    login = _gh(["api", "user", "--jq", ".login"], gh).strip()
    if not login:
        raise PostError("cannot tell which GitHub account posts: pass --author LOGIN")
    return login


def _is_mine(comment: object, marker: str, author: str) -> bool:
    if not isinstance(comment, dict):
        return False
    user = comment.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    return login == author and str(comment.get("body", "")).startswith(marker)


def post_comment(body: str, pr: int, marker: str, repo: str | None = None, author: str | None = None,
                 head_sha: str | None = None) -> Posted:
    """Create or update the comment on PR ``pr`` that ``author`` wrote and that starts with ``marker``."""
    gh = shutil.which("gh")
    if gh is None:
        raise PostError("cannot post: the GitHub CLI `gh` is not on PATH (https://cli.github.com)")
    if not (os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")):
        try:
            status = subprocess.run([gh, "auth", "status"], capture_output=True, timeout=GH_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            status = 1
        if status != 0:
            raise PostError("cannot post: no GitHub token (set GH_TOKEN or run `gh auth login`)")
    repo = _repository(gh, repo)
    if head_sha is not None:
        head = _gh(["api", f"repos/{repo}/pulls/{pr}", "--jq", ".head.sha"], gh).strip()
        if head != head_sha:
            raise PostError(f"PR {pr}'s head is {head[:12] or 'unknown'}, not the commit that was run "
                            f"({head_sha[:12]}): not posting")
    author = _author(gh, author)
    listing = _gh(["api", "--paginate", f"repos/{repo}/issues/{pr}/comments"], gh)
    try:
        comments = [c for page in _json_pages(listing) for c in page]
    except (ValueError, TypeError) as exc:
        raise PostError(f"unexpected answer listing comments: {exc}") from None
    mine = next((c for c in comments if _is_mine(c, marker, author)), None)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        json.dump({"body": body}, handle)
        payload = handle.name
    try:
        if mine is None:
            answer = _gh(["api", "-X", "POST", f"repos/{repo}/issues/{pr}/comments", "--input", payload], gh)
            action = "created"
        else:
            answer = _gh(["api", "-X", "PATCH", f"repos/{repo}/issues/comments/{mine['id']}", "--input", payload], gh)
            action = "updated"
    finally:
        os.unlink(payload)
    try:
        url = str(json.loads(answer).get("html_url", ""))
    except (ValueError, AttributeError):
        url = ""
    return Posted(action, url)


def _json_pages(text: str) -> list[list[dict]]:
    """``gh api --paginate`` concatenates one JSON array per page."""
    decoder, pages, i = json.JSONDecoder(), [], 0
    text = text.strip()
    while i < len(text):
        page, i = decoder.raw_decode(text, i)
        pages.append(page)
        while i < len(text) and text[i].isspace():
            i += 1
    return pages
