"""SquashFS 4.0, read-only (Linux Documentation/filesystems/squashfs.rst, squashfs_fs.h).

A node is an inode reference: (start of its metadata block in the inode table << 16) |
(offset in that block's decoded bytes). Metadata (inodes, directories, fragment entries)
lives in blocks of at most 8 KiB decoded, chained one after another; every chain is read
only up to the end of its own table, so a hostile chain stops there. Data blocks are
decoded one at a time and never past the block size. A data block stored uncompressed
becomes a DATA extent (extraction can copy it in the kernel); a compressed one becomes
an ENCODED extent decoded in ``read_encoded``.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from collections.abc import Iterator
from itertools import compress

from .._typing import TYPE_CHECKING
from ..compress import (
    Decoder,
    Undecodable,
    inflate_whole,
    lz4_decoder,
    lzma_decoder,
    lzo1x_decompress,
    zstd_decoder,
)
from ..disk import ByteSource
from ..errors import CorruptError, UnsupportedError
from ..record import record
from .base import (
    MAX_SYMLINK_TARGET,
    ByteNameFilesystem,
    Extent,
    ExtentKind,
    NodeCache,
    NodeType,
    Stat,
)
from .blockmap import joined_extents
from .layout import read_exact

if TYPE_CHECKING:
    from typing import Any

MAGIC = b"hsqs"
SUPERBLOCK_SIZE = 96
SUPPORTED_MAJOR = 4
SUPPORTED_MINOR = 0

# struct squashfs_super_block
_SUPERBLOCK = struct.Struct("<4sIIIIHHHHHHQQQQQQQQ")
Superblock = namedtuple(
    "Superblock",
    "s_magic inodes mkfs_time block_size fragments compression block_log flags no_ids "
    "s_major s_minor root_inode bytes_used id_table_start xattr_id_table_start "
    "inode_table_start directory_table_start fragment_table_start lookup_table_start",
)

FLAG_COMP_OPT = 0x0400  # compressor options follow the superblock
MIN_BLOCK_LOG = 12  # 4 KiB
MAX_BLOCK_LOG = 20  # 1 MiB
#: A table start of all ones means "no such table".
NO_TABLE = 0xFFFF_FFFF_FFFF_FFFF

#: Metadata blocks: a little-endian u16 header (on-disk size, bit 15 = stored
#: uncompressed), then at most 8 KiB that decode to at most 8 KiB.
METADATA_SIZE = 8192
_METADATA_HEADER = struct.Struct("<H")
METADATA_UNCOMPRESSED = 0x8000

#: Data block and fragment sizes: bit 24 = stored uncompressed; size 0 = a sparse block.
BLOCK_UNCOMPRESSED = 1 << 24
NO_FRAGMENT = 0xFFFF_FFFF

# struct squashfs_base_inode: inode_type, mode, uid, guid, mtime, inode_number
_BASE_INODE = struct.Struct("<HHHHII")
# struct squashfs_dir_inode, after the base: start_block, nlink, file_size, offset, parent_inode
_DIR_INODE = struct.Struct("<IIHHI")
# struct squashfs_ldir_inode, after the base: nlink, file_size, start_block, parent_inode,
# i_count, offset, xattr (the i_count directory index entries that follow are not needed)
_LDIR_INODE = struct.Struct("<IIIIHHI")
# struct squashfs_reg_inode, after the base: start_block, fragment, offset, file_size
_REG_INODE = struct.Struct("<IIII")
# struct squashfs_lreg_inode, after the base: start_block, file_size, sparse, nlink,
# fragment, offset, xattr
_LREG_INODE = struct.Struct("<QQQIIII")
# struct squashfs_symlink_inode, after the base: nlink, symlink_size (the target follows)
_SYMLINK_INODE = struct.Struct("<II")

DIR_TYPE, FILE_TYPE, SYMLINK_TYPE = 1, 2, 3
LDIR_TYPE, LREG_TYPE, LSYMLINK_TYPE = 8, 9, 10
#: Block and character devices, fifos and sockets, basic (4-7) and extended (11-14).
OTHER_TYPES = frozenset({4, 5, 6, 7, 11, 12, 13, 14})

# struct squashfs_dir_header: count (entries - 1), start_block, inode_number
_DIR_HEADER = struct.Struct("<III")
# struct squashfs_dir_entry: offset, inode_number (a delta), type, size (name length - 1)
_DIR_ENTRY = struct.Struct("<HhHH")
DIR_COUNT_MAX = 256  # entries under one header
NAME_MAX = 256
#: A directory's file_size counts 3 bytes for "." and ".." that are not stored.
DIR_SIZE_BIAS = 3

# struct squashfs_fragment_entry: start_block, size, unused
_FRAGMENT_ENTRY = struct.Struct("<QII")
FRAGMENTS_PER_BLOCK = METADATA_SIZE // _FRAGMENT_ENTRY.size
_TABLE_POINTER = struct.Struct("<Q")

# struct lz4_comp_opts: version, flags (version 1 is the only one: LZ4_LEGACY)
_LZ4_OPTIONS = struct.Struct("<II")
LZ4_LEGACY = 1

#: Words of a block list decoded at once.
BLOCK_LIST_CHUNK = 2048
#: Decoded metadata blocks, inodes and data blocks kept after a read.
METADATA_CACHE = 256
INODE_CACHE = 1024
DATA_CACHE = 4


# -- decompressors -------------------------------------------------------------------------


def decoder_for(compression: int) -> tuple[str, Decoder]:
    """(name, decoder) for a superblock compression id; imports only what that id needs."""
    if compression == 1:
        return "gzip", inflate_whole
    if compression == 2:
        return "lzma", lzma_decoder("lzma")
    if compression == 3:
        return "lzo", lzo1x_decompress
    if compression == 4:
        return "xz", lzma_decoder("xz")
    if compression == 5:
        return "lz4", lz4_decoder("squashfs")
    if compression == 6:
        return "zstd", zstd_decoder("squashfs")
    raise UnsupportedError(f"squashfs: unknown compression id {compression}")


# -- on-disk records ----------------------------------------------------------------------


@record(frozen=True)
class Inode:
    ref: int
    #: The on-disk inode_type (1-14): basic and extended kinds differ only here.
    inode_type: int
    type: NodeType
    mode: int
    size: int
    #: Directories: where the listing starts (block from the directory table, offset).
    dir_block: int = 0
    dir_offset: int = 0
    #: Files: the first data block's byte offset, the fragment holding the tail (or
    #: NO_FRAGMENT) and the tail's offset in it, and where block_sizes[] starts.
    start_block: int = 0
    fragment: int = NO_FRAGMENT
    fragment_offset: int = 0
    block_list: tuple[int, int] = (0, 0)
    #: Symlinks: the target.
    target: bytes = b""


@record(frozen=True)
class Encoded:
    """Where an ENCODED extent's bytes are: a compressed block and the offset in its output."""

    position: int
    disk_size: int
    skip: int


