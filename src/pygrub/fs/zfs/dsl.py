"""The pool: labels, the uberblock, the MOS, and the DSL's directories and datasets.

The MOS (meta object set) holds the object directory (object 1): "root_dataset" names
the root DSL directory, "pool_props" the pool properties (bootfs), "features_for_read"
the features a reader must know. DSL directories form the dataset tree (child names in
a ZAP); each has a head dataset whose ds_bp is the root of its object set. A clone is
a dataset like any other, so reading one needs nothing more.
"""

from __future__ import annotations

import struct

from ..._typing import TYPE_CHECKING
from ...disk import ByteSource
from ...errors import CorruptError, LimitError, NotFoundError, PygrubError, UnsupportedError
from ...limits import MAX_TREE_DEPTH
from ...log import get_logger
from ...record import record
from .blkptr import BLKPTR_SIZE, BlockReader, parse_blkptr
from .dmu import (
    DMU_OST_META,
    DMU_OT_DSL_DATASET,
    DMU_OT_DSL_DIR,
    ObjectSet,
    check_objset_type,
)
from .label import (
    FEATURES_VERSION,
    Label,
    best_uberblocks,
    check_version,
    read_labels,
    uberblock_shift,
)
from .zap import Zap

if TYPE_CHECKING:
    from .nvlist import NvList

log = get_logger(__name__)

OBJECT_DIRECTORY = 1
#: Uberblocks tried, best first, before the pool is declared unreadable.
MAX_UBERBLOCK_TRIES = 8

# dsl_dir_phys_t: dd_creation_time, dd_head_dataset_obj, dd_parent_obj, dd_origin_obj,
# dd_child_dir_zapobj
_DSL_DIR = struct.Struct("5Q")
# dsl_dataset_phys_t: ds_dir_obj, ds_prev_snap_obj, ds_prev_snap_txg, ds_next_snap_obj,
# ds_snapnames_zapobj, ds_num_children, ds_creation_time, ds_creation_txg; ds_bp at 128
_DSL_DATASET = struct.Struct("8Q")
DS_BP_OFFSET = 128

#: Read-time features this reader implements, or that do not change how blocks are read.
SUPPORTED_FEATURES = frozenset(
    {
        "com.delphix:hole_birth",
        "com.delphix:extensible_dataset",
        "com.delphix:embedded_data",
        "com.delphix:empty_bpobj",
        "com.delphix:async_destroy",
        "com.delphix:enabled_txg",
        "com.delphix:spacemap_histogram",
        "com.delphix:bookmarks",
        "com.datto:bookmark_v2",
        "com.delphix:filesystem_limits",
        "com.delphix:livelist",
        # Changes only the pool's error log, which a reader never opens.
        "com.delphix:head_errlog",
        "com.delphix:log_spacemap",
        "com.delphix:obsolete_counts",
        "com.delphix:zpool_checkpoint",
        "com.delphix:spacemap_v2",
        "com.joyent:multi_vdev_crash_dump",
        "org.illumos:lz4_compress",
        "org.illumos:sha512",
        "org.illumos:skein",
        "org.illumos:edonr",
        "org.openzfs:blake3",
        "org.zfsonlinux:large_dnode",
        "org.zfsonlinux:userobj_accounting",
        "org.zfsonlinux:project_quota",
        "org.zfsonlinux:allocation_classes",
        "org.open-zfs:large_blocks",
        "org.freebsd:zstd_compress",
        # Encrypted blocks are refused one by one; unencrypted datasets read as usual.
        "com.datto:encryption",
        "com.delphix:bookmark_written",
        "com.datto:resilver_defer",
        "com.fudosecurity:block_cloning",
        "com.klarasystems:vdev_zaps_v2",
    }
)

#: Vdev types whose every child holds the whole of the top-level vdev's data.
_COPY_VDEVS = frozenset({"mirror", "replacing", "spare"})
_LEAF_VDEVS = frozenset({"disk", "file"})


@record(frozen=True)
class DslDir:
    object: int
    head_dataset: int
    parent: int
    child_zap: int


@record(frozen=True)
class DslDataset:
    object: int
    dir: int
    snapnames_zap: int
    creation_txg: int
    bp_raw: bytes
    order: str


