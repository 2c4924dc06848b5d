"""F2FS, read-only (Linux Documentation/filesystems/f2fs.rst and include/linux/f2fs_fs.h
for the format; every on-disk integer is little-endian).

A node is an inode's node ID (nid). The node address table (NAT) maps a nid to the block
holding that node; the newest NAT entries may live instead in the journal of the current
hot-data summary, kept in the valid checkpoint pack, which is where mkfs.f2fs and
sload.f2fs leave them. An inode keeps its first data block addresses itself and the rest
under two direct, two indirect and one double-indirect node. Each node block's footer
names its nid, its inode and its place in that tree, and all three are checked, so a
walk reads every node at most once and a hostile tree costs at most a read of the image.

Only 4 KiB blocks are read (all mkfs.f2fs makes on 4 KiB-page machines). Inode
checksums are not verified: GRUB does not, and sload.f2fs 1.15 leaves stale ones that
only fsck.f2fs rewrites. Compressed and encrypted files are refused by name.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator

from .._typing import TYPE_CHECKING
from ..disk import ByteSource
from ..errors import CorruptError, UnsupportedError
from ..record import record
from .base import (
    MAX_SYMLINK_TARGET,
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

MAGIC = 0xF2F52010
SUPER_OFFSET = 1024
BLOCK_BITS = 12
BLOCK_SIZE = 1 << BLOCK_BITS
LOG_BLOCKS_PER_SEG = 9  # Linux accepts no other segment size
BLOCKS_PER_SEG = 1 << LOG_BLOCKS_PER_SEG

# struct f2fs_super_block (only the fields a reader needs)
_SUPERBLOCK = Layout(
    "Superblock",
    "<",
    (
        ("magic", 0, "I"),
        ("log_sectorsize", 8, "I"),
        ("log_sectors_per_block", 12, "I"),
        ("log_blocksize", 16, "I"),
        ("log_blocks_per_seg", 20, "I"),
        ("checksum_offset", 32, "I"),
        ("block_count", 36, "Q"),
        ("segment_count", 48, "I"),
        ("segment_count_ckpt", 52, "I"),
        ("segment_count_sit", 56, "I"),
        ("segment_count_nat", 60, "I"),
        ("segment_count_ssa", 64, "I"),
        ("segment_count_main", 68, "I"),
        ("segment0_blkaddr", 72, "I"),
        ("cp_blkaddr", 76, "I"),
        ("sit_blkaddr", 80, "I"),
        ("nat_blkaddr", 84, "I"),
        ("ssa_blkaddr", 88, "I"),
        ("main_blkaddr", 92, "I"),
        ("root_ino", 96, "I"),
        ("uuid", 108, "16s"),
        ("volume_name", 124, "1024s"),  # UTF-16LE, MAX_VOLUME_NAME units
        ("cp_payload", 1664, "I"),
        ("feature", 2180, "I"),
        ("devs_0_path", 2201, "64s"),  # devs[0].path: set only on multi-device filesystems
        ("crc", 3068, "I"),
    ),
)
SUPERBLOCK_SIZE = 3072
SB_CRC_OFFSET = 3068

FEATURE_ENCRYPT = 0x0001
FEATURE_EXTRA_ATTR = 0x0008
FEATURE_FLEXIBLE_INLINE_XATTR = 0x0040
FEATURE_SB_CHKSUM = 0x0800
#: Features that change nothing this reader reads, or that it checks per inode
#: (encryption, compression and casefolding mark the inodes they apply to).
KNOWN_FEATURES = {
    0x0001: "encrypt",
    0x0002: "blkzoned",
    0x0004: "atomic_write",
    0x0008: "extra_attr",
    0x0010: "project_quota",
    0x0020: "inode_checksum",
    0x0040: "flexible_inline_xattr",
    0x0080: "quota_ino",
    0x0100: "inode_crtime",
    0x0200: "lost_found",
    0x0400: "verity",
    0x0800: "sb_checksum",
    0x1000: "casefold",
    0x2000: "compression",
    0x4000: "ro",
}

# struct f2fs_checkpoint (only the fields a reader needs)
_CHECKPOINT = Layout(
    "Checkpoint",
    "<",
    (
        ("checkpoint_ver", 0, "Q"),
        ("ckpt_flags", 132, "I"),
        ("cp_pack_total_block_count", 136, "I"),
        ("cp_pack_start_sum", 140, "I"),
        ("sit_ver_bitmap_bytesize", 156, "I"),
        ("nat_ver_bitmap_bytesize", 160, "I"),
        ("checksum_offset", 164, "I"),
    ),
)
#: offsetof(struct f2fs_checkpoint, sit_nat_version_bitmap): the smallest checksum_offset.
CP_MIN_CHKSUM_OFFSET = 192
CP_CHKSUM_OFFSET = BLOCK_SIZE - 4
CP_UMOUNT_FLAG = 0x1
CP_COMPACT_SUM_FLAG = 0x4
CP_FASTBOOT_FLAG = 0x20
CP_LARGE_NAT_BITMAP_FLAG = 0x400
#: Summary blocks at the end of a pack: three data logs, and three node logs when the
#: checkpoint was written at unmount (NR_CURSEG_DATA_TYPE, NR_CURSEG_PERSIST_TYPE).
DATA_SUMMARIES, PERSISTENT_SUMMARIES = 3, 6

# struct f2fs_summary_block: 512 seven-byte entries, then struct f2fs_journal (n_nats
# and nat_journal_entry {nid, f2fs_nat_entry} records), then the footer
SUM_ENTRIES_SIZE = 7 * (BLOCK_SIZE // 8)
SUM_JOURNAL_SIZE = BLOCK_SIZE - 5 - SUM_ENTRIES_SIZE
_N_NATS = Layout("JournalHead", "<", (("n_nats", 0, "H"),))
# struct nat_journal_entry: nid, then a struct f2fs_nat_entry
_NAT_JOURNAL_ENTRY = Layout(
    "NatJournalEntry",
    "<",
    (("nid", 0, "I"), ("version", 4, "B"), ("ino", 5, "I"), ("block_addr", 9, "I")),
)
NAT_JOURNAL_ENTRIES = (SUM_JOURNAL_SIZE - _N_NATS.size) // _NAT_JOURNAL_ENTRY.size

_NAT_ENTRY = Layout("NatEntry", "<", (("version", 0, "B"), ("ino", 1, "I"), ("block_addr", 5, "I")))
NAT_ENTRY_PER_BLOCK = BLOCK_SIZE // _NAT_ENTRY.size

NULL_ADDR = 0
NEW_ADDR = 0xFFFFFFFF  # reserved, never written: reads as zeros
#: Node IDs 0 (none), 1 (the node inode) and 2 (the meta inode) name no file.
RESERVED_NIDS = 3

# struct f2fs_inode (only the fields a reader needs); i_addr starts at 360, where the
# extra attributes (i_extra_isize, i_inline_xattr_size, ...) take its first words
_INODE = Layout(
    "Inode",
    "<",
    (
        ("i_mode", 0, "H"),
        ("i_advise", 2, "B"),
        ("i_inline", 3, "B"),
        ("i_size", 16, "Q"),
        ("i_flags", 80, "I"),
        ("i_extra_isize", 360, "H"),
        ("i_inline_xattr_size", 362, "H"),
    ),
)
I_ADDR_OFFSET = 360
DEF_ADDRS_PER_INODE = 923
I_NID_OFFSET = I_ADDR_OFFSET + 4 * DEF_ADDRS_PER_INODE
_I_NID = struct.Struct("<5I")
#: i_extra_isize is at most the attributes Linux knows (F2FS_TOTAL_EXTRA_ATTR_SIZE).
MAX_EXTRA_ISIZE = 36
DEFAULT_INLINE_XATTR_ADDRS = 50
#: The word of the inline area that inline data and dentries skip (DEF_INLINE_RESERVED_SIZE).
INLINE_RESERVED_ADDRS = 1
#: Linux's MAX_INLINE_XATTR_SIZE: what leaves room for the extra attributes, the
#: reserved word and an inline dentry area holding "." and "..".
MAX_INLINE_XATTR_ADDRS = DEF_ADDRS_PER_INODE - MAX_EXTRA_ISIZE // 4 - 1 - 10

# i_inline
F2FS_INLINE_XATTR = 0x01
F2FS_INLINE_DATA = 0x02
F2FS_INLINE_DENTRY = 0x04
F2FS_EXTRA_ATTR = 0x20
# i_advise
FADVISE_ENCRYPT_BIT = 0x04
# i_flags
F2FS_COMPR_FL = 0x00000004
F2FS_CASEFOLD_FL = 0x40000000

# struct node_footer at the end of every node block: nid, ino, flag (offset << 3 |
# cold, fsync and dentry marks), cp_ver, next_blkaddr
_FOOTER = Layout("NodeFooter", "<", (("nid", 0, "I"), ("ino", 4, "I"), ("flag", 8, "I")))
FOOTER_OFFSET = BLOCK_SIZE - 24
OFFSET_BIT_SHIFT = 3
ADDRS_PER_BLOCK = NIDS_PER_BLOCK = (BLOCK_SIZE - 24) // 4
_NODE_POINTERS = struct.Struct(f"<{ADDRS_PER_BLOCK}I")
#: The inode's five node pointers: (tree levels below it, its node offset). The
#: inode is node 0; an indirect node's children follow it, a double-indirect node's
#: children each with their own children after them.
NODE_SLOTS = (
    (1, 1),
    (1, 2),
    (2, 3),
    (2, 4 + NIDS_PER_BLOCK),
    (3, 5 + 2 * NIDS_PER_BLOCK),
)
#: File blocks the five nodes reach past the inode's own addresses.
NODE_TREE_BLOCKS = sum(ADDRS_PER_BLOCK * NIDS_PER_BLOCK ** (levels - 1) for levels, _ in NODE_SLOTS)

# struct f2fs_dentry_block: bitmap, reserved, f2fs_dir_entry[214] (hash_code, ino,
# name_len, file_type), then the names in 8-byte slots
_DIR_ENTRY = Layout(
    "DirEntry",
    "<",
    (("hash_code", 0, "I"), ("ino", 4, "I"), ("name_len", 8, "H"), ("file_type", 10, "B")),
)
SLOT_LEN = 8
NAME_LEN = 255
NR_DENTRY_IN_BLOCK = BLOCK_SIZE * 8 // ((_DIR_ENTRY.size + SLOT_LEN) * 8 + 1)


@record(frozen=True)
class Inode:
    nid: int
    #: Byte offset of the inode's node block (for messages).
    offset: int
    mode: int
    size: int
    inline: int
    advise: int
    flags: int
    #: Words of i_addr the extra attributes take, then the inline xattrs.
    extra_addrs: int
    xattr_addrs: int
    block: bytes

    @property
    def type(self) -> NodeType:
        return mode_type(self.mode)

    @property
    def addrs(self) -> int:
        """Data block addresses the inode itself holds (ADDRS_PER_INODE)."""
        return DEF_ADDRS_PER_INODE - self.extra_addrs - self.xattr_addrs

    @property
    def inline_offset(self) -> int:
        """Where inline data and inline dentries start in the node block."""
        return I_ADDR_OFFSET + 4 * (self.extra_addrs + INLINE_RESERVED_ADDRS)

    @property
    def max_inline(self) -> int:
        """Bytes of inline data or dentries the inode has room for (MAX_INLINE_DATA)."""
        return 4 * (self.addrs - INLINE_RESERVED_ADDRS)


@record
class _Walk:
    """One walk over an inode's block map: whose, and where its file ends in blocks."""

    inode: Inode
    end_block: int


