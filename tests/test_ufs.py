"""The UFS1/UFS2 reader, on images made by NetBSD's makefs at test time.

The source tree is the truth for every listing, file and symlink. There is no other UFS
reader to ask here: Debian ships no UFS userland, and the kernel's ufs module cannot be
loaded inside this container, so mounting the images (the one independent oracle) is not
possible; contents are compared byte for byte with the tree makefs was given.

makefs writes every block of a file (it makes no holes) and cannot write 4.2BSD
directories or Solaris superblocks, so those are made by editing its images in the
places the format documents: a triple indirect chain, holes, 16-bit d_namlen entries,
Solaris's fs_version/fs_logbno.
"""

from __future__ import annotations

import os
import random
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import fswalk
import pytest
from fswalk import (
    GRUB_CFG,
    KERNEL,
    LATIN1_DIR,
    LATIN1_FILE,
    EditedSource,
    MiB,
    assert_symlinks_resolve,
    edited,
    open_and_walk,
    overwrites,
    padded,
    walk_nodes,
    write_many,
    write_tree,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import run

from pygrub.disk import FileSource, MemorySource, SliceSource
from pygrub.errors import CorruptError, LimitError
from pygrub.fs import probe
from pygrub.fs.base import Filesystem, NodeType, checked_extents
from pygrub.fs.ufs import UfsFilesystem, open_filesystem

# -- building images ------------------------------------------------------------------


#: Around both fast-symlink limits: 60 bytes in UFS1 inodes, 120 in UFS2 ones.
SYMLINK_LENGTHS = (59, 60, 61, 119, 120, 121, 500)
SYMLINKS = {
    "links/s1": "f",
    **{f"links/r{n}": padded("../" + KERNEL, n) for n in SYMLINK_LENGTHS},
    **{f"links/a{n}": padded("/" + KERNEL, n) for n in SYMLINK_LENGTHS},
    "links/bootdir": "../boot",
    "links/loop1": "loop2",
    "links/loop2": "loop1",
    "links/dangling": "nowhere",
}


@dataclass(frozen=True)
class Geometry:
    version: int
    order: str  # makefs -B
    bsize: int
    fsize: int

    @property
    def pointers_per_block(self) -> int:
        return self.bsize // (4 if self.version == 1 else 8)

    @property
    def double_start(self) -> int:
        """Byte offset where the double indirect block's range starts."""
        return (12 + self.pointers_per_block) * self.bsize

    @property
    def name(self) -> str:
        return f"ufs{self.version}-{self.order}-{self.bsize // 1024}k-{self.fsize}"


def populate(root: Path, geo: Geometry, entries: int = 400) -> Path:
    rng = random.Random(geo.bsize + geo.fsize)
    bs, fs = geo.bsize, geo.fsize
    files = {
        "boot/grub/grub.cfg": GRUB_CFG,
        KERNEL: rng.randbytes(1_200_000),
        "boot/initrd.img-6.1": rng.randbytes(300_000),
        "empty": b"",
        "one": b"x",
        "tiny": b"hello, world\n",
        "frag-below": rng.randbytes(fs - 1),
        "frag-above": rng.randbytes(fs + 1),
        "below": rng.randbytes(bs - 1),
        "exact": rng.randbytes(bs),
        "above": rng.randbytes(bs + 1),
        "tail": rng.randbytes(3 * bs + 3 * fs - 5),  # a last block of three fragments
        "direct-end": rng.randbytes(12 * bs + 7),  # just into the single indirect range
        "zeros": bytes(3 * bs),
        "a/b/c/d/e/deep.txt": b"deep\n",
        LATIN1_FILE: b"a latin-1 name\n",
        LATIN1_DIR + "/inner": b"inside a non-UTF-8 directory\n",
        "h\u00e9llo.txt": b"a UTF-8 name\n",
        "n" * 255: b"a name of 255 bytes\n",
        "links/f": b"the f file\n",
    }
    if geo.double_start < 20 * MiB:
        files["double"] = rng.randbytes(geo.double_start + 3 * bs + 100)
    write_tree(root, files, SYMLINKS)
    if entries:
        # Names of many lengths, so entries end at every place in the 512-byte chunks.
        write_many(root / "many", (f"e{i:04d}-" + "x" * (i % 37) for i in range(entries)))
    return root


def tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*"))


def makefs(image: Path, src: Path, geo: Geometry, extra_mb: int = 4) -> Path:
    image.unlink(missing_ok=True)
    size_mb = tree_bytes(src) * 13 // 10 // MiB + extra_mb + 4
    options = f"version={geo.version},bsize={geo.bsize},fsize={geo.fsize}"
    run("makefs", "-t", "ffs", "-B", geo.order, "-s", f"{size_mb}m", "-o", options, image, src)
    return image


def open_ufs(image: Path | bytes) -> UfsFilesystem:
    source = MemorySource(image) if isinstance(image, bytes) else FileSource(str(image))
    fs = probe(source)
    assert isinstance(fs, UfsFilesystem)
    return fs


# -- comparing a filesystem with its source tree ------------------------------------


def assert_tree_matches(fs: Filesystem, src: Path) -> None:
    """The source tree reads back, permission bits too; makefs writes every block, so no
    extent may be a hole."""
    fswalk.assert_tree_matches(fs, src, modes=True, holes=False)


#: The symlinks that lead to the kernel, inline and in blocks, relative and absolute.
KERNEL_LINKS = [f"links/{kind}{n}" for n in SYMLINK_LENGTHS for kind in "ra"]


# -- the fixture matrix ---------------------------------------------------------------

MATRIX = [
    Geometry(1, "le", 8192, 1024),
    Geometry(1, "be", 4096, 512),
    Geometry(1, "le", 16384, 2048),
    Geometry(2, "le", 4096, 4096),
    Geometry(2, "be", 8192, 1024),
    Geometry(2, "le", 65536, 8192),
]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, tuple[Path, Path, Geometry]]:
    tmp = tmp_path_factory.mktemp("ufs")
    built = {}
    for geo in MATRIX:
        src = populate(tmp / f"{geo.name}.d", geo)
        built[geo.name] = (makefs(tmp / f"{geo.name}.img", src, geo), src, geo)
    return built


