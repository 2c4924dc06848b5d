"""The XFS reader, on images made by mkfs.xfs -p (a protofile) at test time.

The source tree is the truth for file contents and symlink targets; xfs_db (the XFS
debugger, another reader of the same format) is the oracle for directory listings with
their inode numbers, block maps, inode places and the formats mkfs chose, and xfs_db -x
makes the few structures mkfs never writes (holes, unwritten extents, a B-tree file).
"""

from __future__ import annotations

import functools
import os
import random
import re
import struct
import subprocess
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
    open_and_walk,
    overwrites,
    padded,
    patched,
    walk_nodes,
    write_tree,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import require_tool, run

from pygrub.disk import ByteSource, FileSource, MemorySource
from pygrub.errors import CorruptError, LimitError, NotFoundError, UnsupportedError
from pygrub.fs import probe
from pygrub.fs.base import ExtentKind, Filesystem, NodeType, checked_extents
from pygrub.fs.xfs import XfsFilesystem, decode_extent, open_filesystem

#: mkfs.xfs 5.19 and later refuse filesystems under 300 MB unless fstests runs them;
#: these variables say it does, so fixtures stay small.
SMALL_FS_ENV = {"TEST_DIR": "/tmp", "TEST_DEV": "/dev/null", "QA_CHECK_FS": "xfs"}

#: Directory address space: data below 32 GiB, the leaf index at 32 GiB, free index at 64.
LEAF_OFFSET = 32 << 30
FREE_OFFSET = 64 << 30


# -- building images ------------------------------------------------------------------


SYMLINKS = {
    "links/s1": "f",
    "links/r60": padded("../" + KERNEL, 60),
    "links/r300": padded("../" + KERNEL, 300),  # local in 512-byte v5 inodes (336 bytes)
    "links/r400": padded("../" + KERNEL, 400),  # remote there
    "links/a900": padded("/" + KERNEL, 900),  # two 512-byte blocks
    "links/bootdir": "../boot",
    "links/loop1": "loop2",
    "links/loop2": "loop1",
    "links/dangling": "nowhere",
}


class Bulk:
    """A directory of many entries, all copies of one host file (the protofile names the
    source of each entry, so thousands of entries need only one file on the host)."""

    def __init__(self, names: list[str], content: bytes) -> None:
        self.names = names
        self.content = content


def populate(root: Path, block_size: int) -> tuple[Path, dict[str, Bulk]]:
    """The tree every fixture holds: sizes around block boundaries, deep and odd names,
    symlinks local and remote, and directories sized for every directory format."""
    rng = random.Random(block_size)
    bs = block_size
    files = {
        "boot/grub/grub.cfg": GRUB_CFG,
        KERNEL: rng.randbytes(1_200_000),
        "boot/initrd.img-6.1": rng.randbytes(300_000),
        "empty": b"",
        "one": b"x",
        "tiny": b"hello, world\n",
        "below": rng.randbytes(bs - 1),
        "exact": rng.randbytes(bs),
        "above": rng.randbytes(bs + 1),
        "zeros": bytes(3 * bs),
        "a/b/c/d/e/deep.txt": b"deep\n",
        LATIN1_FILE: b"a latin-1 name\n",
        LATIN1_DIR + "/inner": b"inside a non-UTF-8 directory\n",
        "h\u00e9llo.txt": b"a UTF-8 name\n",
        "x" * 255: b"the longest name\n",
        "links/f": b"the f file\n",
    }
    for index in range(5):
        files[f"sf/small-{index}"] = b"%d\n" % index
    for index in range(40):
        files[f"blockdir/entry-{index:03d}"] = b"%d\n" % index
    for index in range(300):
        files[f"leafdir/a-rather-long-entry-name-{index:04d}"] = b"%d\n" % index
    write_tree(root, files, SYMLINKS)
    bulk = {
        "nodedir": Bulk([f"entry-with-a-longish-name-{i:05d}" for i in range(3000)], b""),
    }
    if bs <= 4096:
        # each file's block lands between directory blocks: the map becomes a B-tree
        bulk["btreedir"] = Bulk(
            [f"file-with-a-long-name-{i:05d}" for i in range(2000)], b"one block\n"
        )
    return root, bulk


