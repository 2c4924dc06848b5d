"""CRC-32C (Castagnoli), the checksum of btrfs metadata and the hash of directory names.

Written here because the standard library has none. A byte-at-a-time table loop costs
about 3 ms per 16 KiB tree block in Python, more than the rest of a boot's reading. A
CRC is the remainder of a division of polynomials over GF(2), and Python's integers
shift and XOR a whole block at C speed: a long input becomes one integer, reduced by
folding (``_remainder``), some twenty times faster. Short ones (names) use the table.
"""

from __future__ import annotations

#: The Castagnoli polynomial x^32 + x^28 + ... + 1, bit i the coefficient of x^i.
_POLY = 0x1_1EDC6F41
#: Its low 32 bits reflected: the table loop keeps the register least significant bit first.
_POLY_REFLECTED = 0x82F63B78
#: Inputs from this length on take the integer path (where it starts to win).
_LONG = 160


def _byte_table() -> list[int]:
    """The register's change for each byte value. It is linear in the byte, so the eight
    one-bit entries give the rest by XOR (cheap enough to build at import)."""
    table = [0]
    for bit in range(8):
        crc = 1 << bit
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY_REFLECTED if crc & 1 else crc >> 1
        table += [entry ^ crc for entry in table]
    return table


_TABLE = _byte_table()


def _reflect(value: int, bits: int) -> int:
    return int(f"{value:0{bits}b}"[::-1], 2)


# Built on the first long input: the byte values bit-reversed, and x^(2^j) mod P for
# j = 0, 1, ... as the shifts of its set bits (multiplying by it is XORing those shifts).
_reflected_bytes = b""
_powers: list[tuple[int, ...]] = []


def _set_bits(value: int) -> tuple[int, ...]:
    return tuple(i for i in range(value.bit_length()) if value >> i & 1)


def _times_power(value: int, j: int) -> int:
    """``value`` times x^(2^j) mod P (a carry-less product)."""
    while len(_powers) <= j:
        # x^1, then each the square of the one before: over GF(2) the cross terms of a
        # square cancel, so x^i becomes x^2i.
        square = sum(1 << 2 * i for i in _powers[-1]) if _powers else 2
        _powers.append(_set_bits(_remainder(square)))
    product = 0
    for shift in _powers[j]:
        product ^= value << shift
    return product


def _remainder(value: int) -> int:
    """``value`` mod P, as polynomials over GF(2).

    With value = high * x^k + low, value = high * (x^k mod P) + low (mod P). k is the
    largest power of two below value's length, so high (shorter than k) times a 32-bit
    remainder is at most k + 31 bits long, as low is at most k: about half as long
    each time. Under 65 bits, long division ends it.
    """
    while (length := value.bit_length()) > 64:
        j = (length - 1).bit_length() - 1
        k = 1 << j
        value = _times_power(value >> k, j) ^ (value & ((1 << k) - 1))
    for shift in range(value.bit_length() - 33, -1, -1):
        if value >> (shift + 32) & 1:
            value ^= _POLY << shift
    return value


def crc32c_update(crc: int, data: bytes) -> int:
    """The raw register after ``data``: no initial or final inversion (Linux's crc32c())."""
    if len(data) >= _LONG:
        return _update_by_division(crc, data)
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _update_by_division(crc: int, data: bytes) -> int:
    """crc32c_update as one polynomial remainder.

    The table loop is the reflected form of a most-significant-bit-first CRC: with each
    byte's bits reversed, the register becomes (R * x^n + M * x^32) mod P for the n bits
    M and the (reversed) starting register R.
    """
    global _reflected_bytes
    if not _reflected_bytes:
        reversed_ = [0]
        for bit in range(8):  # as _byte_table: bit b of a byte becomes bit 7 - b
            reversed_ += [entry | 0x80 >> bit for entry in reversed_]
        _reflected_bytes = bytes(reversed_)
    message = int.from_bytes(data.translate(_reflected_bytes), "big")
    register = _reflect(crc, 32) << (8 * len(data))
    return _reflect(_remainder(register ^ (message << 32)), 32)


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
    # hashlib loads OpenSSL (several ms): only filesystems that use these pay for it.
    import hashlib

    if csum_type == 2:
        return stored[:32] == hashlib.sha256(data).digest()
    if csum_type == 3:
        return stored[:32] == hashlib.blake2b(data, digest_size=32).digest()
    return True
