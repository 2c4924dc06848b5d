"""Linux MD RAID members as volumes: superblocks 0.90 (both byte orders), 1.0, 1.1, 1.2.

``mdadm --create`` needs the kernel's md driver, which this sandbox lacks, so superblocks
are written here by hand from linux/raid/md_p.h. ``mdadm --examine`` checks the writer
(version, level, name, UUID, role and "checksum correct"); ``grub-fstest`` is the oracle
for GRUB's array names and for the bytes it reads through an array from one member.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import MiB, make_ext, make_partitioned, require_tool, run
from lvmtools import lvm_disk, write_lv
from mdtools import (
    DATA_OFFSET,
    SECTOR,
    UUID,
    fix_1x_checksum,
    folded,
    member,
    superblock_090,
    superblock_1x,
)

from pygrub.boot import open_guest
from pygrub.disk import FileSource, MemorySource
from pygrub.errors import PygrubError
from pygrub.volumes import Volume, discover

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KERNEL = os.urandom(120_000)
INITRD = os.urandom(30_001)
MENU_LST = "default 0\ntimeout 1\ntitle md\n  kernel /boot/vmlinuz root=/dev/md0\n  initrd /boot/initrd.img\n"
GUEST = {"boot/grub/menu.lst": MENU_LST, "boot/vmlinuz": KERNEL, "boot/initrd.img": INITRD}


def examine(path: Path) -> dict[str, str]:
    """mdadm --examine's "Key : value" lines."""
    out = run("mdadm", "--examine", path).decode()
    return {
        k.strip(): v.strip() for k, v in re.findall(r"^\s*([A-Za-z][^:\n]*?) : (.*)$", out, re.M)
    }


def grub_read(disk: Path, name: str, size: int, tmp: Path) -> bytes | None:
    """Every byte of device ``name`` as GRUB reads it; None when GRUB has no such device."""
    out = tmp / "grub.bin"
    argv = [require_tool("grub-fstest"), str(disk), "cp", f"({name})0+{size // SECTOR}", str(out)]
    proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    if proc.returncode != 0:
        known = (b"not found", b"outside", b"beyond the total sectors")
        assert any(m in proc.stderr for m in known), proc.stderr
        return None
    return out.read_bytes()


def names(volumes: list[Volume]) -> list[str]:
    return [v.grub_name for v in volumes]


def by_name(volumes: list[Volume]) -> dict[str, Volume]:
    return {v.grub_name: v for v in volumes}


def boot(image: Path, out: Path) -> dict[str, str]:
    out.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pygrub", "-q", "--output-format=simple", f"--output-directory={out}", image],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    return dict(item.split(" ", 1) for item in proc.stdout.decode().split("\n") if item)


@pytest.fixture(scope="module")
def guest_fs(tmp_path_factory) -> bytes:
    return make_ext(tmp_path_factory.mktemp("md"), GUEST, size_mb=8).read_bytes()


# ---------------------------------------------------------------- every version, one member

VERSIONS = ["0.90", "0.90-be", "1.0", "1.1", "1.2"]
ARRAY_NAME = {
    "0.90": "md/md3",
    "0.90-be": "md/md3",
    "1.0": "md/boot",
    "1.1": "md/boot",
    "1.2": "md/boot",
}


@pytest.mark.parametrize("version", VERSIONS)
def test_raid1_member_on_a_partition(tmp_path, guest_fs, version):
    part = tmp_path / "member.img"
    part.write_bytes(member(guest_fs, version))
    if version != "0.90-be":  # mdadm reads only its host's byte order
        info = examine(part)
        assert info["Raid Level"] == "raid1"
        assert info["Checksum"].endswith("correct")
        assert info["Version"].startswith(version.replace("0.90", "0.90.00"))
        if version.startswith("1"):
            assert info["Name"] == "guest:boot"
            assert info["Array UUID"] == "10111213:14151617:18191a1b:1c1d1e1f"
            assert info["Device Role"] == "Active device 0"
        else:
            assert info["Preferred Minor"] == "3"
    disk = make_partitioned(tmp_path, [(part, "fd"), (2, "83")])
    volumes = discover(FileSource(str(disk)))
    array = ARRAY_NAME[version]
    # A member whose array data starts at its byte 0 stays; the others are no filesystem.
    kept = ["hd0,msdos1"] if DATA_OFFSET[version] == 0 else []
    assert names(volumes) == [*kept, "hd0,msdos2", array]
    source = by_name(volumes)[array].source
    assert source.size == len(guest_fs)
    assert source.pread(0, source.size) == guest_fs
    assert grub_read(disk, array, source.size, tmp_path) == guest_fs
    assert grub_read(disk, array, source.size + SECTOR, tmp_path) is None  # GRUB's size too
    assert by_name(volumes)[array].origin == (
        f"MD RAID1 array {array} (metadata {version[:4]}) on hd0,msdos1"
    )


