"""CRC-32C as btrfs uses it, against oracles that share no code with it: published test
vectors and the bit-at-a-time definition of the CRC (LSB first, polynomial 0x82F63B78).

Short inputs take the table loop and long ones the integer reduction; the lengths here
cover both and the switch between them. The image tests (test_btrfs.py) add what
mkfs.btrfs and Linux wrote.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygrub.fs.btrfs import checksum
from pygrub.fs.btrfs.checksum import checksum_matches, crc32c, crc32c_update, name_hash


def crc_by_bits(register: int, data: bytes) -> int:
    """The definition: each bit, least significant first, shifted through the register."""
    for byte in data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ 0x82F63B78 if register & 1 else register >> 1
    return register


#: RFC 3720 (iSCSI) B.4: a SCSI Read (10) command PDU.
ISCSI_READ_PDU = bytes.fromhex(
    "01c00000000000000000000000000000"
    "14000000000004000000001400000018"
    "28000000000000000200000000000000"
)

VECTORS = [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),  # the catalogue's check value
    (bytes(32), 0x8A9136AA),  # RFC 3720 B.4 from here on
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (ISCSI_READ_PDU, 0xD9963A56),
]


@pytest.mark.parametrize(("data", "expected"), VECTORS)
def test_published_vectors(data, expected):
    assert crc32c(data) == expected


@pytest.mark.parametrize(("data", "expected"), VECTORS)
def test_published_vectors_on_the_long_path(monkeypatch, data, expected):
    monkeypatch.setattr(checksum, "_LONG", 0)
    assert crc32c(data) == expected


def test_oracle_agrees_with_the_vectors():
    for data, expected in VECTORS:
        assert crc_by_bits(0xFFFFFFFF, data) ^ 0xFFFFFFFF == expected


@pytest.mark.parametrize(
    "length",
    [1, 31, 32, 33, checksum._LONG - 1, checksum._LONG, checksum._LONG + 1, 4064, 16352],
)
def test_lengths_around_the_switch_and_btrfs_blocks(length):
    data = bytes((i * 131 + 7) & 0xFF for i in range(length))
    for register in (0, 0xFFFFFFFF, 0xFFFFFFFE, 0x80000001):
        assert crc32c_update(register, data) == crc_by_bits(register, data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=5000), st.integers(0, 0xFFFFFFFF))
def test_matches_the_definition(data, register):
    assert crc32c_update(register, data) == crc_by_bits(register, data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=3000), st.integers(0, 0xFFFFFFFF))
def test_chains(first, second, register):
    """Feeding the register of one piece into the next is the CRC of both."""
    assert crc32c_update(crc32c_update(register, first), second) == crc32c_update(
        register, first + second
    )


def test_name_hash_seed():
    # Linux: btrfs_name_hash(name) = crc32c(~1, name), no final inversion.
    assert name_hash(b"default") == crc_by_bits(0xFFFFFFFE, b"default")


def test_checksum_matches_each_type():
    data = bytes(range(256)) * 16
    assert checksum_matches(0, crc32c(data).to_bytes(4, "little") + bytes(28), data)
    assert not checksum_matches(0, (crc32c(data) ^ 1).to_bytes(4, "little"), data)
    assert checksum_matches(2, hashlib.sha256(data).digest(), data)
    assert not checksum_matches(2, hashlib.sha256(data + b"x").digest(), data)
    assert checksum_matches(3, hashlib.blake2b(data, digest_size=32).digest(), data)
    assert not checksum_matches(3, bytes(32), data)
