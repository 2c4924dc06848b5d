"""The btrfs reader, on images made at test time by mkfs.btrfs --rootdir and by Linux
itself through a loop mount (subvolumes, a default subvolume, zlib/lzo/zstd extents).

The source tree is the truth for contents and symlink targets; a loop mount of the same
image (the kernel's own reader) is the oracle for listings, their order and what
subvolumes show; ``btrfs inspect-internal dump-tree`` and ``btrfs-map-logical`` say
where on-disk structures lie, which the hostile-input tests then damage. python-lzo
makes the LZO segments that btrfs's framing wraps (LZO1X itself: test_compress.py).
"""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from fswalk import (
    GRUB_CFG,
    KERNEL,
    LATIN1_FILE,
    EditedSource,
    MiB,
    assert_extents_match,
    assert_symlinks_resolve,
    open_and_walk,
    python_lzo,
    text_like,
    write_many,
    write_sparse,
    write_tree,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import loop_mounted, require_tool, run

from pygrub.disk import ByteSource, FileSource, MemorySource
from pygrub.errors import CorruptError, NotFoundError, PygrubError, UnsupportedError
from pygrub.fs import probe
from pygrub.fs.base import Filesystem, NodeType, checked_extents
from pygrub.fs.btrfs import open_filesystem
from pygrub.fs.btrfs.checksum import crc32c, name_hash
from pygrub.fs.btrfs.compression import btrfs_lzo_decompress
from pygrub.fs.btrfs.filesystem import BtrfsFilesystem
from pygrub.fs.btrfs.structures import EXTENT_DATA_KEY, INODE_ITEM_KEY, MAGIC, Key
from pygrub.fs.btrfs.tree import Item

SB = 0x10000

# -- building images ------------------------------------------------------------------


def colliding_name(prefix: bytes, want: int) -> bytes:
    """``prefix`` and 8 bytes from 0x40..0x7f whose btrfs name hash is ``want``.

    The hash is affine in the name's bits, so the 48 free low bits are found by solving
    32 equations over GF(2).
    """
    base = bytearray(prefix + b"\x40" * 8)
    zero = name_hash(bytes(len(base)))
    columns = []
    for index in range(len(prefix), len(base)):
        for bit in range(6):
            probe_ = bytearray(len(base))
            probe_[index] = 1 << bit
            columns.append((name_hash(bytes(probe_)) ^ zero, index, 1 << bit))
    target = want ^ name_hash(bytes(base))
    basis: dict[int, tuple[int, int]] = {}  # pivot bit -> (vector, set of columns)
    for number, (vector, _i, _b) in enumerate(columns):
        combo = 1 << number
        for pivot in sorted(basis, reverse=True):
            if vector >> pivot & 1:
                vector ^= basis[pivot][0]
                combo ^= basis[pivot][1]
        if vector:
            basis[vector.bit_length() - 1] = (vector, combo)
    combo = 0
    for pivot in sorted(basis, reverse=True):
        if target >> pivot & 1:
            target ^= basis[pivot][0]
            combo ^= basis[pivot][1]
    assert target == 0, "the free bits do not reach every hash"
    for number, (_v, index, bit) in enumerate(columns):
        if combo >> number & 1:
            base[index] ^= bit
    name = bytes(base)
    assert name_hash(name) == want
    return name


COLLIDING = [colliding_name(prefix, 0x12345678) for prefix in (b"first-", b"second-", b"third-")]

SYMLINKS = {
    "links/s1": "f",
    "links/rel": "../" + KERNEL,
    "links/abs": "/" + KERNEL,
    "links/long": "/" + "./" * 240 + KERNEL,
    "links/bootdir": "../boot",
    "links/loop1": "loop2",
    "links/loop2": "loop1",
    "links/dangling": "nowhere",
}


def populate(root: Path, many: int = 600) -> Path:
    """The tree every --rootdir fixture holds: sizes around the inline limit and sector
    boundaries, deep and odd names, symlinks, a sparse file, a directory big enough to
    need several leaves, and names whose hashes collide."""
    rng = random.Random(42)
    files = {
        "boot/grub/grub.cfg": GRUB_CFG,
        KERNEL: rng.randbytes(1_200_000),
        "boot/initrd.img-6.1": rng.randbytes(300_000),
        "empty": b"",
        "one": b"x",
        "tiny": b"hello, world\n",
        "inline-2047": rng.randbytes(2047),
        "inline-2048": rng.randbytes(2048),
        "past-inline": rng.randbytes(2049),
        "sector": rng.randbytes(4096),
        "sector+1": rng.randbytes(4097),
        "zeros": bytes(3 * 4096),
        "text": text_like(rng, 200_000),
        "a/b/c/d/e/deep.txt": b"deep\n",
        LATIN1_FILE: b"a latin-1 name\n",
        "h\u00e9llo.txt": b"a UTF-8 name\n",
        "links/f": b"the f file\n",
    }
    write_tree(root, files, SYMLINKS)
    write_sparse(root / "sparse", 8 * MiB, {4 * MiB: b"middle of nowhere", 8 * MiB - 3: b"end"})
    write_many(root / "many", (f"entry-with-a-longish-name-{i:04d}" for i in range(many)))
    for name in COLLIDING[:2]:
        (root / "collide").mkdir(exist_ok=True)
        (root / "collide" / os.fsdecode(name)).write_bytes(name)
    return root


def mkfs(image: Path, src: Path | None, *options: str, size_mb: int = 128) -> Path:
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_mb * MiB)
    rootdir = ("-r", str(src)) if src is not None else ()
    run("mkfs.btrfs", "-q", "-f", *options, *rootdir, image)
    return image


