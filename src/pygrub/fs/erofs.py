"""EROFS, read-only (Linux Documentation/filesystems/erofs.rst, fs/erofs/erofs_fs.h).

A node is a nid: inode slot ``nid`` of 32 bytes from the metadata area's start. Inodes
are compact (32 bytes) or extended (64), followed by their inline xattrs, then what the
data layout needs: the inline tail of a flat file, a chunk table, or the map header and
lcluster indexes of a compressed file (full: 8 bytes each; compact: packs of 2 or 16
entries sharing one block address).

A compressed file is cut into extents, each decoded from one physical cluster
(pcluster): an extent starts at a HEAD lcluster's clusterofs and ends where the next
HEAD starts. The indexes are read once, in file order, so no extent needs the kernel's
lookback. A pcluster decodes to at most its extent's length (and never past
Z_EROFS_PCLUSTER_MAX_DSIZE); an uncompressed one (PLAIN) is a DATA extent. The tail may
be packed inline after the indexes (ztailpacking) or in the packed inode (fragments).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .._typing import TYPE_CHECKING
from ..compress import (
    Decoder,
    Undecodable,
    inflate,
    lz4_block_prefix,
    lz4_decoder,
    microlzma_prefix,
    zstd_prefix,
)
from ..disk import ByteSource
from ..errors import CorruptError, LimitError, UnsupportedError
from ..record import record, replace
from .base import (
    MAX_SYMLINK_TARGET,
    ByteNameFilesystem,
    Extent,
    ExtentKind,
    FileReader,
    NodeCache,
    NodeType,
    Stat,
    mode_type,
)
from .blockmap import joined_extents, merged_extents
from .layout import Layout, read_exact, unknown_features

if TYPE_CHECKING:
    from typing import Any

SUPERBLOCK_OFFSET = 1024
MAGIC = b"\xe2\xe1\xf5\xe0"  # EROFS_SUPER_MAGIC_V1 0xE0F5E1E2, little-endian

# struct erofs_super_block (the fields before packed_nid; later ones are for 48-bit images)
_SUPERBLOCK = Layout(
    "ErofsSuperBlock",
    "<",
    (
        ("magic", 0, "4s"),
        ("feature_compat", 8, "I"),
        ("blkszbits", 12, "B"),
        ("sb_extslots", 13, "B"),
        ("root_nid", 14, "H"),
        ("meta_blkaddr", 40, "I"),
        ("uuid", 48, "16s"),
        ("volume_name", 64, "16s"),
        ("feature_incompat", 80, "I"),
        ("available_compr_algs", 84, "H"),
        ("extra_devices", 86, "H"),
        ("dirblkbits", 90, "B"),
        ("packed_nid", 96, "Q"),
    ),
)
MIN_BLKSZBITS, MAX_BLKSZBITS = 9, 16

INCOMPAT_LZ4_0PADDING = 0x1
INCOMPAT_COMPR_CFGS = 0x2  # also BIG_PCLUSTER: both came with Linux 5.13
INCOMPAT_FRAGMENTS = 0x20  # also DEDUPE
#: What this reader reads; the names say what a refused bit is.
INCOMPAT_KNOWN = {
    0x1: "lz4_0padding",
    0x2: "compr_cfgs/big_pcluster",
    0x4: "chunked_file",
    0x8: "device_table/compr_head2",
    0x10: "ztailpacking",
    0x20: "fragments/dedupe",
    0x40: "xattr_prefixes",
}
INCOMPAT_NAMES = {0x80: "48bit", 0x100: "metabox"}

# struct erofs_inode_compact and struct erofs_inode_extended, as far as we read them
_INODE_COMPACT = Layout(
    "ErofsInodeCompact",
    "<",
    (
        ("i_format", 0, "H"),
        ("i_xattr_icount", 2, "H"),
        ("i_mode", 4, "H"),
        ("i_size", 8, "I"),
        ("i_u", 16, "I"),
    ),
)
_INODE_EXTENDED = Layout(
    "ErofsInodeExtended",
    "<",
    (
        ("i_format", 0, "H"),
        ("i_xattr_icount", 2, "H"),
        ("i_mode", 4, "H"),
        ("i_size", 8, "Q"),
        ("i_u", 16, "I"),
    ),
)
INODE_SLOT = 32
COMPACT_SIZE, EXTENDED_SIZE = 32, 64
#: i_format: bit 0 the inode version, bits 1-3 the data layout, bit 4 nlink-is-1 /
#: "." omitted (both harmless here); higher bits are unknown.
I_FORMAT_KNOWN = 0x1F
FLAT_PLAIN, COMPRESSED_FULL, FLAT_INLINE, COMPRESSED_COMPACT, CHUNK_BASED = range(5)
#: erofs_xattr_ibody_header (12 bytes) plus 4 bytes per further i_xattr_icount.
XATTR_HEADER = 12
NULL_ADDR = 0xFFFF_FFFF

CHUNK_FORMAT_BLKBITS_MASK = 0x1F
CHUNK_FORMAT_INDEXES = 0x20
CHUNK_FORMAT_48BIT = 0x40
#: Chunk table entries read at once.
CHUNK_BATCH = 1024

_DIRENT = Layout(
    "Dirent",
    "<",
    (("nid", 0, "Q"), ("nameoff", 8, "H"), ("file_type", 10, "B"), ("reserved", 11, "B")),
)
NAME_LEN = 255

# struct z_erofs_map_header: h_fragmentoff (or h_reserved1, h_idata_size), h_advise,
# h_algorithmtype, h_clusterbits
_MAP_HEADER = Layout(
    "ZErofsMapHeader",
    "<",
    (
        ("h_fragmentoff", 0, "I"),
        ("h_advise", 4, "H"),
        ("h_algorithmtype", 6, "B"),
        ("h_clusterbits", 7, "B"),
    ),
)
MAP_HEADER_SIZE = 8
#: Full indexes start after the 16 bytes the first map header took.
FULL_INDEX_GAP = 8
ADVISE_COMPACTED_2B = 0x1  # compact layout; the same bit means extent records in a full one
ADVISE_EXTENTS = 0x1
ADVISE_BIG_PCLUSTER_1 = 0x2
ADVISE_BIG_PCLUSTER_2 = 0x4
ADVISE_INLINE_PCLUSTER = 0x8
ADVISE_INTERLACED_PCLUSTER = 0x10
ADVISE_FRAGMENT_PCLUSTER = 0x20
#: h_clusterbits bit 7: the whole file is in the packed inode, at the other 63 bits.
FRAGMENT_INODE = 0x80

# struct z_erofs_lcluster_index: di_u is a blkaddr or delta[2]
_LCLUSTER_INDEX = Layout(
    "LclusterIndex", "<", (("di_advise", 0, "H"), ("di_clusterofs", 2, "H"), ("di_u", 4, "I"))
)
PLAIN, HEAD1, NONHEAD, HEAD2 = range(4)
LI_PARTIAL_REF = 0x8000
#: On the first NONHEAD lcluster of a big pcluster: its size in blocks follows.
LI_D0_CBLKCNT = 0x800
#: Index entries (full) or packs (compact) read at once.
INDEX_BATCH = 512

#: Z_EROFS_PCLUSTER_MAX_SIZE and Z_EROFS_PCLUSTER_MAX_DSIZE: what a pcluster may hold
#: on disk and decode to.
PCLUSTER_MAX_SIZE = 1 << 20
PCLUSTER_MAX_DSIZE = 12 << 20
#: Packed-inode (fragment) bytes decoded per ENCODED extent.
FRAGMENT_PIECE = 1 << 20

ALGORITHMS = {0: "lz4", 1: "lzma", 2: "deflate", 3: "zstd"}

#: Inodes kept after a read.
INODE_CACHE = 1024


# -- on-disk records ----------------------------------------------------------------------


@record(frozen=True)
class Inode:
    nid: int
    type: NodeType
    mode: int
    size: int
    layout: int
    #: i_u: the start block (flat), the chunk format (chunk-based) or a block count.
    i_u: int
    #: Byte offset just past the inode and its inline xattrs.
    tail: int


@record(frozen=True)
class Pcluster:
    """Where an ENCODED extent's bytes are: a compressed pcluster, or packed-inode bytes."""

    position: int
    disk_size: int
    algorithm: int
    #: Decode only the extent's length (legacy lz4 and deduplicated extents hold more).
    partial: bool = False


