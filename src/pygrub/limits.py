"""Bounds on everything the guest controls. One place, so reviewers see them all."""

from __future__ import annotations

from .errors import LimitError

#: The largest single read any reader may ask of a byte source (ZFS blocks reach 16 MiB).
MAX_READ = 64 << 20
#: Bytes read from one configuration file (Xen's FS_READ_MAX).
MAX_CONFIG_BYTES = 1 << 20
#: Symlink hops while resolving one path (as Linux's MAXSYMLINKS).
MAX_SYMLINK_HOPS = 40
#: Components in one path after symlink expansion.
MAX_PATH_COMPONENTS = 4096
#: Entries scanned in one directory.
MAX_DIR_ENTRIES = 1_000_000
#: Depth of any on-disk tree (extent trees, indirect blocks, B-trees).
MAX_TREE_DEPTH = 16
#: Entries in one boot menu, all levels together.
MAX_MENU_ENTRIES = 10_000
#: Partitions looked at in one partition table (GPT may say more; we do not believe it).
MAX_PARTITIONS = 256
#: Logical partitions followed along an extended-partition chain.
MAX_LOGICAL_PARTITIONS = 128


def check_count(what: str, count: int, bound: int) -> int:
    """Return count, or raise LimitError naming the bound when it is over."""
    if count > bound:
        raise LimitError(f"{what}: {count} is over the limit of {bound}")
    return count
