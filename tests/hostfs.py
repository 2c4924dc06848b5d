"""A Filesystem over a host directory: a test double for config loaders.

It keeps the Filesystem contract (path walking, symlinks, extents) so loaders see
exactly what they would see on a real image, without building one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pygrub.disk import MemorySource
from pygrub.fs.base import Extent, ExtentKind, Filesystem, NodeType, Stat
from pygrub.guest import GuestDisk
from pygrub.volumes import Volume


class HostDirFilesystem(Filesystem[Path]):
    kind = "hostdir"

    def __init__(self, root: Path) -> None:
        super().__init__(MemorySource(b""))
        self._root = Path(root)

    def root(self) -> Path:
        return self._root

    def node_stat(self, node: Path) -> Stat:
        st = node.lstat()
        if node.is_symlink():
            kind = NodeType.SYMLINK
        elif node.is_dir():
            kind = NodeType.DIR
        elif node.is_file():
            kind = NodeType.FILE
        else:
            kind = NodeType.OTHER
        return Stat(kind, st.st_size, st.st_mode & 0o7777)

    def dir_entries(self, node: Path) -> Iterator[tuple[str, Path]]:
        for child in sorted(node.iterdir()):
            yield child.name, child

    def lookup(self, node: Path, name: str) -> Path | None:
        child = node / name
        return child if os.path.lexists(child) else None

    def readlink(self, node: Path) -> bytes:
        return os.fsencode(os.readlink(node))

    def node_extents(self, node: Path) -> Iterator[Extent]:
        yield Extent(0, node.lstat().st_size, ExtentKind.ENCODED)

    def read_encoded(self, node: Path, extent: Extent) -> bytes:
        with open(node, "rb") as f:
            f.seek(extent.file_offset)
            return f.read(extent.length)


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
