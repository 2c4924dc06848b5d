"""Block pointers: where a block is, how to check it and how to decode it (spa.h).

A blkptr_t is 128 bytes: three DVAs (vdev, offset, allocated size; a gang bit), a
properties word (sizes, compression, checksum, type, level, byte order), birth txgs,
a fill count and a 256-bit checksum. An embedded block pointer carries up to 112 bytes
of compressed data in place of DVAs and checksum; a hole has no DVA at all.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from itertools import accumulate

from ...compress import Undecodable, inflate, lz4_decoder, zstd_prefix
from ...disk import ByteSource
from ...errors import CorruptError, LimitError, UnsupportedError
from ...log import get_logger
from ...record import record
from .label import embedded_checksum_ok, sha256

log = get_logger(__name__)

BLKPTR_SIZE = 128
#: Blocks are read at DVA offset + 4 MiB: two labels and the boot area come first.
VDEV_LABEL_START_SIZE = 4 << 20
SECTOR_SHIFT = 9
#: The largest block (SPA_MAXBLOCKSIZE with large_blocks): no lsize may pass it.
MAX_BLOCK_SIZE = 16 << 20
GANG_HEADER_SIZE = 512
GANG_BLKPTRS = 3
#: Gang blocks inside gang blocks: ZFS needs few levels; we allow a handful.
MAX_GANG_DEPTH = 4

# The properties word (blk_prop), bit fields per spa.h: (shift, width)
_LSIZE = (0, 16)
_PSIZE = (16, 16)
_COMPRESS = (32, 7)
_EMBEDDED = (39, 1)
_CHECKSUM = (40, 8)
_TYPE = (48, 8)
_LEVEL = (56, 5)
_ENCRYPTED = (61, 1)
_DEDUP = (62, 1)
_BYTEORDER = (63, 1)
# Embedded pointers: sizes in bytes (minus one) instead of sectors, the type in CHECKSUM.
_E_LSIZE = (0, 25)
_E_PSIZE = (25, 7)
BP_EMBEDDED_TYPE_DATA = 0
#: Payload words of an embedded pointer: all but blk_prop (6) and blk_birth (10).
EMBEDDED_PAYLOAD_WORDS = (0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 15)

# enum zio_checksum
CHECKSUM_NAMES = {
    0: "inherit",
    1: "on",
    2: "off",
    3: "label",
    4: "gang_header",
    5: "zilog",
    6: "fletcher2",
    7: "fletcher4",
    8: "sha256",
    9: "zilog2",
    10: "noparity",
    11: "sha512",
    12: "skein",
    13: "edonr",
    14: "blake3",
}
CK_OFF = 2
CK_FLETCHER2 = 6
CK_FLETCHER4 = 7
CK_SHA256 = 8
CK_NOPARITY = 10
CK_SHA512 = 11

# enum zio_compress
COMPRESS_NAMES = {
    0: "inherit",
    1: "on",
    2: "off",
    3: "lzjb",
    4: "empty",
    **{5 + level - 1: f"gzip-{level}" for level in range(1, 10)},
    14: "zle",
    15: "lz4",
    16: "zstd",
}
C_INHERIT, C_ON, C_OFF, C_LZJB, C_EMPTY = 0, 1, 2, 3, 4
C_GZIP_FIRST, C_GZIP_LAST = 5, 13
C_ZLE, C_LZ4, C_ZSTD = 14, 15, 16


def bits(word: int, field: tuple[int, int]) -> int:
    shift, width = field
    return (word >> shift) & ((1 << width) - 1)


@record(frozen=True)
class Dva:
    vdev: int
    offset: int  # bytes, from the end of the label/boot area
    asize: int
    gang: bool


@record(frozen=True)
class BlockPointer:
    raw: bytes
    #: Byte order of the block holding this pointer (its words read that way).
    container_order: str
    dvas: tuple[Dva, ...]
    lsize: int
    psize: int
    compress: int
    checksum: int
    type: int
    level: int
    #: Byte order of the block this pointer points to.
    order: str
    embedded: bool
    encrypted: bool
    birth: int
    phys_birth: int
    fill: int
    cksum: tuple[int, int, int, int]

    @property
    def is_hole(self) -> bool:
        return not self.embedded and not self.dvas

    def describe(self) -> str:
        if self.embedded:
            return f"embedded block pointer (lsize {self.lsize})"
        if not self.dvas:
            return "hole"
        first = self.dvas[0]
        return f"block at vdev {first.vdev} offset {first.offset} (lsize {self.lsize})"


def parse_blkptr(raw: bytes, order: str, where: str = "block pointer") -> BlockPointer:
    """A blkptr_t read in ``order``; sizes are checked, nothing is read from disk yet."""
    if len(raw) != BLKPTR_SIZE:
        raise CorruptError(f"zfs: {where}: {len(raw)} bytes, not {BLKPTR_SIZE}")
    words = struct.unpack(order + "16Q", raw)
    prop = words[6]
    embedded = bool(bits(prop, _EMBEDDED))
    kwargs = dict(
        raw=raw,
        container_order=order,
        compress=bits(prop, _COMPRESS),
        type=bits(prop, _TYPE),
        level=bits(prop, _LEVEL),
        order="<" if bits(prop, _BYTEORDER) else ">",
        embedded=embedded,
        encrypted=bool(bits(prop, _ENCRYPTED)),
        birth=words[10],
        phys_birth=words[9],
        fill=words[11],
    )
    if embedded:
        return BlockPointer(
            dvas=(),
            lsize=bits(prop, _E_LSIZE) + 1,
            psize=bits(prop, _E_PSIZE) + 1,
            checksum=bits(prop, _CHECKSUM),  # the embedded type
            cksum=(0, 0, 0, 0),
            **kwargs,
        )
    dvas = []
    for i in range(3):
        w0, w1 = words[2 * i], words[2 * i + 1]
        if w0 == 0 and w1 == 0:
            continue
        asize = (w0 & 0xFFFFFF) << SECTOR_SHIFT
        vdev = w0 >> 32
        offset = (w1 & ((1 << 63) - 1)) << SECTOR_SHIFT
        dvas.append(Dva(vdev, offset, asize, bool(w1 >> 63)))
    # A hole is an empty first DVA; later copies mean nothing without it.
    if words[0] == 0 and words[1] == 0:
        dvas = []
    return BlockPointer(
        dvas=tuple(dvas),
        lsize=(bits(prop, _LSIZE) + 1) << SECTOR_SHIFT,
        psize=(bits(prop, _PSIZE) + 1) << SECTOR_SHIFT,
        checksum=bits(prop, _CHECKSUM),
        cksum=words[12:16],
        **kwargs,
    )


def blkptr_array(buf: bytes, order: str, count: int, base: int = 0) -> list[BlockPointer]:
    return [
        parse_blkptr(buf[base + i * BLKPTR_SIZE : base + (i + 1) * BLKPTR_SIZE], order)
        for i in range(count)
    ]


# -- checksums ----------------------------------------------------------------------

_MASK64 = (1 << 64) - 1


def _fletcher_stream(words: list[int] | tuple[int, ...]) -> tuple[int, int, int, int]:
    """(a, b, c, d) of the fourth-order Fletcher sum over ``words``, mod 2**64.

    The loop ``a += w; b += a; c += b; d += c`` leaves each sum the total of the running
    values of the one before, so three accumulate() passes and a sum, all in C, give them;
    wrapping at 64 bits once at the end equals wrapping at every step.
    """
    if not words:
        return 0, 0, 0, 0
    first = list(accumulate(words))
    second = list(accumulate(first))
    third = list(accumulate(second))
    return first[-1] & _MASK64, second[-1] & _MASK64, third[-1] & _MASK64, sum(third) & _MASK64


def fletcher4(data: bytes, order: str) -> tuple[int, int, int, int]:
    """fletcher_4: 32-bit words, four 64-bit running sums."""
    count = len(data) // 4
    return _fletcher_stream(struct.unpack(f"{order}{count}I", data[: count * 4]))


def fletcher2(data: bytes, order: str) -> tuple[int, int, int, int]:
    """fletcher_2: 64-bit words taken in pairs, two interleaved second-order sums."""
    count = len(data) // 16 * 2
    words = struct.unpack(f"{order}{count}Q", data[: count * 8])
    a0, b0, _, _ = _fletcher_stream(words[0::2])
    a1, b1, _, _ = _fletcher_stream(words[1::2])
    return a0, a1, b0, b1


def sha256_words(data: bytes) -> tuple[int, ...]:
    return struct.unpack(">4Q", sha256(data).digest())


def sha512_words(data: bytes, order: str) -> tuple[int, ...] | None:
    """ZFS's "sha512": SHA-512/256 (SHA-512 with its own IV, cut to 256 bits), its digest
    taken as words in the writer's byte order (unlike SHA-256's, ZFS does not make them
    big-endian), or None where this Python's OpenSSL lacks it. hashlib is imported here,
    not at start-up: it loads OpenSSL, which pools without sha512 blocks never need."""
    import hashlib

    try:
        digest = hashlib.new("sha512_256", data).digest()
    except ValueError:
        return None
    return struct.unpack(order + "4Q", digest)


#: Checksums we could not verify, logged once each.
_unverified_logged: set[int] = set()


def verify_checksum(bp: BlockPointer, data: bytes) -> None:
    """Raise CorruptError when ``data`` (psize bytes) does not match the pointer's checksum."""
    kind = bp.checksum
    got: tuple[int, ...]
    if kind == CK_FLETCHER2:
        got = fletcher2(data, bp.order)
    elif kind == CK_FLETCHER4:
        got = fletcher4(data, bp.order)
    elif kind == CK_SHA256:
        got = sha256_words(data)
    elif kind == CK_SHA512 and (sha512 := sha512_words(data, bp.order)) is not None:
        got = sha512
    else:
        if kind not in (CK_OFF, CK_NOPARITY) and kind not in _unverified_logged:
            _unverified_logged.add(kind)
            name = CHECKSUM_NAMES.get(kind, str(kind))
            log.info("zfs: %s checksums are accepted without verification", name)
        return
    if tuple(got) != tuple(bp.cksum):
        raise CorruptError(f"zfs: {bp.describe()}: {CHECKSUM_NAMES[kind]} checksum does not match")


