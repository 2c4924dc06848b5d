"""ext2, ext3 and ext4, read-only (Linux Documentation/filesystems/ext4 for the format).

A node is an inode number. Group descriptors and inodes are read only when a path
needs them; block maps (extent trees and indirect blocks) are walked lazily, so memory
does not grow with file size. Every walk over guest-made structures is bounded by the
filesystem's own block count, so a hostile image costs at most a read of the image.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from itertools import compress

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
    FileReader,
    NodeCache,
    NodeType,
    Stat,
    checked_extents,
    mode_type,
)
from .blockmap import Run, merged_extents, pointer_runs
from .directory import casefold_matcher
from .layout import Layout, format_uuid, read_exact, unknown_features

if TYPE_CHECKING:
    from typing import Any

SUPERBLOCK_OFFSET = 1024
SUPERBLOCK_SIZE = 1024
MAGIC = 0xEF53

# struct ext4_super_block (only the fields a reader needs)
_SUPERBLOCK = Layout(
    "Superblock",
    "<",
    (
        ("s_inodes_count", 0x00, "I"),
        ("s_blocks_count_lo", 0x04, "I"),
        ("s_first_data_block", 0x14, "I"),
        ("s_log_block_size", 0x18, "I"),
        ("s_log_cluster_size", 0x1C, "I"),
        ("s_blocks_per_group", 0x20, "I"),
        ("s_inodes_per_group", 0x28, "I"),
        ("s_magic", 0x38, "H"),
        ("s_rev_level", 0x4C, "I"),
        ("s_inode_size", 0x58, "H"),
        ("s_feature_compat", 0x5C, "I"),
        ("s_feature_incompat", 0x60, "I"),
        ("s_feature_ro_compat", 0x64, "I"),
        ("s_uuid", 0x68, "16s"),
        ("s_volume_name", 0x78, "16s"),
        ("s_desc_size", 0xFE, "H"),
        ("s_first_meta_bg", 0x104, "I"),
        ("s_blocks_count_hi", 0x150, "I"),
        ("s_backup_bgs_0", 0x24C, "I"),  # s_backup_bgs[0]
        ("s_backup_bgs_1", 0x250, "I"),  # s_backup_bgs[1]
    ),
)

COMPAT_HAS_JOURNAL = 0x4
COMPAT_SPARSE_SUPER2 = 0x200

RO_COMPAT_SPARSE_SUPER = 0x1
RO_COMPAT_LARGE_FILE = 0x2
RO_COMPAT_BTREE_DIR = 0x4
RO_COMPAT_HUGE_FILE = 0x8
RO_COMPAT_BIGALLOC = 0x200

INCOMPAT_FILETYPE = 0x2
INCOMPAT_RECOVER = 0x4
INCOMPAT_META_BG = 0x10
INCOMPAT_EXTENTS = 0x40
INCOMPAT_64BIT = 0x80
INCOMPAT_LARGEDIR = 0x4000

#: The INCOMPAT features this reader understands (a dirty journal is read anyway, as GRUB does).
KNOWN_INCOMPAT = {
    0x2: "filetype",
    0x4: "needs_recovery",
    0x10: "meta_bg",
    0x40: "extents",
    0x80: "64bit",
    0x100: "mmp",
    0x200: "flex_bg",
    0x400: "ea_inode",
    0x1000: "dirdata",
    0x2000: "metadata_csum_seed",
    0x4000: "largedir",
    0x8000: "inline_data",
    0x10000: "encrypt",
    0x20000: "casefold",
}
#: Names for the ones we refuse, for the message.
REFUSED_INCOMPAT = {0x1: "compression", 0x8: "journal_dev"}

GOOD_OLD_REV = 0
GOOD_OLD_INODE_SIZE = 128
MAX_LOG_BLOCK_SIZE = 6  # 1024 << 6 = 64 KiB
MAX_LOG_CLUSTER_SIZE = 20  # 1 GiB clusters, as Linux allows
MIN_DESC_SIZE_64BIT = 64
MAX_DESC_SIZE = 1024

# struct ext4_group_desc: bg_inode_table_lo, and bg_inode_table_hi in 64-byte descriptors
_GROUP_DESC = Layout("GroupDesc", "<", (("bg_inode_table_lo", 0x08, "I"),))
_GROUP_DESC_64 = Layout(
    "GroupDesc64", "<", (("bg_inode_table_lo", 0x08, "I"), ("bg_inode_table_hi", 0x28, "I"))
)

# struct ext4_inode, the 128-byte fixed part; osd2 holds the Linux l_i_*_high fields
_INODE = Layout(
    "RawInode",
    "<",
    (
        ("i_mode", 0x00, "H"),
        ("i_size_lo", 0x04, "I"),
        ("i_blocks_lo", 0x1C, "I"),
        ("i_flags", 0x20, "I"),
        ("i_block", 0x28, "60s"),
        ("i_file_acl_lo", 0x68, "I"),
        ("i_size_high", 0x6C, "I"),
        ("l_i_blocks_high", 0x74, "H"),
        ("l_i_file_acl_high", 0x76, "H"),
    ),
)
I_BLOCK_OFFSET = 0x28
I_BLOCK_SIZE = 60
# at 0x80, in inodes larger than 128 bytes
_I_EXTRA_ISIZE = Layout("InodeExtra", "<", (("i_extra_isize", 0, "H"),))


EXT4_ENCRYPT_FL = 0x800
EXT4_HUGE_FILE_FL = 0x40000
EXT4_EXTENTS_FL = 0x80000
EXT4_INLINE_DATA_FL = 0x10000000
EXT4_CASEFOLD_FL = 0x40000000

_EXTENT_HEADER = Layout(
    "ExtentHeader",
    "<",
    (
        ("eh_magic", 0, "H"),
        ("eh_entries", 2, "H"),
        ("eh_max", 4, "H"),
        ("eh_depth", 6, "H"),
        ("eh_generation", 8, "I"),
    ),
)
_EXTENT_INDEX = Layout(
    "ExtentIdx",
    "<",
    (("ei_block", 0, "I"), ("ei_leaf_lo", 4, "I"), ("ei_leaf_hi", 8, "H"), ("ei_unused", 10, "H")),
)
_EXTENT_LEAF = Layout(
    "Extent",
    "<",
    (("ee_block", 0, "I"), ("ee_len", 4, "H"), ("ee_start_hi", 6, "H"), ("ee_start_lo", 8, "I")),
)
EXTENT_MAGIC = 0xF30A
#: ee_len above this marks an uninitialized extent (it reads as zeros).
EXT_INIT_MAX_LEN = 32768

N_DIRECT = 12
_BLOCK_POINTERS = struct.Struct(f"<{N_DIRECT + 3}I")  # i_block as direct, single, double, triple

# struct ext4_dir_entry_2 (without the filetype feature, struct ext4_dir_entry has a
# 16-bit name_len in the last two bytes)
_DIRENT = Layout(
    "DirEntry2",
    "<",
    (("inode", 0, "I"), ("rec_len", 4, "H"), ("name_len", 6, "B"), ("file_type", 7, "B")),
)
MIN_REC_LEN = 12  # EXT4_DIR_REC_LEN(1)

# The in-inode extended attributes: struct ext4_xattr_ibody_header, then struct
# ext4_xattr_entry records, each followed by its name
_XATTR_MAGIC = Layout("XattrIbodyHeader", "<", (("h_magic", 0, "I"),))
XATTR_MAGIC = 0xEA020000
_XATTR_ENTRY = Layout(
    "XattrEntry",
    "<",
    (
        ("e_name_len", 0, "B"),
        ("e_name_index", 1, "B"),
        ("e_value_offs", 2, "H"),
        ("e_value_inum", 4, "I"),
        ("e_value_size", 8, "I"),
        ("e_hash", 12, "I"),
    ),
)
XATTR_INDEX_SYSTEM = 7
INLINE_DATA_XATTR = b"data"  # system.data: the inline bytes past i_block


@record(frozen=True)
class Inode:
    number: int
    #: Byte offset of the inode record in the volume (for messages).
    offset: int
    mode: int
    size: int
    flags: int
    i_block: bytes
    #: i_blocks in 512-byte units, whatever unit huge_file stored it in.
    sectors: int
    has_xattr_block: bool
    #: The in-inode extended attribute area (after i_extra_isize); None if that is bad.
    xattr_area: bytes | None

    @property
    def type(self) -> NodeType:
        return mode_type(self.mode)


def open_filesystem(source: ByteSource) -> Ext4Filesystem | None:
    """The ext2/3/4 filesystem on ``source``, or None when there is no ext superblock."""
    raw = source.pread(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
    if len(raw) < SUPERBLOCK_SIZE:
        return None
    sb = _SUPERBLOCK.read(raw)
    if sb.s_magic != MAGIC:
        return None
    return Ext4Filesystem(source, sb)


def kind_for_features(compat: int, incompat: int, ro_compat: int) -> str:
    """ext4 when it uses anything ext3 lacks, ext3 with a journal, else ext2 (as blkid says)."""
    ext3_incompat = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG
    ext3_ro_compat = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR
    if incompat & ~ext3_incompat or ro_compat & ~ext3_ro_compat:
        return "ext4"
    return "ext3" if compat & COMPAT_HAS_JOURNAL else "ext2"


def is_power_of(n: int, base: int) -> bool:
    while n > 1 and n % base == 0:
        n //= base
    return n == 1


class Ext4Filesystem(ByteNameFilesystem[int]):
    ROOT_INODE = 2

    def __init__(self, source: ByteSource, sb: Any) -> None:
        super().__init__(source)
        self.compat = sb.s_feature_compat
        self.incompat = sb.s_feature_incompat
        self.ro_compat = sb.s_feature_ro_compat
        self.kind = kind_for_features(self.compat, self.incompat, self.ro_compat)
        self._check_features()
        self.block_size = self._block_size(sb)
        self.cluster_size = self._cluster_size(sb)
        self.blocks_count = self._blocks_count(sb)
        self.first_data_block = sb.s_first_data_block
        if self.first_data_block >= self.blocks_count:
            raise self._sb_error(f"s_first_data_block {self.first_data_block} is past the end")
        self.blocks_per_group = sb.s_blocks_per_group
        if self.blocks_per_group == 0:
            raise self._sb_error("s_blocks_per_group is 0")
        self.group_count = -(-(self.blocks_count - self.first_data_block) // self.blocks_per_group)
        self.inodes_per_group = sb.s_inodes_per_group
        if not 1 <= self.inodes_per_group <= 8 * self.block_size:
            raise self._sb_error(f"s_inodes_per_group {self.inodes_per_group} is out of range")
        self.inodes_count = sb.s_inodes_count
        if not self.ROOT_INODE <= self.inodes_count <= self.group_count * self.inodes_per_group:
            raise self._sb_error(f"s_inodes_count {self.inodes_count} does not fit the groups")
        self.inode_size = self._inode_size(sb)
        self.desc_size = self._desc_size(sb)
        self.descs_per_block = self.block_size // self.desc_size
        self.first_meta_bg = sb.s_first_meta_bg
        self._check_descriptor_table()
        self.backup_groups = (sb.s_backup_bgs_0, sb.s_backup_bgs_1)
        self.has_filetype = bool(self.incompat & INCOMPAT_FILETYPE)
        self.uuid = format_uuid(sb.s_uuid)
        label = sb.s_volume_name.split(b"\0", 1)[0]
        self.label = label.decode("utf-8", "replace") if label else None
        self._descriptor_blocks: NodeCache[int, bytes] = NodeCache()
        self._inodes: NodeCache[int, Inode] = NodeCache()

    # -- the superblock -----------------------------------------------------------------

    def _sb_error(self, problem: str) -> CorruptError:
        return CorruptError(f"{self.kind}: superblock at byte {SUPERBLOCK_OFFSET}: {problem}")

    def _check_features(self) -> None:
        refused = unknown_features(self.incompat, KNOWN_INCOMPAT, REFUSED_INCOMPAT)
        if refused:
            raise UnsupportedError(
                f"{self.kind}: unsupported incompatible features: {', '.join(refused)}"
            )

    def _block_size(self, sb: Any) -> int:
        if sb.s_log_block_size > MAX_LOG_BLOCK_SIZE:
            raise self._sb_error(f"s_log_block_size {sb.s_log_block_size} is over 64 KiB blocks")
        return 1024 << sb.s_log_block_size

    def _cluster_size(self, sb: Any) -> int:
        if not self.ro_compat & RO_COMPAT_BIGALLOC:
            return self.block_size
        log = sb.s_log_cluster_size
        if not sb.s_log_block_size <= log <= MAX_LOG_CLUSTER_SIZE:
            raise self._sb_error(f"s_log_cluster_size {log} is out of range")
        return 1024 << log

    def _blocks_count(self, sb: Any) -> int:
        count = sb.s_blocks_count_lo
        if self.incompat & INCOMPAT_64BIT:
            count |= sb.s_blocks_count_hi << 32
        if count == 0 or count > self.source.size // self.block_size:
            raise self._sb_error(
                f"{count} blocks of {self.block_size} bytes do not fit the "
                f"{self.source.size}-byte volume"
            )
        return count

    def _inode_size(self, sb: Any) -> int:
        if sb.s_rev_level == GOOD_OLD_REV:
            return GOOD_OLD_INODE_SIZE
        size = sb.s_inode_size
        if size < GOOD_OLD_INODE_SIZE or size > self.block_size or size & (size - 1):
            raise self._sb_error(f"s_inode_size {size} is not a power of two in 128..block size")
        return size

    def _desc_size(self, sb: Any) -> int:
        if not self.incompat & INCOMPAT_64BIT:
            return 32
        size = sb.s_desc_size
        if size < MIN_DESC_SIZE_64BIT or size > MAX_DESC_SIZE or size & (size - 1):
            raise self._sb_error(f"s_desc_size {size} is not a power of two in 64..1024")
        return size

    def _check_descriptor_table(self) -> None:
        table_blocks = -(-self.group_count // self.descs_per_block)
        if self.incompat & INCOMPAT_META_BG:
            if self.first_meta_bg > table_blocks:
                raise self._sb_error(f"s_first_meta_bg {self.first_meta_bg} is past the table")
            table_blocks = self.first_meta_bg
        if self._superblock_block() + table_blocks >= self.blocks_count:
            raise self._sb_error(f"{table_blocks} group descriptor blocks do not fit")

    def _superblock_block(self) -> int:
        """The block holding byte 1024: 1 with 1 KiB blocks, else 0."""
        return SUPERBLOCK_OFFSET // self.block_size

    # -- group descriptors and inodes ---------------------------------------------------

    def _group_has_superblock(self, group: int) -> bool:
        if group == 0:
            return True
        if self.compat & COMPAT_SPARSE_SUPER2:
            return group in self.backup_groups
        if group == 1 or not self.ro_compat & RO_COMPAT_SPARSE_SUPER:
            return True
        return group % 2 == 1 and any(is_power_of(group, base) for base in (3, 5, 7))

    def _descriptor_block_number(self, index: int) -> int:
        """Where descriptor block ``index`` lives: after the superblock, or with meta_bg,
        in the first group of its meta group (after that group's superblock backup)."""
        if not self.incompat & INCOMPAT_META_BG or index < self.first_meta_bg:
            return self._superblock_block() + 1 + index
        group = index * self.descs_per_block
        skip = 1 if self._group_has_superblock(group) else 0
        if self.block_size == 1024 and index == 0 and self.first_data_block == 0:
            skip += 1  # the superblock is block 1 here, not the group's first block
        return self.first_data_block + group * self.blocks_per_group + skip

    def _inode_table_block(self, group: int) -> int:
        index, slot = divmod(group, self.descs_per_block)
        buf = self._descriptor_blocks.get(index)
        if buf is None:
            buf = self._descriptor_blocks.keep(
                index, self._block(self._descriptor_block_number(index), "group descriptor block")
            )
        offset = slot * self.desc_size
        if self.desc_size >= MIN_DESC_SIZE_64BIT:
            desc = _GROUP_DESC_64.read(buf, offset)
            return desc.bg_inode_table_lo | (desc.bg_inode_table_hi << 32)
        return _GROUP_DESC.read(buf, offset).bg_inode_table_lo

    def inode(self, number: int) -> Inode:
        """Inode ``number``, read and checked (cached: a walk meets the same ones again)."""
        cached = self._inodes.get(number)
        if cached is not None:
            return cached
        if not 1 <= number <= self.inodes_count:
            raise CorruptError(f"{self.kind}: inode {number} is outside 1..{self.inodes_count}")
        group, slot = divmod(number - 1, self.inodes_per_group)
        table = self._inode_table_block(group)
        offset = table * self.block_size + slot * self.inode_size
        if (
            table >= self.blocks_count
            or offset + self.inode_size > self.blocks_count * self.block_size
        ):
            raise CorruptError(
                f"{self.kind}: inode table of group {group} at block {table} is outside the filesystem"
            )
        raw = self._read(offset, self.inode_size, f"inode {number}")
        return self._inodes.keep(number, self._parse_inode(number, offset, raw))

    def _parse_inode(self, number: int, offset: int, raw: bytes) -> Inode:
        r = _INODE.read(raw)
        kind = mode_type(r.i_mode)
        size = r.i_size_lo
        # i_size_high was i_dir_acl for directories until largedir gave it back.
        if kind is NodeType.FILE or (kind is NodeType.DIR and self.incompat & INCOMPAT_LARGEDIR):
            size |= r.i_size_high << 32
        sectors = r.i_blocks_lo
        if self.ro_compat & RO_COMPAT_HUGE_FILE:
            sectors |= r.l_i_blocks_high << 32
            if r.i_flags & EXT4_HUGE_FILE_FL:
                sectors *= self.block_size // 512
        file_acl = r.i_file_acl_lo
        if self.incompat & INCOMPAT_64BIT:
            file_acl |= r.l_i_file_acl_high << 32
        return Inode(
            number=number,
            offset=offset,
            mode=r.i_mode,
            size=size,
            flags=r.i_flags,
            i_block=r.i_block,
            sectors=sectors,
            has_xattr_block=file_acl != 0,
            xattr_area=self._xattr_area(raw),
        )

    @staticmethod
    def _xattr_area(raw: bytes) -> bytes | None:
        """The in-inode xattr area, or None when i_extra_isize does not fit the inode
        (only inline data needs the area, so only it fails on that)."""
        if len(raw) <= GOOD_OLD_INODE_SIZE:
            return b""
        (extra,) = _I_EXTRA_ISIZE.unpack_from(raw, GOOD_OLD_INODE_SIZE)
        if extra % 4 or GOOD_OLD_INODE_SIZE + extra > len(raw):
            return None
        return raw[GOOD_OLD_INODE_SIZE + extra :]

    # -- reading blocks -----------------------------------------------------------------

    def _read(self, offset: int, length: int, what: str) -> bytes:
        return read_exact(self.source, offset, length, f"{self.kind}: {what}")

    def _block(self, number: int, what: str) -> bytes:
        if not 0 <= number < self.blocks_count:
            raise CorruptError(
                f"{self.kind}: {what} at block {number} is outside the {self.blocks_count}-block filesystem"
            )
        return self._read(number * self.block_size, self.block_size, what)

    # -- block maps ---------------------------------------------------------------------

    def _new_walk(self, inode: Inode) -> BlockWalk:
        end = -(-inode.size // self.block_size)
        overrun = (
            f"{self.kind}: block map of inode {inode.number} has more nodes "
            "than the filesystem has blocks"
        )
        return BlockWalk(inode.number, end, self.blocks_count, overrun)

    def _extent_runs(self, inode: Inode) -> Iterator[Run]:
        walk = self._new_walk(inode)
        yield from self._extent_node(inode.i_block, inode.offset + I_BLOCK_OFFSET, None, walk)

    def _extent_node(
        self, buf: bytes, where: int, want_depth: int | None, walk: BlockWalk
    ) -> Iterator[Run]:
        what = f"{self.kind}: extent node of inode {walk.inode} at byte {where}"
        magic, entries, most, depth, _generation = _EXTENT_HEADER.unpack_from(buf)
        if magic != EXTENT_MAGIC:
            raise CorruptError(f"{what}: bad magic 0x{magic:04x}")
        fits = (len(buf) - _EXTENT_HEADER.size) // _EXTENT_LEAF.size
        if entries > most or entries > fits:
            raise CorruptError(f"{what}: {entries} entries, room for {min(most, fits)}")
        if want_depth is None and depth > MAX_TREE_DEPTH:
            raise LimitError(f"{what}: depth {depth} is over the limit of {MAX_TREE_DEPTH}")
        if want_depth is not None and depth != want_depth:
            raise CorruptError(f"{what}: depth {depth} under a node that expects {want_depth}")
        body = buf[_EXTENT_HEADER.size : _EXTENT_HEADER.size + entries * _EXTENT_LEAF.size]
        if depth == 0:
            yield from self._extent_leaf(body, what, walk)
            return
        previous = -1
        for ei_block, leaf_lo, leaf_hi, _unused in _EXTENT_INDEX.iter_unpack(body):
            if ei_block <= previous:
                raise CorruptError(f"{what}: index entries out of order at logical {ei_block}")
            previous = ei_block
            if ei_block >= walk.end_block:
                return
            child = leaf_lo | (leaf_hi << 32)
            walk.spend()
            node = self._block(child, f"extent node of inode {walk.inode}")
            yield from self._extent_node(node, child * self.block_size, depth - 1, walk)

    def _extent_leaf(self, body: bytes, what: str, walk: BlockWalk) -> Iterator[Run]:
        for ee_block, ee_len, start_hi, start_lo in _EXTENT_LEAF.iter_unpack(body):
            if ee_block >= walk.end_block:
                return
            uninitialized = ee_len > EXT_INIT_MAX_LEN
            length = ee_len - EXT_INIT_MAX_LEN if uninitialized else ee_len
            if length == 0:
                raise CorruptError(f"{what}: empty extent at logical block {ee_block}")
            if ee_block < walk.next_block:
                raise CorruptError(f"{what}: extent at logical block {ee_block} overlaps")
            start = start_lo | (start_hi << 32)
            if not uninitialized and start + length > self.blocks_count:
                raise CorruptError(
                    f"{what}: extent at logical block {ee_block} points past the last block"
                )
            walk.next_block = ee_block + length
            yield ee_block, length, None if uninitialized else start * self.block_size

    def _indirect_runs(self, inode: Inode) -> Iterator[Run]:
        walk = self._new_walk(inode)
        pointers = _BLOCK_POINTERS.unpack(inode.i_block)
        for logical in range(min(N_DIRECT, walk.end_block)):
            if pointers[logical]:
                yield self._data_run(logical, pointers[logical], walk)
        per_block = self.block_size // 4
        first = N_DIRECT
        for level in (1, 2, 3):
            if first >= walk.end_block:
                return
            if pointers[N_DIRECT + level - 1]:
                yield from self._indirect_block(pointers[N_DIRECT + level - 1], level, first, walk)
            first += per_block**level

    def _data_run(self, logical: int, physical: int, walk: BlockWalk, count: int = 1) -> Run:
        """``count`` blocks from ``logical``, stored one after the other from ``physical``."""
        if physical + count > self.blocks_count:
            past = max(physical, self.blocks_count)
            raise CorruptError(
                f"{self.kind}: block pointer of inode {walk.inode} at logical block "
                f"{logical + past - physical} names block {past}, past the last block"
            )
        return logical, count, physical * self.block_size

    def _indirect_block(
        self, number: int, level: int, first: int, walk: BlockWalk
    ) -> Iterator[Run]:
        """Runs under an indirect block of ``level`` (1 single, 2 double, 3 triple)."""
        walk.spend()
        buf = self._block(number, f"indirect block of inode {walk.inode}")
        pointers = struct.unpack(f"<{self.block_size // 4}I", buf)
        if level == 1:
            for index, count, start in pointer_runs(pointers):
                logical = first + index
                if logical >= walk.end_block:
                    return
                yield self._data_run(logical, start, walk, min(count, walk.end_block - logical))
            return
        span = (self.block_size // 4) ** (level - 1)
        # Zero pointers are holes; compress skips them in C, so a block of holes costs
        # one read and no Python loop however large the file claims to be.
        for index in compress(range(len(pointers)), pointers):
            logical = first + index * span
            if logical >= walk.end_block:
                return
            yield from self._indirect_block(pointers[index], level - 1, logical, walk)

    # -- inline data --------------------------------------------------------------------

    def _system_data(self, inode: Inode) -> bytes:
        """The value of system.data: the inline bytes past the 60 in i_block."""
        area = inode.xattr_area
        if area is None:
            raise CorruptError(
                f"{self.kind}: inode {inode.number} at byte {inode.offset}: "
                "i_extra_isize does not fit the inode"
            )
        if len(area) < _XATTR_MAGIC.size or _XATTR_MAGIC.unpack_from(area)[0] != XATTR_MAGIC:
            return b""
        entries = area[_XATTR_MAGIC.size :]
        base = inode.offset + self.inode_size - len(entries)
        pos = 0
        # The list ends at four zero bytes; each entry moves pos on by at least 16.
        while pos + 4 <= len(entries) and entries[pos : pos + 4] != b"\0\0\0\0":
            at = f"{self.kind}: xattr entry of inode {inode.number} at byte {base + pos}"
            if pos + _XATTR_ENTRY.size > len(entries):
                raise CorruptError(f"{at}: truncated by the end of the inode")
            name_len, index, value_offs, value_inum, value_size, _hash = _XATTR_ENTRY.unpack_from(
                entries, pos
            )
            name = entries[pos + _XATTR_ENTRY.size : pos + _XATTR_ENTRY.size + name_len]
            if len(name) != name_len:
                raise CorruptError(f"{at}: name truncated by the end of the inode")
            if index == XATTR_INDEX_SYSTEM and name == INLINE_DATA_XATTR:
                # Values are offsets from the first entry; system.data is never in an EA inode.
                if value_inum or value_offs + value_size > len(entries):
                    raise CorruptError(
                        f"{at}: system.data of {value_size} bytes at {value_offs} is outside the inode"
                    )
                return entries[value_offs : value_offs + value_size]
            pos += (_XATTR_ENTRY.size + name_len + 3) & ~3
        return b""

    def _inline_bytes(self, inode: Inode) -> bytes:
        return inode.i_block + self._system_data(inode)

    def read_encoded(self, node: int, extent: Extent) -> bytes:
        data = self._inline_bytes(self.inode(node))
        return data[extent.file_offset : extent.file_offset + extent.length]

    # -- the Filesystem primitives ------------------------------------------------------

    def root(self) -> int:
        return self.ROOT_INODE

    def node_stat(self, node: int) -> Stat:
        inode = self.inode(node)
        return Stat(inode.type, inode.size, inode.mode & 0o7777)

    def node_extents(self, node: int) -> Iterator[Extent]:
        inode = self.inode(node)
        if inode.flags & EXT4_ENCRYPT_FL:
            raise UnsupportedError(f"{self.kind}: inode {node} is encrypted")
        if inode.flags & EXT4_INLINE_DATA_FL:
            length = min(inode.size, len(self._inline_bytes(inode)))
            if length:
                yield Extent(0, length, ExtentKind.ENCODED)
            return
        runs = (
            self._extent_runs(inode)
            if inode.flags & EXT4_EXTENTS_FL
            else self._indirect_runs(inode)
        )
        yield from merged_extents(runs, self.block_size)

    def readlink(self, node: int) -> bytes:
        inode = self.inode(node)
        if inode.flags & EXT4_ENCRYPT_FL:
            raise UnsupportedError(f"{self.kind}: symlink inode {node} is encrypted")
        if inode.size > MAX_SYMLINK_TARGET:
            raise CorruptError(f"{self.kind}: symlink inode {node}: target of {inode.size} bytes")
        if self._is_fast_symlink(inode):
            return inode.i_block[: inode.size]
        return FileReader(self, node, inode.size, f"symlink inode {node}").read()

    def _is_fast_symlink(self, inode: Inode) -> bool:
        """Targets under 60 bytes live in i_block when the inode owns no data blocks
        (an extended attribute block is the one block it may own, as Linux counts)."""
        if inode.flags & EXT4_INLINE_DATA_FL or inode.size >= I_BLOCK_SIZE:
            return False
        xattr_sectors = self.cluster_size // 512 if inode.has_xattr_block else 0
        return inode.sectors <= xattr_sectors

    # -- directories --------------------------------------------------------------------

    def name_matcher(self, node: int, name: str, want: bytes) -> Callable[[bytes], bool] | None:
        if self.inode(node).flags & EXT4_CASEFOLD_FL:
            return casefold_matcher(name, want)
        return None

    def raw_entries(self, node: int) -> Iterator[tuple[bytes, int]]:
        """(name, inode) of every live entry but . and .., in on-disk order.

        htree directories need no special case: the dx_root hides inside the rec_len of
        "..", and each dx_node block starts with an empty entry (inode 0) that spans it.
        """
        inode = self.inode(node)
        if inode.flags & EXT4_ENCRYPT_FL:
            raise UnsupportedError(f"{self.kind}: directory inode {node} is encrypted")
        for where, buf in self._directory_chunks(inode):
            yield from self._chunk_entries(buf, where, node)

    def _directory_chunks(self, inode: Inode) -> Iterator[tuple[int, bytes]]:
        """(byte offset, bytes) of each independently parsed piece of a directory."""
        if inode.flags & EXT4_INLINE_DATA_FL:
            # i_block starts with the parent's inode number (the ".." entry); entries
            # follow, then continue in system.data.
            yield inode.offset + I_BLOCK_OFFSET + 4, inode.i_block[4:]
            extra = self._system_data(inode)
            if extra:
                yield inode.offset, extra
            return
        walk = self._new_walk(inode)
        for ext in checked_extents(self, inode.number, inode.size):
            if ext.kind is not ExtentKind.DATA:
                continue  # a hole in a directory holds no entries
            for skip in range(0, ext.length, self.block_size):
                walk.spend()
                length = min(self.block_size, ext.length - skip)
                offset = ext.offset + skip
                yield offset, self._read(offset, length, f"directory block of inode {inode.number}")

    def _rec_len(self, raw: int) -> int:
        if self.block_size < 65536:
            return raw
        # 64 KiB blocks: a whole-block entry is stored as 65535 (or 0), and bits 0-1 are
        # bits 16-17 of the length.
        if raw in (0, 65535):
            return self.block_size
        return (raw & 65532) | ((raw & 3) << 16)

    def _chunk_entries(self, buf: bytes, where: int, node: int) -> Iterator[tuple[bytes, int]]:
        pos = 0
        while pos < len(buf):
            if len(buf) - pos < MIN_REC_LEN:
                raise self._dirent_error(node, where + pos, f"only {len(buf) - pos} bytes left")
            child, raw_rec_len, name_len, file_type = _DIRENT.unpack_from(buf, pos)
            if not self.has_filetype:
                name_len |= file_type << 8
            rec_len = self._rec_len(raw_rec_len)
            if rec_len < MIN_REC_LEN or rec_len % 4 or rec_len < 8 + name_len:
                raise self._dirent_error(
                    node, where + pos, f"rec_len {rec_len} for a {name_len}-byte name"
                )
            if rec_len > len(buf) - pos:
                raise self._dirent_error(
                    node, where + pos, f"rec_len {rec_len} runs past the block"
                )
            if child:
                if child > self.inodes_count:
                    raise self._dirent_error(
                        node, where + pos, f"inode {child} is outside 1..{self.inodes_count}"
                    )
                if name_len == 0:
                    raise self._dirent_error(node, where + pos, "empty name")
                name = buf[pos + 8 : pos + 8 + name_len]
                if name != b"." and name != b"..":
                    yield name, child
            pos += rec_len

    def _dirent_error(self, node: int, offset: int, problem: str) -> CorruptError:
        return CorruptError(
            f"{self.kind}: directory entry of inode {node} at byte {offset}: {problem}"
        )