def open_btrfs(image: Path) -> BtrfsFilesystem:
    fs = probe(FileSource(str(image)))
    assert isinstance(fs, BtrfsFilesystem)
    assert fs.kind == "btrfs"
    return fs


def dump_tree(image: Path, *args: str) -> str:
    return run("btrfs", "inspect-internal", "dump-tree", *args, image).decode(
        "utf-8", "surrogateescape"
    )


def physical_copies(image: Path, logical: int, length: int) -> list[int]:
    """Where each copy of a logical range lies, as btrfs-map-logical says."""
    out = run("btrfs-map-logical", "-l", str(logical), "-b", str(length), image).decode()
    return [int(m[1]) for m in re.finditer(r"physical (\d+)", out)]


def tree_blocks(image: Path, *args: str) -> list[int]:
    """Logical addresses of every tree block dump-tree prints."""
    return sorted(
        {int(m[1]) for m in re.finditer(r"^(?:leaf|node) (\d+) ", dump_tree(image, *args), re.M)}
    )


# -- the expected view of a tree --------------------------------------------------------


@dataclass(frozen=True)
class Want:
    type: NodeType
    #: Directory: names in listing order (None: compare sorted). File: bytes. Link: target.
    value: object
    mode: int = 0


def host_view(root: Path, ordered: bool) -> dict[str, Want]:
    """path -> what a reader must show, read through the host (a source tree, or a
    mount, whose listing order is the kernel's)."""
    view: dict[str, Want] = {}
    pending = [root]
    while pending:
        here = pending.pop()
        rel = "/" if here == root else "/" + here.relative_to(root).as_posix()
        names = os.listdir(here)
        view[rel] = Want(NodeType.DIR, names if ordered else sorted(names))
        for name in names:
            host = here / name
            path = rel.rstrip("/") + "/" + name
            mode = os.lstat(host).st_mode & 0o7777
            if host.is_symlink():
                view[path] = Want(NodeType.SYMLINK, os.readlink(host))
            elif host.is_dir():
                pending.append(host)
            else:
                view[path] = Want(NodeType.FILE, host.read_bytes(), mode)
    return view


def read_whole(fs: Filesystem, path: str, size: int) -> bytes:
    with fs.open(path) as f:
        parts = []
        while len(parts) * 4 * MiB < size:
            parts.append(f.read(4 * MiB))
        return b"".join(parts)


def assert_matches(fs: Filesystem, view: dict[str, Want], ordered: bool) -> None:
    for path, want in view.items():
        st_ = fs.lstat(path)
        assert st_.type is want.type, path
        if want.type is NodeType.DIR:
            names = fs.listdir(path)
            assert (names if ordered else sorted(names)) == want.value, path
        elif want.type is NodeType.SYMLINK:
            assert fs.readlink_path(path) == want.value, path
            assert st_.size == len(os.fsencode(str(want.value))), path
        else:
            data = want.value
            assert isinstance(data, bytes)
            assert (st_.size, st_.mode) == (len(data), want.mode), path
            assert read_whole(fs, path, len(data)) == data, path
            assert_extents_match(fs, path, data)


#: The symlinks that lead to the kernel: relative, absolute and long.
KERNEL_LINKS = ("links/rel", "links/abs", "links/long")


# -- images made by mkfs.btrfs --rootdir ----------------------------------------------


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory) -> Path:
    return populate(tmp_path_factory.mktemp("btrfs-src") / "src")


MATRIX = [
    ("-n", "4096"),
    ("-n", "16384"),  # the default: DUP metadata on one device
    ("-n", "65536"),
    ("-m", "single", "-d", "dup"),
    ("-M",),  # mixed block groups: data and metadata share chunks
    ("-s", "65536", "-n", "65536"),
    ("--csum", "sha256"),
    ("--csum", "blake2"),
    ("--csum", "xxhash"),
]


