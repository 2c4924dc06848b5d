"""GRUB blocklists: sectors of a device read as a file (grub-core/kern/fs.c, kern/file.c).

grub_file_open reads a name whose part after the device does not start with '/' as a
blocklist, whatever command opens it (``load_env -f``, ``source``, ``configfile``).
GRUB 2.14 keeps the environment block of a Btrfs /boot this way: grub-editenv writes
``env_block=512+1`` into the grubenv file and the block itself into the 512 bytes at
256 KiB of the partition, which Btrfs leaves to bootloaders; grub.cfg's 00_header then
runs ``load_env -f "(${root})${env_block}"``.

The syntax, as grub_fs_blocklist_open parses it::

    RUN[,RUN...]     as many runs as there are commas, plus one
    RUN = [FIRST]+[COUNT]
                     numbers as grub_strtoul reads them (0x.. hex, 0.. octal), in
                     512-byte sectors whatever the disk's own sector size, FIRST counted
                     from the device's start (a partition's own sector 0); FIRST left
                     out is 0, COUNT left out is the rest of the device (GRUB 2.14);
                     a blank after COUNT ends the run like a comma does, and whatever
                     follows it is the next run when a comma is left to count one

A COUNT of 0, a run past the end of the device or anything else after a number makes
the whole name invalid. Runs may overlap (only save_env's check refuses that) and are
read in the order given, one after the other.
"""

from __future__ import annotations

from ...disk import ByteSource
from ...errors import CorruptError, LimitError
from .strtoul import grub_strtoul

#: GRUB_DISK_SECTOR_SIZE: the blocklist unit on every device.
SECTOR_SIZE = 512

#: (first sector, sector count)
Run = tuple[int, int]


def blocklist_runs(name: str, total_sectors: int, where: str, limit: int | None) -> list[Run]:
    """The runs ``name`` lists on a device of ``total_sectors`` sectors.

    CorruptError for a name GRUB refuses; LimitError as soon as the runs add up to more
    than ``limit`` bytes (None: no bound, for sizes that are never read).
    """
    runs: list[Run] = []
    total = 0
    pos = 0
    for number in range(1, name.count(",") + 2):
        first, pos = _first_sector(name, pos, where, number)
        count, pos = _sector_count(name, pos + 1, total_sectors - first, where, number)
        if first + count > total_sectors:
            raise CorruptError(
                f"blocklist {where}: run {number} ({first}+{count}) ends past the"
                f" device's {total_sectors} sectors"
            )
        total += count * SECTOR_SIZE
        if limit is not None and total > limit:
            raise LimitError(f"blocklist {where}: over {limit} bytes by run {number}")
        runs.append((first, count))
        pos += 1
    return runs


def _first_sector(name: str, pos: int, where: str, number: int) -> tuple[int, int]:
    """FIRST of the run at ``pos`` (0 when left out) and the index of its '+'."""
    if name.startswith("+", pos):
        return 0, pos
    first, end = grub_strtoul(name, 0, pos)
    if first is None or not name.startswith("+", end):
        raise CorruptError(f"blocklist {where}: run {number} is not FIRST+COUNT")
    return first, end


def _sector_count(name: str, pos: int, rest: int, where: str, number: int) -> tuple[int, int]:
    """COUNT of the run whose '+' is before ``pos`` (``rest`` when left out), and the
    index after it."""
    if pos == len(name) or name[pos] == ",":
        if rest <= 0:
            raise CorruptError(f"blocklist {where}: run {number} starts past the device")
        return rest, pos
    count, end = grub_strtoul(name, 0, pos)
    if count is None or count == 0 or (end < len(name) and name[end] not in ", \t\r\n"):
        raise CorruptError(f"blocklist {where}: run {number} has no valid sector count")
    return count, end


def read_blocklist(source: ByteSource, name: str, where: str, limit: int) -> bytes:
    """The bytes ``name`` lists on ``source``, at most ``limit`` of them."""
    runs = blocklist_runs(name, source.size // SECTOR_SIZE, where, limit)
    pieces = []
    for first, count in runs:
        data = source.pread(first * SECTOR_SIZE, count * SECTOR_SIZE)
        if len(data) != count * SECTOR_SIZE:
            raise CorruptError(f"blocklist {where}: sectors {first}+{count} cut short")
        pieces.append(data)
    return b"".join(pieces)
