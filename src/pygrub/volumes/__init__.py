"""Volumes: where filesystems may live on a disk (whole disk, partitions, logical volumes)."""

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


def discover(disk: ByteSource) -> list[Volume]:
    """Every volume on the disk, in the order pygrub tries them.

    Active partitions come first, then table order, then the whole disk when no table
    was found. Malformed tables are logged and skipped, never fatal.
    """
    from .discovery import discover_volumes

    return discover_volumes(disk)
