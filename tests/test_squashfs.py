"""The SquashFS reader, on images made by mksquashfs at test time.

The source tree is the truth for file contents and symlink targets; ``unsquashfs -lls``
(the format's own reader) is the oracle for listings, types, sizes and permissions.
Every compressor mksquashfs offers is read, with block sizes from 4 KiB to 1 MiB, with
and without fragments, and with everything stored uncompressed.
"""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import fswalk
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
    overwrites,
    patched,
    text_like,
    walk_nodes,
    write_many,
    write_sparse,
    write_tree,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import make_partitioned, run

from pygrub.disk import ByteSource, FileSource, MemorySource
from pygrub.errors import CorruptError, NotFoundError, UnsupportedError
from pygrub.fs import probe
from pygrub.fs.base import Filesystem, NodeType
from pygrub.fs.squashfs import LREG_TYPE, MAGIC, SquashFilesystem, open_filesystem

MANY = 300  # entries in /many: several directory headers and a directory index

SYMLINKS = {
    "links/rel": "f",
    "links/up": "../" + KERNEL,
    "links/abs": "/" + KERNEL,
    "links/long": "/" + "./" * 150 + KERNEL,
    "links/bootdir": "../boot",
    "links/loop1": "loop2",
    "links/loop2": "loop1",
    "links/dangling": "nowhere",
}

#: Pseudo files mksquashfs adds: a directory of device nodes, a fifo and a socket.
PSEUDO = (
    "dev d 755 0 0",
    "dev/null c 666 0 0 1 3",
    "dev/sda b 660 0 0 8 0",
    "dev/fifo i 644 0 0 f",
    "dev/sock i 644 0 0 s",
)


# -- building images ------------------------------------------------------------------


