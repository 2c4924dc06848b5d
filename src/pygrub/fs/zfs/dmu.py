"""Object sets and dnodes (dnode.h, dmu_objset.h): the DMU's view of a pool.

An object set is a table of dnodes held in its meta dnode's data; a dnode describes
one object: a tree of block pointers (dn_nlevels levels of indirect blocks above the
data blocks), a bonus buffer, and with large dnodes extra 512-byte slots. Every tree
walk is bounded by the dnode's own geometry, and each indirect pointer must be one
level below its parent, so no pointer cycle can make a walk go round.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ...errors import CorruptError, NotFoundError
from ...limits import MAX_TREE_DEPTH
from ...record import record
from .blkptr import (
    BLKPTR_SIZE,
    MAX_BLOCK_SIZE,
    BlockPointer,
    BlockReader,
    blkptr_array,
    parse_blkptr,
)

DNODE_SHIFT = 9
DNODE_SIZE = 1 << DNODE_SHIFT
DNODE_CORE_SIZE = 64  # the fixed part before dn_blkptr
DN_MAX_NBLKPTR = 3
DNODE_FLAG_SPILL_BLKPTR = 4
#: Indirect blocks: 1 KiB to 128 KiB (DN_MIN_INDBLKSHIFT is 12 today; old pools used less).
MIN_INDBLKSHIFT = 10
MAX_INDBLKSHIFT = 17
BLKPTR_SHIFT = 7

# dnode_phys_t: dn_type, dn_indblkshift, dn_nlevels, dn_nblkptr, dn_bonustype, dn_checksum,
# dn_compress, dn_flags, dn_datablkszsec, dn_bonuslen, dn_extra_slots, (3 pad), dn_maxblkid,
# dn_used
_DNODE = {order: struct.Struct(order + "8BHHB3xQQ") for order in "<>"}

# objset_phys_t: os_meta_dnode (512 bytes), os_zil_header (192 bytes), os_type
OS_TYPE_OFFSET = 704
OBJSET_MIN_SIZE = 1024
DMU_OST_META = 1
DMU_OST_ZFS = 2

# dmu_object_type_t values this reader meets
DMU_OT_NONE = 0
DMU_OT_OBJECT_DIRECTORY = 1
DMU_OT_DNODE = 10
DMU_OT_OBJSET = 11
DMU_OT_DSL_DIR = 12
DMU_OT_DSL_DATASET = 16
DMU_OT_ZNODE = 17
DMU_OT_SA = 44


@record(frozen=True)
class Dnode:
    object: int
    order: str  # byte order of the block holding it
    type: int
    indblkshift: int
    nlevels: int
    nblkptr: int
    bonustype: int
    flags: int
    datablksz: int
    bonuslen: int
    slots: int
    maxblkid: int
    blkptrs: tuple[BlockPointer, ...]
    bonus: bytes
    spill: BlockPointer | None

    def describe(self) -> str:
        return f"object {self.object}"


def parse_dnode(buf: bytes, order: str, number: int) -> Dnode:
    """A dnode_phys_t (``buf`` holds its slots), checked against its own geometry."""
    what = f"zfs: dnode of object {number}"
    if len(buf) < DNODE_SIZE:
        raise CorruptError(f"{what}: {len(buf)} bytes")
    (
        dn_type,
        indblkshift,
        nlevels,
        nblkptr,
        bonustype,
        _checksum,
        _compress,
        flags,
        datablkszsec,
        bonuslen,
        extra_slots,
        maxblkid,
        _used,
    ) = _DNODE[order].unpack_from(buf)
    slots = 1 + extra_slots
    size = slots * DNODE_SIZE
    if size > len(buf):
        raise CorruptError(f"{what}: {slots} slots run past the dnode block")
    if not 1 <= nblkptr <= DN_MAX_NBLKPTR:
        raise CorruptError(f"{what}: dn_nblkptr {nblkptr}")
    if not 1 <= nlevels <= MAX_TREE_DEPTH:
        raise CorruptError(f"{what}: dn_nlevels {nlevels}")
    if nlevels > 1 and not MIN_INDBLKSHIFT <= indblkshift <= MAX_INDBLKSHIFT:
        raise CorruptError(f"{what}: dn_indblkshift {indblkshift}")
    datablksz = datablkszsec << 9
    if not 0 < datablksz <= MAX_BLOCK_SIZE:
        raise CorruptError(f"{what}: data block size {datablksz}")
    spill = None
    room = size - DNODE_CORE_SIZE - nblkptr * BLKPTR_SIZE
    if flags & DNODE_FLAG_SPILL_BLKPTR:
        room -= BLKPTR_SIZE
        spill = parse_blkptr(buf[size - BLKPTR_SIZE : size], order, f"spill pointer of {what}")
    if bonuslen > room:
        raise CorruptError(f"{what}: bonus of {bonuslen} bytes, room for {room}")
    blkptrs = tuple(blkptr_array(buf, order, nblkptr, DNODE_CORE_SIZE))
    bonus_start = DNODE_CORE_SIZE + nblkptr * BLKPTR_SIZE
    return Dnode(
        object=number,
        order=order,
        type=dn_type,
        indblkshift=indblkshift,
        nlevels=nlevels,
        nblkptr=nblkptr,
        bonustype=bonustype,
        flags=flags,
        datablksz=datablksz,
        bonuslen=bonuslen,
        slots=slots,
        maxblkid=maxblkid,
        blkptrs=blkptrs,
        bonus=buf[bonus_start : bonus_start + bonuslen],
        spill=spill,
    )


class ObjectSet:
    """One object set: the MOS or a dataset's. Objects are numbered dnodes."""

    def __init__(self, reader: BlockReader, bp: BlockPointer, what: str) -> None:
        self.reader = reader
        self.what = what
        if bp.is_hole:
            raise CorruptError(f"zfs: {what}: object set pointer is a hole")
        raw = reader.read(bp, f"object set of {what}")
        if len(raw) < OBJSET_MIN_SIZE:
            raise CorruptError(f"zfs: {what}: object set of {len(raw)} bytes")
        self.order = bp.order
        (self.type,) = struct.unpack_from(self.order + "Q", raw, OS_TYPE_OFFSET)
        self.meta = parse_dnode(raw[:DNODE_SIZE], self.order, 0)
        if self.meta.datablksz < DNODE_SIZE:
            raise CorruptError(f"zfs: {what}: meta dnode blocks of {self.meta.datablksz} bytes")
        self.per_block = self.meta.datablksz // DNODE_SIZE
        self._dnodes: dict[int, Dnode] = {}

    def dnode(self, number: int) -> Dnode:
        """The dnode of object ``number``; NotFoundError when the object is free."""
        cached = self._dnodes.get(number)
        if cached is not None:
            return cached
        blkid, slot = divmod(number, self.per_block)
        if number <= 0 or blkid > self.meta.maxblkid:
            raise NotFoundError(f"zfs: {self.what}: object {number} is out of range")
        bp = block_pointer(self.reader, self.meta, blkid)
        if bp is None:
            raise NotFoundError(f"zfs: {self.what}: object {number} is in a hole")
        block = self.reader.read(bp, f"dnode block {blkid} of {self.what}")
        start = slot * DNODE_SIZE
        head = block[start : start + DNODE_SIZE]
        if len(head) < DNODE_SIZE:
            raise CorruptError(f"zfs: {self.what}: dnode block {blkid} of {len(block)} bytes")
        extra = head[12]  # dn_extra_slots
        if slot + 1 + extra > self.per_block:
            raise CorruptError(
                f"zfs: {self.what}: object {number} spans {1 + extra} slots past its block"
            )
        dnode = parse_dnode(block[start : start + (1 + extra) * DNODE_SIZE], bp.order, number)
        if dnode.type == DMU_OT_NONE:
            raise NotFoundError(f"zfs: {self.what}: object {number} is free")
        if len(self._dnodes) > 4096:
            self._dnodes.clear()
        self._dnodes[number] = dnode
        return dnode

    def read_block(self, dnode: Dnode, blkid: int) -> bytes:
        """Data block ``blkid`` of an object: datablksz bytes, zeros for a hole."""
        bp = block_pointer(self.reader, dnode, blkid)
        if bp is None:
            return bytes(dnode.datablksz)
        return read_data(self.reader, dnode, bp, blkid, self.what)