# -- decompression ------------------------------------------------------------------


def decompress(bp: BlockPointer, data: bytes, what: str) -> bytes:
    """The lsize bytes of a block from its psize stored bytes."""
    comp = bp.compress
    size = bp.lsize
    if comp in (C_OFF, C_INHERIT) or (comp == C_ON and bp.psize == size and not bp.embedded):
        if len(data) < size:
            raise CorruptError(f"zfs: {what}: {len(data)} stored bytes for {size} logical")
        return data[:size]
    if comp == C_EMPTY:
        return bytes(size)
    try:
        if comp in (C_LZJB, C_ON):
            out = lzjb_decompress(data, size)
        elif C_GZIP_FIRST <= comp <= C_GZIP_LAST:
            out = inflate(data, size)  # gzip-N is zlib's format, not gzip's
        elif comp == C_ZLE:
            out = zle_decompress(data, size)
        elif comp == C_LZ4:
            out = lz4_decompress(data, size)
        elif comp == C_ZSTD:
            out = zstd_decompress(data, size)
        else:
            raise UnsupportedError(
                f"zfs: {what}: compression {COMPRESS_NAMES.get(comp, comp)} is not supported"
            )
    except Undecodable as e:
        raise CorruptError(f"zfs: {what}: {e}") from None
    if len(out) != size:
        raise CorruptError(
            f"zfs: {what}: {COMPRESS_NAMES[comp]} data decodes to {len(out)} bytes, not {size}"
        )
    return out


