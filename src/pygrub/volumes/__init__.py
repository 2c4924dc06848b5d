"""Volumes: where filesystems may live on a disk (whole disk, partitions, logical volumes)."""

from __future__ import annotations

from ..disk import ByteSource
from .volume import Partition, Volume, volume_at_offset, whole_disk

__all__ = ["Partition", "Volume", "discover", "volume_at_offset", "whole_disk"]


def discover(disk: ByteSource) -> list[Volume]:
    """Every volume on the disk, in the order pygrub tries them.

    Active partitions come first, then table order, then the whole disk when no table
    was found. Malformed tables are logged and skipped, never fatal.
    """
    from .discovery import discover_volumes

    return discover_volumes(disk)
