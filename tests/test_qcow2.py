"""qcow2 images, made by qemu-img from raw guest disks at test time.

``qemu-img convert -O raw`` is the oracle for every byte of the virtual disk and
``qemu-img map`` for where its clusters lie in the image file; the whole command boots
a guest from qcow2 images of each kind. Hostile images are the real ones, damaged.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import make_ext, make_partitioned, run

from pygrub.disk import FileSource, MemorySource, open_image
from pygrub.disk.qcow2 import Qcow2Source, open_qcow2
from pygrub.errors import CorruptError, LimitError, PygrubError, UnsupportedError

MiB = 1 << 20
CHUNK = 4 * MiB

MENU_LST = """\
default 0
timeout 3
title Linux
  root (hd0,0)
  kernel /boot/vmlinuz root=/dev/xvda1 ro
  initrd /boot/initrd.img
"""


def text_like(rng: random.Random, size: int) -> bytes:
    words = [
        bytes(rng.choice(b"etaoinshrdlu") for _ in range(rng.randint(2, 9))) for _ in range(200)
    ]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(64)) + b"\n"
    return bytes(out[:size])


RNG = random.Random(2024)
KERNEL = text_like(RNG, 900_000) + RNG.randbytes(600_000)
INITRD = RNG.randbytes(300_001)

#: name -> qemu-img convert options
VARIANTS = {
    "v2": ("-o", "compat=0.10"),
    "v2-compressed": ("-c", "-o", "compat=0.10"),
    "v3-512": ("-o", "compat=1.1,cluster_size=512"),
    "v3-64k": ("-o", "compat=1.1"),
    "v3-2m": ("-o", "cluster_size=2M"),
    "zlib": ("-c",),
    "zlib-512": ("-c", "-o", "cluster_size=512"),
    "zstd": ("-c", "-o", "compression_type=zstd"),
    "zstd-2m": ("-c", "-o", "compression_type=zstd,cluster_size=2M"),
}


def to_raw(image: Path, out: Path) -> bytes:
    run("qemu-img", "convert", "-O", "raw", image, out)
    return out.read_bytes()


def qemu_map(image: Path) -> list[dict]:
    return json.loads(run("qemu-img", "map", "--output=json", image))


@pytest.fixture(scope="module")
def guest(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """(raw disk, name -> qcow2 image): an MBR disk whose ext4 partition boots with GRUB
    legacy; its size is not a multiple of any cluster size, so last clusters are partial."""
    tmp = tmp_path_factory.mktemp("guest")
    tree = {
        "boot/grub/menu.lst": MENU_LST,
        "boot/vmlinuz": KERNEL,
        "boot/initrd.img": INITRD,
        "etc/words": text_like(RNG, 400_000),
    }
    fs = make_ext(tmp, tree, size_mb=8)
    disk = make_partitioned(tmp, [(fs, "83")])
    with open(disk, "r+b") as f:
        f.seek(0, os.SEEK_END)
        f.write(RNG.randbytes(1536))
    images = {}
    for name, options in VARIANTS.items():
        images[name] = tmp / f"{name}.qcow2"
        run("qemu-img", "convert", "-O", "qcow2", *options, disk, images[name])
    return disk, images


def read_all(source: Qcow2Source) -> bytes:
    return b"".join(source.pread(offset, CHUNK) for offset in range(0, source.size, CHUNK))


# -- reading what qemu-img wrote ------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_reads_every_byte_as_qemu_does(guest, tmp_path, name):
    disk, images = guest
    want = to_raw(images[name], tmp_path / "back.raw")
    assert want == disk.read_bytes()
    source = open_image(str(images[name]))
    try:
        assert isinstance(source, Qcow2Source)
        assert source.version == (2 if name.startswith("v2") else 3)
        assert source.size == len(want)
        assert read_all(source) == want
        rng = random.Random(name)
        cluster = source.cluster_size
        for _ in range(300):
            if rng.random() < 0.5:  # around a cluster boundary
                offset = max(0, rng.randrange(0, len(want), cluster) - rng.randrange(64))
            else:
                offset = rng.randrange(len(want))
            length = rng.choice([1, 511, 512, 4096, cluster + 1, 3 * cluster + 7, 100_000])
            assert source.pread(offset, length) == want[offset : offset + length]
        assert source.pread(len(want) - 10, 100) == want[-10:]
        assert source.pread(len(want), 100) == b""
    finally:
        source.close()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_host_spans_follow_qemu_img_map(guest, name):
    _disk, images = guest
    source = open_qcow2(str(images[name]))
    fd = source.container.fd
    try:
        entries = qemu_map(images[name])
        stored = 0
        for entry in entries:
            start, length = entry["start"], entry["length"]
            if entry["data"] and "offset" in entry:
                # One contiguous stretch of the file, however many clusters it spans.
                assert source.host_span(start, length) == (fd, entry["offset"]), entry
                assert source.host_span(start + 1, length - 1) == (fd, entry["offset"] + 1)
                stored += 1
            else:  # compressed, zeros or unallocated: nothing to copy in the kernel
                assert source.host_span(start, min(length, 512)) is None, entry
        for before, after in zip(entries, entries[1:], strict=False):
            if "offset" in before and "offset" in after and before["data"] and after["data"]:
                assert before["offset"] + before["length"] != after["offset"]
                assert source.host_span(after["start"] - 1, 2) is None
        if "-c" not in VARIANTS[name]:
            assert stored >= 1
        assert source.host_span(-1, 10) is None
        assert source.host_span(source.size - 5, 10) is None
    finally:
        source.close()


@pytest.mark.parametrize("name", ["v3-64k", "v3-512"])
def test_kernel_extents_are_host_spans_through_the_partition(guest, name):
    """What extraction sees: the kernel's ext4 extents, through the MBR partition and the
    qcow2 clusters, as spans of the image file wherever clusters are stored plainly."""
    from pygrub.boot import open_guest

    _disk, images = guest
    source = open_image(str(images[name]))
    try:
        ((_volume, fs),) = open_guest(source).filesystems()
        kinds = []
        for offset, length, where in fs.extents("/boot/vmlinuz"):
            if isinstance(where, tuple):
                fd, host = where
                assert os.pread(fd, length, host) == KERNEL[offset : offset + length]
                kinds.append("span")
            else:
                with fs.open("/boot/vmlinuz") as f:
                    f.seek(offset)
                    assert f.read(length) == KERNEL[offset : offset + length]
                kinds.append(where)
        if name == "v3-64k":
            assert set(kinds) == {"span"}
            assert len(kinds) <= 4, "neighbouring clusters merge into long spans"
        # v3-512: an L2 table sits after every 32 KiB of data, so no whole extent is one
        # stretch of the file and every piece is read through Python (checked above).
    finally:
        source.close()


@pytest.mark.parametrize("name", ["v2", "v3-512", "zlib", "zstd-2m"])
def test_guest_boots_through_the_command(guest, tmp_path, name):
    _disk, images = guest
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pygrub", "-q", "--output-format=simple"]
        + [f"--output-directory={out}", str(images[name])],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    items = dict(item.split(" ", 1) for item in proc.stdout.decode().split("\n") if item)
    assert Path(items["kernel"]).read_bytes() == KERNEL
    assert Path(items["ramdisk"]).read_bytes() == INITRD
    assert items["args"] == "root=/dev/xvda1 ro"


def test_zero_clusters(tmp_path):
    """Zero flags (version 3) read as zeros whatever the cluster's host offset holds."""
    image = tmp_path / "z.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", image, "4M")
    run("qemu-io", "-c", "write -P 0xcd 0 1M", "-c", "write -z 64k 128k", image)
    zero_entries = [e for e in qemu_map(image) if e["zero"] and e.get("offset") is not None]
    assert zero_entries, "qemu-io should keep the clusters preallocated under the zero flag"
    source = open_qcow2(str(image))
    want = to_raw(image, tmp_path / "z.raw")
    assert read_all(source) == want
    assert want[64 * 1024 : 192 * 1024] == bytes(128 * 1024)
    assert source.host_span(64 * 1024, 4096) is None
    source.close()


