"""GUID Partition Table (UEFI specification, "GUID Partition Table (GPT) Disk Layout").

The header sits at LBA 1 and its backup at the disk's last LBA; each points at an array of
partition entries and carries the CRC32 of itself and of that array. Nothing records the
logical block size, so the header is looked for at byte 512, then at byte 4096. Partitions
are named ``hd0,gptN`` with N the 1-based index in the entry array (GRUB's numbering, so
empty entries leave gaps).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from ..disk import ByteSource
from ..limits import MAX_PARTITIONS
from ..log import get_logger
from ..record import record
from .volume import Partition

log = get_logger(__name__)

SECTOR_SIZES = (512, 4096)
SIGNATURE = b"EFI PART"

# GPT header: Signature, Revision, HeaderSize, HeaderCRC32, Reserved, MyLBA, AlternateLBA,
# FirstUsableLBA, LastUsableLBA, DiskGUID, PartitionEntryLBA, NumberOfPartitionEntries,
# SizeOfPartitionEntry, PartitionEntryArrayCRC32.
_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_HEADER_CRC = slice(16, 20)

# Partition entry: PartitionTypeGUID, UniquePartitionGUID, StartingLBA, EndingLBA
# (inclusive), Attributes, PartitionName (36 UTF-16LE code units).
_ENTRY = struct.Struct("<16s16sQQQ72s")
_UNUSED_TYPE = bytes(16)
#: Attributes bit 2: "Legacy BIOS Bootable".
LEGACY_BIOS_BOOTABLE = 1 << 2

#: The entry array we read and checksum at most (the spec asks for 16 KiB at least).
MAX_ENTRY_ARRAY_BYTES = 4 << 20

ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
XBOOTLDR_TYPE = "bc13c2ff-59e6-4262-a352-b275fd6f7172"
BIOS_BOOT_TYPE = "21686148-6449-6e6f-744e-656564454649"
LINUX_FILESYSTEM_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"

#: Names for the origin text (the names sgdisk and the Discoverable Partitions Spec use).
TYPE_NAMES = {
    ESP_TYPE: "EFI system partition",
    XBOOTLDR_TYPE: "Linux extended boot",
    BIOS_BOOT_TYPE: "BIOS boot partition",
    LINUX_FILESYSTEM_TYPE: "Linux filesystem",
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": "Linux x86-64 root",
    "44479540-f297-41b2-9af7-d131d5f0458a": "Linux x86 root",
    "b921b045-1df0-41c3-af44-4c6f280d3fae": "Linux ARM64 root",
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "Linux swap",
    "e6d6d379-f507-44c2-a23c-238f2a3df928": "Linux LVM",
    "a19d880f-05fc-4d3b-a006-743f0f84911e": "Linux RAID",
    "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "Microsoft basic data",
    "6a85cf4d-1dd2-11b2-99a6-080020736631": "Solaris root",
    "6a898cc3-1dd2-11b2-99a6-080020736631": "Solaris /usr or ZFS",
    "516e7cb6-6ecf-11d6-8ff8-00022d09712b": "FreeBSD UFS",
}


@record(frozen=True)
class GptHeader:
    """The fields of one header we use, and whether its own CRC32 matched."""

    where: str
    lba: int
    sector_size: int
    header_crc_ok: bool
    alternate_lba: int
    first_usable: int
    last_usable: int
    entry_lba: int
    entry_count: int
    entry_size: int
    entries_crc: int

    @property
    def array_bytes(self) -> int:
        return self.entry_count * self.entry_size


def read_partitions(disk: ByteSource) -> list[Partition] | None:
    """The GPT's partitions in entry order, or None when there is no usable GPT."""
    chosen = _choose_table(disk)
    if chosen is None:
        return None
    header, array = chosen
    return _partitions(header, array)


def _choose_table(disk: ByteSource) -> tuple[GptHeader, bytes] | None:
    """The primary when intact, else an intact backup, else whichever one is readable."""
    primary = _find_primary(disk)
    primary_array = _read_array(disk, primary) if primary is not None else None
    if primary is not None and primary_array is not None and _intact(primary, primary_array):
        return primary, primary_array
    readable: list[tuple[GptHeader, bytes]] = []
    if primary is not None and primary_array is not None:
        readable.append((primary, primary_array))
    for backup in _backup_headers(disk, primary):
        array = _read_array(disk, backup)
        if array is None:
            continue
        if _intact(backup, array):
            log.warning(
                "GPT: primary table missing or damaged: using the backup at LBA %d", backup.lba
            )
            return backup, array
        readable.append((backup, array))
    if not readable:
        log.warning("GPT: no readable GPT header at LBA 1 or at the last LBA")
        return None
    header, array = readable[0]
    log.warning(
        "GPT: %s header at LBA %d: CRC32 mismatch and no intact copy: using it anyway",
        header.where,
        header.lba,
    )
    return header, array


def _intact(header: GptHeader, array: bytes) -> bool:
    return header.header_crc_ok and zlib.crc32(array) == header.entries_crc


def _find_primary(disk: ByteSource) -> GptHeader | None:
    for sector_size in SECTOR_SIZES:
        header = _read_header(disk, 1, sector_size, "primary")
        if header is not None:
            return header
    return None


