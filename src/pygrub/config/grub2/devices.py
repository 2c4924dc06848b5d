"""GRUB device names onto the guest's volumes: ``(hd0,msdos1)``, ``(lvm/vg-root)``, $root.

A name that no volume answers to falls back to the config's own filesystem, the way
boot.py reads kernels: Xen's pygrub ignores devices altogether, and a guest that names a
second disk (hd1) or a firmware device we cannot see still has its files next to the
config far more often than not.
"""

from __future__ import annotations

from ..._typing import TYPE_CHECKING
from ...disk import ByteSource
from ...fs import Filesystem
from ...log import get_logger
from ..guest import DeviceName, parse_device, same_device

if TYPE_CHECKING:
    from .. import LoadContext

log = get_logger(__name__)

#: GRUB's names for the filesystems pygrub reads (``probe --fs``).
_GRUB_FS_NAMES = {"ext2": "ext2", "ext3": "ext2", "ext4": "ext2", "vfat": "fat"}


class Devices:
    """The volumes of one load as GRUB would name and probe them."""

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx

    @property
    def home_name(self) -> str:
        """The config's own device, GRUB's initial $root."""
        return self.ctx.volume.grub_name if self.ctx.volume is not None else "hd0"

    def filesystem(self, device: str | None) -> Filesystem | None:
        """The filesystem a device name (no parentheses) stands for; None: no such device."""
        if not device or device == self.home_name:
            return self.ctx.fs
        guest = self.ctx.guest
        if guest is not None:
            volume = guest.find_volume(device)
            if volume is not None:
                return guest.filesystem(volume)
        log.debug("device (%s) is not on this disk: using the config's filesystem", device[:80])
        return self.ctx.fs

    def source(self, device: str | None) -> ByteSource | None:
        """The bytes a device name (no parentheses) stands for, as blocklists read them:
        its volume's, the whole disk's for ``hd0``; unknown names fall back as above."""
        if not device or device == self.home_name:
            return self.ctx.volume.source if self.ctx.volume is not None else None
        guest = self.ctx.guest
        if guest is not None:
            volume = guest.find_volume(device)
            if volume is not None:
                return volume.source
            if parse_device(device) == DeviceName(0, ()):
                return guest.source
        log.debug("device (%s) is not on this disk: using the config's volume", device[:80])
        return self.ctx.volume.source if self.ctx.volume is not None else None

    def searchable(self, hints: list[str]) -> list[tuple[str, Filesystem]]:
        """(device name, filesystem) in the order ``search`` tries them: hinted ones first."""
        guest = self.ctx.guest
        found: list[tuple[tuple[str, ...], Filesystem]]
        if guest is not None:
            found = [(volume.names, fs) for volume, fs in guest.filesystems()]
        elif self.ctx.fs is not None:
            found = [((self.home_name,), self.ctx.fs)]
        else:
            found = []
        hinted = [
            item
            for hint in hints
            for item in found
            if any(_hint_matches(hint, name) for name in item[0])
        ]
        ordered: list[tuple[str, Filesystem]] = []
        for names, fs in hinted + found:
            if (names[0], fs) not in ordered:
                ordered.append((names[0], fs))
        return ordered


def _hint_matches(hint: str, name: str) -> bool:
    """A --hint names this device, or (ending in a comma) the disk that holds it."""
    wanted = parse_device(hint.rstrip(","))
    if wanted is None:
        return False
    if hint.endswith(","):
        have = parse_device(name)
        return have is not None and have.disk == wanted.disk and have.named == wanted.named
    return same_device(name, wanted)


def grub_fs_name(fs: Filesystem) -> str:
    """The name ``probe --fs`` prints for a filesystem."""
    return _GRUB_FS_NAMES.get(fs.kind, fs.kind)
