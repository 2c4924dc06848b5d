"""UFS1 and UFS2 (the BSD fast filesystem), read-only, either byte order.

The layouts are FreeBSD's and NetBSD's sys/ufs/ffs/fs.h (struct fs), sys/ufs/ufs/dinode.h
(struct ufs1_dinode, struct ufs2_dinode) and sys/ufs/ufs/dir.h (struct direct).

A node is an inode number. Block pointers count fragments (fs_fsize bytes); a file's
logical blocks are fs_bsize bytes, the first 12 named in the inode, the rest through
single, double and triple indirect blocks; a zero pointer is a hole. Cylinder group c
starts at fragment fs_fpg * c (UFS1 adds the rotational fs_old_cgoffset stagger) and
its inodes at fs_iblkno fragments past that.

Solaris x86 UFS (found in VTOC slices) is little-endian UFS1 with the same superblock
geometry and the same first 108 bytes of the inode (mode, 64-bit size, 12 direct and 3
indirect pointers, block count). Its differences all land in fields read here only for
4.4BSD filesystems, so it reads as an "old format" UFS1:

* bytes 1320/1324 of its superblock are fs_version (0, or 1 for multi-terabyte UFS) and
  fs_logbno, where 4.4BSD has fs_maxsymlinklen (always 60 for UFS1) and fs_old_inodefmt
  (2): a UFS1 without both 60 and 2 there is read as the old format;
* its directory entries are the 4.2BSD ones (a 16-bit d_namlen, no d_type);
* its symlinks always keep their target in a data block ("fast" symlinks are an
  in-memory cache only);
* its fs_fsmnt is 512 bytes, covering the place of 4.4BSD's fs_volname, so it has no label;
* a logging filesystem may hold changes still only in its log (fs_logbno), which is not
  replayed, as neither GRUB nor Xen's libfsimage replay it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from itertools import compress

from .._typing import TYPE_CHECKING
from ..disk import ByteSource
from ..errors import CorruptError
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
from .layout import Layout, read_exact

if TYPE_CHECKING:
    from typing import Any

FS_UFS1_MAGIC = 0x011954
FS_UFS2_MAGIC = 0x19540119
#: Where a superblock may be, in the order FreeBSD looks: SBLOCK_UFS2, SBLOCK_UFS1, SBLOCK_PIGGY.
SUPERBLOCK_OFFSETS = (65536, 8192, 262144)
SBLOCK_UFS1 = 8192
#: Bytes of struct fs up to and including fs_magic.
SUPERBLOCK_SIZE = 1376

FS_44INODEFMT = 2
UFS_ROOTINO = 2
UFS_NDADDR = 12
UFS_NIADDR = 3
MINBSIZE = 4096
MAXBSIZE = 65536
MAXFRAG = 8
MIN_FSIZE = 512
DIRBLKSIZ = 512
MAXNAMLEN = 255


# struct fs, the fields a reader needs (UFS1 keeps its size in fs_old_size, UFS2 in fs_size)
_SUPERBLOCK_ROWS = (
    ("fs_iblkno", 16, "i"),
    ("fs_old_cgoffset", 24, "i"),
    ("fs_old_cgmask", 28, "i"),
    ("fs_old_size", 36, "i"),
    ("fs_ncg", 44, "I"),
    ("fs_bsize", 48, "i"),
    ("fs_fsize", 52, "i"),
    ("fs_frag", 56, "i"),
    ("fs_inopb", 120, "I"),
    ("fs_id_0", 144, "I"),  # fs_id[2]: newfs's random filesystem id
    ("fs_id_1", 148, "I"),
    ("fs_ipg", 184, "I"),
    ("fs_fpg", 188, "i"),
    ("fs_volname", 680, "32s"),
    ("fs_sblockloc", 1000, "q"),
    ("fs_size", 1080, "q"),
    ("fs_maxsymlinklen", 1320, "i"),
    ("fs_old_inodefmt", 1324, "i"),
    ("fs_magic", 1372, "I"),
)

# struct ufs1_dinode: di_mode, di_size, di_db[12] and di_ib[3] (the fast symlink area), di_blocks
_UFS1_ROWS = (
    ("di_mode", 0, "H"),
    ("di_size", 8, "Q"),
    ("di_blocks_area", 40, "60s"),
    ("di_blocks", 104, "I"),
)
# struct ufs2_dinode: di_mode, di_size, di_blocks, di_db[12] and di_ib[3]
_UFS2_ROWS = (
    ("di_mode", 0, "H"),
    ("di_size", 16, "Q"),
    ("di_blocks", 24, "Q"),
    ("di_blocks_area", 112, "120s"),
)
UFS1_INODE_SIZE = 128
UFS2_INODE_SIZE = 256


@record(frozen=True)
class _Flavour:
    """What differs between UFS1 and UFS2, in one byte order."""

    kind: str
    superblock: Layout
    inode: Layout
    inode_size: int
    #: struct format code of one block pointer (ufs1_daddr_t / ufs2_daddr_t)
    pointer: str
    order: str

    @property
    def inline_size(self) -> int:
        """Bytes of di_db and di_ib together: room for a fast symlink's target."""
        return (UFS_NDADDR + UFS_NIADDR) * self.pointer_size

    @property
    def pointer_size(self) -> int:
        return struct.calcsize(self.pointer)


