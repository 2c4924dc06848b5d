"""The bounded decompressors in pygrub.compress, shared by SquashFS, Btrfs, EROFS and qcow2.

python-lzo (liblzo) is the oracle for LZO1X; hand-made streams cover each instruction
form; the other decoders are checked against their own compressors, with bombs and
truncated or garbage streams.
"""

from __future__ import annotations

import lzma
import random
import zlib
from collections.abc import Callable, Iterator

import pytest
from bounded import cpu_bounded
from fswalk import MiB, python_lzo, text_like
from hypothesis import given, settings
from hypothesis import strategies as st

from pygrub.compress import (
    Undecodable,
    inflate,
    inflate_whole,
    lz4_block_prefix,
    lz4_decoder,
    lzma_decoder,
    lzo1x_decompress,
    microlzma_prefix,
    zstd_decoder,
    zstd_prefix,
)

# -- LZO1X --------------------------------------------------------------------------------


def lzo_samples() -> Iterator[bytes]:
    rng = random.Random(3)
    for size in (0, 1, 2, 3, 4, 5, 17, 18, 100, 1000, 4095, 4096, 20_000, 70_000):
        yield rng.randbytes(size)
        yield bytes(size)
        yield text_like(rng, size)
        yield (rng.randbytes(rng.randint(1, 20)) * (size + 1))[:size]
        yield bytes(rng.choice(b"ab") for _ in range(size))


@pytest.mark.parametrize("level", [1, 9])
def test_lzo1x_against_liblzo(level):
    module = python_lzo()
    for data in lzo_samples():
        packed = module.compress(data, level, False)
        assert lzo1x_decompress(packed, max(len(data), 1)) == data
        if data:
            with pytest.raises(Undecodable, match="output passes"):
                lzo1x_decompress(packed, len(data) - 1)
            with pytest.raises(Undecodable):
                lzo1x_decompress(packed[:-1], len(data))


def lzo_stream(*parts: bytes) -> bytes:
    return b"".join(parts) + b"\x11\x00\x00"  # the end-of-stream match


def test_lzo_instruction_forms():
    # first byte 17 + n: n literals
    assert lzo1x_decompress(lzo_stream(bytes([22]), b"hello"), 100) == b"hello"
    # an empty stream is just the end marker
    assert lzo1x_decompress(lzo_stream(), 100) == b""
    # 3 literals (state 3), then 0000DDSS + H: 2 bytes from distance (H << 2) + D + 1 = 2
    assert lzo1x_decompress(lzo_stream(bytes([20]), b"abc", bytes([1 << 2, 0])), 100) == b"abcbc"
    # 001LLLLL + LE16: 2 + L bytes from distance (word >> 2) + 1, overlapping its output
    assert lzo1x_decompress(lzo_stream(bytes([19]), b"ab", bytes([32 | 8, 4, 0])), 100) == (
        b"ab" * 6
    )
    # 01LDDDSS + H: 3 + L bytes from (H << 3) + D + 1, then SS literals
    got = lzo1x_decompress(
        lzo_stream(bytes([22]), b"vwxyz", bytes([64 | 32 | (1 << 2) | 2, 0]), b"!?"), 100
    )
    assert got == b"vwxyz" + b"yzyz" + b"!?"
    # 1LLDDDSS + H: 5 + LL bytes
    got = lzo1x_decompress(lzo_stream(bytes([22]), b"vwxyz", bytes([128 | 64 | (4 << 2), 0])), 100)
    assert got == b"vwxyz" + b"vwxyzvw"
    # state 0: 0000LLLL with L = 0 is a long literal run: 3 + 15 + 255 per zero byte + next
    literal = bytes(range(256)) * 9
    length = 3 + 15 + 8 * 255 + 1
    run_ = b"\x00" + b"\x00" * 8 + b"\x01" + literal[:length]
    # after 4+ literals, 0000DDSS + H is 3 bytes from distance (H << 2) + D + 2049
    got = lzo1x_decompress(lzo_stream(run_, bytes([1 << 2, 0])), 10_000)
    assert got == literal[:length] + literal[length - 2050 : length - 2047]
    # 0001HLLL + LE16: 2 + L bytes from 16384 + (H << 14) + (word >> 2)
    big = random.Random(1).randbytes(16_400)
    zeros, last = divmod(len(big) - 3 - 15, 255)  # 64 zero bytes, then 62
    long_run = b"\x00" + b"\x00" * zeros + bytes([last]) + big
    got = lzo1x_decompress(lzo_stream(long_run, bytes([16 | 1, 5 << 2, 0])), 20_000)
    assert got == big + big[-16389:-16386]


