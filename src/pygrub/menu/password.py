"""Checking a typed password against the config's: plain, MD5-crypt, GRUB 2's PBKDF2.

The stored password comes from the guest, so its form is checked and the work it can
ask for (PBKDF2 rounds) is bounded before anything is computed. A stored password that
cannot be checked never unlocks anything.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from ..config.model import Password
from ..errors import CorruptError, LimitError, UnsupportedError

#: The alphabet of crypt(3)'s base-64 encoding.
CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MD5_MAGIC = b"$1$"
#: MD5-crypt uses at most 8 salt characters.
MD5_SALT_MAX = 8
MD5_ROUNDS = 1000
#: The order the 16 digest bytes are encoded in: four groups of three, then one.
MD5_GROUPS = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
#: $1$salt$hash as GRUB legacy's ``password --md5`` stores it.
MD5_CRYPT = re.compile(r"\$1\$([^$]{0,8})\$([./0-9A-Za-z]{22})")

#: grub.pbkdf2.sha512.ITERATIONS.SALT.HASH (grub-mkpasswd-pbkdf2), hex salt and hash.
PBKDF2_PREFIX = "grub.pbkdf2.sha512."
#: SHA-512 blocks times rounds one check may compute (GRUB's default is 10000 rounds;
#: this is about three seconds).
MAX_PBKDF2_WORK = 5_000_000
MAX_PBKDF2_BYTES = 1024
SHA512_BYTES = 64
#: Longest stored password read (GRUB legacy keeps it in a 512-byte buffer).
MAX_STORED = 4096


def check_password(password: Password, typed: str, user: str | None = None) -> bool:
    """Whether ``typed`` (and ``user``, for GRUB 2's superusers) unlocks ``password``.

    Raises UnsupportedError, CorruptError or LimitError when the stored password
    cannot be checked; it then never unlocks.
    """
    if password.users and user not in password.users:
        return False
    stored = password.value
    if len(stored) > MAX_STORED:
        raise LimitError(f"password in the config: {len(stored)} characters, over {MAX_STORED}")
    secret = typed.encode("utf-8", "surrogateescape")
    if password.kind == "plain":
        return hmac.compare_digest(secret, stored.encode("utf-8", "surrogateescape"))
    if password.kind == "md5":
        return check_md5_crypt(stored, secret)
    if password.kind == "pbkdf2":
        return check_pbkdf2(stored, secret)
    raise UnsupportedError(f"password of kind {password.kind[:40]!r}: nothing can unlock it")


def check_md5_crypt(stored: str, secret: bytes) -> bool:
    match = MD5_CRYPT.fullmatch(stored)
    if match is None:
        raise CorruptError(f"MD5 password {stored[:40]!r} is not $1$salt$hash")
    salt = match.group(1).encode("utf-8", "surrogateescape")
    computed = md5_crypt(secret, salt).encode("utf-8", "surrogateescape")
    return hmac.compare_digest(computed, stored.encode("utf-8", "surrogateescape"))


def md5_crypt(secret: bytes, salt: bytes) -> str:
    """Poul-Henning Kamp's MD5-based crypt(3), the ``$1$`` scheme."""
    salt = salt.split(b"$", 1)[0][:MD5_SALT_MAX]
    alternate = hashlib.md5(secret + salt + secret).digest()
    first = hashlib.md5(secret + MD5_MAGIC + salt)
    for start in range(0, len(secret), 16):
        first.update(alternate[: min(16, len(secret) - start)])
    bits = len(secret)
    while bits:
        first.update(b"\0" if bits & 1 else secret[:1])
        bits >>= 1
    digest = first.digest()
    for round_number in range(MD5_ROUNDS):
        step = hashlib.md5(secret if round_number & 1 else digest)
        if round_number % 3:
            step.update(salt)
        if round_number % 7:
            step.update(secret)
        step.update(digest if round_number & 1 else secret)
        digest = step.digest()
    encoded = "".join(
        crypt_base64(digest[a] << 16 | digest[b] << 8 | digest[c], 4) for a, b, c in MD5_GROUPS
    )
    encoded += crypt_base64(digest[11], 2)
    return "$1$" + salt.decode("utf-8", "surrogateescape") + "$" + encoded


def crypt_base64(value: int, count: int) -> str:
    """``count`` characters of crypt's base 64, least significant six bits first."""
    out = []
    for _ in range(count):
        out.append(CRYPT_ALPHABET[value & 0x3F])
        value >>= 6
    return "".join(out)


def check_pbkdf2(stored: str, secret: bytes) -> bool:
    rounds, salt, expected = parse_pbkdf2(stored)
    computed = hashlib.pbkdf2_hmac("sha512", secret, salt, rounds, len(expected))
    return hmac.compare_digest(computed, expected)


def parse_pbkdf2(stored: str) -> tuple[int, bytes, bytes]:
    """(rounds, salt, hash) of a grub.pbkdf2.sha512 password, within bounds."""
    if not stored.startswith(PBKDF2_PREFIX):
        raise UnsupportedError(f"password {stored[:40]!r}: only grub.pbkdf2.sha512 is known")
    parts = stored[len(PBKDF2_PREFIX) :].split(".")
    if len(parts) != 3 or not parts[0].isdecimal() or len(parts[0]) > 12:
        raise CorruptError(f"PBKDF2 password {stored[:60]!r} is not ROUNDS.SALT.HASH")
    rounds = int(parts[0])
    salt, expected = unhex(parts[1], "salt"), unhex(parts[2], "hash")
    if rounds < 1 or not expected:
        raise CorruptError(f"PBKDF2 password {stored[:60]!r}: no rounds or no hash")
    blocks = -(-len(expected) // SHA512_BYTES)
    if rounds * blocks > MAX_PBKDF2_WORK:
        raise LimitError(
            f"PBKDF2 password: {rounds} rounds of {blocks} blocks, over the limit of "
            f"{MAX_PBKDF2_WORK} block rounds"
        )
    return rounds, salt, expected


def unhex(text: str, what: str) -> bytes:
    if len(text) > 2 * MAX_PBKDF2_BYTES:
        raise LimitError(f"PBKDF2 password {what}: {len(text) // 2} bytes, over {MAX_PBKDF2_BYTES}")
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})*", text):
        raise CorruptError(f"PBKDF2 password {what} {text[:40]!r} is not hexadecimal")
    return bytes.fromhex(text)
