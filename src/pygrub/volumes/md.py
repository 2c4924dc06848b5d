"""Linux MD RAID: members found on this disk and the arrays one member is enough to read.

Superblocks (linux/raid/md_p.h; GRUB's grub-core/disk/mdraid_linux.c, mdraid1x_linux.c):

- 0.90: 4096 bytes in the last 64 KiB-aligned 64 KiB of the member, in the creating
  host's byte order; 32-bit words; array data from the member's byte 0, ``size`` KiB of it.
- 1.x: little-endian, 256 bytes plus a 16-bit role per device; 1.0 sits 8 to 12 KiB from
  the end (4 KiB aligned), 1.1 at byte 0, 1.2 at byte 4096; the data starts at
  ``data_offset`` sectors and is ``size`` (else ``data_size``) sectors long.

A RAID1 (or multipath) member in sync holds the whole array, so one member is enough: the
array is a window of it. So is a linear or RAID0 "array" of a single device. Other levels
need the other members, which GRUB would read from other disks: they are logged and left
out. Names are GRUB's: ``md/NAME`` for 1.x (a "host:" prefix dropped), ``md/mdMINOR`` for
0.90 (grub-core/disk/diskfilter.c prefixes "md/" to the "md%d" mdraid_linux.c makes).
Checksums are checked as the kernel checks them before assembling.
"""

from __future__ import annotations

import struct

from ..disk import SliceSource
from ..errors import CorruptError, UnsupportedError
from ..log import get_logger
from ..record import record
from .volume import Volume, md_superblock_offsets

log = get_logger(__name__)

SECTOR_SIZE = 512
MD_MAGIC = 0xA92B4EFC
SUPERBLOCK_BYTES = 4096

LEVEL_MULTIPATH = -4
LEVEL_LINEAR = -1
LEVEL_RAID0 = 0
LEVEL_RAID1 = 1

# ---- 0.90 (mdp_superblock_s): 1024 32-bit words in the creator's byte order.
_W_MAJOR, _W_MINOR = 1, 2
_W_UUID0, _W_LEVEL, _W_SIZE, _W_RAID_DISKS, _W_MD_MINOR = 5, 7, 8, 10, 11
_W_UUID1_3 = slice(13, 16)
_W_CSUM = 38
#: events as one 64-bit value in the superblock's byte order (its two halves swap with it).
_EVENTS_090 = 39 * 4
#: this_disk (mdp_disk_t): number, major, minor, raid_disk, state.
_W_THIS_DISK = 992
_DISK_FAULTY = 1 << 0

# ---- 1.x (mdp_superblock_1), the first 256 bytes: magic, major_version, feature_map, pad0,
# set_uuid, set_name, ctime, level, layout, size, chunksize, raid_disks, bitmap_offset,
# new_level, reshape_position, delta_disks, new_layout, new_chunk, new_offset;
# data_offset, data_size, super_offset, recovery_offset, dev_number, cnt_corrected_read,
# device_uuid, devflags, bblog_shift, bblog_size, bblog_offset;
# utime, events, resync_offset, sb_csum, max_dev, pad3. dev_roles[max_dev] (u16) follow.
_SB1 = struct.Struct("<4I16s32sQiIQIIiIQIIIi4QII16sBBHI3QII32s")
_SB1_CSUM_OFFSET = 216
#: Roles beyond this many devices would run past the superblock's 4 KiB.
MAX_DEVICES_1X = (SUPERBLOCK_BYTES - _SB1.size) // 2
#: feature_map bits that mean this member's data is not (yet) the array's.
_FEATURE_RECOVERY_OFFSET = 0x2
_FEATURE_RESHAPE_ACTIVE = 0x4


