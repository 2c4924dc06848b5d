"""Packed name-value lists in XDR encoding (libnvpair's NV_ENCODE_XDR), as in vdev labels.

The label's configuration is one of these: a 4-byte header (encoding, endianness, two
reserved bytes), then an nvlist: version and flags, then pairs, then two zero words.
Every pair starts with its encoded size, so a reader can skip what it does not know;
XDR itself is big-endian whatever the header says. Nested lists are inline.
"""

from __future__ import annotations

import struct

from ..._typing import TYPE_CHECKING
from ...errors import CorruptError, LimitError, UnsupportedError
from ...limits import MAX_TREE_DEPTH

if TYPE_CHECKING:
    from typing import TypeAlias

    NvValue: TypeAlias = "int | bool | float | str | bytes | list | NvList"
    NvList = dict[str, NvValue]

NV_ENCODE_XDR = 1

# nvs_header_t: nvh_encoding, nvh_endian, nvh_reserved1, nvh_reserved2
_HEADER = struct.Struct(">BBBB")
# nvlist: nvl_version, nvl_nvflag
_LIST_HEADER = struct.Struct(">iI")
# nvpair: encoded size, decoded size (then name, type, nelem)
_PAIR_SIZES = struct.Struct(">iI")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")

# data_type_t
BOOLEAN = 1
BYTE = 2
INT16 = 3
UINT16 = 4
INT32 = 5
UINT32 = 6
INT64 = 7
UINT64 = 8
STRING = 9
BYTE_ARRAY = 10
INT16_ARRAY = 11
UINT16_ARRAY = 12
INT32_ARRAY = 13
UINT32_ARRAY = 14
INT64_ARRAY = 15
UINT64_ARRAY = 16
STRING_ARRAY = 17
HRTIME = 18
NVLIST = 19
NVLIST_ARRAY = 20
BOOLEAN_VALUE = 21
INT8 = 22
UINT8 = 23
BOOLEAN_ARRAY = 24
INT8_ARRAY = 25
UINT8_ARRAY = 26
DOUBLE = 27

#: Scalars XDR packs in one 4-byte word, and whether they are signed.
_WORD_TYPES = {
    BYTE: False,
    INT16: True,
    UINT16: False,
    INT32: True,
    UINT32: False,
    BOOLEAN_VALUE: False,
    INT8: True,
    UINT8: False,
}
_HYPER_TYPES = {INT64: True, UINT64: False, HRTIME: True}
#: Arrays (xdr_array: a count word, then the elements) and their element types.
_ARRAY_ELEMENTS = {
    INT8_ARRAY: INT8,
    UINT8_ARRAY: UINT8,
    INT16_ARRAY: INT16,
    UINT16_ARRAY: UINT16,
    INT32_ARRAY: INT32,
    UINT32_ARRAY: UINT32,
    BOOLEAN_ARRAY: BOOLEAN_VALUE,
    INT64_ARRAY: INT64,
    UINT64_ARRAY: UINT64,
}


class _Reader:
    """A cursor over the packed bytes; every read is bounded by ``end``."""

    def __init__(self, buf: bytes, base: int, what: str) -> None:
        self.buf = buf
        self.pos = 0
        self.base = base
        self.what = what

    def error(self, problem: str, at: int | None = None) -> CorruptError:
        where = self.base + (self.pos if at is None else at)
        return CorruptError(f"zfs: {self.what} at byte {where}: {problem}")

    def take(self, length: int, end: int) -> bytes:
        if length < 0 or self.pos + length > end:
            raise self.error(f"{length} bytes run past the end of their container")
        data = self.buf[self.pos : self.pos + length]
        self.pos += length
        return data

    def unpack(self, fmt: struct.Struct, end: int) -> tuple:
        return fmt.unpack(self.take(fmt.size, end))

    def opaque(self, length: int, end: int) -> bytes:
        data = self.take(length, end)
        self.take(-length % 4, end)
        return data

    def string(self, end: int) -> str:
        (length,) = self.unpack(_U32, end)
        return self.opaque(length, end).decode("utf-8", "surrogateescape")


def decode_packed(buf: bytes, base: int = 0, what: str = "nvlist") -> NvList:
    """The nvlist in ``buf`` (header included); ``base`` places it in messages."""
    reader = _Reader(buf, base, what)
    encoding, _endian, _r1, _r2 = reader.unpack(_HEADER, len(buf))
    if encoding != NV_ENCODE_XDR:
        raise UnsupportedError(f"zfs: {what} at byte {base}: encoding {encoding}, not XDR")
    return _decode_list(reader, len(buf), 0)


