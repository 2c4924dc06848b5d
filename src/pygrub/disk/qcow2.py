"""qcow2 images, versions 2 and 3, read-only (QEMU docs/interop/qcow2.txt).

A ``Qcow2Source`` is the virtual disk. A read goes through the active L1 table and an L2
table to the clusters of the image file: unallocated clusters read from the backing file
(or as zeros), zero clusters as zeros, and compressed clusters are inflated one at a time,
never past the cluster size. Refcounts and snapshots are not needed to read the active
image and are not read. Every table entry is checked before it is followed; a table entry
can only point forwards to data, never to another table, so no walk can loop.
"""

from __future__ import annotations

import os
import struct
from collections import OrderedDict, namedtuple
from collections.abc import Iterator

from .._typing import TYPE_CHECKING
from ..compress import Decoder, inflate, zstd_decoder
from ..errors import CorruptError, LimitError, UnsupportedError
from ..log import get_logger
from .base import QCOW2_MAGIC, ByteSource, FileSource, backing_refusal, check_request

if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

MAGIC = QCOW2_MAGIC

# QCowHeader (big-endian), the fields of version 2: magic, version, backing_file_offset,
# backing_file_size, cluster_bits, size, crypt_method, l1_size, l1_table_offset,
# refcount_table_offset, refcount_table_clusters, nb_snapshots, snapshots_offset
_HEADER_V2 = struct.Struct(">4sIQIIQIIQQIIQ")
HeaderV2 = namedtuple(
    "HeaderV2",
    "magic version backing_file_offset backing_file_size cluster_bits size crypt_method "
    "l1_size l1_table_offset refcount_table_offset refcount_table_clusters nb_snapshots "
    "snapshots_offset",
)
# ... and what version 3 adds after them: incompatible_features, compatible_features,
# autoclear_features, refcount_order, header_length; then the optional compression_type
_HEADER_V3 = struct.Struct(">QQQII")
HeaderV3 = namedtuple(
    "HeaderV3",
    "incompatible_features compatible_features autoclear_features refcount_order header_length",
)
COMPRESSION_TYPE_OFFSET = 104
COMPRESSION_ZLIB, COMPRESSION_ZSTD = 0, 1

MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21  # QEMU's limit: 2 MiB clusters
MAX_BACKING_NAME = 1023
#: QEMU's limit on the L1 table: 32 MiB.
MAX_L1_BYTES = 32 << 20
#: How deep a chain of backing files may go below the image named on the command line.
MAX_BACKING_DEPTH = 4

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
#: Incompatible features that change nothing for a reader of the active L1 table.
READABLE_INCOMPAT = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION
REFUSED_INCOMPAT = {INCOMPAT_DATA_FILE: "external data file", INCOMPAT_EXTL2: "extended L2 entries"}
CRYPT_METHODS = {1: "AES", 2: "LUKS"}

# Header extensions: type, length (big-endian), then the data padded to 8 bytes.
_EXTENSION = struct.Struct(">II")
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_NAMES = 0x6803F857
# Feature name table entry: type (0 = incompatible), bit number, name padded with zeros
_FEATURE_NAME = struct.Struct(">BB46s")
FEATURE_INCOMPATIBLE = 0

_ENTRY = struct.Struct(">Q")
#: L1 entry: bits 9-55 the L2 table's offset, bit 63 COPIED, the rest reserved.
L1_OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
L1_RESERVED_MASK = 0x7F00_0000_0000_01FF
#: L2 entry: bit 62 compressed, bit 63 COPIED (a refcount hint a reader ignores); a
#: standard descriptor has bit 0 "reads as zeros" (version 3), bits 9-55 the host
#: cluster offset, the rest reserved.
L2_COMPRESSED = 1 << 62
L2_ZERO = 1
L2_OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
L2_RESERVED_MASK = 0x3F00_0000_0000_01FE
COMPRESSED_SECTOR = 512

#: L1 entries read at once, and the L2 table bytes kept after a read.
L1_PAGE_ENTRIES = 512
L2_CACHE_BYTES = 4 << 20

# What a run of guest clusters is.
ZEROS, BACKING, STORED, COMPRESSED = "zeros", "backing", "stored", "compressed"
#: (guest offset, length, kind, host offset for STORED / L2 entry for COMPRESSED)
Run = tuple[int, int, str, int]


def is_qcow2(head: bytes) -> bool:
    return head[:4] == MAGIC


