"""The EROFS reader, on images made by mkfs.erofs at test time and on committed ones.

Debian 12's mkfs.erofs (erofs-utils 1.5) makes the images here: uncompressed, lz4 and
lz4hc with the layouts it offers. ``fsck.erofs --extract`` (the format's own reader) is
the oracle: every directory listing, file and symlink we read must match what it
extracts. lzma, deflate, zstd, fragments and dedupe need erofs-utils 1.7+: those images
are committed (scripts/make-erofs-fixtures.sh makes them with Debian 13's tools, whose
fsck.erofs checked them) with the sha256 of every file.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import random
import struct
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from bounded import cpu_bounded
from fswalk import (
    GRUB_CFG,
    KERNEL,
    LATIN1_FILE,
    EditedSource,
    MiB,
    assert_extents_match,
    assert_symlinks_resolve,
    assert_tree_matches,
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
from imaging import run

from pygrub.disk import ByteSource, FileSource, MemorySource
from pygrub.errors import CorruptError, LimitError, PygrubError, UnsupportedError
from pygrub.fs import probe
from pygrub.fs.base import NodeType
from pygrub.fs.erofs import (
    CHUNK_BASED,
    COMPRESSED_COMPACT,
    COMPRESSED_FULL,
    FLAT_INLINE,
    FLAT_PLAIN,
    MAGIC,
    ErofsFilesystem,
    Inode,
    grub_guid,
    open_filesystem,
)

FIXTURES = Path(__file__).parent / "fixtures" / "erofs"
SB = 1024
UUID = "c1b9d5a2-f162-11cf-9ece-0020afc76f16"

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
MANY = 300  # entries in /many: several directory blocks


def populate(root: Path) -> Path:
    """A kernel and an initrd of varied data, sizes around the block size, a sparse file,
    a deep directory, a big one, every kind of symlink and a hard link."""
    rng = random.Random(4096)
    files = {
        "boot/grub/grub.cfg": GRUB_CFG,
        KERNEL: text_like(rng, 400_000) + rng.randbytes(120_000) + text_like(rng, 80_003),
        "boot/initrd.img-6.1": rng.randbytes(40_001) + text_like(rng, 200_000),
        "empty": b"",
        "tiny": b"hello, world\n",
        "below": text_like(rng, 4095),
        "exact": rng.randbytes(4096),
        "above": text_like(rng, 4097),
        "zeros": bytes(3 * 4096),
        "a/b/c/d/e/f/g/deep.txt": b"deep\n",
        LATIN1_FILE: b"a latin-1 name\n",
        "h\u00e9llo.txt": b"a UTF-8 name\n",
        "links/f": b"the f file\n",
    }
    write_tree(root, files, SYMLINKS)
    os.link(root / "tiny", root / "tiny-hardlink")
    write_sparse(root / "sparse", 2 * MiB, {MiB: b"middle of nowhere", 2 * MiB - 3: b"end"})
    write_many(root / "many", (f"entry-with-a-rather-long-name-{i:04d}" for i in range(MANY)))
    return root


def mkfs_erofs(src: Path, image: Path, *options: str) -> Path:
    run("mkfs.erofs", "--quiet", "-U", UUID, *options, image, src)
    return image


def open_erofs(source: ByteSource | Path) -> ErofsFilesystem:
    fs = probe(FileSource(str(source)) if isinstance(source, Path) else source)
    assert isinstance(fs, ErofsFilesystem)
    return fs


def extracted(image: Path, tmp: Path) -> Path:
    """The tree fsck.erofs extracts from ``image`` (after checking every file decodes)."""
    out = tmp / "extracted"
    tmp.mkdir(parents=True, exist_ok=True)
    run("fsck.erofs", f"--extract={out}", image)
    return out


# -- the matrix of Debian 12's mkfs.erofs ------------------------------------------------

MATRIX = {
    "plain": (),
    "plain-compact": ("-Eforce-inode-compact",),
    "plain-extended": ("-Eforce-inode-extended",),
    "plain-noinline": ("-Enoinline_data",),
    "chunks-blockmap": ("--chunksize=8192", "-Eforce-inode-blockmap"),
    "chunks-indexes": ("--chunksize=4096", "-Eforce-chunk-indexes"),
    "lz4": ("-zlz4",),
    "lz4hc": ("-zlz4hc,12",),
    "lz4hc-big-pcluster": ("-zlz4hc", "-C65536"),
    "lz4-legacy": ("-zlz4hc", "-Elegacy-compress"),
    "lz4-ztailpacking": ("-zlz4", "-Eztailpacking"),
    "lz4hc-big-ztailpacking": ("-zlz4hc", "-C16384", "-Eztailpacking"),
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return populate(tmp_path_factory.mktemp("erofs") / "src")


@pytest.mark.parametrize("name", list(MATRIX))
def test_reads_what_fsck_erofs_extracts(tmp_path, tree, name):
    image = mkfs_erofs(tree, tmp_path / "fs.img", *MATRIX[name])
    fs = open_erofs(image)
    try:
        assert (fs.kind, fs.block_size) == ("erofs", 4096)
        assert fs.uuid == grub_guid(bytes.fromhex(UUID.replace("-", "")))
        assert fs.label is None
        oracle = extracted(image, tmp_path)
        assert_tree_matches(fs, oracle)
        assert_symlinks_resolve(fs, tree, ("links/up", "links/abs", "links/long"), "links/rel")
        assert fs.read_file("/many/entry-with-a-rather-long-name-0299", 10) == b"299\n"
        layout = fs.inode(fs.resolve(KERNEL)).layout
        compressed = name.startswith("lz4")
        if compressed:
            assert layout == (COMPRESSED_FULL if "legacy" in name else COMPRESSED_COMPACT)
            assert "encoded" in assert_extents_match(fs, KERNEL, tree / KERNEL)
        elif name.startswith("chunks"):
            assert layout == CHUNK_BASED
            # mkfs.erofs 1.5 stores a sparse file's zeros, identical chunks in one place.
            assert set(assert_extents_match(fs, "/sparse", tree / "sparse")) == {"span"}
        else:
            assert layout == (FLAT_PLAIN if "noinline" in name else FLAT_INLINE)
            assert set(assert_extents_match(fs, KERNEL, tree / KERNEL)) == {"span"}
    finally:
        fs.source.close()


def test_uuid_is_spelt_as_grub_prints_a_guid():
    raw = bytes.fromhex("123456789abcdef01122334455667788")
    assert grub_guid(raw) == "78563412-bc9a-f0de-1122-334455667788"


# -- images of erofs-utils 1.8 (committed) -------------------------------------------------


def fixture_manifest() -> dict:
    return json.loads((FIXTURES / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(fixture_manifest()["images"]))
def test_reads_images_of_erofs_utils_1_8(name):
    manifest = fixture_manifest()
    spec, tree = manifest["images"][name], manifest["tree"]
    packed = (FIXTURES / f"{name}.img.xz").read_bytes()
    assert hashlib.sha256(packed).hexdigest() == spec["sha256"]
    fs = open_erofs(MemorySource(lzma.decompress(packed)))
    assert (fs.label, fs.uuid) == (spec["label"], "522b1f6b-3e0d-8e4c-9a7c-2f6e1d0c5b4a")
    for path, entry in tree.items():
        st_ = fs.lstat(path)
        if entry["type"] == "directory":
            assert st_.type is NodeType.DIR, path
            prefix = path.rstrip("/") + "/"
            children = {p[len(prefix) :] for p in tree if p.startswith(prefix) and p != path}
            assert sorted(fs.listdir(path)) == sorted(c for c in children if "/" not in c), path
        elif entry["type"] == "symlink":
            assert fs.readlink_path(path) == entry["target"], path
        else:
            assert (st_.type, st_.size) == (NodeType.FILE, entry["size"]), path
            digest = hashlib.sha256()
            with fs.open(path) as f:
                while piece := f.read(MiB):
                    digest.update(piece)
            assert digest.hexdigest() == entry["sha256"], path
    assert fs.read_file("/vmlinuz", MiB) == fs.read_file("/boot/vmlinuz-6.1", MiB)


def committed_image(name: str) -> ErofsFilesystem:
    return open_erofs(MemorySource(lzma.decompress((FIXTURES / f"{name}.img.xz").read_bytes())))


def sha256_of(fs: ErofsFilesystem, path: str) -> str:
    return hashlib.sha256(fs.read_file(path, MiB)).hexdigest()


def map_header_at(inode: Inode) -> int:
    """Where a compressed inode's z_erofs_map_header is: 8-byte aligned after the inode
    and its xattrs."""
    return -(-inode.tail // 8) * 8


def test_a_second_algorithm_chosen_per_file():
    """-zlz4hc:lzma with a hint (algorithm index 1) for the initrds: mkfs.erofs 1.8 names
    an inode's algorithm in its map header's h_algorithmtype (the low nibble, for HEAD1
    lclusters): lzma (1) for the initrds, whose pclusters decode as MicroLZMA (lz4 would
    not) to the manifest's bytes, lz4 (0) for the kernel."""
    fs = committed_image("lz4hc-lzma-hints")
    tree = fixture_manifest()["tree"]
    assert fs.algorithms == 0b11  # the superblock's available_compr_algs: lz4 and lzma
    for path, algorithm in (("/boot/initrd.img-6.1", 1), ("/boot/vmlinuz-6.1", 0)):
        inode = fs.inode(fs.resolve(path))
        assert inode.layout in (COMPRESSED_FULL, COMPRESSED_COMPACT), path
        h_algorithmtype = fs.source.pread(map_header_at(inode) + 6, 1)[0]
        assert h_algorithmtype == algorithm, path
        pclusters = [e.token for e in fs.node_extents(inode.nid) if e.token is not None]
        assert pclusters and {p.algorithm for p in pclusters} == {algorithm}, path
        assert sha256_of(fs, path) == tree[path]["sha256"], path