def _decode_list(reader: _Reader, end: int, depth: int) -> NvList:
    if depth > MAX_TREE_DEPTH:
        raise LimitError(f"zfs: {reader.what}: nvlists nested over {MAX_TREE_DEPTH} deep")
    version, _flags = reader.unpack(_LIST_HEADER, end)
    if version != 0:
        raise reader.error(f"nvlist version {version}", reader.pos - _LIST_HEADER.size)
    result: NvList = {}
    while True:
        start = reader.pos
        encoded, decoded = reader.unpack(_PAIR_SIZES, end)
        if encoded == 0 and decoded == 0:
            return result
        # The smallest pair: sizes, an empty name, type and nelem.
        if encoded < _PAIR_SIZES.size + 12 or encoded % 4 or start + encoded > end:
            raise reader.error(f"pair of {encoded} encoded bytes", start)
        pair_end = start + encoded
        name = reader.string(pair_end)
        dtype, nelem = reader.unpack(_I32, pair_end) + reader.unpack(_I32, pair_end)
        result[name] = _decode_value(reader, dtype, nelem, pair_end, depth)
        # Every pair says where the next begins; what we decoded must fit inside it.
        reader.pos = pair_end


def _decode_value(reader: _Reader, dtype: int, nelem: int, end: int, depth: int) -> NvValue:
    if nelem < 0 or nelem > end - reader.pos:
        raise reader.error(f"{nelem} elements in a pair of type {dtype}")
    if dtype == BOOLEAN:
        return True
    if dtype in _WORD_TYPES or dtype in _HYPER_TYPES or dtype in (STRING, DOUBLE, NVLIST):
        if nelem != 1:
            raise reader.error(f"{nelem} elements in a scalar pair of type {dtype}")
        return _decode_scalar(reader, dtype, end, depth)
    if dtype == BYTE_ARRAY:
        return reader.opaque(nelem, end)
    if dtype in _ARRAY_ELEMENTS:
        (count,) = reader.unpack(_U32, end)
        if count != nelem:
            raise reader.error(f"array of {count} elements in a pair of {nelem}")
        return [_decode_scalar(reader, _ARRAY_ELEMENTS[dtype], end, depth) for _ in range(nelem)]
    if dtype == STRING_ARRAY:
        return [reader.string(end) for _ in range(nelem)]
    if dtype == NVLIST_ARRAY:
        return [_decode_list(reader, end, depth + 1) for _ in range(nelem)]
    raise reader.error(f"unknown data type {dtype}")


def _decode_scalar(reader: _Reader, dtype: int, end: int, depth: int) -> NvValue:
    if dtype in _WORD_TYPES:
        (value,) = reader.unpack(_I32 if _WORD_TYPES[dtype] else _U32, end)
        return bool(value) if dtype == BOOLEAN_VALUE else value
    if dtype in _HYPER_TYPES:
        (value,) = reader.unpack(_I64 if _HYPER_TYPES[dtype] else _U64, end)
        return value
    if dtype == DOUBLE:
        (value,) = reader.unpack(_DOUBLE, end)
        return value
    if dtype == STRING:
        return reader.string(end)
    return _decode_list(reader, end, depth + 1)


# -- encoding, for tests and for hand-made structures ---------------------------------


def encode_packed(nvl: NvList) -> bytes:
    """``nvl`` packed as XDR with its header: what a label holds. Types follow the values:
    bool -> BOOLEAN_VALUE, int -> UINT64, str -> STRING, bytes -> BYTE_ARRAY, dict -> NVLIST,
    list of dicts -> NVLIST_ARRAY, list of str -> STRING_ARRAY, list of int -> UINT64_ARRAY,
    None -> BOOLEAN (a flag with no value)."""
    return _HEADER.pack(NV_ENCODE_XDR, 1, 0, 0) + _encode_list(nvl)


def _xdr_string(text: str | bytes) -> bytes:
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return _U32.pack(len(raw)) + raw + bytes(-len(raw) % 4)


def _encode_list(nvl: NvList) -> bytes:
    parts = [_LIST_HEADER.pack(0, 1)]
    for name, value in nvl.items():
        dtype, nelem, data = _encode_value(value)
        body = _xdr_string(name) + _I32.pack(dtype) + _I32.pack(nelem) + data
        size = _PAIR_SIZES.size + len(body)
        parts.append(_PAIR_SIZES.pack(size, size) + body)
    parts.append(_PAIR_SIZES.pack(0, 0))
    return b"".join(parts)


def _encode_value(value: object) -> tuple[int, int, bytes]:
    if value is None:
        return BOOLEAN, 0, b""
    if isinstance(value, bool):
        return BOOLEAN_VALUE, 1, _U32.pack(int(value))
    if isinstance(value, int):
        return UINT64, 1, _U64.pack(value)
    if isinstance(value, str):
        return STRING, 1, _xdr_string(value)
    if isinstance(value, bytes):
        return BYTE_ARRAY, len(value), value + bytes(-len(value) % 4)
    if isinstance(value, dict):
        return NVLIST, 1, _encode_list(value)
    if isinstance(value, list):
        if all(isinstance(v, dict) for v in value):
            return NVLIST_ARRAY, len(value), b"".join(_encode_list(v) for v in value)
        if all(isinstance(v, str) for v in value):
            return STRING_ARRAY, len(value), b"".join(_xdr_string(v) for v in value)
        words = b"".join(_U64.pack(v) for v in value)
        return UINT64_ARRAY, len(value), _U32.pack(len(value)) + words
    raise TypeError(f"cannot encode {type(value).__name__} in an nvlist")
