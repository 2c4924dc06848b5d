"""Filesystems: probe a volume by magic, then open the matching read-only driver.

Drivers are imported only when their magic matches, so a run touches only the modules
for the formats it meets.
"""

from __future__ import annotations

import importlib

from ..disk import ByteSource
from ..record import record
from .base import FileReader, Filesystem, NodeType, Stat

__all__ = ["Filesystem", "FileReader", "NodeType", "Stat", "probe", "REGISTRY"]


@record(frozen=True)
class FsType:
    """One registered filesystem: its magic numbers and the module that reads it.

    ``module`` must define ``open_filesystem(source) -> Filesystem | None``: None means
    "not this filesystem after all"; CorruptError/UnsupportedError mean "this filesystem,
    but unreadable", and the caller reports them for the volume.
    """

    name: str
    module: str
    #: (offset, bytes) pairs; any one matching means "try this driver". Empty: always try.
    magics: tuple[tuple[int, bytes], ...]

    def matches(self, head: bytes, source: ByteSource) -> bool:
        if not self.magics:
            return True
        for offset, value in self.magics:
            end = offset + len(value)
            chunk = head[offset:end] if end <= len(head) else source.pread(offset, len(value))
            if chunk == value:
                return True
        return False


#: Probe order: strongest magic first; FAT's boot-sector heuristics last.
REGISTRY: list[FsType] = [
    FsType("iso9660", "pygrub.fs.iso9660", ((0x8001, b"CD001"),)),
    # Before ext: the ext magic at 0x438 falls in the EROFS superblock's uuid.
    FsType("erofs", "pygrub.fs.erofs", ((1024, b"\xe2\xe1\xf5\xe0"),)),
    FsType("ext2/3/4", "pygrub.fs.ext4", ((0x438, b"\x53\xef"),)),
    FsType("xfs", "pygrub.fs.xfs", ((0, b"XFSB"),)),
    FsType("squashfs", "pygrub.fs.squashfs", ((0, b"hsqs"),)),
    FsType(
        "f2fs",
        "pygrub.fs.f2fs",
        # The superblock and its backup, in the first two 4 KiB blocks.
        tuple((offset, (0xF2F52010).to_bytes(4, "little")) for offset in (1024, 5120)),
    ),
    FsType(
        "reiserfs",
        "pygrub.fs.reiserfs",
        tuple((65536 + 52, magic) for magic in (b"ReIsErFs", b"ReIsEr2Fs", b"ReIsEr3Fs"))
        + ((8192 + 52, b"ReIsErFs"),),  # 3.5 as first released kept it at 8 KiB
    ),
    FsType(
        "ufs",
        "pygrub.fs.ufs",
        tuple(
            (offset + 1372, magic.to_bytes(4, order))  # fs_magic: UFS1, UFS2; either byte order
            for offset in (65536, 8192, 262144)
            for magic in (0x011954, 0x19540119)
            for order in ("little", "big")
        ),
    ),
    FsType("btrfs", "pygrub.fs.btrfs", ((0x10040, b"_BHRfS_M"),)),
    FsType(
        "zfs",
        "pygrub.fs.zfs",
        # Label 0's config at 16 KiB: the XDR nvlist header (either writer byte order);
        # open_filesystem then checks the labels' checksums.
        tuple(
            (0x4000, bytes.fromhex(f"01{endian}00000000000000000001")) for endian in ("01", "00")
        ),
    ),
    FsType("fat", "pygrub.fs.fat", ((510, b"\x55\xaa"),)),
]

#: Bytes read once per volume to test most magics without further reads.
_HEAD = 0x10000 + 0x100


def probe(source: ByteSource) -> Filesystem | None:
    """The filesystem on ``source``, or None when no registered magic matches."""
    head = source.pread(0, _HEAD)
    for fstype in REGISTRY:
        if fstype.matches(head, source):
            module = importlib.import_module(fstype.module)
            fs = module.open_filesystem(source)
            if fs is not None:
                return fs
    return None
