"""LVM2 logical volumes: real PVs, VGs and LVs made by LVM2's own tools on loop devices.

The tools run without device-mapper (``--driverloaded n``, LVs never activated) and with
a private lvm.conf that sees only this test's loop devices. Filesystems are written into
the LVs at the places ``lvs --segments`` reports, so LVM2 is the oracle for the mapping;
``grub-fstest`` is the oracle for GRUB's names and reads. What the tools cannot make
without device-mapper (thin, RAID, cache, snapshots) is written by hand into a PV's
metadata (lib/format_text/layout.h); the hand writer is checked by LVM2 reading it back.
"""

from __future__ import annotations

import logging
import os
import random
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from bounded import cpu_bounded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import MiB, make_ext, make_partitioned, require_tool
from lvmtools import Lvm, LvmDisk, loop_devices, lvm_disk, lvs_extents, write_lv

from pygrub.boot import open_guest
from pygrub.disk import FileSource, MemorySource
from pygrub.errors import CorruptError, LimitError, PygrubError
from pygrub.fs import probe
from pygrub.volumes import Volume, discover
from pygrub.volumes.lvm import (
    MAX_METADATA_DEPTH,
    LogicalVolumeSource,
    grub_lv_name,
    parse_metadata,
)

SECTOR = 512
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KERNEL = os.urandom(150_000)
INITRD = os.urandom(40_001)
MENU_LST = """\
default 0
timeout 3
title Linux on LVM
  kernel /boot/vmlinuz root=/dev/mapper/my--vg-root--fs ro
  initrd /boot/initrd.img
"""
GUEST = {"boot/grub/menu.lst": MENU_LST, "boot/vmlinuz": KERNEL, "boot/initrd.img": INITRD}

# ---------------------------------------------------------------- oracles and helpers


def grub_fstest(disk: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    # Not "ls" without a device: that walks the host's "/" and may block on a FUSE mount.
    argv = [require_tool("grub-fstest"), str(disk), *args]
    return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)


def grub_lv_bytes(disk: Path, name: str, size: int, tmp: Path) -> bytes | None:
    """Every byte of device ``name`` as GRUB reads it, or None when GRUB has no such device."""
    out = tmp / "grub-read.bin"
    proc = grub_fstest(disk, "cp", f"({name})0+{size // SECTOR}", str(out))
    if proc.returncode != 0:
        assert b"not found" in proc.stderr, proc.stderr
        return None
    return out.read_bytes()