def protofile(src: Path, bulk: dict[str, Bulk], spare: Path) -> bytes:
    """A mkfs.xfs(8) protofile that recreates ``src`` (plus ``bulk`` directories at its top).

    Tokens are separated by white space and ':' starts a comment, so names and targets
    must have neither; files are owned by 0:0 with the host file as their contents.
    """
    lines = [b"pygrub-test", b"0 0", b"d--755 0 0"]

    def token(raw: bytes) -> bytes:
        assert raw and not re.search(rb"[\s:]", raw), raw
        return raw

    def add(directory: Path) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            name = token(os.fsencode(entry.name))
            if entry.is_symlink():
                lines.append(name + b" l--777 0 0 " + token(os.fsencode(os.readlink(entry.path))))
            elif entry.is_dir():
                lines.append(name + b" d--755 0 0")
                add(Path(entry.path))
                lines.append(b"$")
            else:
                lines.append(name + b" ---644 0 0 " + token(os.fsencode(entry.path)))

    add(src)
    for index, (dirname, spec) in enumerate(bulk.items()):
        host = spare / f"bulk-{index}"
        host.write_bytes(spec.content)
        lines.append(token(dirname.encode()) + b" d--755 0 0")
        lines.extend(token(n.encode()) + b" ---644 0 0 " + os.fsencode(host) for n in spec.names)
        lines.append(b"$")
    lines.append(b"$")
    return b"\n".join(lines) + b"\n"


def mkfs_xfs(
    image: Path,
    src: Path,
    options: tuple[str, ...],
    size_mb: int,
    bulk: dict[str, Bulk] | None = None,
) -> Path:
    proto = image.with_name(image.name + ".proto")
    proto.write_bytes(protofile(src, bulk or {}, image.parent))
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_mb * MiB)
    tool = require_tool("mkfs.xfs")
    proc = subprocess.run(
        [tool, "-q", *options, "-p", proto, image],
        env={**os.environ, **SMALL_FS_ENV},
        capture_output=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"mkfs.xfs failed: {proc.stderr.decode(errors='replace')}")
    add_symlink_headers(image, src)
    return image


def add_symlink_headers(image: Path, src: Path) -> None:
    """mkfs.xfs 6.1 writes a remote symlink's target on v5 without the block header the
    kernel writes and checks (xfs_repair -n reports a CRC error): write the header as
    the kernel does (xfs_dsymlink_hdr) and let xfs_db compute the CRC."""
    with open(image, "rb") as f:
        raw = f.read(512)
    if struct.unpack_from(">H", raw, 100)[0] & 0xF != 5:
        return
    (bs,) = struct.unpack_from(">I", raw, 4)
    commands = []
    for dirpath, dirs, names in os.walk(src):
        for name in dirs + names:
            host = Path(dirpath, name)
            rel = "/" + host.relative_to(src).as_posix()
            if not host.is_symlink() or db_format(image, rel) != "extents":
                continue
            target = os.fsencode(os.readlink(host))
            ((_block, where, count, _u),) = db_bmap(image, rel)
            assert count == 1 and len(target) <= bs - 56, "the header would need another block"
            header = struct.pack(
                ">4sIII16sQQQ",
                b"XSLM",
                0,
                len(target),
                0,
                raw[32:48],
                db_inode(image, rel),
                where // 512,
                0,
            )
            with open(image, "r+b") as f:
                f.seek(where)
                f.write((header + target).ljust(bs, b"\0"))
            commands += [f"path {rel}", "dblock 0", "type symlink", "crc -r"]
    if commands:
        xfs_db(image, *commands, expert=True)


def open_xfs(image: Path) -> XfsFilesystem:
    fs = probe(FileSource(str(image)))
    assert isinstance(fs, XfsFilesystem)
    return fs


# -- the oracle: xfs_db ---------------------------------------------------------------


def xfs_db(image: Path, *commands: str, expert: bool = False) -> bytes:
    argv = ["xfs_db", "-x" if expert else "-r"]
    for command in commands:
        argv += ["-c", command]
    return run(*argv, image)


def db_value(image: Path, *commands: str) -> str:
    """The value xfs_db prints for the last command (``name = value``)."""
    out = xfs_db(image, *commands).decode()
    return out.strip().splitlines()[-1].split(" = ", 1)[1]


def db_ls(image: Path, directory: str) -> dict[bytes, int]:
    """name -> inode number of every entry but . and .., as xfs_db ls lists them."""
    entries = {}
    for line in xfs_db(image, f"ls {directory}").splitlines()[1:]:
        # offset, inode, type, hash, name length, then the raw name and "(good)"
        fields = line.split(None, 5)
        name = fields[5][: int(fields[4])]
        if name not in (b".", b".."):
            entries[name] = int(fields[1])
    return entries


def db_inode(image: Path, path: str) -> int:
    """The inode number at ``path``."""
    return int(xfs_db(image, f"path {path}", "inode").split()[-1].decode().strip("()"))


@functools.lru_cache
def geometry(image: Path) -> dict[str, int]:
    """Superblock fields as xfs_db prints them (an image's geometry never changes)."""
    out = xfs_db(image, "sb 0", "print blocksize agblocks agblklog sectsize inodesize")
    return {k: int(v) for k, v in re.findall(r"(\w+) = (\d+)", out.decode())}


