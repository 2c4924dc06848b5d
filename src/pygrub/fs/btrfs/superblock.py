"""The btrfs superblock: the primary at 64 KiB, mirrors at 64 MiB and 256 GiB (read only
when the primary is bad), and the system chunks it carries."""

from __future__ import annotations

from ..._typing import TYPE_CHECKING
from ...disk import ByteSource
from ...errors import CorruptError, UnsupportedError
from ...record import record
from ..layout import unknown_features
from .checksum import checksum_matches
from .chunks import Chunk, parse_chunk
from .structures import (
    CHUNK_ITEM_KEY,
    CSUM_START,
    CSUM_TYPES,
    DEV_ITEM,
    DISK_KEY,
    INCOMPAT_METADATA_UUID,
    KNOWN_INCOMPAT,
    MAGIC,
    MAX_LEVEL,
    REFUSED_INCOMPAT,
    SUPERBLOCK,
    SUPERBLOCK_OFFSETS,
    SUPERBLOCK_SIZE,
    SYS_CHUNK_ARRAY_MAX,
    SYS_CHUNK_ARRAY_OFFSET,
    Key,
)

if TYPE_CHECKING:
    from typing import Any

MIN_SECTORSIZE = 4096
MAX_NODESIZE = 65536


@record(frozen=True)
class Superblock:
    offset: int
    fields: Any
    devid: int
    #: The fsid every tree block header carries (metadata_uuid when that feature is on).
    metadata_uuid: bytes
    system_chunks: tuple[Chunk, ...]


def read_superblock(source: ByteSource) -> Superblock | None:
    """The superblock to use, or None when there is no btrfs magic at 64 KiB.

    A primary that fails its checks gives way to the first mirror that passes them;
    when none does, the primary's problem is reported.
    """
    primary = source.pread(SUPERBLOCK_OFFSETS[0], SUPERBLOCK_SIZE)
    if len(primary) < SUPERBLOCK_SIZE or SUPERBLOCK.read(primary).magic != MAGIC:
        return None
    try:
        return parse_superblock(primary, SUPERBLOCK_OFFSETS[0])
    except CorruptError as first_problem:
        for offset in SUPERBLOCK_OFFSETS[1:]:
            raw = source.pread(offset, SUPERBLOCK_SIZE)
            if len(raw) < SUPERBLOCK_SIZE:
                break
            try:
                return parse_superblock(raw, offset)
            except CorruptError:
                continue
        raise first_problem from None


def parse_superblock(raw: bytes, offset: int) -> Superblock:
    sb = SUPERBLOCK.read(raw)

    def bad(problem: str) -> CorruptError:
        return CorruptError(f"btrfs: superblock at byte {offset}: {problem}")

    if sb.magic != MAGIC:
        raise bad("no magic")
    if sb.csum_type not in CSUM_TYPES:
        raise UnsupportedError(f"btrfs: superblock at byte {offset}: csum_type {sb.csum_type}")
    if not checksum_matches(sb.csum_type, sb.csum, raw[CSUM_START:SUPERBLOCK_SIZE]):
        raise bad(f"{CSUM_TYPES[sb.csum_type][0]} checksum mismatch")
    if sb.bytenr != offset:
        raise bad(f"bytenr {sb.bytenr} is not where it lies")
    _check_features(sb.incompat_flags)
    if not _power_of_two(sb.sectorsize) or not MIN_SECTORSIZE <= sb.sectorsize <= MAX_NODESIZE:
        raise bad(f"sectorsize {sb.sectorsize}")
    if not _power_of_two(sb.nodesize) or not sb.sectorsize <= sb.nodesize <= MAX_NODESIZE:
        raise bad(f"nodesize {sb.nodesize} with sectorsize {sb.sectorsize}")
    for name in ("root", "chunk_root"):
        if getattr(sb, name) % sb.sectorsize:
            raise bad(f"{name} {getattr(sb, name)} is not sector-aligned")
    if sb.root_level >= MAX_LEVEL or sb.chunk_root_level >= MAX_LEVEL:
        raise bad(f"root level {sb.root_level}, chunk root level {sb.chunk_root_level}")
    devid = DEV_ITEM.read(sb.dev_item).devid
    metadata_uuid = sb.metadata_uuid if sb.incompat_flags & INCOMPAT_METADATA_UUID else sb.fsid
    chunks = system_chunks(raw, sb, offset, devid)
    return Superblock(offset, sb, devid, metadata_uuid, chunks)


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _check_features(incompat: int) -> None:
    refused = unknown_features(incompat, KNOWN_INCOMPAT, REFUSED_INCOMPAT)
    if refused:
        raise UnsupportedError(f"btrfs: unsupported incompatible features: {', '.join(refused)}")


def system_chunks(raw: bytes, sb: Any, offset: int, devid: int) -> tuple[Chunk, ...]:
    """The chunks of sys_chunk_array: (disk key, chunk item) pairs, packed."""
    size = sb.sys_chunk_array_size
    if size > SYS_CHUNK_ARRAY_MAX:
        raise CorruptError(
            f"btrfs: superblock at byte {offset}: sys_chunk_array_size {size} is over "
            f"{SYS_CHUNK_ARRAY_MAX}"
        )
    array = raw[SYS_CHUNK_ARRAY_OFFSET : SYS_CHUNK_ARRAY_OFFSET + size]
    chunks = []
    pos = 0
    while pos < size:
        where = f"superblock byte {offset + SYS_CHUNK_ARRAY_OFFSET + pos}"
        if pos + DISK_KEY.size > size:
            raise CorruptError(f"btrfs: sys_chunk_array entry at {where}: truncated key")
        key = Key(*DISK_KEY.unpack_from(array, pos))
        if key.type != CHUNK_ITEM_KEY:
            raise CorruptError(f"btrfs: sys_chunk_array entry at {where}: key type {key.type}")
        pos += DISK_KEY.size
        chunk, used = parse_chunk(key, array[pos:], where, devid, sb.sectorsize)
        chunks.append(chunk)
        pos += used
    if not chunks:
        raise CorruptError(f"btrfs: superblock at byte {offset}: no system chunks")
    return tuple(chunks)