def grub_cat(disk: Path, path: str) -> bytes:
    proc = grub_fstest(disk, "cat", path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def by_name(volumes: list[Volume]) -> dict[str, Volume]:
    return {v.grub_name: v for v in volumes}


def pygrub(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pygrub", *map(str, args)],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def boot(image: Path, out: Path) -> dict[str, str]:
    out.mkdir(exist_ok=True)
    proc = pygrub("-q", "--output-format=simple", f"--output-directory={out}", image)
    assert proc.returncode == 0, proc.stderr.decode()
    return dict(item.split(" ", 1) for item in proc.stdout.decode().split("\n") if item)


# ---------------------------------------------------------------- fixtures made by LVM2


@pytest.fixture(scope="module")
def two_pvs(tmp_path_factory) -> LvmDisk:
    """Two type-8e partitions as two PVs of "my-vg": a two-segment LV, a striped one, ..."""
    tmp = tmp_path_factory.mktemp("two_pvs")
    disk = make_partitioned(tmp, [(20, "8e"), (20, "8e")])
    spans = [(1 * MiB, 20 * MiB), (21 * MiB, 20 * MiB)]
    d = lvm_disk(
        tmp,
        disk,
        spans,
        "my-vg",
        [
            ("lvcreate", "-an", "-Zn", "-L", "4M", "-n", "root-fs", "my-vg", "{0}"),
            ("lvcreate", "-an", "-Zn", "-L", "1M", "-n", "gap", "my-vg", "{0}"),
            ("lvextend", "-L", "+4M", "my-vg/root-fs", "{0}"),
            ("lvcreate", "-an", "-Zn", "-i", "2", "-I", "64k", "-L", "8M", "-n", "data", "my-vg"),
            ("lvcreate", "-an", "-Zn", "-L", "2M", "-n", "plain", "my-vg", "{1}"),
        ],
    )
    root = make_ext(tmp, GUEST, size_mb=8, name="root.img")
    data = make_ext(tmp, {"striped/hello.txt": "over two PVs\n" * 5000}, size_mb=8, name="d.img")
    write_lv(d, "root-fs", root.read_bytes())
    write_lv(d, "data", data.read_bytes())
    write_lv(d, "gap", os.urandom(1 * MiB))
    write_lv(d, "plain", os.urandom(2 * MiB))
    return d


@pytest.fixture(scope="module")
def whole_disk_pv(tmp_path_factory) -> LvmDisk:
    """A disk without a partition table that is one PV of "vg0" with one LV "boot"."""
    tmp = tmp_path_factory.mktemp("whole")
    disk = tmp / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(16 * MiB)
    d = lvm_disk(
        tmp,
        disk,
        [(0, 16 * MiB)],
        "vg0",
        [("lvcreate", "-an", "-Zn", "-L", "8M", "-n", "boot", "vg0")],
    )
    write_lv(d, "boot", make_ext(tmp, GUEST, size_mb=8, name="boot.img").read_bytes())
    return d


# ---------------------------------------------------------------- against LVM2 and GRUB


def test_names_and_sizes_match_lvs(two_pvs):
    volumes = discover(FileSource(str(two_pvs.path)))
    # The partitions are PVs, not filesystems: only the LVs are listed, in metadata order.
    assert [v.grub_name for v in volumes] == [
        "lvm/my--vg-root--fs",
        "lvm/my--vg-gap",
        "lvm/my--vg-data",
        "lvm/my--vg-plain",
    ]
    assert sorted(v.grub_name for v in volumes) == sorted(
        grub_lv_name("my-vg", lv) for lv in two_pvs.lv_sizes
    )
    for v in volumes:
        lv = v.origin.split()[3].split("/", 1)[1]
        assert v.source.size == two_pvs.lv_sizes[lv]
        assert v.number is None
    origins = {v.grub_name: v.origin for v in volumes}
    assert origins["lvm/my--vg-root--fs"] == "LVM logical volume my-vg/root-fs (linear, 2 segments)"
    assert origins["lvm/my--vg-data"] == "LVM logical volume my-vg/data (striped, 1 segment)"


def test_lv_bytes_match_lvs_segments_and_grub(two_pvs, tmp_path):
    volumes = by_name(discover(FileSource(str(two_pvs.path))))
    for lv, content in two_pvs.contents.items():
        name = grub_lv_name("my-vg", lv)
        source = volumes[name].source
        assert source.pread(0, source.size) == content, lv
        assert grub_lv_bytes(two_pvs.path, name, source.size, tmp_path) == content, lv
        # Reads across segment and stripe boundaries, and short at the end only.
        for offset in (4 * MiB - 100, 64 * 1024 - 1, source.size - 10):
            assert source.pread(offset, 300) == content[offset : offset + 300]
    # GRUB doubles the '-' inside names; the undoubled name is no device.
    assert grub_lv_bytes(two_pvs.path, "lvm/my-vg-root-fs", 512, tmp_path) is None


def test_lvmid_names_as_grub_gives_them(two_pvs, tmp_path):
    """grub-mkconfig writes ``set root='lvmid/VG-UUID/LV-UUID'``: each LV answers to it."""
    guest = open_guest(FileSource(str(two_pvs.path)))
    for lv, content in two_pvs.contents.items():
        lvmid = two_pvs.lvmids[lv]
        volume = guest.find_volume(lvmid)
        assert volume is not None and volume.grub_name == grub_lv_name("my-vg", lv), lvmid
        assert volume.names == (volume.grub_name, lvmid)
        assert grub_lv_bytes(two_pvs.path, lvmid, len(content), tmp_path) == content, lvmid
    vg_uuid = two_pvs.lvmids["data"].split("/")[1]
    assert guest.find_volume(f"lvmid/{vg_uuid}/no-such-lv") is None


def test_files_read_as_grub_reads_them(two_pvs):
    volumes = by_name(discover(FileSource(str(two_pvs.path))))
    for lv, path in (("root-fs", "/boot/grub/menu.lst"), ("data", "/striped/hello.txt")):
        name = grub_lv_name("my-vg", lv)
        fs = probe(volumes[name].source)
        assert fs is not None and fs.kind.startswith("ext")
        with fs.open(path) as f:
            ours = f.read()
        assert ours == grub_cat(two_pvs.path, f"({name}){path}")


def test_boots_from_an_lv_on_partitions(two_pvs, tmp_path):
    items = boot(two_pvs.path, tmp_path / "out")
    assert Path(items["kernel"]).read_bytes() == KERNEL
    assert Path(items["ramdisk"]).read_bytes() == INITRD
    assert items["args"] == "root=/dev/mapper/my--vg-root--fs ro"


def test_pv_on_a_whole_disk(whole_disk_pv, tmp_path):
    (pv,) = whole_disk_pv.pvs
    assert int(pv["pe_start"]) == 1 * MiB
    volumes = discover(FileSource(str(whole_disk_pv.path)))
    assert [v.grub_name for v in volumes] == ["lvm/vg0-boot"]
    assert volumes[0].source.pread(0, 8 * MiB) == whole_disk_pv.contents["boot"]
    grub = grub_lv_bytes(whole_disk_pv.path, "lvm/vg0-boot", 8 * MiB, tmp_path)
    assert grub == whole_disk_pv.contents["boot"]
    items = boot(whole_disk_pv.path, tmp_path / "out")
    assert Path(items["kernel"]).read_bytes() == KERNEL


def test_host_spans_inside_one_linear_segment_or_chunk(two_pvs):
    disk = FileSource(str(two_pvs.path))
    volumes = by_name(discover(disk))
    root = volumes["lvm/my--vg-root--fs"].source
    data = volumes["lvm/my--vg-data"].source
    assert isinstance(root, LogicalVolumeSource)
    runs = {lv: list(lvs_extents(two_pvs, lv)) for lv in ("root-fs", "data")}
    (_, first, _), (second_lv, second, _) = runs["root-fs"]
    assert second_lv == 4 * MiB
    assert root.host_span(0, 4096) == (disk.fd, first)
    assert root.host_span(4 * MiB, 4096) == (disk.fd, second)
    assert root.host_span(4 * MiB - 512, 1024) is None  # two segments
    assert root.host_span(root.size - 512, 1024) is None  # past the end
    for lv_byte, disk_byte, length in runs["data"][:3]:
        assert data.host_span(lv_byte, length) == (disk.fd, disk_byte)
        assert data.host_span(lv_byte + length - 1, 2) is None  # two stripes


# ---------------------------------------------------------------- hand-written PVs


def lvm_crc(data: bytes) -> int:
    # LVM2's calc_crc from 0xf597a6cf, without zlib's final inversion.
    return zlib.crc32(data, 0xF597A6CF ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


MDA_MAGIC = b"\x20LVM2\x20x[5A%r0N*>"


def pv_label(uuid: str, device_size: int, pe_start: int, mdas: list[tuple[int, int]]) -> bytes:
    """Sector 1 of a PV: label_header + pv_header, one data area, the metadata areas."""
    body = struct.pack("<32sQ", uuid.replace("-", "").encode(), device_size)
    body += struct.pack("<QQ", pe_start, 0) + bytes(16)
    body += b"".join(struct.pack("<QQ", o, s) for o, s in mdas) + bytes(16)
    sector = bytearray(SECTOR)
    sector[32 : 32 + len(body)] = body
    struct.pack_into("<8sQII8s", sector, 0, b"LABELONE", 1, 0, 32, b"LVM2 001")
    struct.pack_into("<I", sector, 16, lvm_crc(bytes(sector[20:])))
    return bytes(sector)


def write_mda(image: bytearray, base: int, size: int, text: bytes, text_offset: int = 512) -> None:
    """An mda_header at ``base`` whose raw_locn holds ``text`` at ``text_offset``, wrapping."""
    header = bytearray(SECTOR)
    struct.pack_into("<I16sIQQ", header, 0, 0, MDA_MAGIC, 1, base, size)
    struct.pack_into("<QQII", header, 40, text_offset, len(text), lvm_crc(text), 0)
    struct.pack_into("<I", header, 0, lvm_crc(bytes(header[4:])))
    image[base : base + SECTOR] = header
    first = min(len(text), size - text_offset)
    image[base + text_offset : base + text_offset + first] = text[:first]
    image[base + SECTOR : base + SECTOR + len(text) - first] = text[first:]


def uuid_of(n: int) -> str:
    raw = f"{n:032d}".replace("0", "A")
    return "-".join((raw[:6], raw[6:10], raw[10:14], raw[14:18], raw[18:22], raw[22:26], raw[26:]))


def lv_section(name: str, segments: list[str], status: str = '"READ", "WRITE", "VISIBLE"') -> str:
    body = "".join(f"segment{i} {{\n{s}\n}}\n" for i, s in enumerate(segments, 1))
    return (
        f'{name} {{\nid = "{uuid_of(zlib.crc32(name.encode()))}"\nstatus = [{status}]\nflags = []\n'
        f"segment_count = {len(segments)}\n{body}}}\n"
    )


def linear(start: int, count: int, pv: str = "pv0", pe: int = 0) -> str:
    return (
        f"start_extent = {start}\nextent_count = {count}\n"
        f'type = "striped"\nstripe_count = 1\nstripes = [\n"{pv}", {pe}\n]'
    )


def vg_text(
    name: str, seqno: int, pvs: list[tuple[str, int]], lvs: list[str], extent: int = 8
) -> bytes:
    """Metadata text as LVM2 writes it; ``pvs`` is (uuid, pe_start) per PV, extent in sectors."""
    pv_sections = "".join(
        f'pv{i} {{\nid = "{uuid}"\ndevice = "/dev/x{i}"\nstatus = ["ALLOCATABLE"]\n'
        f"flags = []\ndev_size = 2048\npe_start = {pe_start}\npe_count = 100\n}}\n"
        for i, (uuid, pe_start) in enumerate(pvs)
    )
    return (
        f'{name} {{\nid = "{uuid_of(7)}"\nseqno = {seqno}\nformat = "lvm2" # informational\n'
        f'status = ["RESIZEABLE", "READ", "WRITE"]\nflags = []\nextent_size = {extent}\n'
        f"max_lv = 0\nmax_pv = 0\nmetadata_copies = 0\n\n"
        f"physical_volumes {{\n{pv_sections}}}\n\nlogical_volumes {{\n{''.join(lvs)}}}\n}}\n"
        f'# Generated by hand\ncontents = "Text Format Volume Group"\nversion = 1\n'
        f'description = "a \\"quoted\\" one"\ncreation_time = 1700000000\n'
    ).encode() + b"\0"


def hand_pv(
    text: bytes, size: int = 1 * MiB, uuid: str = uuid_of(1), pe_start: int = 64 * 1024
) -> bytearray:
    """A whole-disk PV of ``size`` bytes: label in sector 1, one 60 KiB metadata area at 4 KiB."""
    image = bytearray(size)
    image[SECTOR : 2 * SECTOR] = pv_label(uuid, size, pe_start, [(4096, pe_start - 4096)])
    write_mda(image, 4096, pe_start - 4096, text)
    return image


def discover_bytes(image: bytes | bytearray) -> list[Volume]:
    return discover(MemorySource(bytes(image)))


def test_hand_written_pv_is_what_lvm_reads(tmp_path):
    """The hand writer, checked by LVM2 itself, with the text wrapping around the ring."""
    text = vg_text("hand-vg", 3, [(uuid_of(1), 128)], [lv_section("lv-one", [linear(0, 4)])])
    image = hand_pv(text)
    # Move the text so that it runs past the area's end and continues after the header.
    area = 64 * 1024 - 4096
    write_mda(image, 4096, area, text, text_offset=area - 512)
    disk = tmp_path / "pv.img"
    disk.write_bytes(image)
    with loop_devices(disk, [(0, len(image))]) as devices:
        lvm = Lvm(tmp_path / "etc", devices)
        (row,) = lvm.report("lvs", "-o", "vg_name,lv_name,lv_size,seg_pe_ranges", "hand-vg")
        (mda,) = lvm.report("pvs", "-o", "pv_mda_size", *devices)
    assert (row["vg_name"], row["lv_name"], int(row["lv_size"])) == ("hand-vg", "lv-one", 4 * 4096)
    assert int(mda["pv_mda_size"]) == area
    image[64 * 1024 : 64 * 1024 + 16384] = pattern = os.urandom(16384)
    (v,) = discover_bytes(image)
    assert (v.grub_name, v.source.pread(0, 20000)) == ("lvm/hand--vg-lv--one", pattern)


def test_refused_and_missing_volumes_are_skipped(caplog):
    pv = (uuid_of(1), 128)
    lvs = [
        lv_section("root", [linear(0, 2)]),
        lv_section(
            "pool",
            [
                'start_extent = 0\nextent_count = 1\ntype = "thin-pool"\nmetadata = "pool_tmeta"\npool = "pool_tdata"\ntransaction_id = 0\nchunk_size = 128'
            ],
        ),
        lv_section(
            "thin",
            [
                'start_extent = 0\nextent_count = 4\ntype = "thin"\nthin_pool = "pool"\ntransaction_id = 0\ndevice_id = 1'
            ],
        ),
        lv_section(
            "mirrored",
            [
                'start_extent = 0\nextent_count = 1\ntype = "raid1"\ndevice_count = 2\nregion_size = 1024\nraids = ["a_rmeta_0", "a_rimage_0"]'
            ],
        ),
        lv_section(
            "cached",
            [
                'start_extent = 0\nextent_count = 1\ntype = "cache"\ncache_pool = "cpool"\norigin = "x"'
            ],
        ),
        lv_section("inner_rimage_0", [linear(0, 1, pe=3)], status='"READ", "WRITE"'),
        lv_section("snap", [linear(0, 1, pe=4)]),
        lv_section(
            "snapshot0",
            [
                'start_extent = 0\nextent_count = 2\ntype = "snapshot"\nchunk_size = 8\norigin = "root"\ncow_store = "snap"'
            ],
            status='"READ"',
        ),
        lv_section("elsewhere", [linear(0, 1, pe=5), linear(1, 1, pv="pv1", pe=0)]),
        lv_section("zeroes", ['start_extent = 0\nextent_count = 1\ntype = "zero"']),
    ]
    image = hand_pv(vg_text("vg", 1, [pv, (uuid_of(2), 128)], lvs))
    with caplog.at_level(logging.INFO, "pygrub.volumes"):
        volumes = discover_bytes(image)
    assert [v.grub_name for v in volumes] == ["lvm/vg-root"]
    for refused in ("'thin-pool'", "'thin'", "'raid1'", "'cache'", "'zero'"):
        assert f"segment type {refused} is not read" in caplog.text
    assert "LV vg/elsewhere segment2: PV pv1 is not on this disk" in caplog.text
    assert "vg/snap: a snapshot's exception store" in caplog.text
    assert "inner_rimage_0" not in caplog.text  # hidden: an LVM-internal volume


def test_newest_metadata_wins_across_pvs():
    """Two PVs of one VG on two partitions, one with stale metadata (lower seqno)."""
    pvs = [(uuid_of(1), 128), (uuid_of(2), 128)]
    old = vg_text("vg", 4, pvs, [lv_section("old", [linear(0, 1)])])
    new = vg_text("vg", 5, pvs, [lv_section("new", [linear(0, 1, pv="pv1")])])
    part = 1 * MiB
    image = bytearray(3 * MiB)
    image[:SECTOR] = mbr([(2048, 2048, 0x8E), (4096, 2048, 0x8E)])
    for n, (uuid, text) in enumerate(((uuid_of(1), old), (uuid_of(2), new)), 1):
        image[n * part : (n + 1) * part] = hand_pv(text, size=part, uuid=uuid)
    assert [v.grub_name for v in discover_bytes(image)] == ["lvm/vg-new"]


def test_boot_partition_then_a_pv(tmp_path):
    """The usual installer layout: a plain /boot partition, then a PV holding the root LV."""
    boot_fs = make_ext(tmp_path, {"grub2/grub.cfg": "linux /vmlinuz\n"}, size_mb=1, fstype="ext2")
    text = vg_text("rhel", 2, [(uuid_of(1), 128)], [lv_section("root", [linear(0, 4)])])
    image = bytearray(3 * MiB)
    image[:SECTOR] = mbr([(2048, 2048, 0x83), (4096, 2048, 0x8E)])
    image[1 * MiB : 2 * MiB] = boot_fs.read_bytes()
    image[2 * MiB : 3 * MiB] = hand_pv(text, size=1 * MiB)
    volumes = discover_bytes(image)
    assert [v.grub_name for v in volumes] == ["hd0,msdos1", "lvm/rhel-root"]
    assert volumes[0].source.pread(0x438, 2) == b"\x53\xef"


def test_a_pv_without_a_logical_volume_leaves_the_whole_disk(caplog):
    """A whole-disk PV whose group has no LV yet: nothing else to try than the disk itself."""
    image = hand_pv(vg_text("empty", 1, [(uuid_of(1), 128)], []))
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        (volume,) = discover_bytes(image)
    assert (volume.grub_name, volume.source.size) == ("hd0", len(image))
    assert volume.source.pread(SECTOR, 8) == b"LABELONE"
    assert caplog.text == ""


def mbr(entries: list[tuple[int, int, int]]) -> bytes:
    raw = b"".join(
        struct.pack("<B3sB3sII", 0, b"\0" * 3, t, b"\0" * 3, lba, n) for lba, n, t in entries
    )
    return bytes(446) + raw.ljust(64, b"\0") + b"\x55\xaa"


def test_damaged_label_or_metadata_leaves_the_volume_alone(caplog):
    text = vg_text("vg", 1, [(uuid_of(1), 128)], [lv_section("lv", [linear(0, 1)])])
    image = hand_pv(text)
    assert [v.grub_name for v in discover_bytes(image)] == ["lvm/vg-lv"]
    bad_label = bytearray(image)
    bad_label[SECTOR + 40] ^= 1  # in the PV UUID: the label's CRC no longer matches
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert [v.grub_name for v in discover_bytes(bad_label)] == ["hd0"]
    assert "LVM label at sector 1: checksum mismatch" in caplog.text
    bad_text = bytearray(image)
    bad_text[4096 + 600] ^= 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert [v.grub_name for v in discover_bytes(bad_text)] == ["hd0"]
    assert "LVM metadata area at byte 4096 of hd0: metadata text: checksum mismatch" in caplog.text


LV_TEXT = vg_text("vg", 1, [(uuid_of(1), 128)], [lv_section("lv", [linear(0, 1)])])


def relabel(image: bytearray, at: int, fmt: str, value: object) -> bytearray:
    """``image`` (a hand_pv) with a field of its label rewritten, the label CRC fixed."""
    struct.pack_into(fmt, image, SECTOR + at, value)
    struct.pack_into("<I", image, SECTOR + 16, lvm_crc(bytes(image[SECTOR + 20 : 2 * SECTOR])))
    return image


def remda(image: bytearray, at: int, fmt: str, value: object) -> bytearray:
    """``image`` (a hand_pv) with a field of its mda_header rewritten, its CRC fixed."""
    struct.pack_into(fmt, image, 4096 + at, value)
    struct.pack_into("<I", image, 4096, lvm_crc(bytes(image[4096 + 4 : 4096 + SECTOR])))
    return image


def big_area_pv() -> bytearray:
    """A PV whose one metadata area is 5 MiB, its raw_locn saying the text is 4 MiB + 1."""
    image = bytearray(6 * MiB)
    image[SECTOR : 2 * SECTOR] = pv_label(uuid_of(1), len(image), 5 * MiB, [(4096, 5 * MiB)])
    write_mda(image, 4096, 5 * MiB, LV_TEXT)
    return remda(image, 48, "<Q", 4 * MiB + 1)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda i: relabel(i, 8, "<Q", 2), "LVM label at sector 1: says it is at sector 2"),
        (lambda i: relabel(i, 24, "8s", b"LVM2 002"),
         "LVM label at sector 1: type b'LVM2 002' is not b'LVM2 001'"),
        (lambda i: relabel(i, 20, "<I", 500), "pv_header offset 500 outside the sector"),
        (lambda i: relabel(i, 20, "<I", 473), "pv_header offset 473 outside the sector"),
        (lambda i: relabel(i, 20, "<I", 472),
         "LVM label at sector 1: area list runs past the sector's end"),
        # The metadata area list: an area no bigger than its header, one past the PV's end.
        (lambda i: relabel(i, 32 + 40 + 32 + 8, "<Q", 512), "area of 512 bytes does not fit"),
        (lambda i: relabel(i, 32 + 40 + 32 + 8, "<Q", MiB), f"area of {MiB} bytes does not fit"),
        (lambda i: remda(i, 4, "16s", b"x" * 16), "mda_header: bad magic or version"),
        (lambda i: remda(i, 20, "<I", 2), "mda_header: bad magic or version"),
        (lambda i: struct.pack_into("<I", i, 4096, 1) or i, "mda_header: checksum mismatch"),
        (lambda i: remda(i, 24, "<Q", 8192), "mda_header: start 8192 or size"),
        (lambda i: remda(i, 32, "<Q", 512), "mda_header: start 4096 or size 512 disagrees"),
        (lambda i: remda(i, 32, "<Q", 64 * 1024), "or size 65536 disagrees with the label"),
        (lambda i: remda(i, 40, "<Q", 60 * 1024), "metadata text at 61440 of"),
        (lambda i: remda(i, 48, "<Q", 60 * 1024), "of 61440 bytes is outside the area"),
        (lambda i: big_area_pv(), "LVM metadata text bytes"),
    ],
)  # fmt: skip
def test_damaged_pv_label_and_metadata_area_are_named(caplog, damage, message):
    """Every field LVM2 checks in the label and the mda_header, wrong with its checksum
    right: the PV is no PV (nothing else holds its metadata), with a warning saying why."""
    image = damage(hand_pv(LV_TEXT))
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert [v.grub_name for v in discover_bytes(image)] == ["hd0"]
    assert message in caplog.text