def db_bmap(image: Path, path: str) -> list[tuple[int, int, int, bool]]:
    """(file block, byte offset in the volume, blocks, unwritten) of each data mapping."""
    agblocks = geometry(image)["agblocks"]
    block_size = geometry(image)["blocksize"]
    mappings = []
    for m in re.finditer(
        rb"data offset (\d+) startblock \d+ \((\d+)/(\d+)\) count (\d+) flag (\d)",
        xfs_db(image, f"path {path}", "bmap"),
    ):
        offset, agno, agbno, count, flag = map(int, m.groups())
        mappings.append((offset, (agno * agblocks + agbno) * block_size, count, flag == 1))
    return mappings


def db_format(image: Path, path: str) -> str:
    """The data fork format: local, extents or btree."""
    return db_value(image, f"path {path}", "print core.format").split()[1].strip("()")


def directory_kind(image: Path, path: str) -> str:
    """shortform, block, leaf or node, from the fork format and where the blocks lie."""
    if db_format(image, path) == "local":
        return "shortform"
    bs = geometry(image)["blocksize"]
    offsets = {block * bs for block, _where, _count, _u in db_bmap(image, path)}
    if max(offsets) >= FREE_OFFSET:
        return "node"
    return "leaf" if max(offsets) >= LEAF_OFFSET else "block"


def inode_byte(image: Path, number: int) -> int:
    return int(xfs_db(image, f"convert inode {number} byte").split()[0], 16)


# -- comparing a filesystem with its source tree ------------------------------------


def merged_mappings(mappings: list[tuple[int, int, int, bool]], bs: int) -> list[tuple]:
    """Mappings in bytes, merged where contiguous in the file and the volume."""
    merged: list[list] = []
    for block, where, count, unwritten in mappings:
        if unwritten:
            continue
        start, length = block * bs, count * bs
        if (
            merged
            and merged[-1][0] + merged[-1][1] == start
            and merged[-1][2] + merged[-1][1] == where
        ):
            merged[-1][1] += length
        else:
            merged.append([start, length, where])
    return [tuple(m) for m in merged]


def data_extents(fs: XfsFilesystem, node: int, size: int) -> list[tuple[int, int, int]]:
    return [
        (e.file_offset, e.length, e.offset)
        for e in checked_extents(fs, node, size)
        if e.kind is ExtentKind.DATA
    ]