@pytest.mark.parametrize(
    ("version", "sectors"),
    [
        ("0.90", 256),  # the smallest 0.90 member: 64 KiB of data, the 64 KiB reserved
        ("0.90", 1124),  # not a multiple of 64 KiB: the superblock is below the last one
        ("1.0", 1053),  # not a multiple of 4 KiB: 8 to 12 KiB from the end, 4 KiB aligned
    ],
)
def test_superblock_at_the_end_of_a_member_of_odd_size(tmp_path, version, sectors):
    """Partitions are not all a whole number of 64 KiB (CHS-era tables, hand-made ones):
    the superblocks kept at the end of a member sit where mdadm rounds down to, which
    ``mdadm --examine`` and GRUB find there."""
    if version == "0.90":
        sb_sector = (sectors & ~127) - 128
        data = os.urandom(min(sb_sector * SECTOR, 256 * 1024))
        sb = superblock_090(sb_sector * SECTOR, len(data))
    else:
        sb_sector = (sectors - 16) & ~7
        data = os.urandom(256 * 1024)
        sb = superblock_1x(sb_sector, 0, sb_sector, len(data) // SECTOR)
    image = bytearray(sectors * SECTOR)
    image[: len(data)] = data
    image[sb_sector * SECTOR : sb_sector * SECTOR + len(sb)] = sb
    part = tmp_path / "member.img"
    part.write_bytes(image)
    info = examine(part)
    assert info["Version"].startswith(version) and info["Checksum"].endswith("correct")
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(2 * MiB + sectors * SECTOR)
    table = f"label: dos\nunit: sectors\nstart=2048, size={sectors}, type=fd\n"
    run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk, input=table.encode())
    with open(disk, "r+b") as f:
        f.seek(1 * MiB)
        f.write(image)
    volumes = discover(FileSource(str(disk)))
    array = ARRAY_NAME[version]
    assert names(volumes) == ["hd0,msdos1", array]
    assert by_name(volumes)[array].source.pread(0, 1 << 20) == data
    assert grub_read(disk, array, len(data), tmp_path) == data


@pytest.mark.parametrize("version", ["0.90", "1.2"])
def test_a_raid1_member_alone_boots(tmp_path, guest_fs, version):
    disk = tmp_path / "disk.img"
    disk.write_bytes(member(guest_fs, version))  # a whole-disk member, no partition table
    items = boot(disk, tmp_path / "out")
    assert Path(items["kernel"]).read_bytes() == KERNEL
    assert Path(items["ramdisk"]).read_bytes() == INITRD
    expected = ["hd0", "md/md3"] if version == "0.90" else ["md/boot"]
    assert names(discover(FileSource(str(disk)))) == expected


@pytest.mark.parametrize("version", ["0.90", "1.2"])
def test_mduuid_names_as_grub_gives_them(tmp_path, guest_fs, version):
    """grub-mkconfig writes ``set root='mduuid/HEX'``: the array answers to it."""
    part = tmp_path / "member.img"
    part.write_bytes(member(guest_fs, version))
    disk = make_partitioned(tmp_path, [(part, "fd")])
    info = examine(part)
    mduuid = "mduuid/" + info.get("Array UUID", info.get("UUID", "")).replace(":", "")
    volume = open_guest(FileSource(str(disk))).find_volume(mduuid)
    assert volume is not None and volume.grub_name == ARRAY_NAME[version]
    assert grub_read(disk, mduuid, len(guest_fs), tmp_path) == guest_fs


def test_names_as_grub_gives_them(tmp_path):
    data = os.urandom(256 * 1024)
    cases = [
        (b"otherhost:web-boot", "md/web-boot"),
        (b"0", "md/0"),
        (b"plain", "md/plain"),
        (b"a:b:c", "md/b:c"),
    ]
    for name, expected in cases:
        disk = tmp_path / "m.img"
        disk.write_bytes(member(data, "1.2", name=name))
        (v,) = discover(FileSource(str(disk)))
        assert v.grub_name == expected
        assert grub_read(disk, expected, len(data), tmp_path) == data
    disk.write_bytes(member(data, "1.2", name=b"we(ird)"))
    assert names(discover(FileSource(str(disk)))) == ["mduuid/" + UUID.hex()]