def test_metadata_area_at_the_end_of_the_pv(caplog):
    """pvcreate --pvmetadatacopies 2 puts the second area on the PV's last bytes."""
    image = hand_pv(LV_TEXT)
    tail = 60 * 1024
    image[SECTOR : 2 * SECTOR] = pv_label(
        uuid_of(1), len(image), 64 * 1024, [(4096, 60 * 1024), (len(image) - tail, tail)]
    )
    write_mda(image, len(image) - tail, tail, LV_TEXT)
    image[4096 : 4096 + SECTOR] = bytes(SECTOR)  # only the copy at the end is readable
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert [v.grub_name for v in discover_bytes(image)] == ["lvm/vg-lv"]
    assert "mda_header: bad magic or version" in caplog.text


def test_pv_uuid_that_is_not_ascii(caplog):
    """A label whose UUID bytes are not ASCII (CRC right): read, and matching no PV the
    metadata lists, its LVs are skipped by name."""
    image = relabel(hand_pv(LV_TEXT), 32, "32s", b"\xff" * 32)
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert [v.grub_name for v in discover_bytes(image)] == ["hd0"]
    assert "LV vg/lv segment1: PV pv0 is not on this disk" in caplog.text


def test_lv_of_three_segments_reads_byte_for_byte(tmp_path):
    """An LV extended twice (three segments, out of order on the PV, the second on the PV's
    last extent): every read, one byte or across segments, is the bytes where lvs puts
    them; host_span gives a window of the disk only inside one segment and the LV."""
    segments = [linear(0, 2, pe=10), linear(2, 1, pe=239), linear(3, 1, pe=0)]
    text = vg_text("vg", 1, [(uuid_of(1), 128)], [lv_section("lv", segments)])
    image = hand_pv(text)
    image[64 * 1024 :] = os.urandom(len(image) - 64 * 1024)
    extent = 4096
    pe = [64 * 1024 + n * extent for n in (10, 11, 239, 0)]
    expected = b"".join(bytes(image[at : at + extent]) for at in pe)
    disk = tmp_path / "pv.img"
    disk.write_bytes(image)
    (lv,) = discover(FileSource(str(disk)))
    source = lv.source
    assert source.size == len(expected) == 4 * extent
    for offset in (0, 1, extent - 1, 2 * extent - 1, 3 * extent - 1, 4 * extent - 1):
        for length in (1, 2, 3, extent + 1):
            assert source.pread(offset, length) == expected[offset : offset + length]
    assert source.pread(0, 5 * extent) == expected
    # (descriptor, byte offset on the disk)
    assert source.host_span(extent, extent)[1] == pe[1]  # type: ignore[index]
    assert source.host_span(4 * extent - 10, 10)[1] == pe[3] + extent - 10  # type: ignore[index]
    for offset, length in ((4 * extent - 10, 11), (0, 0), (-1, 2), (2 * extent - 1, 2)):
        assert source.host_span(offset, length) is None


