"""Work bounded in CPU seconds, not wall time.

A hostile input must not make a parser loop or go quadratic; the tests that check it
count this process's CPU time, which a busy machine (CI shares two cores with whatever
else runs) does not inflate as it does the wall clock. Speed itself is bench/'s business.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager


def cpu_seconds() -> float:
    """CPU seconds this process has used, in user and kernel mode."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def cpu_bounded(limit: float) -> Iterator[None]:
    """Fails unless the block used less than ``limit`` CPU seconds."""
    start = cpu_seconds()
    yield
    used = cpu_seconds() - start
    assert used < limit, f"the block used {used:.2f} CPU seconds, the bound is {limit}"
