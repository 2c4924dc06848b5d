"""Reading btrfs B-trees: tree blocks (checked against what points to them) and walks.

A tree block is read through the chunk map from the first copy that passes every check,
so a damaged DUP or RAID1 copy falls back to the next one, as Linux does. A walk checks
that the keys it meets only ever grow, so a hostile tree that points back into itself
ends in an error after at most one read of each block.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from ...disk import ByteSource
from ...errors import CorruptError
from ...record import record
from .checksum import checksum_matches
from .chunks import ChunkMap
from .structures import (
    CSUM_START,
    HEADER,
    ITEM,
    KEY_PTR,
    MAX_LEVEL,
    Key,
)

#: Tree blocks kept after a read; a path lookup touches a few per tree.
CACHE_BLOCKS = 256


@record(frozen=True)
class TreeRoot:
    """Where a tree starts: its root block, that block's level and generation."""

    name: str
    bytenr: int
    level: int
    generation: int


@record(frozen=True)
class Item:
    key: Key
    data: bytes
    #: The leaf's logical address, the item's slot and where its data starts in the leaf.
    leaf: int
    slot: int
    offset: int

    @property
    def where(self) -> str:
        """For messages: "<leaf logical address> slot <n>"."""
        return f"{self.leaf} slot {self.slot}"


@record
class Block:
    bytenr: int
    level: int
    generation: int
    keys: list[Key]
    #: Leaves: (offset, size) of each item's data in ``raw``. Nodes: (blockptr, generation).
    refs: list[tuple[int, int]]
    raw: bytes

    def item(self, slot: int) -> Item:
        offset, size = self.refs[slot]
        return Item(self.keys[slot], self.raw[offset : offset + size], self.bytenr, slot, offset)


@record
class _Walk:
    """The largest key met so far in one walk: every key after it must be larger."""

    last: Key | None = None


