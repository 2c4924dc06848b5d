"""Host directories as a guest's volumes: config loaders tested without building images.

HostDirFilesystem (what --isconfig reads a config's directory with) keeps the Filesystem
contract (path walking, symlinks, extents), so loaders see what they would on an image.
"""

from __future__ import annotations

from pathlib import Path

from pygrub.config.guest import GuestDisk
from pygrub.disk import MemorySource
from pygrub.fs.hostdir import HostDirFilesystem
from pygrub.volumes import Volume

__all__ = ["HostDirFilesystem", "guest_of_dirs"]


def guest_of_dirs(*dirs: tuple[str, Path]) -> tuple[GuestDisk, list[Volume]]:
    """A GuestDisk whose volumes are host directories, named by GRUB device ("hd0,msdos1")."""
    volumes = []
    filesystems = {}
    for name, path in dirs:
        fs = HostDirFilesystem(path)
        volume = Volume(fs.source, name, f"host directory {path}")
        volumes.append(volume)
        filesystems[name] = fs
    guest = GuestDisk(MemorySource(b""), volumes)
    for volume in volumes:
        guest.set_filesystem(volume, filesystems[volume.grub_name])
    return guest, volumes
