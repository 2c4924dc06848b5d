"""Volume discovery: which windows of the disk pygrub tries, and in which order.

The table readers (mbr, gpt, vtoc) only decode their format into ``Partition`` records;
the policy lives here, once for all of them:

- no 0x55AA signature at 510: the whole disk alone (a filesystem made on the whole disk);
- a FAT boot sector or a HybridISO ("CD001" at 0x8001): the whole disk first, then any
  partitions its table holds;
- a partition starting at or past the end of the disk is skipped; one ending past the end
  is clipped to the disk (a truncated image may still hold a readable filesystem, and
  every read through the window stays inside the disk);
- a partition overlapping one already accepted from the same table is skipped;
- MBR: active partitions first, then table order (what Xen's pygrub meant to do);
  GPT: entry order;
- nothing found: the whole disk, as Xen's pygrub does.

Discovery never raises on a malformed table: it logs and skips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..disk import ByteSource, SliceSource
from ..errors import PygrubError
from . import Volume, whole_disk

if TYPE_CHECKING:
    from .mbr import MbrTable

log = logging.getLogger(__name__)

#: Where an ISO 9660 primary volume descriptor's "CD001" sits (sector 16 of 2048, byte 1).
ISO9660_MAGIC_OFFSET = 0x8001
ISO9660_MAGIC = b"CD001"


@dataclass
class Partition:
    """One entry a table reader decoded, in bytes on the disk, before the policy above."""

    start: int
    length: int
    grub_name: str
    origin: str
    number: int
    bootable: bool = False
    type_guid: str | None = None
    label: str | None = None
    #: The MBR type byte, for the Solaris VTOC check (None for GPT).
    mbr_type: int | None = None


def discover_volumes(disk: ByteSource) -> list[Volume]:
    """Every volume on ``disk`` in the order pygrub tries them; never empty, never raises."""
    try:
        volumes = _volumes_from_tables(disk)
    except PygrubError as e:
        # The readers bound everything themselves; this is an I/O error on the image.
        log.warning("reading the partition tables failed (%s): trying the whole disk", e)
        volumes = []
    return volumes or [whole_disk(disk)]


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
    return lead + _mbr_volumes(disk, table)


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


def _mbr_volumes(disk: ByteSource, table: MbrTable) -> list[Volume]:
    from . import mbr

    volumes: list[Volume] = []
    for p in fit_to_disk(disk, mbr.read_partitions(disk, table)):
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
