"""The SquashFS reader, on images made by mksquashfs at test time.

The source tree is the truth for file contents and symlink targets; ``unsquashfs -lls``
(the format's own reader) is the oracle for listings, types, sizes and permissions.
Every compressor mksquashfs offers is read, with block sizes from 4 KiB to 1 MiB, with
and without fragments, and with everything stored uncompressed.
"""

from __future__ import annotations

import lzma
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import make_partitioned, run

from pygrub.disk import FileSource, MemorySource
from pygrub.errors import CorruptError, LimitError, NotFoundError, PygrubError, UnsupportedError
from pygrub.fs import probe
from pygrub.fs.base import FileReader, Filesystem, NodeType, checked_extents
from pygrub.fs.squashfs import (
    LREG_TYPE,
    SquashFilesystem,
    Undecodable,
    inflate_zlib,
    lz4_decoder,
    lzma_decoder,
    lzo1x_decompress,
    open_filesystem,
    zstd_decoder,
)

MiB = 1 << 20
KERNEL = "boot/vmlinuz-6.1"
LATIN1_FILE = os.fsdecode(b"caf\xe9.txt")
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


def text_like(rng: random.Random, size: int) -> bytes:
    """Bytes that compress well but not trivially (words from a small vocabulary)."""
    words = [
        bytes(rng.choice(b"etaoinshrdlu") for _ in range(rng.randint(2, 9))) for _ in range(200)
    ]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(64)) + b"\n"
    return bytes(out[:size])