# ---------------------------------------------------------------- several members, levels


def test_the_most_recent_member_is_read(tmp_path):
    old, new = os.urandom(512 * 1024), os.urandom(512 * 1024)
    a = tmp_path / "a.img"
    b = tmp_path / "b.img"
    a.write_bytes(member(old, "1.2", events=7, dev_number=0))
    b.write_bytes(member(new, "1.2", events=9, dev_number=1))
    disk = make_partitioned(tmp_path, [(a, "fd"), (b, "fd")])
    (array,) = discover(FileSource(str(disk)))
    assert array.source.pread(0, len(new)) == new
    assert array.origin.endswith("on hd0,msdos2")


def test_spare_and_faulty_members_are_skipped(tmp_path, caplog):
    data = os.urandom(256 * 1024)
    spare = tmp_path / "spare.img"
    spare.write_bytes(member(data, "1.2", dev_number=2, roles=(0, 1, 0xFFFF)))
    assert examine(spare)["Device Role"] == "spare"
    spare090 = tmp_path / "spare090.img"
    spare090.write_bytes(member(data, "0.90", role=2))  # raid_disk 2 of 2: not a data role
    disk = make_partitioned(tmp_path, [(spare, "fd"), (spare090, "fd"), (1, "83")])
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert names(discover(FileSource(str(disk)))) == ["hd0,msdos3"]
    assert caplog.text.count("needs members not read alone") == 2


@pytest.mark.parametrize(
    "level,disks,readable",
    [(5, 3, False), (0, 2, False), (10, 2, False), (6, 4, False), (-1, 2, False),
     (0, 1, True), (-1, 1, True), (-4, 2, True)],
)  # fmt: skip
def test_levels(tmp_path, caplog, level, disks, readable):
    data = os.urandom(128 * 1024)
    part = tmp_path / "m.img"
    part.write_bytes(member(data, "1.2", level=level, raid_disks=disks, roles=tuple(range(disks))))
    disk = make_partitioned(tmp_path, [(part, "fd"), (1, "83")])
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover(FileSource(str(disk)))
    if readable:
        assert names(volumes) == ["hd0,msdos2", "md/boot"]
        assert volumes[1].source.pread(0, len(data)) == data
        # GRUB's mdraid1x reads neither linear nor multipath arrays (it hands the level on
        # unmapped to diskfilter, which knows neither); a lone member holds all the data.
        grub = grub_read(disk, "md/boot", len(data), tmp_path)
        assert grub == (None if level < 0 else data)
    else:
        assert names(volumes) == ["hd0,msdos2"]
        assert f"RAID level {level}, {disks} devices" in caplog.text


def test_damaged_or_unread_superblocks_leave_a_plain_volume(tmp_path, caplog):
    data = os.urandom(128 * 1024)
    bad = bytearray(member(data, "1.2"))
    bad[4096 + 100] ^= 1  # in ctime: the checksum no longer matches
    recovering = member(data, "1.2", features=0x2)
    cases = [(bad, "checksum mismatch"), (recovering, "being recovered")]
    bad090 = bytearray(member(data, "0.90"))
    bad090[-64 * 1024 + 40] ^= 1
    cases.append((bad090, "checksum mismatch"))
    for image, message in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING, "pygrub.volumes"):
            assert names(discover(MemorySource(bytes(image)))) == ["hd0"]
        assert message in caplog.text
    # A 1.2 superblock whose device roles run past the end of a truncated member.
    caplog.clear()
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert names(discover(MemorySource(member(data, "1.2")[: 4096 + 257]))) == ["hd0"]
    assert "cut short by the end of the member" in caplog.text
    corrupt = tmp_path / "bad.img"
    corrupt.write_bytes(bad)
    assert "expected" in run("mdadm", "--examine", corrupt).decode()  # mdadm agrees


# ---------------------------------------------------------------- LVM on MD


