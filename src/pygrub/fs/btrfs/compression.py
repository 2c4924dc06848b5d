"""Decompressing btrfs extents: zlib, LZO (btrfs framing) and zstd, each bounded.

Imported only when a compressed extent is read; zstd needs the ``zstandard`` package,
imported only when a zstd extent is met.
"""

from __future__ import annotations

import zlib

from ...errors import CorruptError, UnsupportedError
from .structures import COMPRESS_LZO, COMPRESS_ZLIB, COMPRESS_ZSTD

#: The largest window Linux's btrfs gives zstd (ZSTD_BTRFS_MAX_WINDOWLOG 17).
ZSTD_MAX_WINDOW = 1 << 17
_ZLIB_PRESET_DICT = 0x20
_ZLIB_DEFLATED = 8


def decompress(method: int, data: bytes, size: int, sectorsize: int, where: str) -> bytes:
    """Up to ``size`` bytes decoded from ``data``. Output that stops short is padded with
    zeros by the caller, as Linux zero-fills what a stream does not cover."""
    if method == COMPRESS_ZLIB:
        return _zlib(data, size, where)
    if method == COMPRESS_LZO:
        from .lzo import btrfs_lzo_decompress

        try:
            return btrfs_lzo_decompress(data, size, sectorsize)
        except CorruptError as e:
            raise CorruptError(f"btrfs: {where}: {e}") from None
    if method == COMPRESS_ZSTD:
        return _zstd(data, size, where)
    raise UnsupportedError(f"btrfs: {where}: unknown compression type {method}")


def _zlib(data: bytes, size: int, where: str) -> bytes:
    # Like Linux: a plain zlib header (deflate, no preset dictionary) is skipped and the
    # raw stream inflated, so the trailing Adler-32 is not checked; anything else goes
    # to zlib whole, which checks the header.
    wbits = zlib.MAX_WBITS
    if (
        len(data) > 2
        and data[0] & 0x0F == _ZLIB_DEFLATED
        and data[0] >> 4 <= 7
        and not data[1] & _ZLIB_PRESET_DICT
        and ((data[0] << 8) | data[1]) % 31 == 0
    ):
        wbits = -((data[0] >> 4) + 8)
        data = data[2:]
    try:
        inflater = zlib.decompressobj(wbits)
        return inflater.decompress(data, size)
    except zlib.error as e:
        raise CorruptError(f"btrfs: {where}: zlib: {e}") from None


def _zstd(data: bytes, size: int, where: str) -> bytes:
    try:
        import zstandard
    except ImportError:
        raise UnsupportedError(
            f"btrfs: {where} is zstd-compressed: install the Python package 'zstandard'"
        ) from None
    try:
        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        # Linux reads one frame: what follows it in the extent is padding.
        with dctx.stream_reader(data) as reader:
            return reader.read(size)
    except zstandard.ZstdError as e:
        raise CorruptError(f"btrfs: {where}: zstd: {e}") from None
