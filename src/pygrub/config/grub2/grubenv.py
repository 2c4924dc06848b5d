"""The GRUB environment block (grubenv), read as grub-core/lib/envblk.c reads it.

Layout, as grub-editenv writes it (1024 bytes usually, any size is read)::

    # GRUB Environment Block\\n          signature, 25 bytes (GRUB also wants one more)
    name=value\\n ...                    a backslash escapes the next byte, a newline
                                         in a value is written as backslash-newline
    ###...#                              padding; a line starting with '#' is skipped

A line cut short by the end of the block ends the reading, silently, as in GRUB.
"""

from __future__ import annotations

from ...errors import CorruptError

SIGNATURE = b"# GRUB Environment Block\n"


def parse_envblk(data: bytes, where: str) -> list[tuple[str, str]]:
    """(name, value) pairs in block order; CorruptError without the signature."""
    # grub_envblk_open compares the signature and wants its terminating NUL's room too.
    if len(data) < len(SIGNATURE) + 1 or not data.startswith(SIGNATURE):
        raise CorruptError(f"{where}: not a GRUB environment block (no signature at offset 0)")
    pairs = []
    pos = len(SIGNATURE)
    end = len(data)
    while pos < end:
        if data[pos] != ord("#"):
            parsed = _variable_at(data, pos)
            if parsed is None:
                break
            name, value, pos = parsed
            pairs.append((_text(name), _text(value)))
        newline = data.find(b"\n", pos)
        pos = end if newline < 0 else newline + 1
    return pairs


def _variable_at(data: bytes, pos: int) -> tuple[bytes, bytes, int] | None:
    """name=value starting at ``pos``: (name, unescaped value, offset of its newline)."""
    equals = data.find(b"=", pos)
    if equals < 0:
        return None
    value = bytearray()
    i = equals + 1
    end = len(data)
    while i < end:
        byte = data[i]
        if byte == ord("\n"):
            return data[pos:equals], bytes(value), i
        if byte == ord("\\"):
            if i + 1 >= end:
                return None
            value.append(data[i + 1])
            i += 2
        else:
            value.append(byte)
            i += 1
    return None


def _text(raw: bytes) -> str:
    # GRUB's strings end at a NUL.
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