def _backup_headers(disk: ByteSource, primary: GptHeader | None) -> Iterator[GptHeader]:
    """Backup headers: where the primary says, then at the last LBA, per sector size."""
    sizes = (primary.sector_size,) if primary is not None else SECTOR_SIZES
    tried: set[tuple[int, int]] = set()
    for sector_size in sizes:
        last = disk.size // sector_size - 1
        wanted = [last]
        if primary is not None and primary.header_crc_ok and 1 < primary.alternate_lba < last:
            wanted.insert(0, primary.alternate_lba)
        for lba in wanted:
            if lba <= 1 or (lba, sector_size) in tried:
                continue
            tried.add((lba, sector_size))
            header = _read_header(disk, lba, sector_size, "backup")
            if header is not None:
                yield header


def _read_header(disk: ByteSource, lba: int, sector_size: int, where: str) -> GptHeader | None:
    """The header at ``lba``, or None when absent or its sizes are out of bounds."""
    raw = disk.pread(lba * sector_size, sector_size)
    if len(raw) < sector_size or raw[: len(SIGNATURE)] != SIGNATURE:
        return None
    (
        _sig,
        _revision,
        header_size,
        header_crc,
        _reserved,
        _my_lba,
        alternate_lba,
        first_usable,
        last_usable,
        _disk_guid,
        entry_lba,
        entry_count,
        entry_size,
        entries_crc,
    ) = _HEADER.unpack_from(raw)
    at = f"GPT {where} header at byte {lba * sector_size}"
    if not _HEADER.size <= header_size <= sector_size:
        log.warning("%s: header size %d out of range: ignored", at, header_size)
        return None
    if entry_size < _ENTRY.size or entry_size % 8:
        log.warning("%s: partition entry size %d is invalid: ignored", at, entry_size)
        return None
    if entry_count * entry_size > MAX_ENTRY_ARRAY_BYTES:
        log.warning(
            "%s: %d entries of %d bytes: over the %d-byte limit: ignored",
            at,
            entry_count,
            entry_size,
            MAX_ENTRY_ARRAY_BYTES,
        )
        return None
    # The CRC32 covers HeaderSize bytes with the HeaderCRC32 field itself zeroed.
    covered = bytearray(raw[:header_size])
    covered[_HEADER_CRC] = bytes(4)
    header_crc_ok = zlib.crc32(covered) == header_crc
    if not header_crc_ok:
        log.warning("%s: header CRC32 mismatch", at)
    return GptHeader(
        where,
        lba,
        sector_size,
        header_crc_ok,
        alternate_lba,
        first_usable,
        last_usable,
        entry_lba,
        entry_count,
        entry_size,
        entries_crc,
    )


def _read_array(disk: ByteSource, header: GptHeader) -> bytes | None:
    """The whole partition entry array, or None when it is not on the disk."""
    start = header.entry_lba * header.sector_size
    if header.entry_lba < 1 or start + header.array_bytes > disk.size:
        log.warning(
            "GPT %s header at LBA %d: entry array at LBA %d is outside the disk",
            header.where,
            header.lba,
            header.entry_lba,
        )
        return None
    array = disk.pread(start, header.array_bytes)
    return array if len(array) == header.array_bytes else None


def _partitions(header: GptHeader, array: bytes) -> list[Partition]:
    found: list[Partition] = []
    used = 0
    for index in range(header.entry_count):
        at = index * header.entry_size
        if array[at : at + len(_UNUSED_TYPE)] == _UNUSED_TYPE:
            continue
        used += 1
        if used > MAX_PARTITIONS:
            log.warning("GPT: over %d partitions in use: the rest ignored", MAX_PARTITIONS)
            break
        partition = _partition(header, index, array[at : at + _ENTRY.size])
        if partition is not None:
            found.append(partition)
    return found


def _partition(header: GptHeader, index: int, raw: bytes) -> Partition | None:
    type_bytes, _unique, first, last, attributes, name = _ENTRY.unpack(raw)
    number = index + 1
    type_guid = guid_text(type_bytes)
    origin = f"GPT partition {number} ({TYPE_NAMES.get(type_guid, 'type ' + type_guid)})"
    if last < first:
        log.warning("%s: ends (LBA %d) before it starts (LBA %d): skipped", origin, last, first)
        return None
    if first < header.first_usable or last > header.last_usable:
        log.info("%s: LBA %d-%d is outside the header's usable range", origin, first, last)
    return Partition(
        start=first * header.sector_size,
        length=(last - first + 1) * header.sector_size,
        grub_name=f"hd0,gpt{number}",
        origin=origin,
        number=number,
        bootable=bool(attributes & LEGACY_BIOS_BOOTABLE),
        type_guid=type_guid,
        label=_name(name),
    )


def _name(raw: bytes) -> str | None:
    """PartitionName: UTF-16LE, NUL-terminated when shorter than its 36 code units."""
    name = raw.decode("utf-16-le", errors="replace").split("\x00", 1)[0]
    return name or None


#: A GUID as stored: three little-endian fields, then eight bytes as they are.
_GUID = struct.Struct("<IHH8s")


def guid_text(raw: bytes) -> str:
    """``raw`` as str(uuid.UUID(bytes_le=raw)) writes it, without importing uuid (and
    platform with it) into every run that meets a GPT."""
    a, b, c, rest = _GUID.unpack(raw)
    return f"{a:08x}-{b:04x}-{c:04x}-{rest[:2].hex()}-{rest[2:].hex()}"