def lv_with(segment: str) -> str:
    return lv_section("lv", [segment])


def seg(body: str, start: int = 0, count: int = 2) -> str:
    return f'start_extent = {start}\nextent_count = {count}\ntype = "striped"\n{body}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"contents = \"Text Format Volume Group\"\nversion = 1\n",
         "LVM metadata: no volume group section"),
        (vg_text("-vg", 1, [(uuid_of(1), 128)], []),
         "LVM metadata: volume group name '-vg' is not a valid name"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [], extent=0),
         "LVM metadata: volume group vg: extent_size 0"),
        (vg_text("vg", 1, [(uuid_of(1), -1)], []),
         "LVM metadata: volume group vg, PV pv0: pe_start -1"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], []).replace(b"seqno = 1", b"seqno = x"),
         "LVM metadata: volume group vg: seqno missing or not a int"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], []).replace(b"id = \"A", b"xid = \"A", 1),
         "LVM metadata: volume group vg: id missing or not a str"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], []).replace(b"physical_volumes", b"pvs"),
         "LVM metadata: volume group vg: physical_volumes missing or not a dict"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [])
         .replace(b"logical_volumes {\n}", b"logical_volumes = 3"),
         "LVM metadata: volume group vg: logical_volumes is not a section"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_section("lv", [linear(0, 1)])])
         .replace(b"segment_count = 1", b"segment_count = 0"),
         "LV vg/lv: segment_count 0 but"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_section("lv", [linear(0, 1)])])
         .replace(b"segment_count = 1", b"segment_count = 2"),
         "LV vg/lv: segment2 missing"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_section("lv", [linear(0, 1), linear(2, 1)])]),
         "LV vg/lv segment2: starts at extent 2, not 1"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_section("lv-", [linear(0, 1)])])
         .replace(b"lv- {", b"-lv {"),
         "LV vg/-lv: not a valid LV name"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_with(linear(0, 0))]),
         "LV vg/lv segment1: start_extent 0, extent_count 0"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_with(seg("stripe_count = 0\nstripes = []"))]),
         "LV vg/lv segment1: 0 stripes for 2 extents"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_with(seg("stripe_count = 3\nstripes = []"))]),
         "LV vg/lv segment1: 3 stripes for 2 extents"),
        (vg_text("vg", 1, [(uuid_of(1), 128)],
                 [lv_with(seg('stripe_count = 2\nstripe_size = 0\nstripes = ["pv0", 0, "pv0", 9]'))]),
         "LV vg/lv segment1: stripe_size 0"),
        (vg_text("vg", 1, [(uuid_of(1), 128)],
                 [lv_with(seg('stripe_count = 1\nstripes = ["pv0", 0, "pv0", 9]'))]),
         "LV vg/lv segment1: stripes lists 4 items for 1 stripes"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_with(seg('stripe_count = 1\nstripes = ["pv0", -1]'))]),
         "LV vg/lv segment1: stripe ('pv0', -1) is not (PV name, extent)"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_with(seg("stripe_count = 1\nstripes = [5, 0]"))]),
         "LV vg/lv segment1: stripe (5, 0) is not (PV name, extent)"),
        (vg_text("vg", 1, [(uuid_of(1), 128)], [lv_with(seg('stripe_count = 1\nstripes = ["pv9", 0]'))]),
         "LV vg/lv segment1: PV pv9 is not on this disk"),
    ],
)  # fmt: skip
def test_metadata_that_does_not_add_up_is_named(caplog, text, message):
    """Metadata text that parses but describes no volume group or LV LVM2 would activate:
    skipped, with a warning naming the group, the LV, the segment and the field."""
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover_bytes(hand_pv(text))
    assert [v.grub_name for v in volumes] == ["hd0"]
    assert message in caplog.text


