"""The FAT12/16/32 reader against images made by mkfs.fat and mtools.

mtools is the independent oracle: ``mdir -/ -b`` for listings, ``mshowfat`` for cluster
chains, and blkid for the FAT type, serial and label. File contents are compared with
the files the images were made from.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from fswalk import GuardedSource, explore, open_and_walk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import MiB, make_fat, make_partitioned, mtool, run, write_tree

from pygrub.disk import FileSource, MemorySource, SliceSource
from pygrub.errors import CorruptError
from pygrub.fs import probe
from pygrub.fs.base import Filesystem, NodeType
from pygrub.fs.fat import FatFilesystem, lfn_checksum, open_filesystem

# -- building images -----------------------------------------------------------------------


def rand(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


TREE: dict[str, bytes | str | None] = {
    "EFI/BOOT/BOOTX64.EFI": rand(1, 70_000),
    "loader/loader.conf": "default arch.conf\ntimeout 3\n",
    "loader/entries/arch.conf": "title Arch\nlinux /vmlinuz-linux\ninitrd /initramfs-linux.img\n",
    "loader/entries/Fallback Entry With A Rather Long Name.conf": "title Fallback\n",
    "vmlinuz-linux": rand(2, 300_000),
    "initramfs-linux.img": rand(3, 123_457),
    "Ünïcödé ñame — ok.txt": "unicode\n",
    "lower.txt": "lower\n",
    "MiXeD.TxT": "mixed\n",
    "README.txt": "readme\n",
    "a/b/c/d/e/f/g/h/i/j/deep.txt": "deep\n",
    "empty.txt": b"",
    "emptydir": None,
    **{f"many/file number {i:03d} with a long name.txt": f"{i}\n" for i in range(120)},
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    tmp = tmp_path_factory.mktemp("fat")
    sizes = {12: 4096, 16: 32768, 32: 66000}
    return {
        bits: make_fat(
            tmp, TREE, bits, sizes[bits], f"fat{bits}.img", ("-n", f"VOL{bits}", "-i", "1234ABCD")
        )
        for bits in (12, 16, 32)
    }


def open_image(path: Path) -> FatFilesystem:
    fs = open_filesystem(FileSource(str(path)))
    assert isinstance(fs, FatFilesystem)
    return fs


def walk(fs: Filesystem, path: str = "/", depth: int = 0) -> Iterator[str]:
    """Every path under ``path``, directories with a trailing slash, as mdir -/ -b prints."""
    for name in fs.listdir(path):
        child = path.rstrip("/") + "/" + name
        if fs.stat(child).type is NodeType.DIR:
            yield child + "/"
            if depth < 32:
                yield from walk(fs, child, depth + 1)
        else:
            yield child


def mdir_paths(image: Path) -> set[str]:
    out = mtool("mdir", "-/", "-b", "-i", image, "::/")
    return {line[2:] for line in out.splitlines() if line.startswith("::/")}


def blkid(image: Path) -> dict[str, str]:
    out = run("blkid", "-p", "-o", "export", image).decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def expected_paths(tree: dict[str, bytes | str | None]) -> set[str]:
    paths = set()
    for rel, content in tree.items():
        parts = rel.split("/")
        for i in range(1, len(parts)):
            paths.add("/" + "/".join(parts[:i]) + "/")
        paths.add("/" + rel + ("/" if content is None else ""))
    return paths


def as_bytes(content: bytes | str) -> bytes:
    return content.encode() if isinstance(content, str) else content


# -- the readable cases ----------------------------------------------------------------------


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_listing_matches_mdir(images: dict[int, Path], bits: int) -> None:
    fs = open_image(images[bits])
    ours = set(walk(fs))
    assert ours == mdir_paths(images[bits])
    assert ours == expected_paths(TREE)


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_every_file_reads_back(images: dict[int, Path], bits: int) -> None:
    fs = open_image(images[bits])
    for rel, content in TREE.items():
        if content is None:
            assert fs.is_dir(rel)
            continue
        data = as_bytes(content)
        assert fs.stat(rel).size == len(data)
        with fs.open(rel) as f:
            assert f.read() == data, rel
        pieces = list(fs.extents(rel))
        assert sum(length for _off, length, _where in pieces) == len(data)


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_type_serial_and_label_match_blkid(images: dict[int, Path], bits: int) -> None:
    fs = open_image(images[bits])
    info = blkid(images[bits])
    assert fs.geo.bits == bits
    assert info["VERSION"] == f"FAT{bits}"
    assert fs.uuid == info["UUID"] == "1234-ABCD"
    assert fs.label == info["LABEL"] == f"VOL{bits}"
    assert fs.kind == "fat"


def test_probe_finds_fat(images: dict[int, Path]) -> None:
    for path in images.values():
        fs = probe(FileSource(str(path)))
        assert isinstance(fs, FatFilesystem)


def test_lookup_ignores_case_and_finds_8_3_aliases(images: dict[int, Path]) -> None:
    fs = open_image(images[32])
    assert fs.read_file("/efi/boot/bootx64.efi", 1 << 20) == TREE["EFI/BOOT/BOOTX64.EFI"]
    assert fs.read_file("/LOADER/Entries/ARCH.CONF", 100) == as_bytes(
        TREE["loader/entries/arch.conf"]
    )
    # mdir's long listing shows each 8.3 alias beside its long name.
    listing = mtool("mdir", "-i", images[32], "::/")
    line = next(line for line in listing.splitlines() if line.endswith(" vmlinuz-linux"))
    base, ext = line[:8].rstrip(), line[9:12].rstrip()
    alias = f"{base}.{ext}" if ext else base
    assert alias != "vmlinuz-linux"
    assert fs.read_file("/" + alias, 1 << 20) == TREE["vmlinuz-linux"]
    assert fs.read_file("/" + alias.lower(), 1 << 20) == TREE["vmlinuz-linux"]


def test_nt_lower_case_flags(images: dict[int, Path]) -> None:
    fs = open_image(images[16])
    names = fs.listdir("/")
    # mtools stores these as 8.3 entries with the NT case flags, not long names.
    assert "lower.txt" in names and "README.txt" in names


def test_deleted_entries_vanish_and_fragmented_file_matches_mshowfat(tmp_path: Path) -> None:
    # Two holes left by deleted files on an otherwise full volume: the next file must
    # be split across both.
    src = write_tree(tmp_path / "src", {"gap1.bin": rand(10, 20_000), "keep1.bin": rand(11, 9000)})
    image = make_fat(tmp_path, {"gap2.bin": rand(12, 30_000)}, 16, 16384, "frag.img")
    mtool("mcopy", "-i", image, src / "keep1.bin", "::/keep1.bin")
    mtool("mcopy", "-i", image, src / "gap1.bin", "::/gap1.bin")
    mtool("mcopy", "-i", image, src / "keep1.bin", "::/keep2.bin")
    free = int(
        re.search(r"([\d ]+) bytes free", mtool("mdir", "-i", image, "::/"))[1].replace(" ", "")
    )
    (src / "filler.bin").write_bytes(bytes(free))
    mtool("mcopy", "-i", image, src / "filler.bin", "::/filler.bin")
    mtool("mdel", "-i", image, "::/gap1.bin", "::/gap2.bin")
    big = rand(13, 45_000)
    (src / "big.bin").write_bytes(big)
    mtool("mcopy", "-i", image, src / "big.bin", "::/big.bin")

    fs = open_image(image)
    assert set(fs.listdir("/")) == {"keep1.bin", "keep2.bin", "filler.bin", "big.bin"}
    assert set(fs.listdir("/")) == {p.strip("/") for p in mdir_paths(image)}
    assert fs.read_file("/big.bin", 1 << 20) == big

    # Our extents, as cluster ranges, against mshowfat's "<first-last>" list.
    geo = fs.geo
    ranges = []
    for _file_offset, length, where in fs.extents("/big.bin"):
        assert isinstance(where, tuple)
        first = (where[1] - geo.data_offset) // geo.cluster_size + 2
        ranges.append((first, first + -(-length // geo.cluster_size) - 1))
    shown = mtool("mshowfat", "-i", image, "::/big.bin")
    oracle = [(int(a), int(b or a)) for a, b in re.findall(r"<(\d+)(?:-(\d+))?>", shown)]
    assert len(oracle) >= 2, "the file should be fragmented"
    assert ranges == oracle


def test_root_label_entry_wins_over_boot_sector_label(tmp_path: Path) -> None:
    image = make_fat(tmp_path, {"x": "x"}, 16, 16384, "label.img", ("-n", "ROOTLABEL"))
    data = bytearray(image.read_bytes())
    data[43:54] = b"BPBLABEL   "  # BS_VolLab of FAT12/16
    image.write_bytes(data)
    fs = open_image(image)
    assert fs.label == "ROOTLABEL" == blkid(image)["LABEL"]


def test_esp_on_a_gpt_disk(tmp_path: Path, images: dict[int, Path]) -> None:
    disk = make_partitioned(tmp_path, [(images[32], "U")], label="gpt")
    source = FileSource(str(disk))
    volume = SliceSource(source, MiB, images[32].stat().st_size)
    fs = probe(volume)
    assert isinstance(fs, FatFilesystem)
    assert fs.is_file("/EFI/BOOT/BOOTX64.EFI")
    assert sorted(fs.listdir("/loader/entries")) == sorted(
        ["arch.conf", "Fallback Entry With A Rather Long Name.conf"]
    )
    assert fs.read_file("/loader/loader.conf", 1000) == b"default arch.conf\ntimeout 3\n"
    # DATA extents are host spans of the disk image: ready for copy_file_range.
    ((_off, length, where),) = list(fs.extents("/loader/loader.conf"))
    assert isinstance(where, tuple)
    with open(disk, "rb") as f:
        f.seek(where[1])
        assert f.read(length) == b"default arch.conf\ntimeout 3\n"


# -- hostile images ----------------------------------------------------------------------------


def small_image(tmp_path: Path, bits: int = 12) -> tuple[bytearray, FatFilesystem]:
    tree: dict[str, bytes | str | None] = {
        "file.bin": rand(20, 10_000),
        "dir/inner.txt": "inner\n",
        **{f"big dir/long file name {i:02d}.txt": f"{i}" for i in range(60)},
    }
    sizes = {12: 2048, 16: 16384, 32: 66000}
    image = make_fat(tmp_path, tree, bits, sizes[bits], f"small{bits}.img", ("-s", "1"))
    data = bytearray(image.read_bytes())
    return data, reopen(data)


def reopen(data: bytes | bytearray) -> FatFilesystem:
    fs = open_filesystem(MemorySource(bytes(data)))
    assert isinstance(fs, FatFilesystem)
    return fs


def set_fat_entry(data: bytearray, fs: FatFilesystem, cluster: int, value: int) -> None:
    """Write one entry into every FAT copy (the test's own FAT12/16/32 encoder)."""
    geo = fs.geo
    copies = range(geo.fat_offset, geo.root_offset, geo.fat_bytes)
    for base in copies:
        if geo.bits == 12:
            pos = base + cluster + cluster // 2
            old = int.from_bytes(data[pos : pos + 2], "little")
            new = (old & 0x000F) | (value << 4) if cluster & 1 else (old & 0xF000) | value
            data[pos : pos + 2] = new.to_bytes(2, "little")
        elif geo.bits == 16:
            data[base + cluster * 2 : base + cluster * 2 + 2] = value.to_bytes(2, "little")
        else:
            data[base + cluster * 4 : base + cluster * 4 + 4] = value.to_bytes(4, "little")


def first_cluster(fs: FatFilesystem, path: str) -> int:
    return fs.resolve(path).first_cluster


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_cluster_chain_loop_is_corrupt(tmp_path: Path, bits: int) -> None:
    data, fs = small_image(tmp_path, bits)
    first = first_cluster(fs, "/file.bin")
    set_fat_entry(data, fs, first + 1, first)
    with pytest.raises(CorruptError, match="loops"):
        reopen(data).read_file("/file.bin", 1 << 20)


@pytest.mark.parametrize("bits", [16, 32])
def test_loop_into_the_middle_of_a_stretch_is_corrupt(tmp_path: Path, bits: int) -> None:
    """The last cluster links back into the file's own run: found though no single link
    points at a cluster the walk has just passed."""
    data, fs = small_image(tmp_path, bits)
    ((first, count),) = list(fs.runs(first_cluster(fs, "/file.bin"), 1000, "test"))
    assert count >= 4
    set_fat_entry(data, fs, first + count - 1, first + count // 2)
    fs = reopen(data)
    with pytest.raises(CorruptError, match="loops"):
        list(fs.runs(first, 10 * count, "test"))


def test_reserved_high_bits_of_fat32_links_are_ignored(tmp_path: Path) -> None:
    """The top 4 bits of a FAT32 entry are reserved: a link with them set still links."""
    data, fs = small_image(tmp_path, 32)
    expected = fs.read_file("/file.bin", 1 << 20)
    ((first, count),) = list(fs.runs(first_cluster(fs, "/file.bin"), 1000, "test"))
    set_fat_entry(data, fs, first + 1, (first + 2) | 0xF000_0000)
    fs = reopen(data)
    assert list(fs.runs(first, 1000, "test")) == [(first, count)]
    assert fs.read_file("/file.bin", 1 << 20) == expected


RUNS = st.lists(st.tuples(st.integers(2, 5000), st.integers(1, 200)), max_size=40)


@given(
    st.one_of(
        RUNS,
        RUNS.map(sorted),  # climbing, with overlaps where sorted runs meet
        st.tuples(RUNS.map(sorted), RUNS).map(lambda pair: pair[0] + pair[1]),
    )
)
@settings(max_examples=300, deadline=None)
def test_visited_runs_agree_with_a_set(runs: list[tuple[int, int]]) -> None:
    """Marking runs (kept as runs while they climb, then a set, then a bitmap past
    VISITED_SET_MAX) finds exactly the overlaps a plain set of clusters finds."""
    from unittest import mock

    from pygrub.fs import fat

    with (
        mock.patch.object(fat, "VISITED_SET_MAX", 300),
        mock.patch.object(fat, "CLIMBING_RUNS_MAX", 8),
    ):
        visited, seen = fat._VisitedClusters(5300), set()
        for start, count in runs:
            run = set(range(start, start + count))
            fresh = seen.isdisjoint(run)
            assert visited.add_run(start, count) == fresh
            if not fresh:
                break
            seen |= run


def test_directory_chain_loop_is_corrupt(tmp_path: Path) -> None:
    data, fs = small_image(tmp_path, 12)
    runs = fs.runs(first_cluster(fs, "/big dir"), 1000, "test")
    chain = [cluster for start, count in runs for cluster in range(start, start + count)]
    assert len(chain) >= 2
    set_fat_entry(data, fs, chain[-1], chain[0])
    # Fill the rest of the last cluster so no end marker stops the walk first.
    last = fs.geo.cluster_offset(chain[-1])
    used = bytes(data[last : last + fs.geo.cluster_size])
    entry = next(i for i in range(0, len(used), 32) if used[i] == 0)
    for pos in range(entry, fs.geo.cluster_size, 32):
        data[last + pos : last + pos + 32] = b"\xe5" + b" " * 10 + b"\x20" + bytes(20)
    with pytest.raises(CorruptError, match="loops"):
        reopen(data).listdir("/big dir")


@pytest.mark.parametrize(
    ("value", "message"),
    [(0, "free"), (1, "reserved"), (0xFF7, "bad cluster"), (0xFF0, "not one of")],
)
def test_chain_into_free_reserved_bad_or_missing_cluster(
    tmp_path: Path, value: int, message: str
) -> None:
    data, fs = small_image(tmp_path, 12)
    set_fat_entry(data, fs, first_cluster(fs, "/file.bin"), value)
    with pytest.raises(CorruptError, match=message):
        reopen(data).read_file("/file.bin", 1 << 20)


def test_file_longer_than_its_chain(tmp_path: Path) -> None:
    data, fs = small_image(tmp_path, 12)
    first = first_cluster(fs, "/file.bin")
    set_fat_entry(data, fs, first, 0xFFF)
    with pytest.raises(CorruptError, match="chain ends after 512 of 10000"):
        reopen(data).read_file("/file.bin", 1 << 20)


def test_size_beyond_the_volume(tmp_path: Path) -> None:
    data, fs = small_image(tmp_path, 12)
    node = fs.resolve("/file.bin")
    data[node.entry + 28 : node.entry + 32] = (0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(CorruptError, match="more clusters than the volume has"):
        reopen(data).read_file("/file.bin", 1 << 20)


@pytest.mark.parametrize("damage", ["checksum", "sequence", "deleted"])
def test_orphaned_long_name_falls_back_to_8_3(tmp_path: Path, damage: str) -> None:
    data, fs = small_image(tmp_path, 12)
    node = fs.resolve("/big dir/long file name 07.txt")
    short = bytes(data[node.entry : node.entry + 11])
    # 21 characters: two long-name entries (LDIR_Ord 0x42, then 1) before the 8.3 entry,
    # each with the 8.3 name's checksum at byte 13.
    last, first = node.entry - 64, node.entry - 32
    assert data[last] == 0x42 and data[first] == 0x01
    assert data[first + 11] == 0x0F and data[first + 13] == lfn_checksum(short)
    if damage == "checksum":
        data[first + 13] ^= 0xFF
    elif damage == "sequence":
        data[last] = 0x43
    else:
        data[last] = 0xE5
    names = reopen(data).listdir("/big dir")
    assert "long file name 07.txt" not in names
    assert "long file name 08.txt" in names
    base, ext = short[:8].decode().rstrip(), short[8:].decode().rstrip()
    assert f"{base}.{ext}" in names


def test_not_fat_returns_none(tmp_path: Path) -> None:
    data, _fs = small_image(tmp_path, 12)
    for offset, value in [(11, b"\x03\x00"), (13, b"\x03"), (14, b"\x00\x00"), (21, b"\x12")]:
        broken = bytearray(data)
        broken[offset : offset + len(value)] = value
        assert open_filesystem(MemorySource(bytes(broken))) is None
    assert open_filesystem(MemorySource(bytes(510) + b"\x55\xaa")) is None
    assert open_filesystem(MemorySource(b"")) is None


def test_boot_sector_larger_than_volume(tmp_path: Path) -> None:
    data, _fs = small_image(tmp_path, 12)
    with pytest.raises(CorruptError, match="more than the"):
        open_filesystem(MemorySource(bytes(data[: len(data) // 2])))


# -- fuzzing -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int]:
    tmp = tmp_path_factory.mktemp("fatfuzz")
    tree: dict[str, bytes | str | None] = {
        "dir/sub/file.txt": "hello\n",
        "A Long File Name.conf": "long\n",
        "k.bin": rand(30, 3000),
        **{f"many/n{i:02d} long name.txt": f"{i}" for i in range(20)},
    }
    image = make_fat(tmp, tree, 12, 512, "fuzz.img", ("-s", "1", "-r", "64"))
    data = image.read_bytes()
    fs = reopen(data)
    # The metadata: boot sector, FATs, root directory and the first clusters (directories).
    return data, fs.geo.data_offset + 16 * fs.geo.cluster_size


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzz_mutated_metadata(fuzz_image: tuple[bytes, int], data: st.DataObject) -> None:
    image, metadata_end = fuzz_image
    mutated = bytearray(image)
    for _ in range(data.draw(st.integers(1, 12))):
        offset = data.draw(st.integers(0, metadata_end - 1))
        mutated[offset] = data.draw(
            st.sampled_from([0, 1, 0x0F, 0x7F, 0x80, 0xE5, 0xFF]) | st.integers(0, 255)
        )
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(mutated)))
        mutated = mutated[:cut]
    walk = partial(explore, max_depth=12)
    open_and_walk(open_filesystem, GuardedSource(bytes(mutated)), walk, seconds=5)
