"""Errors that are the user's to fix, shared by every stage: each is reported in one line, exit code 2."""


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit code 2."""
