"""The btrfs Filesystem: subvolumes, inodes, directories and file extents.

A node is (subvolume tree, inode number). A directory entry that names a subvolume
(its location key is a ROOT_ITEM) leads to that subvolume's root directory, entered
lazily and only when the root tree holds the matching ROOT_REF, as Linux checks; where
it does not (a nested subvolume seen inside a snapshot), Linux shows an empty directory
and so do we.
"""

from __future__ import annotations

from collections.abc import Iterator

from ...disk import ByteSource
from ...errors import CorruptError, NotFoundError, UnsupportedError
from ...record import record
from ..base import (
    MAX_SYMLINK_TARGET,
    Extent,
    ExtentKind,
    FileReader,
    Filesystem,
    NodeCache,
    NodeType,
    Stat,
    mode_type,
)
from ..directory import name_bytes
from ..layout import format_uuid, read_exact
from .checksum import name_hash
from .chunks import ChunkMap, parse_chunk
from .structures import (
    CHUNK_ITEM_KEY,
    COMPRESS_NONE,
    COMPRESSION_NAMES,
    DIR_INDEX_KEY,
    DIR_ITEM,
    DIR_ITEM_KEY,
    EMPTY_SUBVOL_DIR_OBJECTID,
    EXTENT_DATA_KEY,
    FILE_EXTENT_BODY,
    FILE_EXTENT_HEAD,
    FILE_EXTENT_INLINE,
    FILE_EXTENT_PREALLOC,
    FILE_EXTENT_REG,
    FIRST_CHUNK_TREE_OBJECTID,
    FS_TREE_OBJECTID,
    INODE_ITEM,
    INODE_ITEM_KEY,
    INODE_ITEM_SIZE,
    MAX_COMPRESSED,
    MAX_LEVEL,
    MAX_UNCOMPRESSED,
    ROOT_ITEM,
    ROOT_ITEM_KEY,
    ROOT_REF,
    ROOT_REF_KEY,
    Key,
)
from .superblock import Superblock
from .tree import Item, TreeReader, TreeRoot


@record(frozen=True)
class Node:
    tree: int
    ino: int
    #: On the way into a subvolume through a directory entry: (parent tree, parent
    #: directory, entry name), checked against the subvolume's ROOT_REF when entered.
    via: tuple[int, int, bytes] | None = None


@record(frozen=True)
class Subvolume:
    tree: TreeRoot
    root_dirid: int


@record(frozen=True)
class Inode:
    size: int
    mode: int


@record(frozen=True)
class DirEntry:
    name: bytes
    location: Key


@record(frozen=True)
class Encoded:
    """What read_encoded needs for an inline or compressed extent."""

    compression: int
    #: Decoded size of the whole extent (before ``skip``).
    ram_bytes: int
    #: Where the file's bytes start in the decoded extent (file_extent_item.offset).
    skip: int
    #: Inline extents: the bytes stored in the leaf. Else None: read the disk extent.
    inline: bytes | None = None
    disk_num_bytes: int = 0


def parse_dir_items(item: Item) -> Iterator[DirEntry]:
    """The btrfs_dir_items packed in one DIR_ITEM or DIR_INDEX item: several when names
    share a hash."""
    data = item.data
    pos = 0
    while pos < len(data):
        if pos + DIR_ITEM.size > len(data):
            raise CorruptError(f"btrfs: directory item in leaf {item.where}: truncated")
        d = DIR_ITEM.read(data, pos)
        name_at = pos + DIR_ITEM.size
        end = name_at + d.name_len + d.data_len
        if d.name_len == 0 or end > len(data):
            raise CorruptError(
                f"btrfs: directory item in leaf {item.where}: a {d.name_len}-byte name and "
                f"{d.data_len} bytes of data do not fit"
            )
        location = Key(d.location_objectid, d.location_type, d.location_offset)
        yield DirEntry(data[name_at : name_at + d.name_len], location)
        pos = end