@pytest.mark.parametrize("version", ["1.0", "1.2"])
def test_lvm_on_a_raid1_array(tmp_path, caplog, version):
    """A PV made by LVM2 inside the array's data: read through the array, not the member
    (with 1.0 the member shows the PV at its start too: not read twice, nothing to warn)."""
    array_bytes = 16 * MiB
    part = tmp_path / "member.img"
    part.write_bytes(member(bytes(array_bytes), version))
    disk = make_partitioned(tmp_path, [(part, "fd")])
    data_start = 1 * MiB + DATA_OFFSET[version] * SECTOR
    d = lvm_disk(
        tmp_path,
        disk,
        [(data_start, array_bytes)],
        "vg-md",
        [("lvcreate", "-an", "-Zn", "-L", "8M", "-n", "root", "vg-md")],
    )
    write_lv(d, "root", make_ext(tmp_path, GUEST, size_mb=8, name="lv.img").read_bytes())
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover(FileSource(str(disk)))
    assert caplog.text == ""
    assert names(volumes) == ["lvm/vg--md-root"]
    assert volumes[0].source.pread(0, 8 * MiB) == d.contents["root"]
    assert grub_read(disk, "lvm/vg--md-root", 8 * MiB, tmp_path) == d.contents["root"]
    items = boot(disk, tmp_path / "out")
    assert Path(items["kernel"]).read_bytes() == KERNEL


# ---------------------------------------------------------------- hostile superblocks


def check_volumes(volumes: list[Volume]) -> None:
    assert volumes and all(isinstance(v, Volume) for v in volumes)
    for v in volumes:
        for offset in (0, max(0, v.source.size - 100)):
            try:
                data = v.source.pread(offset, 4096)
            except PygrubError:
                continue
            assert len(data) == max(0, min(4096, v.source.size - offset))


SIZE = 192 * 1024
U64 = st.integers(0, 400) | st.integers(0, 2**64 - 1)
U32 = st.integers(0, 40) | st.integers(0, 2**32 - 1)


@FUZZ
@given(data=st.data(), hostile=st.booleans(), checksum_ok=st.booleans())
def test_fuzz_1x_fields(data, hostile, checksum_ok):
    """Superblock fields plausible or hostile, checksum right or wrong: never a crash."""
    version = data.draw(st.sampled_from(["1.0", "1.1", "1.2"]))
    small = st.integers(0, SIZE // SECTOR + 8)
    u64, u32 = (U64, U32) if hostile else (small, st.integers(0, 4))
    roles = data.draw(
        st.lists(st.sampled_from([0, 1, 2, 0xFFFE, 0xFFFF]) | u32, min_size=1, max_size=6)
    )
    image = bytearray(SIZE)
    sectors = SIZE // SECTOR
    sb_sector = {"1.0": (sectors - 16) & ~7, "1.1": 0, "1.2": 8}[version]
    raw = bytearray(
        superblock_1x(
            sb_sector,
            data.draw(u64),
            data.draw(u64),
            data.draw(u64),
            level=data.draw(st.sampled_from([-4, -1, 0, 1, 5, 10]) | st.integers(-5, 11)),
            raid_disks=data.draw(u32 if hostile else st.integers(1, 3)),
            dev_number=data.draw(u32 if hostile else st.integers(0, len(roles) - 1)),
            roles=tuple(r & 0xFFFF for r in roles),
            features=data.draw(st.integers(0, 2**16) if hostile else st.sampled_from([0, 1])),
        )
    )
    if hostile:
        struct.pack_into("<I", raw, 220, data.draw(U32))  # max_dev
    if checksum_ok:
        fix_1x_checksum(raw)
    image[sb_sector * SECTOR : sb_sector * SECTOR + 4096] = raw
    check_volumes(discover(MemorySource(bytes(image))))


@FUZZ
@given(
    order=st.sampled_from("<>"),
    words=st.dictionaries(st.integers(0, 1023), st.integers(0, 2**32 - 1), max_size=12),
    checksum_ok=st.booleans(),
)
def test_fuzz_090_fields(order, words, checksum_ok):
    sb_offset = SIZE - 64 * 1024
    raw = bytearray(superblock_090(sb_offset, 64 * 1024, order=order))
    for index, value in words.items():
        if index != 0:  # keep the magic, so that the reader goes on
            struct.pack_into(order + "I", raw, index * 4, value)
    if checksum_ok:
        struct.pack_into(order + "I", raw, 38 * 4, 0)
        struct.pack_into(order + "I", raw, 38 * 4, folded(sum(struct.unpack(order + "1024I", raw))))
    image = bytearray(SIZE)
    image[sb_offset : sb_offset + 4096] = raw
    check_volumes(discover(MemorySource(bytes(image))))


BASE = member(os.urandom(64 * 1024), "1.2")


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(4096, 4096 + 300), st.integers(0, 7)), max_size=6),
    cut=st.none() | st.integers(0, len(BASE)) | st.integers(4096, 8192),
)
def test_fuzz_bit_flips_and_truncation(flips, cut):
    image = bytearray(BASE)
    for offset, bit in flips:
        image[offset] ^= 1 << bit
    fix_1x_checksum(memoryview(image)[4096 : 4096 + 4096])  # type: ignore[arg-type]
    check_volumes(discover(MemorySource(bytes(image[:cut]))))