def test_lv_wholly_past_the_end_of_a_truncated_pv_is_skipped(caplog):
    text = vg_text("vg", 1, [(uuid_of(1), 128)], [lv_section("lv", [linear(0, 4, pe=500)])])
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert [v.grub_name for v in discover_bytes(hand_pv(text))] == ["hd0"]
    assert "LV vg/lv: no extent on this disk: skipped" in caplog.text


def test_segment_past_the_end_of_a_truncated_pv_cuts_the_lv(caplog):
    text = vg_text(
        "vg", 1, [(uuid_of(1), 128)], [lv_section("lv", [linear(0, 4), linear(4, 100, pe=10)])]
    )
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        (v,) = discover_bytes(hand_pv(text, size=256 * 1024))
    assert v.source.size == 4 * 4096
    assert "runs past the end of PV pv0" in caplog.text


# ---------------------------------------------------------------- metadata text parser


def test_parser_reads_lvm_syntax():
    tree = parse_metadata(
        b'vg {  # comment\n id = "a\\"b\\\\c"\n n = -12\n f = 1.5\n bare = word\n'
        b" l = [ \"x\", 3, 'sq' ]\n e = []\n s { t = 1 }\n n = 99 }\n\0\0"
    )
    assert tree == {
        "vg": {
            "id": 'a"b\\c',
            "n": -12,
            "f": 1.5,
            "bare": "word",
            "l": ["x", 3, "sq"],
            "e": [],
            "s": {"t": 1},
        }
    }


