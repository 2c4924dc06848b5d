"""The ReiserFS reader, on committed images that a Linux kernel populated.

No tool writes files into a ReiserFS image, so scripts/make-reiserfs-fixtures.sh had
Debian's kernel do it in a QEMU guest and read every file back (the kernel is the oracle
there); tests/fixtures/reiserfs/manifest.json holds what the kernel read. Here every path
of every image is compared with that manifest, directory items with what debugreiserfs
(reiserfsprogs, a second reader of the format) prints, and empty 3.5-format filesystems
come from mkreiserfs at test time (Linux 6.1 will not populate them).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import time
from functools import partial
from itertools import islice
from pathlib import Path

import pytest
from fswalk import (
    EditedSource,
    assert_manifest_matches,
    edited,
    file_sha256,
    open_and_walk,
    overwrites,
    unpacked_fixture,
    walk_nodes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import run

from pygrub.disk import FileSource, MemorySource, SliceSource
from pygrub.errors import CorruptError, LimitError, NotFoundError
from pygrub.fs import probe
from pygrub.fs.base import NodeType
from pygrub.fs.reiserfs import ReiserFilesystem, open_filesystem

FIXTURES = Path(__file__).parent / "fixtures" / "reiserfs"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
IMAGES = sorted(MANIFEST["images"])
MiB = 1 << 20
SB = 65536
KERNEL = "/boot/vmlinuz-6.1"
#: Made by the kernel at mount time for extended attributes; not in the source tree.
PRIVATE_ROOT = ".reiserfs_priv"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("reiserfs")
    out = {}
    for name in IMAGES:
        out[name] = unpacked_fixture(FIXTURES / name, MANIFEST["images"][name], tmp)
    return out


def open_reiser(source: Path | bytes) -> ReiserFilesystem:
    fs = probe(MemorySource(source) if isinstance(source, bytes) else FileSource(str(source)))
    assert isinstance(fs, ReiserFilesystem)
    return fs


# -- the committed images, against the manifest ---------------------------------------


@pytest.mark.parametrize("name", IMAGES)
def test_image_reads_as_the_kernel_wrote_it(images, name):
    fs = open_reiser(images[name])
    assert fs.kind == "reiserfs" and fs.format == "3.6"
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", fs.uuid)
    assert fs.label is None
    assert_manifest_matches(fs, MANIFEST["tree"], extra_in_root=(PRIVATE_ROOT,), mode=0o644)
    fs.source.close()


@pytest.mark.parametrize("name", IMAGES)
def test_symlinks_resolve(images, name):
    fs = open_reiser(images[name])
    kernel = MANIFEST["tree"][KERNEL]
    for link in ("kernel", "abs-kernel", "long200", "long899"):
        data = fs.read_file(f"/links/{link}", kernel["size"] + 1)
        assert hashlib.sha256(data).hexdigest() == kernel["sha256"], link
    assert fs.read_file("/links/s1", 100) == b"the f file\n"
    assert fs.read_file("/links/bootdir/grub/grub.cfg", 100).startswith(b"set default=0")
    with pytest.raises(LimitError):
        fs.open("/links/loop1")
    with pytest.raises(NotFoundError):
        fs.open("/links/dangling")
    fs.source.close()


def body_items(fs: ReiserFilesystem, path: str) -> list[tuple[int, int]]:
    """(key offset, item type) of a file's body items."""
    return [(item.key[2], item.key[3]) for item, _body in fs._object_items(fs.resolve(path), 1)]


