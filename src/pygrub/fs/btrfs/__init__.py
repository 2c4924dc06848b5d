"""Btrfs, read-only (btrfs.readthedocs.io "On-disk Format" and Linux's btrfs_tree.h).

The filesystem's root is the top level (FS_TREE, subvolume 5), where GRUB resolves
paths such as ``/@/boot/vmlinuz``; ``BtrfsFilesystem.subvolume_view`` gives a view rooted
at the default subvolume (GRUB's ``btrfs_relative_path``) or at any subvolume.
"""

from __future__ import annotations

from ..._typing import TYPE_CHECKING
from ...disk import ByteSource

if TYPE_CHECKING:
    from .filesystem import BtrfsFilesystem


def open_filesystem(source: ByteSource) -> BtrfsFilesystem | None:
    """The btrfs filesystem on ``source``, or None when there is no btrfs superblock."""
    from .superblock import read_superblock

    sb = read_superblock(source)
    if sb is None:
        return None
    from .filesystem import BtrfsFilesystem

    return BtrfsFilesystem(source, sb)