@pytest.mark.parametrize(
    "text,error,message",
    [
        (b"a {" * (MAX_METADATA_DEPTH + 1), LimitError, "nested over"),
        (b"a { " * 5, CorruptError, "unterminated section"),
        (b'a = "no end', CorruptError, "byte 4: unterminated string"),
        (b"a = " + b"9" * 5000, CorruptError, "number of 5000 digits"),
        (b"a = [1, [2]]", CorruptError, "where a value goes"),
        (b"}", CorruptError, "without"),
        (b"a b", CorruptError, "expected '=' or '{'"),
        (b"a = ", CorruptError, "end of text where a value goes"),
        (b"a = .", CorruptError, "bad number"),
        (b"a = 1\0b = 2", CorruptError, "unexpected character"),
    ],
)
def test_parser_refuses_hostile_text(text, error, message):
    with pytest.raises(error, match=re.escape(message)):
        parse_metadata(text)


def test_parser_is_fast_and_bounded_on_big_text():
    with cpu_bounded(10):
        with pytest.raises(LimitError):
            parse_metadata(b"a = [" + b"1," * 1_000_000 + b"]")
        tree = parse_metadata(b"x { " + b"k = 1\n" * 100_000 + b"}")
    assert tree == {"x": {"k": 1}}


PIECES = st.sampled_from(
    [b"{", b"}", b"[", b"]", b",", b"=", b'"', b"'", b"\\", b"#", b"\n", b" ", b"a", b"-1",
     b"99999999999999999999999", b"1.5", b"\0", b"\xff", b"seg", b'"s"', b"vg {", b"id = "]
)  # fmt: skip