class BtrfsFilesystem(Filesystem[Node]):
    kind = "btrfs"

    def __init__(self, source: ByteSource, sb: Superblock) -> None:
        super().__init__(source)
        f = sb.fields
        self.sectorsize: int = f.sectorsize
        self.nodesize: int = f.nodesize
        self.uuid = format_uuid(f.fsid)
        label = f.label.split(b"\0", 1)[0]
        self.label = label.decode("utf-8", "replace") if label else None
        self.root_dir_objectid: int = f.root_dir_objectid
        chunks = ChunkMap()
        for chunk in sb.system_chunks:
            chunks.add(chunk)
        self.trees = TreeReader(source, chunks, f.nodesize, f.csum_type, sb.metadata_uuid)
        chunk_tree = TreeRoot(
            "chunk tree", f.chunk_root, f.chunk_root_level, f.chunk_root_generation
        )
        self._load_chunks(chunk_tree, chunks, sb.devid)
        self.root_tree = TreeRoot("root tree", f.root, f.root_level, f.generation)
        self._subvolumes: NodeCache[int, Subvolume] = NodeCache()
        self._inodes: NodeCache[tuple[int, int], Inode] = NodeCache()
        self._entered: NodeCache[Node, Node] = NodeCache()
        self._top = Node(FS_TREE_OBJECTID, self.subvolume(FS_TREE_OBJECTID).root_dirid)

    def _load_chunks(self, chunk_tree: TreeRoot, chunks: ChunkMap, devid: int) -> None:
        items = self.trees.items_of(chunk_tree, FIRST_CHUNK_TREE_OBJECTID, CHUNK_ITEM_KEY)
        for item in items:
            where = f"chunk tree leaf {item.where}"
            chunk, _size = parse_chunk(item.key, item.data, where, devid, self.sectorsize)
            chunks.add(chunk)

    # -- subvolumes ---------------------------------------------------------------------

    def subvolume(self, objectid: int) -> Subvolume:
        """The tree of subvolume ``objectid``, from its newest ROOT_ITEM in the root tree."""
        cached = self._subvolumes.get(objectid)
        if cached is not None:
            return cached
        # A tree may have several (the key offset is a transaction id); Linux takes the
        # newest, the largest offset.
        items = self.trees.items_of(self.root_tree, objectid, ROOT_ITEM_KEY)
        item = max(items, key=lambda found: found.key.offset, default=None)
        if item is None:
            raise NotFoundError(f"btrfs: subvolume {objectid} has no root item")
        if len(item.data) < ROOT_ITEM.size:
            raise CorruptError(
                f"btrfs: root item of subvolume {objectid} in leaf {item.where}: truncated"
            )
        r = ROOT_ITEM.read(item.data)
        if r.refs == 0:
            raise NotFoundError(f"btrfs: subvolume {objectid} is deleted")
        if r.level >= MAX_LEVEL:
            raise CorruptError(f"btrfs: root item of subvolume {objectid}: level {r.level}")
        tree = TreeRoot(f"subvolume {objectid}", r.bytenr, r.level, r.generation)
        subvolume = Subvolume(tree, r.root_dirid)
        return self._subvolumes.keep(objectid, subvolume)

    def default_subvolume_id(self) -> int:
        """The subvolume Linux mounts without subvol=: the "default" entry of the root
        tree's directory, or the top level."""
        found = self._dir_item(self.root_tree, self.root_dir_objectid, b"default")
        if found is None:
            return FS_TREE_OBJECTID
        if found.location.type != ROOT_ITEM_KEY:
            raise CorruptError("btrfs: the default subvolume entry does not name a subvolume")
        return found.location.objectid

    def boot_views(self) -> list[tuple[str, Filesystem]]:
        """openSUSE's default subvolume (btrfs_relative_path), then Ubuntu's ``@``."""
        views: list[tuple[str, Filesystem]] = []
        if self.default_subvolume_id() != FS_TREE_OBJECTID:
            views.append(("default subvolume", self.subvolume_view(default=True)))
        if self.is_dir("/@"):
            views.append(("@", self.subvolume_view(path="/@")))
        return views

    def subvolume_view(
        self, default: bool = False, subvol_id: int | None = None, path: str | None = None
    ) -> BtrfsFilesystem:
        """This filesystem seen from another root: the default subvolume, a subvolume by
        id, or the directory at ``path`` (such as "/@"). Caches are shared."""
        if default + (subvol_id is not None) + (path is not None) != 1:
            raise ValueError("subvolume_view takes one of default, subvol_id or path")
        if default:
            subvol_id = self.default_subvolume_id()
        if subvol_id is not None:
            top = Node(subvol_id, self.subvolume(subvol_id).root_dirid)
        else:
            assert path is not None
            top = self._enter(self.resolve(path))
            if self.node_stat(top).type is not NodeType.DIR:
                raise NotFoundError(f"btrfs: {path} is not a directory")
        # copy (and the weakref it loads) costs start-up that a plain boot does not use.
        import copy

        view = copy.copy(self)
        view._top = top
        return view

    def _enter(self, node: Node) -> Node:
        """The node itself, or for a subvolume reached through a directory entry, that
        subvolume's root directory (or Linux's empty stand-in when the ROOT_REF is not
        there to back the entry)."""
        if node.via is None:
            return node
        entered = self._entered.get(node)
        if entered is not None:
            return entered
        parent_tree, parent_dir, name = node.via
        ref = self.trees.find(self.root_tree, Key(parent_tree, ROOT_REF_KEY, node.tree))
        if ref is None or not self._ref_names(ref, parent_dir, name):
            entered = Node(parent_tree, EMPTY_SUBVOL_DIR_OBJECTID)
        else:
            entered = Node(node.tree, self.subvolume(node.tree).root_dirid)
        return self._entered.keep(node, entered)

    @staticmethod
    def _ref_names(item: Item, dirid: int, name: bytes) -> bool:
        if len(item.data) < ROOT_REF.size:
            raise CorruptError(f"btrfs: root ref in leaf {item.where}: truncated")
        ref = ROOT_REF.read(item.data)
        stored = item.data[ROOT_REF.size : ROOT_REF.size + ref.name_len]
        return ref.dirid == dirid and stored == name

    def _tree(self, node: Node) -> TreeRoot:
        return self.subvolume(node.tree).tree

    # -- inodes -------------------------------------------------------------------------

    def inode(self, node: Node) -> Inode:
        key = (node.tree, node.ino)
        cached = self._inodes.get(key)
        if cached is not None:
            return cached
        item = self.trees.find(self._tree(node), Key(node.ino, INODE_ITEM_KEY, 0))
        if item is None:
            raise CorruptError(f"btrfs: subvolume {node.tree} has no inode {node.ino}")
        if len(item.data) < INODE_ITEM_SIZE:
            raise CorruptError(f"btrfs: inode item in leaf {item.where}: truncated")
        raw = INODE_ITEM.read(item.data)
        return self._inodes.keep(key, Inode(raw.size, raw.mode))

    @staticmethod
    def _is_empty_stand_in(node: Node) -> bool:
        return node.ino == EMPTY_SUBVOL_DIR_OBJECTID

    # -- the Filesystem primitives ------------------------------------------------------

    def root(self) -> Node:
        return self._top

    def node_stat(self, node: Node) -> Stat:
        node = self._enter(node)
        if self._is_empty_stand_in(node):
            return Stat(NodeType.DIR, 0, 0o755)
        inode = self.inode(node)
        return Stat(mode_type(inode.mode), inode.size, inode.mode & 0o7777)

    def dir_entries(self, node: Node) -> Iterator[tuple[str, Node]]:
        node = self._enter(node)
        if self._is_empty_stand_in(node):
            return
        for item in self.trees.items_of(self._tree(node), node.ino, DIR_INDEX_KEY):
            for entry in parse_dir_items(item):
                child = self._child(node, entry, item)
                yield entry.name.decode("utf-8", "surrogateescape"), child

    def lookup(self, node: Node, name: str) -> Node | None:
        node = self._enter(node)
        if self._is_empty_stand_in(node):
            return None
        want = name_bytes(name)
        if want is None:
            return None
        found = self._dir_item(self._tree(node), node.ino, want)
        return None if found is None else self._child(node, found, None)

    def _dir_item(self, tree: TreeRoot, directory: int, name: bytes) -> DirEntry | None:
        """The entry called ``name``, from the DIR_ITEM keyed by its hash."""
        item = self.trees.find(tree, Key(directory, DIR_ITEM_KEY, name_hash(name)))
        if item is None:
            return None
        for entry in parse_dir_items(item):
            if entry.name == name:
                return entry
        return None

    def _child(self, parent: Node, entry: DirEntry, item: Item | None) -> Node:
        location = entry.location
        if location.type == INODE_ITEM_KEY:
            return Node(parent.tree, location.objectid)
        if location.type == ROOT_ITEM_KEY:
            return Node(location.objectid, 0, (parent.tree, parent.ino, entry.name))
        where = f" in leaf {item.where}" if item is not None else ""
        raise CorruptError(
            f"btrfs: directory entry {entry.name!r} of inode {parent.ino}{where}: location key "
            f"type {location.type}"
        )

    def readlink(self, node: Node) -> bytes:
        node = self._enter(node)
        size = self.inode(node).size
        if size > MAX_SYMLINK_TARGET:
            raise CorruptError(f"btrfs: symlink inode {node.ino}: target of {size} bytes")
        return FileReader(self, node, size, f"symlink inode {node.ino}").read()

    # -- file data ----------------------------------------------------------------------

    def node_extents(self, node: Node) -> Iterator[Extent]:
        node = self._enter(node)
        size = self.inode(node).size
        for item in self.trees.items_of(self._tree(node), node.ino, EXTENT_DATA_KEY):
            if item.key.offset >= size:
                return
            yield from self._file_extent(item, size - item.key.offset)

    def _file_extent(self, item: Item, left: int) -> Iterator[Extent]:
        """The extents of one EXTENT_DATA item; ``left`` is the file size past its start."""
        data = item.data
        what = f"btrfs: file extent in leaf {item.where}"
        if len(data) < FILE_EXTENT_HEAD.size:
            raise CorruptError(f"{what}: truncated")
        head = FILE_EXTENT_HEAD.read(data)
        if head.encryption or head.other_encoding:
            raise UnsupportedError(f"{what}: encrypted or encoded")
        if head.compression != COMPRESS_NONE and head.compression not in COMPRESSION_NAMES:
            raise UnsupportedError(f"{what}: compression type {head.compression}")
        file_offset = item.key.offset
        if head.type == FILE_EXTENT_INLINE:
            inline = data[FILE_EXTENT_HEAD.size :]
            if head.ram_bytes > MAX_UNCOMPRESSED or (
                head.compression == COMPRESS_NONE and head.ram_bytes > len(inline)
            ):
                raise CorruptError(
                    f"{what}: inline extent of {head.ram_bytes} bytes holds {len(inline)}"
                )
            token = Encoded(head.compression, head.ram_bytes, 0, inline)
            yield Extent(file_offset, head.ram_bytes, ExtentKind.ENCODED, 0, token)
            return
        if head.type not in (FILE_EXTENT_REG, FILE_EXTENT_PREALLOC):
            raise CorruptError(f"{what}: extent type {head.type}")
        if len(data) < FILE_EXTENT_HEAD.size + FILE_EXTENT_BODY.size:
            raise CorruptError(f"{what}: truncated")
        body = FILE_EXTENT_BODY.read(data, FILE_EXTENT_HEAD.size)
        if head.type == FILE_EXTENT_PREALLOC or body.disk_bytenr == 0:
            return  # reads as zeros: the gap becomes a hole
        length = min(body.num_bytes, left)
        if head.compression == COMPRESS_NONE:
            if body.offset + body.num_bytes > body.disk_num_bytes:
                raise CorruptError(
                    f"{what}: {body.num_bytes} bytes at {body.offset} of a "
                    f"{body.disk_num_bytes}-byte extent"
                )
            pieces = self.trees.chunks.pieces(body.disk_bytenr + body.offset, length, "file data")
            for physical, count in pieces:
                yield Extent(file_offset, count, ExtentKind.DATA, physical)
                file_offset += count
            return
        if (
            body.disk_num_bytes > MAX_COMPRESSED
            or head.ram_bytes > MAX_UNCOMPRESSED
            or body.offset + body.num_bytes > head.ram_bytes
        ):
            raise CorruptError(
                f"{what}: compressed extent of {body.disk_num_bytes} bytes decoding to "
                f"{head.ram_bytes}, of which {body.num_bytes} at {body.offset}"
            )
        token = Encoded(head.compression, head.ram_bytes, body.offset, None, body.disk_num_bytes)
        yield Extent(file_offset, length, ExtentKind.ENCODED, body.disk_bytenr, token)

    def read_encoded(self, node: Node, extent: Extent) -> bytes:
        token = extent.token
        assert isinstance(token, Encoded)
        what = f"extent at file offset {extent.file_offset} of inode {node.ino}"
        if token.inline is not None:
            stored = token.inline
        else:
            stored = self._read_logical(extent.offset, token.disk_num_bytes, what)
        if token.compression == COMPRESS_NONE:
            decoded = stored[: token.ram_bytes]
        else:
            from .compression import decompress

            decoded = decompress(token.compression, stored, token.ram_bytes, self.sectorsize, what)
        piece = decoded[token.skip : token.skip + extent.length]
        # Linux zero-fills whatever a short stream leaves uncovered.
        return piece.ljust(extent.length, b"\0")

    def _read_logical(self, logical: int, length: int, what: str) -> bytes:
        parts = [
            read_exact(self.source, physical, count, f"btrfs: {what}")
            for physical, count in self.trees.chunks.pieces(logical, length, what)
        ]
        return b"".join(parts)