def read_data(reader: BlockReader, dnode: Dnode, bp: BlockPointer, blkid: int, where: str) -> bytes:
    data = reader.read(bp, f"block {blkid} of object {dnode.object} in {where}")
    if len(data) != dnode.datablksz:
        raise CorruptError(
            f"zfs: block {blkid} of object {dnode.object} in {where}: {len(data)} bytes, "
            f"not the object's {dnode.datablksz}"
        )
    return data


def _epbs(dnode: Dnode) -> int:
    """log2 of the block pointers in one indirect block."""
    return dnode.indblkshift - BLKPTR_SHIFT


def _indirect(reader: BlockReader, dnode: Dnode, bp: BlockPointer, level: int) -> bytes:
    """The raw pointers of one indirect block at ``level`` (>= 1), checked for size."""
    what = f"indirect block (level {level}) of object {dnode.object}"
    if bp.level != level:
        raise CorruptError(f"zfs: {what}: the pointer says level {bp.level}")
    data = reader.read(bp, what)
    if len(data) != 1 << dnode.indblkshift:
        raise CorruptError(f"zfs: {what}: {len(data)} bytes, not {1 << dnode.indblkshift}")
    return data


def _child(data: bytes, order: str, index: int) -> BlockPointer:
    return parse_blkptr(data[index * BLKPTR_SIZE : (index + 1) * BLKPTR_SIZE], order)


