"""The ISO 9660 reader against images made by xorriso, with isoinfo as the oracle.

Plain (levels 1 and 3), Joliet-only and Rock Ridge + Joliet images; symlinks, deep
and relocated directories, continuation areas, multi-extent files (a real one over
4 GiB, and a small one made by joining two records). Each of the five classes of bug in
Xen's XSA-497 is a named test that must end in a CorruptError. Mutated images must give
correct data or a PygrubError, in bounded time, with no read past the image.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from fswalk import GuardedSource, explore, open_and_walk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import Symlink, Tree, require_tool, run, write_tree

from pygrub.disk import FileSource, MemorySource
from pygrub.errors import CorruptError, LimitError
from pygrub.fs import probe
from pygrub.fs.base import Filesystem, NodeType
from pygrub.fs.iso9660 import IsoFilesystem, open_filesystem

SECTOR = 2048


def rand(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def make_iso(tmp: Path, tree: Tree, name: str, *options: str) -> Path:
    """An ISO image made by ``xorriso -as mkisofs`` from a tree written to disk."""
    src = write_tree(tmp / (name + ".d"), tree)
    image = tmp / name
    image.unlink(missing_ok=True)
    run("xorriso", "-as", "mkisofs", "-quiet", *options, "-o", image, src)
    return image


LONG_NAME = "n" * 200  # too long for its directory record: the NM entry goes to a CE area
LONG_TARGET = "x/" * 150 + "target"  # SL components over several entries

TREE: Tree = {
    "boot/grub/grub.cfg": "set default=0\nmenuentry 'Linux' { linux /boot/vmlinuz }\n",
    "boot/vmlinuz-6.1.0-amd64": rand(1, 200_000),
    "boot/initrd.img-6.1.0-amd64": rand(2, 150_001),
    "boot/vmlinuz": Symlink("vmlinuz-6.1.0-amd64"),
    "isolinux/isolinux.cfg": "default linux\nlabel linux\n  kernel /boot/vmlinuz\n",
    "EFI/BOOT/BOOTX64.EFI": rand(3, 40_000),
    "Mixed Case Name With Spaces.conf": "mixed\n",
    LONG_NAME: "long\n",
    "a/b/c/d/e/f/g/h/i/j/k/deep.txt": "deep\n",
    "a/up": Symlink("../boot/grub/grub.cfg"),
    "abs": Symlink("/boot/grub"),
    "loop1": Symlink("loop2"),
    "loop2": Symlink("loop1"),
    "dangling": Symlink("nowhere"),
    "longlink": Symlink(LONG_TARGET),
    "empty.txt": b"",
    "emptydir": None,
    **{f"many/entry {i:03d} with a fairly long name.txt": f"{i}\n" for i in range(60)},
}
FILES = {
    rel: c for rel, c in TREE.items() if isinstance(c, (bytes, str)) and not isinstance(c, Symlink)
}
LINKS = {rel: c for rel, c in TREE.items() if isinstance(c, Symlink)}
DATE = "2024010203040506"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("iso")
    common = ("-V", "Boot Volume", f"--modification-date={DATE}")
    return {
        "rr": make_iso(tmp, TREE, "rr.iso", "-R", "-J", *common),
        "reloc": make_iso(tmp, TREE, "reloc.iso", "-R", "-rr_reloc_dir", "rr_moved", *common),
        "joliet": make_iso(tmp, TREE, "joliet.iso", "--norock", "-J", *common),
        "plain": make_iso(tmp, TREE, "plain.iso", "--norock", *common),
        "level3": make_iso(tmp, TREE, "level3.iso", "--norock", "-iso-level", "3", *common),
    }


def open_image(path: Path) -> IsoFilesystem:
    fs = open_filesystem(FileSource(str(path)))
    assert isinstance(fs, IsoFilesystem)
    return fs


def walk(fs: Filesystem, path: str = "/", depth: int = 0) -> Iterator[str]:
    for name in fs.listdir(path):
        child = path.rstrip("/") + "/" + name
        yield child
        if fs.lstat(child).type is NodeType.DIR and depth < 40:
            yield from walk(fs, child, depth + 1)


def isoinfo_paths(image: Path, *namespace: str) -> list[str]:
    out = run("isoinfo", *namespace, "-f", "-i", image).decode("utf-8", "surrogateescape")
    return [line for line in out.splitlines() if line]


def iso_name(path: str) -> str:
    """A plain ISO 9660 path as GRUB shows it: versions and trailing dots gone, lower case."""
    parts = []
    for part in path.split("/"):
        part = part.split(";")[0]
        parts.append((part[:-1] if part.endswith(".") else part).lower())
    return "/".join(parts)


def tree_paths(tree: Tree) -> set[str]:
    paths = set()
    for rel in tree:
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            paths.add("/" + "/".join(parts[:i]))
    return paths


def as_bytes(content: bytes | str) -> bytes:
    return content.encode() if isinstance(content, str) else content


# -- readable images -----------------------------------------------------------------------


def test_rock_ridge_listing_matches_isoinfo_and_source(images: dict[str, Path]) -> None:
    fs = open_image(images["rr"])
    assert fs.rock_ridge and not fs.joliet and not fs.case_insensitive
    ours = list(walk(fs))
    assert len(ours) == len(set(ours))
    assert set(ours) == set(isoinfo_paths(images["rr"], "-R")) == tree_paths(TREE)


@pytest.mark.parametrize("kind", ["rr", "reloc"])
def test_rock_ridge_files_and_symlinks_read_back(images: dict[str, Path], kind: str) -> None:
    fs = open_image(images[kind])
    for rel, content in FILES.items():
        with fs.open(rel) as f:
            assert f.read() == as_bytes(content), rel
        assert fs.stat(rel).mode == 0o644
    for rel, target in LINKS.items():
        assert fs.lstat(rel).type is NodeType.SYMLINK
        assert fs.readlink_path(rel) == str(target)
    assert fs.read_file("/boot/vmlinuz", 1 << 20) == FILES["boot/vmlinuz-6.1.0-amd64"]
    assert fs.read_file("/a/up", 1000) == as_bytes(FILES["boot/grub/grub.cfg"])
    assert fs.listdir("/abs") == ["grub.cfg"]
    with pytest.raises(LimitError):
        fs.stat("/loop1")
    assert not fs.exists("/dangling")
    assert not fs.exists("/BOOT/GRUB/GRUB.CFG")  # Rock Ridge names keep their case


def test_isoinfo_extracts_the_same_bytes(images: dict[str, Path]) -> None:
    for kind, namespace in [("rr", ("-R",)), ("joliet", ("-J",))]:
        fs = open_image(images[kind])
        for rel in ["boot/vmlinuz-6.1.0-amd64", "EFI/BOOT/BOOTX64.EFI", "boot/grub/grub.cfg"]:
            oracle = run("isoinfo", *namespace, "-x", "/" + rel, "-i", images[kind])
            assert fs.read_file(rel, 1 << 20) == oracle


def test_relocated_directories_appear_where_they_were(images: dict[str, Path]) -> None:
    # The plain tree shows the relocation; Rock Ridge puts the directories back.
    plain = isoinfo_paths(images["reloc"])
    assert any(p.startswith("/RR_MOVED/") for p in plain)
    assert "/A/B/C/D/E/F/G/H/I/J/K/DEEP.TXT;1" not in plain
    fs = open_image(images["reloc"])
    assert set(walk(fs)) == tree_paths(TREE)
    assert fs.read_file("/a/b/c/d/e/f/g/h/i/j/k/deep.txt", 100) == b"deep\n"


def test_joliet_only(images: dict[str, Path]) -> None:
    fs = open_image(images["joliet"])
    assert fs.joliet and not fs.rock_ridge and not fs.case_insensitive
    ours = list(walk(fs))
    assert set(ours) == set(isoinfo_paths(images["joliet"], "-J"))
    assert "/Mixed Case Name With Spaces.conf" in ours
    for rel, content in FILES.items():
        if rel != LONG_NAME:  # Joliet cuts names at 64 characters
            assert fs.read_file(rel, 1 << 20) == as_bytes(content)
    assert fs.read_file("/" + LONG_NAME[:64], 100) == b"long\n"
    assert not fs.exists("/mixed case name with spaces.conf")
    assert fs.label == "Boot Volume"


@pytest.mark.parametrize("kind", ["plain", "level3"])
def test_plain_names_match_isoinfo_and_ignore_case(images: dict[str, Path], kind: str) -> None:
    fs = open_image(images[kind])
    assert fs.case_insensitive and not fs.joliet and not fs.rock_ridge
    listed = isoinfo_paths(images[kind])
    assert set(walk(fs)) == {iso_name(p) for p in listed}
    for raw in listed:
        if fs.stat(iso_name(raw)).type is NodeType.FILE:
            oracle = run("isoinfo", "-x", raw, "-i", images[kind])
            assert fs.read_file(iso_name(raw), 1 << 20) == oracle
            assert fs.read_file(raw.split(";")[0].rstrip("."), 1 << 20) == oracle
    assert fs.read_file("/BOOT/GRUB/GRUB.CFG", 1000) == as_bytes(FILES["boot/grub/grub.cfg"])


def test_uuid_and_label_match_grub_and_blkid(images: dict[str, Path]) -> None:
    for kind in ["rr", "plain", "joliet"]:
        fs = open_image(images[kind])
        info = {
            tag: run("blkid", "-p", "-o", "value", "-s", tag, images[kind]).decode().strip()
            for tag in ("UUID", "LABEL")
        }
        # GRUB's search --fs-uuid: the modification date's digits, grouped.
        assert fs.uuid == "2024-01-02-03-04-05-06" == info["UUID"]
        assert fs.label == "Boot Volume" == info["LABEL"]
        assert fs.kind == "iso9660"


def test_probe_finds_iso9660(images: dict[str, Path]) -> None:
    assert isinstance(probe(FileSource(str(images["rr"]))), IsoFilesystem)


def test_directory_spanning_sectors(images: dict[str, Path]) -> None:
    fs = open_image(images["rr"])
    assert fs.stat("/many").size > SECTOR
    assert len(fs.listdir("/many")) == 60
    assert fs.read_file("/many/entry 059 with a fairly long name.txt", 10) == b"59\n"


def xorriso_sparse(image: Path, src: Path, *options: str) -> None:
    """xorriso's image written sparse: runs of zeros become holes, so 4 GiB costs no disk."""
    tool = require_tool("xorriso")
    zeros = bytes(1 << 20)
    with open(image.with_suffix(".log"), "w+b") as log, open(image, "wb") as out:
        argv = [tool, "-as", "mkisofs", "-quiet", *options, "-o", "-", str(src)]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log) as proc:
            assert proc.stdout is not None
            pos = 0
            while chunk := proc.stdout.read(len(zeros)):
                if chunk != zeros[: len(chunk)]:
                    out.seek(pos)
                    out.write(chunk)
                pos += len(chunk)
            out.truncate(pos)
        if proc.returncode != 0:
            log.seek(0)
            pytest.fail(f"xorriso failed: {log.read().decode(errors='replace')}")


