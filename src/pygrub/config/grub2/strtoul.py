"""GRUB's number reading (grub-core/kern/misc.c grub_strtoul), which commands, ``test``,
blocklists and the menu's default all share."""

from __future__ import annotations

_ULONG_MAX = (1 << 64) - 1


def grub_strtoul(text: str, base: int = 0, start: int = 0) -> tuple[int | None, int]:
    """grub_strtoul from ``text[start:]``: (value, index in ``text`` after the digits);
    value None when no digit was read.

    As kern/misc.c: leading blanks are skipped; base 0 reads 0x.. (lower-case x only) as
    hex and a 0 followed by an octal digit as octal, so "08" is 8; a value past 64 bits
    is an error (None).
    """
    i = start
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    if text.startswith("0x", i):
        if base in (0, 16):
            base = 16
            i += 2
    elif base == 0 and text.startswith("0", i) and "0" <= text[i + 1 : i + 2] <= "7":
        base = 8
    if base == 0:
        base = 10
    first = i
    value = 0
    while i < n:
        digit = _digit(text[i])
        if digit is None or digit >= base:
            break
        value = value * base + digit
        if value > _ULONG_MAX:
            return None, i
        i += 1
    if i == first:
        return None, first
    return value, i


def _digit(char: str) -> int | None:
    if "0" <= char <= "9":
        return ord(char) - ord("0")
    if "a" <= char.lower() <= "z":
        return ord(char.lower()) - ord("a") + 10
    return None
