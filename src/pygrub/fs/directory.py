"""Scanning directories: finding a name among on-disk entries within the entry bound, and
keeping listings read to their end for the lookups that follow."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator

from .._typing import TYPE_CHECKING, Generic, TypeVar
from ..errors import LimitError
from ..limits import MAX_DIR_ENTRIES

if TYPE_CHECKING:
    from typing import Any

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def name_bytes(name: str) -> bytes | None:
    """A path component as on-disk bytes (names are decoded with surrogateescape), or
    None when no on-disk name decodes to it."""
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def casefold_key(name: str) -> str:
    """Names in a casefolded directory (ext4, F2FS) match when these agree (Linux folds NFD + casefold)."""
    import unicodedata

    return unicodedata.normalize("NFD", name.casefold())


def casefold_matcher(name: str, want: bytes) -> Callable[[bytes], bool]:
    """Whether an on-disk name in a casefolded directory is ``name`` (``want`` in bytes)."""
    folded = casefold_key(name)
    return lambda entry: (
        entry == want or casefold_key(entry.decode("utf-8", "surrogateescape")) == folded
    )


def bounded(entries: Iterable[T], directory: str) -> Iterator[T]:
    """``entries`` up to the entry bound; ``directory`` names the directory past it."""
    for count, entry in enumerate(entries):
        if count >= MAX_DIR_ENTRIES:
            raise LimitError(f"{directory} has over {MAX_DIR_ENTRIES} entries")
        yield entry


def find_entry(
    entries: Iterable[tuple[bytes, T]], matches: Callable[[bytes], bool], directory: str
) -> T | None:
    """What the first entry whose name ``matches`` carries, or None; ``directory`` names
    the directory when it holds too many entries to scan."""
    for name, found in bounded(entries, directory):
        if matches(name):
            return found
    return None


def entry_name(entry: tuple[K, object]) -> tuple[K]:
    """The name a ``(name, ...)`` entry is found by: ``names`` for ListingCache.find."""
    return (entry[0],)


def _first_name(entry: Any) -> tuple[Hashable]:
    """``entry_name`` of an entry whose type only the driver knows (a raw entry)."""
    return (entry[0],)


#: Directory entries kept by one filesystem, all listings and their indexes together:
#: enough for a /boot of 10,000 kernels or a loader/entries of 4,000 files. An entry
#: with a 255-character name costs about 1 KiB here, so at most 16 MiB whatever the
#: image holds (a 10,000-file FAT /boot: 4 MiB).
KEPT_ENTRIES = 16_384
#: Directories remembered as looked up once.
MAX_LOOKED_IN = 1024
#: A first lookup that finds its entry among this many stops there; one that reads
#: further is in a large directory, which it reads to the end for the lookups to come.
EARLY_STOP = 256


class ListingCache(Generic[K, T]):
    """Directory listings read to their end, kept for the lookups that follow: config
    discovery tries a dozen names in /boot and BLS reads every file of loader/entries, so
    a directory is read once, and a lookup in it is a dict lookup.

    At most ``budget`` items are kept in all; the oldest listings go first, and a
    directory larger than the budget is scanned at each lookup."""

    def __init__(self, budget: int = KEPT_ENTRIES) -> None:
        self.budget = budget
        self._kept: dict[K, list[T]] = {}
        self._indexes: dict[K, dict[Hashable, T]] = {}
        self._size = 0
        #: Directories with one lookup so far (which may have stopped at its entry).
        self._looked_in: set[K] = set()

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
                if len(kept) > self.budget:
                    kept = None
            yield item
        if kept is not None:
            self._keep(key, kept)

    def find(
        self,
        key: K,
        scan: Callable[[], Iterator[T]],
        want: Hashable,
        names: Callable[[T], Iterable[Hashable]],
    ) -> T | None:
        """The first item of directory ``key`` one of whose ``names`` is ``want``.

        The first lookup in a small directory stops at its entry (one file looked up
        once costs no more than that); otherwise the directory is read once to its end.
        """
        if key not in self._kept:
            first = key not in self._looked_in
            if first:
                if len(self._looked_in) >= MAX_LOOKED_IN:
                    self._looked_in.clear()
                self._looked_in.add(key)
            found = None
            for count, item in enumerate(self.listing(key, scan)):  # kept if read to its end
                if found is None and want in names(item):
                    found = item
                    if first and count < EARLY_STOP:
                        return found
            if key not in self._kept:
                return found
        index = self._indexes.get(key)
        if index is None:
            index = {}
            for item in self._kept[key]:
                for name in names(item):
                    index.setdefault(name, item)
            self._indexes[key] = index
        return index.get(want)

    def find_raw(
        self, key: K, want: bytes, entries: Callable[[], Iterable[T]], directory: str
    ) -> T | None:
        """The first ``(name, ...)`` entry of directory ``key`` whose on-disk name is
        ``want``; ``entries`` reads the directory, ``directory`` names it past the bound."""
        return self.find(key, lambda: bounded(entries(), directory), want, _first_name)

    def _keep(self, key: K, items: list[T]) -> None:
        while self._kept and self._size + len(items) > self.budget:
            oldest = next(iter(self._kept))
            self._size -= len(self._kept.pop(oldest))
            self._indexes.pop(oldest, None)
        self._kept[key] = items
        self._size += len(items)