@FUZZ
@given(st.lists(PIECES, max_size=200) | st.binary(max_size=2000))
def test_parser_fuzz(chunks):
    text = b"".join(chunks) if isinstance(chunks, list) else chunks
    try:
        tree = parse_metadata(text)
    except (CorruptError, LimitError):
        return
    assert isinstance(tree, dict)


# ---------------------------------------------------------------- hostile PVs


def fix_checksums(image: bytearray) -> None:
    """Recompute the label, mda header and text checksums so that checks past them run."""
    label = image[SECTOR : 2 * SECTOR]
    struct.pack_into("<I", label, 16, lvm_crc(bytes(label[20:])))
    image[SECTOR : 2 * SECTOR] = label
    header = image[4096 : 4096 + SECTOR]
    offset, size, _crc, _flags = struct.unpack_from("<QQII", header, 40)
    if 512 <= offset and offset + size <= 60 * 1024 and size < 60 * 1024:
        struct.pack_into(
            "<I", header, 56, lvm_crc(bytes(image[4096 + offset : 4096 + offset + size]))
        )
    struct.pack_into("<I", header, 0, lvm_crc(bytes(header[4:])))
    image[4096 : 4096 + SECTOR] = header


def check_volumes(volumes: list[Volume], image_size: int) -> None:
    assert volumes and all(isinstance(v, Volume) for v in volumes)
    for v in volumes:
        for offset, length in (
            (0, 4096),
            (max(0, v.source.size - 100), 4096),
            (v.source.size // 3, 70000),
        ):
            try:
                data = v.source.pread(offset, length)
            except PygrubError:
                continue
            assert len(data) == max(0, min(length, v.source.size - offset))
        v.source.host_span(0, 512)


BASE_TEXT = vg_text(
    "vg",
    1,
    [(uuid_of(1), 128)],
    [
        lv_section("a", [linear(0, 2), linear(2, 2, pe=5)]),
        lv_section(
            "b",
            [
                'start_extent = 0\nextent_count = 4\ntype = "striped"\nstripe_count = 2\nstripe_size = 8\nstripes = ["pv0", 8, "pv0", 12]'
            ],
        ),
    ],
)
BASE_PV = bytes(hand_pv(BASE_TEXT, size=256 * 1024))


def test_fuzz_base_is_valid():
    assert [v.grub_name for v in discover_bytes(BASE_PV)] == ["lvm/vg-a", "lvm/vg-b"]


@FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(SECTOR, 4096 + 600 + len(BASE_TEXT)), st.integers(0, 7)), max_size=8
    ),
    cut=st.none() | st.integers(0, len(BASE_PV)),
    fix=st.booleans(),
)
def test_discovery_fuzz_bit_flips_and_truncation(flips, cut, fix):
    image = bytearray(BASE_PV)
    for offset, bit in flips:
        image[offset] ^= 1 << bit
    if fix:
        fix_checksums(image)
    if cut is not None:
        del image[cut:]
    with cpu_bounded(5):
        check_volumes(discover_bytes(image), len(image))


