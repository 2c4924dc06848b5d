"""ReiserFS 3.5 and 3.6, read-only (Linux fs/reiserfs/reiserfs.h and the namesys notes).

Everything lives in one balanced tree (the S+tree) sorted by key: (k_dir_id, k_objectid,
offset, type). An object is a (dir_id, objectid) pair: its stat data item sits at offset
0; a file's bytes follow in direct items (the bytes themselves, "tails") and indirect
items (arrays of block numbers, 0 for a hole) whose key offsets count from 1; a
directory's entries follow in directory items whose key offsets are entry hashes.

A node is an object's (dir_id, objectid). Items are found by a key search from the root
that then walks on to the right, so one search serves a whole object; a directory is
scanned item by item rather than looked up by hash. The journal is not replayed (as
GRUB does not): an image with unflushed transactions reads as its tree on disk.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections import namedtuple
from collections.abc import Iterator

from .._typing import TYPE_CHECKING
from ..disk import ByteSource
from ..errors import CorruptError, LimitError
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
    mode_type,
)
from .blockmap import pointer_runs
from .layout import format_uuid

if TYPE_CHECKING:
    from typing import Any

#: Where the superblock is: 64 KiB, or 8 KiB in the first 3.5 filesystems.
REISERFS_DISK_OFFSET = 65536
REISERFS_OLD_DISK_OFFSET = 8192
#: 3.5, 3.6, and either with a "non-standard" journal (s_version then tells which).
MAGICS = (b"ReIsErFs", b"ReIsEr2Fs", b"ReIsEr3Fs")
OLD_MAGIC = b"ReIsErFs"
REISERFS_VERSION_2 = 2

# struct reiserfs_super_block: the v1 part, then (3.6) s_uuid and s_label
_SUPERBLOCK = struct.Struct("<III32xHHHH10sHIHHHH4x4x16s16s")
SuperBlock = namedtuple(
    "SuperBlock",
    "s_block_count s_free_blocks s_root_block s_blocksize s_oid_maxsize s_oid_cursize "
    "s_umount_state s_magic s_fs_state s_hash_function_code s_tree_height s_bmap_nr "
    "s_version s_reserved_for_journal s_uuid s_label",
)
MIN_BLOCK_SIZE = 512
#: Item locations and lengths are 16-bit, so no block can be larger.
MAX_BLOCK_SIZE = 32768
#: The kernel's MAX_HEIGHT: the tallest tree it builds or reads (leaves are level 1).
MAX_HEIGHT = 5

# struct block_head: blk_level, blk_nr_item, blk_free_space, blk_reserved, blk_right_delim_key
_BLOCK_HEAD = struct.Struct("<HHHH16x")
DISK_LEAF_NODE_LEVEL = 1
KEY_SIZE = 16
# struct disk_child: dc_block_number, dc_size, dc_reserved
_DISK_CHILD = struct.Struct("<IHH")
# struct item_head: ih_key, ih_free_space / ih_entry_count, ih_item_len, ih_item_location,
# ih_version (the key format in bits 0-11, fsck flags above)
_ITEM_HEAD = struct.Struct("<16sHHHH")
KEY_FORMAT_3_5 = 0
KEY_FORMAT_3_6 = 1
# struct reiserfs_de_head: deh_offset, deh_dir_id, deh_objectid, deh_location, deh_state
_DE_HEAD = struct.Struct("<IIIHH")
DEH_VISIBLE = 1 << 2
# struct stat_data_v1 (32 bytes): sd_mode, sd_nlink, sd_uid, sd_gid, sd_size, ...
_STAT_DATA_V1 = struct.Struct("<HHHHI12xII")
# struct stat_data (44 bytes): sd_mode, sd_attrs, sd_nlink, sd_size, ...
_STAT_DATA_V2 = struct.Struct("<HHIQ28x")

# Item types as the kernel's cpu keys number them; v1 keys spell them as a uniqueness.
TYPE_STAT_DATA = 0
TYPE_INDIRECT = 1
TYPE_DIRECT = 2
TYPE_DIRENTRY = 3
TYPE_ANY = 15
_V1_TYPES = {
    0: TYPE_STAT_DATA,
    0xFFFFFFFE: TYPE_INDIRECT,
    0xFFFFFFFF: TYPE_DIRECT,
    500: TYPE_DIRENTRY,
}
_KEY_V1 = struct.Struct("<IIII")  # k_dir_id, k_objectid, k_offset, k_uniqueness
_KEY_V2 = struct.Struct("<IIQ")  # k_dir_id, k_objectid, offset (60 bits) | type << 60

ROOT_OBJECT = (1, 2)  # REISERFS_ROOT_PARENT_OBJECTID, REISERFS_ROOT_OBJECTID


#: Parsed tree nodes (and stat data) kept after a read: searches start at the root every
#: time. A node is a whole block, so fewer than other formats' inodes.
NODES_KEPT = 256

#: (k_dir_id, k_objectid, offset, type): comparing these orders the tree.
Key = tuple[int, int, int, int]
#: (dir_id, objectid) of an object.
Object = tuple[int, int]


def key_v1(raw: bytes, offset: int = 0) -> Key:
    dir_id, objectid, k_offset, uniqueness = _KEY_V1.unpack_from(raw, offset)
    return dir_id, objectid, k_offset, _V1_TYPES.get(uniqueness, TYPE_ANY)


def key_v2(raw: bytes, offset: int = 0) -> Key:
    dir_id, objectid, packed = _KEY_V2.unpack_from(raw, offset)
    return dir_id, objectid, packed & ((1 << 60) - 1), packed >> 60


def key_any(raw: bytes, offset: int = 0) -> Key:
    """A key in an internal node, whose format is not written down: the kernel's guess
    (le_key_version) is v2 exactly when the top four bits name an indirect, direct or
    directory item; every v1 uniqueness leaves other values there."""
    if (raw[offset + 15] >> 4) in (TYPE_INDIRECT, TYPE_DIRECT, TYPE_DIRENTRY):
        return key_v2(raw, offset)
    return key_v1(raw, offset)


@record(frozen=True)
class Item:
    key: Key
    #: ih_entry_count for directory items, ih_free_space otherwise
    count: int
    #: Byte offset of the item's body in the volume, and its length.
    offset: int
    length: int
    version: int


@record(frozen=True)
class Internal:
    block: int
    level: int
    keys: list[Key]
    children: list[int]


@record(frozen=True)
class Leaf:
    block: int
    items: list[Item]
    data: bytes


@record
class _Search:
    """One search: what it started from, nodes it may still read, the last key it gave."""

    start: Key
    reads_left: int
    last: Key | None = None


@record(frozen=True)
class Inode:
    """What the stat data item says."""

    mode: int
    size: int

    @property
    def type(self) -> NodeType:
        return mode_type(self.mode)


def open_filesystem(source: ByteSource) -> ReiserFilesystem | None:
    """The ReiserFS on ``source``, or None when neither superblock place holds a magic."""
    for offset in (REISERFS_DISK_OFFSET, REISERFS_OLD_DISK_OFFSET):
        raw = source.pread(offset, _SUPERBLOCK.size)
        if len(raw) < _SUPERBLOCK.size:
            continue
        sb = SuperBlock._make(_SUPERBLOCK.unpack(raw))
        magic = sb.s_magic.rstrip(b"\0")
        if magic in MAGICS and (offset == REISERFS_DISK_OFFSET or magic == OLD_MAGIC):
            return ReiserFilesystem(source, sb, offset)
    return None


class ReiserFilesystem(ByteNameFilesystem[Object]):
    kind = "reiserfs"

    def __init__(self, source: ByteSource, sb: Any, sb_offset: int) -> None:
        super().__init__(source)
        self.sb_offset = sb_offset
        self.format = self._format(sb)
        self.block_size = self._block_size(sb)
        self.block_count = self._block_count(sb)
        self.root_level = self._root_level(sb)
        self.root_block = sb.s_root_block
        if not 0 < self.root_block < self.block_count:
            raise self._sb_error(f"s_root_block {self.root_block} is outside the filesystem")
        if sb_offset == REISERFS_DISK_OFFSET and any(sb.s_uuid):
            self.uuid = format_uuid(sb.s_uuid)
        label = sb.s_label.split(b"\0", 1)[0] if sb_offset == REISERFS_DISK_OFFSET else b""
        self.label = label.decode("utf-8", "replace") if label else None
        self._nodes: NodeCache[int, Internal | Leaf] = NodeCache(NODES_KEPT)
        self._inodes: NodeCache[Object, Inode] = NodeCache(NODES_KEPT)

    # -- the superblock -----------------------------------------------------------------

    def _sb_error(self, problem: str) -> CorruptError:
        return CorruptError(f"{self.kind}: superblock at byte {self.sb_offset}: {problem}")

    @staticmethod
    def _format(sb: Any) -> str:
        magic = sb.s_magic.rstrip(b"\0")
        if magic == b"ReIsEr2Fs" or (magic == b"ReIsEr3Fs" and sb.s_version == REISERFS_VERSION_2):
            return "3.6"
        return "3.5"

    def _block_size(self, sb: Any) -> int:
        size = sb.s_blocksize
        if size & (size - 1) or not MIN_BLOCK_SIZE <= size <= MAX_BLOCK_SIZE:
            raise self._sb_error(
                f"s_blocksize {size} is not a power of two in {MIN_BLOCK_SIZE}..{MAX_BLOCK_SIZE}"
            )
        return size

    def _block_count(self, sb: Any) -> int:
        count = sb.s_block_count
        if count == 0 or count > self.source.size // self.block_size:
            raise self._sb_error(
                f"{count} blocks of {self.block_size} bytes do not fit the "
                f"{self.source.size}-byte volume"
            )
        return count

    def _root_level(self, sb: Any) -> int:
        """The root's blk_level: the height counts the level of data blocks below the
        leaves, so a tree that is one leaf has height 2."""
        height = sb.s_tree_height
        if not DISK_LEAF_NODE_LEVEL < height <= MAX_HEIGHT:
            raise self._sb_error(f"s_tree_height {height} is outside 2..{MAX_HEIGHT}")
        return height - 1

    # -- tree nodes ---------------------------------------------------------------------

    def _node(self, block: int, level: int, search: _Search) -> Internal | Leaf:
        """The node at ``block``, which its parent says is at ``level``."""
        if search.reads_left <= 0:
            raise LimitError(
                f"{self.kind}: a search from key {search.start} visits more nodes "
                "than the filesystem has blocks"
            )
        search.reads_left -= 1
        node = self._nodes.get(block)
        if node is None:
            node = self._nodes.keep(block, self._parse_node(block))
        found = node.level if isinstance(node, Internal) else DISK_LEAF_NODE_LEVEL
        if found != level:
            raise CorruptError(
                f"{self.kind}: tree node at block {block} has level {found}, its parent "
                f"expects {level}"
            )
        return node

    def _parse_node(self, block: int) -> Internal | Leaf:
        if not 0 < block < self.block_count:
            raise CorruptError(
                f"{self.kind}: tree node at block {block} is outside the {self.block_count}-block "
                "filesystem"
            )
        offset = block * self.block_size
        data = self.source.pread(offset, self.block_size)
        if len(data) != self.block_size:
            raise CorruptError(
                f"{self.kind}: tree node at block {block} is past the end of the volume"
            )
        level, nr_items, _free, _reserved = _BLOCK_HEAD.unpack_from(data)
        if level == DISK_LEAF_NODE_LEVEL:
            return self._parse_leaf(block, data, nr_items)
        if DISK_LEAF_NODE_LEVEL < level <= MAX_HEIGHT:
            return self._parse_internal(block, data, level, nr_items)
        raise CorruptError(f"{self.kind}: tree node at block {block}: blk_level {level}")

    def _parse_internal(self, block: int, data: bytes, level: int, nr_items: int) -> Internal:
        at = f"{self.kind}: internal node at block {block}"
        keys_end = _BLOCK_HEAD.size + nr_items * KEY_SIZE
        if keys_end + (nr_items + 1) * _DISK_CHILD.size > len(data):
            raise CorruptError(f"{at}: {nr_items} keys do not fit the block")
        keys = [key_any(data, _BLOCK_HEAD.size + i * KEY_SIZE) for i in range(nr_items)]
        if any(a >= b for a, b in zip(keys, keys[1:], strict=False)):
            raise CorruptError(f"{at}: keys out of order")
        children = [
            _DISK_CHILD.unpack_from(data, keys_end + i * _DISK_CHILD.size)[0]
            for i in range(nr_items + 1)
        ]
        return Internal(block, level, keys, children)

    def _parse_leaf(self, block: int, data: bytes, nr_items: int) -> Leaf:
        at = f"{self.kind}: leaf node at block {block}"
        heads_end = _BLOCK_HEAD.size + nr_items * _ITEM_HEAD.size
        if heads_end > len(data):
            raise CorruptError(f"{at}: {nr_items} item heads do not fit the block")
        items: list[Item] = []
        for index in range(nr_items):
            raw_key, count, length, location, version = _ITEM_HEAD.unpack_from(
                data, _BLOCK_HEAD.size + index * _ITEM_HEAD.size
            )
            version &= 0x0FFF  # the top four bits are fsck's
            if version not in (KEY_FORMAT_3_5, KEY_FORMAT_3_6):
                raise CorruptError(f"{at}: item {index} has key format {version}")
            if location < heads_end or location + length > len(data):
                raise CorruptError(
                    f"{at}: item {index} of {length} bytes at {location} is outside the item area"
                )
            key = key_v2(raw_key) if version == KEY_FORMAT_3_6 else key_v1(raw_key)
            if items and key <= items[-1].key:
                raise CorruptError(f"{at}: item {index} is out of order")
            items.append(Item(key, count, block * self.block_size + location, length, version))
        return Leaf(block, items, data)

    # -- searching ----------------------------------------------------------------------

    def _items_from(self, start: Key) -> Iterator[tuple[Item, bytes]]:
        """Every item whose key is ``start`` or later, in key order, with its body."""
        search = _Search(start, reads_left=self.block_count)
        yield from self._subtree(self.root_block, self.root_level, search)

    def _subtree(self, block: int, level: int, search: _Search) -> Iterator[tuple[Item, bytes]]:
        node = self._node(block, level, search)
        if isinstance(node, Leaf):
            base = block * self.block_size
            for item in node.items:
                if item.key < search.start:
                    continue
                if search.last is not None and item.key <= search.last:
                    raise CorruptError(
                        f"{self.kind}: leaf node at block {block}: key {item.key} comes after "
                        f"{search.last} in the tree walk"
                    )
                search.last = item.key
                body = node.data[item.offset - base : item.offset - base + item.length]
                yield item, body
            return
        # Child i holds the keys from keys[i-1] up to keys[i]: start in the one that
        # can hold ``start``, then walk on to the right.
        first = bisect_right(node.keys, search.start)
        for child in node.children[first:]:
            yield from self._subtree(child, level - 1, search)

    def _object_items(self, obj: Object, offset: int) -> Iterator[tuple[Item, bytes]]:
        """The items of one object from key offset ``offset`` on."""
        for item, body in self._items_from((*obj, offset, TYPE_STAT_DATA)):
            if item.key[:2] != obj:
                return
            yield item, body

    # -- stat data ----------------------------------------------------------------------

    def inode(self, obj: Object) -> Inode:
        """What the object's stat data says (cached: a walk meets the same ones again)."""
        cached = self._inodes.get(obj)
        if cached is None:
            cached = self._inodes.keep(obj, self._read_stat_data(obj))
        return cached

    def _read_stat_data(self, obj: Object) -> Inode:
        for item, body in self._object_items(obj, 0):
            if item.key[2:] != (0, TYPE_STAT_DATA):
                break
            if item.version == KEY_FORMAT_3_5:
                if len(body) < 32:
                    raise self._item_error(item, f"v1 stat data of {len(body)} bytes")
                mode, _nlink, _uid, _gid, size, _blocks, _first_direct = _STAT_DATA_V1.unpack_from(
                    body
                )
            else:
                if len(body) < _STAT_DATA_V2.size:
                    raise self._item_error(item, f"stat data of {len(body)} bytes")
                mode, _attrs, _nlink, size = _STAT_DATA_V2.unpack_from(body)
            return Inode(mode, size)
        raise CorruptError(f"{self.kind}: object {list(obj)} has no stat data")

    def _item_error(self, item: Item, problem: str) -> CorruptError:
        return CorruptError(f"{self.kind}: item {list(item.key)} at byte {item.offset}: {problem}")

    # -- file bodies --------------------------------------------------------------------

    def _body_extents(self, obj: Object, size: int) -> Iterator[Extent]:
        """Direct items as they are on disk, indirect items' blocks merged into runs."""
        pending: Extent | None = None
        for item, body in self._object_items(obj, 1):
            start = item.key[2] - 1
            if start >= size:
                break
            kind = item.key[3]
            if kind == TYPE_DIRECT:
                pieces: Iterator[Extent] = iter(
                    (Extent(start, item.length, ExtentKind.DATA, item.offset),)
                )
            elif kind == TYPE_INDIRECT:
                pieces = self._indirect_extents(item, body, start)
            else:
                raise self._item_error(item, "an item that holds no file data")
            for piece in pieces:
                if pending is not None:
                    end = pending.file_offset + pending.length
                    if piece.file_offset == end and piece.offset == pending.offset + pending.length:
                        pending = Extent(
                            pending.file_offset,
                            pending.length + piece.length,
                            ExtentKind.DATA,
                            pending.offset,
                        )
                        continue
                    yield pending
                pending = piece
        if pending is not None:
            yield pending

    def _indirect_extents(self, item: Item, body: bytes, start: int) -> Iterator[Extent]:
        """The item's blocks as extents, neighbours on disk merged; zero pointers are holes."""
        if len(body) % 4:
            raise self._item_error(item, f"indirect item of {len(body)} bytes")
        bs = self.block_size
        pointers = struct.unpack(f"<{len(body) // 4}I", body)
        if pointers and max(pointers) >= self.block_count:
            index = next(i for i, p in enumerate(pointers) if p >= self.block_count)
            raise self._item_error(
                item, f"pointer {index} names block {pointers[index]}, past the end"
            )
        for index, count, block in pointer_runs(pointers):
            yield Extent(start + index * bs, count * bs, ExtentKind.DATA, block * bs)

    # -- the Filesystem primitives ------------------------------------------------------

    def root(self) -> Object:
        return ROOT_OBJECT

    def node_stat(self, node: Object) -> Stat:
        inode = self.inode(node)
        return Stat(inode.type, inode.size, inode.mode & 0o7777)

    def node_extents(self, node: Object) -> Iterator[Extent]:
        yield from self._body_extents(node, self.inode(node).size)

    def readlink(self, node: Object) -> bytes:
        size = self.inode(node).size
        if size > MAX_SYMLINK_TARGET:
            raise CorruptError(f"{self.kind}: symlink {list(node)}: target of {size} bytes")
        return FileReader(self, node, size, f"symlink {list(node)}").read()

    # -- directories --------------------------------------------------------------------

    def directory_name(self, node: Object) -> str:
        return f"{self.kind}: directory {list(node)}"

    def raw_entries(self, node: Object) -> Iterator[tuple[bytes, Object]]:
        """(name, object) of every visible entry but . and .., in hash order."""
        for item, body in self._object_items(node, 1):
            if item.key[3] != TYPE_DIRENTRY:
                raise self._item_error(item, "a directory holds an item that is not entries")
            yield from self._item_entries(item, body)

    def _item_entries(self, item: Item, body: bytes) -> Iterator[tuple[bytes, Object]]:
        """The entries of one directory item: heads from the front, names packed from
        the back, each name running up to the one before it (padding NULs cut off)."""
        count = item.count
        if count * _DE_HEAD.size > len(body):
            raise self._item_error(item, f"{count} entry heads do not fit {len(body)} bytes")
        end = len(body)
        for index in range(count):
            _offset, dir_id, objectid, location, state = _DE_HEAD.unpack_from(
                body, index * _DE_HEAD.size
            )
            if not count * _DE_HEAD.size <= location < end:
                raise self._item_error(item, f"entry {index} name at {location} is out of place")
            name = body[location:end].split(b"\0", 1)[0]
            end = location
            if not state & DEH_VISIBLE:
                continue
            if not name:
                raise self._item_error(item, f"entry {index} has an empty name")
            if name not in (b".", b".."):
                yield name, (dir_id, objectid)
