"""Volume discovery: which windows of the disk pygrub tries, and in which order.

The table readers (mbr, gpt, vtoc) only decode their format into ``Partition`` records;
the policy lives here, once for all of them:

- no 0x55AA signature at 510: the whole disk alone (a filesystem made on the whole disk);
- a FAT boot sector or a HybridISO ("CD001" at 0x8001): the whole disk first, then any
  partitions its table holds; an MBR partition starting at sector 0 (an isohybrid ISO's
  partition 1) is the whole disk under another name; without either it is skipped;
- a partition starting at or past the end of the disk is skipped; one ending past the end
  is clipped to the disk (a truncated image may still hold a readable filesystem, and
  every read through the window stays inside the disk);
- a partition overlapping one already accepted from the same table is skipped;
- MBR: active partitions first, then table order (what Xen's pygrub meant to do);
  GPT: entry order;
- nothing found: the whole disk, as Xen's pygrub does;
- then every volume found is looked at for an MD superblock and an LVM2 label: MD arrays
  one member can be read from (RAID1) and LVM logical volumes (also on those arrays) come
  after the plain volumes. A PV or an MD member is no filesystem and leaves the list,
  except an MD member whose array data starts at its byte 0 (RAID1 with metadata 0.90 or
  1.0): configs name it directly, as Xen's pygrub reads it.

Discovery never raises on a malformed table: it logs and skips.
"""

from __future__ import annotations

from .._typing import TYPE_CHECKING
from ..disk import ByteSource, SliceSource
from ..errors import PygrubError
from ..log import get_logger
from ..record import replace
from .volume import Partition, Volume, md_superblock_offsets, whole_disk

if TYPE_CHECKING:
    from .lvm import PhysicalVolume
    from .md import Member

log = get_logger(__name__)

#: Where an ISO 9660 primary volume descriptor's "CD001" sits (sector 16 of 2048, byte 1).
ISO9660_MAGIC_OFFSET = 0x8001
ISO9660_MAGIC = b"CD001"
#: LVM2's label id, at the start of one of a PV's first four 512-byte sectors.
LVM_LABEL_ID = b"LABELONE"
LVM_LABEL_SECTORS = 4
#: MD's superblock magic a92b4efc: little-endian (1.x, and 0.90 from x86) or big-endian.
MD_MAGICS = (b"\xfc\x4e\x2b\xa9", b"\xa9\x2b\x4e\xfc")


def discover_volumes(disk: ByteSource) -> list[Volume]:
    """Every volume on ``disk`` in the order pygrub tries them; never empty, never raises."""
    try:
        volumes = _volumes_from_tables(disk)
    except PygrubError as e:
        # The readers bound everything themselves; this is an I/O error on the image.
        log.warning("reading the partition tables failed (%s): trying the whole disk", e)
        volumes = []
    return _with_stacked_volumes(volumes or [whole_disk(disk)]) or [whole_disk(disk)]


def _volumes_from_tables(disk: ByteSource) -> list[Volume]:
    from . import mbr

    sector0 = disk.pread(0, mbr.SECTOR_SIZE)
    if not mbr.has_signature(sector0):
        log.debug("no MBR signature at 510: the whole disk is one volume")
        return [whole_disk(disk)]
    lead = _whole_disk_first(disk, sector0)
    table = mbr.parse_table(sector0)
    if table is None:
        return lead or [whole_disk(disk)]
    if table.protective:
        volumes = _gpt_volumes(disk)
        if volumes is not None:
            return lead + volumes
        log.warning("MBR at 0: protective entry (type 0xee) but no usable GPT: using the MBR")
    lead, partitions = _sector_zero_partitions(lead, mbr.read_partitions(disk, table))
    return lead + _mbr_volumes(disk, partitions)


