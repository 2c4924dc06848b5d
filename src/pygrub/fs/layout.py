"""Reading on-disk structures: C structs by their spec field names, exact reads, and the
text forms of fields several formats share (UUIDs, feature flags)."""

from __future__ import annotations

import struct
from collections import namedtuple
from collections.abc import Mapping

from .._typing import TYPE_CHECKING
from ..disk import ByteSource
from ..errors import CorruptError

if TYPE_CHECKING:
    from typing import Any


class Layout:
    """A C struct in one byte order ("<" or ">"), read by its spec field names.

    ``rows`` are (field name, byte offset, struct code) in offset order; bytes between
    fields are skipped, so a layout names only the fields a reader needs.
    """

    def __init__(self, name: str, order: str, rows: tuple[tuple[str, int, str], ...]) -> None:
        fmt, pos = order, 0
        for field, offset, code in rows:
            if offset < pos:
                raise ValueError(f"{name}.{field} overlaps the field before it")
            fmt += f"{offset - pos}x{code}"
            pos = offset + struct.calcsize(order + code)
        self.struct = struct.Struct(fmt)
        #: Bytes from the start of the struct to the end of its last named field.
        self.size = pos
        self.record: Any = namedtuple(name, [row[0] for row in rows])  # type: ignore[misc]

    def read(self, buf: bytes, offset: int = 0) -> Any:
        """The fields at ``offset`` in ``buf``, which the caller has checked holds ``size`` bytes."""
        return self.record._make(self.struct.unpack_from(buf, offset))


def read_exact(source: ByteSource, offset: int, length: int, what: str) -> bytes:
    """``length`` bytes at ``offset``; CorruptError naming ``what`` when the volume ends first."""
    data = source.pread(offset, length)
    if len(data) != length:
        raise CorruptError(f"{what} at byte {offset} is past the end of the volume")
    return data


def format_uuid(raw: bytes) -> str:
    """16 bytes as the 8-4-4-4-12 text blkid and GRUB print."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def unknown_features(flags: int, known: Mapping[int, str], names: Mapping[int, str]) -> list[str]:
    """The bits of ``flags`` not in ``known``, lowest first: by ``names``, else in hex."""
    refused = []
    for bit in range(flags.bit_length()):
        mask = 1 << bit
        if flags & mask and mask not in known:
            refused.append(names.get(mask, f"0x{mask:x}"))
    return refused
