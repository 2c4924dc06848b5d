"""Decompressing btrfs extents: zlib, LZO in btrfs's segment framing, and zstd, each bounded.

Imported only when a compressed extent is read; the decoders themselves are the shared
ones of pygrub.compress (zstd needs the ``zstandard`` package, imported only when a zstd
extent is met).
"""

from __future__ import annotations

from ...compress import inflate, lzo1x_decompress, zstd_prefix
from ...errors import CorruptError, UnsupportedError
from .structures import COMPRESS_LZO, COMPRESS_ZLIB, COMPRESS_ZSTD

#: The largest window Linux's btrfs gives zstd (ZSTD_BTRFS_MAX_WINDOWLOG 17).
ZSTD_MAX_WINDOW = 1 << 17
_ZLIB_PRESET_DICT = 0x20
_ZLIB_DEFLATED = 8
#: The bytes of a btrfs LZO length field (the total header and each segment header).
LZO_LEN = 4


def decompress(method: int, data: bytes, size: int, sectorsize: int, where: str) -> bytes:
    """Up to ``size`` bytes decoded from ``data``. Output that stops short is padded with
    zeros by the caller, as Linux zero-fills what a stream does not cover."""
    try:
        if method == COMPRESS_ZLIB:
            return _zlib(data, size)
        if method == COMPRESS_LZO:
            return btrfs_lzo_decompress(data, size, sectorsize)
        if method == COMPRESS_ZSTD:
            # Linux reads one frame: what follows it in the extent is padding.
            return zstd_prefix(data, size, ZSTD_MAX_WINDOW, f"btrfs: {where}")
    except CorruptError as e:
        raise CorruptError(f"btrfs: {where}: {e}") from None
    raise UnsupportedError(f"btrfs: {where}: unknown compression type {method}")


def _zlib(data: bytes, size: int) -> bytes:
    # Like Linux: a plain zlib header (deflate, no preset dictionary) is skipped and the
    # raw stream inflated, so the trailing Adler-32 is not checked; anything else goes
    # to zlib whole, which checks the header.
    wbits = 15
    if (
        len(data) > 2
        and data[0] & 0x0F == _ZLIB_DEFLATED
        and data[0] >> 4 <= 7
        and not data[1] & _ZLIB_PRESET_DICT
        and ((data[0] << 8) | data[1]) % 31 == 0
    ):
        wbits = -((data[0] >> 4) + 8)
        data = data[2:]
    return inflate(data, size, wbits)


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