def open_filesystem(source: ByteSource) -> SquashFilesystem | None:
    """The SquashFS on ``source``, or None when there is no SquashFS superblock."""
    raw = source.pread(0, SUPERBLOCK_SIZE)
    if len(raw) < SUPERBLOCK_SIZE or raw[:4] != MAGIC:
        return None
    return SquashFilesystem(source, Superblock._make(_SUPERBLOCK.unpack(raw)))


class MetadataCursor:
    """A read position in a chain of metadata blocks that must end before ``end``."""

    def __init__(self, fs: SquashFilesystem, position: int, offset: int, end: int) -> None:
        self.fs = fs
        self.position = position
        self.offset = offset
        self.end = end

    def read(self, length: int) -> bytes:
        parts = []
        while length > 0:
            data, following = self.fs.metadata_block(self.position, self.end)
            if self.offset > len(data):
                raise CorruptError(
                    f"squashfs: offset {self.offset} is past the {len(data)} decoded bytes "
                    f"of the metadata block at byte {self.position}"
                )
            if self.offset == len(data):
                self.position, self.offset = following, 0
                continue
            piece = data[self.offset : self.offset + length]
            parts.append(piece)
            self.offset += len(piece)
            length -= len(piece)
        return b"".join(parts)

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        return layout.unpack(self.read(layout.size))


