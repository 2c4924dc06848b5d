"""MBR ("msdos") partition tables: four primary entries and the extended-partition chain.

One 512-byte sector: boot code, four 16-byte entries at 446, the signature 55 AA at 510.
An extended partition (type 0x05, 0x0f or 0x85) holds a chain of EBRs, each shaped like an
MBR: its data entries start relative to that EBR, its link entry relative to the extended
partition's start. Logical partitions are numbered from 5, one number for every non-empty,
non-extended entry met along the chain, as GRUB's msdos partmap numbers them. Sectors are
512 bytes, as Xen's pygrub and GRUB assume for MBR on an image file.
"""

from __future__ import annotations

import struct

from ..disk import ByteSource
from ..limits import MAX_LOGICAL_PARTITIONS
from ..log import get_logger
from ..record import record
from .volume import Partition

log = get_logger(__name__)

SECTOR_SIZE = 512
SIGNATURE = b"\x55\xaa"
SIGNATURE_OFFSET = 510
ENTRIES_OFFSET = 446
ENTRY_COUNT = 4

# Partition entry: status (0x80 active), CHS of first sector, type, CHS of last sector,
# LBA of first sector, number of sectors.
_ENTRY = struct.Struct("<B3sB3sII")

ACTIVE = 0x80
EMPTY = 0x00
EXTENDED_TYPES = frozenset({0x05, 0x0F, 0x85})
GPT_PROTECTIVE = 0xEE
#: Solaris x86 (0xbf) and old Solaris (0x82, now also Linux swap): may hold a VTOC.
SOLARIS_TYPES = frozenset({0xBF, 0x82})

# FAT boot sector (Microsoft FAT specification): jump, BS_OEMName, BPB_BytsPerSec,
# BPB_SecPerClus, BPB_RsvdSecCnt, BPB_NumFATs, BPB_RootEntCnt, BPB_TotSec16, BPB_Media.
_FAT_BPB = struct.Struct("<3s8sHBHBHHB")
#: BS_FilSysType: at 54 on FAT12/16, at 82 on FAT32 ("FAT12   ", "FAT16   ", "FAT32   ").
_FAT_TYPE_OFFSETS = (54, 82)


@record(frozen=True)
class MbrEntry:
    """One 16-byte partition entry; ``slot`` is its index (0-3) in its sector."""

    slot: int
    status: int
    type: int
    lba: int
    sectors: int


@record(frozen=True)
class MbrTable:
    """The four primary entries of sector 0."""

    entries: tuple[MbrEntry, ...]

    @property
    def protective(self) -> bool:
        """Whether an entry is GPT's protective partition: the real table is the GPT."""
        return any(e.type == GPT_PROTECTIVE for e in self.entries)


def has_signature(sector: bytes) -> bool:
    return sector[SIGNATURE_OFFSET : SIGNATURE_OFFSET + 2] == SIGNATURE


def parse_entries(sector: bytes) -> tuple[MbrEntry, ...]:
    """The four entries of an MBR-shaped sector (the caller checked it is 512 bytes)."""
    entries = []
    for slot in range(ENTRY_COUNT):
        status, _chs_first, ptype, _chs_last, lba, sectors = _ENTRY.unpack_from(
            sector, ENTRIES_OFFSET + slot * _ENTRY.size
        )
        entries.append(MbrEntry(slot, status, ptype, lba, sectors))
    return tuple(entries)


def parse_table(sector0: bytes) -> MbrTable | None:
    """Sector 0's table, or None when its boot flags say it is not a partition table.

    GRUB and Linux both refuse a table whose status byte is neither 0 nor 0x80: with the
    signature present, that sector is a filesystem's boot sector (FAT, NTFS), not an MBR.
    """
    entries = parse_entries(sector0)
    for e in entries:
        if e.status not in (0, ACTIVE):
            log.info(
                "MBR at 0: entry %d has boot flag 0x%02x (not 0 or 0x80): not a partition table",
                e.slot + 1,
                e.status,
            )
            return None
    return MbrTable(entries)