@pytest.mark.parametrize("geo", MATRIX, ids=lambda g: g.name)
def test_makefs_image_reads_as_its_source_tree(images, geo):
    image, src, _geo = images[geo.name]
    fs = open_ufs(image)
    assert fs.kind == f"ufs{geo.version}"
    assert (fs.block_size, fs.frag_size) == (geo.bsize, geo.fsize)
    assert fs.flavour.order == ("<" if geo.order == "le" else ">")
    # makefs sets fs_id; tests/test_fs_ids.py checks the spelling against grub-probe.
    assert len(fs.uuid) == 16 and int(fs.uuid, 16) and fs.label is None
    assert fs.bsd44
    assert_tree_matches(fs, src)
    assert_symlinks_resolve(fs, src, KERNEL_LINKS)
    assert len(fs.listdir("/many")) == 400
    fs.source.close()


def test_fast_and_slow_symlinks_are_where_the_format_says(images):
    for image, _src, geo in images.values():
        fs = open_ufs(image)
        limit = 60 if geo.version == 1 else 120
        for n in SYMLINK_LENGTHS:
            inode = fs.inode(fs.resolve(f"links/r{n}", follow_last=False))
            assert fs._is_fast_symlink(inode) == (n < limit), (geo.name, n)
            assert (inode.blocks == 0) == (n < limit), (geo.name, n)
        fs.source.close()


def test_probe_finds_ufs_in_a_partition(images):
    image, src, _geo = images["ufs2-be-8k-1024"]
    data = bytes(1 * MiB) + image.read_bytes()
    fs = probe(SliceSource(MemorySource(data), 1 * MiB, len(data) - MiB))
    assert isinstance(fs, UfsFilesystem) and fs.kind == "ufs2"
    assert fs.read_file("/tiny", 100) == b"hello, world\n"


# -- structures makefs does not make ---------------------------------------------------


def pack(fs: UfsFilesystem, code: str, *values: int) -> bytes:
    return struct.pack(fs.flavour.order + code, *values)


def pointer_code(fs: UfsFilesystem) -> str:
    return fs.flavour.pointer


def area_offset(fs: UfsFilesystem) -> int:
    """Where di_db starts in a dinode."""
    return 40 if fs.kind == "ufs1" else 112


def size_offset(fs: UfsFilesystem) -> int:
    return 8 if fs.kind == "ufs1" else 16