@pytest.fixture(scope="module")
def huge_iso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[int, bytes]]]:
    """An ISO with a file over 4 GiB, which xorriso must split into two sections."""
    tmp = tmp_path_factory.mktemp("huge")
    size = HUGE_SIZE
    # BOUNDARY! straddles the end of the first section (4 GiB - 2 KiB).
    markers = {0: b"START", FIRST_SECTION - 4: b"BOUNDARY!", size - 3: b"END"}
    src = tmp / "src"
    src.mkdir()
    with open(src / "huge.bin", "wb") as f:
        f.truncate(size)
        for offset, mark in markers.items():
            f.seek(offset)
            f.write(mark)
    (src / "small.txt").write_text("small\n")
    image = tmp / "huge.iso"
    xorriso_sparse(image, src, "-R", "-iso-level", "3")
    (src / "huge.bin").unlink()
    yield image, markers
    image.unlink()


HUGE_SIZE = (4 << 30) + 5000
#: libisofs cuts sections at 4 GiB - 2 KiB.
FIRST_SECTION = 0xFFFFF800


def test_multi_extent_file_over_4_gib(huge_iso: tuple[Path, dict[int, bytes]]) -> None:
    image, markers = huge_iso
    listing = run("isoinfo", "-l", "-i", image).decode()
    sections = [line for line in listing.splitlines() if line.endswith("HUGE.BIN;1 ")]
    assert len(sections) == 2, listing
    fs = open_image(image)
    assert fs.stat("/huge.bin").size == HUGE_SIZE
    pieces = list(fs.extents("/huge.bin"))
    assert [(off, length) for off, length, _ in pieces] == [
        (0, FIRST_SECTION),
        (FIRST_SECTION, HUGE_SIZE - FIRST_SECTION),
    ]
    assert all(isinstance(where, tuple) for _off, _len, where in pieces)
    with fs.open("/huge.bin") as f:
        for offset, mark in markers.items():
            f.seek(offset)
            assert f.read(len(mark)) == mark
        f.seek(FIRST_SECTION + 5)
        assert f.read(8) == bytes(8)
    assert fs.read_file("/small.txt", 100) == b"small\n"


