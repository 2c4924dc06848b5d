"""Volume discovery: MBR (primary, extended, logical), GPT, Solaris VTOC, HybridISO, whole disk.

Tables are made by the real tools (sfdisk, sgdisk, mkfs.fat, mke2fs) and read back with
them as the oracle (``sfdisk --json``, ``sgdisk -i``, ``fdisk -b 4096 -l``, and Xen's own
pygrub where it gets the case right). Two things are written by hand here, from the
specifications, because no tool makes them on a file: a GPT with 4096-byte sectors (the
UEFI layout, CRC32s included; ``fdisk -b 4096`` then checks our writer) and a Solaris
x86 VTOC (illumos sys/dklabel.h; Xen's ``get_solaris_slice`` checks it).
"""

from __future__ import annotations

import json
import logging
import random
import re
import struct
import time
import uuid
import zlib
from pathlib import Path

import pytest
from fswalk import SparseSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import MiB, make_ext, make_isohybrid_iso, make_partitioned, run
from xen import xen_module

from pygrub.disk import ByteSource, FileSource, MemorySource, SliceSource
from pygrub.limits import MAX_LOGICAL_PARTITIONS, MAX_PARTITIONS
from pygrub.volumes import Volume, discover, volume_at_offset
from pygrub.volumes.gpt import ESP_TYPE, LINUX_FILESYSTEM_TYPE, MAX_ENTRY_ARRAY_BYTES

SECTOR = 512
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# ---------------------------------------------------------------- helpers


def discover_file(path: Path) -> list[Volume]:
    return discover(FileSource(str(path)))


def names(volumes: list[Volume]) -> list[str]:
    return [v.grub_name for v in volumes]


def spans(volumes: list[Volume]) -> dict[str, tuple[int, int]]:
    return {v.grub_name: (v.offset, v.source.size) for v in volumes}


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def sfdisk_table(disk: Path, lines: list[str], size_mb: int, label: str = "dos") -> Path:
    """A sparse disk of ``size_mb`` MiB with the table an sfdisk script describes."""
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate(size_mb * MiB)
    script = "\n".join([f"label: {label}", "unit: sectors", *lines]) + "\n"
    run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk, input=script.encode())
    return disk


def sfdisk_partitions(disk: Path) -> dict[int, dict]:
    """Partition number -> sfdisk's JSON record (the oracle for MBR and GPT)."""
    table = json.loads(run("sfdisk", "--json", disk))["partitiontable"]
    found = {}
    for p in table.get("partitions", []):
        number = int(re.search(r"(\d+)$", p["node"])[1])
        found[number] = p
    return found


def sfdisk_spans(disk: Path, prefix: str) -> dict[str, tuple[int, int]]:
    """grub name -> (offset, size) per sfdisk, extended containers left out."""
    return {
        f"hd0,{prefix}{n}": (p["start"] * SECTOR, p["size"] * SECTOR)
        for n, p in sfdisk_partitions(disk).items()
        if p["type"].lower() not in ("5", "f", "85")
    }


def sgdisk_info(disk: Path, number: int) -> dict[str, object]:
    out = run("sgdisk", "-i", str(number), disk).decode()
    first = int(re.search(r"First sector: (\d+)", out)[1])
    last = int(re.search(r"Last sector: (\d+)", out)[1])
    return {
        "type": re.search(r"Partition GUID code: (\S+)", out)[1].lower(),
        "offset": first * SECTOR,
        "size": (last - first + 1) * SECTOR,
        "name": re.search(r"Partition name: '(.*)'", out)[1],
        "attributes": int(re.search(r"Attribute flags: ([0-9A-Fa-f]+)", out)[1], 16),
    }


def xen_offsets(disk: Path) -> list[int]:
    return xen_module().get_partition_offsets(str(disk))


def second_ebr_sector(disk: Path, extended_start: int) -> int:
    """Where the EBR at ``extended_start`` says the next one is (its second entry's start
    counts from the extended partition's start)."""
    with open(disk, "rb") as f:
        f.seek(extended_start * SECTOR + 446 + 16 + 8)
        (link,) = struct.unpack("<I", f.read(4))
    return extended_start + link


def poke(disk: Path, offset: int, data: bytes) -> None:
    with open(disk, "r+b") as f:
        f.seek(offset)
        f.write(data)


def mbr_entry(status: int, ptype: int, lba: int, sectors: int) -> bytes:
    # status, CHS first, type, CHS last, LBA first, sectors (CHS unused by everyone here)
    return struct.pack("<B3sB3sII", status, b"\xff\xff\xff", ptype, b"\xff\xff\xff", lba, sectors)


def mbr_sector(entries: list[bytes], boot_code: bytes = b"") -> bytes:
    entries = entries + [bytes(16)] * (4 - len(entries))
    return boot_code.ljust(446, b"\0") + b"".join(entries) + b"\x55\xaa"


# -------------------------------------------------- GPT writer (UEFI spec layout)

GPT_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
GPT_ENTRY = struct.Struct("<16s16sQQQ72s")


def gpt_entry(type_guid: str, first: int, last: int, name: str = "", attributes: int = 0) -> bytes:
    return GPT_ENTRY.pack(
        uuid.UUID(type_guid).bytes_le,
        uuid.uuid4().bytes_le,
        first,
        last,
        attributes,
        name.encode("utf-16-le")[:72],
    )


def gpt_header(
    lba: int,
    alternate: int,
    first_usable: int,
    last_usable: int,
    entry_lba: int,
    count: int,
    entry_size: int,
    entries_crc: int,
    header_size: int = GPT_HEADER.size,
    length: int = GPT_HEADER.size,
) -> bytes:
    """A GPT header with its CRC32 over ``header_size`` bytes, ``length`` bytes long."""
    fields = (
        b"EFI PART",
        0x00010000,
        header_size,
        0,
        0,
        lba,
        alternate,
        first_usable,
        last_usable,
        uuid.UUID(int=0x1234).bytes_le,
        entry_lba,
        count,
        entry_size,
        entries_crc,
    )
    header = bytearray(GPT_HEADER.pack(*fields).ljust(4096, b"\0"))
    struct.pack_into("<I", header, 16, zlib.crc32(header[:header_size]))
    return bytes(header[:length])