def open_filesystem(source: ByteSource) -> F2fsFilesystem | None:
    """The F2FS filesystem on ``source``, or None when neither superblock has its magic."""
    failure: CorruptError | UnsupportedError | None = None
    for copy in (0, 1):
        offset = copy * BLOCK_SIZE + SUPER_OFFSET
        raw = source.pread(offset, SUPERBLOCK_SIZE)
        if len(raw) < SUPERBLOCK_SIZE:
            continue
        sb = _SUPERBLOCK.read(raw)
        if sb.magic != MAGIC:
            continue
        try:
            check_superblock(sb, raw, offset)
        except (CorruptError, UnsupportedError) as error:
            failure = failure or error  # Linux mounts from the backup when the first is bad
            continue
        return F2fsFilesystem(source, sb)
    if failure is not None:
        raise failure
    return None


def f2fs_crc32(data: bytes) -> int:
    """f2fs_crc32(): the CRC-32 polynomial from F2FS's magic, no final inversion."""
    return zlib.crc32(data, MAGIC ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def check_superblock(sb: Any, raw: bytes, offset: int) -> None:
    """Sizes this reader relies on and, with sb_checksum, the superblock's CRC."""
    where = f"f2fs: superblock at byte {offset}"
    if sb.log_blocksize != BLOCK_BITS:
        raise UnsupportedError(f"{where}: log_blocksize {sb.log_blocksize} (4 KiB blocks only)")
    if not 9 <= sb.log_sectorsize <= BLOCK_BITS or (
        sb.log_sectorsize + sb.log_sectors_per_block != BLOCK_BITS
    ):
        raise CorruptError(
            f"{where}: log_sectorsize {sb.log_sectorsize} with "
            f"log_sectors_per_block {sb.log_sectors_per_block}"
        )
    if sb.log_blocks_per_seg != LOG_BLOCKS_PER_SEG:
        raise CorruptError(f"{where}: log_blocks_per_seg {sb.log_blocks_per_seg}")
    if sb.feature & FEATURE_SB_CHKSUM:
        if sb.checksum_offset != SB_CRC_OFFSET:
            raise CorruptError(f"{where}: checksum_offset {sb.checksum_offset}")
        if f2fs_crc32(raw[:SB_CRC_OFFSET]) != sb.crc:
            raise CorruptError(f"{where}: bad checksum")
    refused = unknown_features(sb.feature, KNOWN_FEATURES, {})
    if refused:
        raise UnsupportedError(f"f2fs: unsupported features: {', '.join(refused)}")
    if sb.devs_0_path.strip(b"\0"):
        raise UnsupportedError("f2fs: spans several devices")
    check_areas(sb, where)


def check_areas(sb: Any, where: str) -> None:
    """Checkpoint, SIT, NAT, SSA and main areas follow one another inside the filesystem."""
    areas = (
        ("cp", sb.cp_blkaddr, sb.segment_count_ckpt),
        ("sit", sb.sit_blkaddr, sb.segment_count_sit),
        ("nat", sb.nat_blkaddr, sb.segment_count_nat),
        ("ssa", sb.ssa_blkaddr, sb.segment_count_ssa),
        ("main", sb.main_blkaddr, sb.segment_count_main),
    )
    expected = sb.segment0_blkaddr
    for name, start, segments in areas:
        if start != expected:
            raise CorruptError(f"{where}: {name}_blkaddr {start}, not {expected}")
        expected = start + (segments << LOG_BLOCKS_PER_SEG)
    if sb.segment_count_ckpt != 2 or sb.segment_count_nat < 2:
        raise CorruptError(
            f"{where}: {sb.segment_count_ckpt} checkpoint and {sb.segment_count_nat} NAT segments"
        )
    if expected > sb.block_count:
        raise CorruptError(f"{where}: the main area ends at block {expected}, past block_count")


class F2fsFilesystem(ByteNameFilesystem[int]):
    kind = "f2fs"

    def __init__(self, source: ByteSource, sb: Any) -> None:
        super().__init__(source)
        self.features = sb.feature
        if sb.block_count > source.size // BLOCK_SIZE:
            raise CorruptError(
                f"{self.kind}: {sb.block_count} blocks do not fit the {source.size}-byte volume"
            )
        self.main_start = sb.main_blkaddr
        self.main_end = sb.main_blkaddr + (sb.segment_count_main << LOG_BLOCKS_PER_SEG)
        self.nat_start = sb.nat_blkaddr
        #: NAT blocks in one of its two copies; each names NAT_ENTRY_PER_BLOCK nodes.
        self.nat_blocks = (sb.segment_count_nat // 2) << LOG_BLOCKS_PER_SEG
        self.max_nid = self.nat_blocks * NAT_ENTRY_PER_BLOCK
        self.root_ino = sb.root_ino
        self.uuid = format_uuid(sb.uuid)
        self.label = volume_name(sb.volume_name)
        self._inodes: NodeCache[int, Inode] = NodeCache()
        self._nat_cache: NodeCache[int, bytes] = NodeCache()
        pack, cp, start = self._valid_checkpoint(sb)
        self.nat_bitmap = self._nat_bitmap(pack, cp, start)
        self.nat_journal = self._nat_journal(cp, start)
        self._check_nid(self.root_ino, "root_ino")

    # -- the checkpoint -------------------------------------------------------------------

    def _valid_checkpoint(self, sb: Any) -> tuple[bytes, Any, int]:
        """(the checkpoint block with its payload blocks, its fields, the pack's first
        block) of the newer of the two packs whose first and last blocks agree."""
        best: tuple[bytes, Any, int] | None = None
        problems = []
        for start in (sb.cp_blkaddr, sb.cp_blkaddr + BLOCKS_PER_SEG):
            try:
                pack, cp = self._checkpoint_pack(start, sb.cp_payload)
            except CorruptError as error:
                problems.append(str(error).removeprefix(f"{self.kind}: "))
                continue
            if best is None or cp.checkpoint_ver > best[1].checkpoint_ver:
                best = (pack, cp, start)
        if best is None:
            raise CorruptError(f"{self.kind}: no valid checkpoint ({'; '.join(problems)})")
        return best

    def _checkpoint_pack(self, start: int, payload: int) -> tuple[bytes, Any]:
        first = self._checkpoint_block(start)
        cp = _CHECKPOINT.read(first)
        total = cp.cp_pack_total_block_count
        if not 2 + payload < total <= BLOCKS_PER_SEG:
            raise CorruptError(
                f"checkpoint at block {start}: cp_pack_total_block_count {total} "
                f"(cp_payload {payload})"
            )
        last = _CHECKPOINT.read(self._checkpoint_block(start + total - 1))
        if last.checkpoint_ver != cp.checkpoint_ver:
            raise CorruptError(
                f"checkpoint at block {start}: version {cp.checkpoint_ver}, "
                f"but {last.checkpoint_ver} at its end"
            )
        # The bitmaps go on into the payload blocks when they do not fit the first.
        extra = [self._block(start + 1 + i, "checkpoint payload") for i in range(payload)]
        return first + b"".join(extra), cp

    def _checkpoint_block(self, number: int) -> bytes:
        block = self._block(number, "checkpoint")
        cp = _CHECKPOINT.read(block)
        at = cp.checksum_offset
        if not CP_MIN_CHKSUM_OFFSET <= at <= CP_CHKSUM_OFFSET:
            raise CorruptError(f"checkpoint at block {number}: checksum_offset {at}")
        if f2fs_crc32(block[:at]) != int.from_bytes(block[at : at + 4], "little"):
            raise CorruptError(f"checkpoint at block {number}: bad checksum")
        return block

    def _nat_bitmap(self, pack: bytes, cp: Any, start: int) -> bytes:
        """Which of the two copies of each NAT block is current (one bit each)."""
        size = cp.nat_ver_bitmap_bytesize
        if cp.ckpt_flags & CP_LARGE_NAT_BITMAP_FLAG:
            at = CP_MIN_CHKSUM_OFFSET + 4  # past the checksum kept there
        elif len(pack) > BLOCK_SIZE:
            at = CP_MIN_CHKSUM_OFFSET  # the SIT bitmap is in the payload blocks
        else:
            at = CP_MIN_CHKSUM_OFFSET + cp.sit_ver_bitmap_bytesize
        large = cp.ckpt_flags & CP_LARGE_NAT_BITMAP_FLAG or len(pack) > BLOCK_SIZE
        end = len(pack) if large else cp.checksum_offset
        if size * 8 < self.nat_blocks or at + size > end:
            raise CorruptError(
                f"{self.kind}: checkpoint at block {start}: a {size}-byte NAT bitmap at {at} "
                f"for {self.nat_blocks} NAT blocks"
            )
        return pack[at : at + size]

    def _nat_journal(self, cp: Any, start: int) -> dict[int, tuple[int, int]]:
        """nid -> (ino, block_addr) of the NAT entries kept in the hot-data summary."""
        total = cp.cp_pack_total_block_count
        if cp.ckpt_flags & CP_COMPACT_SUM_FLAG:
            number, at = start + cp.cp_pack_start_sum, 0
        else:
            base = (
                PERSISTENT_SUMMARIES
                if cp.ckpt_flags & (CP_UMOUNT_FLAG | CP_FASTBOOT_FLAG)
                else DATA_SUMMARIES
            )
            number, at = start + total - (base + 1), SUM_ENTRIES_SIZE
        if not start < number < start + total - 1:
            raise CorruptError(
                f"{self.kind}: checkpoint at block {start}: its hot-data summary at block "
                f"{number} is outside the pack"
            )
        journal = self._block(number, "summary")[at : at + SUM_JOURNAL_SIZE]
        (count,) = _N_NATS.unpack_from(journal)
        if count > NAT_JOURNAL_ENTRIES:
            raise CorruptError(
                f"{self.kind}: NAT journal at block {number}: {count} entries, "
                f"room for {NAT_JOURNAL_ENTRIES}"
            )
        entries: dict[int, tuple[int, int]] = {}
        for index in range(count):
            nid, _version, ino, addr = _NAT_JOURNAL_ENTRY.unpack_from(
                journal, _N_NATS.size + index * _NAT_JOURNAL_ENTRY.size
            )
            entries.setdefault(nid, (ino, addr))
        return entries

    # -- nodes ----------------------------------------------------------------------------

    def _check_nid(self, nid: int, what: str) -> int:
        if not RESERVED_NIDS <= nid < self.max_nid:
            raise CorruptError(
                f"{self.kind}: {what}: node {nid} is outside {RESERVED_NIDS}..{self.max_nid - 1}"
            )
        return nid

    def _node_address(self, nid: int, what: str) -> int:
        """The block holding node ``nid``: its journal entry, else its current NAT entry."""
        self._check_nid(nid, what)
        entry = self.nat_journal.get(nid)
        if entry is None:
            index, slot = divmod(nid, NAT_ENTRY_PER_BLOCK)
            _version, ino, addr = _NAT_ENTRY.unpack_from(
                self._nat_block(index), slot * _NAT_ENTRY.size
            )
        else:
            ino, addr = entry
        if not self.main_start <= addr < self.main_end:
            raise CorruptError(
                f"{self.kind}: {what}: NAT entry of node {nid} names block {addr}, "
                "outside the main area"
            )
        return addr

    def _nat_block(self, index: int) -> bytes:
        cached = self._nat_cache.get(index)
        if cached is not None:
            return cached
        return self._nat_cache.keep(index, self._block(self.nat_block_number(index), "NAT block"))

    def nat_block_number(self, index: int) -> int:
        """Where the current copy of NAT block ``index`` is: NAT segments come in pairs,
        and the checkpoint's bitmap says which of the two holds it."""
        segment, within = divmod(index, BLOCKS_PER_SEG)
        number = self.nat_start + (segment << (LOG_BLOCKS_PER_SEG + 1)) + within
        if self.nat_bitmap[index >> 3] & (0x80 >> (index & 7)):
            number += BLOCKS_PER_SEG
        return number

    def _node(self, nid: int, owner: int, position: int, what: str) -> tuple[bytes, int]:
        """(bytes, byte offset) of node ``nid`` of inode ``owner`` at node offset
        ``position`` of its tree, its footer checked."""
        number = self._node_address(nid, what)
        block = self._block(number, what)
        found_nid, found_ino, flag = _FOOTER.unpack_from(block, FOOTER_OFFSET)
        found_position = flag >> OFFSET_BIT_SHIFT
        if (found_nid, found_ino, found_position) != (nid, owner, position):
            raise CorruptError(
                f"{self.kind}: {what} at block {number}: the footer names node {found_nid} of "
                f"inode {found_ino} at offset {found_position}, not node {nid} of inode "
                f"{owner} at offset {position}"
            )
        return block, number * BLOCK_SIZE

    def inode(self, nid: int) -> Inode:
        """Inode ``nid``, read and checked (cached: a walk meets the same ones again)."""
        cached = self._inodes.get(nid)
        if cached is not None:
            return cached
        block, offset = self._node(nid, nid, 0, f"inode {nid}")
        return self._inodes.keep(nid, self._parse_inode(nid, offset, block))

    def _parse_inode(self, nid: int, offset: int, block: bytes) -> Inode:
        r = _INODE.read(block)
        at = f"{self.kind}: inode {nid} at byte {offset}"
        extra = 0
        if r.i_inline & F2FS_EXTRA_ATTR:
            if not self.features & FEATURE_EXTRA_ATTR:
                raise CorruptError(f"{at}: extra attributes without the extra_attr feature")
            if r.i_extra_isize % 4 or r.i_extra_isize > MAX_EXTRA_ISIZE:
                raise CorruptError(f"{at}: i_extra_isize {r.i_extra_isize}")
            extra = r.i_extra_isize // 4
        if self.features & FEATURE_FLEXIBLE_INLINE_XATTR:
            if not r.i_inline & F2FS_EXTRA_ATTR:
                raise CorruptError(f"{at}: flexible inline xattrs without extra attributes")
            xattr = r.i_inline_xattr_size
            if r.i_inline & F2FS_INLINE_XATTR and not 0 < xattr <= MAX_INLINE_XATTR_ADDRS:
                raise CorruptError(f"{at}: i_inline_xattr_size {xattr}")
        elif r.i_inline & (F2FS_INLINE_XATTR | F2FS_INLINE_DENTRY):
            xattr = DEFAULT_INLINE_XATTR_ADDRS
        else:
            xattr = 0
        if extra + xattr + INLINE_RESERVED_ADDRS >= DEF_ADDRS_PER_INODE:
            raise CorruptError(f"{at}: extra attributes and inline xattrs fill the inode")
        inode = Inode(
            nid=nid,
            offset=offset,
            mode=r.i_mode,
            size=r.i_size,
            inline=r.i_inline,
            advise=r.i_advise,
            flags=r.i_flags,
            extra_addrs=extra,
            xattr_addrs=xattr,
            block=block,
        )
        if r.i_inline & F2FS_INLINE_DATA:
            if r.i_size > inode.max_inline:
                raise CorruptError(
                    f"{at}: {r.i_size} bytes of inline data, room for {inode.max_inline}"
                )
        elif r.i_size > (inode.addrs + NODE_TREE_BLOCKS) * BLOCK_SIZE:
            raise CorruptError(f"{at}: i_size {r.i_size} is past what its block map can reach")
        return inode

    def _refuse_unreadable(self, inode: Inode, what: str) -> None:
        if inode.advise & FADVISE_ENCRYPT_BIT:
            raise UnsupportedError(f"{self.kind}: {what} inode {inode.nid} is encrypted")
        if inode.flags & F2FS_COMPR_FL:
            raise UnsupportedError(f"{self.kind}: {what} inode {inode.nid} is compressed")

    # -- reading blocks -------------------------------------------------------------------

    def _block(self, number: int, what: str) -> bytes:
        return read_exact(self.source, number * BLOCK_SIZE, BLOCK_SIZE, f"{self.kind}: {what}")

    # -- block maps -----------------------------------------------------------------------

    def _runs(self, inode: Inode) -> Iterator[Run]:
        """Runs of the file's data blocks in file order; holes (NULL_ADDR, NEW_ADDR and
        absent nodes) are in none."""
        walk = _Walk(inode, -(-inode.size // BLOCK_SIZE))
        start = I_ADDR_OFFSET + 4 * inode.extra_addrs
        count = min(inode.addrs, walk.end_block)
        addresses = struct.unpack_from(f"<{count}I", inode.block, start)
        yield from self._address_runs(addresses, 0, walk, inode.offset + start)
        first = inode.addrs
        nids = _I_NID.unpack_from(inode.block, I_NID_OFFSET)
        for nid, (levels, position) in zip(nids, NODE_SLOTS, strict=True):
            if first >= walk.end_block:
                return
            if nid:
                yield from self._node_runs(nid, levels, position, first, walk)
            first += ADDRS_PER_BLOCK * NIDS_PER_BLOCK ** (levels - 1)

    def _node_runs(
        self, nid: int, levels: int, position: int, first: int, walk: _Walk
    ) -> Iterator[Run]:
        """Runs under a direct (``levels`` 1) or indirect node whose first block is
        file block ``first``."""
        what = f"node of inode {walk.inode.nid} at offset {position}"
        block, offset = self._node(nid, walk.inode.nid, position, what)
        pointers = _NODE_POINTERS.unpack_from(block)
        if levels == 1:
            count = min(ADDRS_PER_BLOCK, walk.end_block - first)
            yield from self._address_runs(pointers[:count], first, walk, offset)
            return
        span = ADDRS_PER_BLOCK * NIDS_PER_BLOCK ** (levels - 2)
        # A child and all its own children come before the next child in node offsets.
        child_nodes = 1 if levels == 2 else 1 + NIDS_PER_BLOCK
        for index, child in enumerate(pointers):
            logical = first + index * span
            if logical >= walk.end_block:
                return
            if child:
                yield from self._node_runs(
                    child, levels - 1, position + 1 + index * child_nodes, logical, walk
                )

    def _address_runs(
        self, addresses: tuple[int, ...], first: int, walk: _Walk, offset: int
    ) -> Iterator[Run]:
        for index, count, start in pointer_runs(addresses):
            if start == NEW_ADDR:
                continue  # allocated but never written
            if start < self.main_start or start + count > self.main_end:
                bad = start if start < self.main_start else max(start, self.main_end)
                raise CorruptError(
                    f"{self.kind}: block address at byte {offset + 4 * index} (inode "
                    f"{walk.inode.nid}, file block {first + index}) names block {bad}, "
                    "outside the main area"
                )
            yield first + index, count, start * BLOCK_SIZE

    # -- the Filesystem primitives --------------------------------------------------------

    def root(self) -> int:
        return self.root_ino

    def node_stat(self, node: int) -> Stat:
        inode = self.inode(node)
        return Stat(inode.type, inode.size, inode.mode & 0o7777)

    def node_extents(self, node: int) -> Iterator[Extent]:
        inode = self.inode(node)
        self._refuse_unreadable(inode, "file")
        if inode.inline & F2FS_INLINE_DATA:
            if inode.size:
                yield Extent(0, inode.size, ExtentKind.ENCODED)
            return
        yield from merged_extents(self._runs(inode), BLOCK_SIZE)

    def read_encoded(self, node: int, extent: Extent) -> bytes:
        inode = self.inode(node)
        start = inode.inline_offset + extent.file_offset
        return inode.block[start : start + extent.length]

    def readlink(self, node: int) -> bytes:
        inode = self.inode(node)
        if inode.size > MAX_SYMLINK_TARGET:
            raise CorruptError(f"{self.kind}: symlink inode {node}: target of {inode.size} bytes")
        return FileReader(self, node, inode.size, f"symlink inode {node}").read()

    # -- directories ----------------------------------------------------------------------

    def name_matcher(self, node: int, name: str, want: bytes) -> Callable[[bytes], bool] | None:
        if self.inode(node).flags & F2FS_CASEFOLD_FL:
            return casefold_matcher(name, want)
        return None

    def raw_entries(self, node: int) -> Iterator[tuple[bytes, int, int]]:
        """(name, nid, byte offset of the entry) of every entry but . and .., in on-disk
        order: the inline dentries, or those of each dentry block of every hash level."""
        inode = self.inode(node)
        if inode.advise & FADVISE_ENCRYPT_BIT:
            raise UnsupportedError(f"{self.kind}: directory inode {node} is encrypted")
        if inode.inline & F2FS_INLINE_DENTRY:
            area = inode.block[inode.inline_offset : inode.inline_offset + inode.max_inline]
            yield from self._dentries(area, inode.offset + inode.inline_offset, node)
            return
        if inode.inline & F2FS_INLINE_DATA:
            raise CorruptError(f"{self.kind}: directory inode {node} holds inline data")
        self._refuse_unreadable(inode, "directory")
        for ext in checked_extents(self, node, inode.size):
            if ext.kind is not ExtentKind.DATA:
                continue  # a bucket never written holds no entries
            for skip in range(0, ext.length, BLOCK_SIZE):
                where = ext.offset + skip
                block = read_exact(
                    self.source, where, BLOCK_SIZE, f"{self.kind}: dentry block of inode {node}"
                )
                yield from self._dentries(block, where, node)

    def _dentries(self, area: bytes, where: int, node: int) -> Iterator[tuple[bytes, int, int]]:
        """The entries of a dentry block, or of an inline dentry area (the same layout
        for as many entries as fit: bitmap, reserved bytes, entries, name slots)."""
        count = len(area) * 8 // ((_DIR_ENTRY.size + SLOT_LEN) * 8 + 1)
        bitmap_size = -(-count // 8)
        names_at = len(area) - count * SLOT_LEN
        entries_at = names_at - count * _DIR_ENTRY.size
        bits = int.from_bytes(area[:bitmap_size], "little") & ((1 << count) - 1)
        while bits:
            index = (bits & -bits).bit_length() - 1
            at = entries_at + index * _DIR_ENTRY.size
            _hash, child, name_len, _file_type = _DIR_ENTRY.unpack_from(area, at)
            slots = -(-name_len // SLOT_LEN)
            if not 0 < name_len <= NAME_LEN or index + slots > count:
                raise CorruptError(
                    f"{self.kind}: dentry of inode {node} at byte {where + at}: "
                    f"a {name_len}-byte name in slot {index} of {count}"
                )
            name_at = names_at + index * SLOT_LEN
            name = area[name_at : name_at + name_len]
            if name != b"." and name != b"..":
                yield name, self._check_nid(child, f"dentry at byte {where + at}"), where + at
            bits &= -1 << (index + slots)  # the slots the name takes are not entries


def volume_name(raw: bytes) -> str | None:
    """The UTF-16LE volume name up to its first NUL, as GRUB converts it, or None."""
    units = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    end = units.index(b"\0\0") if b"\0\0" in units else len(units)
    name = b"".join(units[:end]).decode("utf-16-le", "replace")
    return name or None
