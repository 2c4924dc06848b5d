"""ZFS, read-only: one device of a pool (a whole single-disk pool, or one mirror member).

The pool's configuration comes from the vdev labels, its root from the best uberblock;
the MOS's DSL directories name the datasets, and each dataset is a ZPL object set.
Which dataset a ZfsFilesystem shows:

* by default, the pool's ``bootfs`` property; without one, Ubuntu's boot pool layout
  (``<pool>/BOOT/<id>``, the newest if there are several); else the pool's root dataset;
* ``fs.with_dataset("pool/ROOT/os")`` for a named one (Xen's ``zfs-bootfs=`` option);
* ``fs.grub_path("/ROOT/os@/boot/vmlinuz")`` for GRUB's syntax, which names a dataset
  relative to the pool before ``@`` (``/@/...`` is the root dataset) and a path in it
  after: it returns the filesystem of that dataset and the path inside it. A config
  layer calls it on every path it reads from a GRUB config on ZFS; paths without ``@``
  come back unchanged, on this same filesystem.

``fs.bootstring()`` is the string Xen's libfsimage gives Solaris guests
(``zfs-bootfs=<pool>/<dataset object>,bootpath='<phys_path>'``).
Every block read is checked against its checksum (fletcher2, fletcher4, SHA-256 or
SHA-512/256; skein, edonr and blake3 are taken unverified, as no standard module has
them) and decoded here, but for a file's plain data blocks: one copy on this device, stored
uncompressed (as kernels and initrds are, ZFS giving up on compressing them). Those are
DATA extents, copied by the kernel as they lie, unchecked as every other filesystem's
data is: Python's fletcher4 costs 80 ms a MiB, 3.8 s for a 64 MiB initrd. Where a block
has several copies, its checksum still picks a good one.
"""

from __future__ import annotations

from collections.abc import Iterator

from ...disk import ByteSource
from ...errors import CorruptError, NotFoundError
from ..base import MAX_SYMLINK_TARGET, Extent, ExtentKind, Filesystem, NodeType, Stat
from .blkptr import C_INHERIT, C_OFF, VDEV_LABEL_START_SIZE, BlockPointer
from .dmu import level0_blocks, read_data
from .dsl import Pool
from .label import PROBE_MAGICS, PROBE_OFFSET, label_offsets
from .zpl import Zpl

#: Block pointer compress values of blocks stored as they read.
RAW_COMPRESS = (C_OFF, C_INHERIT)

__all__ = ["ZfsFilesystem", "open_filesystem", "PROBE_MAGICS", "PROBE_OFFSET"]


def open_filesystem(source: ByteSource, dataset: str | None = None) -> ZfsFilesystem | None:
    """The pool on ``source`` at its default dataset (or ``dataset``), or None when no
    label starts like a ZFS label."""
    if not any(
        source.pread(PROBE_OFFSET + start, 12) in PROBE_MAGICS
        for start in label_offsets(source.size)
    ):
        return None
    pool = Pool(source)
    number = pool.find_dataset(dataset) if dataset else pool.default_dataset()
    return ZfsFilesystem(source, pool, number)


