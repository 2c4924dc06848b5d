"""XFS, v4 and v5 (CRC) filesystems, read-only (the XFS Algorithms & Data Structures
document for the format; every on-disk integer is big-endian).

A node is an inode number. An inode's place follows from its number alone (AG number,
block in the AG, slot in the block), so the inode B-trees are never read. Block maps
(extent lists and bmbt B-trees) are walked lazily, and every walk over guest-made
structures is bounded by the filesystem's own block count, so a hostile image costs at
most a read of the image. CRCs are not verified (GRUB does not either); v5 block
headers are checked for their magic, filesystem UUID and owner instead.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from .._typing import TYPE_CHECKING
from ..disk import ByteSource
from ..errors import CorruptError, LimitError, UnsupportedError
from ..limits import MAX_TREE_DEPTH
from ..record import record
from .base import (
    MAX_SYMLINK_TARGET,
    BlockWalk,
    ByteNameFilesystem,
    Extent,
    ExtentKind,
    NodeCache,
    NodeType,
    Stat,
    mode_type,
)
from .blockmap import Run, merged_extents
from .layout import Layout, format_uuid, read_exact, unknown_features

if TYPE_CHECKING:
    from typing import Any

MAGIC = b"XFSB"

# struct xfs_dsb (only the fields a reader needs); it fills the first 264 bytes of sector 0
_SUPERBLOCK = Layout(
    "Superblock",
    ">",
    (
        ("sb_magicnum", 0, "4s"),
        ("sb_blocksize", 4, "I"),
        ("sb_dblocks", 8, "Q"),
        ("sb_uuid", 32, "16s"),
        ("sb_rootino", 56, "Q"),
        ("sb_agblocks", 84, "I"),
        ("sb_agcount", 88, "I"),
        ("sb_versionnum", 100, "H"),
        ("sb_sectsize", 102, "H"),
        ("sb_inodesize", 104, "H"),
        ("sb_inopblock", 106, "H"),
        ("sb_fname", 108, "12s"),
        ("sb_blocklog", 120, "B"),
        ("sb_sectlog", 121, "B"),
        ("sb_inodelog", 122, "B"),
        ("sb_inopblog", 123, "B"),
        ("sb_agblklog", 124, "B"),
        ("sb_dirblklog", 192, "B"),
        ("sb_features2", 200, "I"),
        ("sb_bad_features2", 204, "I"),
        ("sb_features_incompat", 216, "I"),
        ("sb_meta_uuid", 248, "16s"),
    ),
)
SUPERBLOCK_SIZE = 264

VERSION_NUMBITS = 0x000F
VERSION_DIRV2BIT = 0x2000
VERSION_BORGBIT = 0x4000  # "ASCII" case-insensitive names
VERSION_MOREBITSBIT = 0x8000
VERSION2_FTYPE = 0x200  # sb_features2: v4 directory entries carry a file type

#: How ASCII-CI names compare, byte by byte (xfs_ascii_ci_xfrm): A-Z and the Latin-1
#: capitals 0xC0-0xDE but 0xD7 fold down by 0x20, as Linux's tolower() once did.
_ASCII_CI_FOLD = bytes(
    c + 0x20 if 0x41 <= c <= 0x5A or (0xC0 <= c <= 0xDE and c != 0xD7) else c for c in range(256)
)

INCOMPAT_FTYPE = 0x1
INCOMPAT_META_UUID = 0x4
INCOMPAT_NEEDSREPAIR = 0x10
INCOMPAT_NREXT64 = 0x20
#: The v5 INCOMPAT features this reader understands. Sparse inode chunks change only the
#: inode B-trees; bigtime only timestamps; exchange-range only the log; parent pointers
#: only extended attributes; metadir only where the filesystem's own metadata inodes
#: (quotas, realtime bitmaps) live: none of them is read here.
KNOWN_INCOMPAT = {
    0x1: "ftype",
    0x2: "spinodes",
    0x4: "meta_uuid",
    0x8: "bigtime",
    0x20: "nrext64",
    0x40: "exchrange",
    0x80: "parent",
    0x100: "metadir",
}
#: Names for the ones we refuse, for the message.
REFUSED_INCOMPAT = {0x10: "needsrepair", 0x200: "zoned"}

MIN_BLOCK_LOG, MAX_BLOCK_LOG = 9, 16  # 512 bytes .. 64 KiB
MIN_SECT_LOG, MAX_SECT_LOG = 9, 15  # 512 bytes .. 32 KiB
MIN_INODE_LOG, MAX_INODE_LOG = 8, 11  # 256 .. 2048 bytes
MIN_INODE_LOG_V5 = 9
MAX_DIR_BLOCK = 65536

# struct xfs_dinode: the fields of the v1/v2 core (100 bytes) a reader needs
_DINODE = Layout(
    "Dinode",
    ">",
    (
        ("di_magic", 0x00, "H"),
        ("di_mode", 0x02, "H"),
        ("di_version", 0x04, "B"),
        ("di_format", 0x05, "B"),
        ("di_big_nextents", 0x18, "Q"),  # with NREXT64; padding and di_flushiter otherwise
        ("di_size", 0x38, "Q"),
        ("di_nextents", 0x4C, "I"),  # di_big_anextents with NREXT64
        ("di_forkoff", 0x52, "B"),
        ("di_flags", 0x5A, "H"),
    ),
)
# the v3 core continues to 176 bytes
_DINODE_V3 = Layout("DinodeV3", ">", (("di_flags2", 0x78, "Q"), ("di_ino", 0x98, "Q")))
DINODE_MAGIC = 0x494E  # "IN"
CORE_SIZE_V2 = 100
CORE_SIZE_V3 = 176

FMT_DEV, FMT_LOCAL, FMT_EXTENTS, FMT_BTREE = 0, 1, 2, 3
DIFLAG_REALTIME = 0x1
DIFLAG2_NREXT64 = 0x10


# struct xfs_bmbt_rec: 128 bits, l0:l1 = extentflag:1, startoff:54, startblock:52, blockcount:21
_EXTENT = Layout("BmbtRec", ">", (("l0", 0, "Q"), ("l1", 8, "Q")))
STARTOFF_MASK = (1 << 54) - 1
BLOCKCOUNT_MASK = (1 << 21) - 1

# struct xfs_bmdr_block: the B-tree root in the inode, bb_level and bb_numrecs, then
# keys and pointers, each array as long as the fork has room for
_BMDR = Layout("BmdrBlock", ">", (("bb_level", 0, "H"), ("bb_numrecs", 2, "H")))
# struct xfs_btree_block, long form: bb_magic, bb_level, bb_numrecs, bb_leftsib,
# bb_rightsib; v5 adds bb_blkno, bb_lsn, bb_uuid, bb_owner, bb_crc, bb_pad
_BMBT = Layout(
    "BmbtBlock", ">", (("bb_magic", 0, "4s"), ("bb_level", 4, "H"), ("bb_numrecs", 6, "H"))
)
_BMBT_V5 = Layout("BmbtBlockV5", ">", (("bb_uuid", 40, "16s"), ("bb_owner", 56, "Q")))
BMBT_HEADER_V4, BMBT_HEADER_V5 = 24, 72
BMBT_MAGIC_V4, BMBT_MAGIC_V5 = b"BMAP", b"BMA3"
BMBT_KEY_SIZE = BMBT_PTR_SIZE = 8

# Directories. Data blocks live below 32 GiB of the directory's address space; the leaf
# (hash index) and free-space blocks above it are not needed to list or look up names.
DIR_LEAF_OFFSET = 32 << 30
DIR_BLOCK_MAGIC_V4, DIR_DATA_MAGIC_V4 = b"XD2B", b"XD2D"
DIR_BLOCK_MAGIC_V5, DIR_DATA_MAGIC_V5 = b"XDB3", b"XDD3"
# xfs_dir2_data_hdr: magic, bestfree[3]; xfs_dir3_data_hdr: xfs_dir3_blk_hdr (magic, crc,
# blkno, lsn, uuid, owner), bestfree[3], pad
DIR_HEADER_V4, DIR_HEADER_V5 = 16, 64
_DIR3_BLK_HDR = Layout("Dir3BlkHdr", ">", (("uuid", 24, "16s"), ("owner", 40, "Q")))
# xfs_dir2_block_tail at the end of a single-block directory: count, stale; the leaf
# entries (hashval, address: 8 bytes each) come just before it
_BLOCK_TAIL = Layout("Dir2BlockTail", ">", (("count", 0, "I"), ("stale", 4, "I")))
LEAF_ENTRY_SIZE = 8
# xfs_dir2_data_entry: inumber, namelen, name, [ftype], tag (padded to 8 bytes);
# xfs_dir2_data_unused: freetag (0xffff), length, ..., tag
_DATA_ENTRY = Layout("Dir2DataEntry", ">", (("inumber", 0, "Q"), ("namelen", 8, "B")))
_UNUSED = Layout("Dir2DataUnused", ">", (("freetag", 0, "H"), ("length", 2, "H")))
_TAG = Layout("Dir2DataTag", ">", (("tag", 0, "H"),))
FREETAG = 0xFFFF
# xfs_dir2_sf_hdr: count, i8count, parent (4 or 8 bytes); xfs_dir2_sf_entry: namelen,
# offset[2], name, [ftype], inumber (4 or 8 bytes)
SF_ENTRY_FIXED = 3

# struct xfs_dsymlink_hdr (v5 remote symlink blocks): sl_magic, sl_offset, sl_bytes,
# sl_crc, sl_uuid, sl_owner, sl_blkno, sl_lsn
_SYMLINK_HDR = Layout(
    "SymlinkHdr",
    ">",
    (("sl_magic", 0, "4s"), ("sl_offset", 4, "I"), ("sl_uuid", 16, "16s"), ("sl_owner", 32, "Q")),
)
SYMLINK_HEADER_SIZE = 56
SYMLINK_MAGIC = b"XSLM"


@record(frozen=True)
class Inode:
    number: int
    #: Byte offset of the inode record in the volume (for messages).
    offset: int
    mode: int
    format: int
    size: int
    #: Extent records in the data fork (di_nextents, or di_big_nextents with NREXT64).
    nextents: int
    flags: int
    #: The data fork: the literal area up to di_forkoff (or all of it).
    fork: bytes
    fork_offset: int

    @property
    def type(self) -> NodeType:
        return mode_type(self.mode)


@record
class _Walk(BlockWalk):
    """A walk over a block map that also counts the extent records it may yet meet."""

    records_left: int = 0
    #: Set when a record reached end_block: nothing further in the map is wanted.
    finished: bool = False


def open_filesystem(source: ByteSource) -> XfsFilesystem | None:
    """The XFS filesystem on ``source``, or None when there is no XFS superblock."""
    raw = source.pread(0, SUPERBLOCK_SIZE)
    if len(raw) < SUPERBLOCK_SIZE:
        return None
    sb = _SUPERBLOCK.read(raw)
    if sb.sb_magicnum != MAGIC:
        return None
    return XfsFilesystem(source, sb)


def decode_extent(l0: int, l1: int) -> tuple[int, int, int, bool]:
    """(startoff, startblock, blockcount, unwritten) of one packed bmbt record."""
    startoff = (l0 >> 9) & STARTOFF_MASK
    startblock = ((l0 & 0x1FF) << 43) | (l1 >> 21)
    return startoff, startblock, l1 & BLOCKCOUNT_MASK, bool(l0 >> 63)


def ascii_ci_matcher(want: bytes) -> Callable[[bytes], bool]:
    """Whether an on-disk name is ``want`` in an ASCII case-insensitive filesystem."""
    folded = want.translate(_ASCII_CI_FOLD)
    return lambda entry: entry.translate(_ASCII_CI_FOLD) == folded


def dir_entry_size(namelen: int, ftype_len: int) -> int:
    """Bytes of a data entry: inumber, namelen, name, ftype, tag, rounded up to 8."""
    return (_DATA_ENTRY.size + namelen + ftype_len + _TAG.size + 7) & ~7


class XfsFilesystem(ByteNameFilesystem[int]):
    kind = "xfs"

    def __init__(self, source: ByteSource, sb: Any) -> None:
        super().__init__(source)
        self.version = sb.sb_versionnum & VERSION_NUMBITS
        self._check_version(sb)
        self.v5 = self.version == 5
        self.incompat = sb.sb_features_incompat if self.v5 else 0
        self.block_size = self._block_size(sb)
        self._check_sector_size(sb)
        self.inode_size = self._inode_size(sb)
        self.inopblog = sb.sb_inopblog
        self.agblocks, self.agcount, self.agblklog = self._allocation_groups(sb)
        self.dblocks = self._data_blocks(sb)
        self.dir_block_size = self._dir_block_size(sb)
        #: Directory entries carry a one-byte file type after the name.
        self.ftype_len = 1 if self._has_ftype(sb) else 0
        self.ascii_ci = bool(sb.sb_versionnum & VERSION_BORGBIT)
        self.case_insensitive = self.ascii_ci
        # Metadata blocks carry sb_meta_uuid when the user-visible UUID was changed.
        self.meta_uuid = sb.sb_meta_uuid if self.incompat & INCOMPAT_META_UUID else sb.sb_uuid
        self.uuid = format_uuid(sb.sb_uuid)
        label = sb.sb_fname.split(b"\0", 1)[0]
        self.label = label.decode("utf-8", "replace") if label else None
        self._inodes: NodeCache[int, Inode] = NodeCache()
        self.root_ino = sb.sb_rootino
        self._inode_offset(self.root_ino, "sb_rootino")

    # -- the superblock -----------------------------------------------------------------

    def _sb_error(self, problem: str) -> CorruptError:
        return CorruptError(f"{self.kind}: superblock at byte 0: {problem}")

    def _check_version(self, sb: Any) -> None:
        if self.version not in (4, 5):
            raise UnsupportedError(f"{self.kind}: superblock version {self.version}")
        if self.version == 4 and not sb.sb_versionnum & VERSION_DIRV2BIT:
            raise UnsupportedError(f"{self.kind}: version 1 directories")
        if self.version == 5:
            refused = unknown_features(sb.sb_features_incompat, KNOWN_INCOMPAT, REFUSED_INCOMPAT)
            if refused:
                raise UnsupportedError(
                    f"{self.kind}: unsupported incompatible features: {', '.join(refused)}"
                )

    def _block_size(self, sb: Any) -> int:
        log = sb.sb_blocklog
        if not MIN_BLOCK_LOG <= log <= MAX_BLOCK_LOG or sb.sb_blocksize != 1 << log:
            raise self._sb_error(f"sb_blocksize {sb.sb_blocksize} with sb_blocklog {log}")
        return sb.sb_blocksize

    def _check_sector_size(self, sb: Any) -> None:
        log = sb.sb_sectlog
        if not MIN_SECT_LOG <= log <= MAX_SECT_LOG or sb.sb_sectsize != 1 << log:
            raise self._sb_error(f"sb_sectsize {sb.sb_sectsize} with sb_sectlog {log}")

    def _inode_size(self, sb: Any) -> int:
        log = sb.sb_inodelog
        low = MIN_INODE_LOG_V5 if self.v5 else MIN_INODE_LOG
        if not low <= log <= MAX_INODE_LOG or sb.sb_inodesize != 1 << log:
            raise self._sb_error(f"sb_inodesize {sb.sb_inodesize} with sb_inodelog {log}")
        if sb.sb_inodesize > self.block_size:
            raise self._sb_error(f"sb_inodesize {sb.sb_inodesize} is over the block size")
        if sb.sb_inopblog != sb.sb_blocklog - log or sb.sb_inopblock != 1 << sb.sb_inopblog:
            raise self._sb_error(
                f"sb_inopblock {sb.sb_inopblock} (log {sb.sb_inopblog}) does not fit the sizes"
            )
        return sb.sb_inodesize

    def _allocation_groups(self, sb: Any) -> tuple[int, int, int]:
        agblocks, agcount = sb.sb_agblocks, sb.sb_agcount
        if agblocks == 0 or agcount == 0:
            raise self._sb_error(f"{agcount} allocation groups of {agblocks} blocks")
        # Block and inode numbers hold the AG block in sb_agblklog bits, rounded up.
        if sb.sb_agblklog != (agblocks - 1).bit_length():
            raise self._sb_error(f"sb_agblklog {sb.sb_agblklog} for {agblocks} blocks per AG")
        return agblocks, agcount, sb.sb_agblklog

    def _data_blocks(self, sb: Any) -> int:
        count = sb.sb_dblocks
        if not (self.agcount - 1) * self.agblocks < count <= self.agcount * self.agblocks:
            raise self._sb_error(
                f"sb_dblocks {count} does not fit {self.agcount} AGs of {self.agblocks} blocks"
            )
        if count > self.source.size // self.block_size:
            raise self._sb_error(
                f"{count} blocks of {self.block_size} bytes do not fit the "
                f"{self.source.size}-byte volume"
            )
        return count

    def _dir_block_size(self, sb: Any) -> int:
        size = self.block_size << sb.sb_dirblklog
        if size > MAX_DIR_BLOCK:
            raise self._sb_error(f"sb_dirblklog {sb.sb_dirblklog} makes {size}-byte dir blocks")
        return size

    def _has_ftype(self, sb: Any) -> bool:
        if self.v5:
            return bool(self.incompat & INCOMPAT_FTYPE)
        if not sb.sb_versionnum & VERSION_MOREBITSBIT:
            return False
        # Old kernels wrote features2 one word late; Linux merges the two copies.
        return bool((sb.sb_features2 | sb.sb_bad_features2) & VERSION2_FTYPE)

    # -- addresses ----------------------------------------------------------------------

    def _inode_offset(self, number: int, what: str) -> int:
        """Byte offset of inode ``number``: AG, block in the AG and slot come from its bits."""
        agno = number >> (self.agblklog + self.inopblog)
        agbno = (number >> self.inopblog) & ((1 << self.agblklog) - 1)
        slot = number & ((1 << self.inopblog) - 1)
        linear = agno * self.agblocks + agbno
        if number == 0 or agno >= self.agcount or agbno >= self.agblocks or linear >= self.dblocks:
            raise CorruptError(f"{self.kind}: {what}: inode {number} is outside the filesystem")
        return linear * self.block_size + slot * self.inode_size

    def _fsblock_offset(self, fsblock: int, count: int, what: str) -> int:
        """Byte offset of ``count`` blocks from filesystem block ``fsblock`` (agno:agbno)."""
        agno = fsblock >> self.agblklog
        agbno = fsblock & ((1 << self.agblklog) - 1)
        linear = agno * self.agblocks + agbno
        if agno >= self.agcount or agbno + count > self.agblocks or linear + count > self.dblocks:
            raise CorruptError(
                f"{self.kind}: {what}: {count} blocks at block {fsblock} "
                f"(AG {agno}, block {agbno}) are outside the filesystem"
            )
        return linear * self.block_size

    def _read(self, offset: int, length: int, what: str) -> bytes:
        return read_exact(self.source, offset, length, f"{self.kind}: {what}")

    # -- inodes -------------------------------------------------------------------------

    def inode(self, number: int) -> Inode:
        """Inode ``number``, read and checked (cached: a walk meets the same ones again)."""
        cached = self._inodes.get(number)
        if cached is not None:
            return cached
        offset = self._inode_offset(number, "inode number")
        raw = self._read(offset, self.inode_size, f"inode {number}")
        return self._inodes.keep(number, self._parse_inode(number, offset, raw))

    def _parse_inode(self, number: int, offset: int, raw: bytes) -> Inode:
        what = f"{self.kind}: inode {number} at byte {offset}"
        d = _DINODE.read(raw)
        if d.di_magic != DINODE_MAGIC:
            raise CorruptError(f"{what}: bad magic 0x{d.di_magic:04x}")
        if d.di_version not in ((3,) if self.v5 else (1, 2)):
            raise CorruptError(f"{what}: version {d.di_version} on a v{self.version} filesystem")
        nextents = d.di_nextents
        core = CORE_SIZE_V2
        if d.di_version == 3:
            core = CORE_SIZE_V3
            v3 = _DINODE_V3.read(raw)
            if v3.di_ino != number:
                raise CorruptError(f"{what}: di_ino says it is inode {v3.di_ino}")
            if v3.di_flags2 & DIFLAG2_NREXT64:
                if not self.incompat & INCOMPAT_NREXT64:
                    raise CorruptError(f"{what}: large extent counts without nrext64")
                nextents = d.di_big_nextents
        if d.di_size >> 63:
            raise CorruptError(f"{what}: negative di_size")
        literal = self.inode_size - core
        fork_size = d.di_forkoff * 8 if d.di_forkoff else literal
        if fork_size > literal:
            raise CorruptError(f"{what}: di_forkoff {d.di_forkoff} is past the inode")
        return Inode(
            number=number,
            offset=offset,
            mode=d.di_mode,
            format=d.di_format,
            size=d.di_size,
            nextents=nextents,
            flags=d.di_flags,
            fork=raw[core : core + fork_size],
            fork_offset=offset + core,
        )

    def _check_child(self, number: int, directory: int, where: int) -> int:
        self._inode_offset(number, f"entry of directory inode {directory} at byte {where}")
        return number

    # -- block maps ---------------------------------------------------------------------

    def _new_walk(self, inode: Inode, end_block: int) -> _Walk:
        overrun = (
            f"{self.kind}: block map of inode {inode.number} reads more blocks "
            "than the filesystem has"
        )
        return _Walk(inode.number, end_block, self.dblocks, overrun, records_left=inode.nextents)

    def _runs(self, inode: Inode, walk: _Walk) -> Iterator[Run]:
        """The data fork's runs in file order, up to ``walk.end_block``."""
        if inode.format == FMT_EXTENTS:
            if inode.nextents * _EXTENT.size > len(inode.fork):
                raise CorruptError(
                    f"{self.kind}: inode {inode.number} at byte {inode.offset}: "
                    f"{inode.nextents} extents do not fit the {len(inode.fork)}-byte data fork"
                )
            records = inode.fork[: inode.nextents * _EXTENT.size]
            yield from self._extent_records(records, inode.fork_offset, walk)
        elif inode.format == FMT_BTREE:
            yield from self._btree_root(inode, walk)
        else:
            raise CorruptError(
                f"{self.kind}: inode {inode.number} at byte {inode.offset}: "
                f"data fork format {inode.format} has no block map"
            )

    def _extent_records(self, records: bytes, where: int, walk: _Walk) -> Iterator[Run]:
        what = f"extent list of inode {walk.inode} at byte {where}"
        for l0, l1 in _EXTENT.iter_unpack(records):
            walk.records_left -= 1
            if walk.records_left < 0:
                raise CorruptError(f"{self.kind}: {what}: more extents than di_nextents")
            startoff, startblock, count, unwritten = decode_extent(l0, l1)
            if count == 0:
                raise CorruptError(f"{self.kind}: {what}: empty extent at block {startoff}")
            if startoff < walk.next_block:
                raise CorruptError(
                    f"{self.kind}: {what}: extent at file block {startoff} overlaps or goes back"
                )
            if startoff >= walk.end_block:
                walk.finished = True
                return
            walk.next_block = startoff + count
            if unwritten:
                yield startoff, count, None  # allocated but never written: reads as zeros
            else:
                yield startoff, count, self._fsblock_offset(startblock, count, what)

    def _btree_root(self, inode: Inode, walk: _Walk) -> Iterator[Run]:
        what = f"bmbt root of inode {inode.number} at byte {inode.fork_offset}"
        fork = inode.fork
        if len(fork) < _BMDR.size:
            raise CorruptError(f"{self.kind}: {what}: no room for the header")
        level, numrecs = _BMDR.unpack_from(fork)
        if level > MAX_TREE_DEPTH:
            raise LimitError(f"{self.kind}: {what}: depth {level} is over {MAX_TREE_DEPTH}")
        most = (len(fork) - _BMDR.size) // (BMBT_KEY_SIZE + BMBT_PTR_SIZE)
        if level == 0 or not 1 <= numrecs <= most:
            raise CorruptError(f"{self.kind}: {what}: level {level} with {numrecs} records")
        keys = struct.unpack_from(f">{numrecs}Q", fork, _BMDR.size)
        ptrs = struct.unpack_from(f">{numrecs}Q", fork, _BMDR.size + most * BMBT_KEY_SIZE)
        yield from self._btree_children(keys, ptrs, level - 1, what, walk)

    def _btree_children(
        self, keys: tuple[int, ...], ptrs: tuple[int, ...], level: int, what: str, walk: _Walk
    ) -> Iterator[Run]:
        previous = -1
        for key, ptr in zip(keys, ptrs, strict=True):
            if key <= previous:
                raise CorruptError(f"{self.kind}: {what}: keys out of order at file block {key}")
            previous = key
            if key >= walk.end_block or walk.finished:
                return
            walk.spend()
            offset = self._fsblock_offset(ptr, 1, f"child of {what}")
            block = self._read(offset, self.block_size, f"bmbt block of inode {walk.inode}")
            yield from self._btree_block(block, offset, level, walk)

    def _btree_block(self, block: bytes, offset: int, level: int, walk: _Walk) -> Iterator[Run]:
        what = f"bmbt block of inode {walk.inode} at byte {offset}"
        header = _BMBT.read(block)
        if header.bb_magic != (BMBT_MAGIC_V5 if self.v5 else BMBT_MAGIC_V4):
            raise CorruptError(f"{self.kind}: {what}: bad magic {header.bb_magic!r}")
        size = BMBT_HEADER_V5 if self.v5 else BMBT_HEADER_V4
        if self.v5:
            v5 = _BMBT_V5.read(block)
            self._check_owner(v5.bb_uuid, v5.bb_owner, walk.inode, what)
        if header.bb_level != level:
            raise CorruptError(
                f"{self.kind}: {what}: level {header.bb_level} under a node that expects {level}"
            )
        most = (self.block_size - size) // _EXTENT.size
        numrecs = header.bb_numrecs
        if not 1 <= numrecs <= most:
            raise CorruptError(f"{self.kind}: {what}: {numrecs} records, room for {most}")
        if level == 0:
            records = block[size : size + numrecs * _EXTENT.size]
            yield from self._extent_records(records, offset + size, walk)
            return
        keys = struct.unpack_from(f">{numrecs}Q", block, size)
        ptrs = struct.unpack_from(f">{numrecs}Q", block, size + most * BMBT_KEY_SIZE)
        yield from self._btree_children(keys, ptrs, level - 1, what, walk)

    def _check_owner(self, uuid: bytes, found: int, owner: int, what: str) -> None:
        """A v5 metadata block names the filesystem it belongs to and its owning inode."""
        if uuid != self.meta_uuid:
            raise CorruptError(f"{self.kind}: {what}: belongs to filesystem {format_uuid(uuid)}")
        if found != owner:
            raise CorruptError(f"{self.kind}: {what}: owner is inode {found}, not {owner}")

    def _end_block(self, size: int) -> int:
        return -(-size // self.block_size)

    # -- the Filesystem primitives ------------------------------------------------------

    def root(self) -> int:
        return self.root_ino

    def node_stat(self, node: int) -> Stat:
        inode = self.inode(node)
        return Stat(inode.type, inode.size, inode.mode & 0o7777)

    def node_extents(self, node: int) -> Iterator[Extent]:
        inode = self.inode(node)
        if inode.flags & DIFLAG_REALTIME:
            raise UnsupportedError(f"{self.kind}: inode {node} keeps its data on a realtime device")
        if inode.format == FMT_LOCAL:
            if inode.size > len(inode.fork):
                raise self._local_error(inode)
            if inode.size:
                yield Extent(0, inode.size, ExtentKind.ENCODED)
            return
        walk = self._new_walk(inode, self._end_block(inode.size))
        yield from merged_extents(self._runs(inode, walk), self.block_size)

    def read_encoded(self, node: int, extent: Extent) -> bytes:
        fork = self.inode(node).fork
        return fork[extent.file_offset : extent.file_offset + extent.length]

    def _local_error(self, inode: Inode) -> CorruptError:
        return CorruptError(
            f"{self.kind}: inode {inode.number} at byte {inode.offset}: "
            f"{inode.size} bytes do not fit the {len(inode.fork)}-byte data fork"
        )

    # -- symlinks -----------------------------------------------------------------------

    def readlink(self, node: int) -> bytes:
        inode = self.inode(node)
        if inode.size > MAX_SYMLINK_TARGET:
            raise CorruptError(f"{self.kind}: symlink inode {node}: target of {inode.size} bytes")
        if inode.format == FMT_LOCAL:
            if inode.size > len(inode.fork):
                raise self._local_error(inode)
            return inode.fork[: inode.size]
        return self._remote_symlink(inode)

    def _remote_symlink(self, inode: Inode) -> bytes:
        """A target kept in blocks; on v5 each block starts with a header to skip."""
        bs = self.block_size
        per_block = bs - SYMLINK_HEADER_SIZE if self.v5 else bs
        walk = self._new_walk(inode, -(-inode.size // per_block))
        parts: list[bytes] = []
        done = 0
        for logical, count, where in self._runs(inode, walk):
            if where is None or logical * per_block != done:
                raise CorruptError(
                    f"{self.kind}: symlink inode {inode.number}: no data at block {logical}"
                )
            for index in range(min(count, walk.end_block - logical)):
                walk.spend()
                offset = where + index * bs
                block = self._read(offset, bs, f"symlink block of inode {inode.number}")
                take = min(per_block, inode.size - done)
                if self.v5:
                    self._check_symlink_header(block, offset, done, inode.number)
                    parts.append(block[SYMLINK_HEADER_SIZE : SYMLINK_HEADER_SIZE + take])
                else:
                    parts.append(block[:take])
                done += take
        if done != inode.size:
            raise CorruptError(
                f"{self.kind}: symlink inode {inode.number}: blocks hold {done} of {inode.size} bytes"
            )
        return b"".join(parts)

    def _check_symlink_header(self, block: bytes, offset: int, done: int, owner: int) -> None:
        what = f"symlink block of inode {owner} at byte {offset}"
        header = _SYMLINK_HDR.read(block)
        if header.sl_magic != SYMLINK_MAGIC:
            raise CorruptError(f"{self.kind}: {what}: bad magic {header.sl_magic!r}")
        if header.sl_offset != done:
            raise CorruptError(f"{self.kind}: {what}: sl_offset {header.sl_offset}, not {done}")
        self._check_owner(header.sl_uuid, header.sl_owner, owner, what)

    # -- directories --------------------------------------------------------------------

    def entry_child(self, node: int, entry: tuple[bytes, int, int]) -> int:
        return self._check_child(entry[1], node, entry[2])

    def name_matcher(self, node: int, name: str, want: bytes) -> Callable[[bytes], bool] | None:
        return ascii_ci_matcher(want) if self.ascii_ci else None

    def raw_entries(self, node: int) -> Iterator[tuple[bytes, int, int]]:
        """(name, inode, byte offset of the entry) of every entry but . and .., in on-disk
        order; the inode number is checked only when the entry is used."""
        inode = self.inode(node)
        if inode.format == FMT_LOCAL:
            yield from self._shortform_entries(inode)
            return
        for where, block in self._directory_blocks(inode):
            yield from self._data_block_entries(block, where, node)

    def _shortform_entries(self, inode: Inode) -> Iterator[tuple[bytes, int, int]]:
        if inode.size > len(inode.fork):
            raise self._local_error(inode)
        buf = inode.fork[: inode.size]
        base = inode.fork_offset
        if len(buf) < 2:
            raise self._dirent_error(inode.number, base, "shortform header truncated")
        count, i8count = buf[0], buf[1]
        ino_size = 8 if i8count else 4
        pos = 2 + ino_size  # past the parent's inode number
        for _ in range(count):
            name_at = pos + SF_ENTRY_FIXED
            if name_at > len(buf):
                raise self._dirent_error(inode.number, base + pos, "entry past di_size")
            namelen = buf[pos]
            ino_at = name_at + namelen + self.ftype_len
            end = ino_at + ino_size
            if namelen == 0 or end > len(buf):
                raise self._dirent_error(
                    inode.number, base + pos, f"{namelen}-byte name runs past di_size"
                )
            yield (
                buf[name_at : name_at + namelen],
                int.from_bytes(buf[ino_at:end], "big"),
                base + pos,
            )
            pos = end

    def _directory_blocks(self, inode: Inode) -> Iterator[tuple[int, bytes]]:
        """(byte offset, bytes) of each directory data block, in file order.

        A directory block may span several filesystem blocks, and so several extents;
        its pieces are gathered here. Leaf and free-index blocks (past 32 GiB) are skipped.
        """
        bs = self.block_size
        per = self.dir_block_size // bs
        walk = self._new_walk(inode, DIR_LEAF_OFFSET // bs)
        pieces: list[bytes] = []
        start = expected = 0
        for logical, count, where in self._runs(inode, walk):
            if pieces and logical != expected:
                raise self._dirblock_error(inode, expected, "is missing from a directory block")
            if where is None:
                if pieces:
                    raise self._dirblock_error(inode, logical, "is partly unwritten")
                continue  # an unwritten block holds no entries
            pos, end = logical, min(logical + count, walk.end_block)
            while pos < end:
                offset = where + (pos - logical) * bs
                if not pieces:
                    if pos % per:
                        raise self._dirblock_error(inode, pos, "starts inside a directory block")
                    start = offset
                take = min(end - pos, per - pos % per)
                walk.spend(take)
                pieces.append(self._read(offset, take * bs, f"directory of inode {inode.number}"))
                pos += take
                expected = pos
                if pos % per == 0:
                    yield start, b"".join(pieces)
                    pieces = []
        if pieces:
            raise self._dirblock_error(inode, 0, "ends inside a directory block")

    def _dirblock_error(self, inode: Inode, block: int, problem: str) -> CorruptError:
        return CorruptError(
            f"{self.kind}: directory inode {inode.number}: data at file block {block} {problem}"
        )

    def _data_block_entries(
        self, block: bytes, where: int, node: int
    ) -> Iterator[tuple[bytes, int, int]]:
        what = f"directory block of inode {node} at byte {where}"
        magic = block[:4]
        single, data = (
            (DIR_BLOCK_MAGIC_V5, DIR_DATA_MAGIC_V5)
            if self.v5
            else (DIR_BLOCK_MAGIC_V4, DIR_DATA_MAGIC_V4)
        )
        header = DIR_HEADER_V5 if self.v5 else DIR_HEADER_V4
        if magic not in (single, data):
            raise CorruptError(f"{self.kind}: {what}: bad magic {magic!r}")
        if self.v5:
            v5 = _DIR3_BLK_HDR.read(block)
            self._check_owner(v5.uuid, v5.owner, node, what)
        end = len(block)
        if magic == single:
            # A single-block directory ends with its hash index and the tail.
            count, _stale = _BLOCK_TAIL.unpack_from(block, end - _BLOCK_TAIL.size)
            end -= _BLOCK_TAIL.size + count * LEAF_ENTRY_SIZE
            if end < header:
                raise CorruptError(
                    f"{self.kind}: {what}: {count} leaf entries do not fit the block"
                )
        yield from self._data_entries(block, header, end, where, node)

    def _data_entries(
        self, block: bytes, pos: int, end: int, where: int, node: int
    ) -> Iterator[tuple[bytes, int, int]]:
        while pos < end:
            if end - pos < _UNUSED.size:
                raise self._dirent_error(node, where + pos, f"only {end - pos} bytes left")
            freetag, length = _UNUSED.unpack_from(block, pos)
            if freetag == FREETAG:
                if length < 8 or length % 8 or length > end - pos:
                    raise self._dirent_error(node, where + pos, f"unused entry of {length} bytes")
                pos += length
                continue
            if end - pos < _DATA_ENTRY.size:
                raise self._dirent_error(node, where + pos, f"only {end - pos} bytes left")
            child, namelen = _DATA_ENTRY.unpack_from(block, pos)
            size = dir_entry_size(namelen, self.ftype_len)
            if namelen == 0 or size > end - pos:
                raise self._dirent_error(
                    node, where + pos, f"{namelen}-byte name runs past the block"
                )
            (tag,) = _TAG.unpack_from(block, pos + size - _TAG.size)
            if tag != pos:
                raise self._dirent_error(node, where + pos, f"tag {tag} is not its offset {pos}")
            name = block[pos + _DATA_ENTRY.size : pos + _DATA_ENTRY.size + namelen]
            if name != b"." and name != b"..":
                yield name, child, where + pos
            pos += size

    def _dirent_error(self, node: int, offset: int, problem: str) -> CorruptError:
        return CorruptError(
            f"{self.kind}: directory entry of inode {node} at byte {offset}: {problem}"
        )
