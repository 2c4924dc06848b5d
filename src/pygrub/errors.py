"""One exception family. Every message is a single line a Xen administrator can act on."""

from __future__ import annotations


class PygrubError(Exception):
    """Base of every error pygrub reports to the user (exit status 1)."""


class CorruptError(PygrubError):
    """An on-disk structure is malformed: names the structure and its offset."""


class UnsupportedError(PygrubError):
    """The image uses a feature pygrub does not read (named in the message)."""


class LimitError(PygrubError):
    """A bound on guest-controlled input was exceeded (named in the message)."""


class NotFoundError(PygrubError):
    """A path, volume or entry does not exist."""


class UsageError(PygrubError):
    """Bad command line (exit status 2)."""


class Interrupted(Exception):
    """A signal stopped the run (SIGTERM from libxl, Ctrl-C, the time budget).

    Not a PygrubError on purpose: the layers that skip a bad volume or config by
    catching PygrubError must never swallow it and carry on.
    """


def status_and_message(e: BaseException) -> tuple[int, str]:
    """The exit status and the one-line message of a run that raised ``e``: 2 for a usage
    error, 1 for any other; an exception that is not ours is a bug, said as one."""
    if isinstance(e, (PygrubError, Interrupted)):
        return (2 if isinstance(e, UsageError) else 1), str(e)
    return 1, f"internal error: {type(e).__name__}: {e}"