class ZfsFilesystem(Filesystem[int]):
    kind = "zfs"

    def __init__(self, source: ByteSource, pool: Pool, dataset: int) -> None:
        super().__init__(source)
        self.pool = pool
        self.dataset_object = dataset
        self.dataset = pool.dataset_name(dataset) if dataset else pool.name
        ds = pool.dsl_dataset(dataset)
        self.zpl = Zpl(pool.objset(ds, self.dataset), self.dataset)
        self.case_insensitive = self.zpl.case_insensitive
        self.uuid = f"{pool.guid:016x}"  # GRUB's zfs_uuid: what search --fs-uuid matches
        self.label = pool.name

    # -- datasets -----------------------------------------------------------------------

    def with_dataset(self, name: str) -> ZfsFilesystem:
        """The same pool seen at dataset ``name`` ("pool/a/b"; "a/b" is taken as in this pool)."""
        if not name.split("@", 1)[0].split("/", 1)[0] == self.pool.name:
            name = f"{self.pool.name}/{name.lstrip('/')}".rstrip("/")
        return ZfsFilesystem(self.source, self.pool, self.pool.find_dataset(name))

    def grub_path(self, path: str) -> tuple[ZfsFilesystem, str]:
        """GRUB's ``/dataset@snapshot/path``: the filesystem it names and the path in it."""
        at = path.find("@")
        if at < 0:
            return self, path
        dataset = path[:at].strip("/")
        rest = path[at + 1 :]
        slash = rest.find("/")
        snapshot, inner = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
        name = "/".join(p for p in (self.pool.name, dataset) if p)
        if snapshot:
            name += "@" + snapshot
        return ZfsFilesystem(self.source, self.pool, self.pool.find_dataset(name)), inner

    def boot_views(self) -> list[tuple[str, Filesystem]]:
        """The pool's top dataset, where illumos GRUB reads menu.lst (is_top_dataset_file)."""
        if self.dataset == self.pool.name:
            return []
        return [(self.pool.name, self.with_dataset(self.pool.name))]

    def child_datasets(self) -> list[str]:
        """The names of this dataset's children."""
        ds = self.pool.dsl_dataset(self.dataset_object)
        return [f"{self.dataset}/{n}" for n, _obj in self.pool.children(self.pool.dsl_dir(ds.dir))]

    def bootstring(self) -> str:
        """Xen libfsimage's boot string for Solaris: pool, dataset object, boot path."""
        leaf = self.pool.leaf_vdev() or {}
        path = leaf.get("phys_path", "")
        bootpath = path if isinstance(path, str) else ""
        return f"zfs-bootfs={self.pool.name}/{self.dataset_object},bootpath='{bootpath}'"

    # -- the Filesystem primitives ------------------------------------------------------

    def root(self) -> int:
        return self.zpl.root

    def node_stat(self, node: int) -> Stat:
        znode = self.zpl.znode(node)
        return Stat(znode.type, znode.size, znode.mode & 0o7777)

    def dir_entries(self, node: int) -> Iterator[tuple[str, int]]:
        for name, child in self.zpl.entries(node):
            yield name.decode("utf-8", "surrogateescape"), child

    def lookup(self, node: int, name: str) -> int | None:
        if self.case_insensitive:
            return super().lookup(node, name)
        try:
            raw = name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return None
        return self.zpl.lookup(node, raw)

    def readlink(self, node: int) -> bytes:
        znode = self.zpl.znode(node)
        if znode.inline_target is not None:
            return znode.inline_target[: MAX_SYMLINK_TARGET + 1]
        if znode.size > MAX_SYMLINK_TARGET:
            raise CorruptError(f"zfs: symlink object {node}: target of {znode.size} bytes")
        parts = []
        for ext in self._extents(node, znode.size, raw=False):
            parts.append(self.read_encoded(node, ext))
        data = b"".join(parts)
        if len(data) < znode.size:
            data += bytes(znode.size - len(data))
        return data[: znode.size]

    def node_extents(self, node: int) -> Iterator[Extent]:
        znode = self.zpl.znode(node)
        if znode.type is not NodeType.FILE:
            raise NotFoundError(f"zfs: object {node} is not a file")
        yield from self._extents(node, znode.size)

    def _extents(self, node: int, size: int, raw: bool = True) -> Iterator[Extent]:
        """ENCODED extents of the object's blocks; with ``raw``, its plain data blocks
        (see _raw_offset) as DATA extents instead, neighbours on the device merged."""
        dnode = self.zpl.znode(node).dnode
        block = dnode.datablksz
        pending: Extent | None = None
        for blkid, bp in level0_blocks(self.zpl.os.reader, dnode):
            if blkid * block >= size:
                break
            where = self._raw_offset(bp, block) if raw else None
            if (
                where is not None
                and pending is not None
                and pending.file_offset + pending.length == blkid * block
                and pending.offset + pending.length == where
            ):
                pending = Extent(pending.file_offset, pending.length + block, offset=pending.offset)
                continue
            if pending is not None:
                yield pending
                pending = None
            if where is not None:
                pending = Extent(blkid * block, block, offset=where)
            else:
                yield Extent(blkid * block, block, ExtentKind.ENCODED, token=(blkid, bp))
        if pending is not None:
            yield pending

    def _raw_offset(self, bp: BlockPointer, block: int) -> int | None:
        """The device offset of a data block that may be copied as it lies: one copy, on
        this device, neither compressed, encrypted, embedded nor a gang block."""
        if bp.embedded or bp.encrypted or len(bp.dvas) != 1 or bp.compress not in RAW_COMPRESS:
            return None
        dva = bp.dvas[0]
        if dva.gang or dva.vdev not in self.zpl.os.reader.vdevs or bp.psize != block:
            return None
        return VDEV_LABEL_START_SIZE + dva.offset

    def read_encoded(self, node: int, extent: Extent) -> bytes:
        token: tuple[int, BlockPointer] = extent.token  # type: ignore[assignment]
        blkid, bp = token
        dnode = self.zpl.znode(node).dnode
        data = read_data(self.zpl.os.reader, dnode, bp, blkid, f"dataset {self.dataset}")
        return data[: extent.length]
