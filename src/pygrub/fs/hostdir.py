"""A directory of this host read as a Filesystem: what --isconfig's config sits in.

The administrator names a config file on the host; what it reads beside it (an
isolinux.cfg's includes, systemd-boot's and blscfg's loader/entries) is read through
this, so the loaders see the same Filesystem as on a guest image: paths and symlinks
resolve inside the directory (fs/base.py walks them), only regular files are opened,
never following a link and never waiting on a FIFO, and reads come in bounded pieces.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from ..disk import MemorySource
from ..errors import LimitError, NotFoundError, PygrubError
from ..limits import MAX_DIR_ENTRIES
from .base import Extent, ExtentKind, Filesystem, Stat, mode_type

#: A file is read at most this much at once (configs are far smaller).
PIECE = 1 << 20


class HostDirFilesystem(Filesystem[str]):
    """The tree under a host directory, read-only; a node is its host path."""

    kind = "hostdir"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(MemorySource(b""))
        self._root = os.fspath(root)

    def root(self) -> str:
        return self._root

    def node_stat(self, node: str) -> Stat:
        try:
            st = os.lstat(node)
        except OSError as e:
            raise NotFoundError(f"{node}: {e.strerror}") from None
        return Stat(mode_type(st.st_mode), st.st_size, stat.S_IMODE(st.st_mode))

    def dir_entries(self, node: str) -> Iterator[tuple[str, str]]:
        names: list[str] = []
        try:
            with os.scandir(node) as entries:
                for entry in entries:
                    if len(names) >= MAX_DIR_ENTRIES:
                        raise LimitError(f"{node}: over {MAX_DIR_ENTRIES} directory entries")
                    names.append(entry.name)
        except OSError as e:
            raise NotFoundError(f"{node}: {e.strerror}") from None
        # Sorted, as a person listing it sees it: scandir's order is the host's hashing.
        for name in sorted(names):
            yield name, os.path.join(node, name)

    def lookup(self, node: str, name: str) -> str | None:
        child = os.path.join(node, name)
        return child if os.path.lexists(child) else None

    def readlink(self, node: str) -> bytes:
        try:
            return os.fsencode(os.readlink(node))
        except OSError as e:
            raise NotFoundError(f"{node}: {e.strerror}") from None

    def node_extents(self, node: str) -> Iterator[Extent]:
        size = self.node_stat(node).size
        for offset in range(0, size, PIECE):
            yield Extent(offset, min(PIECE, size - offset), ExtentKind.ENCODED)

    def read_encoded(self, node: str, extent: Extent) -> bytes:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(node, flags)
        except OSError as e:
            raise PygrubError(f"cannot read {node}: {e.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PygrubError(f"cannot read {node}: not a regular file")
            return os.pread(fd, extent.length, extent.file_offset)
        except OSError as e:
            raise PygrubError(f"cannot read {node}: {e.strerror}") from None
        finally:
            os.close(fd)