class Pool:
    """A ZFS pool seen through one of its devices."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        labels = read_labels(source)
        if not labels:
            raise CorruptError("zfs: no vdev label with a valid checksum")
        label = max(labels, key=lambda lb: _int(lb.config.get("txg"), 0))
        self.config = label.config
        self.name = _text(self.config, "name")
        self.guid = _int(self.config.get("pool_guid"), None, "pool_guid")
        self.version = check_version(self.config.get("version"), "label config")
        self.vdev_tree = self.config.get("vdev_tree")
        if not isinstance(self.vdev_tree, dict):
            raise CorruptError("zfs: label config has no vdev_tree")
        self.reader = BlockReader(source, self._readable_vdevs(self.vdev_tree))
        if self.version >= FEATURES_VERSION:
            self._check_label_features(self.config)
        self.mos, self.objdir = self._open_mos(labels)
        if self.version >= FEATURES_VERSION:
            self._check_mos_features()

    # -- the configuration --------------------------------------------------------------

    def _readable_vdevs(self, tree: NvList) -> frozenset[int]:
        kind = tree.get("type")
        vdev_id = _int(tree.get("id"), None, "vdev_tree id")
        if kind in _LEAF_VDEVS or kind in _COPY_VDEVS:
            return frozenset({vdev_id})
        if isinstance(kind, str) and (kind.startswith("raidz") or kind == "draid"):
            raise UnsupportedError(f"zfs: pool {self.name}: {kind} vdevs are not supported")
        raise UnsupportedError(f"zfs: pool {self.name}: vdev type {kind!r} is not supported")

    def _check_label_features(self, config: NvList) -> None:
        features = config.get("features_for_read", {})
        if not isinstance(features, dict):
            raise CorruptError("zfs: label features_for_read is not an nvlist")
        self._refuse_unknown(features)

    def _refuse_unknown(self, names: object) -> None:
        unknown = sorted(name for name in names if name not in SUPPORTED_FEATURES)  # type: ignore[attr-defined]
        if unknown:
            raise UnsupportedError(
                f"zfs: pool {self.name} needs features this reader lacks: {', '.join(unknown)}"
            )

    def _check_mos_features(self) -> None:
        number = self.objdir.lookup_int(b"features_for_read")
        if number is None:
            return
        zap = Zap(self.mos, self.mos.dnode(number), "features_for_read")
        active = []
        for entry in zap.entries():
            if entry.first > 0:
                active.append(entry.name.decode("utf-8", "replace"))
        self._refuse_unknown(active)

    def _open_mos(self, labels: list[Label]) -> tuple[ObjectSet, Zap]:
        shift = uberblock_shift(self.config)
        candidates = best_uberblocks(self.source, labels, shift)
        if not candidates:
            raise CorruptError(f"zfs: pool {self.name}: no uberblock with a valid checksum")
        failures = []
        for ub in candidates[:MAX_UBERBLOCK_TRIES]:
            try:
                check_version(ub.version, f"uberblock at byte {ub.offset}")
                bp = parse_blkptr(ub.rootbp, ub.order, f"uberblock at byte {ub.offset}")
                mos = ObjectSet(self.reader, bp, f"MOS of pool {self.name} (txg {ub.txg})")
                check_objset_type(mos, DMU_OST_META, "MOS")
                objdir = Zap(mos, mos.dnode(OBJECT_DIRECTORY), "MOS object directory")
                objdir.lookup_int(b"root_dataset")
            except UnsupportedError:
                raise
            except PygrubError as e:
                log.info("zfs: uberblock txg %d at byte %d unusable: %s", ub.txg, ub.offset, e)
                failures.append(str(e))
                continue
            self.txg = ub.txg
            return mos, objdir
        raise CorruptError(failures[0])

    def leaf_vdev(self) -> NvList | None:
        """This device's own leaf in the vdev tree (the one whose guid the label names)."""
        want = self.config.get("guid")
        pending: list[tuple[NvList, int]] = [(self.vdev_tree, 0)]  # type: ignore[list-item]
        while pending:
            node, depth = pending.pop()
            if node.get("guid") == want and node.get("type") in _LEAF_VDEVS:
                return node
            children = node.get("children", [])
            if isinstance(children, list) and depth < MAX_TREE_DEPTH:
                pending.extend((c, depth + 1) for c in children if isinstance(c, dict))
        return None

    # -- DSL directories and datasets ---------------------------------------------------

    def dsl_dir(self, number: int) -> DslDir:
        dnode = self.mos.dnode(number)
        if dnode.bonustype != DMU_OT_DSL_DIR or len(dnode.bonus) < _DSL_DIR.size:
            raise CorruptError(f"zfs: MOS object {number} is not a DSL directory")
        _ctime, head, parent, _origin, child_zap = struct.unpack_from(
            dnode.order + _DSL_DIR.format, dnode.bonus
        )
        return DslDir(number, head, parent, child_zap)

    def dsl_dataset(self, number: int) -> DslDataset:
        dnode = self.mos.dnode(number)
        if dnode.bonustype != DMU_OT_DSL_DATASET or len(dnode.bonus) < DS_BP_OFFSET + BLKPTR_SIZE:
            raise CorruptError(f"zfs: MOS object {number} is not a DSL dataset")
        fields = struct.unpack_from(dnode.order + _DSL_DATASET.format, dnode.bonus)
        bp_raw = dnode.bonus[DS_BP_OFFSET : DS_BP_OFFSET + BLKPTR_SIZE]
        return DslDataset(number, fields[0], fields[4], fields[7], bp_raw, dnode.order)

    def objset(self, dataset: DslDataset, name: str) -> ObjectSet:
        bp = parse_blkptr(dataset.bp_raw, dataset.order, f"ds_bp of dataset {name}")
        # An encrypted dataset's object set is authenticated: its pointer has the
        # encryption bit (BP_USES_CRYPT) that an unencrypted dataset's never has.
        if bp.encrypted:
            raise UnsupportedError(
                f"zfs: dataset {name} is encrypted; pygrub reads no encrypted dataset"
            )
        return ObjectSet(self.reader, bp, f"dataset {name}")

    def root_dir(self) -> DslDir:
        number = self.objdir.lookup_int(b"root_dataset")
        if number is None:
            raise CorruptError(f"zfs: pool {self.name}: MOS object directory has no root_dataset")
        return self.dsl_dir(number)

    def children(self, directory: DslDir) -> list[tuple[str, int]]:
        """(name, DSL directory object) of each child dataset, hidden $ ones left out."""
        if directory.child_zap == 0:
            return []
        zap = Zap(self.mos, self.mos.dnode(directory.child_zap), "DSL child directory map")
        result = []
        for entry in zap.entries():
            name = entry.name.decode("utf-8", "surrogateescape")
            if not name.startswith("$"):
                result.append((name, entry.first))
        return result

    def find_dataset(self, name: str) -> int:
        """The head dataset object of ``name`` ("pool/a/b", "pool/a@snap" or "pool")."""
        name, _at, snapshot = name.partition("@")
        parts = [p for p in name.split("/") if p]
        if not parts or parts[0] != self.name:
            raise NotFoundError(f"zfs: dataset {name!r} is not in pool {self.name}")
        directory = self.root_dir()
        for depth, part in enumerate(parts[1:]):
            if depth >= MAX_TREE_DEPTH * 4:
                raise LimitError(f"zfs: dataset name {name!r} is too deep")
            child = dict(self.children(directory)).get(part)
            if child is None:
                raise NotFoundError(f"zfs: no dataset {'/'.join(parts[: depth + 2])}")
            directory = self.dsl_dir(child)
        if directory.head_dataset == 0:
            raise CorruptError(f"zfs: dataset {name} has no head dataset")
        if not snapshot:
            return directory.head_dataset
        head = self.dsl_dataset(directory.head_dataset)
        if head.snapnames_zap == 0:
            raise NotFoundError(f"zfs: no snapshot {name}@{snapshot}")
        zap = Zap(self.mos, self.mos.dnode(head.snapnames_zap), f"snapshots of {name}")
        number = zap.lookup_int(snapshot.encode("utf-8", "surrogateescape"))
        if number is None:
            raise NotFoundError(f"zfs: no snapshot {name}@{snapshot}")
        return number

    def dataset_name(self, number: int) -> str:
        """The full name of a head dataset, found by walking its directory's parents."""
        directory = self.dsl_dir(self.dsl_dataset(number).dir)
        parts: list[str] = []
        for _ in range(MAX_TREE_DEPTH * 4):
            if directory.parent == 0:
                return "/".join([self.name, *reversed(parts)])
            parent = self.dsl_dir(directory.parent)
            names = [n for n, obj in self.children(parent) if obj == directory.object]
            if not names:
                raise CorruptError(f"zfs: DSL directory {directory.object} is not in its parent")
            parts.append(names[0])
            directory = parent
        raise LimitError(f"zfs: DSL directory {directory.object} is nested too deep")

    def bootfs(self) -> int | None:
        """The pool's bootfs property: a dataset object, or None when it is unset."""
        props = self.objdir.lookup_int(b"pool_props")
        if not props:
            return None
        zap = Zap(self.mos, self.mos.dnode(props), "pool properties")
        value = zap.lookup_int(b"bootfs")
        return value or None

    def default_dataset(self) -> int:
        """bootfs if set; else Ubuntu's boot pool layout (<pool>/BOOT/<one child>); else
        the pool's root dataset."""
        bootfs = self.bootfs()
        if bootfs is not None:
            return bootfs
        root = self.root_dir()
        boot = dict(self.children(root)).get("BOOT")
        if boot is not None:
            choices = self.children(self.dsl_dir(boot))
            if choices:
                newest = max(
                    choices,
                    key=lambda c: self.dsl_dataset(self.dsl_dir(c[1]).head_dataset).creation_txg,
                )
                return self.dsl_dir(newest[1]).head_dataset
        return root.head_dataset


def _int(value: object, default: int | None, what: str = "") -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if default is None:
        raise CorruptError(f"zfs: label config {what} is missing or not a number")
    return default


def _text(config: NvList, key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str):
        raise CorruptError(f"zfs: label config {key} is missing or not a string")
    return value
