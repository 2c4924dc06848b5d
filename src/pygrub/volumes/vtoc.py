"""Solaris x86 VTOC: the slice table inside an fdisk partition of type 0xbf (or old 0x82).

The label (illumos sys/dklabel.h, sys/vtoc.h) is the 512-byte sector 1 of the fdisk
partition. Slices start in 512-byte sectors relative to the partition. Xen's pygrub boots
the first slice tagged V_ROOT; GRUB's "sunpc" partmap names slice i (0-based) "sunpc<i+1>".
"""

from __future__ import annotations

import struct

from ..disk import ByteSource
from ..log import get_logger
from ..record import record

log = get_logger(__name__)

SECTOR_SIZE = 512
LABEL_SECTOR = 1
#: dkl_magic, at byte 508 of the label; dkl_cksum follows it.
DKL_MAGIC = 0xDABE
_MAGIC = struct.Struct("<H")
_MAGIC_OFFSET = 508
#: dk_vtoc.v_sanity at byte 12 (only logged: Xen's pygrub and GRUB do not check it).
VTOC_SANE = 0x600DDEEE
_SANITY = struct.Struct("<I")
_SANITY_OFFSET = 12
#: dk_vtoc.v_part[V_NUMPAR] at byte 72. Each slice: p_tag, p_flag, p_start, p_size.
_SLICE = struct.Struct("<HHII")
_SLICES_OFFSET = 72
V_NUMPAR = 16
V_ROOT = 2


@record(frozen=True)
class Slice:
    """A slice in bytes relative to its fdisk partition; ``index`` is 0-based."""

    index: int
    tag: int
    start: int
    length: int


def root_slice(partition: ByteSource) -> Slice | None:
    """The first non-empty V_ROOT slice of the partition's VTOC, or None without a VTOC."""
    label = partition.pread(LABEL_SECTOR * SECTOR_SIZE, SECTOR_SIZE)
    if len(label) < SECTOR_SIZE or _MAGIC.unpack_from(label, _MAGIC_OFFSET)[0] != DKL_MAGIC:
        return None
    if not _checksum_ok(label):
        # GRUB refuses such a label, Xen's pygrub reads it: we read it, as Xen does.
        log.warning("Solaris VTOC: label checksum mismatch: read anyway")
    if _SANITY.unpack_from(label, _SANITY_OFFSET)[0] != VTOC_SANE:
        log.info("Solaris VTOC: v_sanity is not 0x%08x", VTOC_SANE)
    # v_nparts is not trusted: GRUB scans all 16 slots, Xen trusts it unbounded.
    for s in _slices(label):
        if s.tag == V_ROOT and s.length > 0:
            return s
    log.info("Solaris VTOC: no root slice")
    return None


def _slices(label: bytes) -> list[Slice]:
    slices = []
    for index in range(V_NUMPAR):
        tag, _flag, start, size = _SLICE.unpack_from(label, _SLICES_OFFSET + index * _SLICE.size)
        slices.append(Slice(index, tag, start * SECTOR_SIZE, size * SECTOR_SIZE))
    return slices


def _checksum_ok(label: bytes) -> bool:
    """dkl_cksum makes the XOR of all 256 little-endian 16-bit words of the label zero."""
    total = 0
    for (word,) in struct.iter_unpack("<H", label):
        total ^= word
    return total == 0
