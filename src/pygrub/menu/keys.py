"""Keys from the bytes a terminal sends.

The menu reads the console itself instead of through curses' keypad mode: libxl says
TERM=vt100, but the person types on whatever terminal runs ``xl console`` (xterm, the
Linux console, a serial line), whose Home, End, PageUp, Delete and F10 keys a vt100
terminfo entry does not describe. This decoder knows the sequences those terminals send
(ECMA-48 CSI, the vt100's SS3, the Linux console's F-keys) and UTF-8 text.

A key is a one-character string for a typed character (control characters included,
``"\\x18"`` is Ctrl-X) or one of the names below for the others.
"""

from __future__ import annotations

UP = "<up>"
DOWN = "<down>"
LEFT = "<left>"
RIGHT = "<right>"
HOME = "<home>"
END = "<end>"
PAGE_UP = "<pgup>"
PAGE_DOWN = "<pgdn>"
INSERT = "<insert>"
DELETE = "<delete>"
ENTER = "<enter>"
ESC = "<esc>"
TAB = "<tab>"
BACKSPACE = "<backspace>"
F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12 = (f"<f{n}>" for n in range(1, 13))


def ctrl(letter: str) -> str:
    """The character Ctrl+``letter`` sends: ctrl("x") == "\\x18"."""
    return chr(ord(letter.upper()) & 0x1F)


CTRL_C = ctrl("c")

#: Final bytes of CSI and SS3 sequences that name a key by themselves.
_FINALS = {
    ord("A"): UP,
    ord("B"): DOWN,
    ord("C"): RIGHT,
    ord("D"): LEFT,
    ord("H"): HOME,
    ord("F"): END,
}
#: SS3 (ESC O x): the vt100's cursor keys in application mode and PF1-PF4.
_SS3 = _FINALS | {ord("P"): F1, ord("Q"): F2, ord("R"): F3, ord("S"): F4, ord("M"): ENTER}
#: CSI n ~ (vt220, xterm, the Linux console).
_TILDE = {
    1: HOME,
    2: INSERT,
    3: DELETE,
    4: END,
    5: PAGE_UP,
    6: PAGE_DOWN,
    7: HOME,
    8: END,
    11: F1,
    12: F2,
    13: F3,
    14: F4,
    15: F5,
    17: F6,
    18: F7,
    19: F8,
    20: F9,
    21: F10,
    23: F11,
    24: F12,
}
#: The Linux console's F1-F5: ESC [ [ A .. E.
_LINUX_F = {ord("A"): F1, ord("B"): F2, ord("C"): F3, ord("D"): F4, ord("E"): F5}
#: A CSI longer than this is not a key: it is dropped whole.
MAX_SEQUENCE = 32

_INCOMPLETE = -1


class KeyDecoder:
    """Turns the bytes read from the terminal into keys, across reads.

    A sequence cut at the end of a read is kept for the next one; ``flush`` ends it
    when nothing more came (a lone ESC is the Escape key).
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.after_cr = False

    @property
    def pending(self) -> bool:
        return bool(self.buffer)

    def feed(self, data: bytes) -> list[str]:
        self.buffer += data
        return self._decode(final=False)

    def flush(self) -> list[str]:
        return self._decode(final=True)

    def _decode(self, final: bool) -> list[str]:
        keys: list[str] = []
        buf = self.buffer
        i = 0
        while i < len(buf):
            key, length = self._one(buf, i, final)
            if length == _INCOMPLETE:
                break
            i += length
            if key is not None:
                keys.append(key)
        del buf[:i]
        return keys

    def _one(self, buf: bytearray, i: int, final: bool) -> tuple[str | None, int]:
        """(key or None, bytes used) at ``buf[i]``; length _INCOMPLETE waits for more."""
        b = buf[i]
        after_cr, self.after_cr = self.after_cr, b == 0x0D
        if b == 0x1B:
            key, length = escape_sequence(buf, i)
            if length == _INCOMPLETE:
                return (ESC, 1) if final else (None, _INCOMPLETE)
            return key, length
        if b == 0x0D:
            return ENTER, 1
        if b == 0x0A:
            # CR LF is one Enter; a lone LF is one too.
            return (None, 1) if after_cr else (ENTER, 1)
        if b in (0x7F, 0x08):
            return BACKSPACE, 1
        if b == 0x09:
            return TAB, 1
        if b < 0x80:
            return chr(b), 1
        return utf8_character(buf, i, final)


def escape_sequence(buf: bytearray, i: int) -> tuple[str | None, int]:
    """The key an escape sequence at ``buf[i]`` names, and its length (or _INCOMPLETE)."""
    if i + 1 >= len(buf):
        return None, _INCOMPLETE
    kind = buf[i + 1]
    if kind == ord("O"):
        if i + 2 >= len(buf):
            return None, _INCOMPLETE
        return _SS3.get(buf[i + 2]), 3
    if kind != ord("["):
        # ESC then an ordinary key (Alt+key, or a fast typist): Escape, then that key.
        return ESC, 1
    if i + 2 < len(buf) and buf[i + 2] == ord("["):
        if i + 3 >= len(buf):
            return None, _INCOMPLETE
        return _LINUX_F.get(buf[i + 3]), 4
    return control_sequence(buf, i)


def control_sequence(buf: bytearray, i: int) -> tuple[str | None, int]:
    """ESC [ parameters intermediates final (ECMA-48): the key, or None for others."""
    j = i + 2
    while j < len(buf) and j - i <= MAX_SEQUENCE:
        b = buf[j]
        if 0x40 <= b <= 0x7E:
            return csi_key(bytes(buf[i + 2 : j]), b), j + 1 - i
        if not 0x20 <= b <= 0x3F:
            # Not a sequence after all: drop what was read of it.
            return None, j - i
        j += 1
    if j - i > MAX_SEQUENCE:
        return None, j - i
    return None, _INCOMPLETE


def csi_key(params: bytes, final: int) -> str | None:
    if final == ord("~"):
        first = params.split(b";", 1)[0]
        return _TILDE.get(int(first)) if first.isdigit() and len(first) <= 3 else None
    return _FINALS.get(final)


def utf8_character(buf: bytearray, i: int, final: bool) -> tuple[str | None, int]:
    """One UTF-8 character; an invalid byte is dropped."""
    lead = buf[i]
    if 0xC2 <= lead <= 0xDF:
        size = 2
    elif 0xE0 <= lead <= 0xEF:
        size = 3
    elif 0xF0 <= lead <= 0xF4:
        size = 4
    else:
        return None, 1
    if i + size > len(buf):
        # Wait for the rest, unless what came already cannot be part of it.
        if not final and all(0x80 <= b <= 0xBF for b in buf[i + 1 :]):
            return None, _INCOMPLETE
        return None, 1
    try:
        return bytes(buf[i : i + size]).decode("utf-8"), size
    except UnicodeDecodeError:
        return None, 1
