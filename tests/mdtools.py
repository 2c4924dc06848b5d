"""Linux MD RAID members written by hand from linux/raid/md_p.h, for tests that need one.

``mdadm --create`` needs the kernel's md driver, which the test machines lack;
tests/test_md.py checks these writers with ``mdadm --examine``.
"""

from __future__ import annotations

import struct

from imaging import MiB

SECTOR = 512
MD_MAGIC = 0xA92B4EFC
UUID = bytes(range(0x10, 0x20))


def folded(total: int) -> int:
    return ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def superblock_090(
    sb_offset: int,
    array_bytes: int,
    *,
    order: str = "<",
    level: int = 1,
    raid_disks: int = 2,
    minor: int = 3,
    role: int = 0,
    events: int = 5,
    uuid: bytes = UUID,
) -> bytes:
    """mdp_superblock_s: 1024 words in the creator's byte order, this_disk at word 992."""
    words = [0] * 1024
    uuid_words = struct.unpack(order + "4I", uuid)
    words[0:3] = [MD_MAGIC, 0, 90]  # md_magic, major_version, minor_version
    # set_uuid0, ctime, level, size (KiB)
    words[5:9] = [uuid_words[0], 1700000000, level & 0xFFFFFFFF, array_bytes // 1024]
    words[9:12] = [raid_disks, raid_disks, minor]  # nr_disks, raid_disks, md_minor
    words[13:16] = uuid_words[1:]  # set_uuid1..3
    words[32:36] = [1700000001, 1, raid_disks, raid_disks]  # utime, state, active, working
    for i in range(raid_disks):  # disks[i]: number, major, minor, raid_disk, state
        words[128 + 32 * i : 133 + 32 * i] = [i, 9, i, i, 6]
    words[992:997] = [role, 9, role, role, 6]  # this_disk, active|sync
    raw = bytearray(struct.pack(order + "1024I", *words))
    struct.pack_into(order + "Q", raw, 39 * 4, events)
    struct.pack_into(order + "I", raw, 38 * 4, folded(sum(struct.unpack(order + "1024I", raw))))
    assert sb_offset % (64 * 1024) == 0
    return bytes(raw)


def superblock_1x(
    sb_sector: int,
    data_offset: int,
    data_size: int,
    array_sectors: int,
    *,
    level: int = 1,
    raid_disks: int = 2,
    name: bytes = b"guest:boot",
    dev_number: int = 0,
    roles: tuple[int, ...] = (0, 1),
    events: int = 5,
    features: int = 0,
    uuid: bytes = UUID,
) -> bytes:
    """mdp_superblock_1 (all sizes in sectors), roles[] after its 256 bytes, checksum set."""
    raw = bytearray(4096)
    struct.pack_into(
        "<4I16s32sQiIQIIi", raw, 0,
        MD_MAGIC, 1, features, 0, uuid, name, 1700000000, level, 0, array_sectors,
        0, raid_disks, 0,
    )  # fmt: skip
    # data_offset, data_size, super_offset, recovery_offset, dev_number
    struct.pack_into("<4QI", raw, 128, data_offset, data_size, sb_sector, 0, dev_number)
    # utime, events, resync_offset, sb_csum, max_dev
    struct.pack_into("<3QII", raw, 192, 1700000001, events, 2**64 - 1, 0, len(roles))
    struct.pack_into(f"<{len(roles)}H", raw, 256, *roles)
    fix_1x_checksum(raw)
    return bytes(raw)


def fix_1x_checksum(raw: bytearray) -> None:
    (max_dev,) = struct.unpack_from("<I", raw, 220)
    end = min(256 + 2 * max_dev, len(raw))
    struct.pack_into("<I", raw, 216, 0)
    total = sum(struct.unpack_from(f"<{end // 4}I", raw))
    if end % 4:
        total += struct.unpack_from("<H", raw, end - 2)[0]
    struct.pack_into("<I", raw, 216, folded(total))


#: Where each version starts its array data on the member, in sectors (mdadm's 1 MiB).
DATA_OFFSET = {"0.90": 0, "0.90-be": 0, "1.0": 0, "1.1": 2048, "1.2": 2048}


def member(data: bytes, version: str, **fields: object) -> bytes:
    """A RAID member whose array data is ``data``, superblock where ``version`` puts it.

    Its size is a whole number of MiB, as make_partitioned's partitions are, so that the
    superblocks kept at the end of a member sit at the end of its partition.
    """
    start = DATA_OFFSET[version] * SECTOR
    size = -(-(start + len(data) + 64 * 1024) // MiB) * MiB
    if version.startswith("0.90"):
        sb_offset = size - 64 * 1024
        order = ">" if version.endswith("be") else "<"
        sb = superblock_090(sb_offset, len(data), order=order, **fields)  # type: ignore[arg-type]
    else:
        sectors = size // SECTOR
        sb_sector = {"1.0": (sectors - 16) & ~7, "1.1": 0, "1.2": 8}[version]
        room = (sb_sector if version == "1.0" else sectors) - DATA_OFFSET[version]
        sb = superblock_1x(sb_sector, DATA_OFFSET[version], room, len(data) // SECTOR, **fields)  # type: ignore[arg-type]
        sb_offset = sb_sector * SECTOR
    image = bytearray(size)
    image[start : start + len(data)] = data
    image[sb_offset : sb_offset + len(sb)] = sb
    return bytes(image)