def test_tails_holes_and_many_items(images):
    # The fixtures hold each kind of body, read correctly by the manifest test: direct
    # items alone (one padded past the end of the file), indirect items alone, indirect
    # items then a tail, a tail split over two leaves, holes, and indirect items in many
    # leaves.
    direct, indirect = 2, 1
    fs = open_reiser(images["reiserfs-3.6-tea-4k.img.xz"])
    assert body_items(fs, "/tiny") == [(1, direct)]
    assert body_items(fs, "/exact") == [(1, indirect)]
    assert body_items(fs, "/two-and-tail") == [(1, indirect), (8193, direct)]
    assert body_items(fs, "/above") == [(1, indirect), (4097, direct)]
    tails = [item for item, _body in fs._object_items(fs.resolve("/random"), 1)]
    assert [item.key[3] for item in tails] == [direct, direct]
    assert len({item.offset // fs.block_size for item in tails}) == 2
    assert any(w == "hole" for _o, _n, w in fs.extents("/sparse"))
    fs = open_reiser(images["reiserfs-3.6-rupasov-1k.img.xz"])
    assert fs.root_level == 3
    leaves = {item.offset // fs.block_size for item, _ in fs._object_items(fs.resolve("/big"), 1)}
    assert len(leaves) > 5
    fs.source.close()


# -- debugreiserfs, the independent reader --------------------------------------------

_DIR_ITEM = re.compile(rb"^\|\s*\d+\|(\d+) (\d+) 0x[0-9a-f]+ DIR \(3\).*\|$")
_ENTRY = re.compile(rb'^\s*\d+: "(.*)"\(\s*(\d+)\)\s+\[(\d+) (\d+)\].*state (\d+)')


def debugreiserfs_entries(
    image: Path,
) -> dict[tuple[int, int], list[tuple[bytes, tuple[int, int]]]]:
    """Every directory's visible entries as debugreiserfs -d prints its leaves (it also
    prints stale item heads from a leaf's free space, marked DELETED: not those)."""
    out = run("debugreiserfs", "-d", image)
    entries: dict[tuple[int, int], list[tuple[bytes, tuple[int, int]]]] = {}
    current = None
    for line in out.splitlines():
        m = _DIR_ITEM.match(line)
        if m:
            current = entries.setdefault((int(m[1]), int(m[2])), [])
            continue
        if line.startswith(b"---"):
            current = None
            continue
        m = _ENTRY.match(line)
        if m and current is not None and int(m[5]) & 4:
            name = m[1][: int(m[2])]
            if name not in (b".", b".."):
                current.append((name, (int(m[3]), int(m[4]))))
    return entries


@pytest.mark.parametrize("name", IMAGES)
def test_directories_match_debugreiserfs(images, name):
    fs = open_reiser(images[name])
    oracle = debugreiserfs_entries(images[name])
    checked = 0
    for path, entry in MANIFEST["tree"].items():
        if entry["type"] != "directory":
            continue
        obj = fs.resolve(path)
        assert list(fs.raw_entries(obj)) == oracle[obj], path
        checked += 1
    assert checked > 10 and len(oracle[fs.resolve("/d1000")]) == 1000
    out = run("debugreiserfs", images[name]).decode()
    assert f"Root block: {fs.root_block}\n" in out
    assert f"Tree height: {fs.root_level + 1}\n" in out
    assert f"Blocksize: {fs.block_size}\n" in out
    fs.source.close()


# -- filesystems mkreiserfs makes at test time ----------------------------------------


def mkreiserfs(path: Path, *options: str, size_mb: int = 40) -> bytes:
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(size_mb * MiB)
    run("mkreiserfs", "-f", "-f", "-q", *options, path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "options,version,uuid,label",
    [
        # mkreiserfs gives 3.5 neither a UUID nor a label; -s makes a "non-standard journal"
        (("--format", "3.5"), "3.5", None, None),
        (("--format", "3.5", "-s", "513"), "3.5", None, None),
        (
            ("-u", "0b7d3c1e-5a4f-4e2b-9c8d-7e6f5a4b3c2d", "-l", "BOOTFS", "-b", "1024"),
            "3.6",
            "0b7d3c1e-5a4f-4e2b-9c8d-7e6f5a4b3c2d",
            "BOOTFS",
        ),
    ],
)
def test_empty_filesystems(tmp_path, options, version, uuid, label):
    fs = open_reiser(mkreiserfs(tmp_path / "fs.img", *options))
    assert fs.format == version
    assert (fs.uuid, fs.label) == (uuid, label)
    assert fs.listdir("/") == []
    assert fs.stat("/").type is NodeType.DIR and fs.stat("/").mode == 0o755
    with pytest.raises(NotFoundError):
        fs.stat("/boot")


def test_old_superblock_at_8k(tmp_path):
    # The first 3.5 filesystems kept the superblock at 8 KiB; blocks count from the
    # start of the volume either way, so moving it changes nothing else.
    data = bytearray(mkreiserfs(tmp_path / "fs.img", "--format", "3.5"))
    data[8192 : 8192 + 204] = data[SB : SB + 204]
    data[SB : SB + 204] = bytes(204)
    fs = open_reiser(bytes(data))
    assert fs.sb_offset == 8192 and fs.format == "3.5" and fs.uuid is None
    assert fs.listdir("/") == []
    data[8192 + 52 : 8192 + 62] = b"ReIsEr2Fs\0"  # only 3.5 ever lived there
    assert open_filesystem(MemorySource(bytes(data))) is None


def test_in_a_partition(images):
    data = bytes(1 * MiB) + images["reiserfs-3.6-tea-4k.img.xz"].read_bytes()
    fs = probe(SliceSource(MemorySource(data), MiB, len(data) - MiB))
    assert isinstance(fs, ReiserFilesystem)
    assert fs.read_file("/tiny", 100) == b"hello, world\n"


# -- 3.5-format items in a 3.6 tree ----------------------------------------------------


def item_head_offset(fs: ReiserFilesystem, obj: tuple[int, int], kind: int) -> tuple[int, int]:
    """(byte offset of the item head, of the body) of an object's first item of ``kind``."""
    for item, _body in fs._object_items(obj, 0):
        if item.key[3] == kind:
            block = item.offset // fs.block_size
            leaf = fs._nodes[block]
            index = leaf.items.index(item)
            return block * fs.block_size + 24 + 24 * index, item.offset
    raise AssertionError(f"no item of type {kind}")


def test_version_1_stat_data_and_keys(images):
    # Rewrite a file's v2 items as 3.5 wrote them: a 32-byte stat_data_v1 and keys
    # whose type is a k_uniqueness (0 stat data, 0xfffffffe indirect, 0xffffffff direct).
    data = bytearray(images["reiserfs-3.6-r5-4k.img.xz"].read_bytes())
    fs = open_reiser(bytes(data))
    for path, kind, uniqueness in (("/tiny", 2, 0xFFFFFFFF), ("/exact", 1, 0xFFFFFFFE)):
        obj = fs.resolve(path)
        head, body = item_head_offset(fs, obj, 0)
        size = fs.stat(path).size
        data[head + 8 : head + 16] = struct.pack("<II", 0, 0)
        data[head + 18 : head + 20] = struct.pack("<H", 32)
        data[head + 22 : head + 24] = struct.pack("<H", 0)
        data[body : body + 32] = struct.pack("<HHHHIIIIII", 0o100644, 1, 0, 0, size, 0, 0, 0, 1, 1)
        head, _body = item_head_offset(fs, obj, kind)
        data[head + 8 : head + 16] = struct.pack("<II", 1, uniqueness)
        data[head + 22 : head + 24] = struct.pack("<H", 0)
    old = open_reiser(bytes(data))
    for path in ("/tiny", "/exact"):
        entry = MANIFEST["tree"][path]
        assert old.stat(path).size == entry["size"]
        assert file_sha256(old, path, entry["size"]) == entry["sha256"]


# -- hostile images: targeted damage --------------------------------------------------


@pytest.fixture(scope="module")
def pristine(images) -> bytes:
    return images["reiserfs-3.6-r5-4k.img.xz"].read_bytes()


@pytest.mark.parametrize(
    "offset,value,match",
    [
        (44, struct.pack("<H", 3000), "s_blocksize"),
        (44, struct.pack("<H", 256), "s_blocksize"),
        (0, struct.pack("<I", 0xFFFFFFFF), "do not fit"),
        (0, struct.pack("<I", 0), "do not fit"),
        (8, struct.pack("<I", 0), "s_root_block"),
        (8, struct.pack("<I", 1 << 30), "s_root_block"),
        (68, struct.pack("<H", 1), "s_tree_height"),
        (68, struct.pack("<H", 60000), "s_tree_height"),
    ],
)
def test_absurd_superblock(pristine, offset, value, match):
    with pytest.raises(CorruptError, match=match):
        open_filesystem(MemorySource(edited(pristine, {SB + offset: value})))


def test_not_reiserfs_and_truncated(pristine):
    assert open_filesystem(MemorySource(bytes(128 * 1024))) is None
    assert open_filesystem(MemorySource(pristine[: SB + 60])) is None
    with pytest.raises(CorruptError, match="do not fit"):
        open_filesystem(MemorySource(pristine[: 4 * MiB]))


def root_node(fs: ReiserFilesystem) -> int:
    return fs.root_block * fs.block_size


def test_tree_height_that_lies(pristine):
    fs = open_reiser(pristine)
    height = fs.root_level + 1
    for wrong in (height - 1, height + 1):
        fs = open_filesystem(MemorySource(edited(pristine, {SB + 68: struct.pack("<H", wrong)})))
        with pytest.raises(CorruptError, match="level"):
            fs.listdir("/")


def test_child_pointing_at_its_parent(pristine):
    fs = open_reiser(pristine)
    root = root_node(fs)
    (nr_items,) = struct.unpack_from("<H", pristine, root + 2)
    first_child = root + 24 + 16 * nr_items
    fs = open_filesystem(
        MemorySource(edited(pristine, {first_child: struct.pack("<I", fs.root_block)}))
    )
    with pytest.raises(CorruptError, match="level"):
        fs.listdir("/")


def test_children_all_naming_one_leaf(pristine):
    # A DAG: every child pointer of the root names the first leaf. Walking right past
    # that leaf's last object meets the leaf's keys again, which the walk refuses.
    fs = open_reiser(pristine)
    root = root_node(fs)
    (nr_items,) = struct.unpack_from("<H", pristine, root + 2)
    children = root + 24 + 16 * nr_items
    (first_leaf,) = struct.unpack_from("<I", pristine, children)
    last = fs._parse_node(first_leaf).items[-1].key[:2]
    first = pristine[children : children + 8]
    fs = open_filesystem(MemorySource(edited(pristine, {children: first * (nr_items + 1)})))
    started = time.monotonic()
    with pytest.raises(CorruptError, match="comes after"):
        list(fs._object_items(last, 0))
    with pytest.raises(CorruptError):
        fs.listdir("/d1000")
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "field,value,match",
    [
        (2, 60000, "do not fit"),  # blk_nr_item
        (0, 7, "blk_level"),
        (0, 0, "blk_level"),
    ],
)
def test_bad_leaf_head(pristine, field, value, match):
    fs = open_reiser(pristine)
    head, _body = item_head_offset(fs, fs.root(), 0)
    leaf = head - head % fs.block_size
    fs = open_filesystem(MemorySource(edited(pristine, {leaf + field: struct.pack("<H", value)})))
    with pytest.raises(CorruptError, match=match):
        fs.listdir("/")


@pytest.mark.parametrize(
    "field,value,match",
    [
        (20, 4090, "outside the item area"),  # ih_item_location
        (20, 10, "outside the item area"),
        (18, 60000, "outside the item area"),  # ih_item_len
        (22, 7, "key format"),  # ih_version
        (0, 0xFFFF, "out of order"),  # k_dir_id: the root's stat data sorts last
    ],
)
def test_bad_item_head(pristine, field, value, match):
    fs = open_reiser(pristine)
    head, _body = item_head_offset(fs, fs.root(), 0)
    fs = open_filesystem(MemorySource(edited(pristine, {head + field: struct.pack("<H", value)})))
    with pytest.raises(CorruptError, match=match):
        fs.listdir("/")


@pytest.mark.parametrize(
    "field,value,match",
    [
        (16, 60000, "entry heads do not fit"),  # ih_entry_count
    ],
)
def test_bad_directory_item(pristine, field, value, match):
    fs = open_reiser(pristine)
    head, _body = item_head_offset(fs, fs.root(), 3)
    fs = open_filesystem(MemorySource(edited(pristine, {head + field: struct.pack("<H", value)})))
    with pytest.raises(CorruptError, match=match):
        fs.listdir("/")


@pytest.mark.parametrize("location", [0, 1, 0xFFFF])
def test_bad_entry_location(pristine, location):
    fs = open_reiser(pristine)
    _head, body = item_head_offset(fs, fs.root(), 3)
    # The third entry head's deh_location (after "." and "..").
    fs = open_filesystem(
        MemorySource(edited(pristine, {body + 2 * 16 + 12: struct.pack("<H", location)}))
    )
    with pytest.raises(CorruptError, match="out of place"):
        fs.listdir("/")


def test_indirect_pointer_past_the_end(pristine):
    fs = open_reiser(pristine)
    _head, body = item_head_offset(fs, fs.resolve("/exact"), 1)
    fs = open_filesystem(MemorySource(edited(pristine, {body: struct.pack("<I", 1 << 30)})))
    with pytest.raises(CorruptError, match="past the end"):
        fs.read_file("/exact", 10)


def test_dangling_entry(pristine):
    fs = open_reiser(pristine)
    _head, body = item_head_offset(fs, fs.root(), 3)
    fs = open_filesystem(
        MemorySource(edited(pristine, {body + 2 * 16 + 8: struct.pack("<I", 0xFFFFFF)}))
    )
    with pytest.raises(CorruptError, match="no stat data"):
        for name in fs.listdir("/"):
            fs.stat("/" + name)


# -- hostile images: random damage ----------------------------------------------------


def damage_regions(data: bytes, fs: ReiserFilesystem) -> list[tuple[int, int]]:
    """The superblock, the root node, and the leaves holding the walked objects' items,
    with their block and item heads listed again so that damage lands there often."""
    bs = fs.block_size
    regions = [(SB, SB + 120)]
    root = fs.root_block * bs
    regions += [(root, root + bs), (root, root + 24 + 40 * data[root + 2])]
    paths = ["/", "/boot", "/boot/grub", "/boot/grub/grub.cfg", KERNEL, "/tiny", "/links"]
    paths += ["/links/s1", "/links/long200", "/d1000", "/sparse", "/random"]
    leaves: set[int] = set()
    for path in paths:
        obj = fs.resolve(path, follow_last=False)
        for item, _body in islice(fs._object_items(obj, 0), 4):
            leaves.add(item.offset // bs)
    for block in sorted(leaves):
        start = block * bs
        (nr_items,) = struct.unpack_from("<H", data, start + 2)
        regions += [(start, start + bs), (start, start + 24 + 24 * nr_items)]
    return regions


#: Each damage overwrites one byte, a u16 or u32, or a value that often means something.
DAMAGE = st.one_of(
    st.binary(min_size=1, max_size=1),
    st.integers(0, 0xFFFF).map(lambda v: struct.pack("<H", v)),
    st.integers(0, 0xFFFFFFFF).map(lambda v: struct.pack("<I", v)),
    st.sampled_from([bytes(4), b"\xff" * 8, bytes(8), struct.pack("<I", 2)]),
)
WALK_PATHS = ("/links/kernel", "/links/loop1", "/d1000/entry-0500", "/boot/grub/grub.cfg")
#: Up to 300 nodes, and only a little of each: the fixtures hold large files and directories.
walk_some = partial(
    walk_nodes, paths=WALK_PATHS, nodes=300, reads=2, entries=2000, children=40, extents=1000
)


@pytest.mark.parametrize("name", ["reiserfs-3.6-r5-4k.img.xz", "reiserfs-3.6-rupasov-1k.img.xz"])
def test_random_damage_gives_data_or_our_errors(images, name):
    data = images[name].read_bytes()
    regions = damage_regions(data, open_reiser(data))
    pristine = MemorySource(data)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(edits=overwrites(regions, DAMAGE))
    def check(edits: list[tuple[int, bytes]]) -> None:
        open_and_walk(open_filesystem, EditedSource(pristine, edits), walk_some)

    check()
