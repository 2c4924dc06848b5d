"""Vdev labels and uberblocks (ZFS On-Disk Specification, chapter 1).

A device carries four 256 KiB labels, two at its start and two at its end (the size
rounded down to 256 KiB). Each holds the pool configuration as a packed nvlist and a
ring of uberblocks; the uberblock with the highest txg whose checksum holds is the root
of the pool. Labels and uberblocks carry their own checksum (a zio_eck_t tail): SHA-256
of the block with the checksum field set to the block's byte offset on the device.
"""

from __future__ import annotations

import struct

from ..._typing import TYPE_CHECKING
from ...disk import ByteSource
from ...errors import CorruptError, UnsupportedError
from ...log import get_logger
from ...record import record
from .nvlist import decode_packed

# CPython's own SHA-256, as hashlib falls back to it: hashlib loads OpenSSL first, 4-5 ms
# of every ZFS boot (each label and uberblock carries a SHA-256).
try:
    from _sha2 import sha256  # Python 3.12 and later
except ImportError:
    try:
        from _sha256 import sha256  # Python 3.10 and 3.11
    except ImportError:
        from hashlib import sha256

if TYPE_CHECKING:
    from .nvlist import NvList

log = get_logger(__name__)

LABEL_SIZE = 256 << 10
LABEL_COUNT = 4
#: vdev_phys_t: the packed config nvlist, 112 KiB at 16 KiB into each label.
VDEV_PHYS_OFFSET = 16 << 10
VDEV_PHYS_SIZE = 112 << 10
#: The uberblock ring: the second 128 KiB of each label.
UBERBLOCK_RING_OFFSET = 128 << 10
UBERBLOCK_RING_SIZE = 128 << 10
#: Slots are 1 KiB, or 1 << ashift for larger sectors, at most 8 KiB (MAX_UBERBLOCK_SHIFT).
UBERBLOCK_MIN_SHIFT = 10
UBERBLOCK_MAX_SHIFT = 13

UBERBLOCK_MAGIC = 0x00BAB10C
#: zio_eck_t: zec_magic, then zec_cksum (four 64-bit words)
ZEC_MAGIC = 0x0210DA7AB10C7A11
ECK_SIZE = 40

# uberblock_t: ub_magic, ub_version, ub_txg, ub_guid_sum, ub_timestamp, then ub_rootbp
_UBERBLOCK_HEAD = ("ub_magic", "ub_version", "ub_txg", "ub_guid_sum", "ub_timestamp")
UB_ROOTBP_OFFSET = 40
BLKPTR_SIZE = 128

#: Pool versions this reader knows: the numbered ones, and 5000 (feature flags).
MAX_LEGACY_VERSION = 28
FEATURES_VERSION = 5000

#: What a probe looks for at byte 16 KiB (label 0's config): the XDR nvlist header of a
#: little- or big-endian writer (encoding 1, endianness, version 0, flags NV_UNIQUE_NAME).
#: The uberblock ring cannot serve: its slots fill only as txgs pass.
PROBE_OFFSET = VDEV_PHYS_OFFSET
PROBE_MAGICS = (
    bytes.fromhex("010100000000000000000001"),
    bytes.fromhex("010000000000000000000001"),
)


@record(frozen=True)
class Uberblock:
    order: str  # struct byte order of the writer: "<" or ">"
    version: int
    txg: int
    guid_sum: int
    timestamp: int
    rootbp: bytes
    #: Byte offset of the slot on the device (for messages).
    offset: int


@record(frozen=True)
class Label:
    index: int
    offset: int
    config: NvList


def label_offsets(size: int) -> list[int]:
    """Where the four labels start on a device of ``size`` bytes (0 if it is too small)."""
    usable = size - size % LABEL_SIZE
    if usable < 2 * LABEL_COUNT * LABEL_SIZE:
        return []
    return [0, LABEL_SIZE, usable - 2 * LABEL_SIZE, usable - LABEL_SIZE]