@pytest.mark.parametrize(
    "stream,problem",
    [
        (lzo_stream(bytes([19]), b"ab", bytes([32 | 8, 4, 0])), "output passes"),  # 12 > 11
        (lzo_stream(bytes([19]), b"ab", bytes([32 | 1, 3 << 2, 0])), "distance"),
        (lzo_stream(bytes([22]), b"hello") + b"x", "after the end-of-stream"),
        (bytes([22]) + b"hel", "literals"),
        (bytes([22]) + b"hello" + b"\x11\x00", "ends inside"),
        (b"", "empty"),
        (b"\x00" * 1000, "ends inside"),
    ],
)
def test_lzo_malformed(stream, problem):
    with pytest.raises(Undecodable, match=problem):
        lzo1x_decompress(stream, 11)


@given(st.binary(max_size=2000), st.integers(0, 5000))
@settings(max_examples=400, deadline=None)
def test_lzo_hostile_input_is_bounded(data, limit):
    try:
        out = lzo1x_decompress(data, limit)
    except Undecodable:
        return
    assert len(out) <= limit


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_lzo1x_damaged_streams(data):
    module = python_lzo()
    sample = data.draw(st.sampled_from([b"", bytes(5000), b"ab" * 3000, b"hello world " * 400]))
    packed = bytearray(module.compress(sample, data.draw(st.sampled_from([1, 9])), False))
    for _ in range(data.draw(st.integers(1, 4))):
        if packed:
            packed[data.draw(st.integers(0, len(packed) - 1))] = data.draw(st.integers(0, 255))
    try:
        out = lzo1x_decompress(bytes(packed), 8192)
    except Undecodable:
        return
    assert len(out) <= 8192


# -- zlib, lzma, lz4, zstd ----------------------------------------------------------------


def decoders() -> dict[str, Callable[[bytes, int], bytes]]:
    return {
        "gzip": inflate_whole,
        "xz": lzma_decoder("xz"),
        "lzma": lzma_decoder("lzma"),
        "lz4": lz4_decoder("test"),
        "zstd": zstd_decoder("test"),
    }


def compressors() -> dict[str, Callable[[bytes], bytes]]:
    import lz4.block
    import zstandard

    return {
        "gzip": zlib.compress,
        "xz": lambda d: lzma.compress(d, lzma.FORMAT_XZ),
        "lzma": lambda d: lzma.compress(d, lzma.FORMAT_ALONE),
        "lz4": lambda d: lz4.block.compress(d, store_size=False),
        "zstd": zstandard.ZstdCompressor().compress,
    }


@pytest.mark.parametrize("name", ["gzip", "xz", "lzma", "lz4"])
def test_decoders_stop_at_the_limit(name):
    check_decoder_stops_at_the_limit(name)


def test_zstd_decoder_stops_at_the_limit(zstd_backend):
    check_decoder_stops_at_the_limit("zstd")


def check_decoder_stops_at_the_limit(name):
    decode, pack = decoders()[name], compressors()[name]
    limit = 8192
    exact = b"squash" * (limit // 6) + b"sq"
    assert decode(pack(exact), limit) == exact
    with cpu_bounded(5), pytest.raises(Undecodable):
        decode(pack(bytes(4 * MiB)), limit)  # a bomb: 4 MiB of zeros
    with pytest.raises(Undecodable):
        decode(pack(exact)[:-7], limit)
    with pytest.raises(Undecodable):
        decode(b"\xff" * 50, limit)


def test_zstd_frame_without_content_size_is_bounded(zstd_backend):
    import zstandard

    frame = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(4 * MiB))
    with pytest.raises(Undecodable):
        zstd_decoder("test")(frame, 8192)


