"""Scanning directories: finding a name among on-disk entries within the entry bound, and
keeping listings read to their end for the lookups a path walk repeats."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Generic, TypeVar

from ..errors import LimitError
from ..limits import MAX_DIR_ENTRIES

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def name_bytes(name: str) -> bytes | None:
    """A path component as on-disk bytes (names are decoded with surrogateescape), or
    None when no on-disk name decodes to it."""
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def find_entry(
    entries: Iterable[tuple[bytes, T]], matches: Callable[[bytes], bool], directory: str
) -> T | None:
    """What the first entry whose name ``matches`` carries, or None; ``directory`` names
    the directory when it holds too many entries to scan."""
    for count, (name, found) in enumerate(entries):
        if count >= MAX_DIR_ENTRIES:
            raise LimitError(f"{directory} has over {MAX_DIR_ENTRIES} entries")
        if matches(name):
            return found
    return None


class ListingCache(Generic[K, T]):
    """Up to ``listings`` directory listings of at most ``entries`` items each; only a
    listing read to its end is kept, and the oldest goes first."""

    def __init__(self, listings: int, entries: int) -> None:
        self.listings = listings
        self.entries = entries
        self._kept: dict[K, list[T]] = {}

    def listing(self, key: K, scan: Callable[[], Iterator[T]]) -> Iterator[T]:
        """The items of the directory ``key``: kept ones, or those ``scan`` yields."""
        cached = self._kept.get(key)
        if cached is not None:
            yield from cached
            return
        kept: list[T] | None = []
        for item in scan():
            if kept is not None:
                kept.append(item)
                if len(kept) > self.entries:
                    kept = None
            yield item
        if kept is not None:
            if len(self._kept) >= self.listings:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = kept