def _flavour(magic: int, order: str) -> _Flavour:
    sb = Layout("Superblock", order, _SUPERBLOCK_ROWS)
    if magic == FS_UFS1_MAGIC:
        return _Flavour(
            "ufs1", sb, Layout("Ufs1Dinode", order, _UFS1_ROWS), UFS1_INODE_SIZE, "I", order
        )
    return _Flavour(
        "ufs2", sb, Layout("Ufs2Dinode", order, _UFS2_ROWS), UFS2_INODE_SIZE, "Q", order
    )


# struct direct: d_ino, d_reclen, then d_type and d_namlen (4.4BSD) or a 16-bit d_namlen (4.2BSD)
_DIRENT_HEAD = 8


@record(frozen=True)
class Inode:
    number: int
    #: Byte offset of the dinode in the volume (for messages).
    offset: int
    mode: int
    size: int
    blocks: int
    #: di_db and di_ib as raw bytes: pointers, or a fast symlink's target.
    area: bytes

    @property
    def type(self) -> NodeType:
        return mode_type(self.mode)


def _magic_order(raw: bytes) -> tuple[int, str] | None:
    """(magic, struct byte order) when the superblock's fs_magic is UFS1's or UFS2's."""
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", raw, SUPERBLOCK_SIZE - 4)
        if magic in (FS_UFS1_MAGIC, FS_UFS2_MAGIC):
            return magic, order
    return None