def test_zstd_window_over_the_bound_is_refused(zstd_backend):
    """A frame needing a 4 MiB window, decoded with 1 MiB allowed: refused, not allocated."""
    import zstandard

    data = random.Random(7).randbytes(6 * MiB)
    data += data  # a match 6 MiB back needs the big window
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=23, write_content_size=0)
    frame = zstandard.ZstdCompressor(compression_params=params).compress(data)
    assert zstd_decoder("test", 8 * MiB)(frame, len(data)) == data
    with pytest.raises(Undecodable):
        zstd_decoder("test", 1 * MiB)(frame, len(data))
    with pytest.raises(Undecodable):
        zstd_prefix(frame, len(data), 1 * MiB, "test")
    assert zstd_prefix(frame, 5000, 8 * MiB, "test") == data[:5000]


def test_prefix_decoders_stop_at_the_limit(zstd_backend):
    """inflate and zstd_prefix give the first bytes of a stream and decode no further."""
    import zstandard

    data = text_like(random.Random(4), 100_000)
    packer = zlib.compressobj(9, zlib.DEFLATED, -12)
    raw = packer.compress(data) + packer.flush()
    assert inflate(raw, 5000, -12) == data[:5000]
    assert inflate(zlib.compress(data), len(data)) == data
    frame = zstandard.ZstdCompressor().compress(data)
    assert zstd_prefix(frame + bytes(100), 5000, 1 << 17, "test") == data[:5000]
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=17, write_content_size=0)
    bomb = zstandard.ZstdCompressor(compression_params=params).compress(bytes(16 * MiB))
    with cpu_bounded(5):
        assert zstd_prefix(bomb, 8192, 1 << 17, "test") == bytes(8192)
    with pytest.raises(Undecodable, match="zlib"):
        inflate(b"\xff" * 50, 8192)
    with pytest.raises(Undecodable, match="zstd"):
        zstd_prefix(b"\xff" * 50, 8192, 1 << 17, "test")


# -- lz4 blocks decoded up to a limit, MicroLZMA (EROFS) -------------------------------


def lz4_samples() -> Iterator[bytes]:
    rng = random.Random(5)
    for size in (1, 15, 16, 300, 4096, 70_000):
        yield rng.randbytes(size)
        yield bytes(size)
        yield text_like(rng, size)


@pytest.mark.parametrize("mode", ["default", "high_compression"])
def test_lz4_block_prefix_against_liblz4(mode):
    import lz4.block

    for sample in lz4_samples():
        packed = lz4.block.compress(sample, mode=mode, store_size=False)
        assert lz4_block_prefix(packed, len(sample)) == sample
        # Legacy EROFS: the block's rest follows the stream; stop at the limit.
        half = len(sample) // 2
        assert lz4_block_prefix(packed + bytes(4096), half) == sample[:half]
        # A cut stream decodes short (the caller checks the length) or is refused.
        try:
            assert len(lz4_block_prefix(packed[: len(packed) // 2], len(sample))) < len(sample)
        except Undecodable:
            pass


@given(st.binary(max_size=2000), st.integers(0, 5000))
@settings(max_examples=400, deadline=None)
def test_lz4_block_prefix_hostile_input_is_bounded(data, limit):
    try:
        out = lz4_block_prefix(data, limit)
    except Undecodable:
        return
    assert len(out) <= limit


def microlzma(data: bytes, lc: int = 3, lp: int = 0, pb: int = 2) -> bytes:
    """A MicroLZMA stream: raw LZMA1 with its first (always zero) byte replaced by the
    complement of the properties byte."""
    lzma1 = {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 16, "lc": lc, "lp": lp, "pb": pb}
    raw = lzma.compress(data, format=lzma.FORMAT_RAW, filters=[lzma1])
    assert raw[0] == 0
    return bytes([((pb * 5 + lp) * 9 + lc) ^ 0xFF]) + raw[1:]


def test_microlzma_prefix():
    rng = random.Random(9)
    for sample in (text_like(rng, 100_000), rng.randbytes(5000), bytes(20_000)):
        for lc, lp, pb in ((3, 0, 2), (0, 2, 0), (1, 1, 4)):
            stream = microlzma(sample, lc, lp, pb)
            assert microlzma_prefix(stream, len(sample)) == sample
            assert microlzma_prefix(stream, 1000) == sample[:1000]
    with pytest.raises(Undecodable, match="properties"):
        microlzma_prefix(b"\x00" + bytes(20), 100)  # 0xff: pb 5
    with pytest.raises(Undecodable):
        microlzma_prefix(b"", 100)
    with pytest.raises(Undecodable):
        microlzma_prefix(microlzma(b"abc" * 1000)[:3] + b"\xff" * 50, 3000)