@pytest.mark.parametrize("options", MATRIX, ids=["_".join(m) for m in MATRIX])
def test_reads_the_whole_tree(tmp_path, source_tree, options):
    image = mkfs(tmp_path / "fs.img", source_tree, *options)
    fs = open_btrfs(image)
    try:
        if "-n" in options:
            assert fs.nodesize == int(options[options.index("-n") + 1])
        assert_matches(fs, host_view(source_tree, ordered=False), ordered=False)
        assert_symlinks_resolve(fs, source_tree, KERNEL_LINKS)
        assert {where for _o, _n, where in fs.extents("/tiny")} == {"encoded"}
        assert all(where not in ("encoded", "hole") for _o, _n, where in fs.extents(KERNEL))
    finally:
        fs.source.close()


def test_many_entries_span_several_levels(tmp_path, source_tree):
    image = mkfs(tmp_path / "fs.img", source_tree, "-n", "4096")
    dump = dump_tree(image, "-t", "fs")
    assert re.search(r"^node \d+ level [1-9]", dump, re.M), "the fs tree should have internal nodes"
    fs = open_btrfs(image)
    names = fs.listdir("/many")
    assert len(names) == 600
    # DIR_INDEX order is creation order; mkfs creates in readdir order of the source.
    assert sorted(names) == sorted(os.listdir(source_tree / "many"))
    for index in (0, 1, 299, 599):
        assert fs.read_file(f"/many/entry-with-a-longish-name-{index:04d}", 100) == b"%d\n" % index
    with pytest.raises(NotFoundError):
        fs.stat("/many/entry-with-a-longish-name-0600")
    fs.source.close()


def test_colliding_names_share_one_dir_item(tmp_path, source_tree):
    image = mkfs(tmp_path / "fs.img", source_tree)
    dump = dump_tree(image, "-t", "fs")
    # dump-tree (the oracle) shows one DIR_ITEM key, at the shared hash, holding both names.
    block = re.search(r"key \(\d+ DIR_ITEM 305419896\).*?(?=\titem \d+ key)", dump, re.S)
    assert block and all(os.fsdecode(n) in block[0] for n in COLLIDING[:2])
    fs = open_btrfs(image)
    for name in COLLIDING[:2]:
        assert fs.read_file("/collide/" + os.fsdecode(name), 100) == name
    with pytest.raises(NotFoundError):
        fs.stat("/collide/" + os.fsdecode(COLLIDING[2]))  # same hash, not there
    fs.source.close()


def test_uuid_label_and_metadata_uuid(tmp_path, source_tree):
    uuid = "0123abcd-4567-89ef-0123-456789abcdef"
    image = mkfs(tmp_path / "fs.img", source_tree, "-L", "guest-root", "-U", uuid)
    fs = open_btrfs(image)
    assert (fs.uuid, fs.label) == (uuid, "guest-root")
    fs.source.close()
    # btrfstune -M changes the fsid but leaves the tree blocks stamped with the old one.
    run("btrfstune", "-M", "11111111-2222-3333-4444-555555555555", image)
    super_ = run("btrfs", "inspect-internal", "dump-super", image).decode()
    assert "METADATA_UUID" in super_
    fs = open_btrfs(image)
    assert fs.uuid == "11111111-2222-3333-4444-555555555555"
    assert fs.read_file("/tiny", 100) == b"hello, world\n"
    fs.source.close()


def test_superblock_checksum_is_crc32c(tmp_path, source_tree):
    image = mkfs(tmp_path / "fs.img", source_tree)
    raw = image.read_bytes()[SB : SB + 4096]
    assert raw[:4] == crc32c(raw[0x20:]).to_bytes(4, "little")
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_not_btrfs(tmp_path):
    assert open_filesystem(MemorySource(bytes(SB + 4096))) is None
    assert open_filesystem(MemorySource(bytes(100))) is None


# -- images written by Linux through a loop mount -------------------------------------


@dataclass
class Mounted:
    image: Path
    top: dict[str, Want]  # the top level, as the kernel lists it
    default: dict[str, Want]  # what a plain mount (the default subvolume) shows
    default_id: int
    kernel: bytes


def write_compressed_set(directory: Path, rng: random.Random) -> None:
    directory.mkdir()
    (directory / "text").write_bytes(text_like(rng, 600_000))
    # Compressed to well under max_inline (2048) by every method: an inline extent.
    (directory / "inline").write_bytes((b"menuentry 'Linux' { linux /boot/vmlinuz }\n" * 70)[:3000])
    (directory / "random").write_bytes(rng.randbytes(300_000))
    (directory / "zeros").write_bytes(bytes(500_000))
    write_sparse(
        directory / "sparse", 3 * MiB, {0: text_like(rng, 70_000), MiB + 5: text_like(rng, 9000)}
    )
    with open(directory / "partial", "wb") as f:
        f.write(text_like(rng, 400_000))
        f.flush()
        os.fsync(f.fileno())
        # Overwriting the middle leaves the tail pointing into the old compressed
        # extent at an offset.
        f.seek(100_000)
        f.write(rng.randbytes(8192))
    os.sync()