def write_gpt(
    image: bytearray,
    sector_size: int,
    entries: dict[int, bytes],
    count: int = 128,
    entry_size: int = 128,
) -> None:
    """A protective MBR, primary and backup GPT with ``entries`` (0-based index -> bytes)."""
    total = len(image) // sector_size
    array = bytearray(count * entry_size)
    for index, raw in entries.items():
        array[index * entry_size : index * entry_size + len(raw)] = raw
    array_sectors = -(-len(array) // sector_size)
    first_usable, last_usable = 2 + array_sectors, total - 2 - array_sectors
    crc = zlib.crc32(array)
    protective = mbr_entry(0, 0xEE, 1, min(total - 1, 0xFFFFFFFF))
    image[0:512] = mbr_sector([protective])
    backup_array_lba = total - 1 - array_sectors
    for lba, alternate, entry_lba in ((1, total - 1, 2), (total - 1, 1, backup_array_lba)):
        header = gpt_header(
            lba, alternate, first_usable, last_usable, entry_lba, count, entry_size, crc
        )
        image[lba * sector_size : lba * sector_size + len(header)] = header
        image[entry_lba * sector_size : entry_lba * sector_size + len(array)] = array


def fdisk_gpt(disk: Path, sector_size: int) -> dict[int, dict[str, object]]:
    """fdisk's reading of a GPT with the given sector size: number -> start, end, type, name."""
    out = run("fdisk", "-b", str(sector_size), "-l", "-o", "Device,Start,End,Type-UUID", disk)
    found = {}
    for line in out.decode().splitlines():
        m = re.match(rf"^{re.escape(str(disk))}(\d+)\s+(\d+)\s+(\d+)\s+(\S+)$", line)
        if m:
            found[int(m[1])] = {"start": int(m[2]), "end": int(m[3]), "type": m[4].lower()}
    assert "corrupt" not in out.decode().lower()
    return found


# -------------------------------------------------- Solaris VTOC writer (dklabel.h)

VTOC_SLICE = struct.Struct("<HHII")


def vtoc_label(slices: dict[int, tuple[int, int, int]], nparts: int = 16) -> bytes:
    """A 512-byte x86 dk_label: slot -> (tag, start sector, size in sectors)."""
    label = bytearray(512)
    struct.pack_into("<I", label, 12, 0x600DDEEE)  # v_sanity
    struct.pack_into("<I", label, 16, 1)  # v_version
    struct.pack_into("<HH", label, 28, 512, nparts)  # v_sectorsz, v_nparts
    for slot, (tag, start, size) in slices.items():
        VTOC_SLICE.pack_into(label, 72 + 12 * slot, tag, 0, start, size)
    struct.pack_into("<H", label, 508, 0xDABE)  # dkl_magic
    checksum = 0
    for (word,) in struct.iter_unpack("<H", bytes(label[:510])):
        checksum ^= word
    struct.pack_into("<H", label, 510, checksum)  # dkl_cksum
    return bytes(label)


# ---------------------------------------------------------------- MBR


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_mbr_primaries_match_sfdisk_and_xen(tmp_path, count):
    disk = make_partitioned(tmp_path, [(1 + i, "83") for i in range(count)])
    volumes = discover_file(disk)
    assert names(volumes) == [f"hd0,msdos{i}" for i in range(1, count + 1)]
    assert spans(volumes) == sfdisk_spans(disk, "msdos")
    assert [v.offset for v in volumes] == xen_offsets(disk)
    assert [v.number for v in volumes] == list(range(1, count + 1))
    assert volumes[0].origin == "MBR partition 1 (type 0x83)"
    assert not any(v.bootable for v in volumes)


def test_active_partition_goes_first(tmp_path):
    disk = make_partitioned(tmp_path, [(1, "83"), (1, "83"), (2, "83"), (1, "83")], bootable=3)
    volumes = discover_file(disk)
    assert names(volumes) == ["hd0,msdos3", "hd0,msdos1", "hd0,msdos2", "hd0,msdos4"]
    assert volumes[0].bootable and volumes[0].origin == "MBR partition 3 (type 0x83, active)"
    assert spans(volumes) == sfdisk_spans(disk, "msdos")
    # Xen 4.17's Python 3 port compares bytes with str, so it never moves the active one.
    assert sorted(v.offset for v in volumes) == sorted(xen_offsets(disk))


@pytest.mark.parametrize("ext_type", ["5", "f", "85"])
def test_extended_and_logical_partitions(tmp_path, ext_type):
    disk = sfdisk_table(
        tmp_path / "disk.img",
        [
            "start=2048, size=4096, type=83",
            f"start=8192, size=40960, type={ext_type}",
            "start=51200, size=2048, type=83, bootable",
            "start=10240, size=4096, type=83",
            "start=16384, size=4096, type=82",
            "start=22528, size=8192, type=83",
            "start=32768, size=2048, type=7",
        ],
        size_mb=32,
    )
    volumes = discover_file(disk)
    assert names(volumes) == [
        "hd0,msdos3",
        "hd0,msdos1",
        "hd0,msdos5",
        "hd0,msdos6",
        "hd0,msdos7",
        "hd0,msdos8",
    ]
    assert spans(volumes) == sfdisk_spans(disk, "msdos")
    assert [v.number for v in volumes] == [3, 1, 5, 6, 7, 8]
    assert volumes[3].origin == "MBR logical partition 6 (type 0x82)"


def test_ebr_chain_loop_is_cut(tmp_path, caplog):
    disk = sfdisk_table(
        tmp_path / "disk.img",
        [
            "start=2048, size=30720, type=5",
            "start=4096, size=2048, type=83",
            "start=8192, size=2048, type=83",
        ],
        size_mb=16,
    )
    # The first EBR (at the extended start) links to the second; make the second link back.
    poke(disk, second_ebr_sector(disk, 2048) * SECTOR + 446 + 16, mbr_entry(0, 0x05, 0, 2048))
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    assert names(volumes) == ["hd0,msdos5", "hd0,msdos6"]
    assert "loop" in caplog.text


def test_partition_2_alone_keeps_its_number(tmp_path):
    """Partition 1 deleted (slot 1 empty): partition 2 is still found, still (hd0,msdos2)."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(8 * MiB)
    script = f"label: dos\nunit: sectors\n{disk}2 : start=2048, size=4096, type=83\n"
    run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk, input=script.encode())
    volumes = discover_file(disk)
    assert spans(volumes) == sfdisk_spans(disk, "msdos") == {"hd0,msdos2": (1 * MiB, 2 * MiB)}
    assert [v.offset for v in volumes] == xen_offsets(disk)


def test_extended_partition_at_sector_0_is_not_followed(tmp_path, caplog):
    """An extended entry at LBA 0 would make the MBR its own first EBR: refused by name."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(4 * MiB)
    poke(disk, 0, mbr_sector([mbr_entry(0, 0x83, 2048, 2048), mbr_entry(0, 0x05, 0, 8192)]))
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    assert names(volumes) == ["hd0,msdos1"]
    assert "MBR partition 2: extended, at sector 0 (the MBR): skipped" in caplog.text
    assert "overlaps" not in caplog.text


@pytest.mark.parametrize("extended", [1, 2])
def test_only_the_first_extended_partition_is_followed(tmp_path, caplog, extended):
    """Two extended partitions (invalid: GRUB and Linux follow one) would number their
    logical partitions twice over: the first one's are read, with a warning naming it."""
    lines = ["start=2048, size=8192, type=5", "start=4096, size=2048, type=83"]
    disk = sfdisk_table(tmp_path / "disk.img", lines, size_mb=16)
    if extended == 2:
        # A second extended partition whose EBR holds one more logical partition.
        poke(disk, 446 + 16, mbr_entry(0, 0x0F, 12288, 4096))
        poke(disk, 12288 * SECTOR, mbr_sector([mbr_entry(0, 0x83, 2048, 1024)]))
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    assert spans(volumes) == {"hd0,msdos5": (4096 * SECTOR, 2048 * SECTOR)}
    assert ("extended partitions: following only partition 1" in caplog.text) is (extended == 2)
    assert ("MBR: 2 extended partitions" in caplog.text) is (extended == 2)


def test_ebr_without_signature_ends_the_chain(tmp_path, caplog):
    """An EBR that lost its 55 AA is no EBR (Linux's msdos partition code and GRUB stop
    there too; libfdisk reads on and offers to fix it): its entries are not read as
    partitions, and the chain ends with a warning."""
    disk = sfdisk_table(
        tmp_path / "disk.img",
        [
            "start=2048, size=30720, type=5",
            "start=4096, size=2048, type=83",
            "start=8192, size=2048, type=83",
            "start=12288, size=2048, type=83",
        ],
        size_mb=16,
    )
    second = second_ebr_sector(disk, 2048)
    poke(disk, second * SECTOR + 510, b"\0\0")
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    assert spans(volumes) == {"hd0,msdos5": (4096 * SECTOR, 2048 * SECTOR)}
    assert f"EBR at sector {second}: missing or without 55 AA signature" in caplog.text


def test_ebr_entries_in_any_slot(tmp_path):
    """An EBR whose link comes before its data entry (its first slot left empty by some
    partitioners): every slot is read, as GRUB, Linux and sfdisk read them."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(16 * MiB)
    poke(disk, 0, mbr_sector([mbr_entry(0, 0x05, 2048, 30720)]))
    poke(
        disk,
        2048 * SECTOR,
        mbr_sector([bytes(16), mbr_entry(0, 0x05, 6144, 4096), mbr_entry(0, 0x83, 2048, 2048)]),
    )
    poke(disk, (2048 + 6144) * SECTOR, mbr_sector([mbr_entry(0, 0x83, 2048, 2048)]))
    volumes = discover_file(disk)
    assert spans(volumes) == {
        "hd0,msdos5": (4096 * SECTOR, 2048 * SECTOR),
        "hd0,msdos6": (10240 * SECTOR, 2048 * SECTOR),
    }
    assert spans(volumes) == sfdisk_spans(disk, "msdos")


@pytest.mark.parametrize("per_ebr", [1, 2])
@pytest.mark.parametrize("used", [MAX_LOGICAL_PARTITIONS, MAX_LOGICAL_PARTITIONS + 1])
def test_logical_partitions_are_bounded(caplog, per_ebr, used):
    """Up to MAX_LOGICAL_PARTITIONS logical partitions are read, however many EBRs hold
    them (Linux and GRUB read every data entry of an EBR); past it the rest are ignored."""
    ebrs = -(-used // per_ebr)
    step = 1 + per_ebr  # each EBR, then its one-sector partitions
    regions = {0: mbr_sector([mbr_entry(0, 0x05, 64, ebrs * step)])}
    left = used
    for i in range(ebrs):
        data = [mbr_entry(0, 0x83, 1 + j, 1) for j in range(min(per_ebr, left))]
        left -= len(data)
        link = [mbr_entry(0, 0x05, (i + 1) * step, step)] if i + 1 < ebrs else []
        regions[(64 + i * step) * SECTOR] = mbr_sector(data + link)
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = check_discovery(SparseSource(1 * MiB, regions))
    assert len(volumes) == MAX_LOGICAL_PARTITIONS
    assert volumes[-1].grub_name == f"hd0,msdos{4 + MAX_LOGICAL_PARTITIONS}"
    assert ("rest ignored" in caplog.text) is (used > MAX_LOGICAL_PARTITIONS)


def test_active_logical_partition_and_solaris_in_a_logical_one(tmp_path):
    """A logical partition keeps its boot flag (it goes first, as an active primary would)
    and its type (a Solaris one in the chain is looked into for its VTOC)."""
    disk = sfdisk_table(
        tmp_path / "disk.img",
        [
            "start=2048, size=4096, type=83",
            "start=8192, size=40960, type=5",
            "start=10240, size=4096, type=83",
            "start=16384, size=8192, type=bf, bootable",
        ],
        size_mb=32,
    )
    assert sfdisk_partitions(disk)[6]["bootable"]
    poke(disk, 16384 * SECTOR + SECTOR, vtoc_label({0: (2, 1024, 2048)}))
    volumes = discover_file(disk)
    assert names(volumes) == [
        "hd0,msdos6,sunpc1",
        "hd0,msdos6",
        "hd0,msdos1",
        "hd0,msdos5",
    ]
    assert volumes[0].bootable and volumes[1].bootable
    assert spans(volumes)["hd0,msdos6,sunpc1"] == ((16384 + 1024) * SECTOR, 2048 * SECTOR)


def test_empty_entry_skipped_and_a_partition_to_the_last_sector_kept_quietly(tmp_path, caplog):
    """An entry with a type but 0 sectors is skipped with a warning, and the partitions
    after it are read; one that ends on the disk's last sector is whole, not "clipped"."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(4 * MiB)  # 8192 sectors
    poke(disk, 0, mbr_sector([mbr_entry(0, 0x83, 2048, 0), mbr_entry(0, 0x83, 4096, 4096)]))
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    assert spans(volumes) == {"hd0,msdos2": (2 * MiB, 2 * MiB)}
    assert messages(caplog) == ["MBR partition 1 (type 0x83): empty (0 sectors): skipped"]


def test_stale_vtoc_in_a_linux_partition_is_not_read(tmp_path):
    """Only Solaris partition types (0xbf, 0x82) are looked into for a VTOC, as in Xen's
    pygrub: a partition retyped to Linux keeps the old label in its sector 1, unread."""
    disk = sfdisk_table(tmp_path / "disk.img", ["start=2048, size=8192, type=83"], size_mb=8)
    poke(disk, 2048 * SECTOR + SECTOR, vtoc_label({0: (2, 1024, 2048)}))
    assert names(discover_file(disk)) == ["hd0,msdos1"]
    assert xen_offsets(disk) == [2048 * SECTOR]


def test_overlapping_and_out_of_disk_partitions(tmp_path, caplog):
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(4 * MiB)  # 8192 sectors
    poke(
        disk,
        0,
        mbr_sector(
            [
                mbr_entry(0, 0x83, 2048, 2048),
                mbr_entry(0, 0x83, 3000, 100),  # inside partition 1
                mbr_entry(0x80, 0x83, 9000, 100),  # starts past the end
                mbr_entry(0, 0x83, 6144, 100000),  # runs past the end
            ]
        ),
    )
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    assert spans(volumes) == {"hd0,msdos1": (1 * MiB, 1 * MiB), "hd0,msdos4": (3 * MiB, 1 * MiB)}
    assert "overlaps" in caplog.text and "past the end" in caplog.text and "clipped" in caplog.text


def test_signature_without_partitions_is_the_whole_disk(tmp_path):
    # A GRUB-style boot sector on a whole-disk filesystem: 55 AA and nothing else.
    disk = make_ext(tmp_path, {"boot/grub/menu.lst": "default 0\n"}, size_mb=4)
    assert xen_offsets(disk) == [0]
    poke(disk, 0, mbr_sector([], boot_code=b"\xeb\x63\x90GRUB"))
    volumes = discover_file(disk)
    assert [(v.grub_name, v.offset, v.source.size) for v in volumes] == [("hd0", 0, 4 * MiB)]
    assert xen_offsets(disk) == [0]


def test_bad_boot_flag_is_not_a_partition_table(tmp_path):
    disk = make_partitioned(tmp_path, [(1, "83")])
    poke(disk, 446, b"\x12")
    assert names(discover_file(disk)) == ["hd0"]


def test_protective_mbr_without_gpt_is_the_whole_disk(tmp_path, caplog):
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(2 * MiB)
    poke(disk, 0, mbr_sector([mbr_entry(0, 0xEE, 1, 4095)]))
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert names(discover_file(disk)) == ["hd0"]
    assert "no usable GPT" in caplog.text


# ---------------------------------------------------------------- whole disks


def test_whole_disk_ext4(tmp_path):
    disk = make_ext(tmp_path, {"boot/grub/grub.cfg": "linux /vmlinuz\n"}, size_mb=8)
    volumes = discover_file(disk)
    assert [(v.grub_name, v.offset, v.source.size, v.origin) for v in volumes] == [
        ("hd0", 0, 8 * MiB, "whole disk")
    ]
    assert xen_offsets(disk) == [0]


def test_offset_names_a_window_to_the_end_of_the_disk(tmp_path):
    """--offset skips discovery, as in Xen's pygrub: the volume is (hd0) from that byte to
    the disk's end, whatever the table says (here a partition smaller than that)."""
    image = make_ext(tmp_path, {"hello": "hi\n"}, size_mb=2)
    disk = make_partitioned(tmp_path, [(image, "83")])
    volume = volume_at_offset(FileSource(str(disk)), 1 * MiB)
    assert (volume.grub_name, volume.names, volume.number) == ("hd0", ("hd0",), None)
    assert (volume.offset, volume.source.size) == (1 * MiB, disk.stat().st_size - 1 * MiB)
    assert volume.source.pread(0, 2 * MiB) == image.read_bytes()
    assert str(volume) == f"(hd0) offset {1 * MiB}"


@pytest.mark.parametrize("fat_bits,size_kib", [("12", 4096), ("16", 16384), ("32", 40960)])
def test_fat_boot_sector_is_not_an_mbr(tmp_path, fat_bits, size_kib):
    disk = tmp_path / "fat.img"
    run("mkfs.fat", "-C", "-F", fat_bits, disk, str(size_kib))
    assert disk.read_bytes()[510:512] == b"\x55\xaa"
    volumes = discover_file(disk)
    assert [(v.grub_name, v.offset, v.source.size) for v in volumes] == [
        ("hd0", 0, size_kib * 1024)
    ]


@pytest.mark.parametrize(
    ("options", "size_kib", "jump"),
    [
        (("-F", "16"), 16384, None),
        (("-F", "16"), 16384, b"\xe9\x3b\x00"),
        (("-F", "12", "-s", "1"), 1024, None),
        (("-F", "16", "-S", "1024", "-s", "1"), 16384, None),
        (("-F", "16", "-S", "2048", "-s", "2"), 16384, None),
        (("-F", "16", "-S", "4096", "-s", "1"), 16384, None),
        *((("-F", "12", "-s", str(n)), 8192, None) for n in (8, 16, 32, 64, 128)),
        (("-F", "12", "-f", "1"), 4096, None),  # one FAT
        (("-F", "12", "-M", "0xf0"), 4096, None),  # the media byte of removable disks
    ],
)
def test_fat_boot_sector_with_an_entry_still_tries_the_whole_disk_first(
    tmp_path, options, size_kib, jump
):
    """A whole-disk FAT whose boot code reads as a partition entry: whatever mkfs.fat's
    sector size (4Kn disks), cluster size, FAT count and media byte; with mkfs.fat's short
    jump (EB 3C 90) or the near jump (E9) the FAT specification also allows."""
    disk = tmp_path / "fat.img"
    run("mkfs.fat", "-C", *options, disk, str(size_kib))
    if jump is not None:
        poke(disk, 0, jump)
    poke(disk, 446, mbr_entry(0, 0x83, size_kib, size_kib // 2))
    volumes = discover_file(disk)
    assert names(volumes) == ["hd0", "hd0,msdos1"]
    assert volumes[0].origin == "whole disk (FAT boot sector)"


def test_hybrid_iso_whole_disk_first(tmp_path):
    disk = make_partitioned(tmp_path, [(2, "ef"), (1, "83")], bootable=2)
    poke(disk, 0x8000, b"\x01CD001\x01")
    volumes = discover_file(disk)
    assert names(volumes) == ["hd0", "hd0,msdos2", "hd0,msdos1"]
    assert volumes[0].offset == 0 and volumes[0].source.size == disk.stat().st_size
    assert spans(volumes[1:]) == sfdisk_spans(disk, "msdos")


def test_isohybrid_partition_at_sector_0_names_the_whole_disk(tmp_path, caplog):
    esp = tmp_path / "esp.img"
    run("mkfs.fat", "-C", esp, "1024")
    image = make_isohybrid_iso(tmp_path, {"README": "live"}, "-append_partition", "2", "0xef", esp)
    # The oracle: partition 1 of xorriso's MBR starts at sector 0 and spans the ISO.
    table = sfdisk_partitions(image)
    assert table[1]["start"] == 0 and table[2]["type"].lower() == "ef"
    with caplog.at_level(logging.DEBUG, "pygrub.volumes"):
        volumes = discover_file(image)
    assert names(volumes) == ["hd0", "hd0,msdos2"]
    assert volumes[0].names == ("hd0", "hd0,msdos1")
    assert spans(volumes[1:]) == {"hd0,msdos2": sfdisk_spans(image, "msdos")["hd0,msdos2"]}
    assert [r.levelname for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert (
        "MBR partition 1 (type 0x17, active): starts at sector 0: (hd0,msdos1) is the whole disk"
        in caplog.text
    )


def test_a_partition_at_sector_0_of_a_plain_mbr_is_skipped_with_a_warning(tmp_path, caplog):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4 * MiB))
    poke(disk, 0, mbr_sector([mbr_entry(0x80, 0x83, 0, 4096), mbr_entry(0, 0x83, 4096, 2048)]))
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    assert names(volumes) == ["hd0,msdos2"]
    assert "MBR partition 1 (type 0x83, active): starts at sector 0: skipped" in caplog.text


# ---------------------------------------------------------------- GPT


def test_gpt_with_gaps_matches_sgdisk(tmp_path):
    disk = tmp_path / "gpt.img"
    with open(disk, "wb") as f:
        f.truncate(8 * MiB)
    run(
        "sgdisk", "-o",
        "-n", "1:2048:+1M", "-t", "1:EF00", "-c", "1:EFI System",
        "-n", "3:6144:+2M", "-t", "3:8300", "-c", "3:rööt", "-A", "3:set:2",
        "-n", "5:12288:+512K", "-t", "5:8200",
        disk,
    )  # fmt: skip
    volumes = discover_file(disk)
    assert names(volumes) == ["hd0,gpt1", "hd0,gpt3", "hd0,gpt5"]
    assert spans(volumes) == sfdisk_spans(disk, "gpt")
    for v in volumes:
        info = sgdisk_info(disk, v.number)
        assert (v.offset, v.source.size, v.type_guid) == (
            info["offset"],
            info["size"],
            info["type"],
        )
        assert (v.label or "") == info["name"]
        assert v.bootable == bool(info["attributes"] & 4)
    assert volumes[0].type_guid == ESP_TYPE and volumes[0].label == "EFI System"
    assert volumes[1].type_guid == LINUX_FILESYSTEM_TYPE and volumes[1].label == "rööt"
    assert volumes[1].origin == "GPT partition 3 (Linux filesystem)"
    assert volumes[2].origin == "GPT partition 5 (Linux swap)"
    # Xen reads every entry of the array, empty ones too (offset 0): same non-zero offsets.
    assert sorted(set(xen_offsets(disk)) - {0}) == [v.offset for v in volumes]


def test_gpt_4096_byte_sectors_hand_written(tmp_path):
    """sgdisk cannot make a 4K-sector GPT on a file: our writer does, fdisk -b 4096 checks it."""
    image = bytearray(16 * MiB)
    entries = {
        0: gpt_entry(ESP_TYPE, 256, 511, "esp"),
        1: gpt_entry(LINUX_FILESYSTEM_TYPE, 512, 2047, "root", attributes=4),
    }
    write_gpt(image, 4096, entries)
    disk = tmp_path / "gpt4k.img"
    disk.write_bytes(image)
    oracle = fdisk_gpt(disk, 4096)
    volumes = discover_file(disk)
    assert names(volumes) == ["hd0,gpt1", "hd0,gpt2"]
    for v in volumes:
        o = oracle[v.number]
        assert (v.offset, v.source.size) == (o["start"] * 4096, (o["end"] - o["start"] + 1) * 4096)
        assert v.type_guid == o["type"]
    assert [v.label for v in volumes] == ["esp", "root"]
    assert [v.bootable for v in volumes] == [False, True]


@pytest.fixture
def sgdisk_gpt(tmp_path) -> Path:
    disk = tmp_path / "gpt.img"
    with open(disk, "wb") as f:
        f.truncate(4 * MiB)
    run("sgdisk", "-o", "-n", "1:2048:+1M", "-n", "2:4096:+1M", "-c", "2:two", disk)
    return disk


EXPECTED_GPT = {"hd0,gpt1": (1 * MiB, 1 * MiB), "hd0,gpt2": (2 * MiB, 1 * MiB)}


def test_gpt_damaged_primary_header_uses_backup(sgdisk_gpt, caplog):
    poke(sgdisk_gpt, 512 + 24, b"\x07")  # MyLBA changed: header CRC32 no longer matches
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert spans(discover_file(sgdisk_gpt)) == EXPECTED_GPT
    assert messages(caplog) == [
        "GPT primary header at byte 512: header CRC32 mismatch",
        "GPT: primary table missing or damaged: using the backup at LBA 8191",
    ]


def test_gpt_damaged_primary_entries_use_backup(sgdisk_gpt, caplog):
    poke(sgdisk_gpt, 1024 + 32, struct.pack("<Q", 3000))  # entry 1 StartingLBA
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert spans(discover_file(sgdisk_gpt)) == EXPECTED_GPT
    assert "using the backup" in caplog.text


def test_gpt_missing_primary_uses_backup(sgdisk_gpt):
    poke(sgdisk_gpt, 512, b"XXXXXXXX")
    assert spans(discover_file(sgdisk_gpt)) == EXPECTED_GPT


def test_gpt_grown_disk_finds_the_backup_where_the_primary_says(sgdisk_gpt, caplog):
    """A disk image enlarged after partitioning (qemu-img resize, truncate) keeps its
    backup GPT at the old end: AlternateLBA, not the last LBA, finds it."""
    old_size = sgdisk_gpt.stat().st_size
    with open(sgdisk_gpt, "r+b") as f:
        f.truncate(2 * old_size)
    poke(sgdisk_gpt, 1024 + 32, struct.pack("<Q", 3000))  # primary entries: CRC32 mismatch
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert spans(discover_file(sgdisk_gpt)) == EXPECTED_GPT
    assert f"using the backup at LBA {old_size // SECTOR - 1}" in caplog.text


def test_gpt_no_primary_and_a_damaged_backup_uses_the_backup(sgdisk_gpt, caplog):
    size = sgdisk_gpt.stat().st_size
    poke(sgdisk_gpt, 512, b"XXXXXXXX")
    poke(sgdisk_gpt, size - 512 + 24, b"\x01")  # backup header CRC32 mismatch
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert spans(discover_file(sgdisk_gpt)) == EXPECTED_GPT
    assert messages(caplog) == [
        f"GPT backup header at byte {size - 512}: header CRC32 mismatch",
        "GPT: backup header at LBA 8191: CRC32 mismatch and no intact copy: using it anyway",
    ]


def test_gpt_without_signatures_is_no_gpt(sgdisk_gpt):
    """Headers whose every other field and CRC32 is right are still nothing without
    "EFI PART" (the protective MBR alone then names the whole disk)."""
    size = sgdisk_gpt.stat().st_size
    poke(sgdisk_gpt, 512, b"EFI PARX")
    poke(sgdisk_gpt, size - 512, b"EFI PARX")
    assert names(discover_file(sgdisk_gpt)) == ["hd0"]


def test_gpt_entry_array_off_the_disk_and_no_backup(sgdisk_gpt, caplog):
    size = sgdisk_gpt.stat().st_size
    poke(sgdisk_gpt, 512 + 72, struct.pack("<Q", size // 512))  # PartitionEntryLBA
    poke(sgdisk_gpt, size - 512, b"XXXXXXXX")
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert names(discover_file(sgdisk_gpt)) == ["hd0"]
    assert "is outside the disk" in caplog.text and "no readable GPT header" in caplog.text


@pytest.mark.parametrize("used", [MAX_PARTITIONS, MAX_PARTITIONS + 1])
def test_gpt_partitions_in_use_are_bounded(tmp_path, caplog, used):
    """Up to MAX_PARTITIONS entries in use are read; past it the rest are ignored."""
    image = bytearray(4 * MiB)
    entries = {i: gpt_entry(LINUX_FILESYSTEM_TYPE, 2048 + i, 2048 + i) for i in range(used)}
    write_gpt(image, SECTOR, entries, count=512)
    disk = tmp_path / "gpt.img"
    disk.write_bytes(image)
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    # One-sector partitions (StartingLBA == EndingLBA) are partitions too.
    assert len(volumes) == MAX_PARTITIONS
    assert volumes[-1].grub_name == f"hd0,gpt{MAX_PARTITIONS}"
    assert volumes[-1].source.size == SECTOR
    assert ("the rest ignored" in caplog.text) is (used > MAX_PARTITIONS)


@pytest.mark.parametrize(
    ("count", "entry_size", "problem"),
    [
        (4, 120, "partition entry size 120 is invalid: ignored"),
        (4, 132, "partition entry size 132 is invalid: ignored"),
        (MAX_ENTRY_ARRAY_BYTES // 128, 128, None),
        (
            MAX_ENTRY_ARRAY_BYTES // 128 + 1,
            128,
            f"{MAX_ENTRY_ARRAY_BYTES // 128 + 1} entries of 128 bytes:"
            f" over the {MAX_ENTRY_ARRAY_BYTES}-byte limit: ignored",
        ),
    ],
)
def test_gpt_entry_size_and_array_bounds(tmp_path, caplog, count, entry_size, problem):
    """SizeOfPartitionEntry is at least 128 and a multiple of 8; an array over
    MAX_ENTRY_ARRAY_BYTES is not read. Both tables say the same, CRC32s right."""
    image = bytearray(10 * MiB)
    write_gpt(image, SECTOR, {0: gpt_entry(LINUX_FILESYSTEM_TYPE, 40, 99)}, count, entry_size)
    disk = tmp_path / "gpt.img"
    disk.write_bytes(image)
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    if problem is None:
        assert names(volumes) == ["hd0,gpt1"]
        return
    assert names(volumes) == ["hd0"]
    last = len(image) - SECTOR
    # Each header is refused where it is read, saying which and where.
    assert [m for m in messages(caplog) if m.startswith("GPT ")] == [
        f"GPT primary header at byte 512: {problem}",
        f"GPT backup header at byte {last}: {problem}",
    ]


def test_gpt_name_and_type_oddities(tmp_path):
    """A partition name that is not valid UTF-16 (a lone surrogate) reads with U+FFFD, as
    sgdisk shows it; an unknown type GUID is named in the origin."""
    odd_type = "01234567-89ab-cdef-0123-456789abcdef"
    image = bytearray(2 * MiB)
    entry = bytearray(gpt_entry(odd_type, 2048, 2559))
    entry[56:62] = "a".encode("utf-16-le") + b"\x00\xd8" + "b".encode("utf-16-le")
    write_gpt(image, SECTOR, {0: bytes(entry)})
    disk = tmp_path / "gpt.img"
    disk.write_bytes(image)
    (volume,) = discover_file(disk)
    assert volume.label == "a\ufffdb"
    assert volume.origin == f"GPT partition 1 (type {odd_type})"
    assert sgdisk_info(disk, 1)["type"] == odd_type


def test_gpt_both_damaged_uses_primary_with_warning(sgdisk_gpt, caplog):
    size = sgdisk_gpt.stat().st_size
    poke(sgdisk_gpt, 1024 + 32, struct.pack("<QQ", 3000, 5000))  # primary entry 1's LBAs
    poke(sgdisk_gpt, size - 512 + 24, b"\x01")  # backup header
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(sgdisk_gpt)
    assert spans(volumes) == {"hd0,gpt1": (3000 * SECTOR, 2001 * SECTOR)}
    assert "using it anyway" in caplog.text
    assert "overlaps" in caplog.text  # partition 2 now overlaps the damaged partition 1


def test_gpt_inverted_and_past_end_entries(tmp_path, caplog):
    image = bytearray(2 * MiB)  # 4096 sectors
    write_gpt(
        image,
        512,
        {
            0: gpt_entry(LINUX_FILESYSTEM_TYPE, 100, 99),
            1: gpt_entry(LINUX_FILESYSTEM_TYPE, 5000, 6000),
            2: gpt_entry(LINUX_FILESYSTEM_TYPE, 2048, 9999),
            3: gpt_entry(LINUX_FILESYSTEM_TYPE, 40, 2047),
        },
    )
    disk = tmp_path / "gpt.img"
    disk.write_bytes(image)
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    # gpt3 runs past the end: clipped to the disk (it overlaps the backup GPT, as it claims).
    assert spans(volumes) == {
        "hd0,gpt3": (1 * MiB, 1 * MiB),
        "hd0,gpt4": (40 * SECTOR, 2008 * SECTOR),
    }
    assert "before it starts" in caplog.text and "past the end" in caplog.text


@pytest.mark.parametrize(
    ("sector_size", "header_size", "valid"),
    [
        (512, 91, False),
        (512, 92, True),
        (512, 512, True),
        (512, 513, False),
        (4096, 4096, True),
        (4096, 4097, False),
    ],
)
def test_gpt_header_size_bounds(tmp_path, caplog, sector_size, header_size, valid):
    """UEFI: 92 <= HeaderSize <= the logical block size. The primary header here has its
    CRC32 right over HeaderSize bytes (over the sector when that is larger), so only the
    bounds can refuse it; the backup describes other partitions, so which one was read
    shows. libfdisk applies the same bounds: sfdisk is the oracle."""
    image = bytearray(4 * MiB)
    backup_entry = gpt_entry(LINUX_FILESYSTEM_TYPE, 96, 127)
    write_gpt(image, sector_size, {0: backup_entry})
    primary_array = bytearray(128 * 128)
    primary_array[:128] = gpt_entry(LINUX_FILESYSTEM_TYPE, 64, 95)
    image[2 * sector_size : 2 * sector_size + len(primary_array)] = primary_array
    total = len(image) // sector_size
    array_sectors = len(primary_array) // sector_size
    header = gpt_header(
        1, total - 1, 2 + array_sectors, total - 2 - array_sectors, 2, 128, 128,
        zlib.crc32(primary_array), header_size=header_size, length=sector_size,
    )  # fmt: skip
    image[sector_size : 2 * sector_size] = header
    disk = tmp_path / "gpt.img"
    disk.write_bytes(image)
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_file(disk)
    first = 64 if valid else 96
    assert spans(volumes) == {"hd0,gpt1": (first * sector_size, 32 * sector_size)}
    assert (f"header size {header_size} out of range" in caplog.text) is not valid
    if sector_size == SECTOR:
        assert sfdisk_partitions(disk)[1]["start"] == first


def test_gpt_on_hybrid_iso(tmp_path):
    image = bytearray(4 * MiB)
    write_gpt(image, 512, {1: gpt_entry(ESP_TYPE, 4096, 6143, "efi")})
    image[0x8001:0x8006] = b"CD001"
    disk = tmp_path / "iso.img"
    disk.write_bytes(image)
    volumes = discover_file(disk)
    assert names(volumes) == ["hd0", "hd0,gpt2"]


# ---------------------------------------------------------------- Solaris VTOC


def test_solaris_vtoc_root_slice(tmp_path):
    disk = sfdisk_table(
        tmp_path / "disk.img",
        [
            "start=2048, size=16384, type=bf, bootable",
            "start=18432, size=8192, type=82",
            "start=26624, size=8192, type=82",
        ],
        size_mb=20,
    )
    # Slot 3 is the root slice (tag 2), 4096 sectors into partition 1; s2 the whole "disk".
    poke(
        disk,
        2048 * SECTOR + SECTOR,
        vtoc_label({0: (3, 100, 1000), 2: (5, 0, 16384), 3: (2, 4096, 8192)}),
    )
    # Partition 2 (old Solaris 0x82) holds a VTOC too; partition 3 is plain Linux swap.
    poke(disk, 18432 * SECTOR + SECTOR, vtoc_label({0: (2, 64, 1024)}, nparts=8))
    volumes = discover_file(disk)
    assert names(volumes) == [
        "hd0,msdos1,sunpc4",
        "hd0,msdos1",
        "hd0,msdos2,sunpc1",
        "hd0,msdos2",
        "hd0,msdos3",
    ]
    by_name = spans(volumes)
    assert by_name["hd0,msdos1,sunpc4"] == ((2048 + 4096) * SECTOR, 8192 * SECTOR)
    assert by_name["hd0,msdos2,sunpc1"] == ((18432 + 64) * SECTOR, 1024 * SECTOR)
    assert volumes[0].bootable and volumes[0].origin.startswith("Solaris root slice 3 in MBR")
    xen = xen_module()
    assert xen.get_solaris_slice(str(disk), 2048 * SECTOR) == 4096 * SECTOR
    assert xen.get_solaris_slice(str(disk), 18432 * SECTOR) == 64 * SECTOR
    # Xen tries the root slices only, and drops the 0x82 partition without a VTOC.
    assert xen_offsets(disk) == [by_name["hd0,msdos1,sunpc4"][0], by_name["hd0,msdos2,sunpc1"][0]]


def test_solaris_root_slice_clipped_to_its_partition(tmp_path):
    disk = sfdisk_table(tmp_path / "disk.img", ["start=2048, size=4096, type=bf"], size_mb=8)
    poke(disk, 2048 * SECTOR + SECTOR, vtoc_label({0: (2, 1024, 999999)}))
    assert spans(discover_file(disk))["hd0,msdos1,sunpc1"] == (3072 * SECTOR, 3072 * SECTOR)


def test_solaris_label_checksum_mismatch_is_read_with_a_warning(tmp_path, caplog):
    """A label whose dkl_cksum does not match is still read, as Xen's pygrub reads it
    (GRUB refuses it), and the administrator is told; an intact label raises no warning."""
    disk = sfdisk_table(tmp_path / "disk.img", ["start=2048, size=8192, type=bf"], size_mb=8)
    label = vtoc_label({0: (2, 1024, 2048)})
    assert label[510:512] != b"\0\0"  # a checksum that is not 0 itself
    poke(disk, 2048 * SECTOR + SECTOR, label)
    expected = {"hd0,msdos1,sunpc1": (3072 * SECTOR, 2048 * SECTOR)}
    for damaged in (False, True):
        if damaged:
            poke(disk, 2048 * SECTOR + SECTOR + 400, b"\x01")  # in v_reserved, covered by it
        caplog.clear()
        with caplog.at_level(logging.WARNING, "pygrub.volumes"):
            volumes = discover_file(disk)
        assert {k: v for k, v in spans(volumes).items() if "sunpc" in k} == expected
        assert ("label checksum mismatch" in caplog.text) is damaged
        assert xen_module().get_solaris_slice(str(disk), 2048 * SECTOR) == 1024 * SECTOR


def test_solaris_partition_without_label_magic_has_no_slices(tmp_path):
    """Slice entries without dkl_magic are no VTOC (a wiped label, or a Linux swap partition,
    type 0x82, whose sector 1 happens to hold such bytes): the partition is read as it is."""
    disk = sfdisk_table(
        tmp_path / "disk.img",
        ["start=2048, size=8192, type=bf", "start=10240, size=4096, type=82"],
        size_mb=8,
    )
    label = bytearray(vtoc_label({0: (2, 1024, 2048)}))
    label[508:510] = b"\0\0"
    poke(disk, 2048 * SECTOR + SECTOR, label)
    poke(disk, 10240 * SECTOR + SECTOR, label)
    assert names(discover_file(disk)) == ["hd0,msdos1", "hd0,msdos2"]
    with pytest.raises(RuntimeError, match="magic"):
        xen_module().get_solaris_slice(str(disk), 2048 * SECTOR)


def test_solaris_empty_root_slice_is_passed_over(tmp_path):
    """A V_ROOT slot of 0 sectors (a slice deleted with format(1M), tag left) holds nothing:
    the next V_ROOT slice is the root. (Xen's pygrub takes the empty one and fails.)"""
    disk = sfdisk_table(tmp_path / "disk.img", ["start=2048, size=8192, type=bf"], size_mb=8)
    poke(disk, 2048 * SECTOR + SECTOR, vtoc_label({0: (2, 64, 0), 3: (2, 1024, 2048)}))
    volumes = discover_file(disk)
    assert names(volumes) == ["hd0,msdos1,sunpc4", "hd0,msdos1"]
    assert spans(volumes)["hd0,msdos1,sunpc4"] == (3072 * SECTOR, 2048 * SECTOR)


def test_solaris_partition_on_a_truncated_disk(tmp_path):
    """Found by the fuzzer: the root slice lies in the part of the partition the disk lacks."""
    disk = sfdisk_table(tmp_path / "disk.img", ["start=2048, size=8192, type=bf"], size_mb=8)
    poke(disk, 2048 * SECTOR + SECTOR, vtoc_label({0: (2, 4096, 1024)}))
    with open(disk, "r+b") as f:
        f.truncate((2048 + 4000) * SECTOR)
    assert spans(check_discovery(FileSource(str(disk)))) == {
        "hd0,msdos1": (2048 * SECTOR, 4000 * SECTOR)
    }


# ---------------------------------------------------------------- hostile input


VOLUME_BOUND = 2 + 4 + 4 + MAX_PARTITIONS + MAX_LOGICAL_PARTITIONS


def check_discovery(disk: ByteSource) -> list[Volume]:
    """Discovery's promises on any input: no exception, bounded time and count, in-disk windows."""
    began = time.monotonic()
    volumes = discover(disk)
    assert time.monotonic() - began < 5
    assert 1 <= len(volumes) <= VOLUME_BOUND
    assert len(set(names(volumes))) == len(volumes)
    for v in volumes:
        if v.source is disk:
            assert v.grub_name == "hd0"
        else:
            assert isinstance(v.source, SliceSource) and v.source.parent is disk
            assert 0 <= v.offset and v.offset + v.source.size <= disk.size and v.source.size > 0
    return volumes


def mostly(usual: st.SearchStrategy, wild: st.SearchStrategy) -> st.SearchStrategy:
    """``usual`` five times in six, so most examples get past the first sanity check."""
    return st.sampled_from([True] * 5 + [False]).flatmap(lambda u: usual if u else wild)


statuses = mostly(st.sampled_from([0x00, 0x80]), st.integers(0, 255))
mbr_types = mostly(
    st.sampled_from([0x00, 0x83, 0x05, 0x0F, 0x85, 0x82, 0xBF, 0x07]), st.integers(0, 255)
)
lbas = mostly(st.integers(0, 300), st.integers(0, 0xFFFFFFFF))
lengths = mostly(st.integers(0, 40), st.integers(0, 0xFFFFFFFF))
random_entries = st.builds(mbr_entry, statuses, mbr_types, lbas, lengths)


@st.composite
def hostile_mbr_disks(draw: st.DrawFn) -> ByteSource:
    """Sector 0 with an extended partition whose EBR links loop or wander, VTOCs, any size."""
    ebrs = draw(st.lists(st.integers(1, 250), max_size=8, unique=True))
    primaries = draw(st.lists(random_entries, max_size=4))
    if ebrs and draw(st.booleans()):
        extended = mbr_entry(0, draw(st.sampled_from([0x05, 0x0F, 0x85])), ebrs[0], 400)
        primaries[: draw(st.integers(0, len(primaries)))] += [extended]
    regions = {0: mbr_sector(primaries[:4])}
    for lba in ebrs:
        entries = draw(st.lists(random_entries, max_size=3))
        # The link is relative to the extended start: to another EBR (maybe an earlier one).
        target = draw(st.sampled_from(ebrs))
        link = mbr_entry(0, 0x05, (target - ebrs[0]) & 0xFFFFFFFF, 1)
        entries.insert(draw(st.integers(0, len(entries))), link)
        regions[lba * SECTOR] = mbr_sector(entries[:4])
    for _ in range(draw(st.integers(0, 2))):
        slots = draw(
            st.dictionaries(
                st.integers(0, 15), st.tuples(st.sampled_from([2, 2, 3, 5]), lbas, lbas), max_size=4
            )
        )
        where = draw(st.integers(1, 300))
        regions[where * SECTOR] = vtoc_label(slots, draw(st.integers(0, 65535)))
    size = draw(st.sampled_from([300 * SECTOR, 1 << 41]) | st.integers(0, 400 * SECTOR))
    return SparseSource(size, regions)


@FUZZ
@given(hostile_mbr_disks())
def test_fuzz_hostile_mbr(disk):
    check_discovery(disk)


@st.composite
def hostile_gpt_disks(draw: st.DrawFn) -> ByteSource:
    """A protective MBR and GPT headers with absurd counts and sizes, CRCs right or wrong."""
    sector_size = draw(st.sampled_from([512, 4096]))
    total = draw(mostly(st.sampled_from([80, 300]), st.integers(0, 1 << 32)))
    size = total * sector_size
    regions = {0: mbr_sector([mbr_entry(0, 0xEE, 1, 0xFFFFFFFF)])}
    for lba in sorted({1, total - 1}):
        if lba < 1:
            continue
        count = draw(mostly(st.sampled_from([0, 4, 128]), st.integers(0, 0xFFFFFFFF)))
        entry_size = draw(mostly(st.sampled_from([128, 256]), st.integers(0, 0xFFFFFFFF)))
        usual_lba = 2 if lba == 1 else max(lba - 33, 0)
        entry_lba = draw(mostly(st.just(usual_lba), st.integers(0, (1 << 64) - 1)))
        array = b""
        if 0 < count * entry_size <= 64 * 1024 and entry_size >= 128:
            array = bytearray(count * entry_size)
            for index in draw(st.lists(st.integers(0, min(count, 300) - 1), max_size=6)):
                kind = draw(st.sampled_from([LINUX_FILESYSTEM_TYPE, ESP_TYPE]))
                raw = gpt_entry(kind, draw(lbas), draw(lbas), draw(st.text(max_size=40)))
                array[index * entry_size : index * entry_size + 128] = raw
            regions[entry_lba * sector_size] = bytes(array)
        crc = draw(mostly(st.just(zlib.crc32(array)), st.integers(0, 0xFFFFFFFF)))
        header_size = draw(mostly(st.just(92), st.sampled_from([0, 91, 512, 4096, 4097, 1 << 31])))
        header = gpt_header(
            lba, max(total - 1, 0), 34, max(total - 34, 0), entry_lba, count, entry_size, crc,
            header_size=header_size, length=sector_size,
        )  # fmt: skip
        if not draw(mostly(st.just(True), st.just(False))):
            header = header[:16] + draw(st.binary(min_size=4, max_size=4)) + header[20:]
        regions[lba * sector_size] = header
    return SparseSource(size, regions)


@FUZZ
@given(hostile_gpt_disks())
def test_fuzz_hostile_gpt(disk):
    check_discovery(disk)


@pytest.fixture(scope="module")
def real_tables(tmp_path_factory) -> list[bytes]:
    """Small real images: an MBR with an extended chain, a GPT, a VTOC, a FAT boot sector."""
    tmp = tmp_path_factory.mktemp("fuzz")
    mbr = sfdisk_table(
        tmp / "mbr.img",
        [
            "start=64, size=64, type=83",
            "start=512, size=480, type=5",
            "start=192, size=128, type=bf, bootable",
            "start=544, size=16, type=83",
            "start=600, size=16, type=83",
            "start=700, size=16, type=83",
        ],
        size_mb=1,
    )
    poke(mbr, 192 * SECTOR + SECTOR, vtoc_label({1: (2, 8, 32)}))
    gpt = tmp / "gpt.img"
    with open(gpt, "wb") as f:
        f.truncate(1 * MiB)
    run("sgdisk", "-a", "1", "-o", "-n", "1:40:+16K", "-n", "3:100:+32K", "-c", "3:x", gpt)
    fat = tmp / "fat.img"
    run("mkfs.fat", "-C", fat, "1024")
    return [mbr.read_bytes(), gpt.read_bytes(), fat.read_bytes()]


def _flip_regions(size: int) -> list[tuple[int, int]]:
    # The sectors tables live in: sector 0, the GPT header and its entries, the EBRs and the
    # VTOC of the MBR image, and the backup GPT at the end.
    return [
        (0, 512),
        (512, 1024),
        (1024, 17 * 1024),
        (96 * 1024, 100 * 1024),
        (256 * 1024, 360 * 1024),
        (size - 17 * 1024, size),
    ]


@FUZZ
@given(data=st.data())
def test_fuzz_bit_flips_in_real_tables(real_tables, data):
    image = bytearray(data.draw(st.sampled_from(real_tables)))
    regions = _flip_regions(len(image))
    for _ in range(data.draw(st.integers(1, 12))):
        lo, hi = data.draw(st.sampled_from(regions))
        at = data.draw(st.integers(lo, hi - 1))
        image[at] ^= 1 << data.draw(st.integers(0, 7))
    if data.draw(st.booleans()):
        image = image[: data.draw(st.integers(0, len(image)))]
    check_discovery(MemorySource(bytes(image)))


def test_real_tables_unflipped(real_tables):
    """The fuzz corpus itself reads as expected (so flips start from real structures)."""
    mbr, gpt, fat = (check_discovery(MemorySource(image)) for image in real_tables)
    assert names(mbr) == [
        "hd0,msdos3,sunpc2",
        "hd0,msdos3",
        "hd0,msdos1",
        "hd0,msdos5",
        "hd0,msdos6",
        "hd0,msdos7",
    ]
    assert names(gpt) == ["hd0,gpt1", "hd0,gpt3"]
    assert names(fat) == ["hd0"]


def test_tiny_and_empty_disks():
    for size in (0, 1, 511, 512, 513):
        assert names(check_discovery(MemorySource(b"\0" * size))) == ["hd0"]
    assert names(check_discovery(MemorySource(mbr_sector([mbr_entry(0, 0x83, 1, 1)])))) == ["hd0"]


def test_partition_volume_reads_through_its_window(tmp_path):
    image = make_ext(tmp_path, {"hello": "hi\n"}, size_mb=2)
    disk = make_partitioned(tmp_path, [(image, "83")])
    (volume,) = discover_file(disk)
    assert volume.source.pread(0x438, 2) == b"\x53\xef"  # the ext superblock's magic
    assert volume.source.pread(0, 4 * MiB) == image.read_bytes()


def test_guid_text_is_uuids():
    from pygrub.volumes.gpt import guid_text

    for seed in range(200):
        raw = random.Random(seed).randbytes(16)
        assert guid_text(raw) == str(uuid.UUID(bytes_le=raw))