# -- backing files ---------------------------------------------------------------------


@pytest.fixture
def overlay(tmp_path) -> tuple[Path, Path]:
    """(overlay.qcow2, base.raw): writes, and zeroed clusters that hide the base."""
    base = tmp_path / "base.raw"
    base.write_bytes(random.Random(5).randbytes(2 * MiB) + b"\xee" * 100_000)
    image = tmp_path / "overlay.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", image, "4M")
    run(
        "qemu-io",
        *("-c", "write -P 0xab 1M 100k", "-c", "write -z 256k 128k", "-c", "write -P 1 3M 4k"),
        image,
    )
    return image, base


def test_backing_file_is_refused_by_default(overlay, monkeypatch):
    image, _base = overlay
    with pytest.raises(UnsupportedError, match="backing file 'base.raw'.*PYGRUB_ALLOW_BACKING=1"):
        open_image(str(image))


def test_backing_file_in_the_same_directory(overlay, monkeypatch, tmp_path):
    image, base = overlay
    want = to_raw(image, tmp_path / "flat.raw")
    source = open_image(str(image), allow_backing=True)
    try:
        assert read_all(source) == want
        assert want[256 * 1024 : 384 * 1024] == bytes(128 * 1024), "zero clusters hide the base"
        assert want[2 * MiB + 100_000 : 3 * MiB] == bytes(MiB - 100_000), "past the base: zeros"
        fd, offset = source.host_span(0, 4096)  # unallocated: the base's own bytes
        assert os.pread(fd, 4096, offset) == base.read_bytes()[:4096]
        assert source.host_span(2 * MiB + 99_000, 4096) is None  # runs past the base
    finally:
        source.close()


