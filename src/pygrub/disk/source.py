"""Opening a disk image: the raw file, or the image format its magic (or the caller)
names. The byte sources themselves are in ``base``; their names are kept here too."""

from __future__ import annotations

from .._typing import TYPE_CHECKING
from ..errors import PygrubError, UnsupportedError
from ..formats import IMAGE_FORMATS
from .base import (
    QCOW2_MAGIC,
    ByteSource,
    FileSource,
    MemorySource,
    SliceSource,
    backing_refusal,
    check_request,
    inherit,
    refuse_backing_files,
)

if TYPE_CHECKING:
    from .qcow2 import Qcow2Source

__all__ = [
    "IMAGE_FORMATS",
    "QCOW2_MAGIC",
    "ByteSource",
    "FileSource",
    "MemorySource",
    "SliceSource",
    "backing_refusal",
    "check_request",
    "inherit",
    "refuse_backing_files",
    "open_image",
]


def open_image(
    path: str, image_format: str = "auto", allow_backing: bool = False
) -> FileSource | Qcow2Source:
    """Open a disk image read-only. Image formats (qcow2, ...) join here by their magic.

    ``image_format`` "raw" reads even a file that starts with a qcow2 header as a raw
    disk; "qcow2" refuses a file that does not. ``allow_backing``: a qcow2 image may read
    a backing file in its own directory.
    """
    if image_format not in IMAGE_FORMATS:
        raise UnsupportedError(f"unknown image format {image_format!r}: not one of {IMAGE_FORMATS}")
    source = FileSource(path)
    if source.size == 0:
        source.close()
        raise PygrubError(f"disk image {path} is empty (0 bytes)")
    if image_format == "qcow2" or (image_format == "auto" and source.pread(0, 4) == QCOW2_MAGIC):
        from .qcow2 import Qcow2Source

        try:
            virtual = Qcow2Source(source, path, allow_backing=allow_backing)
        except BaseException:
            source.close()
            raise
        if virtual.size == 0:
            virtual.close()
            raise PygrubError(f"disk image {path} is empty (a qcow2 image of 0 bytes)")
        return virtual
    return source
