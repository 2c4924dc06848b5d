"""The chunk map: btrfs addresses everything by logical byte, and chunks say where each
logical range lies on the devices. This volume is one device; we read the stripes that
are on it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from ...errors import CorruptError, LimitError, UnsupportedError
from ...record import record
from .structures import CHUNK, MIRRORED, PROFILES, STRIPE, Key

#: Chunks in one filesystem: a real one has one per GiB or so; a hostile chunk tree may
#: claim many more, and each costs memory.
MAX_CHUNKS = 1 << 20


@record(frozen=True)
class Chunk:
    logical: int
    length: int
    type: int
    #: Where each whole copy of the chunk starts on this device (several for DUP/RAID1).
    copies: tuple[int, ...]
    #: Why the chunk cannot be read here, or None.
    refusal: str | None
    #: Where the chunk item was read (for messages).
    where: str

    @property
    def end(self) -> int:
        return self.logical + self.length


def parse_chunk(key: Key, buf: bytes, where: str, devid: int, sectorsize: int) -> tuple[Chunk, int]:
    """The chunk item at the start of ``buf`` (key.offset is its logical start), and the
    bytes it takes. Only stripes on device ``devid`` (this volume) become copies."""
    if len(buf) < CHUNK.size:
        raise CorruptError(f"btrfs: chunk item at {where}: truncated")
    chunk = CHUNK.read(buf)
    size = CHUNK.size + chunk.num_stripes * STRIPE.size
    if chunk.num_stripes == 0 or size > len(buf):
        raise CorruptError(
            f"btrfs: chunk item at {where}: {chunk.num_stripes} stripes do not fit its "
            f"{len(buf)} bytes"
        )
    if chunk.length == 0 or chunk.length % sectorsize or key.offset % sectorsize:
        raise CorruptError(
            f"btrfs: chunk item at {where}: {chunk.length} bytes at logical {key.offset} "
            f"are not whole {sectorsize}-byte sectors"
        )
    if key.offset + chunk.length > 1 << 64:
        raise CorruptError(f"btrfs: chunk item at {where}: ends past 2^64")
    profile = [bit for bit in PROFILES if chunk.type & bit]
    refusal = None
    if len(profile) > 1:
        raise CorruptError(f"btrfs: chunk item at {where}: type 0x{chunk.type:x} has two profiles")
    if profile and profile[0] not in MIRRORED:
        refusal = f"{PROFILES[profile[0]]} chunks are not supported"
    elif chunk.num_stripes < (MIRRORED[profile[0]] if profile else 1):
        raise CorruptError(
            f"btrfs: chunk item at {where}: {chunk.num_stripes} stripes for a "
            f"{PROFILES[profile[0]] if profile else 'single'} chunk"
        )
    copies = []
    if refusal is None:
        # SINGLE has one stripe; the mirrored profiles keep a whole copy in each stripe.
        stripes = chunk.num_stripes if profile else 1
        for index in range(stripes):
            stripe = STRIPE.read(buf, CHUNK.size + index * STRIPE.size)
            if stripe.devid == devid:
                copies.append(stripe.offset)
        if not copies:
            refusal = f"no copy is on this device (devid {devid}): a multi-device filesystem"
    made = Chunk(key.offset, chunk.length, chunk.type, tuple(copies), refusal, where)
    return made, size


class ChunkMap:
    """Logical ranges -> chunks, sorted by logical start; lookups by bisection."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._chunks: list[Chunk] = []

    def __len__(self) -> int:
        return len(self._chunks)

    def add(self, chunk: Chunk) -> None:
        index = bisect.bisect_left(self._starts, chunk.logical)
        if index < len(self._chunks) and self._chunks[index].logical == chunk.logical:
            # The chunk tree repeats the system chunks of the superblock: keep one.
            if self._chunks[index].length != chunk.length:
                raise CorruptError(
                    f"btrfs: chunk item at {chunk.where}: logical {chunk.logical} has two "
                    "different chunks"
                )
            self._chunks[index] = chunk
            return
        if len(self._chunks) >= MAX_CHUNKS:
            raise LimitError(f"btrfs: over {MAX_CHUNKS} chunks")
        before = self._chunks[index - 1] if index else None
        after = self._chunks[index] if index < len(self._chunks) else None
        if (before is not None and before.end > chunk.logical) or (
            after is not None and chunk.end > after.logical
        ):
            raise CorruptError(
                f"btrfs: chunk item at {chunk.where}: logical {chunk.logical}+{chunk.length} "
                "overlaps another chunk"
            )
        self._starts.insert(index, chunk.logical)
        self._chunks.insert(index, chunk)

    def chunk_at(self, logical: int, what: str) -> Chunk:
        index = bisect.bisect_right(self._starts, logical) - 1
        if index < 0 or self._chunks[index].end <= logical:
            raise CorruptError(f"btrfs: {what} at logical {logical} is in no chunk")
        chunk = self._chunks[index]
        if chunk.refusal is not None:
            raise UnsupportedError(
                f"btrfs: {what} at logical {logical} is in the chunk at {chunk.logical}: "
                f"{chunk.refusal}"
            )
        return chunk

    def copies(self, logical: int, length: int, what: str) -> list[int]:
        """The device offsets of every copy of [logical, logical+length), one chunk's worth."""
        chunk = self.chunk_at(logical, what)
        if logical + length > chunk.end:
            raise CorruptError(f"btrfs: {what} at logical {logical} runs past the end of its chunk")
        return [start + logical - chunk.logical for start in chunk.copies]

    def pieces(self, logical: int, length: int, what: str) -> Iterator[tuple[int, int]]:
        """(device offset, length) of the first copy of each piece of a logical range
        that may cross from one chunk into the next."""
        while length > 0:
            chunk = self.chunk_at(logical, what)
            take = min(length, chunk.end - logical)
            yield chunk.copies[0] + logical - chunk.logical, take
            logical += take
            length -= take
