"""The one-line editor of the entry editor, the command line and the password prompt.

Keys as GRUB's and bash's: Left/Right (^B/^F), Home/End (^A/^E), Backspace, Delete
(^D), ^K and ^U kill to the end and to the start, Esc cancels, Enter accepts. A line
wider than its window scrolls sideways, half a window at a time, with ``<`` and ``>``
showing that there is more.
"""

from __future__ import annotations

from ..record import field, record
from . import keys
from .text import Canvas, cells

#: Characters a person may add to one line (GRUB's own command line takes 1024).
MAX_TYPED_LINE = 4096

EDITING = "editing"
ACCEPTED = "accepted"
CANCELLED = "cancelled"


@record
class LineEditor:
    text: str = ""
    #: Shown as '*' (passwords).
    masked: bool = False
    pos: int = field(default=-1)
    state: str = EDITING
    #: First cell shown when the line is wider than its window.
    scroll: int = 0
    capacity: int = field(init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.pos <= len(self.text):
            self.pos = len(self.text)
        self.capacity = len(self.text) + MAX_TYPED_LINE

    def press(self, key: str) -> None:
        text, pos = self.text, self.pos
        if key == keys.ENTER:
            self.state = ACCEPTED
        elif key == keys.ESC:
            self.state = CANCELLED
        elif key in (keys.LEFT, keys.ctrl("b")):
            self.pos = max(pos - 1, 0)
        elif key in (keys.RIGHT, keys.ctrl("f")):
            self.pos = min(pos + 1, len(text))
        elif key in (keys.HOME, keys.ctrl("a")):
            self.pos = 0
        elif key in (keys.END, keys.ctrl("e")):
            self.pos = len(text)
        elif key == keys.BACKSPACE:
            if pos > 0:
                self.text, self.pos = text[: pos - 1] + text[pos:], pos - 1
        elif key in (keys.DELETE, keys.ctrl("d")):
            self.text = text[:pos] + text[pos + 1 :]
        elif key == keys.ctrl("k"):
            self.text = text[:pos]
        elif key == keys.ctrl("u"):
            self.text, self.pos = text[pos:], 0
        elif len(key) == 1 and key.isprintable() and len(text) < self.capacity:
            self.text, self.pos = text[:pos] + key + text[pos:], pos + 1

    def draw(self, canvas: Canvas, y: int, x: int, space: int) -> None:
        """The line in ``space`` columns from (y, x), scrolled to show the cursor."""
        if space < 3 or not 0 <= y < canvas.rows:
            return
        shown = [("*", 1)] * len(self.text) if self.masked else cells(self.text, canvas.encoding)
        starts = [0]
        for _t, w in shown:
            starts.append(starts[-1] + w)
        cursor = starts[self.pos]
        self.scroll = visible_start(self.scroll, cursor, starts[-1], space)
        first = next(i for i, s in enumerate(starts) if s >= self.scroll)
        canvas.fill(y, x, space)
        left = x + starts[first] - self.scroll
        canvas.put_cells(y, left, shown[first:], limit=x + space - left)
        if self.scroll > 0:
            canvas.put(y, x, "<")
        if starts[-1] - self.scroll > space:
            canvas.put(y, x + space - 1, ">")
        canvas.cursor = (y, x + cursor - self.scroll)


def visible_start(scroll: int, cursor: int, total: int, space: int) -> int:
    """The first cell to show so the cursor is inside the window, away from its edges."""
    half = max(space // 2, 1)
    # Column 0 holds '<' when scrolled, and the last column '>' when more follows.
    if scroll > 0 and cursor - scroll < 1:
        scroll = max(cursor - half, 0)
    if cursor - scroll > space - 2:
        scroll = cursor - half
    if total + 1 - scroll < space:
        scroll = max(total + 1 - space, 0)
    return max(scroll, 0)