# ---------------------------------------------------------------- fields at their bounds


def patched_1x(image: bytes, sb_offset: int, fields: dict[int, tuple[str, int]]) -> bytes:
    """``image`` with fields of its 1.x superblock (byte -> (format, value)) rewritten."""
    raw = bytearray(image)
    for at, (fmt, value) in fields.items():
        struct.pack_into(fmt, raw, sb_offset + at, value)
    fix_1x_checksum(memoryview(raw)[sb_offset : sb_offset + 4096])  # type: ignore[arg-type]
    return bytes(raw)


def patched_090(image: bytes, words: dict[int, int]) -> bytes:
    """``image`` (a 0.90 member) with words of its superblock rewritten, checksum fixed."""
    raw = bytearray(image)
    at = len(raw) - 64 * 1024
    for index, value in words.items():
        struct.pack_into("<I", raw, at + 4 * index, value)
    struct.pack_into("<I", raw, at + 38 * 4, 0)
    struct.pack_into("<I", raw, at + 38 * 4, folded(sum(struct.unpack_from("<1024I", raw, at))))
    return bytes(raw)


SB12 = 4096  # where a 1.2 superblock sits
DATA_64K = os.urandom(64 * 1024)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        # dev_number 2 of max_dev 2: its role would be read past the roles.
        (patched_1x(member(DATA_64K, "1.2"), SB12, {160: ("<I", 2)}), "device 2 of max_dev 2"),
        (patched_1x(member(DATA_64K, "1.2"), SB12, {4: ("<I", 2)}), "major version 2"),
        # data_offset at the member's very end; size and data_size both 0.
        (patched_1x(member(DATA_64K, "1.2"), SB12, {128: ("<Q", 2 * MiB // SECTOR)}),
         "is not on the member"),
        (patched_1x(member(DATA_64K, "1.2"), SB12, {80: ("<Q", 0), 136: ("<Q", 0)}),
         "data at byte 1048576, 0 bytes, is not on the member"),
        (patched_090(member(DATA_64K, "0.90"), {2: 91}), "version 0.91"),
        # size (KiB) past the superblock 64 KiB before the end: the data would run over it.
        (patched_090(member(DATA_64K, "0.90"), {8: 1024}), "size 1048576 runs over the superblock"),
    ],
)  # fmt: skip
def test_superblock_fields_out_of_range_are_refused_by_name(caplog, image, message):
    """A superblock whose checksum is right but whose fields cannot be is refused with a
    warning that says what is wrong; the volume is then read as a plain one."""
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert names(discover(MemorySource(image))) == ["hd0"]
    assert message in caplog.text


def test_most_devices_a_1x_superblock_holds(tmp_path):
    """max_dev up to 1920, the roles that fit in the superblock's 4 KiB (mdadm's limit)."""
    roles = (0, 1, *[0xFFFF] * 1918)
    part = tmp_path / "m.img"
    part.write_bytes(member(DATA_64K, "1.2", roles=roles))
    assert examine(part)["Device Role"] == "Active device 0"
    (array,) = discover(FileSource(str(part)))
    assert array.source.pread(0, len(DATA_64K)) == DATA_64K
    image = patched_1x(part.read_bytes(), SB12, {220: ("<I", 1921)})
    assert names(discover(MemorySource(image))) == ["hd0"]


def test_a_role_past_raid_disks_is_not_a_data_role(caplog):
    """Role 2 of a 2-device RAID1 (a device a reshape would add): not in sync, not read."""
    image = member(DATA_64K, "1.2", roles=(2, 1))
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        assert names(discover(MemorySource(image))) == ["hd0"]
    assert "needs members not read alone" in caplog.text


def test_a_superblock_from_another_place_is_not_read():
    """A 1.x superblock whose super_offset names another place (one copied with its
    member's first sectors, as dd'ing a 1.1 member 4 KiB in would) is not this member's."""
    image = patched_1x(member(DATA_64K, "1.2"), SB12, {144: ("<Q", 0)})
    assert names(discover(MemorySource(image))) == ["hd0"]


def test_090_uuid_with_its_high_bits_set(tmp_path):
    """Random UUIDs have the top bit of a 32-bit word set half the time."""
    uuid = bytes.fromhex("fedcba9876543210f0e1d2c3b4a59687")
    part = tmp_path / "m.img"
    part.write_bytes(member(DATA_64K, "0.90", uuid=uuid))
    assert examine(part)["UUID"] == "98badcfe:10325476:c3d2e1f0:8796a5b4"
    disk = make_partitioned(tmp_path, [(part, "fd")])
    volumes = discover(FileSource(str(disk)))
    assert volumes[1].names == ("md/md3", "mduuid/98badcfe10325476c3d2e1f08796a5b4")
    assert grub_read(disk, volumes[1].names[1], len(DATA_64K), tmp_path) == DATA_64K


def test_the_most_recent_090_member_is_read(tmp_path):
    old, new = os.urandom(128 * 1024), os.urandom(128 * 1024)
    a = tmp_path / "a.img"
    b = tmp_path / "b.img"
    a.write_bytes(member(old, "0.90", events=7, role=0))
    b.write_bytes(member(new, "0.90", events=2**32 + 1, role=1))  # both halves count
    disk = make_partitioned(tmp_path, [(a, "fd"), (b, "fd")])
    (array,) = [v for v in discover(FileSource(str(disk))) if v.grub_name == "md/md3"]
    assert array.source.pread(0, len(new)) == new
    assert array.origin.endswith("on hd0,msdos2")


@pytest.mark.parametrize(("level", "disks"), [(-1, 1), (-4, 2)])
def test_090_linear_and_multipath(level, disks):
    """0.90 keeps the level as a signed word: a one-device linear array, a multipath one."""
    image = member(DATA_64K, "0.90", level=level, raid_disks=disks)
    volumes = discover(MemorySource(image))
    assert names(volumes) == ["hd0", "md/md3"]
    assert volumes[1].source.pread(0, len(DATA_64K)) == DATA_64K


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"", None),
        (b"host:", None),
        (b"a\x01b", None),
        (b"Xen", "md/Xen"),
        (b"host:\xff\xfe", "md/\ufffd\ufffd"),  # not UTF-8: read all the same
    ],
)
def test_odd_array_names(tmp_path, name, expected):
    """An empty or unprintable name gives the array its mduuid/ name alone."""
    image = member(DATA_64K, "1.2", name=name)
    (array,) = discover(MemorySource(image))
    by_uuid = "mduuid/" + UUID.hex()
    assert array.names == ((expected, by_uuid) if expected else (by_uuid,))
    assert array.source.pread(0, len(DATA_64K)) == DATA_64K
    if expected == "md/Xen":
        disk = tmp_path / "m.img"
        disk.write_bytes(image)
        assert grub_read(disk, expected, len(DATA_64K), tmp_path) == DATA_64K