def test_backing_file_elsewhere_is_refused(tmp_path, monkeypatch):
    (tmp_path / "other").mkdir()
    (tmp_path / "images").mkdir()
    base = tmp_path / "other/base.raw"
    base.write_bytes(bytes(MiB))
    for name, backing in (("abs.qcow2", str(base)), ("rel.qcow2", "../other/base.raw")):
        image = tmp_path / "images" / name
        run("qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "raw", image, "1M")
        with pytest.raises(UnsupportedError, match="outside the image's directory"):
            open_image(str(image), allow_backing=True)
    # a name in the same directory that is a symlink to elsewhere is elsewhere too
    os.symlink(base, tmp_path / "images/link.raw")
    image = tmp_path / "images/link.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "link.raw", "-F", "raw", image, "1M")
    with pytest.raises(UnsupportedError, match="outside"):
        open_image(str(image), allow_backing=True)


def test_backing_format_probed_or_refused(overlay, monkeypatch, tmp_path):
    image, _base = overlay
    want = to_raw(image, tmp_path / "flat.raw")
    head = image.read_bytes()[:65536]
    ext = head.index(struct.pack(">II", 0xE2792ACA, 3))  # the backing format extension
    assert head[ext + 8 : ext + 11] == b"raw"
    # An extension of a type nobody knows is skipped: no format named, so it is probed.
    unnamed = patched_file(tmp_path, image, {ext: be32(0x12345678)})
    source = open_image(str(unnamed), allow_backing=True)
    assert read_all(source) == want
    source.close()
    with pytest.raises(UnsupportedError, match="format 'vpc'"):
        open_image(str(patched_file(tmp_path, image, {ext + 8: b"vpc"})), allow_backing=True)


def test_backing_chain_depth_is_bounded(tmp_path, monkeypatch):
    (tmp_path / "l0.raw").write_bytes(b"\x01" * MiB)
    previous, fmt = "l0.raw", "raw"
    for level in range(1, 6):
        image = tmp_path / f"l{level}.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", "-b", previous, "-F", fmt, image, "1M")
        run("qemu-io", "-c", f"write -P {level + 1} {level * 64}k 4k", image)
        previous, fmt = image.name, "qcow2"
    before = len(os.listdir("/proc/self/fd"))
    source = open_image(
        str(tmp_path / "l4.qcow2"), allow_backing=True
    )  # four backing files below it
    assert read_all(source) == to_raw(tmp_path / "l4.qcow2", tmp_path / "l4.raw")
    source.close()
    with pytest.raises(LimitError, match="over 4 levels"):
        open_image(str(tmp_path / "l5.qcow2"), allow_backing=True)
    assert len(os.listdir("/proc/self/fd")) == before, "every file opened is closed"


# -- headers that are refused ---------------------------------------------------------


def patched_file(tmp_path: Path, image: Path, edits: dict[int, bytes]) -> Path:
    data = bytearray(image.read_bytes())
    for offset, value in edits.items():
        data[offset : offset + len(value)] = value
    out = tmp_path / ("patched-" + image.name)
    out.write_bytes(bytes(data))
    return out


def be32(v: int) -> bytes:
    return struct.pack(">I", v)


def be64(v: int) -> bytes:
    return struct.pack(">Q", v)


