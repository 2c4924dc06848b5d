"""The ZFS POSIX layer: directories, znodes and system attributes (zfs_znode.h, sa_impl.h).

A ZPL object set has a master node (object 1, a ZAP) naming the root directory and,
from ZPL version 5, the SA master node. A file's attributes are either a znode_phys_t
in its bonus buffer (older pools) or system attributes: a header naming a layout (the
ordered list of attributes present), the lengths of the variable-size ones, then the
values, each 8-byte aligned; what does not fit the bonus goes to a spill block.
Directories are ZAPs whose values hold the object number in their low 48 bits.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ...errors import CorruptError, NotFoundError, UnsupportedError
from ...limits import MAX_DIR_ENTRIES
from ...record import record
from ..base import NodeType, mode_type
from .dmu import DMU_OST_ZFS, DMU_OT_SA, DMU_OT_ZNODE, Dnode, ObjectSet, check_objset_type
from .zap import Zap

MASTER_NODE = 1
MAX_ZPL_VERSION = 5
ZFS_DIRENT_OBJ_BITS = 48
#: Directories whose name -> object maps a Zpl keeps (see Zpl.lookup).
DIR_MAPS_KEPT = 4

# znode_phys_t: zp_mode at 72, zp_size at 80; the whole struct is 264 bytes and a short
# symlink target follows it in the bonus buffer.
ZNODE_MODE_OFFSET = 72
ZNODE_SIZE_OFFSET = 80
ZNODE_PHYS_SIZE = 264


SA_MAGIC = 0x2F505A
# sa_hdr_phys_t: sa_magic, sa_layout_info (layout number: bits 0-9; header size in
# 8-byte units: bits 10-15), then sa_lengths[] of the variable-size attributes
_SA_HEADER = {order: struct.Struct(order + "IH") for order in "<>"}
SA_LENGTHS_OFFSET = 6

#: The attributes a ZPL dataset without a registry has, by number (sa_legacy_attrs):
#: name -> (number, length).
LEGACY_ATTRS = {
    "ZPL_ATIME": (0, 16),
    "ZPL_MTIME": (1, 16),
    "ZPL_CTIME": (2, 16),
    "ZPL_CRTIME": (3, 16),
    "ZPL_GEN": (4, 8),
    "ZPL_MODE": (5, 8),
    "ZPL_SIZE": (6, 8),
    "ZPL_PARENT": (7, 8),
    "ZPL_LINKS": (8, 8),
    "ZPL_XATTR": (9, 8),
    "ZPL_RDEV": (10, 8),
    "ZPL_FLAGS": (11, 8),
    "ZPL_UID": (12, 8),
    "ZPL_GID": (13, 8),
    "ZPL_PAD": (14, 32),
    "ZPL_ZNODE_ACL": (15, 88),
}
#: Layout 0 is the legacy znode's: attributes 0..15 in order.
LEGACY_LAYOUT = tuple(range(16))


@record(frozen=True)
class Znode:
    object: int
    type: NodeType
    mode: int
    size: int
    dnode: Dnode
    #: An SA symlink's target, or a znode's target held in its bonus buffer.
    inline_target: bytes | None


class SaTables:
    """The registry (attribute number -> length) and layouts (number -> attributes)."""

    def __init__(self, os: ObjectSet, sa_master: int | None) -> None:
        self.lengths: dict[int, int] = {num: length for num, length in LEGACY_ATTRS.values()}
        self.numbers: dict[str, int] = {name: num for name, (num, _l) in LEGACY_ATTRS.items()}
        self.layouts: dict[int, tuple[int, ...]] = {0: LEGACY_LAYOUT, 1: ()}
        if not sa_master:
            return
        master = Zap(os, os.dnode(sa_master), "SA master node")
        registry = master.lookup_int(b"REGISTRY")
        layouts = master.lookup_int(b"LAYOUTS")
        if registry:
            for entry in Zap(os, os.dnode(registry), "SA registry").entries():
                value = entry.first
                number = value & 0xFFFF  # ATTR_NUM
                self.lengths[number] = (value >> 24) & 0xFFFF  # ATTR_LENGTH
                self.numbers[entry.name.decode("utf-8", "replace")] = number
        if layouts:
            for entry in Zap(os, os.dnode(layouts), "SA layouts").entries():
                try:
                    number = int(entry.name.decode("ascii"), 10)
                except (UnicodeDecodeError, ValueError):
                    raise CorruptError(f"zfs: SA layout named {entry.name!r}") from None
                if entry.intlen != 2:
                    raise CorruptError(f"zfs: SA layout {number} of {entry.intlen}-byte integers")
                self.layouts[number] = entry.values


def sa_attributes(buf: bytes, order: str, tables: SaTables, what: str) -> dict[int, bytes]:
    """Attribute number -> raw value of every attribute in one SA buffer."""
    header = _SA_HEADER[order]
    if len(buf) < header.size:
        raise CorruptError(f"zfs: {what}: SA buffer of {len(buf)} bytes")
    magic, info = header.unpack_from(buf)
    if magic != SA_MAGIC:
        raise CorruptError(f"zfs: {what}: SA magic 0x{magic:x}")
    layout_number = info & 0x3FF
    header_size = ((info >> 10) & 0x3F) << 3
    layout = tables.layouts.get(layout_number)
    if layout is None:
        raise CorruptError(f"zfs: {what}: unknown SA layout {layout_number}")
    if header_size < 8 or header_size > len(buf):
        raise CorruptError(f"zfs: {what}: SA header of {header_size} bytes")
    variable = (header_size - SA_LENGTHS_OFFSET) // 2
    var_lengths = struct.unpack_from(f"{order}{variable}H", buf, SA_LENGTHS_OFFSET)
    values: dict[int, bytes] = {}
    pos = header_size
    next_var = 0
    for number in layout:
        length = tables.lengths.get(number)
        if length is None:
            raise CorruptError(f"zfs: {what}: SA attribute {number} is not registered")
        if length == 0:
            if next_var >= len(var_lengths):
                raise CorruptError(f"zfs: {what}: more variable-size attributes than lengths")
            length = var_lengths[next_var]
            next_var += 1
        if pos + length > len(buf):
            raise CorruptError(f"zfs: {what}: SA attribute {number} runs past the buffer")
        values[number] = buf[pos : pos + length]
        pos = (pos + length + 7) & ~7
    return values


class Zpl:
    """One ZPL dataset's objects: the root, znodes and directory entries."""

    def __init__(self, os: ObjectSet, name: str) -> None:
        check_objset_type(os, DMU_OST_ZFS, f"dataset {name}")
        self.os = os
        self.name = name
        self.master = Zap(os, os.dnode(MASTER_NODE), f"master node of {name}")
        version = self.master.lookup_int(b"VERSION")
        if version is not None and version > MAX_ZPL_VERSION:
            raise UnsupportedError(f"zfs: dataset {name}: ZPL version {version}")
        root = self.master.lookup_int(b"ROOT")
        if not root:
            raise CorruptError(f"zfs: dataset {name}: master node has no ROOT")
        self.root = root
        self.case_insensitive = bool(self.master.lookup_int(b"casesensitivity"))
        self._sa: SaTables | None = None
        self._znodes: dict[int, Znode] = {}
        self._dir_maps: dict[int, dict[bytes, int]] = {}

    @property
    def sa(self) -> SaTables:
        if self._sa is None:
            self._sa = SaTables(self.os, self.master.lookup_int(b"SA_ATTRS"))
        return self._sa

    def znode(self, number: int) -> Znode:
        cached = self._znodes.get(number)
        if cached is not None:
            return cached
        dnode = self.os.dnode(number)
        if dnode.bonustype == DMU_OT_ZNODE:
            znode = self._legacy_znode(dnode)
        elif dnode.bonustype == DMU_OT_SA:
            znode = self._sa_znode(dnode)
        else:
            raise CorruptError(
                f"zfs: dataset {self.name}: object {number} has bonus type {dnode.bonustype}, "
                "not a znode"
            )
        if len(self._znodes) > 4096:
            self._znodes.clear()
        self._znodes[number] = znode
        return znode

    def _legacy_znode(self, dnode: Dnode) -> Znode:
        bonus = dnode.bonus
        if len(bonus) < ZNODE_PHYS_SIZE:
            raise CorruptError(
                f"zfs: dataset {self.name}: znode of object {dnode.object} has {len(bonus)} bytes"
            )
        mode, size = struct.unpack_from(dnode.order + "QQ", bonus, ZNODE_MODE_OFFSET)
        kind = mode_type(mode)
        inline = None
        if kind is NodeType.SYMLINK and size <= len(bonus) - ZNODE_PHYS_SIZE:
            inline = bonus[ZNODE_PHYS_SIZE : ZNODE_PHYS_SIZE + size]
        return Znode(dnode.object, kind, mode, size, dnode, inline)

    def _sa_znode(self, dnode: Dnode) -> Znode:
        what = f"dataset {self.name}: SA of object {dnode.object}"
        tables = self.sa
        attrs = sa_attributes(dnode.bonus, dnode.order, tables, what)
        wanted = [tables.numbers.get(n) for n in ("ZPL_MODE", "ZPL_SIZE", "ZPL_SYMLINK")]
        if dnode.spill is not None and any(w is not None and w not in attrs for w in wanted[:2]):
            spill = self.os.reader.read(dnode.spill, f"spill block of {what}")
            attrs = {**sa_attributes(spill, dnode.spill.order, tables, what), **attrs}
        mode = self._sa_u64(attrs, wanted[0], dnode, what, "ZPL_MODE")
        size = self._sa_u64(attrs, wanted[1], dnode, what, "ZPL_SIZE")
        kind = mode_type(mode)
        target = None
        if kind is NodeType.SYMLINK:
            number = wanted[2]
            if number is not None and number not in attrs and dnode.spill is not None:
                spill = self.os.reader.read(dnode.spill, f"spill block of {what}")
                attrs.update(sa_attributes(spill, dnode.spill.order, tables, what))
            if number is not None and number in attrs:
                target = attrs[number]
        return Znode(dnode.object, kind, mode, size, dnode, target)

    @staticmethod
    def _sa_u64(
        attrs: dict[int, bytes], number: int | None, dnode: Dnode, what: str, name: str
    ) -> int:
        raw = attrs.get(number) if number is not None else None
        if raw is None or len(raw) != 8:
            raise CorruptError(f"zfs: {what}: no {name}")
        return struct.unpack(dnode.order + "Q", raw)[0]

    def entries(self, number: int) -> Iterator[tuple[bytes, int]]:
        """(name, object) of each entry of a directory."""
        znode = self.znode(number)
        if znode.type is not NodeType.DIR:
            raise NotFoundError(f"zfs: object {number} is not a directory")
        zap = Zap(self.os, znode.dnode, f"directory object {number} of {self.name}")
        for count, entry in enumerate(zap.entries()):
            if count >= MAX_DIR_ENTRIES:
                break
            yield entry.name, entry.first & ((1 << ZFS_DIRENT_OBJ_BITS) - 1)

    def lookup(self, number: int, name: bytes) -> int | None:
        """The object called ``name`` in a directory. Large directories are fat ZAPs that a
        lookup must scan, so the last few directories' maps are kept: walking every file
        of a directory then costs one scan, not one per file."""
        entries = self._dir_maps.get(number)
        if entries is None:
            if self.znode(number).type is not NodeType.DIR:
                return None
            entries = {}
            for entry_name, child in self.entries(number):
                entries.setdefault(entry_name, child)
            if len(self._dir_maps) >= DIR_MAPS_KEPT:
                self._dir_maps.pop(next(iter(self._dir_maps)))
            self._dir_maps[number] = entries
        return entries.get(name)
