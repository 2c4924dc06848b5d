"""The ext2/3/4 reader, on images made by mke2fs -d at test time.

The source tree is the truth for file contents and symlink targets; debugfs (another
reader of the same format) is the oracle for directory listings and for where on-disk
structures lie, which the hostile-input tests then damage.
"""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
import tracemalloc
from functools import partial
from pathlib import Path

import fswalk
import pytest
from bounded import cpu_bounded
from fswalk import (
    GRUB_CFG,
    KERNEL,
    LATIN1_DIR,
    LATIN1_FILE,
    EditedSource,
    MiB,
    SparseSource,
    assert_symlinks_resolve,
    open_and_walk,
    overwrites,
    padded,
    patched,
    walk_nodes,
    write_many,
    write_sparse,
    write_tree,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import debugfs_ls, require_tool, run

from pygrub.disk import ByteSource, FileSource, MemorySource
from pygrub.errors import CorruptError, LimitError, NotFoundError, UnsupportedError
from pygrub.fs import probe
from pygrub.fs.base import Filesystem, NodeType
from pygrub.fs.ext4 import SUPERBLOCK_OFFSET, Ext4Filesystem, open_filesystem
from pygrub.limits import MAX_TREE_DEPTH

# -- building images ------------------------------------------------------------------


SYMLINKS = {
    "links/s1": "f",
    "links/r59": padded("../" + KERNEL, 59),
    "links/r60": padded("../" + KERNEL, 60),
    "links/r61": padded("../" + KERNEL, 61),
    "links/r500": padded("../" + KERNEL, 500),
    "links/a59": padded("/" + KERNEL, 59),
    "links/a60": padded("/" + KERNEL, 60),
    "links/a61": padded("/" + KERNEL, 61),
    "links/a500": padded("/" + KERNEL, 500),
    "links/bootdir": "../boot",
    "links/loop1": "loop2",
    "links/loop2": "loop1",
    "links/dangling": "nowhere",
}


def populate(root: Path, block_size: int, extra_files: int = 0, tail: bytes = b"") -> Path:
    """The tree every fixture holds: sizes around block boundaries, deep and odd names,
    symlinks of every storage class, sparse files (one needs triple indirect at 1 KiB).

    ``tail`` ends the sparse files with data: mke2fs 1.47 -O inline_data cuts a file that
    ends in a hole short at its last data block (debugfs shows the same short size).
    """
    rng = random.Random(block_size)
    bs = block_size
    files = {
        "boot/grub/grub.cfg": GRUB_CFG,
        KERNEL: rng.randbytes(1_200_000),
        "boot/initrd.img-6.1": rng.randbytes(300_000),
        "empty": b"",
        "one": b"x",
        "tiny": b"hello, world\n",
        "medium": rng.randbytes(100),  # inline_data: i_block plus 40 bytes of system.data
        "below": rng.randbytes(bs - 1),
        "exact": rng.randbytes(bs),
        "above": rng.randbytes(bs + 1),
        "zeros": bytes(3 * bs),
        "mixed": rng.randbytes(bs) + bytes(2 * bs) + rng.randbytes(bs // 2),
        "a/b/c/d/e/deep.txt": b"deep\n",
        LATIN1_FILE: b"a latin-1 name\n",
        LATIN1_DIR + "/inner": b"inside a non-UTF-8 directory\n",
        "h\u00e9llo.txt": b"a UTF-8 name\n",
        "links/f": b"the f file\n",
    }
    write_tree(root, files, SYMLINKS)
    write_sparse(root / "sparse", 8 * MiB, {4 * MiB: b"middle of nowhere", 8 * MiB: tail})
    write_sparse(
        root / "far",
        71 * MiB,
        {0: b"head", 70 * MiB + 5: b"past the double indirect", 71 * MiB: tail},
    )
    if extra_files:
        write_many(root / "many", (f"f{index:04d}" for index in range(extra_files)))
    return root


def mke2fs(image: Path, src: Path, fstype: str, options: tuple[str, ...], size_mb: int) -> Path:
    image.unlink(missing_ok=True)
    run("mke2fs", "-q", "-F", "-t", fstype, *options, "-d", src, image, f"{size_mb}M")
    return image


def index_directories(image: Path) -> None:
    """Turn large directories into htrees (mke2fs -d writes them linear): e2fsck -D."""
    proc = subprocess.run([require_tool("e2fsck"), "-fyD", image], capture_output=True)
    # 0: clean, 1: errors corrected (here: directories optimized)
    assert proc.returncode in (0, 1), proc.stdout.decode(errors="replace")


def open_ext(image: Path) -> Ext4Filesystem:
    fs = probe(FileSource(str(image)))
    assert isinstance(fs, Ext4Filesystem)
    return fs


def debugfs(image: Path, command: str) -> str:
    return run("debugfs", "-R", command, image).decode("utf-8", "surrogateescape")


def inode_location(image: Path, path: str, block_size: int) -> tuple[int, int, int]:
    """(inode number, block group, byte offset of the inode) as debugfs imap says."""
    out = debugfs(image, f"imap {path}")
    m = re.search(
        r"Inode (\d+) is part of block group (\d+)\s+located at block (\d+), offset 0x([0-9a-f]+)",
        out,
    )
    assert m, out
    return int(m[1]), int(m[2]), int(m[3]) * block_size + int(m[4], 16)


def block_map(image: Path, path: str) -> tuple[list[int], list[int]]:
    """(data blocks, map blocks: extent-tree and indirect blocks) of a file, from debugfs stat."""
    out = debugfs(image, f"stat {path}")
    data: list[int] = []
    meta: list[int] = []
    for m in re.finditer(r"\((ETB\d+|IND|DIND|TIND|[\d-]+)\):(\d+)(?:-(\d+))?", out):
        first, last = int(m[2]), int(m[3] or m[2])
        (data if m[1][0].isdigit() else meta).extend(range(first, last + 1))
    return data, meta


# -- comparing a filesystem with its source tree ------------------------------------


def assert_tree_matches(fs: Filesystem, image: Path, src: Path) -> None:
    """The source tree reads back; listings also match debugfs (mke2fs adds lost+found)."""

    def listing(fs: Filesystem, rel: str, here: Path) -> None:
        names = sorted(fs.listdir(rel))
        assert names == sorted(os.listdir(here) + (["lost+found"] if rel == "/" else [])), rel
        assert names == sorted(debugfs_ls(image, rel)), rel

    fswalk.assert_tree_matches(fs, src, listing)


#: The symlinks that lead to the kernel, inline and in blocks, relative and absolute.
KERNEL_LINKS = [
    rel for rel in SYMLINKS if rel[-3:] in ("r59", "r60", "r61", "500", "a59", "a60", "a61")
]


# -- the fixture matrix ---------------------------------------------------------------

MATRIX = [
    # fstype, options, block size, kind, size in MiB, extra files
    ("ext2", ("-b", "1024"), 1024, "ext2", 48, 0),
    ("ext2", ("-r", "0", "-b", "1024"), 1024, "ext2", 48, 0),
    ("ext2", ("-b", "4096", "-O", "^filetype"), 4096, "ext2", 48, 0),
    ("ext3", ("-b", "2048"), 2048, "ext3", 48, 0),
    ("ext4", ("-b", "4096"), 4096, "ext4", 48, 0),
    ("ext4", ("-b", "4096", "-O", "^64bit"), 4096, "ext4", 48, 0),
    ("ext4", ("-b", "1024", "-O", "^extent,^64bit"), 1024, "ext4", 48, 0),
    # 48 groups of 8 inodes: files reach groups whose descriptors sit in later meta
    # groups; without sparse_super each of those groups starts with a superblock copy.
    (
        "ext4",
        ("-b", "1024", "-g", "1024", "-N", "256", "-O", "meta_bg,^resize_inode"),
        1024,
        "ext4",
        48,
        150,
    ),
    (
        "ext4",
        ("-b", "1024", "-g", "1024", "-N", "256", "-O", "meta_bg,^resize_inode,^sparse_super"),
        1024,
        "ext4",
        48,
        150,
    ),
    ("ext4", ("-b", "4096", "-O", "inline_data", "-I", "256"), 4096, "ext4", 48, 0),
    ("ext4", ("-b", "65536"), 65536, "ext4", 48, 0),
    ("ext4", ("-b", "4096", "-O", "bigalloc", "-C", "65536"), 4096, "ext4", 48, 0),
]


@pytest.mark.parametrize(
    "fstype,options,block_size,kind,size_mb,extra",
    MATRIX,
    ids=[f"{m[0]}-{'_'.join(m[1])}" for m in MATRIX],
)
def test_reads_the_whole_tree(tmp_path, fstype, options, block_size, kind, size_mb, extra):
    tail = b"end" if "inline_data" in options else b""
    src = populate(tmp_path / "src", block_size, extra, tail)
    image = mke2fs(tmp_path / "fs.img", src, fstype, options, size_mb)
    fs = open_ext(image)
    try:
        assert fs.kind == kind
        assert fs.block_size == block_size
        assert_tree_matches(fs, image, src)
        assert_symlinks_resolve(fs, src, KERNEL_LINKS)
        holes = [where for _o, _n, where in fs.extents("/sparse") if where == "hole"]
        assert holes, "a sparse file has holes"
        if "meta_bg" in options[-1]:
            _ino, group, _at = inode_location(image, "/many/f0149", block_size)
            assert group >= 16, "the fixture must reach the second meta group"
            assert fs.read_file("/many/f0149", 100) == b"149\n"
        if "inline_data" in options:
            for path in ("/tiny", "/medium"):
                assert {where for _o, _n, where in fs.extents(path)} == {"encoded"}
            found = re.search(r"Size of inline data: (\d+)", debugfs(image, "stat /medium"))
            assert found and int(found[1]) > 60, "/medium should spill into system.data"
            # a 61-byte target: inline (0x10000000), so partly in system.data
            assert "Flags: 0x10000000" in debugfs(image, "stat /links/r61")
    finally:
        fs.source.close()


def test_inline_directory_continues_in_system_data(tmp_path):
    # e2fsprogs moves a full inline directory to a block; Linux first grows it into
    # system.data. Build that with debugfs and let e2fsck confirm it is well formed.
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d/x").write_bytes(b"x\n")
    (src / "target").write_bytes(b"spilled\n")
    image = mke2fs(tmp_path / "fs.img", src, "ext4", ("-b", "1024", "-O", "inline_data"), 8)
    target, _group, _at = inode_location(image, "/target", 1024)
    name = b"spilled-entry-name"
    rec_len = (8 + len(name) + 3) & ~3
    value = (struct.pack("<IHBB", target, rec_len, len(name), 1) + name).ljust(rec_len, b"\0")
    (tmp_path / "value").write_bytes(value)
    run("debugfs", "-w", "-R", f"ea_set -f {tmp_path / 'value'} /d system.data", image)
    run("debugfs", "-w", "-R", f"sif /d size {60 + rec_len}", image)
    run("debugfs", "-w", "-R", "sif /target links_count 2", image)
    run("e2fsck", "-fn", image)
    fs = open_ext(image)
    assert (
        sorted(fs.listdir("/d")) == ["spilled-entry-name", "x"] == sorted(debugfs_ls(image, "/d"))
    )
    assert fs.read_file("/d/spilled-entry-name", 100) == b"spilled\n"
    fs.source.close()


def test_uninitialized_extents_read_as_zeros(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "pre").write_bytes(b"abc")
    image = mke2fs(tmp_path / "fs.img", src, "ext4", ("-b", "4096"), 16)
    run("debugfs", "-w", "-R", "fallocate /pre 1 9", image)
    run("debugfs", "-w", "-R", "sif /pre size 40960", image)
    assert "Uninit" in debugfs(image, "ex /pre")
    data, _meta = block_map(image, "/pre")
    with open(image, "r+b") as f:  # stale bytes under the unwritten blocks must not show
        for block in data[1:]:
            f.seek(block * 4096)
            f.write(b"\xaa" * 4096)
    fs = open_ext(image)
    assert fs.read_file("/pre", MiB) == b"abc".ljust(40960, b"\0")
    assert [where for _o, _n, where in fs.extents("/pre")][1:] == ["hole"]
    fs.source.close()


def test_uuid_and_label_match_dumpe2fs(tmp_path):
    src = populate(tmp_path / "src", 4096)
    uuid = "0123abcd-4567-89ef-0123-456789abcdef"
    image = mke2fs(tmp_path / "fs.img", src, "ext4", ("-L", "guest-root", "-U", uuid), 48)
    fs = open_ext(image)
    header = run("dumpe2fs", "-h", image).decode()
    assert re.search(r"Filesystem UUID:\s+(\S+)", header)[1] == fs.uuid == uuid
    assert re.search(r"Filesystem volume name:\s+(\S+)", header)[1] == fs.label == "guest-root"
    fs.source.close()


# -- htree directories, lookups, big files --------------------------------------------


@pytest.fixture(scope="module")
def htree_images(tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    """name -> (image, names in /many). The 3000 entries go in with debugfs ``write``
    (creating 3000 host files is slow on some machines); e2fsck -D then indexes them."""
    tmp = tmp_path_factory.mktemp("htree")
    src = tmp / "src"
    (src / "boot/grub").mkdir(parents=True)
    (src / "boot/grub/grub.cfg").write_bytes(b"menuentry x {}\n")
    (src / "many").mkdir()
    names = [f"entry-with-a-longish-name-{index:05d}" for index in range(3000)]
    script = tmp / "add-entries"
    script.write_text("cd /many\n" + "".join(f"write /dev/null {n}\n" for n in names))
    images = {}
    for name, fstype, options in (
        ("ext4", "ext4", ("-b", "4096", "-N", "4096")),
        ("ext2", "ext2", ("-b", "1024", "-N", "4096")),
    ):
        image = mke2fs(tmp / f"{name}.img", src, fstype, options, 16)
        run("debugfs", "-w", "-f", script, image)
        index_directories(image)
        images[name] = (image, names)
    return images


@pytest.mark.parametrize("name", ["ext4", "ext2"])
def test_htree_directory(htree_images, name):
    image, names = htree_images[name]
    dump = debugfs(image, "htree /many")
    assert "Root node dump" in dump, "e2fsck -D made no htree"
    if name == "ext2":
        assert "Indirect levels: 1" in dump, "1 KiB blocks should need dx_node blocks"
    fs = open_ext(image)
    listing = fs.listdir("/many")
    assert len(listing) == 3000
    assert sorted(listing) == names == sorted(debugfs_ls(image, "/many"))
    for index in (0, 1, 1499, 2999):
        assert fs.stat(f"/many/entry-with-a-longish-name-{index:05d}").type is NodeType.FILE
    with pytest.raises(NotFoundError):
        fs.stat("/many/entry-with-a-longish-name-03000")
    fs.source.close()


class CountingSource:
    """A source that remembers every byte range read from it."""

    def __init__(self, inner: FileSource) -> None:
        self.inner = inner
        self.reads: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return self.inner.size

    def pread(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        return self.inner.pread(offset, length)

    def host_span(self, offset: int, length: int) -> tuple[int, int] | None:
        return self.inner.host_span(offset, length)


def test_lookup_reads_only_the_directories_on_the_path(htree_images):
    image, _names = htree_images["ext4"]
    source = CountingSource(FileSource(str(image)))
    fs = open_filesystem(source)
    assert fs.read_file("/boot/grub/grub.cfg", 100) == b"menuentry x {}\n"
    data, meta = block_map(image, "/many")
    bs = fs.block_size
    for offset, length in source.reads:
        touched = set(range(offset // bs, (offset + length - 1) // bs + 1))
        assert not touched & set(data + meta), "read a directory that is not on the path"
    source.inner.close()


def test_file_over_4_gib(tmp_path):
    src = tmp_path / "src"
    pieces = {10: b"first", (4 << 30) - 3: b"across 4 GiB", (6 << 30) - 4: b"last"}
    write_sparse(src / "huge", 6 << 30, pieces)
    image = mke2fs(tmp_path / "fs.img", src, "ext4", ("-b", "4096"), 64)
    fs = open_ext(image)
    assert fs.stat("/huge").size == 6 << 30
    with fs.open("/huge") as f:
        for offset, data in pieces.items():
            f.seek(offset - 10)
            assert f.read(len(data) + 10) == bytes(10) + data
    extents = list(fs.extents("/huge"))
    assert sum(n for _o, n, _w in extents) == 6 << 30
    assert [w for _o, _n, w in extents].count("hole") >= 2
    for offset, data in pieces.items():
        _o, _n, (fd, host) = next(e for e in extents if e[0] <= offset < e[0] + e[1])
        assert os.pread(fd, len(data), host + offset - _o) == data
    fs.source.close()


def test_extents_are_generated_lazily(tmp_path):
    # One written byte every other 1 KiB block: 8192 separate extents, depth-1 tree.
    src = tmp_path / "src"
    write_sparse(src / "frag", 16 * MiB, {offset: b"x" for offset in range(0, 16 * MiB, 2048)})
    image = mke2fs(tmp_path / "fs.img", src, "ext4", ("-b", "1024"), 48)
    fs = open_ext(image)
    tracemalloc.start()
    try:
        count = sum(1 for _o, _n, where in fs.extents("/frag") if where != "hole")
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 8192
    assert peak < 256 * 1024, f"iterating extents held {peak} bytes"
    fs.source.close()


# -- hostile images: targeted damage --------------------------------------------------


@pytest.fixture(scope="module")
def small_images(tmp_path_factory) -> dict[str, tuple[Path, Path, int]]:
    """Small 1 KiB-block images (extents, indirect, inline) to damage: name -> (image, src, bs)."""
    tmp = tmp_path_factory.mktemp("small")
    src = tmp / "src"
    rng = random.Random(7)
    (src / "boot/grub").mkdir(parents=True)
    (src / "boot/grub/grub.cfg").write_bytes(b"set default=0\nmenuentry 'Linux' {}\n")
    (src / "boot/vmlinuz").write_bytes(rng.randbytes(300_000))
    (src / "small.txt").write_bytes(b"small\n")
    write_sparse(src / "frag", 39 * 2048 + 1024, {i * 2048: rng.randbytes(1024) for i in range(40)})
    write_sparse(src / "sparse", 3 * MiB, {MiB: b"middle", 3 * MiB: b"end"})  # see populate
    (src / "dir").mkdir()
    for index in range(100):
        (src / "dir" / f"name-{index:03d}").write_bytes(b"%d" % index)
    os.symlink("boot/vmlinuz", src / "fast")
    os.symlink("/" + "./" * 40 + "small.txt", src / "slow")
    os.symlink("loop", src / "loop")
    common = ("-b", "1024", "-N", "128", "-O", "^has_journal")
    images = {}
    for name, fstype, options in (
        ("ext4", "ext4", common),
        ("ext2", "ext2", common),
        ("inline", "ext4", (*common, "-I", "256", "-O", "inline_data")),
    ):
        images[name] = (mke2fs(tmp / f"{name}.img", src, fstype, options, 3), src, 1024)
    return images


def u16(v: int) -> bytes:
    return struct.pack("<H", v)


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def test_small_fixtures_are_read_correctly(small_images):
    for image, src, _bs in small_images.values():
        fs = open_ext(image)
        assert_tree_matches(fs, image, src)
        assert fs.read_file("/slow", 10) == b"small\n"
        fs.source.close()


def test_extent_index_pointing_to_itself(small_images):
    image, _src, bs = small_images["ext4"]
    _ino, _group, inode_at = inode_location(image, "/frag", bs)
    _data, meta = block_map(image, "/frag")
    leaf = meta[0] * bs
    root = inode_at + 0x28
    # The root claims depth 2; the leaf becomes an index node whose one entry is itself.
    source = patched(
        image,
        {
            root + 6: u16(2),
            leaf + 2: u16(1),
            leaf + 6: u16(1),
            leaf + 12: u32(0) + u32(meta[0]) + u16(0),
        },
    )
    fs = open_filesystem(source)
    with pytest.raises(CorruptError, match="depth"):
        fs.read_file("/frag", 1 << 20)
    # A depth far past any real tree is refused before anything is read.
    fs = open_filesystem(patched(image, {root + 6: u16(1000)}))
    with pytest.raises(LimitError, match="depth"):
        list(fs.extents("/frag"))


@pytest.mark.parametrize(
    ("depth", "error"), [(MAX_TREE_DEPTH, CorruptError), (MAX_TREE_DEPTH + 1, LimitError)]
)
def test_extent_depth_limit_is_inclusive(small_images, depth, error):
    """A root of depth MAX_TREE_DEPTH is walked (its child, a leaf, then fails the depth
    the root promised it); one deeper is refused before any block is read."""
    image, _src, bs = small_images["ext4"]
    _ino, _group, inode_at = inode_location(image, "/frag", bs)
    fs = open_filesystem(patched(image, {inode_at + 0x28 + 6: u16(depth)}))
    expected = (
        "over the limit"
        if error is LimitError
        else f"depth 0 under a node that expects {depth - 1}"
    )
    with pytest.raises(error, match=expected):
        list(fs.extents("/frag"))


def test_extent_tree_past_block_2_to_the_32(tmp_path):
    """ei_leaf_hi and ee_start_hi: index and leaf entries hold 48-bit block numbers.

    A real filesystem past 2^32 blocks takes mke2fs minutes and hundreds of MiB of
    metadata, so a real 64bit image is laid into a sparse source that claims 2^32 more
    blocks (s_blocks_count_hi), the /frag extent leaf moved up there and its first data
    extent with it. The old copies are zeroed: a reader dropping the high bits meets bad
    magic or zeros."""
    bs, high = 1024, 1 << 32
    src = tmp_path / "src"
    rng = random.Random(5)
    write_sparse(src / "frag", 39 * 2048 + 1024, {i * 2048: rng.randbytes(1024) for i in range(40)})
    options = ("-b", str(bs), "-N", "64", "-O", "64bit,^has_journal")
    image = mke2fs(tmp_path / "fs.img", src, "ext4", options, 3)
    _ino, _group, inode_at = inode_location(image, "/frag", bs)
    _data, meta = block_map(image, "/frag")
    assert len(meta) == 1  # depth 1: the root in the inode indexes one leaf block
    raw = bytearray(image.read_bytes())
    blocks = len(raw) // bs
    leaf = bytearray(raw[meta[0] * bs : (meta[0] + 1) * bs])
    # The leaf's first struct ext4_extent: ee_block, ee_len, ee_start_hi, ee_start_lo.
    _ee_block, ee_len, _hi, start = struct.unpack_from("<IHHI", leaf, 12)
    leaf[12 + 6 : 12 + 8] = u16(1)
    moved = bytes(raw[start * bs : (start + ee_len) * bs])
    raw[start * bs : (start + ee_len) * bs] = bytes(ee_len * bs)
    raw[meta[0] * bs : (meta[0] + 1) * bs] = bytes(bs)
    raw[inode_at + 0x28 + 12 + 8 : inode_at + 0x28 + 12 + 10] = u16(1)  # ei_leaf_hi
    raw[SUPERBLOCK_OFFSET + 0x150 : SUPERBLOCK_OFFSET + 0x154] = u32(1)  # s_blocks_count_hi
    regions = {0: bytes(raw), (high + meta[0]) * bs: bytes(leaf), (high + start) * bs: moved}
    fs = open_filesystem(SparseSource((high + blocks) * bs, regions))
    assert fs.blocks_count == high + blocks
    assert fs.read_file("/frag", 1 << 20) == (src / "frag").read_bytes()


@pytest.mark.parametrize("value", [7, 30, 0xFFFFFFFF])
def test_absurd_log_block_size(small_images, value):
    image, _src, _bs = small_images["ext4"]
    with pytest.raises(CorruptError, match="s_log_block_size"):
        open_filesystem(patched(image, {1024 + 0x18: u32(value)}))


def dirent_offset(image: Path, directory: str, name: bytes, bs: int = 1024) -> int:
    """Byte offset of the entry called ``name`` in a directory's blocks (found via debugfs)."""
    data, _meta = block_map(image, directory)
    raw = image.read_bytes()
    for block in data:
        found = raw.find(name, block * bs, (block + 1) * bs)
        if found >= 0:
            return found - 8
    raise AssertionError(f"{name!r} not in {directory}")


@pytest.mark.parametrize("inode", [129, 0xFFFFFFFF])
def test_dirent_inode_out_of_range(small_images, inode):
    image, _src, _bs = small_images["ext4"]
    at = dirent_offset(image, "/dir", b"name-007")
    fs = open_filesystem(patched(image, {at: u32(inode)}))
    with pytest.raises(CorruptError, match="outside"):
        fs.listdir("/dir")


@pytest.mark.parametrize("rec_len", [0, 2, 13, 4096])
def test_bad_rec_len_does_not_loop(small_images, rec_len):
    image, _src, _bs = small_images["ext4"]
    at = dirent_offset(image, "/dir", b"name-007")
    fs = open_filesystem(patched(image, {at + 4: u16(rec_len)}))
    with pytest.raises(CorruptError, match="rec_len"):
        fs.listdir("/dir")
    with pytest.raises(CorruptError, match="rec_len"):
        fs.stat("/dir/absent")


@pytest.mark.parametrize(
    "bit,name", [(0x1, "compression"), (0x8, "journal_dev"), (1 << 23, "0x800000")]
)
def test_unknown_incompat_feature_is_refused(small_images, bit, name):
    image, _src, _bs = small_images["ext4"]
    (incompat,) = struct.unpack_from("<I", image.read_bytes(), 1024 + 0x60)
    with pytest.raises(UnsupportedError, match=name):
        open_filesystem(patched(image, {1024 + 0x60: u32(incompat | bit)}))


def test_dirty_journal_is_read_anyway(small_images):
    image, _src, _bs = small_images["ext4"]
    (incompat,) = struct.unpack_from("<I", image.read_bytes(), 1024 + 0x60)
    fs = open_filesystem(patched(image, {1024 + 0x60: u32(incompat | 0x4)}))  # needs_recovery
    assert fs.read_file("/small.txt", 100) == b"small\n"


def test_indirect_blocks_full_of_holes_cost_no_loop(small_images):
    # The single, double and triple indirect pointers all name one block whose pointers
    # all name a zero block, and the file claims 2^47 bytes: past the single indirect
    # range every map block read is a block of holes, skipped without a Python loop.
    image, _src, bs = small_images["ext2"]
    raw = image.read_bytes()
    _ino, _group, at = inode_location(image, "/boot/vmlinuz", bs)
    _data, meta = block_map(image, "/boot/vmlinuz")
    zero = next(
        b for b in range(len(raw) // bs - 1, 0, -1) if raw[b * bs : (b + 1) * bs] == bytes(bs)
    )
    middle = meta[0]
    source = patched(
        image,
        {
            middle * bs: u32(zero) * (bs // 4),
            at + 0x28 + 12 * 4: u32(middle) * 3,
            at + 0x6C: u32(0x7FFF),  # i_size_high
        },
    )
    fs = open_filesystem(source)
    with cpu_bounded(2):
        extents = list(fs.extents("/boot/vmlinuz"))
    assert extents[-1][2] == "hole" and extents[-1][0] == (12 + bs // 4) * bs
    assert sum(n for _o, n, _w in extents) == (0x7FFF << 32) + 300_000


def test_not_ext_and_truncated(small_images):
    image, _src, _bs = small_images["ext4"]
    assert open_filesystem(MemorySource(bytes(4096))) is None
    assert open_filesystem(MemorySource(image.read_bytes()[:1500])) is None
    with pytest.raises(CorruptError, match="do not fit"):
        open_filesystem(MemorySource(image.read_bytes()[: 1 * MiB]))


def test_encrypted_file_is_refused(small_images):
    image, _src, bs = small_images["ext4"]
    _ino, _group, at = inode_location(image, "/small.txt", bs)
    (flags,) = struct.unpack_from("<I", image.read_bytes(), at + 0x20)
    fs = open_filesystem(patched(image, {at + 0x20: u32(flags | 0x800)}))
    with pytest.raises(UnsupportedError, match="encrypted"):
        fs.read_file("/small.txt", 100)
    assert fs.read_file("/boot/grub/grub.cfg", 100).startswith(b"set default")


def test_direct_block_pointer_past_the_end(small_images):
    """ext2's i_block[0] naming a block past the filesystem: our error, not a crash."""
    image, _src, bs = small_images["ext2"]
    _ino, _group, at = inode_location(image, "/small.txt", bs)
    fs = open_filesystem(patched(image, {at + 0x28: u32(0xFFFFFFF0)}))
    with pytest.raises(CorruptError, match="at logical block 0 names block"):
        fs.read_file("/small.txt", 100)


def test_casefolded_directory(tmp_path):
    src = tmp_path / "src"
    (src / "cf").mkdir(parents=True)
    (src / "cf/ReadMe.TXT").write_bytes(b"folded\n")
    image = mke2fs(tmp_path / "fs.img", src, "ext4", ("-b", "4096", "-O", "casefold"), 16)
    _ino, _group, at = inode_location(image, "/cf", 4096)
    (flags,) = struct.unpack_from("<I", image.read_bytes(), at + 0x20)
    fs = open_filesystem(patched(image, {at + 0x20: u32(flags | 0x40000000)}))
    assert fs.read_file("/cf/readme.txt", 100) == b"folded\n"
    assert fs.read_file("/cf/ReadMe.TXT", 100) == b"folded\n"
    with pytest.raises(NotFoundError):
        fs.stat("/CF/readme.txt")  # the root is not casefolded


# -- hostile images: random damage ----------------------------------------------------


def damage_regions(image: Path, bs: int) -> list[tuple[int, int]]:
    """Superblock, descriptors, the inodes in use, and every directory and map block."""
    regions = [(1024, 2048), (2 * bs, 3 * bs)]  # with 1 KiB blocks the descriptors are block 2
    paths = ["/", "/boot", "/boot/grub", "/boot/grub/grub.cfg", "/boot/vmlinuz", "/small.txt"]
    paths += ["/frag", "/sparse", "/dir", "/fast", "/slow", "/loop"]
    (inode_size,) = struct.unpack_from("<H", image.read_bytes(), 1024 + 0x58)
    for path in paths:
        _ino, _group, at = inode_location(image, path, bs)
        regions.append((at, at + inode_size))
        data, meta = block_map(image, path)
        blocks = meta + (data if path in ("/", "/boot", "/boot/grub", "/dir") else [])
        regions.extend((b * bs, (b + 1) * bs) for b in blocks)
    return regions


#: Each damage overwrites one byte, a u16 or u32, or a value that often means something.
DAMAGE = st.one_of(
    st.binary(min_size=1, max_size=1),
    st.integers(0, 0xFFFF).map(u16),
    st.integers(0, 0xFFFFFFFF).map(u32),
    st.sampled_from([u32(0), u32(1), u32(2), u32(0xFFFFFFFF), u16(0x8000), u16(12)]),
)
WALK_PATHS = ("/fast", "/slow", "/loop", "/dir/name-050", "/boot/grub/grub.cfg", "/nothing")


def has_magic(source: ByteSource) -> bool:
    return source.pread(1080, 2) == b"\x53\xef"


@pytest.mark.parametrize("name", ["ext4", "ext2", "inline"])
def test_random_damage_gives_data_or_our_errors(small_images, name):
    image, _src, bs = small_images[name]
    pristine = MemorySource(image.read_bytes())
    regions = damage_regions(image, bs)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(edits=overwrites(regions, DAMAGE))
    def check(edits: list[tuple[int, bytes]]) -> None:
        source = EditedSource(pristine, edits)
        open_and_walk(open_filesystem, source, partial(walk_nodes, paths=WALK_PATHS), has_magic)

    check()