def free_zero_block(data: bytes, fs: UfsFilesystem) -> int:
    """A fragment address of a whole zero block near the end of the filesystem."""
    bs = fs.block_size
    last = fs.frag_count * fs.frag_size // bs - 1
    for block in range(last, 0, -1):
        if data[block * bs : (block + 1) * bs] == bytes(bs):
            return block * fs.frags_per_block
    raise AssertionError("no free block")


@pytest.mark.parametrize("name", ["ufs1-be-4k-512", "ufs2-le-4k-4096"])
def test_triple_indirect(images, name):
    # A triple indirect block T whose first pointer is the file's own double indirect
    # block: logical blocks from the triple range's start read what the double range holds.
    image, src, _geo = images[name]
    data = image.read_bytes()
    fs = open_ufs(data)
    inode = fs.inode(fs.resolve("/double"))
    n = fs.pointers_per_block
    bs = fs.block_size
    pointers = fs._pointers(inode.area)
    double = pointers[13]
    triple = free_zero_block(data, fs)
    double_start = (12 + n) * bs
    triple_start = (12 + n + n * n) * bs
    want = (src / "double").read_bytes()[double_start:]
    edits = {
        triple * fs.frag_size: pack(fs, pointer_code(fs), double),
        inode.offset + area_offset(fs) + 14 * fs.flavour.pointer_size: pack(
            fs, pointer_code(fs), triple
        ),
        inode.offset + size_offset(fs): pack(fs, "Q", triple_start + len(want)),
    }
    fs = open_ufs(edited(data, edits))
    with fs.open("/double") as f:
        f.seek(double_start)
        assert f.read(len(want)) == want
        f.seek(triple_start)
        assert f.read(len(want) + 1) == want
        f.seek(triple_start - 5)
        assert f.read(5) == bytes(5)  # the rest of the double range is a hole
    extents = list(fs.extents("/double"))
    assert sum(length for _o, length, _w in extents) == triple_start + len(want)
    assert [w for _o, _n, w in extents].count("hole") == 1


@pytest.mark.parametrize("name", ["ufs1-le-8k-1024", "ufs2-be-8k-1024"])
def test_zero_pointers_are_holes(images, name):
    image, src, _geo = images[name]
    data = image.read_bytes()
    fs = open_ufs(data)
    inode = fs.inode(fs.resolve("/direct-end"))
    bs = fs.block_size
    size = fs.flavour.pointer_size
    at = inode.offset + area_offset(fs)
    # Direct block 3 and the single indirect block (logical 12 on) become holes.
    fs = open_ufs(edited(data, {at + 3 * size: bytes(size), at + 12 * size: bytes(size)}))
    want = bytearray((src / "direct-end").read_bytes())
    want[3 * bs : 4 * bs] = bytes(bs)
    want[12 * bs :] = bytes(len(want) - 12 * bs)
    assert fs.read_file("/direct-end", len(want) + 1) == bytes(want)
    kinds = [(o, w == "hole") for o, _n, w in fs.extents("/direct-end")]
    assert (3 * bs, True) in kinds and (12 * bs, True) in kinds


def test_ufs2_volume_label(images):
    image, _src, _geo = images["ufs2-le-4k-4096"]
    data = image.read_bytes()
    fs = open_ufs(data)
    label_at = fs.sb_offset + 680  # fs_volname
    assert open_ufs(edited(data, {label_at: b"BSDROOT\0"})).label == "BSDROOT"


def directory_chunks(fs: UfsFilesystem, node: int) -> Iterator[int]:
    """Byte offsets of every 512-byte chunk of a directory."""
    for ext in checked_extents(fs, node, fs.inode(node).size):
        yield from range(ext.offset, ext.offset + ext.length, 512)


def to_old_directories(data: bytes, fs: UfsFilesystem, edits: dict[int, bytes]) -> None:
    """Rewrite every entry as 4.2BSD's: a 16-bit d_namlen where d_type and d_namlen were."""
    pending, seen = [fs.root()], set()
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        for chunk in directory_chunks(fs, node):
            pos = chunk
            while pos < chunk + 512:
                ino, reclen = struct.unpack_from(fs.flavour.order + "IH", data, pos)
                namlen = data[pos + 7]
                edits[pos + 6] = pack(fs, "H", namlen)
                if (
                    ino
                    and data[pos + 6] == 4
                    and data[pos + 8 : pos + 8 + namlen]
                    not in (
                        b".",
                        b"..",
                    )
                ):
                    pending.append(ino)  # DT_DIR
                pos += reclen