def _whole_disk_first(disk: ByteSource, sector0: bytes) -> list[Volume]:
    """The whole disk as a leading volume when sector 0 is not only a partition table."""
    from . import mbr

    if disk.pread(ISO9660_MAGIC_OFFSET, len(ISO9660_MAGIC)) == ISO9660_MAGIC:
        return [Volume(disk, "hd0", "whole disk (HybridISO)")]
    if mbr.looks_like_fat_boot_sector(sector0):
        log.debug("sector 0 is a FAT boot sector, not only an MBR")
        return [Volume(disk, "hd0", "whole disk (FAT boot sector)")]
    return []


def _gpt_volumes(disk: ByteSource) -> list[Volume] | None:
    from . import gpt

    partitions = gpt.read_partitions(disk)
    if partitions is None:
        return None
    return [_volume(disk, p) for p in fit_to_disk(disk, partitions)]


def _sector_zero_partitions(
    lead: list[Volume], partitions: list[Partition]
) -> tuple[list[Volume], list[Partition]]:
    """The whole-disk lead and the partitions, less those that start at sector 0, over the MBR.

    An isohybrid ISO's MBR (xorriso -isohybrid-mbr) has one: it spans the ISO, which the
    whole disk already is, so its name joins the whole disk's names (GRUB and Linux
    both read it as the ISO). Where sector 0 is only a partition table, it is malformed.
    """
    rest = []
    for p in partitions:
        if p.start != 0:
            rest.append(p)
        elif lead:
            log.debug("%s: starts at sector 0: (%s) is the whole disk", p.origin, p.grub_name)
            lead = [replace(lead[0], aliases=(*lead[0].aliases, p.grub_name)), *lead[1:]]
        else:
            log.warning("%s: starts at sector 0: skipped", p.origin)
    return lead, rest


def _mbr_volumes(disk: ByteSource, partitions: list[Partition]) -> list[Volume]:
    from . import mbr

    volumes: list[Volume] = []
    for p in fit_to_disk(disk, partitions):
        slice_ = _solaris_root_slice(disk, p) if p.mbr_type in mbr.SOLARIS_TYPES else None
        if slice_ is not None:
            volumes.append(_volume(disk, slice_))
        volumes.append(_volume(disk, p))
    # Stable: active partitions first, each group in table order.
    return sorted(volumes, key=lambda v: not v.bootable)


def _solaris_root_slice(disk: ByteSource, part: Partition) -> Partition | None:
    from . import vtoc

    found = vtoc.root_slice(SliceSource(disk, part.start, part.length))
    if found is None:
        return None
    if found.start >= part.length:
        log.warning(
            "Solaris VTOC in %s: root slice %d starts past the partition's end: skipped",
            part.origin,
            found.index,
        )
        return None
    return Partition(
        start=part.start + found.start,
        length=min(found.length, part.length - found.start),
        grub_name=f"{part.grub_name},sunpc{found.index + 1}",
        origin=f"Solaris root slice {found.index} in {part.origin}",
        number=found.index + 1,
        bootable=part.bootable,
    )


def fit_to_disk(disk: ByteSource, partitions: list[Partition]) -> list[Partition]:
    """The partitions that start on the disk and overlap no earlier one, clipped to its end."""
    kept: list[Partition] = []
    for p in partitions:
        if p.length <= 0:
            log.warning("%s: empty (0 sectors): skipped", p.origin)
            continue
        if p.start >= disk.size:
            log.warning(
                "%s: starts at byte %d, past the end of the disk: skipped", p.origin, p.start
            )
            continue
        clash = next((k for k in kept if _overlap(p, k)), None)
        if clash is not None:
            log.warning("%s: overlaps %s: skipped", p.origin, clash.origin)
            continue
        kept.append(p)
    return [_clipped(disk, p) for p in kept]


def _clipped(disk: ByteSource, p: Partition) -> Partition:
    if p.start + p.length <= disk.size:
        return p
    log.warning("%s: ends past the end of the disk: clipped", p.origin)
    return replace(p, length=disk.size - p.start)


def _overlap(a: Partition, b: Partition) -> bool:
    return a.start < b.start + b.length and b.start < a.start + a.length