def populate(root: Path, bs: int) -> Path:
    """Sizes around the block size, compressible and random data, sparse blocks, deep and
    odd names, every kind of symlink, a hard link and a directory big enough for an index."""
    rng = random.Random(bs)
    files = {
        "boot/grub/grub.cfg": GRUB_CFG,
        "boot/grub/menu.lst": b"default 0\ntitle Linux\n  kernel /boot/vmlinuz-6.1\n",
        KERNEL: text_like(rng, 500_000) + rng.randbytes(150_000) + text_like(rng, 100_003),
        "boot/initrd.img-6.1": rng.randbytes(150_001),
        "empty": b"",
        "one": b"x",
        "tiny": b"hello, world\n",
        "below": text_like(rng, bs - 1),
        "exact": rng.randbytes(bs),
        "above": text_like(rng, bs + 1),
        "two-and-a-bit": rng.randbytes(2 * bs + 100),
        "zeros": bytes(3 * bs),
        "mixed": rng.randbytes(bs) + bytes(2 * bs) + text_like(rng, bs // 2),
        "a/b/c/d/e/deep.txt": b"deep\n",
        LATIN1_FILE: b"a latin-1 name\n",
        "h\u00e9llo.txt": b"a UTF-8 name\n",
        "links/f": b"the f file\n",
    }
    write_tree(root, files, SYMLINKS)
    os.chmod(root / "tiny", 0o600)
    os.link(root / "tiny", root / "tiny-hardlink")
    write_sparse(root / "sparse", 8 * MiB, {4 * MiB: b"middle of nowhere", 8 * MiB - 3: b"end"})
    write_many(root / "many", (f"entry-with-a-rather-long-name-{i:04d}" for i in range(MANY)))
    return root


def mksquashfs(src: Path, image: Path, comp: str, bs: int, *options: str) -> Path:
    pseudo = [arg for definition in PSEUDO for arg in ("-p", definition)]
    run(
        "mksquashfs",
        src,
        image,
        "-noappend",
        "-quiet",
        "-no-progress",
        "-comp",
        comp,
        "-b",
        str(bs),
        *options,
        *pseudo,
    )
    return image


def open_squash(image: Path) -> SquashFilesystem:
    fs = probe(FileSource(str(image)))
    assert isinstance(fs, SquashFilesystem)
    return fs


# -- the oracle and the comparisons -----------------------------------------------------

_LLS = re.compile(
    rb"^(?P<type>\S)(?P<perm>\S{9}) \S+\s+(?P<size>\d+|\d+,\s*\d+) "
    rb"\d{4}-\d\d-\d\d \d\d:\d\d (?P<path>.*)$"
)
_TYPES = {b"d": NodeType.DIR, b"-": NodeType.FILE, b"l": NodeType.SYMLINK}


def unsquashfs_listing(image: Path) -> dict[str, tuple[NodeType, str, int | None, str | None]]:
    """path -> (type, permissions, size or None for devices, symlink target) per unsquashfs."""
    listing = {}
    for line in run("unsquashfs", "-lls", "-d", "", image).splitlines():
        m = _LLS.match(line)
        if m is None:
            continue
        path, target = m["path"], None
        node_type = _TYPES.get(m["type"], NodeType.OTHER)
        if node_type is NodeType.SYMLINK:
            path, target = path.split(b" -> ", 1)
        size = None if node_type is NodeType.OTHER else int(m["size"])
        name = os.fsdecode(path) or "/"
        listing[name] = (
            node_type,
            m["perm"].decode(),
            size,
            None if target is None else os.fsdecode(target),
        )
    return listing


def permissions(mode: int) -> str:
    return "".join(c if mode & (0o400 >> i) else "-" for i, c in enumerate("rwxrwxrwx"))


def our_listing(fs: Filesystem) -> dict[str, tuple[NodeType, str, int | None, str | None]]:
    listing = {}
    pending = ["/"]
    while pending:
        path = pending.pop()
        st_ = fs.lstat(path)
        target = fs.readlink_path(path) if st_.type is NodeType.SYMLINK else None
        size = None if st_.type is NodeType.OTHER else st_.size
        listing[path] = (st_.type, permissions(st_.mode), size, target)
        if st_.type is NodeType.DIR:
            pending.extend(path.rstrip("/") + "/" + name for name in fs.listdir(path))
    return listing


def assert_tree_matches(fs: Filesystem, image: Path, src: Path) -> None:
    """Every node's type, permissions, size and target match unsquashfs's listing, and
    the source tree reads back (bytes, extents, seeks, symlinks)."""
    oracle = unsquashfs_listing(image)
    assert our_listing(fs) == oracle
    # PSEUDO's files, where mksquashfs was given them, are only in the image.
    pseudo = ["dev"] if "/dev" in oracle else []

    def listing(fs: Filesystem, rel: str, here: Path) -> None:
        extra = pseudo if rel == "/" else []
        assert sorted(fs.listdir(rel)) == sorted(os.listdir(here) + extra), rel

    fswalk.assert_tree_matches(fs, src, listing)


#: The symlinks that lead to the kernel: relative, absolute and long.
KERNEL_LINKS = ("links/up", "links/abs", "links/long")


# -- the fixture matrix ---------------------------------------------------------------

MATRIX = [
    # compressor, block size, extra mksquashfs options
    ("gzip", 131072, ()),
    ("gzip", 4096, ("-no-fragments",)),
    ("gzip", 65536, ("-always-use-fragments",)),
    ("gzip", 4096, ("-noI", "-noD", "-noF", "-noX")),
    ("gzip", MiB, ("-always-use-fragments",)),
    ("xz", 131072, ()),
    ("xz", 4096, ("-Xbcj", "x86")),
    ("lzma", 4096, ()),
    ("lzo", 4096, ()),
    ("lzo", 131072, ("-Xalgorithm", "lzo1x_1", "-tailends")),
    ("lz4", 65536, ("-Xhc",)),
    ("lz4", 4096, ("-no-fragments",)),
    ("zstd", 131072, ()),
    ("zstd", MiB, ("-Xcompression-level", "1")),
]


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[int, Path]:
    """One source tree per block size in the matrix."""
    base = tmp_path_factory.mktemp("trees")
    return {bs: populate(base / str(bs), bs) for bs in sorted({m[1] for m in MATRIX})}


@pytest.mark.parametrize(
    "comp,bs,options", MATRIX, ids=[f"{m[0]}-{m[1]}{''.join(m[2])}" for m in MATRIX]
)
def test_reads_the_whole_tree(tmp_path, trees, comp, bs, options):
    src = trees[bs]
    image = mksquashfs(src, tmp_path / "fs.img", comp, bs, *options)
    fs = open_squash(image)
    try:
        assert (fs.kind, fs.compression, fs.block_size) == ("squashfs", comp, bs)
        assert (fs.uuid, fs.label) == (None, None)
        assert_tree_matches(fs, image, src)
        assert_symlinks_resolve(fs, src, KERNEL_LINKS, file_link="links/rel")
        assert {fs.lstat(p).type for p in ("/dev/null", "/dev/sda", "/dev/fifo", "/dev/sock")} == {
            NodeType.OTHER
        }
        kinds = assert_extents_match(fs, "/sparse", src / "sparse")
        assert kinds.count("hole") >= 2, "sparse blocks read as holes"
        assert fs.inode(fs.resolve("/sparse")).inode_type == LREG_TYPE
        assert fs.inode(fs.resolve("/tiny-hardlink")).inode_type == LREG_TYPE
        assert fs.inode(fs.resolve("/many")).inode_type == 8, "the big directory has an index"
        assert len(fs.listdir("/many")) == MANY
        assert fs.read_file("/many/entry-with-a-rather-long-name-0299", 10) == b"299\n"
        with pytest.raises(NotFoundError):
            fs.stat("/many/entry-with-a-rather-long-name-0300")
        kernel_kinds = set(assert_extents_match(fs, KERNEL, src / KERNEL))
        if "-noD" in options:
            # Stored blocks that follow each other are one span; the tail is a second.
            assert kernel_kinds == {"span"}
            assert len(list(fs.extents(KERNEL))) <= 2
        else:
            assert "encoded" in kernel_kinds
    finally:
        fs.source.close()


def test_fragment_tail_packing_shares_blocks(tmp_path, trees):
    """Small files and tails share fragment blocks; each reads its own bytes."""
    src = trees[4096]
    image = mksquashfs(src, tmp_path / "fs.img", "gzip", 4096, "-noF")
    fs = open_squash(image)
    for rel in ("one", "tiny", "links/f", "a/b/c/d/e/deep.txt"):
        inode = fs.inode(fs.resolve(rel))
        assert inode.fragment != 0xFFFFFFFF, f"{rel} should be in a fragment"
        # -noF: fragment blocks are stored, so the tail is a span into the image
        assert [w for _o, _n, w in fs.extents(rel)][0] not in ("encoded", "hole")
        assert fs.read_file(rel, 100) == (src / rel).read_bytes()
    fs.source.close()


# -- the whole command on a squashfs guest ------------------------------------------------


def test_guest_boots_from_squashfs_partition(tmp_path, trees):
    src = trees[131072]
    image = mksquashfs(src, tmp_path / "fs.img", "xz", 131072)
    disk = make_partitioned(tmp_path, [(image, "83")])
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pygrub", "-q", "--output-format=simple"]
        + [f"--output-directory={out}", str(disk)],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    items = dict(item.split(" ", 1) for item in proc.stdout.decode().split("\n") if item)
    assert Path(items["kernel"]).read_bytes() == (src / KERNEL).read_bytes()


# -- optional packages and lazy imports (the decoders: test_compress.py) ------------------


@pytest.mark.parametrize("package,comp", [("lz4", "lz4"), ("zstandard", "zstd")])
def test_missing_package_is_named(tmp_path, without_package, package, comp):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data\n")
    image = tmp_path / "fs.img"
    run("mksquashfs", src, image, "-noappend", "-quiet", "-no-progress", "-comp", comp)
    without_package(package)
    with pytest.raises(UnsupportedError, match=f"Python package {package}"):
        open_filesystem(FileSource(str(image)))


def test_squashfs_module_is_imported_only_for_squashfs(tmp_path):
    code = (
        "import sys\n"
        "from pygrub.disk import MemorySource\n"
        "from pygrub.fs import probe\n"
        "probe(MemorySource(bytes(70000)))\n"
        "assert 'pygrub.fs.squashfs' not in sys.modules\n"
        "assert 'lz4' not in sys.modules and 'zstandard' not in sys.modules\n"
        "assert 'pygrub.compress' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- hostile images: targeted damage --------------------------------------------------


@pytest.fixture(scope="module")
def small_images(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Small 4 KiB-block images to damage: name -> (image, source tree)."""
    tmp = tmp_path_factory.mktemp("small")
    src = tmp / "src"
    rng = random.Random(7)
    (src / "boot/grub").mkdir(parents=True)
    (src / "boot/grub/grub.cfg").write_bytes(b"set default=0\nmenuentry 'Linux' {}\n")
    (src / "boot/vmlinuz").write_bytes(text_like(rng, 30_000) + rng.randbytes(9000))
    (src / "small.txt").write_bytes(b"small\n")
    write_sparse(src / "sparse", 64 * 1024, {20_000: b"middle", 64 * 1024 - 3: b"end"})
    (src / "dir").mkdir()
    for index in range(40):
        (src / "dir" / f"name-{index:03d}").write_bytes(b"%d" % index)
    os.symlink("boot/vmlinuz", src / "link")
    os.symlink("loop", src / "loop")
    images = {}
    for name, comp, options in (
        ("gzip", "gzip", ()),
        ("plain", "gzip", ("-noI", "-noD", "-noF", "-noX")),
        ("lzo", "lzo", ()),
    ):
        image = tmp / f"{name}.img"
        run(
            "mksquashfs",
            src,
            image,
            "-noappend",
            "-quiet",
            "-no-progress",
            "-comp",
            comp,
            "-b",
            "4096",
            *options,
        )
        images[name] = (image, src)
    return images


def superblock(image: Path) -> dict[str, int]:
    raw = image.read_bytes()[:96]
    names = "block_size fragments compression block_log flags no_ids s_major s_minor".split()
    values = struct.unpack_from("<IIHHHHHH", raw, 12)
    fields = dict(zip(names, values, strict=True))
    tables = "root_inode bytes_used id_table xattr inode_table directory_table fragment_table"
    fields.update(zip(tables.split(), struct.unpack_from("<7Q", raw, 32), strict=True))
    return fields


def test_small_fixtures_are_read_correctly(small_images):
    for image, src in small_images.values():
        fs = open_squash(image)
        assert_tree_matches(fs, image, src)
        fs.source.close()


@pytest.mark.parametrize(
    "offset,value,error,match",
    [
        (28, struct.pack("<H", 3), UnsupportedError, "squashfs 3.0"),
        (30, struct.pack("<H", 1), UnsupportedError, "squashfs 4.1"),
        (12, struct.pack("<I", 3000), CorruptError, "block_size"),
        (12, struct.pack("<I", 2 * MiB), CorruptError, "block_size"),
        (22, struct.pack("<H", 13), CorruptError, "block_log"),
        (20, struct.pack("<H", 7), UnsupportedError, "compression id 7"),
        (40, struct.pack("<Q", 1 << 40), CorruptError, "bytes_used"),
        (64, struct.pack("<Q", 1 << 40), CorruptError, "inode table"),
        (32, struct.pack("<Q", 0xFFFF_FFFF << 16), CorruptError, "root inode"),
        (16, struct.pack("<I", 0xFFFF_FFFF), CorruptError, "fragment"),
    ],
)
def test_bad_superblock(small_images, offset, value, error, match):
    image, _src = small_images["gzip"]
    with pytest.raises(error, match=match):
        open_filesystem(patched(image, {offset: value}))


def test_not_squashfs_and_truncated(small_images):
    image, _src = small_images["gzip"]
    assert open_filesystem(MemorySource(bytes(4096))) is None
    assert open_filesystem(MemorySource(image.read_bytes()[:50])) is None
    with pytest.raises(CorruptError, match="bytes_used"):
        open_filesystem(MemorySource(image.read_bytes()[: superblock(image)["bytes_used"] - 1]))


def inode_position(fs: SquashFilesystem, path: str) -> int:
    """Byte offset of an inode in an image whose inode table is stored uncompressed."""
    ref = fs.resolve(path, follow_last=False)
    block, offset = ref >> 16, ref & 0xFFFF
    return fs.inode_table + block + 2 + offset


def test_huge_file_size_costs_one_pass(small_images):
    """A file that claims 2^62 bytes: its block list runs into other inodes and the end of
    the inode table, which is an error, and finding that takes one pass over the table."""
    image, _src = small_images["plain"]
    fs = open_squash(image)
    at = inode_position(fs, "/sparse")
    assert fs.inode(fs.resolve("/sparse")).inode_type == LREG_TYPE
    hostile = open_filesystem(patched(image, {at + 16 + 8: struct.pack("<Q", 1 << 62)}))
    started = time.monotonic()
    with pytest.raises(CorruptError):
        for _extent in hostile.extents("/sparse"):
            pass
    assert time.monotonic() - started < 2
    fs.source.close()


def test_uncompressed_block_shorter_than_its_data(small_images):
    image, _src = small_images["plain"]
    fs = open_squash(image)
    at = inode_position(fs, "/boot/vmlinuz")
    inode = fs.inode(fs.resolve("/boot/vmlinuz"))
    assert inode.inode_type == 2 and inode.size > 4096
    # block_sizes[0] follows the 16-byte base and 16 bytes of struct squashfs_reg_inode
    hostile = open_filesystem(patched(image, {at + 32: struct.pack("<I", (1 << 24) | 100)}))
    with pytest.raises(CorruptError, match="100 bytes stored"):
        hostile.read_file("/boot/vmlinuz", MiB)
    hostile = open_filesystem(patched(image, {at + 32: struct.pack("<I", 5 * MiB)}))
    with pytest.raises(CorruptError, match="over the block size"):
        hostile.read_file("/boot/vmlinuz", MiB)
    fs.source.close()


def test_directory_header_count_is_bounded(small_images):
    image, _src = small_images["plain"]
    fs = open_squash(image)
    inode = fs.inode(fs.resolve("/dir"))
    at = fs.directory_table + inode.dir_block + 2 + inode.dir_offset
    hostile = open_filesystem(patched(image, {at: struct.pack("<I", 5000)}))
    with pytest.raises(CorruptError, match="over 256"):
        hostile.listdir("/dir")
    fs.source.close()


# -- hostile images: random damage ----------------------------------------------------


#: Each damage overwrites one byte, a u16, u32 or u64, or a value that often means something.
DAMAGE = st.one_of(
    st.binary(min_size=1, max_size=1),
    st.integers(0, 0xFFFF).map(lambda v: struct.pack("<H", v)),
    st.integers(0, 0xFFFFFFFF).map(lambda v: struct.pack("<I", v)),
    st.integers(0, 2**64 - 1).map(lambda v: struct.pack("<Q", v)),
    st.sampled_from(
        [b"\0\0\0\0", b"\xff\xff\xff\xff", b"\x00\x80", b"\xff\x7f", b"\x00\x00\x00\x01"]
    ),
)
WALK_PATHS = ("/link", "/loop", "/dir/name-020", "/boot/grub/grub.cfg", "/nothing")


def has_magic(source: ByteSource) -> bool:
    return source.pread(0, 4) == MAGIC


@pytest.mark.parametrize("name", ["gzip", "plain", "lzo"])
def test_random_damage_gives_data_or_our_errors(small_images, name):
    image, _src = small_images[name]
    pristine = MemorySource(image.read_bytes())
    sb = superblock(image)
    regions = [(0, 96), (sb["inode_table"], sb["bytes_used"])]
    if name == "plain":
        regions.append((96, sb["inode_table"]))  # the stored data blocks too

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(edits=overwrites(regions, DAMAGE))
    def check(edits: list[tuple[int, bytes]]) -> None:
        source = EditedSource(pristine, edits)
        open_and_walk(open_filesystem, source, partial(walk_nodes, paths=WALK_PATHS), has_magic)

    check()