@pytest.mark.parametrize("name", ["ufs1-le-8k-1024", "ufs1-be-4k-512"])
def test_42bsd_directories(images, name):
    image, src, _geo = images[name]
    data = image.read_bytes()
    fs = open_ufs(data)
    sb = fs.sb_offset
    edits = {sb + 1320: pack(fs, "i", 0), sb + 1324: pack(fs, "i", -1)}  # FS_42INODEFMT
    to_old_directories(data, fs, edits)
    old = open_ufs(edited(data, edits))
    assert not old.bsd44 and old.max_symlink_len == 0
    # Short targets stay readable: a symlink without blocks keeps its target inline.
    assert_tree_matches(old, src)
    assert_symlinks_resolve(old, src, KERNEL_LINKS)


def test_ufs2_maxsymlinklen_is_bounded(small):
    data, _src = small["ufs2-be-4k-1024"]
    with pytest.raises(CorruptError, match="fs_maxsymlinklen"):
        open_filesystem(MemorySource(edited(data, {8192 + 1320: struct.pack(">i", 121)})))


def test_solaris_x86_ufs(images):
    # Solaris: little-endian UFS1, 4.2BSD directories, fs_version (1 for multi-terabyte
    # UFS) and fs_logbno where 4.4BSD keeps fs_maxsymlinklen and fs_old_inodefmt, and a
    # longer fs_fsmnt over fs_volname. A logbno of 2 would read as 4.4BSD's inode format.
    image, src, _geo = images["ufs1-le-8k-1024"]
    data = image.read_bytes()
    fs = open_ufs(data)
    sb = fs.sb_offset
    edits = {
        sb + 1320: pack(fs, "i", 1),
        sb + 1324: pack(fs, "i", 2),
        sb + 212: b"/".ljust(512, b"\0"),  # fs_fsmnt
    }
    to_old_directories(data, fs, edits)
    # In a VTOC slice of a Solaris fdisk partition.
    disk = bytes(2 * MiB) + edited(data, edits)
    solaris = probe(SliceSource(MemorySource(disk), 2 * MiB, len(disk) - 2 * MiB))
    assert isinstance(solaris, UfsFilesystem)
    assert solaris.kind == "ufs1" and not solaris.bsd44 and solaris.label is None
    assert_tree_matches(solaris, src)


# -- where a superblock counts --------------------------------------------------------


def test_superblock_places(images):
    image, _src, _geo = images["ufs2-be-8k-1024"]
    data = image.read_bytes()
    fs = open_ufs(data)
    assert fs.sb_offset == 8192  # this makefs puts UFS2's at 8 KiB, with fs_sblockloc so
    assert open_filesystem(MemorySource(edited(data, {8192 + 1372: bytes(4)}))) is None
    # A UFS2 superblock whose fs_sblockloc names another place is a backup: not used.
    assert open_filesystem(MemorySource(edited(data, {8192 + 1000: pack(fs, "q", 65536)}))) is None
    # Moved to 64 KiB and saying so, it is found there.
    moved = bytearray(data)
    moved[65536 : 65536 + 8192] = data[8192 : 8192 + 8192]
    moved[8192 + 1372 : 8192 + 1376] = bytes(4)
    moved[65536 + 1000 : 65536 + 1008] = pack(fs, "q", 65536)
    assert open_filesystem(MemorySource(bytes(moved))).sb_offset == 65536
    # UFS1 counts only at 8 KiB.
    image1, _src, _geo = images["ufs1-le-8k-1024"]
    data1 = image1.read_bytes()
    moved = bytearray(data1)
    moved[65536 : 65536 + 2048] = data1[8192 : 8192 + 2048]
    moved[8192 + 1372 : 8192 + 1376] = bytes(4)
    assert open_filesystem(MemorySource(bytes(moved))) is None
    assert open_filesystem(MemorySource(bytes(4096))) is None


