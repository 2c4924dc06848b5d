"""Guest text on the console: every character shown safely, in cells of known width.

Titles and command lines come from the guest. Written to the console as they are, a
title could hold escape sequences that reprogram the administrator's terminal, bidi
overrides that make it read as something else, or characters the terminal cannot show.
So each character becomes a fixed cell text here before anything is drawn: itself when
the terminal's encoding has it, an ASCII fallback (``é`` -> ``e``) when not, and ``?``
for controls, format characters, lone surrogates (undecodable bytes) and combining marks.
A character is one cell wide, or two for East Asian wide and fullwidth characters.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from ..record import field, record

#: Cell attributes; the painter maps them onto the terminal's.
NORMAL = 0
REVERSE = 1

REPLACEMENT = "?"
#: Unicode categories never shown as themselves: controls, format characters (bidi
#: overrides, zero-width joiners), surrogates, private use, unassigned, separators that
#: break lines, and combining marks (zero width: they would misplace every later cell).
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Mn", "Me", "Mc"})


@lru_cache(maxsize=4096)
def cell(ch: str, encoding: str) -> tuple[str, int]:
    """(text, width in cells) the terminal shows for one character; width is 1 or 2."""
    if ch == "\t":
        return " ", 1
    if ch == " " or ("!" <= ch <= "~"):
        return ch, 1
    if unicodedata.category(ch) in HIDDEN_CATEGORIES:
        return REPLACEMENT, 1
    if can_encode(ch, encoding):
        return ch, 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    fallback = ascii_fallback(ch)
    return (fallback, len(fallback)) if fallback else (REPLACEMENT, 1)


def can_encode(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


def ascii_fallback(ch: str) -> str:
    """A printable ASCII stand-in of at most two characters (``é`` -> ``e``), or ""."""
    decomposed = unicodedata.normalize("NFKD", ch)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    if 0 < len(plain) <= 2 and all(" " <= c <= "~" for c in plain):
        return plain
    return ""


def cells(text: str, encoding: str) -> list[tuple[str, int]]:
    """The cells of ``text``, one per character (for the line editor's cursor)."""
    return [cell(ch, encoding) for ch in text]


def title_cells(text: str, encoding: str) -> list[tuple[str, int]]:
    """The cells of a title: composed first, so ``e`` + combining acute shows as ``é``."""
    return cells(unicodedata.normalize("NFC", text), encoding)


def width(text: str, encoding: str) -> int:
    return sum(w for _t, w in cells(text, encoding))


def marker(preferred: str, fallback: str, encoding: str) -> str:
    """A one-cell decoration: ``preferred`` where the terminal can show it."""
    return preferred if can_encode(preferred, encoding) else fallback


@record
class Canvas:
    """A rows x cols grid of cells that clips everything written to it.

    Views draw here; the terminal painter copies it to the screen. A cell holds its
    text and attribute; the right half of a wide character holds "" (nothing to draw).
    """

    rows: int
    cols: int
    encoding: str
    grid: list[list[tuple[str, int]]] = field(init=False)
    #: Where the terminal cursor goes (row, col), or None to hide it.
    cursor: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.grid = [[(" ", NORMAL)] * self.cols for _ in range(self.rows)]

    def put_cells(
        self, y: int, x: int, items: list[tuple[str, int]], attr: int = NORMAL, limit: int = -1
    ) -> int:
        """Write cells from (y, x), at most ``limit`` columns (-1: to the edge); the next x."""
        end = self.cols if limit < 0 else min(self.cols, x + limit)
        if not 0 <= y < self.rows:
            return x
        row = self.grid[y]
        for text, w in items:
            if x + w > end:
                # A wide character cut by the edge leaves a blank, never half a glyph.
                while x < end:
                    if x >= 0:
                        self._unpair(row, x, x + 1)
                        row[x] = (" ", attr)
                    x += 1
                break
            if x >= 0:
                self._unpair(row, x, x + w)
                row[x] = (text, attr)
                for extra in range(1, w):
                    row[x + extra] = ("", attr)
            x += w
        return x

    def _unpair(self, row: list[tuple[str, int]], start: int, end: int) -> None:
        """Blank the halves of wide characters that cells start..end are about to split."""
        if row[start][0] == "" and start > 0:
            row[start - 1] = (" ", row[start - 1][1])
        if end < self.cols and row[end][0] == "":
            row[end] = (" ", row[end][1])

    def put(self, y: int, x: int, text: str, attr: int = NORMAL, limit: int = -1) -> int:
        """Write interface text (or guest text already made safe by ``cells``)."""
        return self.put_cells(y, x, cells(text, self.encoding), attr, limit)

    def put_cut(
        self, y: int, x: int, items: list[tuple[str, int]], space: int, attr: int = NORMAL
    ) -> None:
        """Write cells into ``space`` columns, padded; a longer text ends in a cut marker."""
        if space <= 0:
            return
        total = sum(w for _t, w in items)
        if total > space:
            cut = marker("\u2026", "$", self.encoding)
            end = self.put_cells(y, x, items, attr, space - 1)
            self.put(y, end, " " * (x + space - 1 - end) + cut, attr)
        else:
            end = self.put_cells(y, x, items, attr, space)
            self.put(y, end, " " * (x + space - end), attr)

    def fill(self, y: int, x: int, count: int, attr: int = NORMAL, ch: str = " ") -> None:
        self.put(y, x, ch * max(count, 0), attr)

    def center(self, y: int, text: str, attr: int = NORMAL) -> None:
        w = width(text, self.encoding)
        self.put(y, max((self.cols - w) // 2, 0), text, attr)

    def text_rows(self) -> list[str]:
        """The grid as plain strings, for tests and debugging."""
        return ["".join(t for t, _a in row) for row in self.grid]


def wrap(text: str, space: int) -> list[str]:
    """``text`` broken at blanks into lines of at most ``space`` characters (long words cut)."""
    if space <= 0:
        return []
    lines: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > space:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:space])
            word = word[space:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= space:
            current += " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines
