"""The run's time budget (PYGRUB_TIMEOUT): SIGALRM once it is spent, which the command
turns into Interrupted; stopped while a person looks at a menu."""

from __future__ import annotations

import signal


def start(seconds: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, seconds)


def stop() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


class paused:  # noqa: N801 - used as a function: ``with paused(seconds):``
    """The clock stopped while a person looks at the menu, restarted with all ``seconds``
    after. A class, not contextlib's decorator: importing contextlib is time every run pays.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        stop()

    def __exit__(self, *_exc: object) -> None:
        start(self.seconds)