# -- a small hand-joined multi-extent file, and other crafted images ----------------------------


def records(image: bytes | bytearray, start: int, size: int) -> Iterator[tuple[int, bytes]]:
    """(offset, identifier) of each directory record: the test's own ECMA-119 walk."""
    for sector in range(start, start + size, SECTOR):
        pos = sector
        while pos < sector + SECTOR and image[pos] != 0:
            yield pos, bytes(image[pos + 33 : pos + 33 + image[pos + 32]])
            pos += image[pos]


def extent_of(image: bytes | bytearray, record: int) -> tuple[int, int]:
    location = int.from_bytes(image[record + 2 : record + 6], "little")
    size = int.from_bytes(image[record + 10 : record + 14], "little")
    return location * SECTOR, size


def find_record(image: bytes | bytearray, *path: bytes) -> int:
    record = 16 * SECTOR + 156  # the root's record in the primary volume descriptor
    for name in path:
        start, size = extent_of(image, record)
        record = next(off for off, ident in records(image, start, size) if ident == name)
    return record


def system_use(image: bytes | bytearray, record: int) -> int:
    name_length = image[record + 32]
    return record + 33 + name_length + (1 - name_length % 2)


def susp_entry(image: bytes | bytearray, record: int, signature: bytes) -> int:
    pos, end = system_use(image, record), record + image[record]
    while pos + 4 <= end:
        if image[pos : pos + 2] == signature:
            return pos
        pos += image[pos + 2]
    raise AssertionError(f"no {signature!r} in the record at {record}")


