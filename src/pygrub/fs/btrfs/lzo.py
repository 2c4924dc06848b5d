"""LZO1X decompression, and the segment framing btrfs wraps around it.

The instruction set is the one the Linux kernel's Documentation/staging/lzo.rst
describes. Output is bounded by the caller's limit, and every match is checked to lie
inside the output written so far, so hostile input costs at most ``limit`` bytes.
"""

from __future__ import annotations

from ...errors import CorruptError

#: The bytes of a btrfs LZO length field (the total header and each segment header).
LZO_LEN = 4
#: A match this far back or further starts the M4 range (16..48 KiB back).
M4_BASE = 0x4000
#: State-4 two-byte-opcode matches start this far back (M2_MAX_OFFSET + 1).
M1_FAR_BASE = 2049


def _error(problem: str, pos: int) -> CorruptError:
    return CorruptError(f"lzo: {problem} at input byte {pos}")


def lzo1x_decompress(src: bytes, limit: int) -> bytes:
    """The bytes of one LZO1X stream; CorruptError if it is malformed or decodes to more
    than ``limit`` bytes.

    One flat loop with local variables: this runs once per instruction of every
    compressed sector, and CPython charges for each call. Reading past the end of
    ``src`` raises IndexError, which becomes the one "stream ends" error.
    """
    if not src:
        raise _error("empty stream", 0)
    if src[0] == 17 and len(src) >= 5:
        raise _error("a versioned (lzo-rle) stream, which btrfs never writes,", 0)
    out = bytearray()
    end = len(src)
    pos = 0
    state = 0
    literals = 0
    if src[0] > 17:
        pos = 1
        literals = src[0] - 17
    try:
        while True:
            if literals:
                if pos + literals > end:
                    raise _error(f"{literals} literals run past the end of the stream", pos)
                if len(out) + literals > limit:
                    raise _error(f"output passes {limit} bytes", pos)
                out += src[pos : pos + literals]
                pos += literals
                state = min(literals, 4)
                literals = 0
            op = src[pos]
            pos += 1
            if op < 16:
                if state == 0:
                    # A run of 4 or more literals.
                    if op == 0:
                        op, pos = _long_length(src, pos, 15)
                    literals = op + 3
                    continue
                # A short match; how far back depends on whether literals preceded it.
                if state < 4:
                    length, distance = 2, (src[pos] << 2) + (op >> 2) + 1
                else:
                    length, distance = 3, (src[pos] << 2) + (op >> 2) + M1_FAR_BASE
                pos += 1
                literals = op & 3
            elif op >= 64:
                length = (op >> 5) + 1
                distance = (src[pos] << 3) + ((op >> 2) & 7) + 1
                pos += 1
                literals = op & 3
            elif op >= 32:
                length = op & 31
                if length == 0:
                    length, pos = _long_length(src, pos, 31)
                length += 2
                word = src[pos] | (src[pos + 1] << 8)
                pos += 2
                distance = (word >> 2) + 1
                literals = word & 3
            else:
                length = op & 7
                if length == 0:
                    length, pos = _long_length(src, pos, 7)
                length += 2
                word = src[pos] | (src[pos + 1] << 8)
                pos += 2
                distance = ((op & 8) << 11) + (word >> 2)
                literals = word & 3
                if distance == 0:
                    if length != 3:
                        raise _error("malformed end-of-stream marker", pos)
                    if pos != end:
                        raise _error("data after the end-of-stream marker", pos)
                    return bytes(out)
                distance += M4_BASE
            written = len(out)
            if distance > written:
                raise _error(f"match {distance} bytes back with {written} bytes written", pos)
            if written + length > limit:
                raise _error(f"output passes {limit} bytes", pos)
            start = written - distance
            if distance >= length:
                out += out[start : start + length]
            else:
                # An overlapping match repeats the last ``distance`` bytes.
                out += (out[start:] * (length // distance + 1))[:length]
            # The two low bits of a match give the literals after it: 0..3.
            state = literals
    except IndexError:
        raise _error("stream ends inside an instruction", end) from None


def _long_length(src: bytes, pos: int, base: int) -> tuple[int, int]:
    """A length that did not fit its opcode, and the position after it: each zero byte
    adds 255, then the first non-zero byte is added (and ``base``)."""
    start = pos
    while src[pos] == 0:
        pos += 1
    return base + 255 * (pos - start) + src[pos], pos + 1


def worst_segment(sectorsize: int) -> int:
    """lzo1x_worst_compress(sectorsize): no segment of a sector is larger."""
    return sectorsize + sectorsize // 16 + 64 + 3 + 2


def btrfs_lzo_decompress(data: bytes, size: int, sectorsize: int) -> bytes:
    """At most ``size`` bytes from btrfs's LZO framing: a 4-byte total length, then
    segments (a 4-byte length and one LZO1X stream of at most a sector of output each),
    where a segment header never crosses a sector boundary (zeros pad the sector)."""
    if len(data) < LZO_LEN:
        raise CorruptError(f"lzo: {len(data)} bytes hold no header")
    total = int.from_bytes(data[:LZO_LEN], "little")
    if not LZO_LEN <= total <= len(data):
        raise CorruptError(f"lzo: total length {total} of a {len(data)}-byte extent")
    out = bytearray()
    pos = LZO_LEN
    while pos < total and len(out) < size:
        if sectorsize - pos % sectorsize < LZO_LEN:
            pos += sectorsize - pos % sectorsize
            continue
        if pos + LZO_LEN > total:
            raise CorruptError(f"lzo: segment header at byte {pos} runs past the end")
        length = int.from_bytes(data[pos : pos + LZO_LEN], "little")
        pos += LZO_LEN
        if length > worst_segment(sectorsize) or pos + length > total:
            raise CorruptError(f"lzo: segment of {length} bytes at byte {pos - LZO_LEN}")
        out += lzo1x_decompress(data[pos : pos + length], sectorsize)
        pos += length
    return bytes(out[:size])