def heads_moved_to_head2(image: bytearray, fs: ErofsFilesystem, inode: Inode) -> None:
    """Rewrite a compact-indexed inode whose heads are HEAD1 lclusters of algorithm
    ``a`` (the map header's low nibble) as the kernel's other form of the same file: every
    HEAD1 a HEAD2 (type 3), whose algorithm is the high nibble, and the low nibble 0.

    The packs (erofs_fs.h, z_erofs_map_header and the compacted indexes): 4-byte packs of
    2 entries up to a 32-byte boundary, then COMPACTED_2B packs of 16 entries in 32 bytes,
    then 4-byte packs again; each entry is clusterofs (lclusterbits wide) then its type."""
    header = map_header_at(inode)
    h_advise, h_algorithmtype = struct.unpack_from("<HB", image, header + 4)
    assert h_advise & 0x6 == 0x6  # big pclusters for both head types
    image[header + 6] = (h_algorithmtype & 0xF) << 4
    at, total, lobits = header + 8, -(-inode.size // fs.block_size), 12
    initial = ((32 - at % 32) // 4) & 7
    two_b = (total - initial) // 16 * 16 if h_advise & 1 and initial < total else 0
    first = min(initial, total) if two_b else total
    for count, per_pack in ((first, 2), (two_b, 16), (total - first - two_b, 2)):
        size = 8 if per_pack == 2 else 32
        width = (size - 4) * 8 // per_pack
        for _ in range(-(-count // per_pack)):
            bits = int.from_bytes(image[at : at + size - 4], "little")
            for i in range(per_pack):
                if (bits >> (i * width + lobits)) & 3 == 1:  # HEAD1
                    bits |= 2 << (i * width + lobits)
            image[at : at + size - 4] = bits.to_bytes(size - 4, "little")
            at += size


def test_head2_lclusters_take_the_second_algorithm():
    """Z_EROFS_LCLUSTER_TYPE_HEAD2 heads decode with h_algorithmtype's high nibble. No
    mkfs.erofs writes them (erofs-utils up to 1.9 puts a file's algorithm in the low
    nibble and heads every pcluster with HEAD1, as the hints image shows), so the initrd
    of that image is rewritten into the HEAD2 form (trixie's fsck.erofs extracts the
    rewritten image to the same bytes): it must read as before, its pclusters lzma; with
    the nibbles left as they were, HEAD2 names lz4 and the bytes cannot decode as lzma."""
    packed = lzma.decompress((FIXTURES / "lz4hc-lzma-hints.img.xz").read_bytes())
    fs = open_erofs(MemorySource(packed))
    tree = fixture_manifest()["tree"]
    inode = fs.inode(fs.resolve("/boot/initrd.img-6.1"))
    assert inode.layout == COMPRESSED_COMPACT
    image = bytearray(packed)
    heads_moved_to_head2(image, fs, inode)
    moved = open_erofs(MemorySource(bytes(image)))
    pclusters = [e.token for e in moved.node_extents(inode.nid) if e.token is not None]
    assert len(pclusters) > 4 and {p.algorithm for p in pclusters} == {1}
    assert sha256_of(moved, "/boot/initrd.img-6.1") == tree["/boot/initrd.img-6.1"]["sha256"]
    assert sha256_of(moved, "/boot/vmlinuz-6.1") == tree["/boot/vmlinuz-6.1"]["sha256"]
    image[map_header_at(inode) + 6] = 0x01  # HEAD2 now names algorithm 0: lz4
    wrong = open_erofs(MemorySource(bytes(image)))
    assert {e.token.algorithm for e in wrong.node_extents(inode.nid) if e.token} == {0}
    with pytest.raises(CorruptError):
        wrong.read_file("/boot/initrd.img-6.1", MiB)


@pytest.mark.parametrize("name", ["lz4hc-dedupe", "lz4hc-dedupe-fragments"])
def test_partial_ref_extents(name):
    """The .bak initrd holds 30000 bytes of the initrd's start at byte 10000: -Ededupe
    made its extent there point at the initrd's first pcluster with Z_EROFS_LI_PARTIAL_REF
    (it decodes to 38466 bytes, 30000 used), and cut its first extent short, partial too.
    The flags are read from the full lcluster indexes as they are on disk, then the
    reader's extents and the file's bytes are checked against them and the manifest."""
    fs = committed_image(name)
    tree = fixture_manifest()["tree"]
    bak, initrd = (fs.inode(fs.resolve(f"/boot/initrd.img-6.1{s}")) for s in (".bak", ""))
    assert (bak.layout, initrd.layout) == (COMPRESSED_FULL, COMPRESSED_FULL)

    def lcluster_indexes(inode: Inode) -> list[tuple[int, int, int]]:
        """(di_advise, di_clusterofs, di_blkaddr) of each lcluster: 8 bytes each, after
        the map header and 8 reserved bytes."""
        at, count = map_header_at(inode) + 16, -(-inode.size // fs.block_size)
        return list(struct.iter_unpack("<HHI", fs.source.pread(at, 8 * count)))

    partial = [
        (lcn, clusterofs, blkaddr)
        for lcn, (advise, clusterofs, blkaddr) in enumerate(lcluster_indexes(bak))
        if advise & 3 != 2 and advise & 0x8000  # a head (not NONHEAD) with PARTIAL_REF
    ]
    initrd_first_block = lcluster_indexes(initrd)[0][2]
    assert [p[:2] for p in partial] == [(0, 0), (10_000 // 4096, 10_000 % 4096)]
    assert partial[1][2] == initrd_first_block

    extents = list(fs.node_extents(bak.nid))
    assert [(e.file_offset, e.length, e.token.partial) for e in extents[:2]] == [
        (0, 10_000, True),
        (10_000, 30_000, True),
    ]
    assert extents[1].token.position == initrd_first_block * fs.block_size
    first = next(fs.node_extents(initrd.nid))
    assert (first.token.position, first.length) == (extents[1].token.position, 38_466)
    data = fs.read_file("/boot/initrd.img-6.1.bak", MiB)
    assert data[10_000:40_000] == fs.read_file("/boot/initrd.img-6.1", MiB)[:30_000]
    assert hashlib.sha256(data).hexdigest() == tree["/boot/initrd.img-6.1.bak"]["sha256"]


def test_erofs_module_is_imported_only_for_erofs():
    code = (
        "import sys\n"
        "from pygrub.disk import MemorySource\n"
        "from pygrub.fs import probe\n"
        "probe(MemorySource(bytes(70000)))\n"
        "assert 'pygrub.fs.erofs' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_lz4_package_is_named(tmp_path, monkeypatch, tree):
    image = mkfs_erofs(tree / "boot/grub", tmp_path / "fs.img", "-zlz4")
    monkeypatch.setitem(sys.modules, "lz4", None)
    monkeypatch.setitem(sys.modules, "lz4.block", None)
    with pytest.raises(UnsupportedError, match="Python package lz4"):
        open_filesystem(FileSource(str(image)))


# -- hostile images: targeted damage ------------------------------------------------------


@pytest.fixture(scope="module")
def small_images(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Small images to damage: name -> (image, source tree)."""
    tmp = tmp_path_factory.mktemp("small")
    src = tmp / "src"
    rng = random.Random(7)
    (src / "boot/grub").mkdir(parents=True)
    (src / "boot/grub/grub.cfg").write_bytes(b"set default=0\nmenuentry 'Linux' {}\n")
    (src / "boot/vmlinuz").write_bytes(text_like(rng, 30_000) + rng.randbytes(9000))
    (src / "small.txt").write_bytes(b"small\n")
    (src / "dir").mkdir()
    for index in range(40):
        (src / "dir" / f"name-{index:03d}").write_bytes(b"%d" % index)
    os.symlink("boot/vmlinuz", src / "link")
    os.symlink("loop", src / "loop")
    images = {}
    for name, options in (
        ("plain", ()),
        ("lz4", ("-zlz4hc", "-C16384", "-Eztailpacking")),
        ("legacy", ("-zlz4", "-Elegacy-compress")),
        ("chunks", ("--chunksize=4096", "-Eforce-chunk-indexes")),
    ):
        images[name] = (mkfs_erofs(src, tmp / f"{name}.img", *options), src)
    return images


def inode_at(fs: ErofsFilesystem, path: str) -> int:
    return fs.meta_start + fs.resolve(path, follow_last=False) * 32


def test_small_images_are_read_correctly(small_images, tmp_path):
    for name, (image, _src) in small_images.items():
        fs = open_erofs(image)
        assert_tree_matches(fs, extracted(image, tmp_path / name))
        fs.source.close()


@pytest.mark.parametrize(
    "offset,value,error,match",
    [
        (SB + 12, b"\x08", CorruptError, "blkszbits 8"),
        (SB + 12, b"\x11", CorruptError, "blkszbits 17"),
        (SB + 80, struct.pack("<I", 0x80), UnsupportedError, "48bit"),
        (SB + 80, struct.pack("<I", 0x100), UnsupportedError, "metabox"),
        (SB + 80, struct.pack("<I", 0x400), UnsupportedError, "0x400"),
        (SB + 86, struct.pack("<H", 1), UnsupportedError, "extra devices"),
        (SB + 90, b"\x01", UnsupportedError, "directory blocks"),
        (SB + 14, struct.pack("<H", 0xFFFF), CorruptError, "nid 65535"),
        (SB + 40, struct.pack("<I", 0xFFFF_FFFF), CorruptError, "past the end"),
    ],
)
def test_bad_superblock(small_images, offset, value, error, match):
    image, _src = small_images["plain"]
    with pytest.raises(error, match=match):
        open_filesystem(patched(image, {offset: value}))


def test_not_erofs_and_truncated(small_images):
    image, _src = small_images["plain"]
    assert open_filesystem(MemorySource(bytes(8192))) is None
    assert open_filesystem(MemorySource(image.read_bytes()[:1100])) is None
    with pytest.raises(CorruptError):
        fs = open_filesystem(MemorySource(image.read_bytes()[:4096]))
        fs.read_file("/boot/vmlinuz", MiB)


def test_root_must_be_a_directory(small_images):
    image, _src = small_images["plain"]
    fs = open_erofs(image)
    nid = fs.resolve("/small.txt")
    with pytest.raises(CorruptError, match="root nid"):
        open_filesystem(patched(image, {SB + 14: struct.pack("<H", nid)}))


def test_block_address_past_the_volume(small_images):
    image, _src = small_images["plain"]
    fs = open_erofs(image)
    at = inode_at(fs, "/boot/vmlinuz")
    assert fs.inode(fs.resolve("/boot/vmlinuz")).layout in (FLAT_PLAIN, FLAT_INLINE)
    hostile = open_erofs(patched(image, {at + 16: struct.pack("<I", 0x0FFF_FFFF)}))
    with pytest.raises(CorruptError, match="past the end of the volume"):
        hostile.read_file("/boot/vmlinuz", MiB)


def test_huge_sizes_cost_little(small_images):
    """A flat file of 2^32-1 bytes runs off the volume; a compressed one claiming 2^60
    bytes (an extended inode would be needed: the compact one says 4 GiB) runs out of
    index entries or decodes past the extent bound, and finding that is quick."""
    for name, path in (("plain", "/boot/vmlinuz"), ("lz4", "/boot/vmlinuz")):
        image, _src = small_images[name]
        fs = open_erofs(image)
        at = inode_at(fs, path)
        hostile = open_erofs(patched(image, {at + 8: struct.pack("<I", 0xFFFF_FFFF)}))
        with cpu_bounded(5), pytest.raises(PygrubError):
            for _extent in hostile.extents(path):
                pass
            hostile.read_file(path, 64 * MiB)
        fs.source.close()


def test_compressed_cluster_claiming_a_huge_output(small_images):
    """Every lcluster after the first turned NONHEAD: one extent of the whole (patched,
    4 GiB) file, refused at the 12 MiB bound on what a pcluster decodes to."""
    image, _src = small_images["legacy"]
    fs = open_erofs(image)
    inode = fs.inode(fs.resolve("/boot/vmlinuz"))
    assert inode.layout == COMPRESSED_FULL
    index = -(-inode.tail // 8) * 8 + 16
    edits = {inode_at(fs, "/boot/vmlinuz") + 8: struct.pack("<I", 0xFFFF_FFFF)}
    total = -(-inode.size // 4096)
    for lcn in range(1, total):
        edits[index + 8 * lcn] = struct.pack("<HHHH", 2, 0, lcn, 1)
    hostile = open_erofs(patched(image, edits))
    with pytest.raises((LimitError, CorruptError)):
        hostile.read_file("/boot/vmlinuz", 64 * MiB)


def test_a_pcluster_of_garbage_is_one_error(small_images):
    image, _src = small_images["lz4"]
    fs = open_erofs(image)
    extents = [e for e in fs.node_extents(fs.resolve("/boot/vmlinuz")) if e.token is not None]
    token = extents[0].token
    hostile = open_erofs(patched(image, {token.position: os.urandom(token.disk_size)}))
    with pytest.raises(CorruptError, match="pcluster at byte"):
        hostile.read_file("/boot/vmlinuz", MiB)


def test_looping_directory_is_bounded(small_images):
    """/dir's entries all point back at the root: listing works, walking is bounded."""
    image, _src = small_images["plain"]
    fs = open_erofs(image)
    inode = fs.inode(fs.resolve("/dir"))
    data_at = inode.i_u * fs.block_size if inode.layout == FLAT_PLAIN else inode.tail
    count = struct.unpack_from("<H", image.read_bytes(), data_at + 8)[0] // 12
    edits = {data_at + 12 * i: struct.pack("<Q", fs.root_nid) for i in range(count)}
    hostile = open_erofs(patched(image, edits))
    assert "dir" in hostile.listdir("/dir/name-001")  # the root again
    with pytest.raises(PygrubError):
        hostile.stat("/dir/" * 3000 + "x")


def test_bad_dirent_offsets(small_images):
    image, _src = small_images["plain"]
    fs = open_erofs(image)
    inode = fs.inode(fs.resolve("/dir"))
    data_at = inode.i_u * fs.block_size if inode.layout == FLAT_PLAIN else inode.tail
    for value in (0, 5, 13, 0xFFFF):
        hostile = open_erofs(patched(image, {data_at + 8: struct.pack("<H", value)}))
        with pytest.raises(CorruptError, match="nameoff"):
            hostile.listdir("/dir")
    hostile = open_erofs(patched(image, {data_at + 12 + 8: struct.pack("<H", 0xFFF0)}))
    with pytest.raises(CorruptError, match="name of dirent"):
        hostile.listdir("/dir")


# -- hostile images: random damage --------------------------------------------------------

DAMAGE = st.one_of(
    st.binary(min_size=1, max_size=1),
    st.integers(0, 0xFFFF).map(lambda v: struct.pack("<H", v)),
    st.integers(0, 0xFFFFFFFF).map(lambda v: struct.pack("<I", v)),
    st.integers(0, 2**64 - 1).map(lambda v: struct.pack("<Q", v)),
    st.sampled_from([b"\0\0\0\0", b"\xff\xff\xff\xff", b"\x00\x80", b"\x02\x00", b"\x03\x08"]),
)
WALK_PATHS = ("/link", "/loop", "/dir/name-020", "/boot/grub/grub.cfg", "/nothing")


def has_magic(source: ByteSource) -> bool:
    return source.pread(SB, 4) == MAGIC


@pytest.mark.parametrize("name", ["plain", "lz4", "legacy", "chunks"])
def test_random_damage_gives_data_or_our_errors(small_images, name):
    image, _src = small_images[name]
    pristine = MemorySource(image.read_bytes())
    fs = open_erofs(image)
    meta = fs.meta_start
    fs.source.close()
    regions = [(SB, SB + 128), (meta, min(pristine.size, meta + 8192))]

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