@pytest.fixture(scope="module")
def mounted_image(tmp_path_factory) -> Mounted:
    """Subvolumes @ (with a nested @/.snapshots), @home, a snapshot of @ at
    @/.snapshots/1/snapshot set as the default, and files compressed by each method."""
    tmp = tmp_path_factory.mktemp("btrfs-mount")
    image = mkfs(tmp / "fs.img", None, size_mb=256)
    mnt = tmp / "mnt"
    rng = random.Random(5)
    kernel = rng.randbytes(1_500_000)
    with loop_mounted(image, mnt) as m:
        for name in ("@", "@home"):
            run("btrfs", "subvolume", "create", m / name)
        boot = m / "@/boot/grub"
        boot.mkdir(parents=True)
        (boot / "grub.cfg").write_bytes(b"set btrfs_relative_path=y\nmenuentry x {}\n")
        (m / "@" / KERNEL).write_bytes(kernel)
        os.symlink("vmlinuz-6.1", m / "@/boot/vmlinuz")
        os.symlink("/boot/grub/grub.cfg", m / "@/abs-link")
        (m / "@home/user").mkdir()
        (m / "@home/user/notes").write_bytes(b"home\n")
        (m / "top.txt").write_bytes(b"at the top level\n")
        with open(m / "@/prealloc", "wb") as f:
            os.posix_fallocate(f.fileno(), 0, MiB)
            f.write(b"head")
        os.sync()
    for method in ("zlib", "lzo", "zstd"):
        with loop_mounted(image, mnt, f"compress-force={method}") as m:
            write_compressed_set(m / "@" / method, rng)
    with loop_mounted(image, mnt) as m:
        run("btrfs", "subvolume", "create", m / "@/.snapshots")
        (m / "@/.snapshots/1").mkdir()
        run("btrfs", "subvolume", "snapshot", m / "@", m / "@/.snapshots/1/snapshot")
        snapshot_id = int(run("btrfs", "inspect-internal", "rootid", m / "@/.snapshots/1/snapshot"))
        run("btrfs", "subvolume", "set-default", str(snapshot_id), m)
        os.sync()
        top = host_view(m, ordered=True)
    with loop_mounted(image, mnt) as m:
        default = host_view(m, ordered=True)
    return Mounted(image, top, default, snapshot_id, kernel)


def test_top_level_matches_the_kernel(mounted_image):
    fs = open_btrfs(mounted_image.image)
    assert fs.listdir("/") == ["@", "@home", "top.txt"]
    assert_matches(fs, mounted_image.top, ordered=True)
    # The nested subvolume inside the snapshot shows as Linux's empty stand-in.
    assert fs.listdir("/@/.snapshots/1/snapshot/.snapshots") == []
    assert fs.listdir("/@/.snapshots") == ["1"]
    assert fs.read_file("/@/boot/vmlinuz", 2 * MiB) == mounted_image.kernel
    fs.source.close()


def test_default_subvolume_view_matches_the_kernel(mounted_image):
    fs = open_btrfs(mounted_image.image)
    assert fs.default_subvolume_id() == mounted_image.default_id
    view = fs.subvolume_view(default=True)
    assert view.listdir("/") == fs.listdir("/@/.snapshots/1/snapshot")
    assert_matches(view, mounted_image.default, ordered=True)
    # Absolute symlinks resolve from the view's root, as GRUB with btrfs_relative_path.
    assert view.read_file("/abs-link", 100).startswith(b"set btrfs_relative_path")
    assert fs.listdir("/") == ["@", "@home", "top.txt"], "the view must not move fs's root"
    fs.source.close()


def test_views_by_path_and_id(mounted_image):
    fs = open_btrfs(mounted_image.image)
    at = fs.subvolume_view(path="/@")
    assert at.listdir("/") == fs.listdir("/@")
    assert at.read_file("/boot/vmlinuz", 2 * MiB) == mounted_image.kernel
    home = fs.subvolume_view(path="/@home")
    assert home.read_file("/user/notes", 100) == b"home\n"
    assert fs.subvolume_view(subvol_id=5).listdir("/") == fs.listdir("/")
    with pytest.raises(NotFoundError):
        fs.subvolume_view(subvol_id=4242)
    with pytest.raises(NotFoundError):
        fs.subvolume_view(path="/top.txt")
    fs.source.close()


def test_fixture_covers_every_compression(mounted_image):
    """The oracle says the fixture holds what the reader must decode."""
    dump = dump_tree(mounted_image.image)
    for number, method in ((1, "zlib"), (2, "lzo"), (3, "zstd")):
        assert re.search(rf"extent compression {number} \({method}\)", dump), method
        assert re.search(
            rf"inline extent data size \d+ ram_bytes \d+ compression {number}", dump
        ), method
    offsets = [
        int(m[1])
        for m in re.finditer(
            r"extent data offset (\d+) nr \d+ ram \d+\n\s+extent compression [123]", dump
        )
    ]
    assert any(offsets), "a compressed extent referenced from an offset"
    assert "type 2 (prealloc)" in dump


