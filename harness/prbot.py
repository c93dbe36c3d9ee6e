"""The PR bot: post the report as a pull-request comment through the ``gh`` CLI, editing the bot's own
earlier comment (found by the hidden marker the comment starts with) instead of adding another.

Everything that talks to GitHub goes through ``gh api``, so authentication is gh's (``GH_TOKEN`` /
``GITHUB_TOKEN`` in CI, ``gh auth login`` locally).  Missing ``gh`` or credentials is a one-line error.
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


def _gh(args: list[str], gh: str) -> str:
    proc = subprocess.run([gh, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise PostError(f"gh {' '.join(args[:3])} failed: {detail[-1] if detail else f'exit code {proc.returncode}'}")
    return proc.stdout


def _repository(gh: str, repo: str | None) -> str:
    repo = repo or os.environ.get("GITHUB_REPOSITORY")
    if repo:
        return repo
    return _gh(["repo", "view", "--json", "nameWithOwner", "--jq", ".nameWithOwner"], gh).strip()


def post_comment(body: str, pr: int, marker: str, repo: str | None = None) -> Posted:
    """Create or update the comment on PR ``pr`` whose body starts with ``marker``."""
    gh = shutil.which("gh")
    if gh is None:
        raise PostError("cannot post: the GitHub CLI `gh` is not on PATH (https://cli.github.com)")
    if not (os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")):
        if subprocess.run([gh, "auth", "status"], capture_output=True).returncode != 0:
            raise PostError("cannot post: no GitHub token (set GH_TOKEN or run `gh auth login`)")
    repo = _repository(gh, repo)
    listing = _gh(["api", "--paginate", f"repos/{repo}/issues/{pr}/comments"], gh)
    try:
        comments = [c for page in _json_pages(listing) for c in page]
    except ValueError as exc:
        raise PostError(f"unexpected answer listing comments: {exc}") from None
    mine = next((c for c in comments if str(c.get("body", "")).startswith(marker)), None)
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
        url = json.loads(answer).get("html_url", "")
    except ValueError:
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
