"""GuestDisk: the volumes of one disk image and, lazily, the filesystems on them.

Config loaders use it to map GRUB device names to volumes (``root``, ``search``) and
boot.py to find the files an entry names.
"""

from __future__ import annotations

import re

from ..disk import ByteSource
from ..errors import PygrubError
from ..fs import Filesystem, probe
from ..log import get_logger
from ..record import record
from ..volumes import Volume

log = get_logger(__name__)

_DISK = re.compile(r"^(?:hd(?P<hd>\d+)|/dev/(?:xvd|sd|hd|vd)(?P<letter>[a-z]))$")
_PART = re.compile(r"^(?P<scheme>[a-z_]*?)(?P<number>\d+)$")


@record(frozen=True)
class DeviceName:
    """A parsed GRUB device: disk number and partition path ((scheme or "", number), ...)."""

    disk: int | None
    parts: tuple[tuple[str, int], ...]
    #: Names that are not disks (lvm/vg-lv, md/0, ...) are kept whole.
    named: str | None = None


def parse_device(name: str) -> DeviceName | None:
    """Parse "hd0", "hd0,1", "hd0,msdos5", "(hd0,gpt2)", "/dev/xvda,msdos1", "lvm/vg-lv"."""
    name = name.strip()
    if name.startswith("(") and name.endswith(")"):
        name = name[1:-1]
    if not name:
        return None
    if name.startswith(("lvm/", "lvmid/", "md/", "mduuid/")):
        return DeviceName(None, (), named=name)
    head, *rest = name.split(",")
    m = _DISK.match(head)
    if m is None:
        return None
    disk = int(m["hd"]) if m["hd"] is not None else ord(m["letter"]) - ord("a")
    parts = []
    for part in rest:
        pm = _PART.match(part.strip())
        if pm is None:
            return None
        parts.append((pm["scheme"], int(pm["number"])))
    return DeviceName(disk, tuple(parts))


def same_device(volume_name: str, wanted: DeviceName) -> bool:
    """Whether a volume's canonical GRUB name is the device ``wanted`` names."""
    have = parse_device(volume_name)
    if have is None:
        return False
    if wanted.named is not None or have.named is not None:
        return wanted.named == have.named
    if have.disk != wanted.disk or len(have.parts) != len(wanted.parts):
        return False
    for (h_scheme, h_num), (w_scheme, w_num) in zip(have.parts, wanted.parts, strict=True):
        if h_num != w_num or (w_scheme and w_scheme != h_scheme):
            return False
    return True


class GuestDisk:
    """One guest disk: its volumes in trial order and their (lazily probed) filesystems."""

    def __init__(self, source: ByteSource, volumes: list[Volume]) -> None:
        self.source = source
        self.volumes = volumes
        self._filesystems: dict[int, Filesystem | None] = {}
        self._errors: dict[int, str] = {}

    def filesystem(self, volume: Volume) -> Filesystem | None:
        """The filesystem on ``volume``, or None (see ``probe_error`` for why)."""
        key = id(volume)
        if key not in self._filesystems:
            try:
                self._filesystems[key] = probe(volume.source)
                if self._filesystems[key] is None:
                    self._errors[key] = "no filesystem pygrub recognises"
            except PygrubError as e:
                self._filesystems[key] = None
                self._errors[key] = str(e)
                log.info("%s: %s", volume, e)
        return self._filesystems[key]

    def set_filesystem(self, volume: Volume, fs: Filesystem | None) -> None:
        """Use ``fs`` for ``volume`` instead of probing (tests, --isconfig)."""
        self._filesystems[id(volume)] = fs

    def probe_error(self, volume: Volume) -> str | None:
        return self._errors.get(id(volume))

    def find_volume(self, device: str) -> Volume | None:
        """The volume a GRUB device name names, or None."""
        wanted = parse_device(device)
        if wanted is None:
            return None
        for volume in self.volumes:
            if any(same_device(name, wanted) for name in volume.names):
                return volume
        return None

    def filesystems(self) -> list[tuple[Volume, Filesystem]]:
        """Every volume that holds a readable filesystem, in trial order."""
        found = []
        for volume in self.volumes:
            fs = self.filesystem(volume)
            if fs is not None:
                found.append((volume, fs))
        return found
