"""Copy the kernel and ramdisk out of the image into the output directory.

Bytes that lie contiguously in the image file are copied by the kernel
(``os.copy_file_range``, else ``os.sendfile``); holes stay holes; compressed data
streams through the driver in bounded pieces. Everything created is removed on failure.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Iterator, Mapping

from .errors import CorruptError, LimitError, PygrubError
from .fs import FileReader, Filesystem
from .record import record

#: Largest piece copied at once, through the kernel or through Python.
CHUNK = 4 << 20


#: The characters of the random part of an output file's name, as tempfile uses.
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def make_temp_file(prefix: str, directory: str) -> tuple[int, str]:
    """A new ``prefix`` + 8 random characters file, mode 0600, as tempfile.mkstemp makes it.

    The path is absolute, as mkstemp's is: the toolstack that reads it runs elsewhere.
    Written here because the tempfile module's imports cost every run start-up time.
    """
    for _attempt in range(100):
        suffix = "".join(_NAME_CHARS[b % len(_NAME_CHARS)] for b in os.urandom(8))
        path = os.path.abspath(os.path.join(directory, prefix + suffix))
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
        except OSError as e:
            raise PygrubError(f"cannot create {path}: {e.strerror}") from None
    raise PygrubError(f"cannot create a {prefix}XXXXXXXX file in {directory}: every name taken")


@record(frozen=True)
class FileRef:
    """A file inside a guest filesystem, or a byte range of one (a section of a UKI)."""

    fs: Filesystem
    path: str
    #: Where it is, for messages: "(hd0,msdos1)".
    where: str = ""
    #: The range's first byte in the file; with ``length`` None, the whole file is meant.
    offset: int = 0
    length: int | None = None

    def size(self) -> int:
        """Bytes to extract; a range that does not lie inside the file is CorruptError."""
        size = self.fs.stat(self.path).size
        if self.length is None:
            return size
        if self.offset < 0 or self.length < 0 or self.offset + self.length > size:
            raise CorruptError(f"{self}: the range does not lie inside the file of {size} bytes")
        return self.length

    def __str__(self) -> str:
        if self.length is None:
            return f"{self.where}{self.path}"
        return f"{self.where}{self.path}[{self.offset}:{self.offset + self.length}]"


class Extraction:
    """Owns the files this run creates; removes them all unless ``keep()`` is called."""

    def __init__(
        self, directory: str, preopened: Mapping[str, tuple[int, str]] | None = None
    ) -> None:
        self.directory = directory
        self.created: list[str] = []
        self._kept = False
        #: prefix -> (fd, path) made by someone else (the --runas parent, before the sandbox
        #: closed), used instead of mkstemp. Their maker removes them on failure, not we.
        self._preopened = dict(preopened or {})

    def __enter__(self) -> Extraction:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._kept:
            self.remove_all()

    def keep(self) -> None:
        self._kept = True

    def remove_all(self) -> None:
        for path in self.created:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.created.clear()

    def new_file(self, prefix: str) -> tuple[int, str]:
        if prefix in self._preopened:
            return self._preopened.pop(prefix)
        fd, path = make_temp_file(prefix, self.directory)
        self.created.append(path)
        return fd, path

    def write_boot_files(
        self, kernel: FileRef, initrds: list[FileRef], limit: int, limit_name: str = ""
    ) -> tuple[str, str | None]:
        """The kernel's file and, when there are initrds, the ramdisk's: its initrds one
        after another, each padded to 4 bytes when there are several, as GRUB loads them."""
        kernel_path = self.write("boot_kernel.", [kernel], limit, limit_name=limit_name)
        if not initrds:
            return kernel_path, None
        pad = len(initrds) > 1
        return kernel_path, self.write("boot_ramdisk.", initrds, limit, pad, limit_name)

    def write(
        self, prefix: str, files: list[FileRef], limit: int, pad: bool = False, limit_name: str = ""
    ) -> str:
        """Concatenate ``files`` into a new ``prefix.XXXXXX`` file; each padded to 4 bytes if ``pad``."""
        fd, path = self.new_file(prefix)
        try:
            end = 0
            for ref, offset, size, padding in concatenation(files, limit, pad, limit_name):
                copy_file(ref, fd, offset)
                end = offset + size + padding
            os.ftruncate(fd, end)
        except OSError as e:
            # The copy's write side: a full or read-only output filesystem, a quota.
            raise PygrubError(f"writing {path}: {e.strerror}") from None
        finally:
            os.close(fd)
        return path


def concatenation(
    files: list[FileRef], limit: int, pad: bool, limit_name: str = ""
) -> Iterator[tuple[FileRef, int, int, int]]:
    """(file, its offset, its size, the zero bytes after it) for each of ``files`` laid one
    after another, each padded to 4 bytes if ``pad``: LimitError before a file over
    ``limit`` bytes is copied, and once the whole is over it (``limit_name`` says what set
    the limit)."""
    why = f" ({limit_name})" if limit_name else ""
    offset = 0
    for ref in files:
        size = ref.size()
        if size > limit:
            raise LimitError(f"{ref} is {size} bytes, over the {_bytes(limit)} limit{why}")
        padding = -size % 4 if pad else 0
        yield ref, offset, size, padding
        offset += size + padding
        if offset > limit:
            raise LimitError(f"ramdisk of {offset} bytes is over the {_bytes(limit)} limit{why}")


def _bytes(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit}-byte"


def copy_file(ref: FileRef, out_fd: int, out_offset: int) -> None:
    """Write ``ref`` (the whole file, or its byte range) into ``out_fd`` at ``out_offset``.

    Reading the image fails as PygrubError naming the offset; writing ``out_fd`` fails
    as the OSError itself, for the caller, who knows the file's name.
    """
    start = ref.offset
    end = start + ref.size()
    reader = None
    for file_offset, length, where in ref.fs.extents(ref.path):
        if file_offset >= end:
            break  # extents come in file order
        first, last = max(file_offset, start), min(file_offset + length, end)
        if first >= last or where == "hole":
            continue
        dest = out_offset + first - start
        if where == "encoded":
            if reader is None:
                reader = ref.fs.open(ref.path)
            _copy_through_python(reader, first, last - first, out_fd, dest)
        else:
            src_fd, src_offset = where
            _copy_span(src_fd, src_offset + first - file_offset, last - first, out_fd, dest)


def _copy_through_python(
    reader: FileReader, offset: int, length: int, out_fd: int, out_offset: int
) -> None:
    reader.seek(offset)
    while length > 0:
        data = reader.read(min(length, CHUNK))
        if not data:
            raise PygrubError(f"short read at offset {offset} while extracting")
        _pwrite_all(out_fd, data, out_offset)
        out_offset += len(data)
        offset += len(data)
        length -= len(data)


_copy_file_range_works = hasattr(os, "copy_file_range")
#: What copy_file_range says of its destination rather than of the image.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
#: The kernel copies page by page: a span whose source and destination offsets are not
#: the same distance into a page (FAT's and SquashFS's data, ext4 with 1 KiB blocks) it
#: copies a third slower than a read into a buffer and a write does.
PAGE = os.sysconf("SC_PAGE_SIZE")
#: The buffer of those copies: large enough for few system calls, small enough for caches.
BUFFER = 1 << 20


@functools.cache
def _copy_buffer() -> memoryview:
    """One buffer for every span of a run: a file of many extents reuses it.

    An anonymous mapping, so that it starts on a page: a bytearray starts 16 bytes into
    one, and the kernel's copy into it from a page-aligned offset of the image then runs
    at half speed (the stores trail the loads by 16 bytes modulo 4 KiB: 4K aliasing).
    """
    import mmap

    return memoryview(mmap.mmap(-1, BUFFER))


def _copy_span(src_fd: int, src_offset: int, length: int, out_fd: int, out_offset: int) -> None:
    """Copy bytes of a host file: in the kernel where the pages line up, else buffered."""
    global _copy_file_range_works
    aligned = (src_offset - out_offset) % PAGE == 0
    while length > 0 and aligned and _copy_file_range_works:
        try:
            done = os.copy_file_range(src_fd, out_fd, min(length, 1 << 30), src_offset, out_offset)
        except OSError as e:
            if e.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
                _copy_file_range_works = False
                break
            if e.errno in _WRITE_ERRNOS:
                raise
            raise PygrubError(
                f"copying from the image at offset {src_offset}: {e.strerror}"
            ) from None
        if done == 0:
            raise PygrubError(f"image ends at offset {src_offset} while extracting")
        src_offset += done
        out_offset += done
        length -= done
    while length > 0:
        view = _copy_buffer()[: min(length, BUFFER)]
        try:
            done = os.preadv(src_fd, [view], src_offset)
        except OSError as e:
            raise PygrubError(f"reading the image at offset {src_offset}: {e.strerror}") from None
        if done == 0:
            raise PygrubError(f"image ends at offset {src_offset} while extracting")
        _pwrite_all(out_fd, view[:done], out_offset)
        src_offset += done
        out_offset += done
        length -= done


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view = view[done:]
        offset += done