@pytest.mark.parametrize(
    "edits,error,match",
    [
        ({4: be32(4)}, UnsupportedError, "version 4"),
        ({20: be32(8)}, CorruptError, "cluster_bits 8"),
        ({20: be32(22)}, CorruptError, "cluster_bits 22"),
        ({32: be32(1)}, UnsupportedError, "encrypted .AES"),
        ({32: be32(2)}, UnsupportedError, "encrypted .LUKS"),
        ({72: be64(1 << 5)}, UnsupportedError, "bit 5"),
        ({72: be64(1 << 4)}, UnsupportedError, "extended L2 entries"),
        ({72: be64(1 << 63)}, UnsupportedError, "bit 63"),
        ({72: be64(1 << 3)}, CorruptError, "compression type"),
        ({100: be32(100)}, CorruptError, "header_length"),
        ({36: be32(0)}, CorruptError, "cannot map"),
        ({36: be32(1 << 30)}, LimitError, "32 MiB"),
        ({40: be64(12345)}, CorruptError, "L1 table"),
        ({8: be64(0x200), 16: be32(5000)}, CorruptError, "backing_file_size"),
    ],
)
def test_bad_header(guest, tmp_path, monkeypatch, edits, error, match):
    _disk, images = guest
    with pytest.raises(error, match=match):
        open_image(str(patched_file(tmp_path, images["v3-64k"], edits)), allow_backing=True)


@pytest.mark.parametrize("length", [104, 100, 72])
def test_a_header_cut_short_is_refused(guest, tmp_path, length):
    """qemu-img's v3 header is 112 bytes (header_length 112, the compression type at 104):
    a file that ends inside it is a corrupt image, not a crash (found by make fuzz-long)."""
    _disk, images = guest
    head = images["v3-64k"].read_bytes()[:length]
    assert struct.unpack_from(">I", images["v3-64k"].read_bytes(), 100) == (112,)
    cut = tmp_path / "cut.qcow2"
    cut.write_bytes(head)
    with pytest.raises(CorruptError, match="header at byte 0: .*(end of the file|truncated)"):
        open_image(str(cut))


def test_unknown_feature_is_named_from_the_feature_table(guest, tmp_path):
    _disk, images = guest
    first = images["v3-64k"].read_bytes()[:65536]
    name_at = first.index(b"extended L2 entries")  # QEMU writes a feature name table
    edits = {72: be64(1 << 9), name_at - 1: bytes([9]), name_at: b"time travel".ljust(46, b"\0")}
    with pytest.raises(UnsupportedError, match=r"time travel \(bit 9\)"):
        open_image(str(patched_file(tmp_path, images["v3-64k"], edits)))


def test_unknown_compression_type(guest, tmp_path):
    _disk, images = guest
    edits = {72: be64(1 << 3), 104: bytes([7])}
    with pytest.raises(UnsupportedError, match="compression type 7"):
        open_image(str(patched_file(tmp_path, images["zstd"], edits)))


@pytest.mark.parametrize(
    "option,match", [("extended_l2=on", "extended L2"), ("data_file=d.raw", "external data file")]
)
def test_features_qemu_writes_that_are_refused(tmp_path, monkeypatch, option, match):
    monkeypatch.chdir(tmp_path)  # qemu-img makes d.raw in the working directory
    image = tmp_path / "f.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", option, image, "1M")
    with pytest.raises(UnsupportedError, match=match):
        open_image(str(image))


def test_missing_zstandard_is_named(guest, without_package):
    _disk, images = guest
    without_package("zstandard")
    with pytest.raises(UnsupportedError, match="Python package zstandard"):
        open_image(str(images["zstd"]))