def test_compressed_and_preallocated_extents(mounted_image):
    fs = open_btrfs(mounted_image.image)
    for method in ("zlib", "lzo", "zstd"):
        kinds = {where for _o, _n, where in fs.extents(f"/@/{method}/text")}
        assert kinds == {"encoded"}, method
    assert [w for _o, _n, w in fs.extents("/@/prealloc")][1:] == ["hole"]
    assert fs.read_file("/@/prealloc", 2 * MiB) == b"head".ljust(MiB, b"\0")
    fs.source.close()


def test_zstd_extents_match_the_kernel(mounted_image, zstd_backend):
    """Every zstd-compressed file as the kernel read it, through each zstd library."""
    fs = open_btrfs(mounted_image.image)
    for name in ("text", "inline", "sparse", "partial"):
        path = f"/@/zstd/{name}"
        assert fs.read_file(path, 4 * MiB) == mounted_image.top[path].value, path
    fs.source.close()


def test_zstd_without_the_package(mounted_image, without_package):
    without_package("zstandard")
    fs = open_btrfs(mounted_image.image)
    assert fs.read_file("/@/zlib/inline", 5000)
    with pytest.raises(UnsupportedError, match="zstandard"):
        fs.read_file("/@/zstd/text", MiB)
    fs.source.close()


@contextmanager
def loop_devices(*images: Path) -> Iterator[list[str]]:
    devices: list[str] = []
    try:
        for image in images:
            devices.append(run("losetup", "-f", "--show", image).decode().strip())
        yield devices
    finally:
        for device in devices:
            subprocess.run([require_tool("losetup"), "-d", device], check=False)


@pytest.mark.parametrize("profile", ["raid1", "raid0"])
def test_two_device_filesystem_read_from_each_device(tmp_path, profile):
    """RAID1 metadata on two devices: either device alone has a copy of every tree
    block. RAID1 data reads from either; RAID0 data is refused by name."""
    images = [tmp_path / f"dev{index}.img" for index in (1, 2)]
    for image in images:
        with open(image, "wb") as f:
            f.truncate(200 * MiB)
    run("mkfs.btrfs", "-q", "-f", "-m", "raid1", "-d", profile, *images)
    kernel = random.Random(2).randbytes(300_000)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_devices(*images) as devices:
        options = ",".join(f"device={device}" for device in devices)
        run("mount", "-o", options, devices[0], mnt)
        try:
            (mnt / "vmlinuz").write_bytes(kernel)
            (mnt / "tiny").write_bytes(b"inline\n")
            os.sync()
        finally:
            subprocess.run([require_tool("umount"), str(mnt)], check=True)
    for image in images:
        fs = open_btrfs(image)
        assert fs.read_file("/tiny", 100) == b"inline\n"
        if profile == "raid1":
            assert fs.read_file("/vmlinuz", MiB) == kernel
        else:
            with pytest.raises(UnsupportedError, match="raid0 chunks are not supported"):
                fs.read_file("/vmlinuz", MiB)
        fs.source.close()


# -- LZO framing (LZO1X itself: test_compress.py) ----------------------------------------


def frame_lzo(segments: list[bytes], sectorsize: int) -> bytes:
    """btrfs's LZO framing around already-compressed segments."""
    out = bytearray(4)
    for segment in segments:
        left = sectorsize - len(out) % sectorsize
        if left < 4:
            out += bytes(left)
        out += struct.pack("<I", len(segment)) + segment
    out[:4] = struct.pack("<I", len(out))
    return bytes(out)


def test_lzo_framing_pads_headers_to_the_next_sector():
    module = python_lzo()
    rng = random.Random(9)
    # A first segment that ends 1..3 bytes before the sector boundary (a segment may
    # decode to less than a sector; the reader joins what each gives).
    for size in range(3950, 4096):
        first = rng.randbytes(size)
        segment = module.compress(first, 1, False)
        if 4096 - (8 + len(segment)) in (1, 2, 3):
            break
    else:
        pytest.fail("no padded layout found")
    second = text_like(rng, 4096)
    framed = frame_lzo([segment, module.compress(second, 1, False)], 4096)
    assert framed[4093:4096] == bytes(4096 - 8 - len(segment)), "the header was pushed on"
    assert btrfs_lzo_decompress(framed, 8192, 4096) == first + second
    assert btrfs_lzo_decompress(framed, 5000, 4096) == (first + second)[:5000]
    with pytest.raises(CorruptError):
        btrfs_lzo_decompress(framed[:-10], 8192, 4096)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 20000), st.sampled_from([4096, 65536]))
