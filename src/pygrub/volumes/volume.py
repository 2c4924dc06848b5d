"""The records every volume reader shares: a volume, a partition table's entry, and where
MD keeps its superblock (discovery probes there, md reads there)."""

from __future__ import annotations

from ..disk import ByteSource, SliceSource
from ..record import record


@record
class Volume:
    """A window of the disk that may hold a filesystem, with its GRUB device name."""

    source: ByteSource
    #: GRUB's name for it, without parentheses: "hd0", "hd0,msdos1", "hd0,gpt2", "lvm/vg-root".
    grub_name: str
    #: What found it, for messages: "whole disk", "MBR partition 1 (type 0x83, active)".
    origin: str
    #: Partition number as GRUB counts it (1-based), or None for a whole disk / LV.
    number: int | None = None
    #: Marked active/bootable in its table.
    bootable: bool = False
    #: GPT partition type GUID (lower-case, dashed), e.g. the ESP's "c12a7328-...".
    type_guid: str | None = None
    #: The partition's own name in its table (GPT), if it has one.
    label: str | None = None
    #: Other names GRUB knows it by: "lvmid/VG-UUID/LV-UUID", "mduuid/HEX".
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every GRUB device name of this volume, the canonical one first."""
        return (self.grub_name, *self.aliases)

    @property
    def offset(self) -> int:
        """Byte offset on the disk, where the volume is a plain window of it."""
        return self.source.start if isinstance(self.source, SliceSource) else 0

    def __str__(self) -> str:
        return f"({self.grub_name}) {self.origin}"


def whole_disk(disk: ByteSource) -> Volume:
    return Volume(disk, "hd0", "whole disk")


def volume_at_offset(disk: ByteSource, offset: int) -> Volume:
    """The volume --offset names: discovery is skipped, as in Xen's pygrub."""
    return Volume(SliceSource(disk, offset, disk.size - offset), "hd0", f"offset {offset}")


@record
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


def md_superblock_offsets(size: int) -> dict[str, int]:
    """Where each MD metadata version keeps its superblock on a member of ``size`` bytes."""
    sectors = size // 512
    offsets = {"1.1": 0, "1.2": 4096}
    if sectors >= 16:
        offsets["1.0"] = ((sectors - 16) & ~7) * 512
    if sectors >= 256:
        # The last 64 KiB-aligned 64 KiB (MD_NEW_SIZE_SECTORS).
        offsets["0.90"] = ((sectors & ~127) - 128) * 512
    return offsets
