"""Block maps as runs of file blocks, and the byte extents they make for base.py."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .base import Extent, ExtentKind

#: (first file block, block count, byte offset in the volume, or None: reads as zeros)
Run = tuple[int, int, int | None]


def merged_extents(runs: Iterable[Run], block_size: int) -> Iterator[Extent]:
    """Extents in bytes, runs that carry on from each other in the file and (for data)
    in the volume merged into one."""
    pending: Run | None = None
    for run in runs:
        if pending is not None and _continues(pending, run, block_size):
            pending = (pending[0], pending[1] + run[1], pending[2])
            continue
        if pending is not None:
            yield _extent(pending, block_size)
        pending = run
    if pending is not None:
        yield _extent(pending, block_size)


def _continues(before: Run, run: Run, block_size: int) -> bool:
    logical, count, where = before
    if run[0] != logical + count:
        return False
    if where is None or run[2] is None:
        return where is None and run[2] is None
    return run[2] == where + count * block_size


def _extent(run: Run, block_size: int) -> Extent:
    logical, count, where = run
    if where is None:
        return Extent(logical * block_size, count * block_size, ExtentKind.HOLE)
    return Extent(logical * block_size, count * block_size, ExtentKind.DATA, where)