def assert_tree_matches(fs: XfsFilesystem, image: Path, src: Path, bulk: dict[str, Bulk]) -> None:
    """The source tree reads back; each directory's entries, inode numbers too, match what
    xfs_db lists (the bulk directories are at the root, not in the source tree)."""

    def listing(fs: Filesystem, rel: str, here: Path) -> None:
        entries = {os.fsencode(name): child for name, child in fs.dir_entries(fs.resolve(rel))}
        expected = set(map(os.fsencode, os.listdir(here)))
        if rel == "/":
            expected |= {name.encode() for name in bulk}
        assert set(entries) == expected, rel
        assert entries == db_ls(image, rel), rel

    fswalk.assert_tree_matches(fs, src, listing)
    for dirname, spec in bulk.items():
        listing = fs.listdir("/" + dirname)
        assert sorted(listing) == spec.names
        assert {n.encode(): i for n, i in fs.dir_entries(fs.resolve("/" + dirname))} == db_ls(
            image, "/" + dirname
        )
        for name in (spec.names[0], spec.names[len(spec.names) // 2], spec.names[-1]):
            assert fs.read_file(f"/{dirname}/{name}", 100) == spec.content


#: The symlinks that lead to the kernel: local and remote, relative and absolute.
KERNEL_LINKS = ("links/r60", "links/r300", "links/r400", "links/a900")


# -- the fixture matrix ---------------------------------------------------------------

MATRIX = [
    # name, mkfs options, block size, size in MiB
    ("v5-4k-3ag", ("-b", "size=4096", "-d", "agcount=3", "-L", "guest-root"), 4096, 64),
    ("v5-1k-dir8k", ("-b", "size=1024", "-n", "size=8192"), 1024, 64),
    ("v4-512", ("-m", "crc=0", "-b", "size=512", "-i", "size=256"), 512, 64),
    ("v4-noftype", ("-m", "crc=0", "-n", "ftype=0"), 4096, 64),
    ("v5-nrext64-2k-inodes", ("-i", "nrext64=1,size=2048"), 4096, 64),
    ("v5-64k", ("-b", "size=65536"), 65536, 256),
]


@pytest.mark.parametrize("name,options,block_size,size_mb", MATRIX, ids=[m[0] for m in MATRIX])
def test_reads_the_whole_tree(tmp_path, name, options, block_size, size_mb):
    src, bulk = populate(tmp_path / "src", block_size)
    image = mkfs_xfs(tmp_path / "fs.img", src, options, size_mb, bulk)
    fs = open_xfs(image)
    try:
        assert fs.kind == "xfs"
        assert fs.block_size == block_size
        assert fs.v5 == ("crc=0" not in options)
        assert fs.uuid == xfs_db(image, "uuid").decode().split(" = ")[1].strip()
        label = xfs_db(image, "label").decode().split(" = ")[1].strip().strip('"')
        assert fs.label == (label or None)
        assert_tree_matches(fs, image, src, bulk)
        assert_symlinks_resolve(fs, src, KERNEL_LINKS)
        if "ftype=0" in options:
            assert fs.ftype_len == 0
        if "nrext64" in options[-1]:
            assert db_value(image, f"path /{KERNEL}", "print v3.nrext64") == "1"
        for path in ("/", "/boot", "/sf", *(f"/{d}" for d in bulk)):
            ino = db_inode(image, path)
            assert fs.resolve(path) == ino
            assert fs.inode(ino).offset == inode_byte(image, ino)
    finally:
        fs.source.close()


def test_every_directory_format(tmp_path):
    """With 4 KiB blocks the tree has shortform, block, leaf and node directories, and
    one whose block map is a B-tree, spread over AGs whose size is not a power of two.

    (A file larger than an AG cannot be made this way: mkfs.xfs 6.1 -p writes only the
    part that fits its first extent and leaves the rest a hole.)
    """
    src, bulk = populate(tmp_path / "src", 4096)
    image = mkfs_xfs(tmp_path / "fs.img", src, ("-d", "agcount=3"), 64, bulk)
    kinds = {path: directory_kind(image, path) for path in ("/sf", "/blockdir", "/leafdir")}
    assert kinds == {"/sf": "shortform", "/blockdir": "block", "/leafdir": "leaf"}
    assert directory_kind(image, "/nodedir") == "node"
    assert db_format(image, "/leafdir") == "extents"
    assert directory_kind(image, "/btreedir") == "node"
    assert db_format(image, "/btreedir") == "btree"
    run("xfs_repair", "-n", image)  # the fixture (symlink headers included) is consistent
    fs = open_xfs(image)
    assert fs.agblocks & (fs.agblocks - 1), "the AG size should not be a power of two"
    assert {fs.resolve(f"/{d}") >> (fs.agblklog + fs.inopblog) for d in bulk} - {0}, (
        "some directory should live past AG 0"
    )
    fs.source.close()


def test_btree_file_with_holes(tmp_path):
    """mkfs writes every file in one piece; a B-tree directory turned into a regular file
    (xfs_db -x) is a file whose map is a B-tree, with a 32 GiB hole in the middle."""
    src, bulk = populate(tmp_path / "src", 4096)
    image = mkfs_xfs(tmp_path / "fs.img", src, (), 64, {"btreedir": bulk["btreedir"]})
    size = (FREE_OFFSET // 4096 + 1) * 4096
    xfs_db(
        image, "path /btreedir", "write core.mode 0100644", f"write core.size {size}", expert=True
    )
    mappings = db_bmap(image, "/btreedir")
    assert db_format(image, "/btreedir") == "btree" and len(mappings) > 21
    fs = open_xfs(image)
    node = fs.resolve("/btreedir")
    assert fs.stat("/btreedir").type is NodeType.FILE
    assert data_extents(fs, node, size) == merged_mappings(mappings, 4096)
    raw = image.read_bytes()
    with fs.open("/btreedir") as f:
        for block, where, count, _unwritten in mappings:
            f.seek(block * 4096)
            assert f.read(count * 4096) == raw[where : where + count * 4096]
        f.seek(LEAF_OFFSET - 4096)
        assert f.read(4096) == bytes(4096)
    where = list(fs.extents("/btreedir"))
    assert ("hole" in [w for _o, _n, w in where]) and sum(n for _o, n, _w in where) == size
    fs.source.close()


def test_holes_and_unwritten_extents(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = random.Random(1).randbytes(5 * 4096)
    (src / "shifted").write_bytes(data)
    (src / "prealloc").write_bytes(data)
    image = mkfs_xfs(tmp_path / "fs.img", src, (), 16)
    # shifted: its one extent now starts at file block 3, so blocks 0-2 are a hole
    xfs_db(image, "path /shifted", "write u3.bmx[0].startoff 3", expert=True)
    # prealloc: allocated but unwritten, so it reads as zeros whatever the blocks hold
    xfs_db(image, "path /prealloc", "write u3.bmx[0].extentflag 1", expert=True)
    assert db_bmap(image, "/prealloc")[0][3]
    fs = open_xfs(image)
    assert fs.read_file("/shifted", MiB) == bytes(3 * 4096) + data[: 2 * 4096]
    assert [w for _o, _n, w in fs.extents("/shifted")][0] == "hole"
    assert fs.read_file("/prealloc", MiB) == bytes(len(data))
    assert [w for _o, _n, w in fs.extents("/prealloc")] == ["hole"]
    fs.source.close()


def test_changed_uuid_keeps_the_metadata_uuid(tmp_path):
    """xfs_admin -U on v5 sets meta_uuid: blocks keep the old UUID, blkid shows the new."""
    src, bulk = populate(tmp_path / "src", 4096)
    image = mkfs_xfs(tmp_path / "fs.img", src, ("-L", "label-12-chr"), 64, bulk)
    run("xfs_admin", "-U", "0123abcd-4567-89ef-0123-456789abcdef", image)
    assert "META_UUID" in xfs_db(image, "version").decode()
    fs = open_xfs(image)
    assert fs.uuid == "0123abcd-4567-89ef-0123-456789abcdef"
    assert fs.label == "label-12-chr"
    assert len(fs.listdir("/btreedir")) == 2000  # v5 headers checked against meta_uuid
    assert fs.read_file("/links/a900", 10) == (src / KERNEL).read_bytes()[:10]
    fs.source.close()


def test_ascii_case_insensitive_names(tmp_path):
    src, _bulk = populate(tmp_path / "src", 4096)
    image = mkfs_xfs(tmp_path / "fs.img", src, ("-n", "version=ci"), 64)
    fs = open_xfs(image)
    assert fs.read_file("/BOOT/Grub/GRUB.CFG", 100).startswith(b"set default")
    # names fold byte by byte: A-Z and the Latin-1 capitals, not UTF-8 sequences
    assert fs.read_file("/H\u00e9LLO.TXT", 100) == b"a UTF-8 name\n"
    with pytest.raises(NotFoundError):
        fs.stat("/H\u00c9LLO.TXT")
    assert fs.read_file(os.fsdecode(b"/CAF\xc9.TXT"), 100) == b"a latin-1 name\n"
    fs.source.close()
    plain = open_xfs(mkfs_xfs(tmp_path / "plain.img", src, (), 64))
    with pytest.raises(NotFoundError):
        plain.stat("/BOOT/grub/grub.cfg")
    plain.source.close()


def test_eight_byte_inode_numbers(tmp_path):
    """Inodes past 2^32 (AG 2 of 1 TiB AGs, sparse on the host) make shortform
    directories store 8-byte inode numbers (i8count)."""
    src = tmp_path / "src"
    for name in "abcd":
        (src / name).mkdir(parents=True)
        (src / name / "f").write_bytes(name.encode())
    agblocks = (1 << 27) + 1  # agblklog 28: AG 2 starts at inode 2^32
    size_mb = 3 * agblocks * 4096 // MiB + 1
    image = mkfs_xfs(
        tmp_path / "fs.img", src, ("-d", f"agsize={agblocks}b", "-l", "size=32m"), size_mb
    )
    assert db_value(image, "path /", "print u3.sfdir3.hdr.i8count") != "0"
    fs = open_xfs(image)
    entries = {name.encode(): ino for name, ino in fs.dir_entries(fs.root())}
    assert entries == db_ls(image, "/") and max(entries.values()) >= 1 << 32
    for name in "abcd":
        assert fs.read_file(f"/{name}/f", 10) == name.encode()
    fs.source.close()


def test_version_1_inodes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "old").write_bytes(b"an old inode\n")
    image = mkfs_xfs(tmp_path / "fs.img", src, ("-m", "crc=0"), 16)
    xfs_db(image, "path /old", "write core.version 1", expert=True)
    fs = open_xfs(image)
    assert fs.read_file("/old", 100) == b"an old inode\n"
    fs.source.close()


def test_decode_extent():
    # startoff 0x123456789ab, startblock 0xfedcba987654, blockcount 0x1fffff, unwritten
    startoff, startblock, count = 0x123456789AB, 0xFEDCBA987654, 0x1FFFFF
    packed = (1 << 127) | (startoff << 73) | (startblock << 21) | count
    l0, l1 = struct.unpack(">QQ", packed.to_bytes(16, "big"))
    assert decode_extent(l0, l1) == (startoff, startblock, count, True)


# -- hostile images: targeted damage --------------------------------------------------


@pytest.fixture(scope="module")
def small_images(tmp_path_factory) -> dict[str, tuple[Path, Path, dict[str, Bulk]]]:
    """Small images to damage (v5 with 1 KiB blocks, v4 with 512): name -> (image, src, bulk)."""
    tmp = tmp_path_factory.mktemp("small")
    src = tmp / "src"
    rng = random.Random(7)
    (src / "boot/grub").mkdir(parents=True)
    (src / "boot/grub/grub.cfg").write_bytes(b"set default=0\nmenuentry 'Linux' {}\n")
    (src / "boot/vmlinuz").write_bytes(rng.randbytes(100_000))
    (src / "small.txt").write_bytes(b"small\n")
    (src / "dir").mkdir()
    for index in range(30):
        (src / "dir" / f"name-{index:03d}").write_bytes(b"%d" % index)
    os.symlink("boot/vmlinuz", src / "fast")
    os.symlink("/" + "./" * 300 + "small.txt", src / "slow")
    os.symlink("loop", src / "loop")
    images = {}
    for name, options, entries in (
        ("v5", ("-b", "size=1024"), 400),
        ("v4", ("-m", "crc=0", "-b", "size=512", "-i", "size=256"), 200),
    ):
        # 4 KiB directory blocks (the least mkfs.xfs allows) of 15 long names each
        names = [f"{i:04d}-" + "n" * 240 for i in range(entries)]
        bulk = {"tree": Bulk(names, b"x")}
        image = mkfs_xfs(tmp / f"{name}.img", src, options, 16, bulk)
        assert db_format(image, "/tree") == "btree"
        assert db_format(image, "/dir") != "local"
        images[name] = (image, src, bulk)
    return images


def be16(v: int) -> bytes:
    return struct.pack(">H", v)


def be32(v: int) -> bytes:
    return struct.pack(">I", v)


def be64(v: int) -> bytes:
    return struct.pack(">Q", v)


def test_small_fixtures_are_read_correctly(small_images):
    for image, src, bulk in small_images.values():
        fs = open_xfs(image)
        assert_tree_matches(fs, image, src, bulk)
        assert fs.read_file("/slow", 10) == b"small\n"
        fs.source.close()


@pytest.mark.parametrize(
    "offset,value,match",
    [
        (4, be32(3000), "sb_blocksize"),
        (120, b"\x1e", "sb_blocksize"),  # sb_blocklog 30
        (124, b"\x1f", "sb_agblklog"),
        (84, be32(0), "allocation groups"),
        (8, be64(1 << 40), "sb_dblocks"),
        (104, be16(4096), "sb_inodesize"),
        (106, be16(1), "sb_inopblock"),
        (102, be16(100), "sb_sectsize"),
        (192, b"\x09", "sb_dirblklog"),
        (56, be64(1 << 60), "sb_rootino"),
        (56, be64(0), "sb_rootino"),
    ],
)
def test_bad_superblock_fields(small_images, offset, value, match):
    image, _src, _bulk = small_images["v5"]
    with pytest.raises(CorruptError, match=match):
        open_filesystem(patched(image, {offset: value}))


@pytest.mark.parametrize(
    "bit,name",
    [(0x10, "needsrepair"), (0x200, "zoned"), (1 << 20, "0x100000")],
)
def test_unknown_incompat_feature_is_refused(small_images, bit, name):
    image, _src, _bulk = small_images["v5"]
    (incompat,) = struct.unpack_from(">I", image.read_bytes(), 216)
    with pytest.raises(UnsupportedError, match=name):
        open_filesystem(patched(image, {216: be32(incompat | bit)}))


def test_old_versions_are_refused(small_images):
    image, _src, _bulk = small_images["v4"]
    (version,) = struct.unpack_from(">H", image.read_bytes(), 100)
    with pytest.raises(UnsupportedError, match="version 1 directories"):
        open_filesystem(patched(image, {100: be16(version & ~0x2000)}))
    with pytest.raises(UnsupportedError, match="version 3"):
        open_filesystem(patched(image, {100: be16(version & ~0xF | 3)}))


def test_not_xfs_and_truncated(small_images):
    image, _src, _bulk = small_images["v5"]
    assert open_filesystem(MemorySource(bytes(4096))) is None
    assert open_filesystem(MemorySource(image.read_bytes()[:200])) is None
    with pytest.raises(CorruptError, match="do not fit"):
        open_filesystem(MemorySource(image.read_bytes()[: 4 * MiB]))


def inode_at(image: Path, path: str) -> tuple[int, int]:
    number = db_inode(image, path)
    return number, inode_byte(image, number)


def literal_offset(image: Path) -> int:
    return 176 if b"V5" in xfs_db(image, "version") else 100


def test_bmbt_child_pointing_to_its_parent(small_images):
    image, _src, _bulk = small_images["v5"]
    _ino, at = inode_at(image, "/tree")
    fork = at + literal_offset(image)
    root = image.read_bytes()[fork : fork + 4]
    assert struct.unpack(">HH", root) == (1, 1)
    # The root claims two levels; its one child is a leaf that cannot be a level-1 node.
    fs = open_filesystem(patched(image, {fork: be16(2)}))
    with pytest.raises(CorruptError, match="level"):
        fs.listdir("/tree")
    fs = open_filesystem(patched(image, {fork: be16(1000)}))
    with pytest.raises(LimitError, match="depth"):
        fs.listdir("/tree")
    fs = open_filesystem(patched(image, {fork + 2: be16(500)}))
    with pytest.raises(CorruptError, match="records"):
        fs.listdir("/tree")
    assert fs.read_file("/small.txt", 10) == b"small\n"


def bmbt_leaf(image: Path, path: str) -> int:
    """Byte offset of the (one) bmbt leaf block of a B-tree fork."""
    fork = "u3" if literal_offset(image) == 176 else "u"
    ptr = int(db_value(image, f"path {path}", f"print {fork}.bmbt.ptrs[1]"))
    agblocks, agblklog, bs = (geometry(image)[k] for k in ("agblocks", "agblklog", "blocksize"))
    return ((ptr >> agblklog) * agblocks + (ptr & ((1 << agblklog) - 1))) * bs


@pytest.mark.parametrize("name", ["v5", "v4"])
def test_overlapping_extents_in_a_bmbt_leaf(small_images, name):
    image, _src, _bulk = small_images[name]
    leaf = bmbt_leaf(image, "/tree")
    header = 72 if name == "v5" else 24
    raw = image.read_bytes()
    assert raw[leaf : leaf + 4] == (b"BMA3" if name == "v5" else b"BMAP")
    first = raw[leaf + header : leaf + header + 16]
    fs = open_filesystem(patched(image, {leaf + header + 16: first}))  # record 2 = record 1
    with pytest.raises(CorruptError, match="overlaps"):
        fs.listdir("/tree")
    fs = open_filesystem(patched(image, {leaf: b"XXXX"}))
    with pytest.raises(CorruptError, match="magic"):
        fs.listdir("/tree")
    if name == "v5":
        fs = open_filesystem(patched(image, {leaf + 56: be64(12345)}))  # bb_owner
        with pytest.raises(CorruptError, match="owner"):
            fs.listdir("/tree")


def name_offset(image: Path, path: str, name: bytes) -> int:
    """Byte offset of ``name`` in the directory blocks of ``path``."""
    raw = image.read_bytes()
    bs = geometry(image)["blocksize"]
    for _block, where, count, _u in db_bmap(image, path):
        found = raw.find(name, where, where + count * bs)
        if found >= 0:
            return found
    raise AssertionError(f"{name!r} not in {path}")


@pytest.mark.parametrize("name", ["v5", "v4"])
def test_bad_directory_entries(small_images, name):
    image, _src, _bulk = small_images[name]
    at = name_offset(image, "/dir", b"name-007") - 9  # the entry's inumber
    expectations = [
        ({at + 8: b"\x00"}, "0-byte name"),  # namelen
        ({at + 8: b"\xff"}, "runs past|tag"),  # namelen 255
        ({at: be64(1 << 62)}, "outside"),  # inumber out of range
        ({at + 22: be16(0)}, "tag"),  # the last two bytes of the 24-byte entry
        ({at: be16(0xFFFF) + be16(0)}, "unused entry of 0 bytes"),  # would loop
        ({at: be16(0xFFFF) + be16(4000)}, "unused entry of 4000 bytes"),
    ]
    for edits, match in expectations:
        fs = open_filesystem(patched(image, edits))
        with pytest.raises(CorruptError, match=match):
            fs.listdir("/dir")
        with pytest.raises(CorruptError, match=match):
            fs.stat("/dir/name-007")


def test_bad_shortform_directory(small_images):
    image, _src, _bulk = small_images["v5"]
    _ino, at = inode_at(image, "/boot")
    fork = at + 176
    assert db_format(image, "/boot") == "local"
    fs = open_filesystem(patched(image, {fork: b"\xff"}))  # count 255
    with pytest.raises(CorruptError, match="past di_size"):
        fs.listdir("/boot")
    fs = open_filesystem(patched(image, {at + 0x38: be64(10_000)}))  # di_size
    with pytest.raises(CorruptError, match="do not fit"):
        fs.listdir("/boot")


def test_bad_inodes(small_images):
    image, _src, _bulk = small_images["v5"]
    ino, at = inode_at(image, "/small.txt")
    cases = [
        ({at: b"XX"}, CorruptError, "magic"),
        ({at + 4: b"\x02"}, CorruptError, "version 2"),
        ({at + 0x98: be64(ino + 1)}, CorruptError, "di_ino"),
        ({at + 0x4C: be32(0xFFFFFFFF)}, CorruptError, "do not fit"),  # di_nextents
        ({at + 0x52: b"\xff"}, CorruptError, "di_forkoff"),
        ({at + 0x5: b"\x07"}, CorruptError, "format 7"),
        ({at + 0x38: be64(1 << 63)}, CorruptError, "di_size"),
        ({at + 0x5A: be16(1)}, UnsupportedError, "realtime"),
        ({at + 0x78: be64(0x10)}, CorruptError, "nrext64"),
    ]
    for edits, error, match in cases:
        fs = open_filesystem(patched(image, edits))
        with pytest.raises(error, match=match):
            fs.read_file("/small.txt", 100)
        assert fs.read_file("/boot/grub/grub.cfg", 100).startswith(b"set default")


def test_bad_remote_symlink(small_images):
    image, _src, _bulk = small_images["v5"]
    assert db_format(image, "/slow") == "extents"
    (_block, where, _count, _u), *_ = db_bmap(image, "/slow")
    assert image.read_bytes()[where : where + 4] == b"XSLM"
    fs = open_filesystem(patched(image, {where: b"XXXX"}))
    with pytest.raises(CorruptError, match="magic"):
        fs.read_file("/slow", 10)
    fs = open_filesystem(patched(image, {where + 4: be32(7)}))
    with pytest.raises(CorruptError, match="sl_offset"):
        fs.read_file("/slow", 10)
    ino, at = inode_at(image, "/slow")
    fs = open_filesystem(patched(image, {at + 0x38: be64(5000)}))
    with pytest.raises(CorruptError, match="target of 5000 bytes"):
        fs.read_file("/slow", 10)
    fs = open_filesystem(patched(image, {at + 0x38: be64(2000)}))
    with pytest.raises(CorruptError, match="hold"):
        fs.read_file("/slow", 10)


def test_huge_extent_is_bounded_by_the_filesystem(small_images):
    image, _src, _bulk = small_images["v5"]
    _ino, at = inode_at(image, "/boot/vmlinuz")
    rec = at + 176
    l0, l1 = struct.unpack(">QQ", image.read_bytes()[rec : rec + 16])
    # blockcount 2^21 - 1 from the same start: far past the end of the AG
    fs = open_filesystem(patched(image, {rec + 8: be64(l1 | 0x1FFFFF)}))
    with pytest.raises(CorruptError, match="outside the filesystem"):
        list(fs.extents("/boot/vmlinuz"))


# -- hostile images: random damage ----------------------------------------------------


def damage_regions(image: Path) -> list[tuple[int, int]]:
    """Superblock, AGI, the inodes in use, every directory, bmbt and symlink block."""
    sect, bs, isize = (geometry(image)[k] for k in ("sectsize", "blocksize", "inodesize"))
    regions = [(0, sect), (2 * sect, 3 * sect)]  # the superblock and AG 0's AGI
    paths = ["/", "/boot", "/boot/grub", "/boot/grub/grub.cfg", "/boot/vmlinuz", "/small.txt"]
    paths += ["/dir", "/fast", "/slow", "/loop", "/tree"]
    for path in paths:
        _ino, at = inode_at(image, path)
        regions.append((at, at + isize))
        if path in ("/", "/boot", "/boot/grub", "/dir", "/tree", "/slow"):
            for _block, where, count, _u in db_bmap(image, path):
                regions.append((where, where + count * bs))
    leaf = bmbt_leaf(image, "/tree")
    regions.append((leaf, leaf + bs))
    return regions


#: Each damage overwrites one byte, a u16, u32 or u64, or a value that often means something.
DAMAGE = st.one_of(
    st.binary(min_size=1, max_size=1),
    st.integers(0, 0xFFFF).map(be16),
    st.integers(0, 0xFFFFFFFF).map(be32),
    st.integers(0, (1 << 64) - 1).map(be64),
    st.sampled_from([be32(0), be32(1), be16(0xFFFF), be64(128), be64(1 << 63), b"\x00"]),
)
WALK_PATHS = ("/fast", "/slow", "/loop", "/dir/name-020", "/boot/grub/grub.cfg", "/nothing")
#: The walk of each damaged image stays small: the fixture's bulk directories are large.
walk_some = functools.partial(walk_nodes, paths=WALK_PATHS, nodes=60, reads=4, children=20)


def has_magic(source: ByteSource) -> bool:
    """A whole superblock with the magic (a cut one is no filesystem, as for ext)."""
    return source.size >= 264 and source.pread(0, 4) == b"XFSB"


@pytest.mark.parametrize("name", ["v5", "v4"])
def test_random_damage_gives_data_or_our_errors(small_images, name):
    image, _src, _bulk = small_images[name]
    pristine = MemorySource(image.read_bytes())
    regions = damage_regions(image)

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    # an end past the image keeps it whole: a third of the examples are truncated
    @given(edits=overwrites(regions, DAMAGE), end=st.integers(0, 3 * pristine.size))
    def check(edits: list[tuple[int, bytes]], end: int) -> None:
        source = EditedSource(pristine, edits, end)
        open_and_walk(open_filesystem, source, walk_some, has_magic)

    check()