def test_btrfs_lzo_framing_hostile(data, size, sectorsize):
    try:
        out = btrfs_lzo_decompress(data, size, sectorsize)
    except CorruptError:
        return
    assert len(out) <= size


# -- hostile images: targeted damage --------------------------------------------------


def patched(image: Path, edits: dict[int, bytes]) -> EditedSource:
    """The image with some bytes replaced as it is read (it is never copied)."""
    return EditedSource(FileSource(str(image)), edits.items())


def resummed(image: Path, start: int, length: int, edits: dict[int, bytes]) -> dict[int, bytes]:
    """``edits`` plus the crc32c that makes the block at [start, start+length) valid again."""
    with open(image, "rb") as f:
        block = bytearray(os.pread(f.fileno(), length, start))
    for at, value in edits.items():
        if start <= at < start + length:
            block[at - start : at - start + len(value)] = value
    return {**edits, start: crc32c(bytes(block[0x20:])).to_bytes(4, "little")}


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


@pytest.fixture(scope="module")
def small_image(tmp_path_factory) -> tuple[Path, Path]:
    """(image, source): 4 KiB nodes, single metadata, a few files; 128 MiB so the first
    superblock mirror exists."""
    tmp = tmp_path_factory.mktemp("btrfs-small")
    src = tmp / "src"
    rng = random.Random(11)
    (src / "boot/grub").mkdir(parents=True)
    (src / "boot/grub/grub.cfg").write_bytes(b"set default=0\nmenuentry 'Linux' {}\n")
    (src / "boot/vmlinuz").write_bytes(rng.randbytes(50_000))
    (src / "small.txt").write_bytes(b"small\n")
    (src / "dir").mkdir()
    for index in range(60):
        (src / "dir" / f"name-{index:03d}").write_bytes(b"%d" % index)
    os.symlink("boot/vmlinuz", src / "link")
    os.symlink("loop", src / "loop")
    return mkfs(tmp / "fs.img", src, "-n", "4096", "-m", "single"), src


def superblock_edit(image: Path, edits: dict[int, bytes]) -> dict[int, bytes]:
    """The same edits to the primary superblock and its mirror, checksums made good."""
    result: dict[int, bytes] = {}
    for offset in (SB, 64 * MiB):
        moved = {offset + at: value for at, value in edits.items()}
        result.update(resummed(image, offset, 4096, moved))
    return result


def test_bad_primary_superblock_falls_back_to_the_mirror(small_image):
    image, src = small_image
    fs = open_filesystem(patched(image, {SB + 0x50: u64(12345)}))  # csum now wrong
    assert fs is not None and fs.read_file("/small.txt", 100) == b"small\n"
    edits = {SB + 0x50: u64(12345), 64 * MiB + 0x50: u64(1)}
    with pytest.raises(CorruptError, match="superblock at byte 65536: crc32c checksum"):
        open_filesystem(patched(image, edits))


@pytest.mark.parametrize(
    "edits,error,match",
    [
        ({0xA0: u32(4000)}, CorruptError, "sys_chunk_array_size 4000"),
        ({0x90: u32(3000)}, CorruptError, "sectorsize 3000"),
        ({0x94: u32(1 << 20)}, CorruptError, "nodesize"),
        ({0xC6: b"\x09"}, CorruptError, "root level 9"),
        ({0xBC: u64(0x341 | 0x2000)}, UnsupportedError, "extent_tree_v2"),
        ({0xBC: u64(0x341 | 1 << 40)}, UnsupportedError, "0x10000000000"),
        ({0xC4: b"\x07\x00"}, UnsupportedError, "csum_type 7"),
        # the system chunk's type (sys_chunk_array + key + length, owner, stripe_len)
        ({0x32B + 17 + 24: u64(0x2 | 0x80)}, UnsupportedError, "raid5"),
        ({0x32B + 17 + 24: u64(0x2 | 0x8)}, UnsupportedError, "raid0"),
        ({0x32B + 8: b"\x01"}, CorruptError, "key type 1"),
    ],
)
def test_superblock_damage(small_image, edits, error, match):
    image, _src = small_image
    (incompat,) = struct.unpack_from("<Q", image.read_bytes()[SB : SB + 4096], 0xBC)
    assert incompat == 0x341, "the edits above assume mkfs's default features"
    with pytest.raises(error, match=match):
        fs = open_filesystem(patched(image, superblock_edit(image, edits)))
        fs.read_file("/small.txt", 100)  # raid chunks are refused when used


def fs_tree_root(fs: BtrfsFilesystem) -> tuple[int, int]:
    """(logical address, level) of the top level's root block."""
    tree = fs.subvolume(5).tree
    return tree.bytenr, tree.level