def _volume(disk: ByteSource, p: Partition) -> Volume:
    return Volume(
        SliceSource(disk, p.start, p.length),
        p.grub_name,
        p.origin,
        number=p.number,
        bootable=p.bootable,
        type_guid=p.type_guid,
        label=p.label,
    )


# ------------------------------------------------------------ MD arrays and LVM volumes


def _with_stacked_volumes(volumes: list[Volume]) -> list[Volume]:
    """``volumes`` less PVs and MD members, then the MD arrays and LVs found on them."""
    try:
        return _stacked_volumes(volumes)
    except PygrubError as e:
        # The readers log and skip what is malformed; this is an I/O error on the image.
        log.warning("looking for MD arrays and LVM volumes failed (%s): skipped", e)
        return volumes


def _stacked_volumes(volumes: list[Volume]) -> list[Volume]:
    plain, kept_members, arrays = _split_md_members(volumes)
    pvs: list[PhysicalVolume] = []
    not_filesystems: set[int] = set()
    # Arrays first: a PV on a RAID1 is read through its array, not a member of it.
    for volume in arrays + plain:
        if not _has_lvm_label(volume):
            continue
        pv = _physical_volume(volume)
        if pv is not None:
            not_filesystems.add(id(volume))
            if id(volume) not in kept_members:
                pvs.append(pv)
    stacked = [v for v in arrays if id(v) not in not_filesystems] + _logical_volumes(pvs)
    return [v for v in plain if id(v) not in not_filesystems] + _unique_names(plain, stacked)


def _split_md_members(volumes: list[Volume]) -> tuple[list[Volume], set[int], list[Volume]]:
    """(volumes that may hold a filesystem, ids of MD members among them, MD arrays)."""
    plain: list[Volume] = []
    kept: set[int] = set()
    members: list[Member] = []
    for volume in volumes:
        member = _md_member(volume) if _has_md_magic(volume) else None
        if member is None:
            plain.append(volume)
            continue
        members.append(member)
        if member.filesystem_at_start:
            plain.append(volume)
            kept.add(id(volume))
    if not members:
        return plain, kept, []
    from . import md

    return plain, kept, md.array_volumes(members)


def _has_md_magic(volume: Volume) -> bool:
    offsets = md_superblock_offsets(volume.source.size).values()
    return any(volume.source.pread(offset, 4) in MD_MAGICS for offset in offsets)


def _md_member(volume: Volume) -> Member | None:
    from . import md

    try:
        return md.read_member(volume)
    except PygrubError as e:
        log.warning("%s: %s: read as a plain volume", volume, e)
        return None


def _has_lvm_label(volume: Volume) -> bool:
    head = volume.source.pread(0, LVM_LABEL_SECTORS * 512)
    return any(
        head[i * 512 : i * 512 + len(LVM_LABEL_ID)] == LVM_LABEL_ID
        for i in range(LVM_LABEL_SECTORS)
    )


def _physical_volume(volume: Volume) -> PhysicalVolume | None:
    from . import lvm

    try:
        return lvm.read_physical_volume(volume)
    except PygrubError as e:
        log.warning("%s: LVM label: %s: read as a plain volume", volume, e)
        return None


def _logical_volumes(pvs: list[PhysicalVolume]) -> list[Volume]:
    if not pvs:
        return []
    from . import lvm

    return lvm.logical_volumes(pvs)


def _unique_names(taken: list[Volume], added: list[Volume]) -> list[Volume]:
    """``added`` with a name already used suffixed "_1", "_2"..., as GRUB's diskfilter does."""
    seen = {v.grub_name for v in taken}
    unique = []
    for volume in added:
        name, n = volume.grub_name, 0
        while name in seen:
            n += 1
            name = f"{volume.grub_name}_{n}"
        if name != volume.grub_name:
            log.warning("%s: name already in use: (%s)", volume, name)
            volume = replace(volume, grub_name=name)
        seen.add(name)
        unique.append(volume)
    return unique
