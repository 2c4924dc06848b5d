"""The Filesystem contract and everything drivers share.

A driver knows one on-disk format and supplies node-level primitives: its root node,
a directory's entries (or a lookup of one name), a node's stat, a symlink's target and
a node's data extents. Path walking, ``.``/``..``, symlink following and its bound, and
the file object live here once, as GRUB keeps them in ``fshelp.c`` for all its drivers.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator

from .._typing import TYPE_CHECKING, Generic, TypeVar
from ..disk import ByteSource
from ..errors import CorruptError, LimitError, NotFoundError, PygrubError
from ..limits import MAX_DIR_ENTRIES, MAX_PATH_COMPONENTS, MAX_READ, MAX_SYMLINK_HOPS
from ..record import record
from .directory import ListingCache, find_entry, name_bytes

N = TypeVar("N")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: The longest symlink target we follow (Linux's PATH_MAX).
MAX_SYMLINK_TARGET = 4096


#: Parsed nodes (inodes, NAT blocks, tree nodes...) a driver keeps after a read: a path
#: walk touches only a few, and meets the same ones again.
CACHE_ENTRIES = 1024


class NodeCache(dict[K, V]):
    """Parsed on-disk nodes (or decoded blocks) by their address, at most ``limit`` of
    them: the oldest goes when a new one comes, so memory stays bounded whatever a hostile
    image makes a walk visit (a walk needs few nodes at once; a dropped one only costs
    reading it again). Look up with ``get``, remember with ``keep``."""

    __slots__ = ("limit",)

    def __init__(self, limit: int = CACHE_ENTRIES) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: K, value: V) -> V:
        """Remember ``value`` under ``key`` and answer it."""
        if len(self) >= self.limit:
            del self[next(iter(self))]
        self[key] = value
        return value


@record
class BlockWalk:
    """One walk over an inode's block map: whose, where its file ends in blocks, how far
    the map has got, and the block reads it may yet make. A real map reads no more blocks
    than the filesystem has; a looping one would, so ``spend`` stops it."""

    inode: int
    end_block: int
    reads_left: int
    #: The LimitError's message when the reads run out (each format words it its way).
    overrun: str
    next_block: int = 0

    def spend(self, count: int = 1) -> None:
        if self.reads_left < count:
            raise LimitError(self.overrun)
        self.reads_left -= count


class NodeType(enum.Enum):
    FILE = "file"
    DIR = "directory"
    SYMLINK = "symlink"
    OTHER = "other"


#: The file-type bits of a POSIX mode (S_IFMT), which most on-disk inodes store.
_MODE_TYPES = {0o100000: NodeType.FILE, 0o040000: NodeType.DIR, 0o120000: NodeType.SYMLINK}


def mode_type(mode: int) -> NodeType:
    """The type a POSIX ``st_mode`` names (S_IFREG, S_IFDIR, S_IFLNK; the rest OTHER)."""
    return _MODE_TYPES.get(mode & 0o170000, NodeType.OTHER)


@record(frozen=True)
class Stat:
    type: NodeType
    size: int
    #: POSIX permission bits where the filesystem has them, else 0.
    mode: int = 0


class ExtentKind(enum.Enum):
    DATA = "data"  # plain bytes at ``offset`` in the filesystem's source
    HOLE = "hole"  # reads as zeros
    ENCODED = "encoded"  # compressed or inline: the driver decodes it in read_encoded


@record(frozen=True)
class Extent:
    """``length`` bytes of a file starting at ``file_offset``; where they are depends on kind."""

    file_offset: int
    length: int
    kind: ExtentKind = ExtentKind.DATA
    #: DATA: byte offset in the filesystem's source. ENCODED: the driver's own locator.
    offset: int = 0
    #: ENCODED: anything else the driver needs to decode this extent.
    token: object = None


if TYPE_CHECKING:
    from typing import Literal

    #: What ``Filesystem.extents`` yields for each piece: a host (fd, offset) span, or a marker.
    Where = tuple[int, int] | Literal["hole", "encoded"]


def split_path(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


class Filesystem(ABC, Generic[N]):
    """A read-only filesystem on a byte source. Subclasses supply the primitives."""

    #: Short name used in messages and output: "ext4", "fat", "iso9660", ...
    kind: str = "unknown"
    #: FAT and ISO9660 without Rock Ridge compare names without case.
    case_insensitive: bool = False

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.uuid: str | None = None
        self.label: str | None = None

    # -- primitives a driver supplies ---------------------------------------------------

    @abstractmethod
    def root(self) -> N:
        """The root directory node."""

    @abstractmethod
    def node_stat(self, node: N) -> Stat:
        """Type, size and mode of a node."""

    @abstractmethod
    def dir_entries(self, node: N) -> Iterator[tuple[str, N]]:
        """Every entry of a directory node but ``.`` and ``..``, in on-disk order."""

    @abstractmethod
    def readlink(self, node: N) -> bytes:
        """The target of a symlink node."""

    @abstractmethod
    def node_extents(self, node: N) -> Iterator[Extent]:
        """The extents of a file's data in file order; gaps between them read as holes."""

    def lookup(self, node: N, name: str) -> N | None:
        """The child called ``name``, or None. Drivers with indexed directories override."""
        want = name.casefold() if self.case_insensitive else name
        for count, (entry_name, child) in enumerate(self.dir_entries(node)):
            if count >= MAX_DIR_ENTRIES:
                raise LimitError(f"{self.kind}: directory has over {MAX_DIR_ENTRIES} entries")
            if (entry_name.casefold() if self.case_insensitive else entry_name) == want:
                return child
        return None

    def boot_views(self) -> list[tuple[str, Filesystem]]:
        """Other roots a bootloader may read its files under, with a name for messages.

        Btrfs answers its default subvolume and ``@``: GRUB resolves paths from the top
        level, openSUSE's from the default subvolume. Most filesystems have none.
        """
        return []

    def grub_path(self, path: str) -> tuple[Filesystem, str]:
        """The filesystem and path GRUB's file name ``path`` means: itself on most; on ZFS,
        ``/dataset@snapshot/path`` names a file in another dataset of the pool."""
        return self, path

    def bootstring(self) -> str | None:
        """libfsimage's boot string (fsi_fs_bootstring), which Xen's pygrub gives a Solaris
        kernel: only ZFS has one."""
        return None

    def read_encoded(self, node: N, extent: Extent) -> bytes:
        """The decoded bytes of an ENCODED extent (exactly ``extent.length`` of them)."""
        raise CorruptError(
            f"{self.kind}: encoded extent at file offset {extent.file_offset} not supported"
        )

    # -- path walking, shared by every driver -------------------------------------------

    def resolve(self, path: str, follow_last: bool = True) -> N:
        """The node at ``path``. Symlinks resolve inside this filesystem, within a bound."""
        pending = split_path(path)
        if len(pending) > MAX_PATH_COMPONENTS:
            raise LimitError(f"path has over {MAX_PATH_COMPONENTS} components: {path[:80]!r}")
        trail = [self.root()]
        hops = 0
        walked: list[str] = []
        while pending:
            name = pending.pop(0)
            if name == "..":
                if len(trail) > 1:
                    trail.pop()
                    walked.pop()
                continue
            here = trail[-1]
            if self.node_stat(here).type is not NodeType.DIR:
                raise NotFoundError(f"{self.kind}: /{'/'.join(walked)} is not a directory")
            child = self.lookup(here, name)
            if child is None:
                raise NotFoundError(f"{self.kind}: no such file: {path}")
            if self.node_stat(child).type is NodeType.SYMLINK and (pending or follow_last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise LimitError(
                        f"{self.kind}: over {MAX_SYMLINK_HOPS} symlinks resolving {path}"
                    )
                target = self._symlink_target(child)
                if target.startswith("/"):
                    trail, walked = [self.root()], []
                pending = split_path(target) + pending
                if len(pending) > MAX_PATH_COMPONENTS:
                    raise LimitError(
                        f"{self.kind}: symlinks expand {path} past {MAX_PATH_COMPONENTS} components"
                    )
                continue
            trail.append(child)
            walked.append(name)
        return trail[-1]

    def _symlink_target(self, node: N) -> str:
        target = self.readlink(node)
        if len(target) > MAX_SYMLINK_TARGET:
            raise CorruptError(f"{self.kind}: symlink target of {len(target)} bytes")
        if not target:
            raise CorruptError(f"{self.kind}: empty symlink target")
        return target.decode("utf-8", "surrogateescape")

    # -- the public API -----------------------------------------------------------------

    def stat(self, path: str) -> Stat:
        return self.node_stat(self.resolve(path))

    def lstat(self, path: str) -> Stat:
        return self.node_stat(self.resolve(path, follow_last=False))

    def exists(self, path: str) -> bool:
        try:
            self.resolve(path)
        except NotFoundError:
            return False
        return True

    def is_file(self, path: str) -> bool:
        try:
            return self.stat(path).type is NodeType.FILE
        except NotFoundError:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            return self.stat(path).type is NodeType.DIR
        except NotFoundError:
            return False

    def listdir(self, path: str) -> list[str]:
        node = self.resolve(path)
        if self.node_stat(node).type is not NodeType.DIR:
            raise NotFoundError(f"{self.kind}: {path} is not a directory")
        names: list[str] = []
        for name, _child in self.dir_entries(node):
            if len(names) >= MAX_DIR_ENTRIES:
                raise LimitError(f"{self.kind}: {path} has over {MAX_DIR_ENTRIES} entries")
            names.append(name)
        return names

    def readlink_path(self, path: str) -> str:
        node = self.resolve(path, follow_last=False)
        if self.node_stat(node).type is not NodeType.SYMLINK:
            raise NotFoundError(f"{self.kind}: {path} is not a symlink")
        return self._symlink_target(node)

    def open(self, path: str) -> FileReader:
        node = self.resolve(path)
        st = self.node_stat(node)
        if st.type is not NodeType.FILE:
            raise NotFoundError(f"{self.kind}: {path} is a {st.type.value}, not a file")
        return FileReader(self, node, st.size, path)

    def read_file(self, path: str, limit: int) -> bytes:
        """At most ``limit`` bytes from the start of a file (configs are read this way)."""
        with self.open(path) as f:
            return f.read(min(limit, f.size))

    def extents(self, path: str) -> Iterator[tuple[int, int, Where]]:
        """(file_offset, length, where) covering the whole file, holes included, in order."""
        node = self.resolve(path)
        st = self.node_stat(node)
        if st.type is not NodeType.FILE:
            raise NotFoundError(f"{self.kind}: {path} is a {st.type.value}, not a file")
        for ext in checked_extents(self, node, st.size):
            if ext.kind is ExtentKind.HOLE:
                yield ext.file_offset, ext.length, "hole"
            elif ext.kind is ExtentKind.ENCODED:
                yield ext.file_offset, ext.length, "encoded"
            else:
                span = self.source.host_span(ext.offset, ext.length)
                yield ext.file_offset, ext.length, span if span is not None else "encoded"


if TYPE_CHECKING:
    from typing import Any

    #: A raw directory entry: (on-disk name, child, anything more ``entry_child`` needs).
    RawEntry = tuple[Any, ...]


class ByteNameFilesystem(Filesystem[N]):
    """A filesystem whose directory entries carry byte names, as every POSIX one does.

    The driver supplies ``raw_entries``; decoding names, the entry bound, lookups and the
    listing cache that makes a directory read once are here.
    """

    def __init__(self, source: ByteSource) -> None:
        super().__init__(source)
        self._listings: ListingCache[Hashable, RawEntry] = ListingCache()

    @abstractmethod
    def raw_entries(self, node: N) -> Iterator[RawEntry]:
        """``(name, child, ...)`` of every entry but ``.`` and ``..``, in on-disk order;
        a directory's entries, or none when ``node`` is no directory."""

    def entry_child(self, node: N, entry: RawEntry) -> N:
        """The node a raw entry of directory ``node`` names (XFS checks the number here,
        when the entry is used)."""
        return entry[1]

    def directory_name(self, node: N) -> str:
        """Directory ``node`` as messages name it."""
        return f"{self.kind}: directory inode {node}"

    def name_matcher(self, node: N, name: str, want: bytes) -> Callable[[bytes], bool] | None:
        """How an on-disk name is compared with ``name`` (``want`` in bytes) in directory
        ``node``: None for byte equality, looked up through the listing cache; casefolded
        directories answer their own comparison, which scans."""
        return None

    def dir_entries(self, node: N) -> Iterator[tuple[str, N]]:
        for entry in self.raw_entries(node):
            yield entry[0].decode("utf-8", "surrogateescape"), self.entry_child(node, entry)

    def lookup(self, node: N, name: str) -> N | None:
        want = name_bytes(name)
        if want is None:
            return None
        directory = self.directory_name(node)
        matches = self.name_matcher(node, name, want)
        if matches is None:
            found = self._listings.find_raw(node, want, lambda: self.raw_entries(node), directory)
        else:
            named = ((entry[0], entry) for entry in self.raw_entries(node))
            found = find_entry(named, matches, directory)
        return None if found is None else self.entry_child(node, found)


def checked_extents(fs: Filesystem[N], node: N, size: int) -> Iterator[Extent]:
    """The node's extents clipped to ``size``, gaps filled with holes, order and bounds checked.

    Whatever a driver yields, what comes out covers [0, size) exactly once, in order,
    and every DATA extent lies inside the source.
    """
    pos = 0
    for ext in fs.node_extents(node):
        if ext.length <= 0:
            continue
        if ext.file_offset < pos:
            raise CorruptError(
                f"{fs.kind}: extent at file offset {ext.file_offset} overlaps or goes back (at {pos})"
            )
        if ext.file_offset >= size:
            break
        if ext.file_offset > pos:
            yield Extent(pos, ext.file_offset - pos, ExtentKind.HOLE)
            pos = ext.file_offset
        length = min(ext.length, size - pos)
        if ext.kind is ExtentKind.DATA:
            if ext.offset < 0 or ext.offset + length > fs.source.size:
                raise CorruptError(
                    f"{fs.kind}: extent at file offset {ext.file_offset} points to bytes "
                    f"{ext.offset}..{ext.offset + length}, outside the {fs.source.size}-byte volume"
                )
        if length != ext.length:
            ext = Extent(ext.file_offset, length, ext.kind, ext.offset, ext.token)
        yield ext
        pos += length
        if pos >= size:
            break
    if pos < size:
        yield Extent(pos, size - pos, ExtentKind.HOLE)


class FileReader(Generic[N]):
    """A read-only file object over a node: read, readinto, seek, tell, size.

    Reads walk the extents lazily and remember where they are, so sequential reads of a
    file with many extents stay linear and memory does not grow with the file.
    """

    def __init__(self, fs: Filesystem[N], node: N, size: int, name: str = "") -> None:
        self.fs = fs
        self.node = node
        self.size = size
        self.name = name
        self._pos = 0
        self._extents: Iterator[Extent] | None = None
        self._current: Extent | None = None
        self._decoded: tuple[Extent, bytes] | None = None

    def __enter__(self) -> FileReader[N]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._extents = None
        self._current = None
        self._decoded = None

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}.get(whence)
        if base is None:
            raise ValueError(f"bad whence {whence}")
        pos = base + offset
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def _extent_at(self, pos: int) -> Extent:
        cur = self._current
        if cur is None or pos < cur.file_offset:
            self._extents = checked_extents(self.fs, self.node, self.size)
            cur = None
        while cur is None or pos >= cur.file_offset + cur.length:
            assert self._extents is not None
            cur = next(self._extents, None)
            if cur is None:
                raise CorruptError(f"{self.fs.kind}: {self.name}: no extent covers offset {pos}")
        self._current = cur
        return cur

    def _read_extent(self, ext: Extent, skip: int, length: int) -> bytes:
        if ext.kind is ExtentKind.HOLE:
            return bytes(length)
        if ext.kind is ExtentKind.DATA:
            data = self.fs.source.pread(ext.offset + skip, length)
            if len(data) != length:
                raise CorruptError(
                    f"{self.fs.kind}: {self.name}: data at {ext.offset + skip} is past the end of the volume"
                )
            return data
        if self._decoded is None or self._decoded[0] != ext:
            decoded = self.fs.read_encoded(self.node, ext)
            if len(decoded) < ext.length:
                raise CorruptError(
                    f"{self.fs.kind}: {self.name}: extent at {ext.file_offset} decodes short"
                )
            self._decoded = (ext, decoded)
        return self._decoded[1][skip : skip + length]

    def read(self, size: int = -1) -> bytes:
        remaining = self.size - self._pos
        if size < 0 or size > remaining:
            size = max(0, remaining)
        if size > MAX_READ:
            raise PygrubError(f"read of {size} bytes from {self.name} in one call: read in pieces")
        parts = []
        while size > 0:
            ext = self._extent_at(self._pos)
            skip = self._pos - ext.file_offset
            take = min(size, ext.length - skip)
            parts.append(self._read_extent(ext, skip, take))
            self._pos += take
            size -= take
        return b"".join(parts)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)