class TreeReader:
    def __init__(
        self,
        source: ByteSource,
        chunks: ChunkMap,
        nodesize: int,
        csum_type: int,
        metadata_uuid: bytes,
    ) -> None:
        self.source = source
        self.chunks = chunks
        self.nodesize = nodesize
        self.csum_type = csum_type
        self.metadata_uuid = metadata_uuid
        self._cache: dict[int, Block] = {}

    # -- blocks -------------------------------------------------------------------------

    def block(self, bytenr: int, level: int, generation: int, first_key: Key | None) -> Block:
        """The tree block at logical ``bytenr``, which its parent says is at ``level``,
        written in ``generation`` and (for a child) starting with ``first_key``."""
        cached = self._cache.get(bytenr)
        if cached is not None:
            problem = self._expectation_problem(cached, level, generation, first_key)
            if problem:
                raise CorruptError(f"btrfs: tree block at logical {bytenr}: {problem}")
            return cached
        copies = self.chunks.copies(bytenr, self.nodesize, "tree block")
        problems = []
        for physical in copies:
            raw = self.source.pread(physical, self.nodesize)
            if len(raw) != self.nodesize:
                problems.append(f"copy at byte {physical} is past the end of the volume")
                continue
            block, problem = self._parse(bytenr, raw, level, generation)
            if block is not None:
                problem = self._expectation_problem(block, level, generation, first_key)
            if problem:
                problems.append(f"copy at byte {physical}: {problem}")
                continue
            assert block is not None
            if len(self._cache) >= CACHE_BLOCKS:
                self._cache.clear()
            self._cache[bytenr] = block
            return block
        raise CorruptError(f"btrfs: tree block at logical {bytenr}: {'; '.join(problems)}")

    def _parse(
        self, bytenr: int, raw: bytes, level: int, generation: int
    ) -> tuple[Block | None, str]:
        header = HEADER.read(raw)
        if not checksum_matches(self.csum_type, header.csum, raw[CSUM_START:]):
            return None, "checksum mismatch"
        if header.bytenr != bytenr:
            return None, f"header says it belongs at logical {header.bytenr}"
        if header.fsid != self.metadata_uuid:
            return None, "belongs to another filesystem (fsid)"
        if header.level != level or header.generation != generation:
            # The parent's word decides how to read the rest: say what disagrees first.
            partial = Block(bytenr, header.level, header.generation, [], [], raw)
            return None, self._expectation_problem(partial, level, generation, None)
        body = self.nodesize - HEADER.size
        entry = ITEM if header.level == 0 else KEY_PTR
        if header.nritems * entry.size > body:
            return None, f"{header.nritems} items do not fit the block"
        table = raw[HEADER.size : HEADER.size + header.nritems * entry.size]
        keys: list[Key] = []
        refs: list[tuple[int, int]] = []
        for objectid, type_, offset, a, b in entry.iter_unpack(table):
            keys.append(Key(objectid, type_, offset))
            refs.append((a, b))
        for index in range(1, len(keys)):
            if keys[index] <= keys[index - 1]:
                return None, f"keys out of order at slot {index}"
        if header.level == 0:
            problem = self._leaf_problem(refs, len(table), body)
            if problem:
                return None, problem
            refs = [(HEADER.size + offset, size) for offset, size in refs]
        elif not keys:
            return None, "an internal node with no items"
        return Block(bytenr, header.level, header.generation, keys, refs, raw), ""

    @staticmethod
    def _leaf_problem(refs: list[tuple[int, int]], table_end: int, body: int) -> str:
        for slot, (offset, size) in enumerate(refs):
            if offset < table_end or offset + size > body:
                return f"item {slot} data at {offset}+{size} is outside the leaf"
        return ""

    @staticmethod
    def _expectation_problem(
        block: Block, level: int, generation: int, first_key: Key | None
    ) -> str:
        if block.level != level:
            return f"level {block.level} where its parent expects {level}"
        if block.generation != generation:
            return f"generation {block.generation} where its parent expects {generation}"
        if first_key is not None and (not block.keys or block.keys[0] != first_key):
            return "its first key is not the one its parent names"
        return ""

    # -- walks --------------------------------------------------------------------------

    def items(self, root: TreeRoot, start: Key) -> Iterator[Item]:
        """Every item of the tree from the first key >= ``start`` on, in key order."""
        if root.level >= MAX_LEVEL:
            raise CorruptError(f"btrfs: {root.name} root at {root.bytenr} has level {root.level}")
        top = self.block(root.bytenr, root.level, root.generation, None)
        yield from self._walk(top, start, _Walk())

    def _walk(self, block: Block, start: Key, walk: _Walk) -> Iterator[Item]:
        if walk.last is not None and block.keys and block.keys[0] <= walk.last:
            raise CorruptError(
                f"btrfs: tree block at logical {block.bytenr}: keys go back (a loop in the tree)"
            )
        if block.level == 0:
            for slot in range(bisect.bisect_left(block.keys, start), len(block.keys)):
                walk.last = block.keys[slot]
                yield block.item(slot)
            return
        first = max(0, bisect.bisect_right(block.keys, start) - 1)
        for slot in range(first, len(block.keys)):
            blockptr, generation = block.refs[slot]
            child = self.block(blockptr, block.level - 1, generation, block.keys[slot])
            yield from self._walk(child, start, walk)

    def find(self, root: TreeRoot, key: Key) -> Item | None:
        """The item with exactly ``key``, or None."""
        for item in self.items(root, key):
            return item if item.key == key else None
        return None

    def items_of(
        self, root: TreeRoot, objectid: int, type_: int, offset: int = 0
    ) -> Iterator[Item]:
        """The items with ``objectid`` and ``type_``, from ``offset`` on."""
        for item in self.items(root, Key(objectid, type_, offset)):
            if item.key.objectid != objectid or item.key.type != type_:
                return
            yield item