def looks_like_fat_boot_sector(sector: bytes) -> bool:
    """Whether sector 0 is a FAT filesystem's boot sector (which also ends in 55 AA)."""
    if len(sector) < SECTOR_SIZE:
        return False
    jump, _oem, bytes_per_sector, per_cluster, reserved, fats, _root, _total16, media = (
        _FAT_BPB.unpack_from(sector)
    )
    jump_ok = (jump[0] == 0xEB and jump[2] == 0x90) or jump[0] == 0xE9
    bpb_ok = (
        bytes_per_sector in (512, 1024, 2048, 4096)
        and per_cluster in (1, 2, 4, 8, 16, 32, 64, 128)
        and reserved >= 1
        and fats in (1, 2)
        and (media == 0xF0 or media >= 0xF8)
    )
    # An MBR's boot code may keep an old BPB (grub-install does); the type string as well
    # is what only a FAT boot sector has.
    named = any(sector[o : o + 3] == b"FAT" for o in _FAT_TYPE_OFFSETS)
    return jump_ok and bpb_ok and named


def read_partitions(disk: ByteSource, table: MbrTable) -> list[Partition]:
    """Primary partitions in slot order, then the logical ones of the first extended one.

    A primary partition may start at sector 0, over this table (see discovery).
    """
    found: list[Partition] = []
    extended: list[MbrEntry] = []
    for e in table.entries:
        if e.type in (EMPTY, GPT_PROTECTIVE):
            continue
        if e.type not in EXTENDED_TYPES:
            # One at sector 0 too: discovery knows whether that is an isohybrid's ISO.
            found.append(_primary(e))
        elif e.lba == 0:
            log.warning("MBR partition %d: extended, at sector 0 (the MBR): skipped", e.slot + 1)
        else:
            extended.append(e)
    if len(extended) > 1:
        # GRUB follows the first; the others would renumber its logical partitions.
        log.warning(
            "MBR: %d extended partitions: following only partition %d",
            len(extended),
            extended[0].slot + 1,
        )
    if extended:
        found.extend(_logical_partitions(disk, extended[0]))
    return found


def _primary(e: MbrEntry) -> Partition:
    number = e.slot + 1
    active = e.status == ACTIVE
    flags = ", active" if active else ""
    return Partition(
        start=e.lba * SECTOR_SIZE,
        length=e.sectors * SECTOR_SIZE,
        grub_name=f"hd0,msdos{number}",
        origin=f"MBR partition {number} (type 0x{e.type:02x}{flags})",
        number=number,
        bootable=active,
        mbr_type=e.type,
    )


def _logical_partitions(disk: ByteSource, extended: MbrEntry) -> list[Partition]:
    """Follow the EBR chain from the extended partition's first sector, loops cut."""
    found: list[Partition] = []
    number = 5
    visited: set[int] = set()
    ebr = extended.lba
    for _ in range(MAX_LOGICAL_PARTITIONS):
        if ebr in visited:
            log.warning("EBR chain: sector %d is visited twice (a loop): chain ends", ebr)
            return found
        visited.add(ebr)
        sector = disk.pread(ebr * SECTOR_SIZE, SECTOR_SIZE)
        if len(sector) < SECTOR_SIZE or not has_signature(sector):
            log.warning("EBR at sector %d: missing or without 55 AA signature: chain ends", ebr)
            return found
        entries = parse_entries(sector)
        for e in entries:
            if e.type == EMPTY or e.type in EXTENDED_TYPES:
                continue
            if number - 5 >= MAX_LOGICAL_PARTITIONS:
                log.warning(
                    "EBR chain: over %d logical partitions: rest ignored", MAX_LOGICAL_PARTITIONS
                )
                return found
            if e.lba == 0:
                log.warning(
                    "EBR at sector %d: logical partition %d starts on the EBR: skipped", ebr, number
                )
            else:
                found.append(_logical(e, ebr, number))
            number += 1
        link = next((e for e in entries if e.type in EXTENDED_TYPES), None)
        if link is None:
            return found
        ebr = extended.lba + link.lba
    log.warning("EBR chain: over %d EBRs: rest ignored", MAX_LOGICAL_PARTITIONS)
    return found


def _logical(e: MbrEntry, ebr: int, number: int) -> Partition:
    return Partition(
        start=(ebr + e.lba) * SECTOR_SIZE,
        length=e.sectors * SECTOR_SIZE,
        grub_name=f"hd0,msdos{number}",
        origin=f"MBR logical partition {number} (type 0x{e.type:02x})",
        number=number,
        bootable=e.status == ACTIVE,
        mbr_type=e.type,
    )