def test_dup_metadata_falls_back_to_the_second_copy(tmp_path, source_tree):
    image = mkfs(tmp_path / "fs.img", source_tree)  # DUP metadata
    fs = open_btrfs(image)
    bytenr, _level = fs_tree_root(fs)
    fs.source.close()
    copies = physical_copies(image, bytenr, 16384)
    assert len(copies) == 2
    fs = open_filesystem(patched(image, {copies[0] + 200: b"\xff" * 8}))
    assert fs.read_file("/tiny", 100) == b"hello, world\n"
    both = {copies[0] + 200: b"\xff" * 8, copies[1] + 200: b"\xff" * 8}
    fs = open_filesystem(patched(image, both))
    with pytest.raises(CorruptError, match="checksum mismatch.*checksum mismatch"):
        fs.read_file("/tiny", 100)


@pytest.fixture(scope="module")
def deep_image(tmp_path_factory, source_tree) -> Path:
    """4 KiB nodes, single metadata: the fs tree has internal nodes (the 600 entries)."""
    return mkfs(
        tmp_path_factory.mktemp("btrfs-deep") / "fs.img", source_tree, "-n", "4096", "-m", "single"
    )


def node_edits(image: Path, bytenr: int, edits: dict[int, bytes]) -> dict[int, bytes]:
    (physical,) = physical_copies(image, bytenr, 4096)
    return resummed(image, physical, 4096, {physical + at: value for at, value in edits.items()})


def test_child_pointer_to_itself(deep_image):
    fs = open_btrfs(deep_image)
    bytenr, level = fs_tree_root(fs)
    assert level >= 1
    # The root's first key pointer (after the 101-byte header and a 17-byte key) names
    # the root itself: its level is not one less.
    source = patched(deep_image, node_edits(deep_image, bytenr, {101 + 17: u64(bytenr)}))
    with pytest.raises(CorruptError, match="level"):
        open_filesystem(source).listdir("/")


def test_pointer_to_another_slots_child(deep_image):
    fs = open_btrfs(deep_image)
    bytenr, level = fs_tree_root(fs)
    root = fs.trees.block(bytenr, level, fs.subvolume(5).tree.generation, None)
    assert len(root.keys) >= 3
    # Slot 2 points to slot 1's child (a DAG, where a walk could read blocks again and
    # again): that child's first key is not slot 2's key.
    ptr1, gen1 = root.refs[1]
    source = patched(
        deep_image, node_edits(deep_image, bytenr, {101 + 2 * 33 + 17: u64(ptr1) + u64(gen1)})
    )
    damaged = open_filesystem(source)
    with pytest.raises(CorruptError, match="first key"):
        for _item in damaged.trees.items(damaged.subvolume(5).tree, Key(0, 0, 0)):
            pass


@pytest.mark.parametrize(
    "field,value,match",
    [
        (0x60, u32(0xFFFFFF), "do not fit"),  # nritems
        (0x30, u64(4096), "belongs at logical 4096"),  # bytenr
        (0x64, b"\x07", "level 7 where"),  # level
        (0x50, u64(1), "generation 1 where"),
    ],
)
def test_damaged_leaf_header(deep_image, field, value, match):
    fs = open_btrfs(deep_image)
    leaf = first_item(fs, "/tiny", INODE_ITEM_KEY).leaf
    source = patched(deep_image, node_edits(deep_image, leaf, {field: value}))
    with pytest.raises(CorruptError, match=match):
        open_filesystem(source).read_file("/tiny", 100)


def test_item_outside_the_leaf(deep_image):
    fs = open_btrfs(deep_image)
    item = first_item(fs, "/tiny", INODE_ITEM_KEY)
    # btrfs_item.offset of that slot: header, slot * 25, then the 17-byte key
    edits = node_edits(deep_image, item.leaf, {101 + item.slot * 25 + 17: u32(4090)})
    source = patched(deep_image, edits)
    with pytest.raises(CorruptError, match="outside the leaf"):
        open_filesystem(source).read_file("/tiny", 100)


def first_item(fs: BtrfsFilesystem, path: str, key_type: int) -> Item:
    """The first item of ``key_type`` of the inode at ``path`` (where the tests damage)."""
    node = fs.resolve(path)
    items = fs.trees.items_of(fs.subvolume(node.tree).tree, node.ino, key_type)
    return next(items)


def extent_item(fs: BtrfsFilesystem, path: str) -> tuple[int, int]:
    """(leaf logical address, byte offset in the leaf) of a file's first EXTENT_DATA item."""
    item = first_item(fs, path, EXTENT_DATA_KEY)
    return item.leaf, item.offset


def test_compressed_extent_claiming_too_much(mounted_image):
    image = mounted_image.image
    fs = open_btrfs(image)
    leaf, at = extent_item(fs, "/@/zlib/text")
    fs.source.close()
    copies = physical_copies(image, leaf, 16384)
    edits = resummed(image, copies[0], 16384, {copies[0] + at + 8: u64(1 << 40)})  # ram_bytes
    fs = open_filesystem(patched(image, edits))
    with pytest.raises(CorruptError, match="compressed extent"):
        fs.read_file("/@/zlib/text", MiB)