@record(frozen=True)
class Member:
    """One member's superblock, decoded into what assembling needs."""

    volume: Volume
    version: str
    level: int
    raid_disks: int
    #: A data role in the array (neither spare nor faulty).
    active: bool
    set_uuid: bytes
    #: GRUB's device name of the array.
    name: str
    events: int
    #: Where the array's data starts on this member, and how many bytes of it, in bytes.
    data_offset: int
    data_size: int

    @property
    def readable_alone(self) -> bool:
        """Whether this member alone holds every byte of the array."""
        if not self.active:
            return False
        if self.level in (LEVEL_RAID1, LEVEL_MULTIPATH):
            return True
        return self.level in (LEVEL_LINEAR, LEVEL_RAID0) and self.raid_disks == 1

    @property
    def filesystem_at_start(self) -> bool:
        """Whether the member read as it is shows the array's filesystem (0.90, 1.0 RAID1)."""
        return self.readable_alone and self.data_offset == 0


def read_member(volume: Volume) -> Member | None:
    """The MD superblock on ``volume``, or None when it has none.

    Raises CorruptError for a superblock that is there but damaged (bad checksum, fields
    out of range) and UnsupportedError for a version or state pygrub does not read.
    """
    offsets = md_superblock_offsets(volume.source.size)
    for version in ("1.2", "1.1", "1.0"):
        offset = offsets.get(version)
        if offset is None:
            continue
        raw = volume.source.pread(offset, SUPERBLOCK_BYTES)
        if len(raw) >= _SB1.size and _SB1.unpack_from(raw)[0] == MD_MAGIC:
            member = _member_1x(volume, version, offset, raw)
            if member is not None:
                return member
    offset = offsets.get("0.90")
    if offset is not None:
        raw = volume.source.pread(offset, SUPERBLOCK_BYTES)
        if len(raw) == SUPERBLOCK_BYTES:
            return _member_090(volume, offset, raw)
    return None


def _member_090(volume: Volume, offset: int, raw: bytes) -> Member | None:
    order = next((o for o in "<>" if struct.unpack_from(o + "I", raw)[0] == MD_MAGIC), None)
    if order is None:
        return None
    where = f"MD 0.90 superblock at byte {offset} of {volume.grub_name}"
    words = list(struct.unpack(f"{order}1024I", raw))
    if (words[_W_MAJOR], words[_W_MINOR]) != (0, 90):
        raise UnsupportedError(f"{where}: version {words[_W_MAJOR]}.{words[_W_MINOR]}")
    stored = words[_W_CSUM]
    words[_W_CSUM] = 0
    if _folded_sum(sum(words)) != stored:
        raise CorruptError(f"{where}: checksum mismatch")
    _number, _major, _minor, role, state = words[_W_THIS_DISK : _W_THIS_DISK + 5]
    raid_disks = words[_W_RAID_DISKS]
    # size is each member's share in KiB; 0 means "up to the superblock" (GRUB's reading).
    size = words[_W_SIZE] * 1024 or offset
    if size > offset:
        raise CorruptError(f"{where}: size {size} runs over the superblock")
    # The four words as mdadm prints them and GRUB's mduuid/ name spells them.
    uuid = struct.pack(">4I", words[_W_UUID0], *words[_W_UUID1_3])
    return Member(
        volume=volume,
        version="0.90",
        level=_signed(words[_W_LEVEL]),
        raid_disks=raid_disks,
        active=role < raid_disks and not state & _DISK_FAULTY,
        set_uuid=uuid,
        name=f"md/md{words[_W_MD_MINOR]}",
        events=struct.unpack_from(order + "Q", raw, _EVENTS_090)[0],
        data_offset=0,
        data_size=size,
    )