def write_sparse(path: Path, size: int, pieces: dict[int, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in pieces.items():
            f.seek(offset)
            f.write(data)


def populate(root: Path, bs: int) -> Path:
    """Sizes around the block size, compressible and random data, sparse blocks, deep and
    odd names, every kind of symlink, a hard link and a directory big enough for an index."""
    rng = random.Random(bs)
    files = {
        "boot/grub/grub.cfg": b"set default=0\nmenuentry 'Linux' {\n linux /boot/vmlinuz-6.1\n}\n",
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
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.chmod(root / "tiny", 0o600)
    (root / "emptydir").mkdir()
    for rel, target in SYMLINKS.items():
        os.symlink(target, root / rel)
    os.link(root / "tiny", root / "tiny-hardlink")
    write_sparse(root / "sparse", 8 * MiB, {4 * MiB: b"middle of nowhere", 8 * MiB - 3: b"end"})
    (root / "many").mkdir()
    for index in range(MANY):
        (root / "many" / f"entry-with-a-rather-long-name-{index:04d}").write_bytes(b"%d\n" % index)
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


def assert_extents_match(fs: Filesystem, rel: str, host: Path) -> list[str]:
    """extents() covers the file in order with the right bytes; returns the kinds seen."""
    want = host.read_bytes()
    pos = 0
    kinds = []
    for offset, length, where in fs.extents(rel):
        assert offset == pos, rel
        expected = want[offset : offset + length]
        if where == "hole":
            assert expected == bytes(length), f"{rel}: hole over data at {offset}"
            kinds.append("hole")
        elif where == "encoded":
            with fs.open(rel) as f:
                f.seek(offset)
                assert f.read(length) == expected, rel
            kinds.append("encoded")
        else:
            fd, host_offset = where
            assert os.pread(fd, length, host_offset) == expected, rel
            kinds.append("span")
        pos += length
    assert pos == len(want), rel
    return kinds


def assert_tree_matches(fs: Filesystem, image: Path, src: Path) -> None:
    assert our_listing(fs) == unsquashfs_listing(image)
    for dirpath, _dirs, names in os.walk(src):
        for name in names:
            host = Path(dirpath) / name
            rel = "/" + host.relative_to(src).as_posix()
            if host.is_symlink():
                assert fs.readlink_path(rel) == os.readlink(host)
                continue
            data = host.read_bytes()
            with fs.open(rel) as f:
                assert f.size == len(data), rel
                assert f.read() == data, rel
                assert f.read(10) == b""
                f.seek(len(data) // 3)
                assert f.read(70_000) == data[len(data) // 3 : len(data) // 3 + 70_000], rel
            assert_extents_match(fs, rel, host)


def assert_symlinks_resolve(fs: Filesystem, src: Path) -> None:
    kernel = (src / KERNEL).read_bytes()
    for rel in ("links/up", "links/abs", "links/long"):
        assert fs.read_file(rel, len(kernel) + 1) == kernel, rel
    assert fs.read_file("links/rel", 100) == b"the f file\n"
    assert (
        fs.read_file("links/bootdir/grub/grub.cfg", 1000)
        == (src / "boot/grub/grub.cfg").read_bytes()
    )
    with pytest.raises(LimitError):
        fs.open("links/loop1")
    with pytest.raises(NotFoundError):
        fs.open("links/dangling")


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
        assert_symlinks_resolve(fs, src)
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


# -- the decoders on their own ----------------------------------------------------------


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
        (lzo_stream(bytes([19]), b"ab", bytes([32 | 8, 4, 0])), "past"),  # 12 bytes, limit 11
        (lzo_stream(bytes([19]), b"ab", bytes([32 | 1, 3 << 2, 0])), "distance"),
        (lzo_stream(bytes([22]), b"hello") + b"x", "end of stream"),
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
@settings(max_examples=300, deadline=None)
def test_lzo_hostile_input_is_bounded(data, limit):
    try:
        out = lzo1x_decompress(data, limit)
    except Undecodable:
        return
    assert len(out) <= limit


def decoders() -> dict[str, Callable[[bytes, int], bytes]]:
    return {
        "gzip": inflate_zlib,
        "xz": lzma_decoder("xz"),
        "lzma": lzma_decoder("lzma"),
        "lz4": lz4_decoder(),
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


@pytest.mark.parametrize("name", ["gzip", "xz", "lzma", "lz4", "zstd"])
def test_decoders_stop_at_the_limit(name):
    decode, pack = decoders()[name], compressors()[name]
    limit = 8192
    exact = b"squash" * (limit // 6) + b"sq"
    assert decode(pack(exact), limit) == exact
    started = time.monotonic()
    with pytest.raises(Undecodable):
        decode(pack(bytes(4 * MiB)), limit)  # a bomb: 4 MiB of zeros
    assert time.monotonic() - started < 5
    with pytest.raises(Undecodable):
        decode(pack(exact)[:-7], limit)
    with pytest.raises(Undecodable):
        decode(b"\xff" * 50, limit)


def test_zstd_frame_without_content_size_is_bounded():
    import zstandard

    frame = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(4 * MiB))
    with pytest.raises(Undecodable):
        zstd_decoder("test")(frame, 8192)


@pytest.mark.parametrize("package,comp", [("lz4", "lz4"), ("zstandard", "zstd")])
def test_missing_package_is_named(tmp_path, monkeypatch, package, comp):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data\n")
    image = tmp_path / "fs.img"
    run("mksquashfs", src, image, "-noappend", "-quiet", "-no-progress", "-comp", comp)
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.setitem(sys.modules, "lz4.block", None)
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


def patched(image: Path, edits: dict[int, bytes]) -> MemorySource:
    data = bytearray(image.read_bytes())
    for offset, value in edits.items():
        data[offset : offset + len(value)] = value
    return MemorySource(bytes(data))


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


class Timeout(Exception):
    pass


def on_alarm(_signum: int, _frame: object) -> None:
    raise Timeout("the walk took too long")


def walk_everything(fs: SquashFilesystem) -> None:
    """Visit every node once through the driver's primitives, then a few paths."""

    def attempt(action: Callable[..., object], *args: object) -> object:
        try:
            return action(*args)
        except PygrubError:
            return None

    def read_file(node: int, size: int) -> None:
        with FileReader(fs, node, size) as f:
            for _ in range(16):
                if not f.read(64 * 1024):
                    break
        for _extent in islice(checked_extents(fs, node, size), 10_000):
            pass

    seen: set[int] = set()
    pending = [fs.root()]
    while pending and len(seen) < 500:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        st_ = attempt(fs.node_stat, node)
        if st_ is None:
            continue
        if st_.type is NodeType.DIR:
            entries = attempt(lambda n: list(islice(fs.dir_entries(n), 5000)), node) or []
            pending.extend(child for _name, child in entries)
        elif st_.type is NodeType.FILE:
            attempt(read_file, node, st_.size)
        elif st_.type is NodeType.SYMLINK:
            attempt(fs.readlink, node)
    for path in ("/link", "/loop", "/dir/name-020", "/boot/grub/grub.cfg", "/nothing"):
        attempt(fs.read_file, path, 100)


@st.composite
def damage(draw: Callable, regions: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    edits = []
    for _ in range(draw(st.integers(1, 6))):
        start, end = draw(st.sampled_from(regions))
        offset = draw(st.integers(start, end - 1))
        value = draw(
            st.one_of(
                st.binary(min_size=1, max_size=1),
                st.integers(0, 0xFFFF).map(lambda v: struct.pack("<H", v)),
                st.integers(0, 0xFFFFFFFF).map(lambda v: struct.pack("<I", v)),
                st.integers(0, 2**64 - 1).map(lambda v: struct.pack("<Q", v)),
                st.sampled_from(
                    [
                        b"\0\0\0\0",
                        b"\xff\xff\xff\xff",
                        b"\x00\x80",
                        b"\xff\x7f",
                        b"\x00\x00\x00\x01",
                    ]
                ),
            )
        )
        edits.append((offset, value))
    return edits


@pytest.mark.parametrize("name", ["gzip", "plain", "lzo"])
def test_random_damage_gives_data_or_our_errors(small_images, name):
    image, _src = small_images[name]
    pristine = image.read_bytes()
    sb = superblock(image)
    regions = [(0, 96), (sb["inode_table"], sb["bytes_used"])]
    if name == "plain":
        regions.append((96, sb["inode_table"]))  # the stored data blocks too

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(edits=damage(regions))
    def check(edits: list[tuple[int, bytes]]) -> None:
        data = bytearray(pristine)
        for offset, value in edits:
            data[offset : offset + len(value)] = value
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 10)
        try:
            try:
                fs = open_filesystem(MemorySource(bytes(data)))
            except PygrubError:
                return
            if fs is None:
                assert data[:4] != b"hsqs"
                return
            walk_everything(fs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    check()
