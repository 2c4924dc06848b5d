"""CRC-32C (Castagnoli), the checksum of btrfs metadata and the hash of directory names.

Written here because the standard library has none; a table-driven loop is fast enough
for the few tree blocks a boot reads (each is checked once, then cached).
"""

from __future__ import annotations

import hashlib

_POLY = 0x82F63B78  # 0x1EDC6F41 bit-reversed


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def crc32c_update(crc: int, data: bytes) -> int:
    """The raw register after ``data``: no initial or final inversion (Linux's crc32c())."""
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def crc32c(data: bytes) -> int:
    """The standard CRC-32C of ``data``, as btrfs stores it in checksum fields."""
    return crc32c_update(0xFFFFFFFF, data) ^ 0xFFFFFFFF


def name_hash(name: bytes) -> int:
    """btrfs_name_hash: the offset of a DIR_ITEM key (Linux seeds with ~1, no final xor)."""
    return crc32c_update(0xFFFFFFFE, name)


def checksum_matches(csum_type: int, stored: bytes, data: bytes) -> bool:
    """Whether ``stored`` is the checksum of ``data``. xxhash64 has no implementation in
    the standard library and is taken on trust; the other checks still apply."""
    if csum_type == 0:
        return stored[:4] == crc32c(data).to_bytes(4, "little")
    if csum_type == 2:
        return stored[:32] == hashlib.sha256(data).digest()
    if csum_type == 3:
        return stored[:32] == hashlib.blake2b(data, digest_size=32).digest()
    return True
