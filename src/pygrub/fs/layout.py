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
    fields are skipped, so a layout names only the fields a reader needs. ``size`` is the
    struct's whole size where records follow each other (default: the end of the last
    named field).

    ``read`` gives a record with the field names; ``unpack_from`` gives the same values as
    a plain tuple in row order, for the hot loops that unpack many small records.
    """

    def __init__(
        self, name: str, order: str, rows: tuple[tuple[str, int, str], ...], size: int = 0
    ) -> None:
        fmt, pos = order, 0
        for field, offset, code in rows:
            if offset < pos:
                raise ValueError(f"{name}.{field} overlaps the field before it")
            fmt += f"{offset - pos}x{code}"
            pos = offset + struct.calcsize(order + code)
        if size:
            if size < pos:
                raise ValueError(f"{name}: size {size} ends inside its fields")
            fmt += f"{size - pos}x"
        self.struct = struct.Struct(fmt)
        #: Bytes of one record (to the end of the last named field unless given).
        self.size = self.struct.size
        self.fields = tuple(row[0] for row in rows)
        self.record: Any = namedtuple(name, self.fields)  # type: ignore[misc]
        #: The fields at an offset of a buffer, as a tuple (struct.Struct.unpack_from).
        self.unpack_from = self.struct.unpack_from
        #: The fields of each record of a buffer of back-to-back records, as tuples.
        self.iter_unpack = self.struct.iter_unpack

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