def open_bytes(image: bytes | bytearray) -> IsoFilesystem:
    fs = open_filesystem(MemorySource(bytes(image)))
    assert isinstance(fs, IsoFilesystem)
    return fs


@pytest.fixture(scope="module")
def parts_iso(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("parts")
    tree: Tree = {"multi/part1": rand(7, 2 * SECTOR), "multi/part2": rand(8, 3000)}
    return make_iso(tmp, tree, "parts.iso", "-R").read_bytes()


def test_hand_joined_multi_extent_file(parts_iso: bytes) -> None:
    image = bytearray(parts_iso)
    first = find_record(image, b"MULTI", b"PART1.;1")
    second = find_record(image, b"MULTI", b"PART2.;1")
    image[first + 25] |= 0x80  # File Flags: multi-extent, more sections follow
    image[second + 33 : second + 33 + 8] = b"PART1.;1"
    fs = open_bytes(image)
    assert fs.listdir("/multi") == ["part1"]
    assert fs.read_file("/multi/part1", 1 << 20) == rand(7, 2 * SECTOR) + rand(8, 3000)
    assert [length for _off, length, _ in fs.extents("/multi/part1")] == [2 * SECTOR, 3000]


def test_multi_extent_sections_must_share_a_name_and_end(parts_iso: bytes) -> None:
    image = bytearray(parts_iso)
    first = find_record(image, b"MULTI", b"PART1.;1")
    second = find_record(image, b"MULTI", b"PART2.;1")
    image[first + 25] |= 0x80
    with pytest.raises(CorruptError, match="another name"):
        open_bytes(image).listdir("/multi")
    image[second + 33 : second + 33 + 8] = b"PART1.;1"
    image[second + 25] |= 0x80
    with pytest.raises(CorruptError, match="no final section"):
        open_bytes(image).listdir("/multi")


# -- XSA-497: each class of bug in libfsimage's reader is a clean CorruptError --------------


@pytest.fixture(scope="module")
def rr_bytes(images: dict[str, Path]) -> bytes:
    return images["rr"].read_bytes()


def read_all(image: bytes | bytearray) -> None:
    fs = open_bytes(image)
    for path in walk(fs):
        if fs.lstat(path).type is NodeType.FILE:
            fs.read_file(path, 1 << 20)


def test_xsa497_directory_record_shorter_than_34_bytes(rr_bytes: bytes) -> None:
    image = bytearray(rr_bytes)
    image[find_record(image, b"BOOT")] = 20
    with pytest.raises(CorruptError, match="length 20 is below 34"):
        read_all(image)


def test_xsa497_directory_record_shorter_than_its_name(rr_bytes: bytes) -> None:
    image = bytearray(rr_bytes)
    record = find_record(image, b"BOOT")
    image[record + 32] = 200
    with pytest.raises(CorruptError, match="name of 200 bytes does not fit"):
        read_all(image)


def test_xsa497_directory_record_crossing_its_sector(rr_bytes: bytes) -> None:
    image = bytearray(rr_bytes)
    start, size = extent_of(image, find_record(image, b"MANY"))
    assert size > SECTOR
    last = list(records(image, start, SECTOR))[-1][0]
    room = start + SECTOR - last
    assert room < 250
    image[last] = room + 2
    with pytest.raises(CorruptError, match="cross the end of its sector"):
        read_all(image)


def test_xsa497_system_use_length_underflow(rr_bytes: bytes) -> None:
    image = bytearray(rr_bytes)
    root_dot = extent_of(image, find_record(image))[0]
    sp = susp_entry(image, root_dot, b"SP")
    image[sp + 6] = 250  # LEN_SKP: more than any record's System Use area
    with pytest.raises(CorruptError, match="end before its System Use area"):
        read_all(image)


@pytest.mark.parametrize("length", [0, 1, 3])
def test_xsa497_susp_entry_of_length_below_its_header(rr_bytes: bytes, length: int) -> None:
    image = bytearray(rr_bytes)
    px = susp_entry(image, find_record(image, b"BOOT"), b"PX")
    image[px + 2] = length
    with pytest.raises(CorruptError, match=f"has length {length}, below its header"):
        read_all(image)


def test_xsa497_susp_entry_past_its_area(rr_bytes: bytes) -> None:
    image = bytearray(rr_bytes)
    px = susp_entry(image, find_record(image, b"BOOT"), b"PX")
    image[px + 2] = 250
    with pytest.raises(CorruptError, match="run past its"):
        read_all(image)


@pytest.mark.parametrize("length", [4])
def test_xsa497_nm_entry_below_5_bytes(rr_bytes: bytes, length: int) -> None:
    image = bytearray(rr_bytes)
    nm = susp_entry(image, find_record(image, b"BOOT"), b"NM")
    image[nm + 2] = length
    with pytest.raises(CorruptError, match="NM entry .* has no flags"):
        read_all(image)


def long_name_ce(image: bytearray) -> int:
    record = next(
        off
        for off, ident in records(image, *extent_of(image, find_record(image)))
        if ident.startswith(b"NNNNNNNN")
    )
    return susp_entry(image, record, b"CE")


def test_xsa497_continuation_area_outside_its_block(rr_bytes: bytes) -> None:
    image = bytearray(rr_bytes)
    ce = long_name_ce(image)
    image[ce + 12 : ce + 16] = (2000).to_bytes(4, "little")  # offset
    image[ce + 20 : ce + 24] = (100).to_bytes(4, "little")  # length
    with pytest.raises(CorruptError, match="leave block"):
        read_all(image)


def test_xsa497_continuation_area_outside_the_image(rr_bytes: bytes) -> None:
    image = bytearray(rr_bytes)
    ce = long_name_ce(image)
    image[ce + 4 : ce + 8] = (0x7FFFFFF0).to_bytes(4, "little")  # block
    with pytest.raises(CorruptError, match="outside the .*image"):
        read_all(image)


def test_continuation_loop_is_bounded(rr_bytes: bytes) -> None:
    image = bytearray(rr_bytes)
    ce = long_name_ce(image)
    block = int.from_bytes(image[ce + 4 : ce + 8], "little")
    offset = int.from_bytes(image[ce + 12 : ce + 16], "little")
    # A continuation area whose only entry is a CE pointing at itself.
    here = block * SECTOR + offset
    image[here : here + 28] = (
        b"CE\x1c\x01"
        + block.to_bytes(4, "little")
        + block.to_bytes(4, "big")
        + offset.to_bytes(4, "little")
        + offset.to_bytes(4, "big")
        + (28).to_bytes(4, "little")
        + (28).to_bytes(4, "big")
    )
    image[ce + 20 : ce + 24] = (28).to_bytes(4, "little")
    with pytest.raises(LimitError, match="continuation areas"):
        read_all(image)


@pytest.mark.parametrize(
    ("escape", "joliet"), [(b"%/@", True), (b"%/C", True), (b"%/E", True), (b"%/F", False)]
)
def test_joliet_escape_sequences(images: dict[str, Path], escape: bytes, joliet: bool) -> None:
    image = bytearray(images["joliet"].read_bytes())
    svd = next(n * SECTOR for n in range(16, 32) if image[n * SECTOR] == 2)
    image[svd + 88 : svd + 91] = escape
    fs = open_bytes(image)
    assert fs.joliet is joliet and fs.case_insensitive is not joliet
    assert ("Mixed Case Name With Spaces.conf" in fs.listdir("/")) is joliet


def test_not_iso9660(rr_bytes: bytes) -> None:
    image = bytearray(rr_bytes)
    image[16 * SECTOR + 1 : 16 * SECTOR + 6] = b"CD002"
    assert open_filesystem(MemorySource(bytes(image))) is None
    assert open_filesystem(MemorySource(rr_bytes[: 16 * SECTOR + 100])) is None
    image = bytearray(rr_bytes)
    for sector in range(16, 20):
        if image[sector * SECTOR] == 255:
            image[sector * SECTOR + 1 : sector * SECTOR + 6] = b"XXXXX"
    with pytest.raises(CorruptError, match="terminator"):
        open_filesystem(MemorySource(bytes(image)))


# -- fuzzing ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_images(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, int]]:
    """Small images and where their metadata ends (the first file data)."""
    tmp = tmp_path_factory.mktemp("isofuzz")
    tree: Tree = {
        "boot/grub/grub.cfg": "cfg\n",
        "k": rand(40, 5000),
        LONG_NAME: "x",
        "l1": Symlink("boot/grub/grub.cfg"),
        "l2": Symlink(LONG_TARGET),
        "a/b/c/d/e/f/g/h/i/j.txt": "j",
        **{f"d/f{i:02d} long name.txt": f"{i}" for i in range(30)},
    }
    found = []
    for name, options in [
        ("rr.iso", ("-R", "-J", "-rr_reloc_dir", "rr_moved")),
        ("j.iso", ("--norock", "-J")),
        ("p.iso", ("--norock",)),
    ]:
        image = make_iso(tmp, tree, name, *options).read_bytes()
        fs = open_bytes(image)
        first_data = min(
            start
            for path in walk(fs)
            if fs.lstat(path).type is NodeType.FILE and fs.stat(path).size
            for start, _length in fs.resolve(path).sections
        )
        found.append((image, first_data))
    return found


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzz_mutated_metadata(fuzz_images: list[tuple[bytes, int]], data: st.DataObject) -> None:
    image, metadata_end = data.draw(st.sampled_from(fuzz_images))
    mutated = bytearray(image)
    for _ in range(data.draw(st.integers(1, 12))):
        offset = data.draw(st.integers(16 * SECTOR, metadata_end - 1))
        value = data.draw(st.sampled_from([0, 1, 4, 5, 0x22, 0x80, 0xFF]) | st.integers(0, 255))
        mutated[offset] = value
    if data.draw(st.booleans()):
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
    walk = partial(explore, max_depth=16)
    open_and_walk(open_filesystem, GuardedSource(bytes(mutated)), walk, seconds=5)
