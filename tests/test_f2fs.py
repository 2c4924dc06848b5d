"""The F2FS reader, on images mkfs.f2fs makes at test time and sload.f2fs, or the Debian
kernel's own driver in a QEMU guest, fills.

The source tree is the truth for contents and symlink targets. fsck.f2fs is the oracle
for each directory's names and node IDs (its ``-t`` tree) and passes every image; GRUB
(grub-fstest) reads the same files where it can: GRUB 2.06 knows no extra attributes,
so only images made without them. sload.f2fs writes no inline dentries, no holes and
(1.15, with flexible_inline_xattr) misplaces a large file's blocks, so the kernel
writes the image that has all of today's features, inline directories, a multi-level
directory, holes, unwritten blocks and a file deep in the double-indirect node.
"""

from __future__ import annotations

import functools
import os
import random
import re
import struct
import subprocess
from pathlib import Path

import pytest
from fswalk import (
    KERNEL,
    EditedSource,
    assert_extents_match,
    assert_file_matches,
    assert_symlinks_resolve,
    assert_tree_matches,
    open_and_walk,
    overwrites,
    padded,
    walk_nodes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import MiB, Symlink, make_f2fs, require_tool, run, write_tree
from realboot import debian_kernel, fill_with_kernel

from pygrub.disk import ByteSource, FileSource, MemorySource
from pygrub.errors import CorruptError, NotFoundError, UnsupportedError
from pygrub.fs import probe
from pygrub.fs.base import ExtentKind, NodeType, checked_extents
from pygrub.fs.f2fs import F2fsFilesystem, f2fs_crc32, open_filesystem

BLOCK = 4096
#: What today's mkfs.f2fs turns on (and Android's), all that bookworm's 1.15 knows of them.
FEATURES = "extra_attr,inode_checksum,flexible_inline_xattr,inode_crtime,sb_checksum,lost_found"
#: Blocks an inode with 36 bytes of extra attributes and 200 of inline xattrs holds
#: itself, then two direct nodes, then two indirect nodes: file blocks where each starts.
IN_INODE = 923 - 9 - 50
DIRECT1, DIRECT2 = IN_INODE, IN_INODE + 1018
INDIRECT1, INDIRECT2 = IN_INODE + 2 * 1018, IN_INODE + 2 * 1018 + 1018**2
DOUBLE = IN_INODE + 2 * 1018 + 2 * 1018**2
#: Debian's kernel has F2FS, what it needs and the virtio disk as modules.
F2FS_MODULES = (
    "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
    "virtio_blk", "crc32_generic", "lz4_compress", "lz4hc_compress", "zstd_compress", "f2fs",
)  # fmt: skip
#: The kernel's sparse file: pieces where each part of the block map starts, and its end.
HUGE_SIZE = (DOUBLE + 2 * 1018 + 5) * BLOCK
HUGE_PIECES = {
    0: b"first block\n",
    DIRECT1 * BLOCK - 6: b"across the last block of the inode\n",
    (INDIRECT1 + 1018 * 3 + 7) * BLOCK: b"in the first indirect node\n",
    (INDIRECT2 + 5) * BLOCK: b"in the second indirect node\n",
    (DOUBLE + 1018 + 3) * BLOCK + 100: b"under the double-indirect node\n",
    HUGE_SIZE - 9: b"the end\n",
}


# -- the source trees ---------------------------------------------------------------------

SYMLINKS = {
    "links/s1": "f",
    "links/r60": padded("../" + KERNEL, 60),
    "links/a900": padded("/" + KERNEL, 900),  # past an inode's inline data: a data block
    "links/bootdir": "../boot",
    "links/loop1": "loop2",
    "links/loop2": "loop1",
    "links/dangling": "nowhere",
}


def tree(rng: random.Random, big: int) -> dict:
    """Sizes around the inline and block boundaries, a file of ``big`` bytes, deep and
    odd names, symlinks and a directory of 3000 entries (several hash levels)."""
    files: dict = {
        "boot/grub/grub.cfg": "set default=0\nmenuentry 'Linux' {\n linux /boot/vmlinuz-6.1\n}\n",
        KERNEL: rng.randbytes(1_200_000),
        "boot/initrd.img-6.1": rng.randbytes(300_000),
        "empty": b"",
        "one": b"x",
        "inline": rng.randbytes(3000),  # inline data (up to 3388 bytes with xattrs)
        "below": rng.randbytes(BLOCK - 1),
        "exact": rng.randbytes(BLOCK),
        "above": rng.randbytes(BLOCK + 1),
        "big": rng.randbytes(big),
        "zeros": bytes(3 * BLOCK),
        "a/b/c/d/e/deep.txt": b"deep\n",
        os.fsdecode(b"caf\xe9.txt"): b"a latin-1 name\n",
        "h\u00e9llo.txt": b"a UTF-8 name\n",
        "x" * 255: b"the longest name\n",
        "links/f": b"the f file\n",
        "emptydir": None,
    }
    for index in range(3000):
        files[f"many/entry-with-a-longish-name-{index:05d}"] = b"%d\n" % index
    files.update({rel: Symlink(target) for rel, target in SYMLINKS.items()})
    return files


def sloaded(tmp: Path, options: tuple[str, ...], big: int) -> tuple[Path, Path]:
    image = make_f2fs(tmp, tree(random.Random(big), big), options=options, name="f2fs.img")
    return image, tmp / "f2fs.img.d"


@pytest.fixture(scope="module")
def sload_images(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(image, source tree) by name, with large files past the direct nodes. No
    flexible_inline_xattr: sload.f2fs 1.15 writes such inodes without their xattr size
    (its own closing fsck fixes that and fails) and places their blocks as if it were 0."""
    tmp = tmp_path_factory.mktemp("f2fs")
    features = FEATURES.replace("flexible_inline_xattr,", "")
    return {
        "default": sloaded(tmp / "default", (), (DIRECT2 + 1018 + 300) * BLOCK),
        "features": sloaded(tmp / "features", ("-O", features, "-l", "data"), 9 * MiB),
    }


@pytest.fixture(scope="module")
def kernel_image(tmp_path_factory) -> tuple[Path, Path]:
    """An image with every feature, filled by Linux: (image, source tree)."""
    tmp = tmp_path_factory.mktemp("f2fs-kernel")
    src = write_tree(tmp / "src", tree(random.Random(7), (DIRECT1 + 5) * BLOCK))
    image = tmp / "kernel.img"
    with open(image, "wb") as f:
        f.truncate(128 * MiB)
    run("mkfs.f2fs", "-q", "-f", "-O", FEATURES + ",compression", image)
    then = [f"truncate -s {HUGE_SIZE} huge"]
    for offset, piece in HUGE_PIECES.items():
        text = piece.decode().removesuffix("\n")
        then.append(f"echo '{text}' | dd of=huge bs=1 seek={offset} conv=notrunc 2>/dev/null")
    # fallocate reserves blocks as NEW_ADDR; the extension makes the kernel compress.
    then += ["fallocate -l 65536 reserved", "echo compressed > packed.lz4c"]
    fill_with_kernel(
        debian_kernel(),
        image,
        "f2fs",
        F2FS_MODULES,
        src,
        mount_options="compress_algorithm=lz4,compress_extension=lz4c",
        then=tuple(then),
    )
    fsck_passes(image)
    return image, src


#: What the guest made in the kernel image's root besides the copy of the tree.
GUEST_MADE = {b"huge", b"reserved", b"packed.lz4c"}


# -- the oracles -----------------------------------------------------------------------

_TREE_LINE = re.compile(r"^((?:[| ]   )*)[|`]-- (.*) <ino = 0x([0-9a-f]+)>, <encrypted \(\d\)>$")


@functools.lru_cache
def fsck_tree(image: Path) -> dict[str, dict[bytes, int]]:
    """directory path -> {name: node ID} as ``fsck.f2fs -t`` prints the tree."""
    out = subprocess.run(
        [require_tool("fsck.f2fs"), "--dry-run", "-t", str(image)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    ).stdout
    listing: dict[str, dict[bytes, int]] = {"/": {}}
    trail: list[bytes] = []
    for raw in out.split(b"\n"):
        line = raw.decode("utf-8", "surrogateescape")
        m = _TREE_LINE.match(line)
        if not m:
            continue
        depth = len(m.group(1)) // 4
        name = os.fsencode(m.group(2))
        del trail[depth:]
        parent = "/" + "/".join(os.fsdecode(p) for p in trail)
        listing.setdefault(parent, {})[name] = int(m.group(3), 16)
        trail.append(name)
    return listing


def fsck_passes(image: Path) -> None:
    out = run("fsck.f2fs", "--dry-run", image).decode("utf-8", "replace")
    assert "[Fail]" not in out and "[ASSERT]" not in out, out[-3000:]


def grub_cmp(image: Path, path: str, host: Path) -> None:
    """GRUB reads ``path`` as the host file holds it (grub-fstest cmp)."""
    argv = [require_tool("grub-fstest"), str(image), "cmp", path, str(host)]
    proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, (path, proc.stderr)


def open_f2fs(image: Path) -> F2fsFilesystem:
    fs = probe(FileSource(str(image)))
    assert isinstance(fs, F2fsFilesystem)
    return fs


def fsck_listing(image: Path, also: set[bytes] = frozenset()):  # noqa: ANN201
    """assert_tree_matches' listing check: names and node IDs as fsck.f2fs lists them;
    the root may have lost+found and ``also`` besides the host tree's names."""
    expected = fsck_tree(image)

    def check(fs: F2fsFilesystem, rel: str, here: Path) -> None:
        found = {os.fsencode(name): child for name, child in fs.dir_entries(fs.resolve(rel))}
        assert found == expected.get(rel, {}), rel
        extra = {b"lost+found", *also} if rel == "/" else set()
        assert set(found) - extra == {os.fsencode(n) for n in os.listdir(here)}, rel

    return check


# -- reading what the tools wrote ---------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "features"])
def test_reads_the_whole_tree(sload_images, name):
    image, src = sload_images[name]
    fs = open_f2fs(image)
    assert_tree_matches(fs, src, fsck_listing(image), modes=True)
    assert_symlinks_resolve(fs, src, ["links/r60", "links/a900"])
    assert fs.label == ("data" if name == "features" else None)


def test_grub_reads_the_same_files(sload_images):
    image, src = sload_images["default"]
    for rel in ("big", "inline", "above", KERNEL, "many/entry-with-a-longish-name-02999"):
        grub_cmp(image, "/" + rel, src / rel)


def test_big_file_reaches_the_indirect_node(sload_images):
    image, src = sload_images["default"]
    fs = open_f2fs(image)
    node = fs.resolve("big")
    assert fs.inode(node).xattr_addrs == 50
    size = (src / "big").stat().st_size
    assert size > (923 - 50 + 2 * 1018) * BLOCK
    kinds = assert_extents_match(fs, "big", src / "big", holes=False)
    assert set(kinds) == {"span"}


def test_kernel_image_reads_back(kernel_image):
    image, src = kernel_image
    fs = open_f2fs(image)
    assert_tree_matches(fs, src, fsck_listing(image, GUEST_MADE), modes=True)
    assert_symlinks_resolve(fs, src, ["links/r60", "links/a900"])


def test_kernel_writes_inline_dentries_and_levels(kernel_image):
    image, _src = kernel_image
    fs = open_f2fs(image)
    inline = {path: fs.inode(fs.resolve(path)).inline for path in ("boot/grub", "a/b", "many")}
    assert inline["boot/grub"] & 0x04 and inline["a/b"] & 0x04, inline  # F2FS_INLINE_DENTRY
    assert not inline["many"] & 0x04
    # 3000 entries need more than level 0's two blocks: several hash levels, holes between.
    extents = list(checked_extents(fs, fs.resolve("many"), fs.stat("many").size))
    assert sum(e.length for e in extents if e.kind is ExtentKind.DATA) > 2 * BLOCK
    assert fs.inode(fs.resolve("inline")).inline & 0x02  # F2FS_INLINE_DATA


def test_sparse_file_into_the_double_indirect_node(kernel_image):
    image, _src = kernel_image
    fs = open_f2fs(image)
    assert fs.stat("huge").size == HUGE_SIZE
    data = []
    for offset, length, where in fs.extents("huge"):
        if where != "hole":
            data.append((offset, length))
    # Every piece reads back, and nothing but the blocks the pieces touch is data.
    touched = set()
    with fs.open("huge") as f:
        for offset, piece in HUGE_PIECES.items():
            f.seek(offset)
            assert f.read(len(piece)) == piece, offset
            touched.update(range(offset // BLOCK, (offset + len(piece) - 1) // BLOCK + 1))
    blocks = {
        b for offset, length in data for b in range(offset // BLOCK, (offset + length) // BLOCK)
    }
    assert blocks == touched


def test_unwritten_blocks_read_as_zeros(kernel_image):
    image, _src = kernel_image
    fs = open_f2fs(image)
    assert fs.read_file("reserved", 1 << 20) == bytes(65536)
    assert [where for _o, _l, where in fs.extents("reserved")] == ["hole"]


def test_compressed_file_is_refused_by_name(kernel_image):
    image, _src = kernel_image
    fs = open_f2fs(image)
    with pytest.raises(UnsupportedError, match="compressed"):
        fs.read_file("packed.lz4c", 100)


def test_grub_probe_agrees_on_the_kernel_image(kernel_image):
    image, _src = kernel_image
    out = run("grub-probe", "-t", "fs_uuid", "-d", image).decode().strip()
    assert open_f2fs(image).uuid == out


# -- damaged images ---------------------------------------------------------------------


def small_image(tmp: Path, options: tuple[str, ...] = ()) -> Path:
    files = {
        "boot/grub/grub.cfg": "set default=0\n",
        "boot/vmlinuz": os.urandom(40_000),
        "small": b"inline bytes\n",
        "link": Symlink("boot/vmlinuz"),
    }
    files.update({f"dir/name-{i:03d}": b"x" for i in range(40)})
    return make_f2fs(tmp, files, options=options, name="small.img")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return small_image(tmp_path_factory.mktemp("f2fs-small"))


def superblock(raw: bytes, at: int = 1024) -> dict[str, int]:
    names = ("cp_blkaddr", "sit_blkaddr", "nat_blkaddr", "ssa_blkaddr", "main_blkaddr")
    return dict(zip(names, struct.unpack_from("<5I", raw, at + 76), strict=True))


def node_block(image: Path, path: str) -> int:
    """The byte offset of the inode of ``path``, found through our reader."""
    return open_f2fs(image).inode(open_f2fs(image).resolve(path)).offset


def edited(image: Path, edits: dict[int, bytes]) -> MemorySource:
    data = bytearray(image.read_bytes())
    for offset, value in edits.items():
        data[offset : offset + len(value)] = value
    return MemorySource(bytes(data))


def test_not_f2fs_and_truncated(small):
    assert open_filesystem(MemorySource(bytes(8192))) is None
    raw = small.read_bytes()
    with pytest.raises(CorruptError, match="do not fit"):
        open_filesystem(MemorySource(raw[: len(raw) // 2]))


def test_backup_superblock_is_used_when_the_first_is_bad(small):
    raw = small.read_bytes()
    fs = open_filesystem(edited(small, {1024 + 16: struct.pack("<I", 77)}))
    assert fs is not None and fs.read_file("small", 100) == b"inline bytes\n"
    both = {1024 + 16: struct.pack("<I", 77), 5120 + 16: struct.pack("<I", 77)}
    with pytest.raises(UnsupportedError, match="log_blocksize 77"):
        open_filesystem(edited(small, both))
    assert raw[5120:5124] == raw[1024:1028]


def test_superblock_checksum_is_checked(tmp_path):
    image = small_image(tmp_path, ("-O", "sb_checksum"))
    with pytest.raises(CorruptError, match="bad checksum"):
        # the volume name changes; the first copy's CRC no longer holds, nor the second's
        open_filesystem(edited(image, {1024 + 124: b"X\0", 5120 + 124: b"Y\0"}))


def checkpoint_offsets(image: Path) -> tuple[int, int]:
    cp = superblock(image.read_bytes())["cp_blkaddr"]
    return cp * BLOCK, (cp + 512) * BLOCK


def bump_version(raw: bytearray, start: int) -> None:
    """Make the checkpoint pack at byte ``start`` one version newer, CRCs kept right."""
    (version,) = struct.unpack_from("<Q", raw, start)
    (total,) = struct.unpack_from("<I", raw, start + 136)
    for block in (start, start + (total - 1) * BLOCK):
        struct.pack_into("<Q", raw, block, version + 1)
        struct.pack_into("<I", raw, block + 4092, f2fs_crc32(bytes(raw[block : block + 4092])))


def test_the_newer_valid_checkpoint_pack_is_used(small):
    # sload.f2fs leaves pack 1 current and pack 2 as mkfs.f2fs wrote it, at one version:
    # Linux takes the first of equals. mkfs's pack keeps the root's NAT entry in its journal.
    first, second = checkpoint_offsets(small)
    current = open_f2fs(small).nat_journal
    raw = bytearray(small.read_bytes())
    bump_version(raw, second)
    older = open_filesystem(MemorySource(bytes(raw))).nat_journal
    assert older != current
    raw[second + 8] ^= 0xFF  # the newer pack's CRC broken: the other one again
    assert open_filesystem(MemorySource(bytes(raw))).nat_journal == current
    raw[first + 8] ^= 0xFF
    with pytest.raises(CorruptError, match="no valid checkpoint"):
        open_filesystem(MemorySource(bytes(raw)))


def test_nat_journal_entries_come_before_nat_blocks(tmp_path):
    image = tmp_path / "empty.img"
    with open(image, "wb") as f:
        f.truncate(128 * MiB)
    run("mkfs.f2fs", "-q", "-f", image)
    fs = open_f2fs(image)
    assert fs.listdir("/") == []
    ((nid, (_ino, addr)),) = fs.nat_journal.items()
    assert nid == fs.root()
    raw = image.read_bytes()
    entry = struct.pack("<IBII", nid, 0, nid, addr)
    at = raw.find(entry)
    assert at > 0
    with pytest.raises(CorruptError, match="outside the main area"):
        open_filesystem(edited(image, {at + 9: struct.pack("<I", 1)})).listdir("/")


def set_nat_journal_or_entry(image: Path, nid: int, addr: int) -> MemorySource:
    """The image with the current NAT entry of ``nid`` naming block ``addr``."""
    fs = open_f2fs(image)
    raw = bytearray(image.read_bytes())
    if nid in fs.nat_journal:
        # Find the journal entry in the summary block and rewrite its block_addr.
        want = struct.pack("<I", nid)
        for start in checkpoint_offsets(image):
            pack = raw[start : start + 512 * BLOCK]
            at = 0
            while (at := pack.find(want, at)) >= 0:
                if struct.unpack_from("<I", pack, at + 9)[0] == fs.nat_journal[nid][1]:
                    struct.pack_into("<I", raw, start + at + 9, addr)
                at += 1
    else:
        index, slot = divmod(nid, 455)
        offset = fs.nat_block_number(index) * BLOCK
        struct.pack_into("<I", raw, offset + slot * 9 + 5, addr)
    return MemorySource(bytes(raw))


def test_nat_entry_outside_the_main_area(small):
    fs = open_f2fs(small)
    nid = fs.resolve("boot/vmlinuz")
    source = set_nat_journal_or_entry(small, nid, 5)
    with pytest.raises(CorruptError, match="outside the main area"):
        open_filesystem(source).read_file("boot/vmlinuz", 100)


def test_node_pointing_at_another_node_is_caught_by_its_footer(small):
    fs = open_f2fs(small)
    nid = fs.resolve("boot/vmlinuz")
    other = fs.inode(fs.resolve("small")).offset // BLOCK
    source = set_nat_journal_or_entry(small, nid, other)
    with pytest.raises(CorruptError, match="footer names node"):
        open_filesystem(source).read_file("boot/vmlinuz", 100)


def test_direct_node_pointing_at_its_inode(sload_images):
    image, _src = sload_images["default"]
    fs = open_f2fs(image)
    inode = fs.inode(fs.resolve("big"))
    (first_direct,) = struct.unpack_from("<I", inode.block, 4052)
    # The first direct node's nid now names the inode itself: a loop GRUB would follow.
    source = EditedSource(
        FileSource(str(image)), [(inode.offset + 4052, struct.pack("<I", inode.nid))]
    )
    assert first_direct != inode.nid
    with pytest.raises(CorruptError, match="footer names node"):
        open_filesystem(source).read_file("big", 10 * MiB)


def test_huge_size_and_addresses_out_of_range(small):
    fs = open_f2fs(small)
    at = fs.inode(fs.resolve("boot/vmlinuz")).offset
    with pytest.raises(CorruptError, match="past what its block map can reach"):
        open_filesystem(edited(small, {at + 16: struct.pack("<Q", 1 << 62)})).stat("boot/vmlinuz")
    # A size within the map's reach but far past the data: holes, read without work.
    grown = open_filesystem(edited(small, {at + 16: struct.pack("<Q", 1 << 40)}))
    kinds = [where for _o, _l, where in grown.extents("boot/vmlinuz")]
    assert kinds[-1] == "hole" and len(kinds) <= 3
    extra = 0  # the default image has no extra attributes: i_addr starts at byte 360
    bad = edited(small, {at + 360 + 4 * extra: struct.pack("<I", 0xFFFFFFF0)})
    with pytest.raises(CorruptError, match="outside the main area"):
        open_filesystem(bad).read_file("boot/vmlinuz", 100)


def test_inline_data_longer_than_its_room(small):
    fs = open_f2fs(small)
    at = fs.inode(fs.resolve("small")).offset
    with pytest.raises(CorruptError, match="inline data"):
        open_filesystem(edited(small, {at + 16: struct.pack("<Q", 4000)})).stat("small")


def test_bad_dentries(small):
    fs = open_f2fs(small)
    node = fs.resolve("dir")
    (where,) = [e.offset for e in checked_extents(fs, node, BLOCK) if e.kind is ExtentKind.DATA]
    block = small.read_bytes()[where : where + BLOCK]
    bits = int.from_bytes(block[:27], "little")
    slot = next(i for i in range(2, 214) if bits >> i & 1)  # the first name after . and ..
    entry = where + 30 + slot * 11
    for name_len in (0, 300):
        bad = edited(small, {entry + 8: struct.pack("<H", name_len)})
        with pytest.raises(CorruptError, match="name in slot"):
            open_filesystem(bad).listdir("dir")
    bad = edited(small, {entry + 4: struct.pack("<I", 0xFFFFFFF)})  # a child past the NAT
    with pytest.raises(CorruptError, match="outside"):
        open_filesystem(bad).listdir("dir")


def test_encrypted_inode_is_refused(small):
    fs = open_f2fs(small)
    at = fs.inode(fs.resolve("boot/vmlinuz")).offset
    with pytest.raises(UnsupportedError, match="encrypted"):
        open_filesystem(edited(small, {at + 2: b"\x04"})).read_file("boot/vmlinuz", 10)


def test_crc_is_linux_f2fs_crc32():
    # f2fs_crc32 over nothing is its seed; over one zero byte, one table step of it.
    assert f2fs_crc32(b"") == 0xF2F52010
    assert f2fs_crc32(b"\0") != f2fs_crc32(b"")


def has_magic(source: ByteSource) -> bool:
    magic = (0xF2F52010).to_bytes(4, "little")
    return any(source.size >= at + 3072 and source.pread(at, 4) == magic for at in (1024, 5120))


DAMAGE = st.one_of(
    st.binary(min_size=1, max_size=1),
    st.integers(0, 0xFFFF).map(lambda v: struct.pack("<H", v)),
    st.integers(0, 0xFFFFFFFF).map(lambda v: struct.pack("<I", v)),
    st.sampled_from([b"\0\0\0\0", b"\xff\xff\xff\xff", struct.pack("<I", 3), b"\x04"]),
)
walk_some = functools.partial(
    walk_nodes, paths=("/boot/grub/grub.cfg", "/link", "/dir/name-020", "/nothing"), nodes=60
)


def damage_regions(image: Path) -> list[tuple[int, int]]:
    fs = open_f2fs(image)
    regions = [(1024, 1024 + 3072), *((at, at + 8 * BLOCK) for at in checkpoint_offsets(image))]
    sb = superblock(image.read_bytes())
    regions.append((sb["nat_blkaddr"] * BLOCK, sb["nat_blkaddr"] * BLOCK + 2 * BLOCK))
    for path in ("/", "/boot", "/boot/grub", "/boot/grub/grub.cfg", "/boot/vmlinuz", "/dir"):
        at = fs.inode(fs.resolve(path)).offset
        regions.append((at, at + BLOCK))
    directory = fs.resolve("/dir")
    for extent in checked_extents(fs, directory, fs.stat("/dir").size):
        if extent.kind is ExtentKind.DATA:
            regions.append((extent.offset, extent.offset + extent.length))
    return regions


def test_random_damage_gives_data_or_our_errors(small):
    pristine = MemorySource(small.read_bytes())
    regions = damage_regions(small)

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(edits=overwrites(regions, DAMAGE), end=st.integers(0, 3 * pristine.size))
    def check(edits: list[tuple[int, bytes]], end: int) -> None:
        source = EditedSource(pristine, edits, end)
        open_and_walk(open_filesystem, source, walk_some, has_magic)

    check()


def test_small_fixture_reads(small):
    fs = open_f2fs(small)
    assert_file_matches(fs, "small", b"inline bytes\n")
    assert fs.stat("dir").type is NodeType.DIR
    assert fs.read_file("link", 10) == fs.read_file("boot/vmlinuz", 10)
    with pytest.raises(NotFoundError):
        fs.stat("dir/name-999")