def test_a_truncated_member_clips_its_array(caplog):
    """A member image cut short inside its array's data (a partial copy): the array is
    read up to the cut, with a warning."""
    data = os.urandom(512 * 1024)
    image = member(data, "1.2")[: 1 * MiB + 256 * 1024]
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        (array,) = discover(MemorySource(image))
    assert array.source.size == 256 * 1024
    assert array.source.pread(0, 1 * MiB) == data[: 256 * 1024]
    assert "MD array md/boot: runs past the end of hd0: clipped" in caplog.text


def test_arrays_of_one_name_are_numbered(tmp_path, caplog):
    """Arrays named alike on one disk (members from several hosts: "a:boot" and "b:boot"
    are both md/boot) get "_1", "_2"... as GRUB's diskfilter names them, with a warning."""
    uuids = [bytes([n]) * 16 for n in (1, 2, 3)]
    datas = [os.urandom(64 * 1024) for _ in uuids]
    parts = []
    for n, (uuid, data) in enumerate(zip(uuids, datas, strict=True)):
        part = tmp_path / f"m{n}.img"
        part.write_bytes(member(data, "1.2", name=f"host{n}:boot".encode(), uuid=uuid))
        parts.append((part, "fd"))
    disk = make_partitioned(tmp_path, parts)
    with caplog.at_level(logging.WARNING, "pygrub.volumes"):
        volumes = discover(FileSource(str(disk)))
    assert names(volumes) == ["md/boot", "md/boot_1", "md/boot_2"]
    for volume, data, uuid in zip(volumes, datas, uuids, strict=True):
        assert volume.source.pread(0, len(data)) == data
        assert volume.names[1] == "mduuid/" + uuid.hex()
    assert "name already in use: (md/boot_2)" in caplog.text