def block_pointer(reader: BlockReader, dnode: Dnode, blkid: int) -> BlockPointer | None:
    """The level-0 pointer of block ``blkid``, or None for a hole or a block past the end."""
    if blkid < 0 or blkid > dnode.maxblkid:
        return None
    epbs = _epbs(dnode) if dnode.nlevels > 1 else 0
    top_shift = epbs * (dnode.nlevels - 1)
    index = blkid >> top_shift
    if index >= dnode.nblkptr:
        return None
    bp = dnode.blkptrs[index]
    for level in range(dnode.nlevels - 1, 0, -1):
        if bp.is_hole:
            return None
        data = _indirect(reader, dnode, bp, level)
        bp = _child(data, bp.order, (blkid >> (epbs * (level - 1))) & ((1 << epbs) - 1))
    return None if bp.is_hole else bp


def level0_blocks(reader: BlockReader, dnode: Dnode) -> Iterator[tuple[int, BlockPointer]]:
    """(blkid, pointer) of every data block that is not a hole, in order, up to maxblkid."""
    epbs = _epbs(dnode) if dnode.nlevels > 1 else 0
    span = 1 << (epbs * (dnode.nlevels - 1))
    for index, bp in enumerate(dnode.blkptrs):
        first = index * span
        if first > dnode.maxblkid:
            return
        yield from _subtree(reader, dnode, bp, dnode.nlevels - 1, first, epbs)


#: An all-zero block pointer: a hole from before hole_birth, skipped without parsing.
_ZERO_BLKPTR = bytes(BLKPTR_SIZE)


def _subtree(
    reader: BlockReader, dnode: Dnode, bp: BlockPointer, level: int, first: int, epbs: int
) -> Iterator[tuple[int, BlockPointer]]:
    if bp.is_hole or first > dnode.maxblkid:
        return
    if level == 0:
        yield first, bp
        return
    span = 1 << (epbs * (level - 1))
    data = _indirect(reader, dnode, bp, level)
    for index in range(len(data) // BLKPTR_SIZE):
        start = first + index * span
        if start > dnode.maxblkid:
            return
        if data[index * BLKPTR_SIZE : (index + 1) * BLKPTR_SIZE] == _ZERO_BLKPTR:
            continue
        yield from _subtree(reader, dnode, _child(data, bp.order, index), level - 1, start, epbs)


def check_objset_type(os: ObjectSet, want: int, what: str) -> None:
    if os.type != want:
        raise CorruptError(f"zfs: {what}: object set of type {os.type}, not {want}")