def embedded_checksum_ok(block: bytes, verifier: tuple[int, int, int, int]) -> tuple[bool, str]:
    """Whether the zio_eck_t tail of ``block`` holds, and the byte order it was written in.

    The checksum is SHA-256 of the block with zec_cksum replaced by the verifier (a
    label's or uberblock's byte offset on the device; a gang header's DVA and birth);
    the stored words are the digest as four big-endian 64-bit integers, each written in
    the writer's byte order, which zec_magic tells.
    """
    if len(block) < ECK_SIZE:
        return False, "<"
    tail = len(block) - ECK_SIZE
    for order in ("<", ">"):
        if struct.unpack_from(order + "Q", block, tail)[0] == ZEC_MAGIC:
            break
    else:
        return False, "<"
    stored = struct.unpack_from(order + "4Q", block, tail + 8)
    digest = sha256(block[: tail + 8] + struct.pack(order + "4Q", *verifier)).digest()
    return struct.unpack(">4Q", digest) == stored, order


def read_labels(source: ByteSource) -> list[Label]:
    """The labels whose checksum holds and whose config decodes, in label order."""
    labels = []
    for index, start in enumerate(label_offsets(source.size)):
        offset = start + VDEV_PHYS_OFFSET
        raw = source.pread(offset, VDEV_PHYS_SIZE)
        ok, _order = embedded_checksum_ok(raw, (offset, 0, 0, 0))
        if not ok:
            log.info("zfs: label %d at byte %d: bad checksum, skipped", index, start)
            continue
        try:
            config = decode_packed(raw[:-ECK_SIZE], offset, f"label {index} config")
        except CorruptError as e:
            log.info("%s, label skipped", e)
            continue
        labels.append(Label(index, start, config))
    return labels


def uberblock_shift(config: NvList) -> int:
    """log2 of the uberblock slot size: max(ashift, 10), at most 13."""
    tree = config.get("vdev_tree")
    ashift = tree.get("ashift", 9) if isinstance(tree, dict) else 9
    if not isinstance(ashift, int) or not 9 <= ashift <= 16:
        raise CorruptError(f"zfs: label vdev_tree ashift {ashift!r} is out of range")
    return min(max(ashift, UBERBLOCK_MIN_SHIFT), UBERBLOCK_MAX_SHIFT)


def read_uberblocks(source: ByteSource, label: Label, shift: int) -> list[Uberblock]:
    """Every valid uberblock in one label's ring."""
    ring_offset = label.offset + UBERBLOCK_RING_OFFSET
    ring = source.pread(ring_offset, UBERBLOCK_RING_SIZE)
    slot_size = 1 << shift
    found = []
    for slot in range(len(ring) // slot_size):
        offset = ring_offset + slot * slot_size
        block = ring[slot * slot_size : (slot + 1) * slot_size]
        ub = parse_uberblock(block, offset)
        if ub is None:
            continue
        ok, _order = embedded_checksum_ok(block, (offset, 0, 0, 0))
        if not ok:
            log.info("zfs: uberblock at byte %d (txg %d): bad checksum, skipped", offset, ub.txg)
            continue
        found.append(ub)
    return found


def parse_uberblock(block: bytes, offset: int) -> Uberblock | None:
    """The uberblock in a slot, or None when the slot holds no uberblock magic."""
    for order in ("<", ">"):
        if struct.unpack_from(order + "Q", block)[0] == UBERBLOCK_MAGIC:
            break
    else:
        return None
    _magic, version, txg, guid_sum, timestamp = struct.unpack_from(order + "5Q", block)
    rootbp = block[UB_ROOTBP_OFFSET : UB_ROOTBP_OFFSET + BLKPTR_SIZE]
    return Uberblock(order, version, txg, guid_sum, timestamp, rootbp, offset)


def check_version(version: object, where: str) -> int:
    if not isinstance(version, int) or not (
        1 <= version <= MAX_LEGACY_VERSION or version == FEATURES_VERSION
    ):
        raise UnsupportedError(f"zfs: {where}: pool version {version!r} is not supported")
    return version


def best_uberblocks(source: ByteSource, labels: list[Label], shift: int) -> list[Uberblock]:
    """Valid uberblocks of every label, best first (highest txg, then latest timestamp)."""
    seen: dict[tuple[int, int, bytes], Uberblock] = {}
    for label in labels:
        for ub in read_uberblocks(source, label, shift):
            seen.setdefault((ub.txg, ub.timestamp, ub.rootbp), ub)
    return sorted(seen.values(), key=lambda ub: (ub.txg, ub.timestamp), reverse=True)