def open_filesystem(source: ByteSource) -> UfsFilesystem | None:
    """The UFS1/UFS2 filesystem on ``source``, or None when no superblock is where one belongs.

    As FreeBSD's ffs_sbget: a UFS1 superblock counts only at 8 KiB, a UFS2 one only where
    its own fs_sblockloc says it is (backups elsewhere name the primary's place).
    """
    for offset in SUPERBLOCK_OFFSETS:
        raw = source.pread(offset, SUPERBLOCK_SIZE)
        if len(raw) < SUPERBLOCK_SIZE:
            continue
        found = _magic_order(raw)
        if found is None:
            continue
        magic, order = found
        flavour = _flavour(magic, order)
        sb = flavour.superblock.read(raw)
        if magic == FS_UFS1_MAGIC and offset != SBLOCK_UFS1:
            continue
        if magic == FS_UFS2_MAGIC and sb.fs_sblockloc != offset:
            continue
        return UfsFilesystem(source, sb, flavour, offset)
    return None


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class UfsFilesystem(ByteNameFilesystem[int]):
    def __init__(self, source: ByteSource, sb: Any, flavour: _Flavour, sb_offset: int) -> None:
        super().__init__(source)
        self.flavour = flavour
        self.kind = flavour.kind
        self.sb_offset = sb_offset
        self.block_size, self.frag_size = self._geometry(sb)
        self.frags_per_block = self.block_size // self.frag_size
        self.frag_count = self._frag_count(sb)
        self.ncg, self.ipg, self.fpg = self._groups(sb)
        self.iblkno = sb.fs_iblkno
        self.cgoffset = sb.fs_old_cgoffset if flavour.kind == "ufs1" else 0
        self.cgmask = sb.fs_old_cgmask
        self.inodes_per_block = self._inodes_per_block(sb)
        self.pointers_per_block = self.block_size // flavour.pointer_size
        self.bsd44, self.max_symlink_len = self._format(sb)
        self.label = self._label(sb)
        if sb.fs_id_0 or sb.fs_id_1:  # GRUB's grub_ufs_uuid spelling
            self.uuid = f"{sb.fs_id_0:08x}{sb.fs_id_1:08x}"
        self._inodes: NodeCache[int, Inode] = NodeCache()

    # -- the superblock -----------------------------------------------------------------

    def _sb_error(self, problem: str) -> CorruptError:
        return CorruptError(f"{self.kind}: superblock at byte {self.sb_offset}: {problem}")

    def _geometry(self, sb: Any) -> tuple[int, int]:
        bsize, fsize = sb.fs_bsize, sb.fs_fsize
        if not _is_power_of_two(bsize) or not MINBSIZE <= bsize <= MAXBSIZE:
            raise self._sb_error(
                f"fs_bsize {bsize} is not a power of two in {MINBSIZE}..{MAXBSIZE}"
            )
        if (
            not _is_power_of_two(fsize)
            or not bsize // MAXFRAG <= fsize <= bsize
            or fsize < MIN_FSIZE
        ):
            raise self._sb_error(f"fs_fsize {fsize} does not divide fs_bsize {bsize} into 1..8")
        if sb.fs_frag != bsize // fsize:
            raise self._sb_error(f"fs_frag {sb.fs_frag} is not fs_bsize / fs_fsize")
        return bsize, fsize

    def _frag_count(self, sb: Any) -> int:
        count = sb.fs_old_size if self.kind == "ufs1" else sb.fs_size
        if count <= 0 or count > self.source.size // self.frag_size:
            raise self._sb_error(
                f"{count} fragments of {self.frag_size} bytes do not fit the "
                f"{self.source.size}-byte volume"
            )
        return count

    def _groups(self, sb: Any) -> tuple[int, int, int]:
        ncg, ipg, fpg = sb.fs_ncg, sb.fs_ipg, sb.fs_fpg
        if fpg < self.block_size // self.frag_size or fpg % (self.block_size // self.frag_size):
            raise self._sb_error(f"fs_fpg {fpg} is not a positive number of blocks")
        if ncg == 0 or (ncg - 1) * fpg >= self.frag_count:
            raise self._sb_error(
                f"fs_ncg {ncg} groups of {fpg} fragments do not fit the filesystem"
            )
        if ipg == 0 or ipg * ncg > 1 << 32:
            raise self._sb_error(f"fs_ipg {ipg} is out of range")
        return ncg, ipg, fpg

    def _inodes_per_block(self, sb: Any) -> int:
        per_block = self.block_size // self.flavour.inode_size
        if sb.fs_inopb != per_block:
            raise self._sb_error(f"fs_inopb {sb.fs_inopb} is not {per_block}")
        return per_block

    def _format(self, sb: Any) -> tuple[bool, int]:
        """(4.4BSD directories and inodes?, longest target kept in the inode).

        FreeBSD tells the 4.2BSD directory format by fs_maxsymlinklen <= 0. Every 4.4BSD
        UFS1 has exactly 60 there and 2 in fs_old_inodefmt; Solaris keeps fs_version (0
        or 1) and fs_logbno in those places, so asking for both keeps Solaris old.
        """
        inline = self.flavour.inline_size
        if self.kind == "ufs1" and (
            sb.fs_old_inodefmt != FS_44INODEFMT or sb.fs_maxsymlinklen != inline
        ):
            return False, 0
        if not 0 <= sb.fs_maxsymlinklen <= inline:
            raise self._sb_error(f"fs_maxsymlinklen {sb.fs_maxsymlinklen} is over {inline}")
        return True, sb.fs_maxsymlinklen

    def _label(self, sb: Any) -> str | None:
        if self.kind != "ufs2":
            return None
        name = sb.fs_volname.split(b"\0", 1)[0]
        return name.decode("utf-8", "replace") if name else None

    # -- inodes -------------------------------------------------------------------------

    def _group_start(self, group: int) -> int:
        """cgstart: the first fragment of a cylinder group (cgbase plus UFS1's stagger)."""
        return self.fpg * group + self.cgoffset * (group & ~self.cgmask)

    def inode(self, number: int) -> Inode:
        """Inode ``number``, read and checked (cached: a walk meets the same ones again)."""
        cached = self._inodes.get(number)
        if cached is not None:
            return cached
        if not 0 < number < self.ncg * self.ipg:
            raise CorruptError(
                f"{self.kind}: inode {number} is outside 1..{self.ncg * self.ipg - 1}"
            )
        group, index = divmod(number, self.ipg)
        block, slot = divmod(index, self.inodes_per_block)
        frag = self._group_start(group) + self.iblkno + block * self.frags_per_block
        offset = frag * self.frag_size + slot * self.flavour.inode_size
        if frag < 0 or offset + self.flavour.inode_size > self.frag_count * self.frag_size:
            raise CorruptError(
                f"{self.kind}: inode {number} of group {group} at fragment {frag} is outside the filesystem"
            )
        raw = self._read(offset, self.flavour.inode_size, f"inode {number}")
        r = self.flavour.inode.read(raw)
        inode = Inode(number, offset, r.di_mode, r.di_size, r.di_blocks, r.di_blocks_area)
        return self._inodes.keep(number, inode)

    # -- reading ------------------------------------------------------------------------

    def _read(self, offset: int, length: int, what: str) -> bytes:
        return read_exact(self.source, offset, length, f"{self.kind}: {what}")

    def _check_frags(self, frag: int, length: int, what: str) -> None:
        """Fragments [frag, frag + length bytes) must lie inside the filesystem."""
        if frag + -(-length // self.frag_size) > self.frag_count:
            raise CorruptError(
                f"{self.kind}: {what} names fragment {frag}, past the last of {self.frag_count}"
            )

    # -- block maps ---------------------------------------------------------------------

    def _new_walk(self, inode: Inode) -> BlockWalk:
        end = -(-inode.size // self.block_size)
        # A real file has no more data and map blocks than the filesystem has blocks; one
        # whose pointers loop back does. Zero pointers (holes) cost nothing.
        overrun = f"{self.kind}: inode {inode.number} names more blocks than the filesystem has"
        return BlockWalk(inode.number, end, self.frag_count // self.frags_per_block + 1, overrun)

    def _pointers(self, buf: bytes) -> tuple[int, ...]:
        count = len(buf) // self.flavour.pointer_size
        return struct.unpack(f"{self.flavour.order}{count}{self.flavour.pointer}", buf)

    def _runs(self, inode: Inode) -> Iterator[Run]:
        walk = self._new_walk(inode)
        pointers = self._pointers(inode.area)
        for logical in range(min(UFS_NDADDR, walk.end_block)):
            if pointers[logical]:
                yield self._data_run(inode, logical, pointers[logical], walk)
        first = UFS_NDADDR
        for level in range(1, UFS_NIADDR + 1):
            if first >= walk.end_block:
                return
            pointer = pointers[UFS_NDADDR + level - 1]
            if pointer:
                yield from self._indirect(inode, pointer, level, first, walk)
            first += self.pointers_per_block**level

    def _data_run(
        self, inode: Inode, logical: int, frag: int, walk: BlockWalk, count: int = 1
    ) -> Run:
        """``count`` blocks from ``logical``, stored one after the other from ``frag``."""
        walk.spend(count)
        # The last block of a small file may be only the fragments its tail needs.
        length = min(count * self.block_size, inode.size - logical * self.block_size)
        self._check_frags(
            frag, length, f"block pointer of inode {inode.number} at logical block {logical}"
        )
        return logical, count, frag * self.frag_size

    def _indirect(
        self, inode: Inode, frag: int, level: int, first: int, walk: BlockWalk
    ) -> Iterator[Run]:
        """Runs under an indirect block of ``level`` (1 single, 2 double, 3 triple)."""
        what = f"indirect block of inode {inode.number}"
        self._check_frags(frag, self.block_size, what)
        walk.spend()
        pointers = self._pointers(self._read(frag * self.frag_size, self.block_size, what))
        if level == 1:
            for index, count, start in pointer_runs(pointers, self.frags_per_block):
                logical = first + index
                if logical >= walk.end_block:
                    return
                count = min(count, walk.end_block - logical)
                yield self._data_run(inode, logical, start, walk, count)
            return
        span = self.pointers_per_block ** (level - 1)
        # Zero pointers are holes; compress skips them in C, so a block of holes costs
        # one read and no Python loop however large the file claims to be.
        for index in compress(range(len(pointers)), pointers):
            logical = first + index * span
            if logical >= walk.end_block:
                return
            yield from self._indirect(inode, pointers[index], level - 1, logical, walk)

    # -- the Filesystem primitives ------------------------------------------------------

    def root(self) -> int:
        return UFS_ROOTINO

    def node_stat(self, node: int) -> Stat:
        inode = self.inode(node)
        return Stat(inode.type, inode.size, inode.mode & 0o7777)

    def node_extents(self, node: int) -> Iterator[Extent]:
        yield from merged_extents(self._runs(self.inode(node)), self.block_size)

    def readlink(self, node: int) -> bytes:
        inode = self.inode(node)
        if inode.size > MAX_SYMLINK_TARGET:
            raise CorruptError(f"{self.kind}: symlink inode {node}: target of {inode.size} bytes")
        if self._is_fast_symlink(inode):
            return inode.area[: inode.size]
        return FileReader(self, node, inode.size, f"symlink inode {node}").read()

    def _is_fast_symlink(self, inode: Inode) -> bool:
        """Targets shorter than fs_maxsymlinklen live in di_db/di_ib; so do targets of a
        symlink that owns no blocks (as NetBSD and GRUB read them)."""
        if inode.size < self.max_symlink_len:
            return True
        return inode.blocks == 0 and inode.size <= len(inode.area)

    # -- directories --------------------------------------------------------------------

    def raw_entries(self, node: int) -> Iterator[tuple[bytes, int]]:
        """(name, inode) of every live entry but . and .., in on-disk order."""
        inode = self.inode(node)
        walk = self._new_walk(inode)
        for ext in checked_extents(self, node, inode.size):
            if ext.kind is not ExtentKind.DATA:
                continue  # a hole in a directory holds no entries
            for skip in range(0, ext.length, self.block_size):
                walk.spend()
                length = min(self.block_size, ext.length - skip)
                offset = ext.offset + skip
                buf = self._read(offset, length, f"directory block of inode {node}")
                for chunk in range(0, length, DIRBLKSIZ):
                    yield from self._chunk_entries(
                        buf[chunk : chunk + DIRBLKSIZ], offset + chunk, node
                    )

    def _chunk_entries(self, buf: bytes, where: int, node: int) -> Iterator[tuple[bytes, int]]:
        """The entries of one DIRBLKSIZ chunk: entries never cross a chunk boundary."""
        order = self.flavour.order
        pos = 0
        while pos < len(buf):
            if len(buf) - pos < _DIRENT_HEAD:
                raise self._dirent_error(node, where + pos, f"only {len(buf) - pos} bytes left")
            child, reclen = struct.unpack_from(order + "IH", buf, pos)
            if self.bsd44:
                namlen = buf[pos + 7]  # d_type is at +6
            else:
                (namlen,) = struct.unpack_from(order + "H", buf, pos + 6)
            if reclen < _DIRENT_HEAD or reclen % 4 or reclen > len(buf) - pos:
                raise self._dirent_error(
                    node, where + pos, f"d_reclen {reclen} in a chunk of {len(buf)}"
                )
            if child:
                if namlen == 0 or namlen > MAXNAMLEN or _DIRENT_HEAD + namlen > reclen:
                    raise self._dirent_error(
                        node, where + pos, f"d_namlen {namlen} in a record of {reclen}"
                    )
                if child >= self.ncg * self.ipg:
                    raise self._dirent_error(node, where + pos, f"inode {child} is out of range")
                name = buf[pos + _DIRENT_HEAD : pos + _DIRENT_HEAD + namlen]
                if name != b"." and name != b"..":
                    yield name, child
            pos += reclen

    def _dirent_error(self, node: int, offset: int, problem: str) -> CorruptError:
        return CorruptError(
            f"{self.kind}: directory entry of inode {node} at byte {offset}: {problem}"
        )