# -- hostile images: targeted damage --------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, tuple[bytes, Path]]:
    """Small images to damage: UFS1 LE with 4 KiB blocks and 512-byte fragments, UFS2 BE."""
    tmp = tmp_path_factory.mktemp("small")
    out = {}
    for geo in (Geometry(1, "le", 4096, 512), Geometry(2, "be", 4096, 1024)):
        src = tmp / f"{geo.name}.d"
        rng = random.Random(5)
        (src / "boot/grub").mkdir(parents=True)
        (src / "boot/grub/grub.cfg").write_bytes(b"set default=0\nmenuentry 'Linux' {}\n")
        (src / "boot/vmlinuz").write_bytes(rng.randbytes(geo.double_start + 5000))
        (src / "small.txt").write_bytes(b"small\n")
        (src / "dir").mkdir()
        for index in range(60):
            (src / "dir" / f"name-{index:03d}").write_bytes(b"%d" % index)
        os.symlink("boot/vmlinuz", src / "fast")
        os.symlink("/" + "./" * 70 + "small.txt", src / "slow")
        os.symlink("loop", src / "loop")
        out[geo.name] = (makefs(tmp / f"{geo.name}.img", src, geo, extra_mb=0).read_bytes(), src)
    return out


def test_small_fixtures_are_read_correctly(small):
    for data, src in small.values():
        fs = open_ufs(data)
        assert_tree_matches(fs, src)
        assert fs.read_file("/slow", 10) == b"small\n"


@pytest.mark.parametrize(
    "field,offset,value,match",
    [
        ("fs_bsize", 48, 3000, "fs_bsize"),
        ("fs_bsize", 48, 1 << 30, "fs_bsize"),
        ("fs_fsize", 52, 256, "fs_fsize"),
        ("fs_frag", 56, 3, "fs_frag"),
        ("fs_old_size", 36, 0x7FFFFFFF, "do not fit"),
        ("fs_ncg", 44, 0xFFFFFFFF, "fs_ncg"),
        ("fs_ipg", 184, 0, "fs_ipg"),
        ("fs_fpg", 188, 0, "fs_fpg"),
        ("fs_inopb", 120, 7, "fs_inopb"),
    ],
)
def test_absurd_superblock_fields(small, field, offset, value, match):
    data, _src = small["ufs1-le-4k-512"]
    with pytest.raises(CorruptError, match=match):
        open_filesystem(MemorySource(edited(data, {8192 + offset: struct.pack("<I", value)})))


