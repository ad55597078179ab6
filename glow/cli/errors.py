"""What can go wrong, by exit status."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """The command line is wrong: exit 2."""


class Failure(Exception):
    """The server, the network or the run said no: exit 1."""


class Unreachable(OSError):
    """No answer at all: the connection was refused or dropped before a status line."""


class Dropped(OSError):
    """The connection broke after the server had answered (mid-body, mid-stream)."""


class NoAnswerInTime(TimeoutError):
    """The server accepted the connection but did not answer within the timeout."""