def _member_1x(volume: Volume, version: str, offset: int, raw: bytes) -> Member | None:
    (
        _magic, major, features, _pad0, set_uuid, set_name, _ctime, level, _layout, size,
        chunksize, raid_disks, _bitmap, _new_level, _reshape, _delta, _new_layout, _new_chunk,
        _new_offset, data_offset, data_size, super_offset, _recovery, dev_number, _corrected,
        _dev_uuid, _devflags, _bb_shift, _bb_size, _bb_offset, _utime, events, _resync,
        stored, max_dev, _pad3,
    ) = _SB1.unpack_from(raw)  # fmt: skip
    if super_offset * SECTOR_SIZE != offset:
        # Another version's position, or a superblock copied from elsewhere: not this one.
        return None
    where = f"MD {version} superblock at byte {offset} of {volume.grub_name}"
    if major != 1:
        raise UnsupportedError(f"{where}: major version {major}")
    if max_dev > MAX_DEVICES_1X or dev_number >= max_dev:
        raise CorruptError(f"{where}: device {dev_number} of max_dev {max_dev}")
    if len(raw) < _SB1.size + 2 * max_dev:
        raise CorruptError(f"{where}: cut short by the end of the member")
    if _checksum_1x(raw[: _SB1.size + 2 * max_dev]) != stored:
        raise CorruptError(f"{where}: checksum mismatch")
    if features & (_FEATURE_RECOVERY_OFFSET | _FEATURE_RESHAPE_ACTIVE):
        raise UnsupportedError(f"{where}: member is being recovered or reshaped")
    (role,) = struct.unpack_from("<H", raw, _SB1.size + 2 * dev_number)
    start = data_offset * SECTOR_SIZE
    length = (size or data_size) * SECTOR_SIZE
    if level == LEVEL_RAID0 and chunksize:
        length -= length % (chunksize * SECTOR_SIZE)
    if start >= volume.source.size or length <= 0:
        raise CorruptError(f"{where}: data at byte {start}, {length} bytes, is not on the member")
    return Member(
        volume=volume,
        version=version,
        level=level,
        raid_disks=raid_disks,
        active=role < raid_disks,
        set_uuid=set_uuid,
        name=_name_1x(set_name, set_uuid),
        events=events,
        data_offset=start,
        data_size=length,
    )


def _name_1x(set_name: bytes, set_uuid: bytes) -> str:
    """md/NAME with a "host:" prefix dropped, as GRUB names it; mduuid/HEX if NAME is odd."""
    name = set_name.split(b"\0", 1)[0].decode("utf-8", "replace")
    name = name.split(":", 1)[1] if ":" in name else name
    if not name or not name.isprintable() or any(c in name for c in "(),/ "):
        return "mduuid/" + set_uuid.hex()
    return "md/" + name


def _checksum_1x(data: bytes) -> int:
    """calc_sb_1_csum: 32-bit little-endian words (sb_csum read as 0) summed and folded."""
    buf = bytearray(data)
    buf[_SB1_CSUM_OFFSET : _SB1_CSUM_OFFSET + 4] = bytes(4)
    total = sum(struct.unpack_from(f"<{len(buf) // 4}I", buf))
    if len(buf) % 4:
        total += struct.unpack_from("<H", buf, len(buf) - 2)[0]
    return _folded_sum(total)


def _folded_sum(total: int) -> int:
    return ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def _signed(word: int) -> int:
    return word - (1 << 32) if word & 0x80000000 else word


def array_volumes(members: list[Member]) -> list[Volume]:
    """One volume per array a member found here can be read from alone; logs the others.

    Of several members of one array, the one most recently written (highest events) is read.
    """
    groups: dict[tuple[str, bytes], list[Member]] = {}
    for m in members:
        groups.setdefault((m.version[0], m.set_uuid), []).append(m)
    volumes = []
    for group in groups.values():
        usable = [m for m in group if m.readable_alone]
        if not usable:
            m = group[0]
            log.warning(
                "MD array %s (metadata %s, RAID level %d, %d devices) on %s: "
                "needs members not read alone (spare, faulty or a level other than RAID1): skipped",
                m.name,
                m.version,
                m.level,
                m.raid_disks,
                ", ".join(x.volume.grub_name for x in group),
            )
            continue
        best = max(usable, key=lambda m: m.events)
        volumes.append(_array_volume(best))
    return volumes


def _array_volume(m: Member) -> Volume:
    source = m.volume.source
    if m.data_offset + m.data_size > source.size:
        log.warning("MD array %s: runs past the end of %s: clipped", m.name, m.volume.grub_name)
    level = {LEVEL_RAID1: "RAID1", LEVEL_MULTIPATH: "multipath"}.get(m.level, "single-device")
    origin = f"MD {level} array {m.name} (metadata {m.version}) on {m.volume.grub_name}"
    by_uuid = "mduuid/" + m.set_uuid.hex()
    aliases = (by_uuid,) if by_uuid != m.name else ()
    return Volume(SliceSource(source, m.data_offset, m.data_size), m.name, origin, aliases=aliases)
