"""ZAP objects: the name-value maps behind directories and DSL bookkeeping (zap_impl.h,
zap_leaf.h).

A micro ZAP is one block of 64-byte entries (a 64-bit value and a 50-byte name). A fat
ZAP has a header block with a pointer table (in its second half, or in blocks of its
own) naming leaf blocks; a leaf holds a hash table and 24-byte chunks: entries, and
arrays of 21 bytes chained by index that hold names and values (values big-endian).
Entries are found by scanning the chunks: every chain is followed with a bound and a
visited set, and every leaf is read once however many table slots name it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ...errors import CorruptError, LimitError
from ...limits import MAX_DIR_ENTRIES
from ...record import record
from .dmu import Dnode, ObjectSet

ZBT_LEAF = (1 << 63) + 0
ZBT_HEADER = (1 << 63) + 1
ZBT_MICRO = (1 << 63) + 3
ZAP_MAGIC = 0x2F52AB2AB
ZAP_LEAF_MAGIC = 0x2AB1EAF
ZAP_FLAG_UINT64_KEY = 1 << 1

# mzap_phys_t: mz_block_type, mz_salt, mz_normflags, mz_pad[5]; then mzap_ent_phys_t
MZAP_HEADER_SIZE = 64
MZAP_ENT_SIZE = 64
# mzap_ent_phys_t: mze_value, mze_cd, mze_pad, mze_name[50]
_MZAP_ENT = {order: struct.Struct(order + "QIH50s") for order in "<>"}

# zap_phys_t: zap_block_type, zap_magic, zap_ptrtbl {zt_blk, zt_numblks, zt_shift,
# zt_nextblk, zt_blks_copied}, zap_freeblk, zap_num_leafs, zap_num_entries, zap_salt,
# zap_normflags, zap_flags
_ZAP_HEADER = {order: struct.Struct(order + "13Q") for order in "<>"}

# zap_leaf_phys_t header: lh_block_type, lh_pad1, lh_prefix, lh_magic, lh_nfree,
# lh_nentries, lh_prefix_len, lh_freelist, lh_flags, 11 bytes of pad
_LEAF_HEADER = {order: struct.Struct(order + "QQQIHHHHB11x") for order in "<>"}
LEAF_HEADER_SIZE = 48
CHUNK_SIZE = 24
ARRAY_BYTES = 21
CHAIN_END = 0xFFFF
ZAP_CHUNK_ENTRY = 252
ZAP_CHUNK_ARRAY = 251
# zap_leaf_entry: le_type, le_value_intlen, le_next, le_name_chunk, le_name_numints,
# le_value_chunk, le_value_numints, le_cd, le_hash
_LEAF_ENTRY = {order: struct.Struct(order + "BBHHHHHIQ") for order in "<>"}
# zap_leaf_array: la_type, la_array[21], la_next
_LEAF_ARRAY = {order: struct.Struct(order + "B21sH") for order in "<>"}

#: Pointer tables past this many entries are not believed (2^22 leaves of 128 KiB: 512 GiB).
MAX_PTRTBL_SHIFT = 22


@record(frozen=True)
class ZapEntry:
    name: bytes
    #: Bytes per integer of the value (1, 2, 4 or 8).
    intlen: int
    values: tuple[int, ...]

    @property
    def first(self) -> int:
        if not self.values:
            raise CorruptError(f"zfs: ZAP entry {self.name!r} has no value")
        return self.values[0]


class Zap:
    """The entries of one ZAP object."""

    def __init__(self, os: ObjectSet, dnode: Dnode, what: str) -> None:
        self.os = os
        self.dnode = dnode
        self.what = what
        self.block_size = dnode.datablksz
        self.shift = self.block_size.bit_length() - 1
        if self.block_size % 512 or not self.block_size:
            raise CorruptError(f"zfs: {what}: ZAP block size {self.block_size}")
        self.head = os.read_block(dnode, 0)
        (self.block_type,) = struct.unpack_from(dnode.order + "Q", self.head)
        if self.block_type not in (ZBT_MICRO, ZBT_HEADER):
            # Blocks are read in their own byte order; try the other for the type word.
            raise CorruptError(f"zfs: {what}: ZAP block type 0x{self.block_type:x}")
        # A micro ZAP grows 512 bytes at a time (OpenZFS 2.x: a 1536-byte SA registry);
        # a fat ZAP's leaves and pointer table need a power of two.
        if self.block_type == ZBT_HEADER and self.block_size != 1 << self.shift:
            raise CorruptError(f"zfs: {what}: fat ZAP block size {self.block_size}")

    def entries(self) -> Iterator[ZapEntry]:
        count = 0
        source = self._micro_entries() if self.block_type == ZBT_MICRO else self._fat_entries()
        for entry in source:
            count += 1
            if count > MAX_DIR_ENTRIES:
                raise LimitError(f"zfs: {self.what}: over {MAX_DIR_ENTRIES} ZAP entries")
            yield entry

    def lookup(self, name: bytes) -> ZapEntry | None:
        for entry in self.entries():
            if entry.name == name:
                return entry
        return None

    def lookup_int(self, name: bytes) -> int | None:
        entry = self.lookup(name)
        return None if entry is None else entry.first

    # -- micro ZAP ----------------------------------------------------------------------

    def _micro_entries(self) -> Iterator[ZapEntry]:
        ent = _MZAP_ENT[self.dnode.order]
        for pos in range(MZAP_HEADER_SIZE, len(self.head) - MZAP_ENT_SIZE + 1, MZAP_ENT_SIZE):
            value, _cd, _pad, raw_name = ent.unpack_from(self.head, pos)
            name = raw_name.split(b"\0", 1)[0]
            if name:
                yield ZapEntry(name, 8, (value,))

    # -- fat ZAP ------------------------------------------------------------------------

    def _fat_entries(self) -> Iterator[ZapEntry]:
        order = self.dnode.order
        (
            _type,
            magic,
            zt_blk,
            zt_numblks,
            zt_shift,
            _nextblk,
            _copied,
            _freeblk,
            _num_leafs,
            _num_entries,
            _salt,
            _normflags,
            flags,
        ) = _ZAP_HEADER[order].unpack_from(self.head)
        if magic != ZAP_MAGIC:
            raise CorruptError(f"zfs: {self.what}: fat ZAP magic 0x{magic:x}")
        uint64_key = bool(flags & ZAP_FLAG_UINT64_KEY)
        for blkid in self._leaf_ids(zt_blk, zt_numblks, zt_shift):
            yield from self._leaf_entries(blkid, uint64_key)

    def _leaf_ids(self, zt_blk: int, zt_numblks: int, zt_shift: int) -> Iterator[int]:
        """Each distinct leaf block the pointer table names, in table order."""
        seen: set[int] = set()
        for blkid in self._pointer_table(zt_blk, zt_numblks, zt_shift):
            if blkid in seen:
                continue
            if blkid == 0 or blkid > self.dnode.maxblkid:
                raise CorruptError(f"zfs: {self.what}: pointer table names block {blkid}")
            seen.add(blkid)
            yield blkid

    def _pointer_table(self, zt_blk: int, zt_numblks: int, zt_shift: int) -> Iterator[int]:
        order = self.dnode.order
        if zt_numblks == 0:
            # Embedded: the second half of the header block, 2^(shift-4) entries at most.
            if zt_shift > self.shift - 4:
                raise CorruptError(f"zfs: {self.what}: embedded pointer table of 2^{zt_shift}")
            half = self.block_size // 2
            yield from struct.unpack_from(f"{order}{1 << zt_shift}Q", self.head, half)
            return
        per_block = self.block_size // 8
        if zt_shift > MAX_PTRTBL_SHIFT or (1 << zt_shift) != zt_numblks * per_block:
            raise CorruptError(
                f"zfs: {self.what}: pointer table of 2^{zt_shift} entries in {zt_numblks} blocks"
            )
        if zt_blk == 0 or zt_blk + zt_numblks - 1 > self.dnode.maxblkid:
            raise CorruptError(f"zfs: {self.what}: pointer table at blocks {zt_blk}+{zt_numblks}")
        for index in range(zt_numblks):
            block = self.os.read_block(self.dnode, zt_blk + index)
            yield from struct.unpack(f"{order}{per_block}Q", block)

    def _leaf_entries(self, blkid: int, uint64_key: bool) -> Iterator[ZapEntry]:
        leaf = self.os.read_block(self.dnode, blkid)
        what = f"{self.what}: ZAP leaf block {blkid}"
        order = self.dnode.order
        block_type, _pad, _prefix, magic, *_rest = _LEAF_HEADER[order].unpack_from(leaf)
        if block_type != ZBT_LEAF or magic != ZAP_LEAF_MAGIC:
            raise CorruptError(
                f"zfs: {what}: not a leaf (type 0x{block_type:x}, magic 0x{magic:x})"
            )
        hash_entries = 1 << (self.shift - 5)
        chunks_start = LEAF_HEADER_SIZE + 2 * hash_entries
        numchunks = (self.block_size - 2 * hash_entries) // CHUNK_SIZE - 2
        entry_fmt = _LEAF_ENTRY[order]
        for chunk in range(numchunks):
            pos = chunks_start + chunk * CHUNK_SIZE
            if leaf[pos] != ZAP_CHUNK_ENTRY:
                continue
            (
                _type,
                intlen,
                _next,
                name_chunk,
                name_numints,
                value_chunk,
                value_numints,
                _cd,
                _hash,
            ) = entry_fmt.unpack_from(leaf, pos)
            if intlen not in (1, 2, 4, 8):
                raise CorruptError(f"zfs: {what}: entry chunk {chunk}: value intlen {intlen}")
            name_len = name_numints * (8 if uint64_key else 1)
            name = self._array(leaf, chunks_start, numchunks, name_chunk, name_len, what)
            if not uint64_key:
                if not name or name[-1] != 0:
                    raise CorruptError(f"zfs: {what}: entry chunk {chunk}: name not terminated")
                name = name[:-1]
            raw = self._array(
                leaf, chunks_start, numchunks, value_chunk, value_numints * intlen, what
            )
            values = struct.unpack(f">{value_numints}{_INT_CODES[intlen]}", raw)
            yield ZapEntry(name, intlen, values)

    def _array(
        self, leaf: bytes, start: int, numchunks: int, chunk: int, length: int, what: str
    ) -> bytes:
        """``length`` bytes from the array chain that starts at ``chunk``."""
        parts = []
        got = 0
        visited: set[int] = set()
        fmt = _LEAF_ARRAY[self.dnode.order]
        while got < length:
            if chunk == CHAIN_END or chunk >= numchunks:
                raise CorruptError(f"zfs: {what}: array chain breaks at chunk {chunk}")
            if chunk in visited:
                raise CorruptError(f"zfs: {what}: array chain loops at chunk {chunk}")
            visited.add(chunk)
            la_type, data, la_next = fmt.unpack_from(leaf, start + chunk * CHUNK_SIZE)
            if la_type != ZAP_CHUNK_ARRAY:
                raise CorruptError(f"zfs: {what}: chunk {chunk} of type {la_type} in an array")
            take = min(ARRAY_BYTES, length - got)
            parts.append(data[:take])
            got += take
            chunk = la_next
        return b"".join(parts)


_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def open_zap(os: ObjectSet, number: int, what: str) -> Zap:
    return Zap(os, os.dnode(number), what)