#: Hostile numbers: negative, zero, past 64 bits, or plain wrong.
HOSTILE = st.one_of(
    st.integers(-3, 40), st.integers(-(2**70), 2**70), st.sampled_from([2**63, 2**64 - 1])
)


@FUZZ
@given(data=st.data(), hostile=st.booleans())
def test_discovery_fuzz_metadata_values(data, hostile):
    """Checksums and syntax valid, numbers plausible or hostile: never a crash or wild read.

    Two PVs of 192 KiB on two partitions, each with 128 KiB of extents after its label area.
    """
    number = HOSTILE if hostile else st.integers(1, 6)
    extent = data.draw(st.sampled_from([8, 16]) | number)
    pe_start = data.draw(st.sampled_from([128]) | number)
    bodies = []
    total = 0
    for _ in range(data.draw(st.integers(1, 4))):
        stripes = data.draw(st.integers(1, 3))
        count = data.draw(number) * (1 if hostile else stripes)
        stripe_size = data.draw(st.sampled_from([8, 16]) | number)
        pes = data.draw(st.lists(number, min_size=stripes, max_size=stripes + hostile))
        start = data.draw(st.none() | number) if hostile else None
        listed = ", ".join(f'"pv{i % 2}", {pe}' for i, pe in enumerate(pes))
        bodies.append(
            f"start_extent = {total if start is None else start}\n"
            f"extent_count = {count}\n"
            f'type = "striped"\nstripe_count = {stripes}\nstripe_size = {stripe_size}\n'
            f"stripes = [{listed}]"
        )
        total += count
    pvs = [(uuid_of(1), pe_start), (uuid_of(2), 128)]
    text = vg_text("vg", 1, pvs, [lv_section("x", bodies)], extent=extent)
    part = 192 * 1024
    image = bytearray(64 * 1024) + hand_pv(text, part, uuid_of(1)) + hand_pv(text, part, uuid_of(2))
    image[:SECTOR] = mbr(
        [(128, part // SECTOR, 0x8E), (128 + part // SECTOR, part // SECTOR, 0x8E)]
    )
    check_volumes(discover_bytes(image), len(image))


def test_random_reads_match_a_plain_model(two_pvs):
    """Random reads of the striped LV against the bytes written through lvs's mapping."""
    source = by_name(discover(FileSource(str(two_pvs.path))))["lvm/my--vg-data"].source
    content = two_pvs.contents["data"]
    rng = random.Random(7)
    for _ in range(200):
        offset = rng.randrange(0, source.size + 1000)
        length = rng.randrange(0, 300_000)
        assert source.pread(offset, length) == content[offset : offset + length]