@record(frozen=True)
class Fragment:
    """An ENCODED extent that is bytes of the packed inode, from ``offset``."""

    offset: int


@record(frozen=True)
class Head:
    """A HEAD or PLAIN lcluster: where its extent starts and its pcluster."""

    lcn: int
    type: int
    la: int
    blkaddr: int
    partial: bool
    blocks: int = 1


def open_filesystem(source: ByteSource) -> ErofsFilesystem | None:
    """The EROFS on ``source``, or None when there is no EROFS superblock."""
    raw = source.pread(SUPERBLOCK_OFFSET, _SUPERBLOCK.size)
    if len(raw) < _SUPERBLOCK.size or raw[:4] != MAGIC:
        return None
    return ErofsFilesystem(source, _SUPERBLOCK.read(raw))


def grub_guid(raw: bytes) -> str:
    """The 16 UUID bytes as GRUB's erofs_uuid prints them (%pG, a GUID): the first
    three fields little-endian, so not as blkid spells the same bytes."""
    h = raw[3::-1].hex() + raw[5:3:-1].hex() + raw[7:5:-1].hex() + raw[8:].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class ErofsFilesystem(ByteNameFilesystem[int]):
    kind = "erofs"

    def __init__(self, source: ByteSource, sb: Any) -> None:
        super().__init__(source)
        where = f"erofs: superblock at byte {SUPERBLOCK_OFFSET}"
        refused = unknown_features(sb.feature_incompat, INCOMPAT_KNOWN, INCOMPAT_NAMES)
        if refused:
            raise UnsupportedError(f"{where}: incompatible features {', '.join(refused)}")
        if not MIN_BLKSZBITS <= sb.blkszbits <= MAX_BLKSZBITS:
            raise CorruptError(f"{where}: blkszbits {sb.blkszbits} is not in 9..16")
        if sb.dirblkbits:
            raise UnsupportedError(f"{where}: directory blocks of 2^{sb.dirblkbits} blocks")
        if sb.extra_devices:
            raise UnsupportedError(f"{where}: {sb.extra_devices} extra devices (blob devices)")
        self.blkszbits = sb.blkszbits
        self.block_size = 1 << sb.blkszbits
        self.features = sb.feature_incompat
        self.meta_start = sb.meta_blkaddr << sb.blkszbits
        self.root_nid = sb.root_nid
        self.packed_nid = sb.packed_nid if sb.feature_incompat & INCOMPAT_FRAGMENTS else None
        self.algorithms = self._algorithms(sb, where)
        self.uuid = None if not any(sb.uuid) else grub_guid(sb.uuid)
        label = sb.volume_name.split(b"\0", 1)[0]
        self.label = label.decode("utf-8", "surrogateescape") or None
        self._decoders: dict[int, Decoder] = {}
        self._inodes: NodeCache[int, Inode] = NodeCache(INODE_CACHE)
        if self.algorithms & 1 and sb.feature_incompat & INCOMPAT_LZ4_0PADDING:
            self._decoders[0] = lz4_decoder("erofs")
        root = self.inode(self.root_nid)
        if root.type is not NodeType.DIR:
            raise CorruptError(f"erofs: root nid {self.root_nid} is a {root.type.value}")

    @staticmethod
    def _algorithms(sb: Any, where: str) -> int:
        """The bitmap of compression algorithms the image may use (lz4 alone before
        compression configs)."""
        if not sb.feature_incompat & INCOMPAT_COMPR_CFGS:
            return 1
        algorithms = sb.available_compr_algs
        if algorithms & ~0xF:
            raise UnsupportedError(f"{where}: unknown compression algorithms 0x{algorithms:x}")
        return algorithms

    # -- inodes -------------------------------------------------------------------------

    def inode(self, nid: int) -> Inode:
        inode = self._inodes.get(nid)
        if inode is None:
            inode = self._inodes.keep(nid, self._read_inode(nid))
        return inode

    def _read_inode(self, nid: int) -> Inode:
        at = self.meta_start + nid * INODE_SLOT
        if at + COMPACT_SIZE > self.source.size:
            raise CorruptError(f"erofs: nid {nid} is at byte {at}, past the end of the volume")
        raw = read_exact(self.source, at, COMPACT_SIZE, f"erofs: inode {nid}")
        i_format = raw[0] | raw[1] << 8
        if i_format & ~I_FORMAT_KNOWN:
            raise UnsupportedError(f"erofs: inode {nid} at byte {at}: i_format 0x{i_format:x}")
        if i_format & 1:
            raw = read_exact(self.source, at, EXTENDED_SIZE, f"erofs: inode {nid}")
            fields, size = _INODE_EXTENDED.read(raw), EXTENDED_SIZE
        else:
            fields, size = _INODE_COMPACT.read(raw), COMPACT_SIZE
        layout = (i_format >> 1) & 7
        if layout > CHUNK_BASED:
            raise UnsupportedError(f"erofs: inode {nid} at byte {at}: data layout {layout}")
        xattrs = XATTR_HEADER + 4 * (fields.i_xattr_icount - 1) if fields.i_xattr_icount else 0
        return Inode(
            nid,
            mode_type(fields.i_mode),
            fields.i_mode & 0o7777,
            fields.i_size,
            layout,
            fields.i_u,
            at + size + xattrs,
        )

    # -- file data ----------------------------------------------------------------------

    def _extents(self, inode: Inode) -> Iterator[Extent]:
        if inode.size == 0:
            return
        if inode.layout in (FLAT_PLAIN, FLAT_INLINE):
            yield from self._flat_extents(inode)
        elif inode.layout == CHUNK_BASED:
            yield from self._chunk_extents(inode)
        else:
            # Stored (PLAIN) pclusters one after another on disk are one copy.
            yield from joined_extents(self._compressed_extents(inode))

    def _flat_extents(self, inode: Inode) -> Iterator[Extent]:
        """Whole blocks from i_u, then (FLAT_INLINE) the tail right after the inode."""
        bs = self.block_size
        inline = inode.layout == FLAT_INLINE
        blocks = -(-inode.size // bs) - inline
        body = min(blocks * bs, inode.size)
        if body and not (inode.layout == FLAT_PLAIN and inode.i_u == NULL_ADDR):
            start = inode.i_u * bs
            if start + body > self.source.size:
                raise CorruptError(
                    f"erofs: inode {inode.nid}: {body} bytes at block {inode.i_u} run past "
                    f"the end of the volume"
                )
            yield Extent(0, body, ExtentKind.DATA, start)
        if inline and inode.size > body:
            tail = inode.size - body
            if inode.tail % bs + tail > bs:
                raise CorruptError(
                    f"erofs: inode {inode.nid}: {tail} inline bytes at byte {inode.tail} "
                    f"cross a block boundary"
                )
            yield Extent(body, tail, ExtentKind.DATA, inode.tail)

    def _chunk_extents(self, inode: Inode) -> Iterator[Extent]:
        """A table of chunk start blocks (4 bytes each) or chunk indexes (8 bytes)."""
        fmt = inode.i_u & 0xFFFF
        if fmt & ~(CHUNK_FORMAT_BLKBITS_MASK | CHUNK_FORMAT_INDEXES):
            raise UnsupportedError(f"erofs: inode {inode.nid}: chunk format 0x{fmt:x}")
        chunkbits = self.blkszbits + (fmt & CHUNK_FORMAT_BLKBITS_MASK)
        unit = 8 if fmt & CHUNK_FORMAT_INDEXES else 4
        table = -(-inode.tail // unit) * unit
        count = -(-inode.size >> chunkbits)
        yield from merged_extents(self._chunk_runs(inode, table, count, unit), 1 << chunkbits)

    def _chunk_runs(
        self, inode: Inode, table: int, count: int, unit: int
    ) -> Iterator[tuple[int, int, int | None]]:
        for first in range(0, count, CHUNK_BATCH):
            n = min(CHUNK_BATCH, count - first)
            raw = read_exact(
                self.source, table + first * unit, n * unit, f"erofs: chunks of inode {inode.nid}"
            )
            # erofs_inode_chunk_index: startblk_hi (48-bit only), device_id, startblk_lo
            blocks = struct.unpack(f"<{n}I", raw) if unit == 4 else struct.unpack(f"<{n}Q", raw)
            for index, block in enumerate(blocks):
                block = block if unit == 4 else block >> 32
                where = None if block == NULL_ADDR else block << self.blkszbits
                yield first + index, 1, where

    # -- compressed files ---------------------------------------------------------------

    def _compressed_extents(self, inode: Inode) -> Iterator[Extent]:
        what = f"erofs: compressed inode {inode.nid}"
        header_at = -(-inode.tail // 8) * 8
        raw = read_exact(self.source, header_at, MAP_HEADER_SIZE, f"{what}: map header")
        h = _MAP_HEADER.read(raw)
        if h.h_clusterbits & FRAGMENT_INODE:
            offset = int.from_bytes(raw, "little") ^ (1 << 63)
            yield from self._fragment_extents(inode, 0, offset)
            return
        advise = h.h_advise
        full = inode.layout == COMPRESSED_FULL
        if full and advise & ADVISE_EXTENTS:
            raise UnsupportedError(f"{what}: extent records (the 48-bit layout)")
        if h.h_clusterbits & 0xF:
            raise UnsupportedError(f"{what}: logical clusters of 2^{h.h_clusterbits & 0xF} blocks")
        if advise & ADVISE_FRAGMENT_PCLUSTER and self.packed_nid is None:
            raise CorruptError(f"{what}: a fragment tail but no fragments feature")
        bits = self.blkszbits
        total = -(-inode.size >> bits)
        index_at = header_at + MAP_HEADER_SIZE + (FULL_INDEX_GAP if full else 0)
        if full:
            lclusters = self._full_lclusters(inode, index_at, total)
            index_end = index_at + total * _LCLUSTER_INDEX.size
        else:
            lclusters, index_end = self._compact_lclusters(inode, index_at, total, advise)
        inline = h.h_fragmentoff >> 16 if advise & ADVISE_INLINE_PCLUSTER else 0
        algorithms = (h.h_algorithmtype & 0xF, h.h_algorithmtype >> 4)
        heads = self._heads(inode, lclusters, advise)
        pending = next(heads, None)
        while pending is not None:
            following = next(heads, None)
            end = inode.size if following is None else following.la
            if following is None and advise & ADVISE_FRAGMENT_PCLUSTER:
                offset = h.h_fragmentoff | (pending.blkaddr << 32 if full else 0)
                yield from self._fragment_extents(inode, pending.la, offset)
            elif following is None and inline:
                tail = (index_end, inline)
                yield from self._pcluster_extents(inode, pending, end, advise, algorithms, tail)
            else:
                yield from self._pcluster_extents(inode, pending, end, advise, algorithms)
            pending = following

    def _heads(
        self, inode: Inode, lclusters: Iterator[tuple[int, int, int, bool]], advise: int
    ) -> Iterator[Head]:
        """Each HEAD (or PLAIN) lcluster below the file's size, in order, with its
        pcluster's size in blocks from the lcluster after it."""
        lcs = self.block_size
        what = f"erofs: compressed inode {inode.nid}"
        pending: Head | None = None
        for lcn, (kind, lo, blkaddr, partial) in enumerate(lclusters):
            if kind == NONHEAD:
                if pending is None:
                    raise CorruptError(f"{what}: lcluster {lcn} is not a head but starts the file")
                if lcn == pending.lcn + 1 and self._big(pending.type, advise):
                    if not lo & LI_D0_CBLKCNT:
                        raise CorruptError(f"{what}: lcluster {lcn} has no compressed block count")
                    # Checked where used: a fragment tail's count is 0.
                    pending = replace(pending, blocks=lo & (LI_D0_CBLKCNT - 1))
                elif lo & LI_D0_CBLKCNT and lcn == pending.lcn + 1:
                    raise CorruptError(f"{what}: a block count at lcn {lcn} without big pclusters")
                if (lcn + 1) * lcs - pending.la > PCLUSTER_MAX_DSIZE:
                    raise LimitError(f"{what}: the extent at {pending.la} decodes past 12 MiB")
                continue
            if lo >= lcs:
                raise CorruptError(f"{what}: clusterofs {lo} of lcluster {lcn} is past its end")
            la = lcn * lcs + lo
            if la >= inode.size:
                break
            if pending is None and la:
                raise CorruptError(f"{what}: the first extent starts at {la}, not 0")
            if pending is not None:
                yield pending
            pending = Head(lcn, kind, la, blkaddr, partial)
        if pending is not None:
            yield pending

    @staticmethod
    def _big(kind: int, advise: int) -> bool:
        """Whether a HEAD of this type may head a pcluster of several blocks."""
        return bool(advise & (ADVISE_BIG_PCLUSTER_1 if kind == HEAD1 else ADVISE_BIG_PCLUSTER_2))

    def _full_lclusters(
        self, inode: Inode, index_at: int, total: int
    ) -> Iterator[tuple[int, int, int, bool]]:
        """(type, clusterofs or delta[0], blkaddr, partial_ref) of each lcluster."""
        size = _LCLUSTER_INDEX.size
        for first in range(0, total, INDEX_BATCH):
            n = min(INDEX_BATCH, total - first)
            raw = read_exact(
                self.source, index_at + first * size, n * size, f"erofs: indexes of {inode.nid}"
            )
            for advise, clusterofs, blkaddr in _LCLUSTER_INDEX.iter_unpack(raw):
                kind = advise & 3
                if kind == NONHEAD:
                    yield kind, blkaddr & 0xFFFF, 0, False
                else:
                    yield kind, clusterofs, blkaddr, bool(advise & LI_PARTIAL_REF)

    def _compact_lclusters(
        self, inode: Inode, index_at: int, total: int, advise: int
    ) -> tuple[Iterator[tuple[int, int, int, bool]], int]:
        """The lclusters of compact indexes, and where the indexes end.

        Packs of 2 entries in 8 bytes (4B) up to a 32-byte boundary, then (COMPACTED_2B)
        as many packs of 16 entries in 32 bytes as fit, then 4B packs again.
        """
        initial = ((32 - index_at % 32) // 4) & 7
        two_b = 0
        if advise & ADVISE_COMPACTED_2B and initial < total:
            two_b = (total - initial) // 16 * 16
        first = min(initial, total) if two_b else total
        segments = [(first, 2), (two_b, 16), (total - first - two_b, 2)]
        big = advise & (ADVISE_BIG_PCLUSTER_1 | ADVISE_BIG_PCLUSTER_2)
        if big and big != ADVISE_BIG_PCLUSTER_1 | ADVISE_BIG_PCLUSTER_2:
            raise CorruptError(f"erofs: compact inode {inode.nid}: big pclusters for one head type")
        end = index_at
        for count, vcnt in segments:
            end += -(-count // vcnt) * (8 if vcnt == 2 else 32)
        return self._compact_entries(inode, index_at, segments, bool(big)), end

    def _compact_entries(
        self, inode: Inode, at: int, segments: list[tuple[int, int]], big: bool
    ) -> Iterator[tuple[int, int, int, bool]]:
        lobits = max(self.blkszbits, 12)
        lomask = (1 << lobits) - 1
        for count, vcnt in segments:
            pack_size = 8 if vcnt == 2 else 32
            encodebits = (pack_size - 4) * 8 // vcnt
            packs = -(-count // vcnt)
            for first in range(0, packs, INDEX_BATCH):
                n = min(INDEX_BATCH, packs - first)
                raw = read_exact(
                    self.source,
                    at + first * pack_size,
                    n * pack_size,
                    f"erofs: indexes of {inode.nid}",
                )
                for p in range(n):
                    pack = raw[p * pack_size : (p + 1) * pack_size]
                    left = min(vcnt, count - (first + p) * vcnt)
                    yield from _compact_pack(pack, left, encodebits, lobits, lomask, big)
            at += packs * pack_size

    def _pcluster_extents(
        self,
        inode: Inode,
        head: Head,
        end: int,
        advise: int,
        algorithms: tuple[int, int],
        inline: tuple[int, int] | None = None,
    ) -> Iterator[Extent]:
        what = f"erofs: compressed inode {inode.nid}, extent at {head.la}"
        length = min(end, inode.size) - head.la
        if length > PCLUSTER_MAX_DSIZE:
            raise LimitError(f"{what}: decodes to {length} bytes, over 12 MiB")
        if inline is not None:
            position, disk_size = inline
            if position % self.block_size + disk_size > self.block_size:
                raise CorruptError(f"{what}: {disk_size} inline bytes cross a block boundary")
        else:
            position, disk_size = head.blkaddr << self.blkszbits, head.blocks << self.blkszbits
            if not 0 < disk_size <= PCLUSTER_MAX_SIZE:
                raise CorruptError(f"{what}: a pcluster of {head.blocks} blocks")
        if position + disk_size > self.source.size:
            raise CorruptError(
                f"{what}: pcluster of {disk_size} bytes at byte {position} runs past the volume"
            )
        if head.type == PLAIN:
            if length > disk_size:
                raise CorruptError(f"{what}: {disk_size} bytes stored for {length}")
            skip = head.la % self.block_size
            if advise & ADVISE_INTERLACED_PCLUSTER and inline is None and skip:
                # The block starts with the extent's bytes past the block's end.
                right = min(self.block_size - skip, length)
                yield Extent(head.la, right, ExtentKind.DATA, position + skip)
                if length > right:
                    yield Extent(head.la + right, length - right, ExtentKind.DATA, position)
                return
            yield Extent(head.la, length, ExtentKind.DATA, position)
            return
        algorithm = algorithms[head.type == HEAD2]
        if not self.algorithms >> algorithm & 1:
            name = ALGORITHMS.get(algorithm, f"algorithm {algorithm}")
            raise CorruptError(f"{what}: {name}, which the superblock does not list")
        legacy_lz4 = algorithm == 0 and not self.features & INCOMPAT_LZ4_0PADDING
        token = Pcluster(position, disk_size, algorithm, head.partial or legacy_lz4)
        yield Extent(head.la, length, ExtentKind.ENCODED, token=token)

    def _fragment_extents(self, inode: Inode, start: int, offset: int) -> Iterator[Extent]:
        """The file from ``start`` on, as bytes of the packed inode from ``offset``."""
        if self.packed_nid is None:
            raise CorruptError(
                f"erofs: inode {inode.nid} is in the packed inode, but there is none"
            )
        if inode.nid == self.packed_nid:
            raise CorruptError(f"erofs: the packed inode {inode.nid} has a fragment itself")
        packed = self.inode(self.packed_nid)
        length = inode.size - start
        if offset + length > packed.size:
            raise CorruptError(
                f"erofs: inode {inode.nid}: {length} bytes at {offset} of the packed inode "
                f"run past its {packed.size} bytes"
            )
        for piece in range(0, length, FRAGMENT_PIECE):
            n = min(FRAGMENT_PIECE, length - piece)
            yield Extent(start + piece, n, ExtentKind.ENCODED, token=Fragment(offset + piece))

    def read_encoded(self, node: int, extent: Extent) -> bytes:
        token = extent.token
        if isinstance(token, Fragment):
            packed = self.inode(self.packed_nid)  # type: ignore[arg-type]
            with FileReader(self, packed.nid, packed.size, "the packed inode") as f:
                f.seek(token.offset)
                return f.read(extent.length)
        assert isinstance(token, Pcluster)
        what = f"erofs: pcluster at byte {token.position} of inode {node}"
        raw = read_exact(self.source, token.position, token.disk_size, what)
        # 0padding: the stream ends at the pcluster's end, after leading zeros.
        stream = raw.lstrip(b"\0")
        if not stream:
            raise CorruptError(f"{what} is all zeros")
        try:
            data = self._decode(token, stream, extent.length)
        except Undecodable as e:
            raise CorruptError(f"{what}: {e}") from None
        if len(data) != extent.length:
            raise CorruptError(f"{what} decodes to {len(data)} bytes, not {extent.length}")
        return data

    def _decode(self, token: Pcluster, stream: bytes, length: int) -> bytes:
        """At most ``length`` decoded bytes of one pcluster's stream."""
        if token.algorithm == 0:
            if token.partial:
                return lz4_block_prefix(stream, length)
            return self._decoders[0](stream, length)
        if token.algorithm == 1:
            return microlzma_prefix(stream, length)
        if token.algorithm == 2:
            return inflate(stream, length, wbits=-15)
        # A frame's window may be its whole content, one extent at most.
        return zstd_prefix(stream, length, max(PCLUSTER_MAX_SIZE, length), "erofs")

    # -- directories --------------------------------------------------------------------

    def _entries(self, inode: Inode) -> Iterator[tuple[bytes, int]]:
        """(name, nid) of each entry but "." and "..", block by block."""
        bs = self.block_size
        with FileReader(self, inode.nid, inode.size, f"directory {inode.nid}") as f:
            for start in range(0, inode.size, bs):
                block = f.read(min(bs, inode.size - start))
                yield from _block_entries(block, f"erofs: directory {inode.nid} at {start}")

    # -- the Filesystem primitives ------------------------------------------------------

    def root(self) -> int:
        return self.root_nid

    def node_stat(self, node: int) -> Stat:
        inode = self.inode(node)
        return Stat(inode.type, inode.size, inode.mode)

    def raw_entries(self, node: int) -> Iterator[tuple[bytes, int]]:
        inode = self.inode(node)
        # The entries' own generator, not one around it: a lookup in a big /boot reads
        # every entry through here.
        return self._entries(inode) if inode.type is NodeType.DIR else iter(())

    def directory_name(self, node: int) -> str:
        return f"erofs: directory {node}"

    def readlink(self, node: int) -> bytes:
        inode = self.inode(node)
        if inode.size > MAX_SYMLINK_TARGET:
            raise CorruptError(f"erofs: symlink {node}: target of {inode.size} bytes")
        with FileReader(self, node, inode.size, f"symlink {node}") as f:
            return f.read()

    def node_extents(self, node: int) -> Iterator[Extent]:
        inode = self.inode(node)
        if inode.type in (NodeType.FILE, NodeType.DIR, NodeType.SYMLINK):
            yield from self._extents(inode)


def _compact_pack(
    pack: bytes, count: int, encodebits: int, lobits: int, lomask: int, big: bool
) -> Iterator[tuple[int, int, int, bool]]:
    """The first ``count`` lclusters of one compact pack.

    The pack's last 4 bytes are a block address: of its first HEAD's pcluster with big
    pclusters, one before it without (each HEAD then takes one block). A block count on
    the NONHEAD after a HEAD replaces that HEAD's one block.
    """
    bits = int.from_bytes(pack[:-4], "little")
    base = int.from_bytes(pack[-4:], "little")
    blocks = 0 if big else 1
    after_head = False
    for i in range(count):
        value = bits >> (encodebits * i)
        lo, kind = value & lomask, (value >> lobits) & 3
        if kind == NONHEAD:
            if lo & LI_D0_CBLKCNT:
                blocks += (lo & (LI_D0_CBLKCNT - 1)) - after_head
            after_head = False
            yield kind, lo, 0, False
        else:
            yield kind, lo, base + blocks, False
            blocks += 1
            after_head = True


def _block_entries(block: bytes, where: str) -> Iterator[tuple[bytes, int]]:
    """(name, nid) of the dirents of one directory block, "." and ".." left out.

    The block starts with the dirents; the first one's nameoff says how many there are.
    Each name runs to the next one's nameoff; the last to the block's end or a NUL.
    """
    if len(block) < _DIRENT.size:
        raise CorruptError(f"{where}: a block of {len(block)} bytes holds no dirent")
    first = block[8] | block[9] << 8
    if first < _DIRENT.size or first % _DIRENT.size or first >= len(block):
        raise CorruptError(f"{where}: nameoff {first} of the first dirent")
    count = first // _DIRENT.size
    dirents = list(_DIRENT.iter_unpack(block[:first]))
    for i, (nid, nameoff, _type, _reserved) in enumerate(dirents):
        end = dirents[i + 1][1] if i + 1 < count else len(block)
        if not first <= nameoff < end <= len(block):
            raise CorruptError(f"{where}: name of dirent {i} at {nameoff}..{end}")
        name = block[nameoff:end]
        if i + 1 == count:
            name = name.split(b"\0", 1)[0]
        if not name or len(name) > NAME_LEN:
            raise CorruptError(f"{where}: dirent {i} has a {len(name)}-byte name")
        if name not in (b".", b".."):
            yield name, nid