def test_raw_images_do_not_import_qcow2(guest):
    disk, _images = guest
    code = (
        "import sys\n"
        "from pygrub.disk import open_image\n"
        f"s = open_image({str(disk)!r})\n"
        "assert type(s).__name__ == 'FileSource'\n"
        "assert 'pygrub.disk.qcow2' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- damaged tables ---------------------------------------------------------------------


def tables(image: Path) -> tuple[int, list[tuple[int, int, int]]]:
    """(cluster_bits, [(guest offset, L2 entry, byte offset of the entry)]) of every L2
    entry in use, read here independently of the module under test."""
    data = image.read_bytes()
    cluster_bits, _size = struct.unpack_from(">IQ", data, 20)
    l1_size, l1_offset = struct.unpack_from(">IQ", data, 36)
    cluster = 1 << cluster_bits
    per_table = cluster // 8
    found = []
    for index in range(l1_size):
        (l1,) = struct.unpack_from(">Q", data, l1_offset + 8 * index)
        table = l1 & 0x00FF_FFFF_FFFF_FE00
        if table:
            for slot in range(per_table):
                (entry,) = struct.unpack_from(">Q", data, table + 8 * slot)
                if entry:
                    guest = (index * per_table + slot) * cluster
                    found.append((guest, entry, table + 8 * slot))
    return cluster_bits, found


def test_l2_entries_that_are_refused(guest, tmp_path):
    _disk, images = guest
    image = images["v3-64k"]
    _bits, entries = tables(image)
    guest_offset, entry, at = entries[0]
    size = image.stat().st_size
    l1_offset = struct.unpack_from(">Q", image.read_bytes(), 40)[0]
    l1_entry = struct.unpack_from(">Q", image.read_bytes(), l1_offset)[0]
    cases = [
        ({at: be64(entry | 0x100)}, "reserved bits"),
        ({at: be64((1 << 63) | (size + (1 << 20)) // 65536 * 65536)}, "past the end"),
        ({at: be64((1 << 63) | 65536 * 3 + 512)}, "unaligned"),
        ({l1_offset: be64(l1_entry | 0x1)}, "L1 entry 0 .* reserved bits"),
        ({l1_offset: be64((l1_entry & ~0xFFFF) + 512)}, "not cluster-aligned"),
        ({l1_offset: be64((1 << 63) | (size + 65536) // 65536 * 65536)}, "past the end"),
    ]
    for edits, match in cases:
        source = open_image(str(patched_file(tmp_path, image, edits)))
        with pytest.raises(CorruptError, match=match):
            source.pread(guest_offset, 4096)
        source.close()
    v2_image = images["v2"]
    _bits, v2_entries = tables(v2_image)
    guest_offset, entry, at = v2_entries[0]
    source = open_image(str(patched_file(tmp_path, v2_image, {at: be64(entry | 1)})))
    with pytest.raises(CorruptError, match="zero flag in a version 2"):
        source.pread(guest_offset, 10)
    source.close()


def compressed_entry(bits: int, host: int, stored: int) -> int:
    x = 62 - (bits - 8)
    sectors = (host % 512 + stored + 511) // 512
    return (1 << 62) | ((sectors - 1) << x) | host


@pytest.mark.parametrize("name", ["zlib", "zstd"])
def test_compressed_clusters_are_bounded(guest, tmp_path, name, zstd_backend):
    """Streams appended to the file that inflate far past a cluster, or fall short of one."""
    import zstandard

    _disk, images = guest
    image = images[name]
    bits, entries = tables(image)
    cluster = 1 << bits
    guest_offset, _entry, at = next(e for e in entries if e[1] & (1 << 62))
    if name == "zlib":
        packer = zlib.compressobj(9, zlib.DEFLATED, -12)
        bomb = packer.compress(b"\x5a" * (64 * cluster)) + packer.flush()
        packer = zlib.compressobj(9, zlib.DEFLATED, -12)
        short = packer.compress(b"\x5a" * (cluster // 2)) + packer.flush()
    else:
        bomb = zstandard.ZstdCompressor(write_content_size=False).compress(b"\x5a" * 64 * cluster)
        short = zstandard.ZstdCompressor().compress(b"\x5a" * (cluster // 2))
    size = image.stat().st_size
    host = size + 700  # not sector aligned, as QEMU packs them
    data = bytearray(image.read_bytes())
    data += bytes(host - size) + bomb + bytes(512)
    short_at = len(data) + 3
    data += bytes(3) + short + bytes(512)
    out = tmp_path / "bombs.qcow2"

    def read_with(stream_at: int, stream: bytes) -> bytes:
        data[at : at + 8] = be64(compressed_entry(bits, stream_at, len(stream)))
        out.write_bytes(bytes(data))
        source = open_image(str(out))
        try:
            return source.pread(guest_offset, cluster)
        finally:
            source.close()

    if name == "zlib":
        # QEMU stops inflating when the cluster is full; what follows is never decoded.
        assert read_with(host, bomb) == b"\x5a" * cluster
    else:
        with pytest.raises(CorruptError, match="compressed cluster"):
            read_with(host, bomb)
    with pytest.raises(CorruptError, match="not a whole cluster"):
        read_with(short_at, short)
    data[at : at + 8] = be64(compressed_entry(bits, len(data) + 4096, 100))
    out.write_bytes(bytes(data))
    source = open_image(str(out))
    with pytest.raises(CorruptError, match="past the end of the file"):
        source.pread(guest_offset, 10)
    source.close()


# -- random damage --------------------------------------------------------------------


class SpanSource(MemorySource):
    """Bytes in memory that claim to be a host file, so host_span answers can be checked."""

    def host_span(self, offset: int, length: int) -> tuple[int, int] | None:
        if 0 <= offset and offset + length <= self.size:
            return (-1, offset)
        return None


class Timeout(Exception):
    pass


def on_alarm(_signum: int, _frame: object) -> None:
    raise Timeout("reading took too long")


@pytest.fixture(scope="module")
def small_images(tmp_path_factory) -> dict[str, tuple[bytes, list[tuple[int, int]]]]:
    """name -> (image bytes, regions worth damaging: header, L1 table, L2 tables, data)."""
    tmp = tmp_path_factory.mktemp("small")
    rng = random.Random(3)
    raw = tmp / "small.raw"
    raw.write_bytes(rng.randbytes(64 * 1024) + bytes(64 * 1024) + text_like(rng, 128 * 1024))
    images = {}
    for name, options in (
        ("v3-512", ("-o", "cluster_size=512")),
        ("zlib-512", ("-c", "-o", "cluster_size=512")),
        ("v2-4k", ("-o", "compat=0.10,cluster_size=4096")),
    ):
        image = tmp / f"{name}.qcow2"
        run("qemu-img", "convert", "-O", "qcow2", *options, raw, image)
        data = image.read_bytes()
        bits, entries = tables(image)
        l1_offset = struct.unpack_from(">Q", data, 40)[0]
        regions = [(0, 112), (l1_offset, l1_offset + 64)]
        regions += [
            (at - at % (1 << bits), at - at % (1 << bits) + (1 << bits))
            for _g, _e, at in entries[:8]
        ]
        regions.append((len(data) // 2, len(data)))
        images[name] = (data, regions)
    return images


@st.composite
def damage(draw: Callable, regions: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    edits = []
    for _ in range(draw(st.integers(1, 5))):
        start, end = draw(st.sampled_from(regions))
        offset = draw(st.integers(start, end - 1))
        value = draw(
            st.one_of(
                st.binary(min_size=1, max_size=1),
                st.integers(0, 0xFFFFFFFF).map(be32),
                st.integers(0, 2**64 - 1).map(be64),
                st.sampled_from(
                    [
                        be64(0),
                        be64(1 << 62),
                        be64((1 << 62) | ((1 << 62) - 1)),
                        be64(1 << 63 | 512),
                        be64(0x00FF_FFFF_FFFF_FE00),
                        be32(0xFFFFFFFF),
                    ]
                ),
            )
        )
        edits.append((offset, value))
    return edits


@pytest.mark.parametrize("name", ["v3-512", "zlib-512", "v2-4k"])
def test_random_damage_gives_bytes_or_our_errors(small_images, monkeypatch, name):
    pristine, regions = small_images[name]

    @settings(
        max_examples=250,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(edits=damage(regions), probes=st.lists(st.integers(0, 2**40), max_size=4))
    def check(edits: list[tuple[int, bytes]], probes: list[int]) -> None:
        data = bytearray(pristine)
        for offset, value in edits:
            data[offset : offset + len(value)] = value
        container = SpanSource(bytes(data))
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 10)
        try:
            try:
                source = Qcow2Source(container)
            except PygrubError:
                return
            for offset in [0, 60_000, 256 * 1024 - 100, source.size - 1000, *probes]:
                offset = max(0, min(offset, source.size))
                want = max(0, min(200_000, source.size - offset))
                try:
                    got = source.pread(offset, 200_000)
                    assert len(got) == want
                    span = source.host_span(offset, min(want, 4096))
                    assert span is None or 0 <= span[1] <= len(data) - min(want, 4096)
                except PygrubError:
                    pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    check()


def test_pristine_small_images_read_correctly(small_images):
    for data, _regions in small_images.values():
        source = Qcow2Source(MemorySource(data))
        assert read_all(source)[: 64 * 1024] != bytes(64 * 1024)
        assert source.pread(64 * 1024, 64 * 1024) == bytes(64 * 1024)


def test_file_source_is_still_what_raw_images_get(guest):
    disk, _images = guest
    source = open_image(str(disk))
    assert isinstance(source, FileSource)
    source.close()
