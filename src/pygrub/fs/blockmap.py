"""Block maps as runs of file blocks, and the byte extents they make for base.py."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import compress

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


def joined_extents(extents: Iterable[Extent]) -> Iterator[Extent]:
    """``extents`` with each DATA extent that carries on from the one before, in the file
    and in the volume, joined to it: one copy in the kernel instead of one per piece."""
    pending: Extent | None = None
    for ext in extents:
        if (
            pending is not None
            and ext.kind is ExtentKind.DATA
            and pending.kind is ExtentKind.DATA
            and pending.file_offset + pending.length == ext.file_offset
            and pending.offset + pending.length == ext.offset
        ):
            pending = Extent(
                pending.file_offset, pending.length + ext.length, ExtentKind.DATA, pending.offset
            )
            continue
        if pending is not None:
            yield pending
        pending = ext
    if pending is not None:
        yield pending


def pointer_runs(pointers: Sequence[int], step: int = 1) -> Iterator[tuple[int, int, int]]:
    """(index, count, first pointer) of each run of non-zero pointers in which every one
    names the block ``step`` after the one before; zeros (holes) are in no run.

    A file written in one go is one run per map block. Runs are measured by comparing
    whole slices with the expected numbers, so a map block costs a few comparisons in C
    instead of a Python step per pointer, and a block of holes costs none.
    """
    nonzero = list(compress(range(len(pointers)), pointers))
    at = 0
    while at < len(nonzero):
        index = nonzero[at]
        count = _run_length(pointers, index, pointers[index], step)
        yield index, count, pointers[index]
        at += count  # every pointer of a run is non-zero: they climb from a non-zero one


def _run_length(pointers: Sequence[int], index: int, first: int, step: int) -> int:
    """How many pointers from ``index`` read first, first + step, first + 2 * step...:
    slices that double while they match and halve when they do not."""
    count, size = 1, 1
    while index + count < len(pointers):
        size = min(size, len(pointers) - index - count)
        start = first + count * step
        expected = range(start, start + size * step, step)
        if tuple(pointers[index + count : index + count + size]) == tuple(expected):
            count += size
            size *= 2
        elif size > 1:
            size //= 2
        else:
            break
    return count
