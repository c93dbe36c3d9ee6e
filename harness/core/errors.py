"""Errors that are the user's to fix, shared by every stage: each is reported in one line, exit code 2."""


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit code 2."""


# Exit codes, the same for every command (README, "Commands"): 0 everything asked for passed; 1 a candidate
# did not pass (or a round trip failed, the checkout changed, the regression gate tripped, a comment could
# not be posted); 2 a usage mistake; 3 everything passed but the machine was noisy while timing.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOISY = 0, 1, 2, 3