def lzjb_decompress(src: bytes, size: int) -> bytes:
    """LZJB: a copy-map byte before each 8 items; an item is a literal byte, or two bytes
    holding a 6-bit length (+3) and a 10-bit distance back into the output."""
    out = bytearray()
    have = pos = 0
    end = len(src)
    while have < size:
        if pos >= end:
            raise Undecodable("lzjb stream ends early")
        copymap = src[pos]
        pos += 1
        if not copymap and pos + 8 <= end and have + 8 <= size:  # eight literals at once
            out += src[pos : pos + 8]
            pos += 8
            have += 8
            continue
        for bit in range(8):
            if have >= size:
                break
            if not copymap >> bit & 1:
                if pos >= end:
                    raise Undecodable("lzjb stream ends early")
                out.append(src[pos])
                pos += 1
                have += 1
                continue
            if pos + 2 > end:
                raise Undecodable("lzjb stream ends early")
            high, low = src[pos], src[pos + 1]
            pos += 2
            distance = (high << 8 | low) & 0x3FF
            if distance == 0 or distance > have:
                raise Undecodable(f"lzjb match reaches {distance} bytes back")
            length = min((high >> 2) + 3, size - have)
            start = have - distance
            if distance >= length:
                out += out[start : start + length]
            else:  # the match overlaps what it writes: repeat the period
                out += (out[start:] * (length // distance + 1))[:length]
            have += length
    return bytes(out)


def zle_decompress(src: bytes, size: int) -> bytes:
    """ZLE: a byte n < 64 says n+1 literal bytes follow; n >= 64 stands for n-63 zeros."""
    out = bytearray()
    pos = 0
    while len(out) < size and pos < len(src):
        n = src[pos]
        pos += 1
        if n < 64:
            count = n + 1
            if pos + count > len(src) or len(out) + count > size:
                raise Undecodable("zle literal runs past its buffer")
            out += src[pos : pos + count]
            pos += count
        else:
            count = n - 63
            if len(out) + count > size:
                raise Undecodable("zle zero run past the block")
            out += bytes(count)
    return bytes(out)


_LZ4_HEADER = struct.Struct(">I")
# zfs_zstdhdr_t: c_len (big-endian), then version and level (big-endian, packed)
_ZSTD_HEADER = struct.Struct(">II")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def lz4_decompress(src: bytes, size: int) -> bytes:
    """ZFS lz4: a big-endian 32-bit length of the compressed stream, then one lz4 block."""
    if len(src) < _LZ4_HEADER.size:
        raise Undecodable("lz4 block shorter than its header")
    (length,) = _LZ4_HEADER.unpack_from(src)
    if length > len(src) - _LZ4_HEADER.size:
        raise Undecodable(f"lz4 stream of {length} bytes in a {len(src)}-byte block")
    return lz4_decoder("zfs")(src[4 : 4 + length], size)


def zstd_decompress(src: bytes, size: int) -> bytes:
    """ZFS zstd: a big-endian compressed length and a version/level word, then a frame."""
    if len(src) < _ZSTD_HEADER.size:
        raise Undecodable("zstd block shorter than its header")
    length, _version_level = _ZSTD_HEADER.unpack_from(src)
    if length > len(src) - _ZSTD_HEADER.size:
        raise Undecodable(f"zstd frame of {length} bytes in a {len(src)}-byte block")
    # OpenZFS writes magicless frames (ZSTD_f_zstd1_magicless): the standard frame but
    # for its first four bytes, which a standard decoder needs back.
    frame = ZSTD_MAGIC + src[_ZSTD_HEADER.size : _ZSTD_HEADER.size + length]
    # One byte over the block size tells a frame that says more than it should.
    return zstd_prefix(frame, size + 1, MAX_BLOCK_SIZE, "zfs")


# -- reading blocks -----------------------------------------------------------------


class BlockReader:
    """Reads, checks and decodes blocks of one pool from the one device we have.

    ``vdevs`` are the top-level vdev ids whose data this device holds (its own vdev,
    a mirror it belongs to); a DVA elsewhere is skipped for the next copy.
    """

    #: Decoded blocks kept: indirect blocks, dnode blocks and ZAP blocks are reread often.
    CACHE_BYTES = 32 << 20

    def __init__(self, source: ByteSource, vdevs: frozenset[int]) -> None:
        self.source = source
        self.vdevs = vdevs
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cached_bytes = 0

    def read(self, bp: BlockPointer, what: str) -> bytes:
        """The lsize logical bytes of the block ``bp`` points to (zeros for a hole)."""
        if bp.lsize > MAX_BLOCK_SIZE:
            raise LimitError(f"zfs: {what}: block of {bp.lsize} bytes (over {MAX_BLOCK_SIZE})")
        if bp.is_hole:
            return bytes(bp.lsize)
        if bp.encrypted:
            raise UnsupportedError(f"zfs: {what}: the block is encrypted")
        key = bp.raw + bp.container_order.encode()
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        data = self._read_uncached(bp, what)
        self._remember(key, data)
        return data

    def _remember(self, key: bytes, data: bytes) -> None:
        self._cache[key] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > self.CACHE_BYTES and self._cache:
            _key, old = self._cache.popitem(last=False)
            self._cached_bytes -= len(old)

    def _read_uncached(self, bp: BlockPointer, what: str) -> bytes:
        if bp.embedded:
            return decompress(bp, embedded_payload(bp, what), what)
        if bp.psize > bp.lsize and bp.compress not in (C_OFF, C_INHERIT):
            raise CorruptError(f"zfs: {what}: psize {bp.psize} is over lsize {bp.lsize}")
        errors = []
        for dva in bp.dvas:
            try:
                stored = self._stored_bytes(bp, dva, what, 0)
                verify_checksum(bp, stored)
            except CorruptError as e:
                errors.append(str(e))
                continue
            return decompress(bp, stored, what)
        if not errors:
            raise UnsupportedError(
                f"zfs: {what}: no copy of the block is on this device (vdevs "
                f"{sorted(d.vdev for d in bp.dvas)}, this device holds {sorted(self.vdevs)})"
            )
        raise CorruptError(errors[-1] if len(errors) == 1 else f"{errors[-1]} (and every copy)")

    def _stored_bytes(self, bp: BlockPointer, dva: Dva, what: str, depth: int) -> bytes:
        """The psize stored bytes behind one DVA, gathered from gang members if need be."""
        if dva.vdev not in self.vdevs:
            raise CorruptError(f"zfs: {what}: copy on vdev {dva.vdev}, not on this device")
        if dva.gang:
            return self._gang_bytes(bp, dva, what, depth)
        return self._device_bytes(dva.offset, bp.psize, what)

    def _device_bytes(self, offset: int, length: int, what: str) -> bytes:
        start = VDEV_LABEL_START_SIZE + offset
        data = self.source.pread(start, length) if start + length <= self.source.size else b""
        if len(data) != length:
            raise CorruptError(
                f"zfs: {what}: {length} bytes at device byte {start} are past the end "
                f"of the {self.source.size}-byte device"
            )
        return data

    def _gang_bytes(self, bp: BlockPointer, dva: Dva, what: str, depth: int) -> bytes:
        """A gang block: a 512-byte header of three pointers whose data, in order, make
        the block's stored bytes. The header checks itself (SHA-256 with a verifier made
        of the DVA's vdev and offset and the pointer's birth txg)."""
        if depth >= MAX_GANG_DEPTH:
            raise LimitError(f"zfs: {what}: gang blocks nested over {MAX_GANG_DEPTH} deep")
        header = self._device_bytes(dva.offset, GANG_HEADER_SIZE, f"gang header of {what}")
        ok, order = gang_header_ok(header, bp)
        if not ok:
            raise CorruptError(
                f"zfs: gang header of {what} at vdev {dva.vdev} offset {dva.offset}: bad checksum"
            )
        parts = []
        total = 0
        for member in blkptr_array(header, order, GANG_BLKPTRS):
            if member.is_hole or total >= bp.psize:
                continue
            if member.embedded or not member.dvas:
                raise CorruptError(f"zfs: gang header of {what}: member is not a plain block")
            data = None
            for member_dva in member.dvas:
                try:
                    stored = self._stored_bytes(member, member_dva, what, depth + 1)
                    verify_checksum(member, stored)
                    data = decompress(member, stored, what)
                    break
                except CorruptError:
                    continue
            if data is None:
                raise CorruptError(f"zfs: gang member of {what}: no good copy")
            parts.append(data)
            total += len(data)
        if total < bp.psize:
            raise CorruptError(f"zfs: gang block of {what}: {total} bytes for psize {bp.psize}")
        return b"".join(parts)[: bp.psize]


def gang_header_ok(header: bytes, bp: BlockPointer) -> tuple[bool, str]:
    """The gang header's embedded checksum; its verifier is the pointer's first DVA
    (vdev, byte offset) and its physical birth txg."""
    first = bp.dvas[0]
    return embedded_checksum_ok(header, (first.vdev, first.offset, bp.phys_birth or bp.birth, 0))


def embedded_payload(bp: BlockPointer, what: str) -> bytes:
    """The psize bytes an embedded pointer carries in its payload words."""
    if bp.checksum != BP_EMBEDDED_TYPE_DATA:
        raise UnsupportedError(f"zfs: {what}: embedded block pointer of type {bp.checksum}")
    words = struct.unpack(bp.container_order + "16Q", bp.raw)
    payload = b"".join(struct.pack("<Q", words[i]) for i in EMBEDDED_PAYLOAD_WORDS)
    if bp.psize > len(payload):
        raise CorruptError(f"zfs: {what}: embedded payload of {bp.psize} bytes (over 112)")
    return payload[: bp.psize]


__all__ = ["BlockPointer", "BlockReader", "parse_blkptr", "embedded_checksum_ok"]