class SquashFilesystem(ByteNameFilesystem[int]):
    kind = "squashfs"

    def __init__(self, source: ByteSource, sb: Any) -> None:
        super().__init__(source)
        where = "squashfs: superblock at byte 0"
        if sb.s_major != SUPPORTED_MAJOR or sb.s_minor > SUPPORTED_MINOR:
            raise UnsupportedError(
                f"squashfs {sb.s_major}.{sb.s_minor} is not supported (only squashfs 4.0)"
            )
        self.block_size = self._block_size(sb, where)
        self.compression, self._decode = decoder_for(sb.compression)
        self.bytes_used = sb.bytes_used
        if not SUPERBLOCK_SIZE <= self.bytes_used <= source.size:
            raise CorruptError(
                f"{where}: bytes_used {self.bytes_used} does not fit the {source.size}-byte volume"
            )
        self.inode_table = sb.inode_table_start
        self.directory_table = sb.directory_table_start
        if not SUPERBLOCK_SIZE <= self.inode_table < self.directory_table <= self.bytes_used:
            raise CorruptError(
                f"{where}: inode table at {self.inode_table} and directory table at "
                f"{self.directory_table} are out of order or past bytes_used {self.bytes_used}"
            )
        self.directory_end = self._directory_table_end(sb)
        self.fragment_count = sb.fragments
        self.fragment_table = sb.fragment_table_start
        self._check_fragment_table(where)
        self._metadata: NodeCache[int, tuple[bytes, int]] = NodeCache(METADATA_CACHE)
        self._inodes: NodeCache[int, Inode] = NodeCache(INODE_CACHE)
        self._data: NodeCache[tuple[int, int], bytes] = NodeCache(DATA_CACHE)
        if sb.flags & FLAG_COMP_OPT:
            self._check_compressor_options()
        self.root_ref = sb.root_inode
        self._check_inode_ref(self.root_ref, "root inode")

    # -- the superblock -----------------------------------------------------------------

    @staticmethod
    def _block_size(sb: Any, where: str) -> int:
        size = sb.block_size
        if size & (size - 1) or not 1 << MIN_BLOCK_LOG <= size <= 1 << MAX_BLOCK_LOG:
            raise CorruptError(f"{where}: block_size {size} is not a power of two in 4K..1M")
        if 1 << sb.block_log != size:
            raise CorruptError(f"{where}: block_log {sb.block_log} disagrees with block_size")
        return size

    def _directory_table_end(self, sb: Any) -> int:
        """The directory table runs until the next table that starts after it."""
        starts = (
            sb.fragment_table_start,
            sb.lookup_table_start,
            sb.id_table_start,
            sb.xattr_id_table_start,
        )
        later = [s for s in starts if self.directory_table < s < self.bytes_used]
        return min(later, default=self.bytes_used)

    def _check_fragment_table(self, where: str) -> None:
        if self.fragment_count == 0:
            return
        pointers = -(-self.fragment_count // FRAGMENTS_PER_BLOCK)
        if self.fragment_table + pointers * _TABLE_POINTER.size > self.bytes_used:
            raise CorruptError(
                f"{where}: {self.fragment_count} fragments need a fragment index at "
                f"{self.fragment_table} that runs past bytes_used {self.bytes_used}"
            )

    def _check_compressor_options(self) -> None:
        options, _following = self.metadata_block(SUPERBLOCK_SIZE, self.inode_table)
        if self.compression == "lz4":
            if len(options) < _LZ4_OPTIONS.size:
                raise CorruptError(f"squashfs: lz4 options at byte {SUPERBLOCK_SIZE} are short")
            version, _flags = _LZ4_OPTIONS.unpack_from(options)
            if version != LZ4_LEGACY:
                raise UnsupportedError(f"squashfs: lz4 format version {version}")

    # -- reading and decoding blocks ----------------------------------------------------

    def _read(self, offset: int, length: int, what: str) -> bytes:
        if offset + length > self.bytes_used:
            raise CorruptError(
                f"squashfs: {what} at byte {offset} runs past bytes_used {self.bytes_used}"
            )
        return read_exact(self.source, offset, length, f"squashfs: {what}")

    def decode(self, raw: bytes, limit: int, what: str) -> bytes:
        try:
            return self._decode(raw, limit)
        except Undecodable as e:
            raise CorruptError(f"squashfs: {what}: {e}") from None

    def metadata_block(self, position: int, end: int) -> tuple[bytes, int]:
        """The decoded bytes of the metadata block at ``position`` and where the next starts.

        The block must lie wholly before ``end``, the end of the table it belongs to.
        """
        cached = self._metadata.get(position)
        if cached is None:
            what = f"metadata block at byte {position}"
            if position + 2 > end:
                raise CorruptError(f"squashfs: {what} is past the end of its table at {end}")
            (header,) = _METADATA_HEADER.unpack(self._read(position, 2, "metadata block"))
            size = header & ~METADATA_UNCOMPRESSED
            if not 0 < size <= METADATA_SIZE:
                raise CorruptError(f"squashfs: {what}: size {size} is not in 1..{METADATA_SIZE}")
            raw = self._read(position + 2, size, "metadata block")
            data = raw if header & METADATA_UNCOMPRESSED else self.decode(raw, METADATA_SIZE, what)
            if not data:
                raise CorruptError(f"squashfs: {what} decodes to nothing")
            cached = self._metadata.keep(position, (data, position + 2 + size))
        if cached[1] > end:
            raise CorruptError(
                f"squashfs: metadata block at byte {position} runs past the end of its table at {end}"
            )
        return cached

    def data_block(self, position: int, disk_size: int) -> bytes:
        """A compressed data or fragment block, decoded (at most block_size bytes)."""
        key = (position, disk_size)
        data = self._data.get(key)
        if data is None:
            what = f"data block at byte {position}"
            raw = self._read(position, disk_size, "data block")
            data = self._data.keep(key, self.decode(raw, self.block_size, what))
        return data

    def _block_disk_size(self, word: int, what: str) -> int:
        size = word & ~BLOCK_UNCOMPRESSED
        if size > self.block_size:
            raise CorruptError(f"squashfs: {what}: {size} bytes on disk, over the block size")
        return size

    # -- inodes -------------------------------------------------------------------------

    def _check_inode_ref(self, ref: int, what: str) -> tuple[int, int]:
        block, offset = ref >> 16, ref & 0xFFFF
        position = self.inode_table + block
        if position >= self.directory_table or offset >= METADATA_SIZE:
            raise CorruptError(f"squashfs: {what} reference 0x{ref:x} is outside the inode table")
        return position, offset

    def inode(self, ref: int) -> Inode:
        inode = self._inodes.get(ref)
        if inode is None:
            inode = self._inodes.keep(ref, self._read_inode(ref))
        return inode

    def _read_inode(self, ref: int) -> Inode:
        position, offset = self._check_inode_ref(ref, "inode")
        cursor = MetadataCursor(self, position, offset, self.directory_table)
        inode_type, mode, _uid, _gid, _mtime, _number = cursor.unpack(_BASE_INODE)
        mode &= 0o7777
        if inode_type in (DIR_TYPE, LDIR_TYPE):
            if inode_type == DIR_TYPE:
                start, _nlink, size, dir_offset, _parent = cursor.unpack(_DIR_INODE)
            else:
                _nlink, size, start, _parent, _n, dir_offset, _xattr = cursor.unpack(_LDIR_INODE)
            return Inode(
                ref, inode_type, NodeType.DIR, mode, size, dir_block=start, dir_offset=dir_offset
            )
        if inode_type in (FILE_TYPE, LREG_TYPE):
            if inode_type == FILE_TYPE:
                start, fragment, tail_offset, size = cursor.unpack(_REG_INODE)
            else:
                start, size, _sparse, _nlink, fragment, tail_offset, _x = cursor.unpack(_LREG_INODE)
            return Inode(
                ref,
                inode_type,
                NodeType.FILE,
                mode,
                size,
                start_block=start,
                fragment=fragment,
                fragment_offset=tail_offset,
                block_list=(cursor.position, cursor.offset),
            )
        if inode_type in (SYMLINK_TYPE, LSYMLINK_TYPE):
            _nlink, length = cursor.unpack(_SYMLINK_INODE)
            if length > MAX_SYMLINK_TARGET:
                raise CorruptError(f"squashfs: symlink inode 0x{ref:x}: target of {length} bytes")
            target = cursor.read(length)
            return Inode(ref, inode_type, NodeType.SYMLINK, mode, length, target=target)
        if inode_type in OTHER_TYPES:
            return Inode(ref, inode_type, NodeType.OTHER, mode, 0)
        raise CorruptError(f"squashfs: inode 0x{ref:x}: unknown inode type {inode_type}")

    # -- file data ----------------------------------------------------------------------

    def _block_words(self, inode: Inode, count: int) -> Iterator[tuple[int, int]]:
        """(block index, size word) of every block that is not sparse, read lazily.

        Sparse blocks (word 0) are skipped in C, so a huge file of holes costs one pass
        over its block list and no Python loop per block.
        """
        cursor = MetadataCursor(self, *inode.block_list, self.directory_table)
        for first in range(0, count, BLOCK_LIST_CHUNK):
            n = min(BLOCK_LIST_CHUNK, count - first)
            words = struct.unpack(f"<{n}I", cursor.read(4 * n))
            for index in compress(range(n), words):
                yield first + index, words[index]

    def _block_extents(self, inode: Inode) -> Iterator[Extent]:
        """An extent per data block, then one for the tail in a fragment block, in file order."""
        bs = self.block_size
        has_fragment = inode.fragment != NO_FRAGMENT
        count = inode.size // bs if has_fragment else -(-inode.size // bs)
        position = inode.start_block
        for index, word in self._block_words(inode, count):
            what = f"block {index} of inode 0x{inode.ref:x}"
            disk_size = self._block_disk_size(word, what)
            if disk_size == 0:
                continue  # sparse
            length = min(bs, inode.size - index * bs)
            if position + disk_size > self.bytes_used:
                raise CorruptError(
                    f"squashfs: {what} at byte {position} runs past bytes_used {self.bytes_used}"
                )
            if word & BLOCK_UNCOMPRESSED:
                if disk_size < length:
                    raise CorruptError(
                        f"squashfs: {what}: {disk_size} bytes stored for {length} bytes of file"
                    )
                yield Extent(index * bs, length, ExtentKind.DATA, position)
            else:
                token = Encoded(position, disk_size, 0)
                yield Extent(index * bs, length, ExtentKind.ENCODED, token=token)
            position += disk_size
        tail = inode.size - count * bs
        if has_fragment and tail > 0:
            yield self._tail_extent(inode, count * bs, tail)

    def _tail_extent(self, inode: Inode, file_offset: int, tail: int) -> Extent:
        position, word = self._fragment(inode.fragment)
        what = f"fragment {inode.fragment} of inode 0x{inode.ref:x}"
        disk_size = self._block_disk_size(word, what)
        if disk_size == 0 or position + disk_size > self.bytes_used:
            raise CorruptError(
                f"squashfs: {what}: block of {disk_size} bytes at byte {position} is empty "
                f"or past bytes_used"
            )
        skip = inode.fragment_offset
        if skip + tail > (disk_size if word & BLOCK_UNCOMPRESSED else self.block_size):
            raise CorruptError(
                f"squashfs: {what}: {tail} bytes at offset {skip} do not fit the fragment block"
            )
        if word & BLOCK_UNCOMPRESSED:
            return Extent(file_offset, tail, ExtentKind.DATA, position + skip)
        return Extent(
            file_offset, tail, ExtentKind.ENCODED, token=Encoded(position, disk_size, skip)
        )

    def _fragment(self, index: int) -> tuple[int, int]:
        """(byte offset, size word) of fragment block ``index``, via the fragment index."""
        if index >= self.fragment_count:
            raise CorruptError(
                f"squashfs: fragment {index} is past the {self.fragment_count} fragments"
            )
        slot, within = divmod(index, FRAGMENTS_PER_BLOCK)
        pointer_at = self.fragment_table + slot * _TABLE_POINTER.size
        (block,) = _TABLE_POINTER.unpack(self._read(pointer_at, 8, "fragment index entry"))
        cursor = MetadataCursor(self, block, within * _FRAGMENT_ENTRY.size, self.bytes_used)
        start, word, _unused = cursor.unpack(_FRAGMENT_ENTRY)
        return start, word

    def read_encoded(self, node: int, extent: Extent) -> bytes:
        token = extent.token
        assert isinstance(token, Encoded)
        data = self.data_block(token.position, token.disk_size)
        piece = data[token.skip : token.skip + extent.length]
        if len(piece) != extent.length:
            raise CorruptError(
                f"squashfs: block at byte {token.position} of inode 0x{node:x} decodes to "
                f"{len(data)} bytes, short of {token.skip + extent.length}"
            )
        return piece

    # -- directories --------------------------------------------------------------------

    def _entries(self, inode: Inode) -> Iterator[tuple[bytes, int]]:
        remaining = inode.size - DIR_SIZE_BIAS
        position = self.directory_table + inode.dir_block
        cursor = MetadataCursor(self, position, inode.dir_offset, self.directory_end)
        what = f"squashfs: directory of inode 0x{inode.ref:x}"
        while remaining > 0:
            if remaining < _DIR_HEADER.size:
                raise CorruptError(f"{what}: {remaining} bytes left, too few for a header")
            count, start_block, _number = cursor.unpack(_DIR_HEADER)
            remaining -= _DIR_HEADER.size
            if count >= DIR_COUNT_MAX:
                raise CorruptError(f"{what}: a header of {count + 1} entries, over {DIR_COUNT_MAX}")
            for _ in range(count + 1):
                if remaining < _DIR_ENTRY.size:
                    raise CorruptError(f"{what}: {remaining} bytes left, too few for an entry")
                offset, _delta, _type, size = cursor.unpack(_DIR_ENTRY)
                name_len = size + 1
                if name_len > NAME_MAX or _DIR_ENTRY.size + name_len > remaining:
                    raise CorruptError(f"{what}: a {name_len}-byte name does not fit")
                name = cursor.read(name_len)
                remaining -= _DIR_ENTRY.size + name_len
                if name not in (b".", b".."):
                    yield name, (start_block << 16) | offset

    # -- the Filesystem primitives ------------------------------------------------------

    def root(self) -> int:
        return self.root_ref

    def node_stat(self, node: int) -> Stat:
        inode = self.inode(node)
        return Stat(inode.type, inode.size, inode.mode)

    def raw_entries(self, node: int) -> Iterator[tuple[bytes, int]]:
        inode = self.inode(node)
        # The entries' own generator, not one around it: a lookup in a big /boot reads
        # every entry through here.
        return self._entries(inode) if inode.type is NodeType.DIR else iter(())

    def directory_name(self, node: int) -> str:
        return f"squashfs: directory of inode 0x{node:x}"

    def readlink(self, node: int) -> bytes:
        return self.inode(node).target

    def node_extents(self, node: int) -> Iterator[Extent]:
        inode = self.inode(node)
        if inode.type is NodeType.FILE:
            # Stored blocks that follow each other on disk are one copy.
            yield from joined_extents(self._block_extents(inode))
