"""FAT12, FAT16 and FAT32, read-only (Microsoft's FAT specification, fatgen103).

A node is a directory entry's first cluster, size and kind. Cluster chains are walked
lazily through a small cache of the active FAT, each step checked to stay inside the
volume's clusters and never to visit a cluster twice, so a hostile chain ends in a
CorruptError after at most one pass over the FAT.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .._typing import NamedTuple
from ..disk import ByteSource
from ..errors import CorruptError, UnsupportedError
from ..record import record
from .base import Extent, ExtentKind, Filesystem, NodeType, Stat
from .directory import ListingCache

# -- on-disk structures -----------------------------------------------------------------


class BootSector(NamedTuple):
    """The BPB common to FAT12/16/32: bytes 0..35 of sector 0."""

    jump: bytes  # BS_jmpBoot
    oem_name: bytes  # BS_OEMName
    bytes_per_sector: int  # BPB_BytsPerSec
    sectors_per_cluster: int  # BPB_SecPerClus
    reserved_sectors: int  # BPB_RsvdSecCnt
    num_fats: int  # BPB_NumFATs
    root_entries: int  # BPB_RootEntCnt
    total_sectors_16: int  # BPB_TotSec16
    media: int  # BPB_Media
    fat_size_16: int  # BPB_FATSz16
    sectors_per_track: int  # BPB_SecPerTrk
    num_heads: int  # BPB_NumHeads
    hidden_sectors: int  # BPB_HiddSec
    total_sectors_32: int  # BPB_TotSec32


_BOOT_SECTOR = struct.Struct("<3s8sHBHBHHBHHHII")


class Fat32Bpb(NamedTuple):
    """The FAT32 part of the BPB, at byte 36."""

    fat_size_32: int  # BPB_FATSz32
    ext_flags: int  # BPB_ExtFlags
    fs_version: int  # BPB_FSVer
    root_cluster: int  # BPB_RootClus


_FAT32_BPB = struct.Struct("<IHHI")
_FAT32_BPB_OFFSET = 36


class VolumeId(NamedTuple):
    """BS_BootSig, BS_VolID, BS_VolLab: at 38 on FAT12/16, at 66 on FAT32."""

    boot_signature: int  # BS_BootSig
    serial: int  # BS_VolID
    label: bytes  # BS_VolLab


_VOLUME_ID = struct.Struct("<BI11s")
_VOLUME_ID_OFFSET_FAT16 = 38
_VOLUME_ID_OFFSET_FAT32 = 66
#: BS_BootSig values: 0x29 when BS_VolID and BS_VolLab follow, 0x28 (older) with BS_VolID only.
_BOOT_SIGNATURE_WITH_LABEL = 0x29
_BOOT_SIGNATURE_SERIAL_ONLY = 0x28


class DirEntry(NamedTuple):
    """A 32-byte short (8.3) directory entry."""

    name: bytes  # DIR_Name: 8 bytes of base, 3 of extension, space padded
    attr: int  # DIR_Attr
    nt_flags: int  # DIR_NTRes: Windows NT's lower-case flags
    first_cluster_hi: int  # DIR_FstClusHI (FAT32 only)
    first_cluster_lo: int  # DIR_FstClusLO
    size: int  # DIR_FileSize


# DIR_Name, DIR_Attr, DIR_NTRes, skip times and dates, DIR_FstClusHI, skip, DIR_FstClusLO, DIR_FileSize
_DIR_ENTRY = struct.Struct("<11sBB7xH4xHI")


class LongNameEntry(NamedTuple):
    """A 32-byte VFAT long-name entry; its 13 UTF-16LE units are in three pieces."""

    order: int  # LDIR_Ord
    name1: bytes  # LDIR_Name1: units 1..5
    attr: int  # LDIR_Attr: always ATTR_LONG_NAME
    checksum: int  # LDIR_Chksum: of the 8.3 name it belongs to
    name2: bytes  # LDIR_Name2: units 6..11
    name3: bytes  # LDIR_Name3: units 12..13


# LDIR_Ord, LDIR_Name1, LDIR_Attr, skip LDIR_Type, LDIR_Chksum, LDIR_Name2, skip LDIR_FstClusLO, LDIR_Name3
_LONG_NAME_ENTRY = struct.Struct("<B10sBxB12s2x4s")

ENTRY_SIZE = 32
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LONG_NAME = 0x0F  # read-only | hidden | system | volume id
ATTR_LONG_NAME_MASK = 0x3F
#: Bits no valid entry sets; GRUB skips entries that have them.
ATTR_INVALID = 0xC0
NT_LOWER_BASE = 0x08
NT_LOWER_EXT = 0x10
LAST_LONG_ENTRY = 0x40
#: 255 characters at 13 per entry.
MAX_LONG_ENTRIES = 20
DELETED = 0xE5
#: A first name byte of 0x05 stands for a real 0xE5 (a KANJI lead byte).
KANJI_E5 = 0x05

#: The spec's cluster-count boundaries between FAT12, FAT16 and FAT32.
MAX_FAT12_CLUSTERS = 4084
MAX_FAT16_CLUSTERS = 65524
#: FAT32 entries are 28 bits; the top four are reserved.
FAT32_MASK = 0x0FFFFFFF
#: A directory holds at most 65536 entries (the spec; Linux enforces the same 2 MiB).
MAX_DIR_BYTES = 65536 * ENTRY_SIZE
#: FAT bytes read at a time, and how many such pieces are kept.
FAT_CHUNK = 64 << 10
FAT_CACHE_CHUNKS = 64
#: Runs of a chain remembered as runs while they climb; past this, cluster by cluster.
CLIMBING_RUNS_MAX = 1024
#: Past this many clusters a file's visited set becomes a bitmap of the whole volume.
VISITED_SET_MAX = 1 << 16
#: FAT entries compared at once when following a stretch of consecutive clusters.
STRETCH_BLOCK = 4096

# -- geometry ----------------------------------------------------------------------------


@record(frozen=True)
class Geometry:
    """Where everything is, in volume byte offsets, derived once from a checked BPB."""

    bits: int  # 12, 16 or 32
    cluster_size: int
    cluster_count: int  # data clusters, numbered 2 .. cluster_count + 1
    fat_offset: int  # the FAT this reader follows
    fat_bytes: int
    root_offset: int  # FAT12/16: the fixed root directory region
    root_bytes: int
    root_cluster: int  # FAT32: the root directory's first cluster
    data_offset: int  # cluster 2
    media: int  # BPB_Media, which FAT[0] repeats
    serial: int | None
    bpb_label: bytes | None

    @property
    def bad_cluster(self) -> int:
        return {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}[self.bits]

    def cluster_offset(self, cluster: int) -> int:
        return self.data_offset + (cluster - 2) * self.cluster_size

    def valid_cluster(self, cluster: int) -> bool:
        return 2 <= cluster < self.cluster_count + 2


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def looks_like_fat(bs: BootSector) -> bool:
    """Whether sector 0 holds a BPB at all; anything else may share the 0x55AA signature."""
    return (
        bs.bytes_per_sector in (512, 1024, 2048, 4096)
        and _is_power_of_two(bs.sectors_per_cluster)
        and bs.reserved_sectors >= 1
        and bs.num_fats >= 1
        and (bs.media == 0xF0 or bs.media >= 0xF8)
        and (bs.total_sectors_16 or bs.total_sectors_32) != 0
    )


def geometry_from_sector(sector: bytes, volume_size: int) -> Geometry | None:
    """The volume's layout from sector 0, None when it is no FAT boot sector."""
    if len(sector) < 512 or sector[510:512] != b"\x55\xaa":
        return None
    bs = BootSector._make(_BOOT_SECTOR.unpack_from(sector))
    if not looks_like_fat(bs):
        return None
    fat32 = Fat32Bpb._make(_FAT32_BPB.unpack_from(sector, _FAT32_BPB_OFFSET))
    # Like GRUB and Linux, a zero BPB_FATSz16 means the FAT32 layout of the BPB; the
    # spec's cluster count then only has to agree that this is not FAT12/16.
    fat32_layout = bs.fat_size_16 == 0
    fat_sectors = fat32.fat_size_32 if fat32_layout else bs.fat_size_16
    if fat_sectors == 0:
        return None
    sector_size = bs.bytes_per_sector
    total_sectors = bs.total_sectors_16 or bs.total_sectors_32
    if total_sectors * sector_size > volume_size:
        raise CorruptError(
            f"fat: boot sector at 0 claims {total_sectors} sectors of {sector_size} bytes, "
            f"more than the {volume_size}-byte volume"
        )
    root_sectors = -(-bs.root_entries * ENTRY_SIZE // sector_size)
    data_sector = bs.reserved_sectors + bs.num_fats * fat_sectors + root_sectors
    if data_sector >= total_sectors:
        raise CorruptError(
            f"fat: boot sector at 0: reserved, FAT and root sectors ({data_sector}) "
            f"fill the {total_sectors}-sector volume"
        )
    cluster_count = (total_sectors - data_sector) // bs.sectors_per_cluster
    if cluster_count < 1:
        raise CorruptError("fat: boot sector at 0: the data region holds no cluster")
    bits = _fat_bits(fat32_layout, cluster_count)
    if fat_sectors * sector_size * 8 // bits < cluster_count + 2:
        raise CorruptError(
            f"fat: boot sector at 0: a FAT of {fat_sectors} sectors cannot map "
            f"{cluster_count} clusters"
        )
    fat_index = _active_fat(bs, fat32, fat32_layout)
    id_offset = _VOLUME_ID_OFFSET_FAT32 if fat32_layout else _VOLUME_ID_OFFSET_FAT16
    vol = VolumeId._make(_VOLUME_ID.unpack_from(sector, id_offset))
    has_label = vol.boot_signature == _BOOT_SIGNATURE_WITH_LABEL
    has_serial = has_label or vol.boot_signature == _BOOT_SIGNATURE_SERIAL_ONLY
    geo = Geometry(
        bits=bits,
        cluster_size=bs.sectors_per_cluster * sector_size,
        cluster_count=cluster_count,
        fat_offset=(bs.reserved_sectors + fat_index * fat_sectors) * sector_size,
        fat_bytes=fat_sectors * sector_size,
        root_offset=(bs.reserved_sectors + bs.num_fats * fat_sectors) * sector_size,
        root_bytes=bs.root_entries * ENTRY_SIZE,
        root_cluster=fat32.root_cluster if fat32_layout else 0,
        data_offset=data_sector * sector_size,
        media=bs.media,
        serial=vol.serial if has_serial else None,
        bpb_label=vol.label if has_label else None,
    )
    _check_root(geo, bs, fat32, fat32_layout)
    return geo


def _fat_bits(fat32_layout: bool, cluster_count: int) -> int:
    if fat32_layout:
        return 32
    if cluster_count <= MAX_FAT12_CLUSTERS:
        return 12
    if cluster_count <= MAX_FAT16_CLUSTERS:
        return 16
    raise CorruptError(
        f"fat: boot sector at 0: {cluster_count} clusters are too many for the "
        "FAT12/16 layout of its BPB"
    )


def _active_fat(bs: BootSector, fat32: Fat32Bpb, fat32_layout: bool) -> int:
    """Which FAT copy to follow: the first, unless FAT32 turned mirroring off."""
    if not fat32_layout or not fat32.ext_flags & 0x80:
        return 0
    active = fat32.ext_flags & 0x0F
    if active >= bs.num_fats:
        raise CorruptError(
            f"fat: boot sector at 0: active FAT {active} of only {bs.num_fats} (BPB_ExtFlags)"
        )
    return active


def _check_root(geo: Geometry, bs: BootSector, fat32: Fat32Bpb, fat32_layout: bool) -> None:
    if fat32_layout:
        if fat32.fs_version != 0:
            raise UnsupportedError(f"fat: FAT32 version {fat32.fs_version:#06x} (BPB_FSVer)")
        if bs.root_entries != 0:
            raise CorruptError("fat: boot sector at 0: FAT32 with a fixed root directory")
        if not geo.valid_cluster(geo.root_cluster):
            raise CorruptError(
                f"fat: boot sector at 0: root cluster {geo.root_cluster} is not a data cluster"
            )
    elif bs.root_entries == 0:
        raise CorruptError("fat: boot sector at 0: FAT12/16 without root directory entries")


# -- nodes and names ---------------------------------------------------------------------


@record(frozen=True)
class FatNode:
    """What a directory entry says: first cluster (0: none), size, directory or not."""

    first_cluster: int
    size: int
    is_dir: bool
    #: Volume offset of the directory entry, for messages; -1 for the root.
    entry: int = -1
    #: The FAT12/16 root directory, which is a fixed region rather than a chain.
    fixed_root: bool = False


@record(frozen=True)
class _Listed:
    long_name: str | None
    short_name: str
    node: FatNode


def _names(item: _Listed) -> tuple[str, ...]:
    """What a lookup finds an entry by: its long name and its 8.3 alias, without case."""
    short = item.short_name.casefold()
    return (short,) if item.long_name is None else (item.long_name.casefold(), short)


def lfn_checksum(short_name: bytes) -> int:
    """The checksum of an 8.3 name that its long-name entries carry (the spec's ChkSum)."""
    total = 0
    for byte in short_name:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def short_name_text(raw: bytes, nt_flags: int) -> str:
    """The 8.3 name as Linux shows it: trailing spaces gone, NT lower-case flags applied."""
    if raw[0] == KANJI_E5:
        raw = bytes([DELETED]) + raw[1:]
    base = raw[:8].decode("cp437").rstrip(" ")
    ext = raw[8:11].decode("cp437").rstrip(" ")
    if nt_flags & NT_LOWER_BASE:
        base = base.lower()
    if nt_flags & NT_LOWER_EXT:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


def long_name_text(pieces: list[bytes]) -> str:
    """The long name from its entries' UTF-16LE units, up to the first NUL unit."""
    units = b"".join(pieces)
    for i in range(0, len(units), 2):
        if units[i : i + 2] == b"\0\0":
            units = units[:i]
            break
    return units.decode("utf-16-le", "surrogatepass")


def _usable_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


class _LongNameRun:
    """The long-name entries seen so far before an 8.3 entry, with their checks."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.expected = 0
        self.checksum = -1

    def reset(self) -> None:
        self.pieces = []
        self.expected = 0
        self.checksum = -1

    def add(self, entry: LongNameEntry) -> None:
        if entry.order & LAST_LONG_ENTRY:
            count = entry.order & ~LAST_LONG_ENTRY
            if not 1 <= count <= MAX_LONG_ENTRIES:
                self.reset()
                return
            self.pieces = [b""] * count
            self.expected = count
            self.checksum = entry.checksum
        elif self.expected == 0 or entry.order != self.expected or entry.checksum != self.checksum:
            # An orphan: part of a run that was deleted or overwritten.
            self.reset()
            return
        self.pieces[self.expected - 1] = entry.name1 + entry.name2 + entry.name3
        self.expected -= 1

    def name_for(self, short_raw: bytes) -> str | None:
        """The long name if a complete run belongs to this 8.3 entry, else None."""
        if not self.pieces or self.expected != 0 or self.checksum != lfn_checksum(short_raw):
            return None
        name = long_name_text(self.pieces)
        return name if _usable_name(name) else None


# -- the filesystem ----------------------------------------------------------------------


class _VisitedClusters:
    """Clusters a chain has passed. While its runs only climb (a file written in one go)
    the runs themselves are kept, as no climbing run can meet an earlier one; after that
    a set, and past VISITED_SET_MAX clusters a bitmap of the volume."""

    def __init__(self, cluster_count: int) -> None:
        self._limit = cluster_count + 2
        self._climbing: list[tuple[int, int]] | None = []
        self._set: set[int] | None = set()
        self._bits = bytearray()

    def add_run(self, start: int, count: int) -> bool:
        """Record clusters ``start`` .. ``start + count - 1``; False when one was there."""
        climbing = self._climbing
        if climbing is not None:
            last_start, last_count = climbing[-1] if climbing else (0, 0)
            if start >= last_start + last_count and len(climbing) < CLIMBING_RUNS_MAX:
                climbing.append((start, count))
                return True
            self._climbing = None
            for earlier in climbing:  # disjoint: they climbed
                self._mark(*earlier)
        return self._mark(start, count)

    def _mark(self, start: int, count: int) -> bool:
        run = range(start, start + count)
        if self._set is not None:
            if not self._set.isdisjoint(run):
                return False
            if len(self._set) + count <= VISITED_SET_MAX:
                self._set.update(run)
                return True
            self._bits = bytearray((self._limit + 7) // 8)
            for seen in self._set:
                self._bits[seen >> 3] |= 1 << (seen & 7)
            self._set = None
        # Whole bytes in the middle are tested and set at once: long runs are the rule.
        first_byte, end_byte = -(-start // 8), (start + count) // 8
        if first_byte >= end_byte:
            return self._add_bits(run)
        edges = [*range(start, first_byte * 8), *range(end_byte * 8, start + count)]
        middle = self._bits[first_byte:end_byte]
        if middle.count(0) != len(middle) or not self._add_bits(edges):
            return False
        self._bits[first_byte:end_byte] = b"\xff" * len(middle)
        return True

    def _add_bits(self, clusters: range | list[int]) -> bool:
        for cluster in clusters:
            mask = 1 << (cluster & 7)
            if self._bits[cluster >> 3] & mask:
                return False
            self._bits[cluster >> 3] |= mask
        return True


class FatFilesystem(Filesystem[FatNode]):
    kind = "fat"
    case_insensitive = True

    def __init__(self, source: ByteSource, geo: Geometry) -> None:
        super().__init__(source)
        self.geo = geo
        self._fat_cache: dict[int, bytes] = {}
        self._listings: ListingCache[tuple[int, bool], _Listed] = ListingCache()
        self.uuid = (
            f"{geo.serial >> 16:04X}-{geo.serial & 0xFFFF:04X}" if geo.serial is not None else None
        )
        self.label = self._root_label() or _bpb_label_text(geo.bpb_label)

    # -- reading --------------------------------------------------------------------------

    def _read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or offset + length > self.source.size:
            raise CorruptError(
                f"fat: {what} at {offset} ({length} bytes) is outside the {self.source.size}-byte volume"
            )
        data = self.source.pread(offset, length)
        if len(data) != length:
            raise CorruptError(f"fat: short read of {what} at {offset}")
        return data

    def _fat_bytes(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` inside the active FAT, through the chunk cache."""
        out = b""
        while length > 0:
            if offset >= self.geo.fat_bytes:
                raise CorruptError(f"fat: FAT entry at byte {offset} is past the end of the FAT")
            index, skip = divmod(offset, FAT_CHUNK)
            chunk = self._fat_cache.get(index)
            if chunk is None:
                start = index * FAT_CHUNK
                size = min(FAT_CHUNK, self.geo.fat_bytes - start)
                chunk = self._read(self.geo.fat_offset + start, size, "FAT")
                if len(self._fat_cache) >= FAT_CACHE_CHUNKS:
                    del self._fat_cache[next(iter(self._fat_cache))]
                self._fat_cache[index] = chunk
            piece = chunk[skip : skip + length]
            out += piece
            offset += len(piece)
            length -= len(piece)
        return out

    def fat_entry(self, cluster: int) -> int:
        """The FAT's value for ``cluster`` (the next cluster, EOC, free or bad)."""
        bits = self.geo.bits
        if bits == 12:
            value = int.from_bytes(self._fat_bytes(cluster + cluster // 2, 2), "little")
            return value >> 4 if cluster & 1 else value & 0xFFF
        if bits == 16:
            return int.from_bytes(self._fat_bytes(cluster * 2, 2), "little")
        return int.from_bytes(self._fat_bytes(cluster * 4, 4), "little") & FAT32_MASK

    def runs(self, first: int, max_clusters: int, what: str) -> Iterator[tuple[int, int]]:
        """(first cluster, count) of each stretch of consecutive clusters of the chain from
        ``first``, at most ``max_clusters`` clusters in all.

        Stops at end-of-chain. Free, reserved, bad or out-of-range links and a cluster
        met twice (a loop) are CorruptErrors naming ``what``.
        """
        geo = self.geo
        visited = _VisitedClusters(geo.cluster_count)
        cluster, left = first, max_clusters
        while left > 0:
            if not geo.valid_cluster(cluster):
                raise CorruptError(
                    f"fat: {what}: cluster {cluster} is not one of the volume's "
                    f"{geo.cluster_count} data clusters"
                )
            count = self._stretch(cluster, min(left, geo.cluster_count + 2 - cluster))
            if not visited.add_run(cluster, count):
                raise CorruptError(f"fat: {what}: cluster chain loops back into {cluster}..")
            yield cluster, count
            left -= count
            last = cluster + count - 1
            following = self.fat_entry(last)
            if following > geo.bad_cluster:
                return  # end of chain
            if following == geo.bad_cluster:
                raise CorruptError(f"fat: {what}: chain runs into bad cluster after {last}")
            if following < 2:
                raise CorruptError(
                    f"fat: {what}: cluster {last} links to {'a free' if following == 0 else 'a reserved'} cluster"
                )
            cluster = following

    def _stretch(self, first: int, most: int) -> int:
        """How many clusters from ``first`` (at most ``most``) each link to the next one.

        FAT16 and FAT32 entries are compared with the expected links a block at a time:
        a file written in one go is one long stretch, and this is what makes it quick.
        """
        width = self.geo.bits // 8  # 0 for FAT12: entry by entry
        in_fat = self.geo.fat_bytes // width if width else 0
        count = 1
        while count < most:
            cluster = first + count - 1  # its entry should say cluster + 1
            block = min(STRETCH_BLOCK, most - count, in_fat - cluster)
            if block > 1:
                links = range(cluster + 1, cluster + 1 + block)
                expected = struct.pack(f"<{block}{'H' if width == 2 else 'I'}", *links)
                if self._fat_bytes(cluster * width, block * width) == expected:
                    count += block
                    continue
            for _ in range(max(block, 1)):
                if self.fat_entry(cluster) != cluster + 1:
                    return count
                count += 1
                cluster += 1
        return count

    # -- directories ------------------------------------------------------------------------

    def _dir_chunks(self, node: FatNode) -> Iterator[tuple[int, bytes]]:
        """(volume offset, bytes) pieces of a directory, in order."""
        geo = self.geo
        if node.fixed_root:
            for start in range(0, geo.root_bytes, FAT_CHUNK):
                size = min(FAT_CHUNK, geo.root_bytes - start)
                yield (
                    geo.root_offset + start,
                    self._read(geo.root_offset + start, size, "root directory"),
                )
            return
        what = f"directory (entry at {node.entry})" if node.entry >= 0 else "root directory"
        max_clusters = -(-MAX_DIR_BYTES // geo.cluster_size)
        clusters = 0
        for start, count in self.runs(node.first_cluster, max_clusters + 1, what):
            clusters += count
            if clusters > max_clusters:
                raise CorruptError(
                    f"fat: {what} is longer than the {MAX_DIR_BYTES} bytes FAT allows"
                )
            for cluster in range(start, start + count):
                offset = geo.cluster_offset(cluster)
                yield offset, self._read(offset, geo.cluster_size, what)

    def _raw_entries(self, node: FatNode) -> Iterator[tuple[int, bytes]]:
        """(volume offset, 32 bytes) of every slot up to the end marker."""
        for base, chunk in self._dir_chunks(node):
            for pos in range(0, len(chunk) - ENTRY_SIZE + 1, ENTRY_SIZE):
                raw = chunk[pos : pos + ENTRY_SIZE]
                if raw[0] == 0:
                    return
                yield base + pos, raw

    def _listing(self, node: FatNode) -> Iterator[_Listed]:
        """The directory's entries; a listing read to its end is kept for later lookups."""
        key = (node.first_cluster, node.fixed_root)
        return self._listings.listing(key, lambda: self._scan(node))

    def _scan(self, node: FatNode) -> Iterator[_Listed]:
        run = _LongNameRun()
        for where, raw in self._raw_entries(node):
            if raw[0] == DELETED:
                run.reset()
                continue
            if raw[11] & ATTR_LONG_NAME_MASK == ATTR_LONG_NAME:
                run.add(LongNameEntry._make(_LONG_NAME_ENTRY.unpack(raw)))
                continue
            entry = DirEntry._make(_DIR_ENTRY.unpack(raw))
            long_name = run.name_for(entry.name)
            run.reset()
            if entry.attr & (ATTR_VOLUME_ID | ATTR_INVALID) or entry.name[0] == ord("."):
                continue  # labels, invalid entries, "." and ".."
            short = short_name_text(entry.name, entry.nt_flags)
            if not _usable_name(short):
                continue
            yield _Listed(long_name, short, self._child(entry, where))

    def _child(self, entry: DirEntry, where: int) -> FatNode:
        first = entry.first_cluster_lo
        if self.geo.bits == 32:
            first |= entry.first_cluster_hi << 16
        if entry.attr & ATTR_DIRECTORY:
            if first == 0:
                return self.root()  # as GRUB: a directory at cluster 0 is the root
            return FatNode(first, 0, True, where)
        return FatNode(first, entry.size, False, where)

    def _root_label(self) -> str | None:
        """The label entry in the root directory, as GRUB and blkid prefer it."""
        for _where, raw in self._raw_entries(self.root()):
            if raw[0] == DELETED:
                continue
            attr = raw[11]
            if attr & ~ATTR_ARCHIVE == ATTR_VOLUME_ID:
                return _label_text(raw[:11])
        return None

    # -- the Filesystem primitives ------------------------------------------------------------

    def root(self) -> FatNode:
        if self.geo.bits == 32:
            return FatNode(self.geo.root_cluster, 0, True)
        return FatNode(0, 0, True, fixed_root=True)

    def node_stat(self, node: FatNode) -> Stat:
        if node.is_dir:
            return Stat(NodeType.DIR, 0)
        return Stat(NodeType.FILE, node.size)

    def dir_entries(self, node: FatNode) -> Iterator[tuple[str, FatNode]]:
        for item in self._listing(node):
            yield item.long_name or item.short_name, item.node

    def lookup(self, node: FatNode, name: str) -> FatNode | None:
        # Linux and UEFI firmware also find a file by its 8.3 alias.
        key = (node.first_cluster, node.fixed_root)
        found = self._listings.find(key, lambda: self._scan(node), name.casefold(), _names)
        return None if found is None else found.node

    def readlink(self, node: FatNode) -> bytes:
        raise CorruptError("fat: FAT has no symlinks")

    def node_extents(self, node: FatNode) -> Iterator[Extent]:
        if node.size == 0:
            return
        what = f"file (entry at {node.entry})"
        geo = self.geo
        needed = -(-node.size // geo.cluster_size)
        if needed > geo.cluster_count:
            raise CorruptError(
                f"fat: {what}: {node.size} bytes need more clusters than the volume has"
            )
        if node.first_cluster == 0:
            raise CorruptError(f"fat: {what}: {node.size} bytes but no first cluster")
        file_offset = 0
        for start, count in self.runs(node.first_cluster, needed, what):
            length = count * geo.cluster_size
            yield Extent(file_offset, length, ExtentKind.DATA, geo.cluster_offset(start))
            file_offset += length
        if file_offset < node.size:
            raise CorruptError(
                f"fat: {what}: cluster chain ends after {file_offset} of {node.size} bytes"
            )


def _label_text(raw: bytes) -> str | None:
    text = raw.decode("cp437").rstrip(" ")
    return text or None


def _bpb_label_text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    text = _label_text(raw)
    # mkfs.fat and Windows write "NO NAME" when there is no label.
    return None if text == "NO NAME" else text


def _first_fat_entry_matches(source: ByteSource, geo: Geometry) -> bool:
    """FAT[0] repeats the media byte; GRUB checks it (ignoring bit 3) to reject non-FATs."""
    if geo.fat_offset + 4 > source.size:
        return False
    head = source.pread(geo.fat_offset, 4)
    value = int.from_bytes(head, "little")
    mask = {12: 0xFFF, 16: 0xFFFF, 32: FAT32_MASK}[geo.bits]
    magic = {12: 0x0F00, 16: 0xFF00, 32: 0x0FFFFF00}[geo.bits]
    return (value & mask) | 0x8 == magic | geo.media | 0x8


def open_filesystem(source: ByteSource) -> FatFilesystem | None:
    if source.size < 512:
        return None
    sector = source.pread(0, 512)
    geo = geometry_from_sector(sector, source.size)
    if geo is None:
        return None
    if not _first_fat_entry_matches(source, geo):
        return None
    return FatFilesystem(source, geo)
