"""The ZFS reader, on pools made by the real ZFS (zfs-fuse, scripts/make-zfs-fixtures.sh).

The committed images are compared file by file with their manifests, which the script
read back through ZFS's own mount; zdb (ZFS's debugger) is the oracle for the labels.
Newer formats that zfs-fuse cannot write (feature flags, lz4, zstd, large dnodes, system
attributes, embedded block pointers) are covered on hand-assembled structures.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from hostile import FlippedSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import require_tool
from zfstools import zfs_fuse

from pygrub.disk import FileSource, MemorySource
from pygrub.errors import CorruptError, NotFoundError, PygrubError, UnsupportedError
from pygrub.fs import probe
from pygrub.fs.base import ExtentKind, NodeType
from pygrub.fs.zfs import ZfsFilesystem, open_filesystem
from pygrub.fs.zfs import blkptr as bpmod
from pygrub.fs.zfs.blkptr import BlockReader, parse_blkptr
from pygrub.fs.zfs.dmu import Dnode, level0_blocks, parse_dnode
from pygrub.fs.zfs.nvlist import decode_packed, encode_packed
from pygrub.fs.zfs.zap import Zap
from pygrub.fs.zfs.zpl import SaTables, sa_attributes

FIXTURES = Path(__file__).parent / "fixtures" / "zfs"
IMAGES = ("plain", "lzjb", "gzip", "zle", "mirror", "boot", "bpool")
MiB = 1 << 20


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("zfs")
    paths = {}
    for name in IMAGES:
        path = out / f"{name}.img"
        with lzma.open(FIXTURES / f"{name}.img.xz") as src, open(path, "wb") as dst:
            while chunk := src.read(4 * MiB):
                dst.write(chunk)
        paths[name] = path
    return paths


def manifest(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.manifest.json").read_text())


def open_image(path: Path, dataset: str | None = None) -> ZfsFilesystem:
    fs = open_filesystem(FileSource(str(path)), dataset)
    assert fs is not None
    return fs


# -- real pools against their manifests -----------------------------------------------


@pytest.mark.parametrize("name", IMAGES)
def test_every_file_matches_the_manifest(images, name):
    man = manifest(name)
    fs0 = open_image(images[name])
    assert fs0.label == man["pool"]
    for dataset, entries in man["datasets"].items():
        fs = fs0.with_dataset(dataset)
        assert fs.dataset == dataset
        for path, entry in entries.items():
            if entry["type"] == "dir":
                assert sorted(fs.listdir(path)) == entry["names"], path
                assert fs.is_dir(path)
            elif entry["type"] == "symlink":
                assert fs.readlink_path(path) == entry["target"], path
                assert fs.lstat(path).type is NodeType.SYMLINK
            else:
                with fs.open(path) as f:
                    data = f.read()
                assert len(data) == entry["size"] == fs.stat(path).size, path
                assert hashlib.sha256(data).hexdigest() == entry["sha256"], path


@pytest.fixture(scope="module")
def zdb():
    """zdb, with the zfs-fuse daemon it needs (zfs-fuse's libzfs talks to it even for -l)."""
    with zfs_fuse():
        yield require_tool("zdb")


@pytest.mark.parametrize("name", IMAGES)
def test_labels_agree_with_zdb(images, zdb, name):
    out = subprocess.run(
        [zdb, "-l", str(images[name])], capture_output=True, check=True
    ).stdout.decode()
    fs = open_image(images[name])
    assert f"name: '{fs.pool.name}'" in out or f"name='{fs.pool.name}'" in out
    assert f"pool_guid: {fs.pool.guid}" in out or f"pool_guid={fs.pool.guid}" in out
    assert f"version: {fs.pool.version}" in out or f"version={fs.pool.version}" in out


def test_probe_finds_zfs(images):
    fs = probe(FileSource(str(images["plain"])))
    assert isinstance(fs, ZfsFilesystem) and fs.kind == "zfs"


def test_symlinks_follow_inside_the_dataset(images):
    fs = open_image(images["plain"])
    assert fs.read_file("/links/short", 100) == b"hello from plain\n"
    assert fs.read_file("/links/long", 20) == fs.read_file("/etc/medium.txt", 20)
    assert fs.is_dir("/links/absolute")
    assert not fs.exists("/links/dangling")


def test_fat_zap_directory_and_indirect_blocks(images):
    fs = open_image(images["plain"])
    many = fs.resolve("/many")
    zap = Zap(fs.zpl.os, fs.zpl.znode(many).dnode, "many")
    assert zap.block_type == (1 << 63) + 1  # a fat ZAP, not a micro one
    assert len(fs.listdir("/many")) == 2100
    assert fs.read_file("/many/entry-1234", 10) == b"1234\n"
    small = fs.with_dataset("zplain/small")
    big = small.zpl.znode(small.resolve("/big.txt")).dnode
    assert big.nlevels >= 3 and big.datablksz == 4096
    # A sparse file: its hole reads as zeros and costs no block.
    extents = list(small.extents("/sparse"))
    assert any(where == "hole" for _o, _l, where in extents)
    assert small.read_file("/sparse", 5) == bytes(5)


def test_mirror_member_alone_is_enough(images):
    fs = open_image(images["mirror"])
    assert fs.pool.vdev_tree["type"] == "mirror"
    assert fs.read_file("/hello.txt", 100) == b"hello from mirror\n"


def test_datasets_bootfs_clone_snapshot_and_grub_paths(images):
    fs = open_image(images["boot"])
    assert fs.dataset == "rpool/ROOT/os"  # the bootfs property
    assert sorted(fs.child_datasets()) == []
    clone = fs.with_dataset("rpool/ROOT/clone")
    assert clone.read_file("/clone-only.txt", 100) == b"only in the clone\n"
    assert not clone.exists("/etc/small.txt") and fs.exists("/etc/small.txt")
    assert fs.with_dataset("ROOT/clone").dataset == "rpool/ROOT/clone"
    other, path = fs.grub_path("/ROOT/os@/boot/grub/menu.lst")
    assert other.dataset == "rpool/ROOT/os" and path == "/boot/grub/menu.lst"
    assert b"ZFS guest" in other.read_file(path, 4096)
    root, path = fs.grub_path("/@/")
    assert root.dataset == "rpool" and path == "/"
    snap, path = fs.grub_path("/ROOT/os@install/etc/small.txt")
    assert snap.read_file(path, 100) == fs.read_file("/etc/small.txt", 100)
    assert fs.grub_path("/boot/x") == (fs, "/boot/x")
    with pytest.raises(NotFoundError):
        fs.with_dataset("rpool/nope")
    with pytest.raises(NotFoundError):
        fs.with_dataset("otherpool/ROOT/os")
    data = open_image(images["boot"], "rpool/data")
    assert data.read_file("/readme", 100) == b"data set\n"


def test_bootstring_as_xen_gives_it(images):
    fs = open_image(images["boot"])
    assert fs.bootstring() == f"zfs-bootfs=rpool/{fs.dataset_object},bootpath=''"


def test_ubuntu_boot_pool_layout(images):
    fs = open_image(images["bpool"])
    assert fs.dataset == "bpool/BOOT/ubuntu_ab12cd"
    assert fs.read_file("/grub/grub.cfg", 100) == b"set default=0\n"


def test_whole_command_boots_a_zfs_guest(images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pygrub", "-q", "--output-format=simple",
         f"--output-directory={out}", str(images["boot"])],
        capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    items = dict(line.split(" ", 1) for line in proc.stdout.decode().splitlines() if line)
    assert items["args"] == "root=ZFS=rpool/ROOT/os ro"
    fs = open_image(images["boot"])
    assert Path(items["kernel"]).read_bytes() == fs.read_file("/boot/vmlinuz-2.6.32", 4 * MiB)
    assert Path(items["ramdisk"]).read_bytes() == fs.read_file("/boot/initrd.img-2.6.32", 4 * MiB)


def test_damaged_labels_and_blocks(images, tmp_path):
    raw = bytearray(images["lzjb"].read_bytes())
    # The first two labels' configs are damaged: the labels at the end still open the pool.
    for start in (0, 256 << 10):
        raw[start + 0x4100] ^= 0xFF
    damaged = tmp_path / "labels.img"
    damaged.write_bytes(raw)
    assert open_image(damaged).read_file("/hello.txt", 100) == b"hello from lzjb\n"
    # Every label gone: not a pool we can read.
    for start in (len(raw) - (512 << 10), len(raw) - (256 << 10)):
        raw[start + 0x4100] ^= 0xFF
    damaged.write_bytes(raw)
    with pytest.raises(CorruptError, match="label"):
        open_filesystem(FileSource(str(damaged)))


def flip_first_data_byte(image: Path, path: str, out: Path) -> Path:
    """A copy of ``image`` with one bit of the first data block of ``path`` flipped."""
    fs = open_image(image)
    node = fs.resolve(path)
    _blkid, bp = next(level0_blocks(fs.zpl.os.reader, fs.zpl.znode(node).dnode))
    raw = bytearray(image.read_bytes())
    raw[bpmod.VDEV_LABEL_START_SIZE + bp.dvas[0].offset + 10] ^= 1
    out.write_bytes(raw)
    return out


def test_flipped_compressed_data_block_fails_its_checksum(images, tmp_path):
    damaged = flip_first_data_byte(images["lzjb"], "/etc/medium.txt", tmp_path / "data.img")
    with pytest.raises(CorruptError, match="checksum"):
        open_image(damaged).read_file("/etc/medium.txt", 100)


def test_plain_data_blocks_are_copied_as_they_lie(images, tmp_path):
    """One uncompressed copy: DATA extents the kernel copies, not checked (as no other
    filesystem's data is): a flipped bit comes through as it is on the disk."""
    fs = open_image(images["plain"])
    extents = list(fs.node_extents(fs.resolve("/etc/medium.txt")))
    assert {ext.kind for ext in extents} == {ExtentKind.DATA}
    want = bytearray(fs.read_file("/etc/medium.txt", 100))
    want[10] ^= 1
    damaged = flip_first_data_byte(images["plain"], "/etc/medium.txt", tmp_path / "data.img")
    assert open_image(damaged).read_file("/etc/medium.txt", 100) == want


# -- hand-assembled structures ----------------------------------------------------------


def naive_fletcher4(data: bytes) -> tuple[int, ...]:
    a = b = c = d = 0
    for (w,) in struct.iter_unpack("<I", data):
        a = (a + w) % 2**64
        b = (b + a) % 2**64
        c = (c + b) % 2**64
        d = (d + c) % 2**64
    return a, b, c, d


def naive_fletcher2(data: bytes) -> tuple[int, ...]:
    a0 = a1 = b0 = b1 = 0
    for w0, w1 in struct.iter_unpack("<QQ", data):
        a0, a1 = (a0 + w0) % 2**64, (a1 + w1) % 2**64
        b0, b1 = (b0 + a0) % 2**64, (b1 + a1) % 2**64
    return a0, a1, b0, b1


@given(st.binary(min_size=0, max_size=40000).map(lambda b: b[: len(b) // 16 * 16]))
@settings(max_examples=40, deadline=None)
def test_fletcher_sums_match_the_plain_definition(data):
    assert bpmod.fletcher4(data, "<") == naive_fletcher4(data)
    assert bpmod.fletcher2(data, "<") == naive_fletcher2(data)


def make_bp(
    offset: int = 0,
    lsize: int = 512,
    psize: int = 512,
    comp: int = bpmod.C_OFF,
    checksum: int = bpmod.CK_FLETCHER4,
    cksum: tuple[int, ...] = (0, 0, 0, 0),
    level: int = 0,
    vdev: int = 0,
) -> bytes:
    """A little-endian blkptr_t with one DVA."""
    asize = psize >> 9
    prop = ((lsize >> 9) - 1) | (((psize >> 9) - 1) << 16) | (comp << 32)
    prop |= (checksum << 40) | (19 << 48) | (level << 56) | (1 << 63)
    words = [asize | (vdev << 32), offset >> 9, 0, 0, 0, 0, prop, 0, 0, 0, 7, 1, *cksum]
    return struct.pack("<16Q", *words)


def stored_block(payload: bytes, lsize: int, comp: int) -> tuple[bytes, bytes]:
    """(a device holding the block at DVA offset 0, its block pointer) with fletcher4."""
    psize = -(-len(payload) // 512) * 512
    padded = payload + bytes(psize - len(payload))
    bp = make_bp(0, lsize, psize, comp, bpmod.CK_FLETCHER4, naive_fletcher4(padded))
    device = bytes(bpmod.VDEV_LABEL_START_SIZE) + padded
    return device, bp


def read_via(device: bytes, bp_raw: bytes) -> bytes:
    reader = BlockReader(MemorySource(device), frozenset({0}))
    return reader.read(parse_blkptr(bp_raw, "<"), "test block")


DATA = b"".join(b"line %06d of a compressible block\n" % i for i in range(3700))[:131072]


def test_lz4_block_with_zfs_framing():
    lz4_block = pytest.importorskip("lz4.block")
    body = lz4_block.compress(DATA, store_size=False)
    device, bp = stored_block(struct.pack(">I", len(body)) + body, len(DATA), bpmod.C_LZ4)
    assert read_via(device, bp) == DATA


def test_zstd_block_with_zfs_header(zstd_backend):
    import zstandard

    # OpenZFS writes the frame magicless: without its first four bytes, the magic.
    frame = zstandard.ZstdCompressor(level=3).compress(DATA)
    assert frame[:4] == bpmod.ZSTD_MAGIC
    frame = frame[4:]
    payload = struct.pack(">II", len(frame), (10405 << 8) | 3) + frame
    device, bp = stored_block(payload, len(DATA), bpmod.C_ZSTD)
    assert read_via(device, bp) == DATA


@pytest.mark.parametrize(
    ("package", "comp", "payload"),
    [
        ("lz4", bpmod.C_LZ4, struct.pack(">I", 4) + b"abcd"),
        ("zstandard", bpmod.C_ZSTD, struct.pack(">II", 4, 3) + b"abcd"),
    ],
)
def test_missing_package_is_named(without_package, package, comp, payload):
    """Ubuntu's pools use lz4: without the package, one clear error, not a crash."""
    without_package(package)
    device, bp = stored_block(payload, len(DATA), comp)
    with pytest.raises(UnsupportedError, match=f"zfs: .*needs the Python package {package}"):
        read_via(device, bp)


def test_gzip_zle_and_decompression_bombs():
    device, bp = stored_block(zlib.compress(DATA, 9), len(DATA), bpmod.C_GZIP_FIRST + 8)
    assert read_via(device, bp) == DATA
    # zle: 3 literals, then 64 zeros (a byte of 127), then 2 literals.
    zle = b"\x02abc" + bytes([127]) + b"\x01de"
    assert bpmod.zle_decompress(zle, 69) == b"abc" + bytes(64) + b"de"
    # A bomb: 16 MiB of zeros in a block that says 4 KiB.
    bomb = zlib.compress(bytes(16 * MiB), 9)
    device, bp = stored_block(bomb, 4096, bpmod.C_GZIP_FIRST + 8)
    with pytest.raises(CorruptError):
        read_via(device, bp)
    zstandard = pytest.importorskip("zstandard")
    frame = zstandard.ZstdCompressor().compress(bytes(16 * MiB))
    device, bp = stored_block(struct.pack(">II", len(frame), 3) + frame, 4096, bpmod.C_ZSTD)
    with pytest.raises(CorruptError):
        read_via(device, bp)


def test_lzjb_literals_and_overlapping_matches():
    # Copy map 0b0010: a literal "a", then a match of 3+3=6 bytes 1 back, then literals.
    stream = bytes([0b0010]) + b"a" + bytes([3 << 2, 1]) + b"bcdefg"
    assert bpmod.lzjb_decompress(stream, 13) == b"aaaaaaabcdefg"
    with pytest.raises(CorruptError):
        bpmod.lzjb_decompress(bytes([1, 0, 5]), 10)  # a match before any output


def naive_lzjb(src: bytes, size: int) -> bytes | None:
    """LZJB as lzjb_decompress in illumos's zfs/lzjb.c spells it, byte by byte; None
    where that stops short (reading past the stream, or a match before the output)."""
    out = bytearray()
    pos = copymap = mask = 0
    while len(out) < size:
        if mask == 0:
            if pos >= len(src):
                return None
            copymap, mask, pos = src[pos], 1, pos + 1
        if copymap & mask:
            if pos + 2 > len(src):
                return None
            length = (src[pos] >> 2) + 3
            distance = ((src[pos] << 8) | src[pos + 1]) & 0x3FF
            pos += 2
            if distance == 0 or distance > len(out):
                return None
            for _ in range(min(length, size - len(out))):
                out.append(out[-distance])
        else:
            if pos >= len(src):
                return None
            out.append(src[pos])
            pos += 1
        mask = (mask << 1) & 0xFF
    return bytes(out)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 3000))
def test_lzjb_against_the_byte_by_byte_definition(stream, size):
    want = naive_lzjb(stream, size)
    if want is None:
        with pytest.raises(CorruptError):
            bpmod.lzjb_decompress(stream, size)
    else:
        assert bpmod.lzjb_decompress(stream, size) == want


def test_embedded_block_pointer():
    payload = zlib.compress(b"x" * 3000)
    assert len(payload) <= 112
    data = payload.ljust(112, b"\0")
    words = list(struct.unpack("<14Q", data))
    full = words[:6] + [0] + words[6:9] + [5] + words[9:]
    prop = (3000 - 1) | ((len(payload) - 1) << 25) | ((bpmod.C_GZIP_FIRST + 5) << 32)
    prop |= (1 << 39) | (19 << 48) | (1 << 63)
    full[6] = prop
    raw = struct.pack("<16Q", *full)
    assert read_via(b"", raw) == b"x" * 3000


def dnode_bytes(
    slots: int, bonus: bytes, nblkptr: int = 1, bonustype: int = 44, flags: int = 0
) -> bytes:
    core = struct.pack(
        "<8BHHB3xQQ", 19, 17, 1, nblkptr, bonustype, 0, 0, flags, 1, len(bonus), slots - 1, 0, 0
    )
    buf = bytearray(slots * 512)
    buf[: len(core)] = core
    start = 64 + nblkptr * 128
    buf[start : start + len(bonus)] = bonus
    return bytes(buf)


def test_large_dnode_bonus_and_limits():
    bonus = bytes(range(256)) * 3  # 768 bytes: needs a second slot
    dn = parse_dnode(dnode_bytes(2, bonus), "<", 5)
    assert dn.slots == 2 and dn.bonus == bonus
    with pytest.raises(CorruptError):
        parse_dnode(dnode_bytes(2, bonus)[:512], "<", 5)  # the slots run past the block
    too_long = bytearray(dnode_bytes(1, b""))
    struct.pack_into("<H", too_long, 10, 400)
    with pytest.raises(CorruptError):
        parse_dnode(bytes(too_long), "<", 5)


def sa_tables() -> SaTables:
    tables = SaTables.__new__(SaTables)
    tables.lengths = {5: 8, 6: 8, 20: 0, 14: 32}
    tables.numbers = {"ZPL_MODE": 5, "ZPL_SIZE": 6, "ZPL_SYMLINK": 20}
    tables.layouts = {2: (5, 6, 20), 3: (5, 14, 6)}
    return tables


def sa_buffer(layout: int, values: bytes, var_lengths: tuple[int, ...] = ()) -> bytes:
    header_size = -(-(6 + 2 * max(1, len(var_lengths))) // 8) * 8
    info = layout | ((header_size // 8) << 10)
    head = struct.pack("<IH", 0x2F505A, info) + struct.pack(f"<{len(var_lengths)}H", *var_lengths)
    return head.ljust(header_size, b"\0") + values


def test_system_attributes_with_a_symlink_target():
    target = b"../boot/vmlinuz"  # 15 bytes: the next attribute would start 8-aligned
    values = struct.pack("<QQ", 0o120777, len(target)) + target
    attrs = sa_attributes(sa_buffer(2, values, (len(target),)), "<", sa_tables(), "test")
    assert attrs[5] == struct.pack("<Q", 0o120777) and attrs[20] == target
    values = struct.pack("<Q", 0o100644) + bytes(32) + struct.pack("<Q", 1234)
    attrs = sa_attributes(sa_buffer(3, values), "<", sa_tables(), "test")
    assert struct.unpack("<Q", attrs[6]) == (1234,)
    with pytest.raises(CorruptError):
        sa_attributes(sa_buffer(9, values), "<", sa_tables(), "test")  # unknown layout
    with pytest.raises(CorruptError):
        sa_attributes(sa_buffer(3, values[:20]), "<", sa_tables(), "test")  # truncated


class FakeObjectSet:
    """Blocks of one ZAP object, served from memory."""

    def __init__(self, blocks: list[bytes]) -> None:
        self.blocks = blocks

    def read_block(self, dnode: Dnode, blkid: int) -> bytes:
        if blkid >= len(self.blocks):
            return bytes(dnode.datablksz)
        return self.blocks[blkid]


def zap_dnode(block_size: int, count: int) -> Dnode:
    return Dnode(7, "<", 20, 17, 1, 1, 0, 0, block_size, 0, 1, count - 1, (), b"", None)


def micro_zap(entries: dict[bytes, int], size: int = 512) -> bytes:
    buf = bytearray(size)
    struct.pack_into("<Q", buf, 0, (1 << 63) + 3)
    for i, (name, value) in enumerate(entries.items()):
        struct.pack_into("<QIH50s", buf, 64 * (i + 1), value, 0, 0, name)
    return bytes(buf)


def fat_zap(entries: dict[bytes, int], shift: int = 12, chain_loop: bool = False) -> list[bytes]:
    """A fat ZAP: header block 0 (embedded pointer table, every slot -> leaf 1), leaf 1."""
    size = 1 << shift
    head = bytearray(size)
    struct.pack_into(
        "<13Q", head, 0, (1 << 63) + 1, 0x2F52AB2AB, 0, 0, 1, 0, 0, 2, 1, len(entries), 1, 0, 0
    )
    struct.pack_into("<2Q", head, size // 2, 1, 1)
    leaf = bytearray(size)
    struct.pack_into("<QQQIHHHHB", leaf, 0, 1 << 63, 0, 0, 0x2AB1EAF, 0, len(entries), 0, 0, 0)
    nhash = 1 << (shift - 5)
    base = 48 + 2 * nhash
    chunk = 0

    def array(data: bytes) -> int:
        nonlocal chunk
        first = chunk
        pieces = [data[i : i + 21] for i in range(0, len(data), 21)] or [b""]
        for n, piece in enumerate(pieces):
            nxt = chunk + 1 if n + 1 < len(pieces) else 0xFFFF
            if chain_loop and n + 1 == len(pieces):
                nxt = first
            struct.pack_into("<B21sH", leaf, base + 24 * chunk, 251, piece, nxt)
            chunk += 1
        return first

    for name, value in entries.items():
        entry = chunk
        chunk += 1
        name_chunk = array(name + b"\0")
        value_chunk = array(struct.pack(">Q", value))
        struct.pack_into(
            "<BBHHHHHIQ",
            leaf,
            base + 24 * entry,
            252,
            8,
            0xFFFF,
            name_chunk,
            len(name) + 1 + (60 if chain_loop else 0),  # past the chain: it must loop
            value_chunk,
            1,
            0,
            0,
        )
    return [bytes(head), bytes(leaf)]


def test_micro_and_fat_zap():
    names = {b"ROOT": 34, b"VERSION": 4, b"a-much-longer-name-that-spans-several-chunks": 99}
    zap = Zap(FakeObjectSet([micro_zap(names)]), zap_dnode(512, 1), "micro")
    assert {e.name: e.first for e in zap.entries()} == names
    blocks = fat_zap(names)
    zap = Zap(FakeObjectSet(blocks), zap_dnode(4096, 2), "fat")
    assert {e.name: e.first for e in zap.entries()} == names
    assert zap.lookup_int(b"VERSION") == 4 and zap.lookup_int(b"nope") is None
    looping = fat_zap({b"x" * 30: 1}, chain_loop=True)
    with pytest.raises(CorruptError, match="loops"):
        list(Zap(FakeObjectSet(looping), zap_dnode(4096, 2), "fat").entries())


def test_nvlist_round_trip_and_feature_refusal():
    config = {
        "version": 5000,
        "name": "tank",
        "features_for_read": {"com.delphix:hole_birth": None, "org.example:time_travel": None},
        "vdev_tree": {"type": "disk", "id": 0, "children": [{"a": 1}, {"b": "c"}]},
        "flags": [1, 2, 3],
        "paths": ["x", "yy"],
        "blob": b"\x01\x02\x03",
        "ok": True,
    }
    decoded = decode_packed(encode_packed(config))
    assert decoded["features_for_read"] == {
        "com.delphix:hole_birth": True,
        "org.example:time_travel": True,
    }
    assert decoded["vdev_tree"]["children"] == [{"a": 1}, {"b": "c"}]
    assert decoded["flags"] == [1, 2, 3] and decoded["paths"] == ["x", "yy"]
    assert decoded["blob"] == b"\x01\x02\x03" and decoded["ok"] is True
    from pygrub.fs.zfs.dsl import Pool

    pool = Pool.__new__(Pool)
    pool.name = "tank"
    with pytest.raises(UnsupportedError, match="org.example:time_travel"):
        pool._check_label_features(decoded)


def test_raidz_is_refused_by_name():
    from pygrub.fs.zfs.dsl import Pool

    pool = Pool.__new__(Pool)
    pool.name = "tank"
    with pytest.raises(UnsupportedError, match="raidz"):
        pool._readable_vdevs({"type": "raidz", "id": 0})


def test_nvlist_from_a_real_label(images):
    raw = images["plain"].read_bytes()[16 << 10 : (128 << 10) - 40]
    config = decode_packed(raw)
    assert config["name"] == "zplain" and config["version"] == 23
    assert config["vdev_tree"]["type"] == "file"


# -- hostile input ------------------------------------------------------------------------

OUTCOMES = (PygrubError,)


@given(st.data())
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_nvlist(data):
    base = bytearray(encode_packed({"name": "p", "tree": {"kids": [{"x": 1}, {"y": "z"}]}, "n": 5}))
    for _ in range(data.draw(st.integers(0, 6))):
        pos = data.draw(st.integers(0, len(base) - 1))
        base[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    try:
        decode_packed(bytes(base[:cut]) + data.draw(st.binary(max_size=16)))
    except OUTCOMES:
        pass


@given(st.data())
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_zap(data):
    names = {b"alpha": 1, b"b" * 40: 2, b"gamma": 3}
    blocks = (
        [bytearray(b) for b in fat_zap(names)]
        if data.draw(st.booleans())
        else [bytearray(micro_zap(names))]
    )
    for _ in range(data.draw(st.integers(1, 8))):
        block = data.draw(st.sampled_from(blocks))
        pos = (
            data.draw(st.integers(0, min(600, len(block) - 1)))
            if data.draw(st.booleans())
            else data.draw(st.integers(0, len(block) - 1))
        )
        block[pos] = data.draw(st.integers(0, 255))
    size = len(blocks[0])
    start = time.monotonic()
    try:
        zap = Zap(FakeObjectSet([bytes(b) for b in blocks]), zap_dnode(size, len(blocks)), "fuzz")
        for entry in zap.entries():
            assert isinstance(entry.name, bytes)
    except OUTCOMES:
        pass
    assert time.monotonic() - start < 5


@given(st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_block_pointer_walker(data):
    """Indirect trees of hostile pointers over hostile blocks: self-references, wrong
    levels, absurd sizes, bombs. Checksums are off so every pointer gets followed."""
    device = bytearray(bpmod.VDEV_LABEL_START_SIZE + 64 * 1024)
    pointers = []
    for _ in range(data.draw(st.integers(1, 6))):
        offset = data.draw(st.sampled_from([0, 1024, 4096, 16384, 60 * 1024, 1 << 40]))
        lsize = data.draw(st.sampled_from([512, 1024, 4096, 16384, 1 << 24, 1 << 25]))
        psize = data.draw(st.sampled_from([512, 4096, 16384, lsize]))
        comp = data.draw(st.sampled_from([0, 2, 3, 4, 5, 13, 14, 15, 16, 99]))
        level = data.draw(st.integers(0, 31))
        pointers.append(
            make_bp(offset, min(lsize, 1 << 25), min(psize, 1 << 25), comp, 2, level=level)
        )
    # Fill the device with copies of the pointers (so indirect blocks point at each other).
    for slot in range(len(device) // 128 - bpmod.VDEV_LABEL_START_SIZE // 128):
        if data.draw(st.integers(0, 9)) == 0:
            raw = data.draw(st.sampled_from(pointers))
            pos = bpmod.VDEV_LABEL_START_SIZE + slot * 128
            device[pos : pos + 128] = raw
        if slot > 64:
            break
    nlevels = data.draw(st.integers(1, 6))
    core = dnode_bytes(1, b"", nblkptr=1)
    core = bytearray(core)
    core[1] = data.draw(st.integers(9, 18))
    core[2] = nlevels
    struct.pack_into("<Q", core, 16, data.draw(st.sampled_from([0, 5, 1000, 2**40, 2**64 - 1])))
    core[64:192] = data.draw(st.sampled_from(pointers))
    start = time.monotonic()
    try:
        dnode = parse_dnode(bytes(core), "<", 9)
        reader = BlockReader(MemorySource(bytes(device)), frozenset({0}))
        for count, (_blkid, bp) in enumerate(level0_blocks(reader, dnode)):
            reader.read(bp, "fuzz")
            if count > 2000:
                break
    except OUTCOMES:
        pass
    assert time.monotonic() - start < 10


#: Where a small real pool keeps what a reader walks: label 0's config and uberblocks,
#: and the first MiBs of allocated blocks (MOS, dnodes, ZAPs, data).
METADATA_REGIONS = ((16 << 10, 2048), (128 << 10, 128 << 10), (4 * MiB, 2 * MiB))


@given(st.data())
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_fuzz_real_pool_metadata(images, data):
    """Bits flipped where a real pool keeps its labels and metadata: every outcome is
    the right bytes or one of our errors (checksums catch most flips). Plain data blocks
    are copied unchecked, so a flip inside one comes through as it lies on the disk."""
    flips = {}
    for _ in range(data.draw(st.integers(1, 4))):
        start, length = data.draw(st.sampled_from(METADATA_REGIONS))
        flips[start + data.draw(st.integers(0, length - 1))] = 1 << data.draw(st.integers(0, 7))
    path = "/vmlinuz-5.15.0-generic"
    started = time.monotonic()
    try:
        fs = open_filesystem(FlippedSource(images["bpool"], flips))
        if fs is not None:
            for name in fs.listdir("/"):
                fs.lstat("/" + name)
            assert fs.read_file(path, 1 << 20) == as_flipped_on_disk(images["bpool"], path, flips)
    except OUTCOMES:
        pass
    assert time.monotonic() - started < 10


def as_flipped_on_disk(image: Path, path: str, flips: dict[int, int]) -> bytes:
    """The file as the manifest says, with the flips that land in its plain data blocks."""
    fs = open_filesystem(FileSource(str(image)))
    content = bytearray(fs.read_file(path, 1 << 20))
    want = manifest("bpool")["datasets"]["bpool/BOOT/ubuntu_ab12cd"][path]["sha256"]
    assert hashlib.sha256(content).hexdigest() == want
    for ext in fs.node_extents(fs.resolve(path)):
        if ext.kind is ExtentKind.DATA:
            for pos, bit in flips.items():
                at = ext.file_offset + pos - ext.offset
                if ext.offset <= pos < ext.offset + ext.length and at < len(content):
                    content[at] ^= bit
    return bytes(content)