def test_truncated_image(small):
    data, _src = small["ufs2-be-4k-1024"]
    with pytest.raises(CorruptError, match="do not fit"):
        open_filesystem(MemorySource(data[: len(data) // 2]))
    assert open_filesystem(MemorySource(data[:9000])) is None


def dirent_offset(data: bytes, fs: UfsFilesystem, directory: str, name: bytes) -> int:
    for chunk in directory_chunks(fs, fs.resolve(directory)):
        found = data.find(name, chunk, chunk + 512)
        if found >= 0:
            return found - 8
    raise AssertionError(f"{name!r} not in {directory}")


@pytest.mark.parametrize("reclen", [0, 2, 13, 516, 0xFFFF])
def test_bad_reclen_does_not_loop(small, reclen):
    data, _src = small["ufs1-le-4k-512"]
    fs = open_ufs(data)
    at = dirent_offset(data, fs, "/dir", b"name-007")
    fs = open_ufs(edited(data, {at + 4: struct.pack("<H", reclen)}))
    with pytest.raises(CorruptError, match="d_reclen"):
        fs.listdir("/dir")
    with pytest.raises(CorruptError, match="d_reclen"):
        fs.stat("/dir/absent")


@pytest.mark.parametrize("ino", [1 << 20, 0xFFFFFFFF])
def test_dirent_inode_out_of_range(small, ino):
    data, _src = small["ufs2-be-4k-1024"]
    fs = open_ufs(data)
    at = dirent_offset(data, fs, "/dir", b"name-007")
    fs = open_ufs(edited(data, {at: struct.pack(">I", ino)}))
    with pytest.raises(CorruptError, match="out of range"):
        fs.listdir("/dir")


def test_pointer_past_the_end(small):
    data, _src = small["ufs1-le-4k-512"]
    fs = open_ufs(data)
    inode = fs.inode(fs.resolve("/small.txt"))
    fs = open_ufs(edited(data, {inode.offset + 40: struct.pack("<I", fs.frag_count)}))
    with pytest.raises(CorruptError, match="past the last"):
        fs.read_file("/small.txt", 100)


@pytest.mark.parametrize("name", ["ufs1-le-4k-512", "ufs2-be-4k-1024"])
def test_indirect_blocks_naming_themselves_are_bounded(small, name):
    # Single, double and triple indirect pointers all name one block whose pointers all
    # name itself, and the file claims 2^62 bytes: every level reads the same block.
    data, _src = small[name]
    fs = open_ufs(data)
    inode = fs.inode(fs.resolve("/boot/vmlinuz"))
    size = fs.flavour.pointer_size
    code = pointer_code(fs)
    block = fs._pointers(inode.area)[12]
    edits = {
        block * fs.frag_size: pack(fs, code, block) * fs.pointers_per_block,
        inode.offset + area_offset(fs) + 12 * size: pack(fs, code, block) * 3,
        inode.offset + size_offset(fs): pack(fs, "Q", 1 << 62),
    }
    fs = open_ufs(edited(data, edits))
    started = time.monotonic()
    with pytest.raises(LimitError):
        for _extent in fs.extents("/boot/vmlinuz"):
            pass
    assert time.monotonic() - started < 5


def test_blocks_of_holes_cost_no_loop(small):
    data, _src = small["ufs1-le-4k-512"]
    fs = open_ufs(data)
    inode = fs.inode(fs.resolve("/boot/vmlinuz"))
    zero = free_zero_block(data, fs)
    edits = {
        inode.offset + 40 + 12 * 4: struct.pack("<3I", zero, zero, zero),
        inode.offset + 8: struct.pack("<Q", 1 << 45),
    }
    fs = open_ufs(edited(data, edits))
    started = time.monotonic()
    extents = list(fs.extents("/boot/vmlinuz"))
    assert time.monotonic() - started < 2
    assert extents[-1][2] == "hole" and extents[-1][0] == 12 * 4096
    assert sum(n for _o, n, _w in extents) == 1 << 45


# -- hostile images: random damage ----------------------------------------------------


def damage_regions(data: bytes, fs: UfsFilesystem) -> list[tuple[int, int]]:
    """The superblock, the inodes in use, directory chunks and indirect blocks."""
    regions = [(fs.sb_offset, fs.sb_offset + 1376)]
    paths = ["/", "/boot", "/boot/grub", "/boot/grub/grub.cfg", "/boot/vmlinuz", "/small.txt"]
    paths += ["/dir", "/fast", "/slow", "/loop"]
    for path in paths:
        node = fs.resolve(path, follow_last=False)
        inode = fs.inode(node)
        regions.append((inode.offset, inode.offset + fs.flavour.inode_size))
        if inode.type is NodeType.DIR:
            regions.extend((c, c + 512) for c in directory_chunks(fs, node))
    inode = fs.inode(fs.resolve("/boot/vmlinuz"))
    single, double = fs._pointers(inode.area)[12:14]
    first_single = fs._pointers(data[double * fs.frag_size : double * fs.frag_size + 8])[0]
    for frag in (single, double, first_single):
        regions.append((frag * fs.frag_size, frag * fs.frag_size + fs.block_size))
    return regions


#: Each damage overwrites one byte, a u16 or a u32 in either byte order, or a value that
#: often means something.
DAMAGE = st.one_of(
    st.binary(min_size=1, max_size=1),
    st.integers(0, 0xFFFF).map(lambda v: struct.pack("<H", v)),
    st.integers(0, 0xFFFFFFFF).map(lambda v: struct.pack("<I", v)),
    st.integers(0, 0xFFFFFFFF).map(lambda v: struct.pack(">I", v)),
    st.sampled_from([bytes(4), b"\xff" * 8, bytes(8), b"\x00\x00\x00\x02"]),
)
WALK_PATHS = ("/fast", "/slow", "/loop", "/dir/name-050", "/boot/grub/grub.cfg", "/nothing")


@pytest.mark.parametrize("name", ["ufs1-le-4k-512", "ufs2-be-4k-1024"])
def test_random_damage_gives_data_or_our_errors(small, name):
    data, _src = small[name]
    regions = damage_regions(data, open_ufs(data))
    pristine = MemorySource(data)

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(edits=overwrites(regions, DAMAGE))
    def check(edits: list[tuple[int, bytes]]) -> None:
        source = EditedSource(pristine, edits)
        open_and_walk(open_filesystem, source, partial(walk_nodes, paths=WALK_PATHS))

    check()