def open_qcow2(path: str, depth: int = 0, allow_backing: bool = False) -> Qcow2Source:
    """The qcow2 image at ``path`` as its virtual disk (the file is opened read-only)."""
    container = FileSource(path)
    try:
        return Qcow2Source(container, path, depth, allow_backing)
    except BaseException:
        container.close()
        raise


class Qcow2Source:
    """The virtual disk of a qcow2 image in ``container`` (a ByteSource it owns).

    ``allow_backing``: a backing file in the image's own directory is read (the guest
    chose its name: the caller decides, PYGRUB_ALLOW_BACKING=1 for the command).
    """

    def __init__(
        self,
        container: ByteSource,
        path: str | None = None,
        depth: int = 0,
        allow_backing: bool = False,
    ) -> None:
        self.container = container
        self.path = path
        self.allow_backing = allow_backing
        self.name = path or "image"
        self.backing: Any = None
        self._l1_pages: dict[int, tuple[int, ...]] = {}
        self._l2_tables: OrderedDict[int, bytes] = OrderedDict()
        self._last_compressed: tuple[int, bytes] | None = None
        head = container.pread(0, _HEADER_V2.size + _HEADER_V3.size + 8)
        if len(head) < _HEADER_V2.size or not is_qcow2(head):
            raise CorruptError(f"qcow2: {self.name}: no qcow2 header at byte 0")
        h = HeaderV2._make(_HEADER_V2.unpack_from(head))
        self.version = h.version
        if self.version not in (2, 3):
            raise UnsupportedError(f"qcow2: {self.name}: version {self.version} (only 2 and 3)")
        self.cluster_bits = h.cluster_bits
        if not MIN_CLUSTER_BITS <= self.cluster_bits <= MAX_CLUSTER_BITS:
            raise self._header_error(f"cluster_bits {self.cluster_bits} is not in 9..21")
        self.cluster_size = 1 << self.cluster_bits
        self.l2_entries = self.cluster_size // _ENTRY.size
        if h.crypt_method:
            method = CRYPT_METHODS.get(h.crypt_method, f"method {h.crypt_method}")
            raise UnsupportedError(f"qcow2: {self.name} is encrypted ({method})")
        extensions_start, compression = self._check_v3_header(head)
        first_cluster = container.pread(0, self.cluster_size)
        extensions = self._header_extensions(first_cluster, extensions_start)
        self._check_features(extensions.get(EXT_FEATURE_NAMES, b""))
        self._decode_cluster = self._cluster_decoder(compression)
        self._size = h.size
        self.l1_size = h.l1_size
        self.l1_offset = h.l1_table_offset
        self._check_l1_table()
        if h.backing_file_offset:
            self.backing = self._open_backing(h, extensions.get(EXT_BACKING_FORMAT), depth)

    # -- the header ---------------------------------------------------------------------

    def _header_error(self, problem: str) -> CorruptError:
        return CorruptError(f"qcow2: {self.name}: header at byte 0: {problem}")

    def _check_v3_header(self, head: bytes) -> tuple[int, int]:
        """(where header extensions start, compression type); v3 feature bits kept."""
        self.incompatible = 0
        if self.version == 2:
            return _HEADER_V2.size, COMPRESSION_ZLIB
        if len(head) < _HEADER_V2.size + _HEADER_V3.size:
            raise self._header_error("version 3 header is truncated")
        v3 = HeaderV3._make(_HEADER_V3.unpack_from(head, _HEADER_V2.size))
        length = v3.header_length
        if length < _HEADER_V2.size + _HEADER_V3.size or length % 8 or length > self.cluster_size:
            raise self._header_error(f"header_length {length} is not a multiple of 8 in 104..")
        self.incompatible = v3.incompatible_features
        compression = COMPRESSION_ZLIB
        if length > COMPRESSION_TYPE_OFFSET:
            if len(head) <= COMPRESSION_TYPE_OFFSET:
                raise self._header_error(
                    f"header_length {length} runs past the end of the file at byte {len(head)}"
                )
            compression = head[COMPRESSION_TYPE_OFFSET]
        if bool(self.incompatible & INCOMPAT_COMPRESSION) != (compression != COMPRESSION_ZLIB):
            raise self._header_error(
                f"compression type {compression} disagrees with the compression type feature bit"
            )
        return length, compression

    def _header_extensions(self, first_cluster: bytes, start: int) -> dict[int, bytes]:
        """type -> data of each header extension between the header and the cluster's end."""
        found: dict[int, bytes] = {}
        pos = start
        while pos + _EXTENSION.size <= len(first_cluster):
            kind, length = _EXTENSION.unpack_from(first_cluster, pos)
            if kind == EXT_END:
                break
            data_at = pos + _EXTENSION.size
            if data_at + length > len(first_cluster):
                raise CorruptError(
                    f"qcow2: {self.name}: header extension 0x{kind:08x} at byte {pos} "
                    f"of {length} bytes runs past the first cluster"
                )
            found.setdefault(kind, first_cluster[data_at : data_at + length])
            pos = data_at + (length + 7) // 8 * 8
        return found

    def _check_features(self, names_table: bytes) -> None:
        if self.incompatible & INCOMPAT_CORRUPT:
            log.info("qcow2: %s is marked corrupt; reading it anyway", self.name)
        refused = []
        for bit in range(64):
            mask = 1 << bit
            if self.incompatible & mask and not mask & READABLE_INCOMPAT:
                refused.append(
                    REFUSED_INCOMPAT.get(mask) or feature_name(names_table, bit) or f"bit {bit}"
                )
        if refused:
            raise UnsupportedError(
                f"qcow2: {self.name}: unsupported incompatible features: {', '.join(refused)}"
            )

    def _cluster_decoder(self, compression: int) -> Decoder:
        if compression == COMPRESSION_ZLIB:
            # QEMU writes raw deflate with a 4 KiB window and stops reading once the
            # cluster is full: what follows in the last sector may be the next cluster's.
            return lambda data, limit: inflate(data, limit, -12)
        if compression == COMPRESSION_ZSTD:
            return zstd_decoder("qcow2")
        raise UnsupportedError(f"qcow2: {self.name}: compression type {compression}")

    def _check_l1_table(self) -> None:
        covered = self.l1_size * self.l2_entries * self.cluster_size
        if covered < self._size:
            raise self._header_error(
                f"an L1 table of {self.l1_size} entries cannot map the {self._size}-byte disk"
            )
        if self.l1_size * _ENTRY.size > MAX_L1_BYTES:
            raise LimitError(
                f"qcow2: {self.name}: L1 table of {self.l1_size} entries is over QEMU's 32 MiB"
            )
        if self.l1_size == 0:
            return
        end = self.l1_offset + self.l1_size * _ENTRY.size
        if self.l1_offset % self.cluster_size or end > self.container.size:
            raise self._header_error(
                f"L1 table at byte {self.l1_offset} is unaligned or runs past the end of the file"
            )

    # -- the backing file ---------------------------------------------------------------

    def _open_backing(self, h: Any, fmt: bytes | None, depth: int) -> ByteSource:
        length = h.backing_file_size
        if not 0 < length <= MAX_BACKING_NAME:
            raise self._header_error(f"backing_file_size {length} is not in 1..1023")
        raw = self.container.pread(h.backing_file_offset, length)
        if len(raw) != length or b"\0" in raw:
            raise self._header_error(
                f"backing file name at byte {h.backing_file_offset} is truncated or holds a NUL"
            )
        name = os.fsdecode(raw)
        path = self._backing_path(name)
        if depth + 1 > MAX_BACKING_DEPTH:
            raise LimitError(
                f"qcow2: {self.name}: backing file {name!r} is over {MAX_BACKING_DEPTH} levels deep"
            )
        fmt_name = None if fmt is None else fmt.decode("ascii", "replace")
        if fmt_name is None:  # no format named: QEMU probes, and so do we (raw or qcow2)
            probe = FileSource(path)
            try:
                fmt_name = "qcow2" if is_qcow2(probe.pread(0, 4)) else "raw"
            finally:
                probe.close()
        if fmt_name == "raw":
            return FileSource(path)
        if fmt_name == "qcow2":
            return open_qcow2(path, depth + 1, self.allow_backing)
        raise UnsupportedError(
            f"qcow2: {self.name}: backing file {name!r} has format {fmt_name!r} (raw or qcow2 only)"
        )

    def _backing_path(self, name: str) -> str:
        """The backing file's real path, if reading it is allowed: only in the image's own
        directory, and only when the caller allows it (the guest chose the name)."""
        refusal = f"qcow2: {self.name} has a backing file {name!r}"
        if not self.allow_backing:
            raise UnsupportedError(
                f"{refusal}: backing files are not read "
                "(PYGRUB_ALLOW_BACKING=1 allows one in the image's own directory)"
            )
        why_not = backing_refusal()
        if why_not is not None:
            raise UnsupportedError(f"{refusal}: {why_not}")
        if self.path is None:
            raise UnsupportedError(f"{refusal}: the image has no directory to look in")
        directory = os.path.dirname(os.path.abspath(self.path))
        real = os.path.realpath(os.path.join(directory, name))
        if os.path.dirname(real) != os.path.realpath(directory):
            raise UnsupportedError(f"{refusal} outside the image's directory {directory}")
        return real

    # -- L1 and L2 tables ---------------------------------------------------------------

    def _l1_entry(self, index: int) -> int:
        page, slot = divmod(index, L1_PAGE_ENTRIES)
        entries = self._l1_pages.get(page)
        if entries is None:
            first = page * L1_PAGE_ENTRIES
            count = min(L1_PAGE_ENTRIES, self.l1_size - first)
            raw = self.container.pread(self.l1_offset + first * _ENTRY.size, count * _ENTRY.size)
            if len(raw) != count * _ENTRY.size:
                raise self._header_error("L1 table is truncated")
            entries = struct.unpack(f">{count}Q", raw)
            self._l1_pages[page] = entries
        return entries[slot]

    def _l2_table(self, l1_index: int) -> bytes | None:
        """The L2 table under L1 entry ``l1_index``, or None when it is unallocated."""
        entry = self._l1_entry(l1_index)
        where = self.l1_offset + l1_index * _ENTRY.size
        if entry & L1_RESERVED_MASK:
            raise CorruptError(
                f"qcow2: {self.name}: L1 entry {l1_index} at byte {where}: reserved bits set "
                f"(0x{entry:016x})"
            )
        offset = entry & L1_OFFSET_MASK
        if offset == 0:
            return None
        table = self._l2_tables.get(offset)
        if table is not None:
            self._l2_tables.move_to_end(offset)
            return table
        if offset % self.cluster_size:
            raise CorruptError(
                f"qcow2: {self.name}: L1 entry {l1_index} at byte {where}: L2 table at byte "
                f"{offset} is not cluster-aligned"
            )
        table = self.container.pread(offset, self.cluster_size)
        if len(table) != self.cluster_size:
            raise CorruptError(
                f"qcow2: {self.name}: L1 entry {l1_index} at byte {where}: L2 table at byte "
                f"{offset} is past the end of the file"
            )
        while self._l2_tables and (len(self._l2_tables) + 1) * self.cluster_size > L2_CACHE_BYTES:
            self._l2_tables.popitem(last=False)
        self._l2_tables[offset] = table
        return table

    def _cluster_runs(self, offset: int, length: int) -> Iterator[Run]:
        """One run per guest cluster touched by [offset, offset + length), in order."""
        end = offset + length
        cluster = offset >> self.cluster_bits
        while offset < end:
            l1_index, l2_index = divmod(cluster, self.l2_entries)
            if l1_index >= self.l1_size:
                raise CorruptError(
                    f"qcow2: {self.name}: guest offset {offset} is past the L1 table"
                )
            table = self._l2_table(l1_index)
            count = min(self.l2_entries - l2_index, ((end - 1) >> self.cluster_bits) - cluster + 1)
            if table is None:
                entries: Any = (0,) * count
            else:
                entries = struct.unpack_from(f">{count}Q", table, l2_index * _ENTRY.size)
            for entry in entries:
                start = cluster << self.cluster_bits
                skip = offset - start
                n = min(self.cluster_size - skip, end - offset)
                kind, where = self._classify(entry, cluster)
                yield offset, n, kind, where + skip if kind == STORED else where
                offset += n
                cluster += 1
                if offset >= end:
                    return

    def _classify(self, entry: int, cluster: int) -> tuple[str, int]:
        """What the L2 entry for guest cluster ``cluster`` says: (kind, host offset or entry)."""
        if entry & L2_COMPRESSED:
            return COMPRESSED, entry
        what = f"qcow2: {self.name}: L2 entry for guest offset {cluster << self.cluster_bits}"
        if entry & L2_RESERVED_MASK:
            raise CorruptError(f"{what}: reserved bits set (0x{entry:016x})")
        host = entry & L2_OFFSET_MASK
        if entry & L2_ZERO:
            if self.version < 3:
                raise CorruptError(f"{what}: zero flag in a version 2 image")
            return ZEROS, 0
        if host == 0:
            return (BACKING if self.backing is not None else ZEROS), 0
        if host % self.cluster_size or host >= self.container.size:
            raise CorruptError(
                f"{what}: data cluster at byte {host} is unaligned or past the end of the file"
            )
        return STORED, host

    def _runs(self, offset: int, length: int) -> Iterator[Run]:
        """Runs of clusters merged where they read alike: stored clusters that follow each
        other in the file, and neighbouring zero or backing clusters."""
        pending: list[Any] | None = None
        for run in self._cluster_runs(offset, length):
            if pending is not None:
                p_offset, p_length, p_kind, p_where = pending
                if run[2] == p_kind and (
                    p_kind in (ZEROS, BACKING)
                    or (p_kind == STORED and run[3] == p_where + p_length)
                ):
                    pending[1] += run[1]
                    continue
                yield p_offset, p_length, p_kind, p_where
            pending = list(run)
        if pending is not None:
            yield pending[0], pending[1], pending[2], pending[3]

    # -- reading ------------------------------------------------------------------------

    def _compressed_cluster(self, entry: int, guest: int) -> bytes:
        cached = self._last_compressed
        if cached is not None and cached[0] == entry:
            return cached[1]
        x = 62 - (self.cluster_bits - 8)
        descriptor = entry & ((1 << 62) - 1)
        host = descriptor & ((1 << x) - 1)
        sectors = (descriptor >> x) + 1
        stored = sectors * COMPRESSED_SECTOR - (host % COMPRESSED_SECTOR)
        what = f"qcow2: {self.name}: compressed cluster for guest offset {guest} at byte {host}"
        if host >= self.container.size:
            raise CorruptError(f"{what} is past the end of the file")
        # The last sector may run past the end of the file; the stream ends before it.
        data = self.container.pread(host, min(stored, self.container.size - host))
        try:
            cluster = self._decode_cluster(data, self.cluster_size)
        except CorruptError as e:
            raise CorruptError(f"{what}: {e}") from None
        if len(cluster) != self.cluster_size:
            raise CorruptError(f"{what} decodes to {len(cluster)} bytes, not a whole cluster")
        self._last_compressed = (entry, cluster)
        return cluster

    def _read_run(self, run: Run) -> bytes:
        offset, length, kind, where = run
        if kind == ZEROS:
            return bytes(length)
        if kind == BACKING:
            data = self.backing.pread(offset, length)
        elif kind == STORED:
            data = self.container.pread(where, length)
        else:
            start = offset & ~(self.cluster_size - 1)
            cluster = self._compressed_cluster(where, start)
            skip = offset - start
            return cluster[skip : skip + length]
        # Past the end of a backing file, or of a last cluster the file does not fully
        # hold, the disk reads as zeros (as QEMU reads it).
        return data + bytes(length - len(data))

    @property
    def size(self) -> int:
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        length = check_request(offset, length, self._size)
        if length == 0:
            return b""
        parts = [self._read_run(run) for run in self._runs(offset, length)]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def host_span(self, offset: int, length: int) -> tuple[int, int] | None:
        """(fd, offset) when [offset, offset + length) is one stretch of the image file
        (stored clusters that follow each other there) or of the backing file."""
        if offset < 0 or length <= 0 or offset + length > self._size:
            return None
        runs = self._runs(offset, length)
        first = next(runs, None)
        if first is None or next(runs, None) is not None:
            return None
        _offset, _length, kind, where = first
        if kind == STORED:
            return self.container.host_span(where, length)
        if kind == BACKING and offset + length <= self.backing.size:
            return self.backing.host_span(offset, length)
        return None

    def close(self) -> None:
        if self.backing is not None:
            self.backing.close()
            self.backing = None
        close = getattr(self.container, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"Qcow2Source({self.name!r}, version={self.version}, size={self._size})"


def feature_name(table: bytes, bit: int) -> str | None:
    """The name the image's feature name table gives incompatible feature ``bit``."""
    for kind, number, name in _FEATURE_NAME.iter_unpack(table[: len(table) // 48 * 48]):
        if kind == FEATURE_INCOMPATIBLE and number == bit:
            text = name.split(b"\0", 1)[0].decode("ascii", "replace")
            return f"{text} (bit {bit})" if text else None
    return None
