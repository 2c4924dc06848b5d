"""Bounded decompressors, shared by every reader that meets compressed data.

Each decoder returns at most ``limit`` bytes however large the stream claims to be, and
raises Undecodable for a malformed stream; the caller adds which block it was. A
compression library is imported only when a stream of its kind is met. lz4 and
zstandard are dependencies of the package (on Python 3.14+ the standard library's
compression.zstd serves instead of zstandard); a broken install that lacks one gets an
UnsupportedError naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType

from ._typing import TYPE_CHECKING
from .errors import CorruptError, UnsupportedError

if TYPE_CHECKING:
    from typing import Any

#: What a hostile xz/lzma header may make the decoder allocate.
LZMA_MEMLIMIT = 64 << 20
#: The largest zstd window accepted unless a format sets its own.
ZSTD_MAX_WINDOW = 8 << 20

#: (compressed bytes, limit) -> at most ``limit`` decoded bytes.
Decoder = Callable[[bytes, int], bytes]


class Undecodable(CorruptError):
    """A compressed stream is malformed or decodes past its bound."""


# -- zlib ---------------------------------------------------------------------------------


def inflate(data: bytes, limit: int, wbits: int = 15) -> bytes:
    """The first ``limit`` bytes a zlib stream (raw deflate when ``wbits`` < 0) inflates
    to; what the stream holds past them is never decoded."""
    import zlib

    try:
        return zlib.decompressobj(wbits).decompress(data, limit)
    except zlib.error as e:
        raise Undecodable(f"zlib: {e}") from None


def inflate_whole(data: bytes, limit: int) -> bytes:
    """A whole zlib stream, which must end within ``limit`` bytes of output."""
    import zlib

    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
        # At exactly ``limit`` bytes zlib may stop before the end-of-stream marker.
        if not d.eof and (d.decompress(d.unconsumed_tail, 1) or not d.eof):
            raise Undecodable(f"zlib stream is truncated or inflates past {limit} bytes")
    except zlib.error as e:
        raise Undecodable(f"zlib: {e}") from None
    return out


# -- lzma, lz4, zstd ------------------------------------------------------------------------


def lzma_decoder(container: str) -> Decoder:
    """A decoder of whole "xz" or legacy "lzma" streams."""
    import lzma

    fmt = lzma.FORMAT_XZ if container == "xz" else lzma.FORMAT_ALONE

    def decode(data: bytes, limit: int) -> bytes:
        d = lzma.LZMADecompressor(fmt, memlimit=LZMA_MEMLIMIT)
        try:
            out = d.decompress(data, limit)
            if not d.eof and (d.decompress(b"", 1) or not d.eof):
                raise Undecodable(f"{container} stream is truncated or decodes past {limit} bytes")
        except lzma.LZMAError as e:
            raise Undecodable(f"{container}: {e}") from None
        return out

    return decode


def lz4_decoder(who: str) -> Decoder:
    """A decoder of lz4 blocks (no frame); ``who`` names the reader when lz4 is missing."""
    try:
        import lz4.block
    except ImportError:
        raise UnsupportedError(
            f"{who}: lz4 compression needs the Python package lz4 (pip install lz4)"
        ) from None

    def decode(data: bytes, limit: int) -> bytes:
        try:
            return lz4.block.decompress(data, uncompressed_size=limit)
        except lz4.block.LZ4BlockError:
            raise Undecodable(f"lz4 block is malformed or decodes past {limit} bytes") from None

    return decode


def lz4_block_prefix(src: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes an lz4 block decodes to, decoding no further (liblz4's
    LZ4_decompress_safe_partial).

    EROFS needs it where the stream holds more than the extent it serves: images made
    without 0padding put the stream at the start of its block, followed by whatever
    filled the rest, and deduplicated extents use the start of a longer pcluster. The
    lz4 package decodes whole blocks only, so this one is written here; every match is
    checked to lie inside the output so far. Reading past ``src`` raises IndexError,
    which becomes the one "stream ends" error.
    """
    out = bytearray()
    pos = 0
    end = len(src)
    try:
        while len(out) < limit:
            token = src[pos]
            pos += 1
            literals = token >> 4
            if literals == 15:
                literals, pos = _lz4_length(src, pos, literals)
            if pos + literals > end:
                raise Undecodable(f"lz4: {literals} literals run past the end at input byte {pos}")
            out += src[pos : pos + literals]
            pos += literals
            if len(out) >= limit or pos == end:
                break  # the last sequence is literals only
            distance = src[pos] | src[pos + 1] << 8
            pos += 2
            written = len(out)
            if not 0 < distance <= written:
                raise Undecodable(
                    f"lz4: match distance {distance} at input byte {pos} is not inside the "
                    f"{written} bytes written"
                )
            length = token & 15
            if length == 15:
                length, pos = _lz4_length(src, pos, length)
            length = min(length + 4, limit - written)
            start = written - distance
            if distance >= length:
                out += out[start : start + length]
            else:
                out += (out[start:] * (length // distance + 1))[:length]
    except IndexError:
        raise Undecodable("lz4: stream ends inside a sequence") from None
    return bytes(out[:limit])


def _lz4_length(src: bytes, pos: int, length: int) -> tuple[int, int]:
    """A length continued in the bytes at ``pos`` (each 255 adds and goes on), and the
    position after it."""
    while True:
        byte = src[pos]
        pos += 1
        length += byte
        if byte != 255:
            return length, pos


def microlzma_prefix(data: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes of a MicroLZMA stream (xz's lzma_microlzma_encoder, as
    EROFS stores lzma pclusters).

    MicroLZMA is raw LZMA1 whose first byte, always zero in a range coder's output, is
    replaced by the complement of the lc/lp/pb properties byte; there is no dictionary
    size and no end marker. Python's lzma reads the raw stream once that byte is put
    back. Matches reach back at most ``limit`` bytes, so a dictionary that size holds
    every one: a hostile header cannot make the decoder allocate more.
    """
    import lzma

    if not data:
        raise Undecodable("microlzma: empty stream")
    props = data[0] ^ 0xFF
    lc, rest = props % 9, props // 9
    lp, pb = rest % 5, rest // 5
    if pb > 4 or lc + lp > 4:
        raise Undecodable(f"microlzma: properties byte 0x{data[0]:02x} is not lc/lp/pb")
    lzma1 = {"id": lzma.FILTER_LZMA1, "dict_size": max(4096, limit), "lc": lc, "lp": lp, "pb": pb}
    try:
        d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma1])
        return d.decompress(b"\0" + data[1:], limit)
    except lzma.LZMAError as e:
        raise Undecodable(f"microlzma: {e}") from None


def _zstandard(who: str) -> ModuleType:
    try:
        import zstandard
    except ImportError:
        raise UnsupportedError(
            f"{who}: zstd compression needs the Python package zstandard (pip install zstandard)"
        ) from None
    return zstandard


def _stdlib_zstd() -> ModuleType | None:
    """The standard library's zstd (Python 3.14+), which serves instead of zstandard."""
    if sys.version_info < (3, 14):
        return None
    from compression import zstd

    return zstd


def zstd_decoder(who: str, max_window: int = ZSTD_MAX_WINDOW) -> Decoder:
    """A decoder of one whole zstd frame; ``who`` names the reader when zstandard is missing."""
    stdlib = _stdlib_zstd()
    if stdlib is not None:
        return _stdlib_frame_decoder(stdlib, max_window)
    zstandard = _zstandard(who)
    dctx = zstandard.ZstdDecompressor(max_window_size=max_window)

    def decode(data: bytes, limit: int) -> bytes:
        try:
            # zstandard sizes its output by the frame's content size when there is one,
            # so a frame claiming more than the limit is refused before it is decoded.
            declared = zstandard.get_frame_parameters(data).content_size
            if declared != zstandard.CONTENTSIZE_UNKNOWN and declared > limit:
                raise Undecodable(f"zstd frame declares {declared} bytes, over {limit}")
            return dctx.decompress(data, max_output_size=limit)
        except zstandard.ZstdError as e:
            raise Undecodable(f"zstd: {e}") from None

    return decode


def _stdlib_frame_decoder(zstd: ModuleType, max_window: int) -> Decoder:
    def decode(data: bytes, limit: int) -> bytes:
        # The output grows as it is decoded, never sized by the frame's own claim.
        d = _stdlib_decompressor(zstd, max_window)
        try:
            out = d.decompress(data, limit)
        except zstd.ZstdError as e:
            raise Undecodable(f"zstd: {e}") from None
        if not d.eof:
            raise Undecodable(f"zstd frame is truncated or decodes past {limit} bytes")
        return out

    return decode


def _stdlib_decompressor(zstd: ModuleType, max_window: int) -> Any:
    """A compression.zstd decompressor refusing windows over ``max_window`` (a power of 2)."""
    window_log_max = zstd.DecompressionParameter.window_log_max
    return zstd.ZstdDecompressor(options={window_log_max: max_window.bit_length() - 1})


def zstd_prefix(data: bytes, limit: int, max_window: int, who: str) -> bytes:
    """At most the first ``limit`` bytes of the first zstd frame in ``data`` (whatever
    follows the frame is not read)."""
    stdlib = _stdlib_zstd()
    if stdlib is not None:
        try:
            return _stdlib_decompressor(stdlib, max_window).decompress(data, limit)
        except stdlib.ZstdError as e:
            raise Undecodable(f"zstd: {e}") from None
    zstandard = _zstandard(who)
    try:
        dctx = zstandard.ZstdDecompressor(max_window_size=max_window)
        with dctx.stream_reader(data) as reader:
            return reader.read(limit)
    except zstandard.ZstdError as e:
        raise Undecodable(f"zstd: {e}") from None


# -- LZO1X --------------------------------------------------------------------------------

#: A match this far back or further starts the M4 range (16..48 KiB back).
_M4_BASE = 0x4000
#: State-4 two-byte-opcode matches start this far back (M2_MAX_OFFSET + 1).
_M1_FAR_BASE = 2049


def _lzo_error(problem: str, pos: int) -> Undecodable:
    return Undecodable(f"lzo: {problem} at input byte {pos}")


def lzo1x_decompress(src: bytes, limit: int) -> bytes:
    """The bytes of one LZO1X stream (the instruction set of the Linux kernel's
    Documentation/staging/lzo.rst), at most ``limit`` of them.

    Every match is checked to lie inside the output written so far. One flat loop with
    local variables: this runs once per instruction of every compressed block, and
    CPython charges for each call. Reading past the end of ``src`` raises IndexError,
    which becomes the one "stream ends" error.
    """
    if not src:
        raise _lzo_error("empty stream", 0)
    # No liblzo stream starts with 17; Linux reads that as a versioned lzo-rle stream.
    if src[0] == 17 and len(src) >= 5:
        raise _lzo_error("a versioned (lzo-rle) stream, which no reader here expects,", 0)
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
                    raise _lzo_error(f"{literals} literals run past the end of the stream", pos)
                if len(out) + literals > limit:
                    raise _lzo_error(f"output passes {limit} bytes", pos)
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
                    length, distance = 3, (src[pos] << 2) + (op >> 2) + _M1_FAR_BASE
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
                        raise _lzo_error("malformed end-of-stream marker", pos)
                    if pos != end:
                        raise _lzo_error("data after the end-of-stream marker", pos)
                    return bytes(out)
                distance += _M4_BASE
            written = len(out)
            if distance > written:
                raise _lzo_error(
                    f"match distance {distance} goes back past the {written} bytes written", pos
                )
            if written + length > limit:
                raise _lzo_error(f"output passes {limit} bytes", pos)
            start = written - distance
            if distance >= length:
                out += out[start : start + length]
            else:
                # An overlapping match repeats the last ``distance`` bytes.
                out += (out[start:] * (length // distance + 1))[:length]
            # The two low bits of a match give the literals after it: 0..3.
            state = literals
    except IndexError:
        raise _lzo_error("stream ends inside an instruction", end) from None


def _long_length(src: bytes, pos: int, base: int) -> tuple[int, int]:
    """A length that did not fit its opcode, and the position after it: each zero byte
    adds 255, then the first non-zero byte is added (and ``base``)."""
    start = pos
    while src[pos] == 0:
        pos += 1
    return base + 255 * (pos - start) + src[pos], pos + 1
