"""ByteSource: a read-only, bounded view of bytes (an image file, a block device, a window).

Every reader above asks for bytes through ``pread``; nothing else touches the image.
``host_span`` tells the extractor where bytes lie contiguously in a host file so that it
can copy them in the kernel instead of through Python. Image formats (qcow2) build on
these; ``source.open_image`` picks one.
"""

from __future__ import annotations

import os
import stat

from .._typing import Protocol
from ..errors import CorruptError, NotFoundError, PygrubError
from ..limits import MAX_READ

#: The first four bytes of a qcow2 image: here, below both, so that source.open_image
#: sniffs them without importing qcow2 (imported only when they match).
QCOW2_MAGIC = b"QFI\xfb"


class ByteSource(Protocol):
    """What every layer reads from. ``pread`` returns short only at the end."""

    @property
    def size(self) -> int: ...

    def pread(self, offset: int, length: int) -> bytes: ...

    def host_span(self, offset: int, length: int) -> tuple[int, int] | None: ...


def check_request(offset: int, length: int, size: int) -> int:
    """How many of the ``length`` bytes at ``offset`` a source of ``size`` bytes holds.

    A negative request or one over the read limit is refused (every ByteSource does this).
    """
    if offset < 0 or length < 0:
        raise CorruptError(f"read of {length} bytes at offset {offset}: negative offset or length")
    if length > MAX_READ:
        raise CorruptError(
            f"read of {length} bytes at offset {offset}: over the {MAX_READ}-byte read limit"
        )
    return max(0, min(length, size - offset))


#: Descriptors of disks opened before the reader lost the right to open them, by the path
#: the reader names them with: --runas's parent opens the disk as root, and its
#: deprivileged child reads through the descriptor it was handed (sandbox.py).
_INHERITED: dict[str, int] = {}


def inherit(path: str, fd: int) -> None:
    """Make ``FileSource(path)`` read a duplicate of ``fd`` instead of opening ``path``."""
    _INHERITED[path] = fd


#: Why no qcow2 backing file can be read in this process, when none can (the sandboxed
#: reader sees only the image it was handed). Kept here, not in disk.qcow2, so that the
#: sandbox sets it without importing the qcow2 reader a raw or ext4 disk never needs.
_backing_refusal: list[str] = []


def refuse_backing_files(why: str) -> None:
    """Answer every qcow2 backing file with ``why`` from now on, in this process."""
    _backing_refusal[:] = [why]


def backing_refusal() -> str | None:
    """Why backing files are refused in this process, None when they are not."""
    return _backing_refusal[0] if _backing_refusal else None


class FileSource:
    """A host file or block device, opened read-only."""

    def __init__(self, path: str) -> None:
        self.path = path
        inherited = _INHERITED.get(path)
        try:
            if inherited is not None:
                self.fd = os.dup(inherited)  # not inheritable: Python's dup sets CLOEXEC
            else:
                self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise NotFoundError(f"cannot open disk image {path}: {e.strerror}") from None
        try:
            self._size = self._measure()
        except BaseException:
            os.close(self.fd)
            raise

    def _measure(self) -> int:
        st = os.fstat(self.fd)
        if stat.S_ISREG(st.st_mode):
            return st.st_size
        if stat.S_ISBLK(st.st_mode):
            return os.lseek(self.fd, 0, os.SEEK_END)
        if stat.S_ISDIR(st.st_mode):
            raise PygrubError(f"disk image {self.path} is a directory")
        raise PygrubError(f"disk image {self.path} is neither a regular file nor a block device")

    @property
    def size(self) -> int:
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        length = check_request(offset, length, self._size)
        if length == 0:
            return b""
        parts = []
        while length > 0:
            try:
                chunk = os.pread(self.fd, length, offset)
            except OSError as e:
                raise PygrubError(f"reading {self.path} at offset {offset}: {e.strerror}") from None
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def host_span(self, offset: int, length: int) -> tuple[int, int] | None:
        if offset < 0 or length < 0 or offset + length > self._size:
            return None
        return (self.fd, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __repr__(self) -> str:
        return f"FileSource({self.path!r}, size={self._size})"


class SliceSource:
    """A window [start, start+length) of another source: a partition, a logical volume."""

    def __init__(self, parent: ByteSource, start: int, length: int) -> None:
        if start < 0 or length < 0:
            raise CorruptError(f"window at {start} of {length} bytes: negative")
        # A window that claims more than the parent has is clipped: short reads at the end.
        start = min(start, parent.size)
        self.parent = parent
        self.start = start
        self._size = min(length, parent.size - start)

    @property
    def size(self) -> int:
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        length = check_request(offset, length, self._size)
        if length == 0:
            return b""
        return self.parent.pread(self.start + offset, length)

    def host_span(self, offset: int, length: int) -> tuple[int, int] | None:
        if offset < 0 or length < 0 or offset + length > self._size:
            return None
        return self.parent.host_span(self.start + offset, length)

    def __repr__(self) -> str:
        return f"SliceSource(start={self.start}, size={self._size})"


class MemorySource:
    """Bytes already in memory (tests, small decoded structures). No host spans."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)

    @property
    def size(self) -> int:
        return len(self.data)

    def pread(self, offset: int, length: int) -> bytes:
        length = check_request(offset, length, len(self.data))
        return self.data[offset : offset + length]

    def host_span(self, offset: int, length: int) -> tuple[int, int] | None:
        return None