# -- hostile images: random damage ----------------------------------------------------


def walk_and_compare(
    fs: Filesystem, view: dict[str, Want] | None, paths: list[str], read_limit: int = 4 * MiB
) -> None:
    """Visit every path; each answer must be one of our errors or, when ``view`` is
    given (the damage cannot have passed a checksum), exactly what the source holds."""
    for path in paths:
        want = view.get(path) if view is not None else None
        try:
            st_ = fs.lstat(path)
            if st_.type is NodeType.DIR:
                got: object = fs.listdir(path)[:5000]
                if want is not None:
                    assert sorted(got) == want.value, path  # type: ignore[arg-type]
            elif st_.type is NodeType.SYMLINK:
                got = fs.readlink_path(path)
                if want is not None:
                    assert got == want.value, path
            elif st_.type is NodeType.FILE:
                with fs.open(path) as f:
                    got = f.read(min(st_.size, read_limit))
                list(fs.extents(path))
                if want is not None:
                    assert got == want.value, path
        except PygrubError:
            pass
    for path in ("/link", "/loop", "/dir/name-050", "/boot/grub/grub.cfg", "/nothing"):
        try:
            fs.read_file(path, 100)
        except PygrubError:
            pass


#: (start, length, is a tree block) of a piece of the image the fuzz tests damage.
Region = tuple[int, int, bool]


def damage_regions(image: Path) -> list[Region]:
    """(start, length, is a tree block) of the superblock and every tree block."""
    regions = [(SB, 4096, False)]
    for bytenr in tree_blocks(image):
        for physical in physical_copies(image, bytenr, 4096):
            regions.append((physical, 4096, True))
    return regions


@st.composite
def damage(draw: Callable, regions: list[Region]) -> tuple[dict[int, bytes], bool, list[Region]]:
    """Up to four overwrites in the regions, whether to make their checksums good again,
    and the regions touched."""
    edits: dict[int, bytes] = {}
    touched = set()
    for _ in range(draw(st.integers(1, 4))):
        start, length, _is_block = region = draw(st.sampled_from(regions))
        touched.add(region)
        offset = draw(st.integers(start + 0x20, start + length - 8))
        edits[offset] = draw(
            st.one_of(
                st.binary(min_size=1, max_size=1),
                st.integers(0, 0xFFFFFFFF).map(u32),
                st.integers(0, (1 << 64) - 1).map(u64),
                st.sampled_from([u32(0), u32(1), u64(0), u64((1 << 64) - 1), u32(0xFFFFFFFF)]),
            )
        )
    resum = draw(st.booleans())
    return edits, resum, sorted(touched)


def has_magic(source: ByteSource) -> bool:
    return source.pread(SB + 0x40, 8) == MAGIC


def test_random_damage_gives_data_or_our_errors(small_image):
    image, src = small_image
    view = host_view(src, ordered=False)
    paths = sorted(view)
    regions = damage_regions(image)
    assert len(regions) >= 5

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(damage(regions))
    def check(drawn: tuple[dict[int, bytes], bool, list[Region]]) -> None:
        edits, resum, touched = drawn
        if resum:
            for start, length, _is_block in touched:
                edits = resummed(image, start, length, edits)
        source = patched(image, edits)
        try:
            walk = partial(walk_and_compare, view=None if resum else view, paths=paths)
            open_and_walk(open_filesystem, source, walk, has_magic)
        finally:
            source.close()

    check()


def test_random_damage_to_compressed_extents(mounted_image):
    """Damage the leaves that describe compressed files and the compressed bytes."""
    image = mounted_image.image
    fs = open_btrfs(image)
    regions = []
    paths = []
    for method in ("zlib", "lzo", "zstd"):
        for name in ("text", "inline", "partial", "sparse"):
            path = f"/@/{method}/{name}"
            paths.append(path)
            leaf, _at = extent_item(fs, path)
            regions.append((physical_copies(image, leaf, 16384)[0], 16384, True))
        # The compressed bytes of the first two extents of the text file.
        for ext in list(checked_extents(fs, fs.resolve(f"/@/{method}/text"), 600_000))[:2]:
            start = physical_copies(image, ext.offset, 4096)[0]
            regions.append((start, ext.token.disk_num_bytes, False))
    fs.source.close()

    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(damage(regions))
    def check(drawn: tuple[dict[int, bytes], bool, list[Region]]) -> None:
        edits, _resum, touched = drawn
        for start, length, is_block in touched:
            if is_block:
                edits = resummed(image, start, length, edits)
        source = patched(image, edits)
        try:
            # The damaged extents are the first two (256 KiB) of each text file.
            walk = partial(walk_and_compare, view=None, paths=paths, read_limit=256 * 1024)
            open_and_walk(open_filesystem, source, walk, has_magic)
        finally:
            source.close()

    check()
