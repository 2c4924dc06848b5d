"""The menu across the sandbox's wall: the reader runs the menu, pygrub runs the terminal.

Under the sandbox the guest's config is never evaluated outside the sandboxed child, and
the child never touches the console. So the child runs :class:`~.app.MenuApp` (keys,
views, edits, ``a``, the command line, passwords, the countdown) and the parent, which
holds the terminal, reads the keys, keeps the time and paints. They speak over two
pipes, one JSON object a line, in lockstep:

    child  -> parent   Start    once: the unattended wait and GRUB's timeout_style
    parent -> child    Event    whether the menu shows, then the keys typed, whether the
                                console hung up, and the size and encoding to draw for
    child  -> parent   Drawing  after each Event: the screen's text, its attributes, the
                                cursor and when the next Event is due without a key

The child closes its ends once it has its choice (or dies): the parent gives the
terminal back at once and learns the outcome from the sandbox's report, as in any run.

The parent trusts nothing in a Drawing. It is read within a byte budget set by the
screen's size, and refused, ending the run with one error line, unless it has exactly the
rows and columns asked for and every character is one the terminal would show as itself
(:func:`~.text.cell`): no control or format character, nothing the terminal's encoding
lacks. A subverted child can draw a misleading menu inside the frame, as a config's own
titles can, but cannot write an escape sequence to the console, make the parent hold an
unbounded message, or wait forever: each Drawing must come within the run's budget
(PYGRUB_TIMEOUT), and until a key is pressed the menu must end within its countdown and
that budget.
"""

from __future__ import annotations

import json
import math
import os
import select
import time

from ..config.model import BootMenu
from ..errors import LimitError, PygrubError
from ..log import get_logger
from ..record import asdict, fields, record
from ..select import Chosen
from . import unattended_wait
from .app import MenuApp, WhyNot
from .terminal import ConsoleInput, Screen, ScreenUnavailable, automatic, held_log_records, prelude
from .text import NORMAL, REVERSE, Canvas, cell

log = get_logger(__name__)

#: The largest screen the parent asks a Drawing for; a larger terminal shows it top left.
MAX_ROWS = 256
MAX_COLS = 512
#: Bytes of a Start, and of an Event (the keys of one read of the console).
MAX_START_BYTES = 256
MAX_EVENT_BYTES = 1 << 20
#: A Drawing's bytes beyond its characters (at most 4 each, in UTF-8) and attributes.
DRAWING_OVERHEAD = 4096
ROW_OVERHEAD = 16
#: The shortest wait for keys between Drawings: a child asking for 0 must not spin us.
MIN_TICK = 0.01
#: Attributes as a Drawing writes them, one character per screen character.
ATTRIBUTE_CODES = {NORMAL: "0", REVERSE: "1"}
STYLES = ("menu", "hidden", "countdown")


class MenuProtocolError(PygrubError):
    """The sandboxed menu sent what the parent refuses to draw."""


def _refused(why: str) -> MenuProtocolError:
    return MenuProtocolError(f"the sandboxed menu's message is refused: {why}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _keys_of(value: dict, names: tuple[str, ...]) -> dict:
    if not isinstance(value, dict) or set(value) != set(names):
        raise _refused(f"not an object of {', '.join(names)}")
    return value


# -- the messages ---------------------------------------------------------------------------


@record(frozen=True)
class Start:
    """Child -> parent, once: seconds before the default boots unattended, and the style."""

    wait: float | None
    style: str

    @classmethod
    def from_json(cls, value: object) -> Start:
        v = _keys_of(value, ("wait", "style"))  # type: ignore[arg-type]
        if not (v["wait"] is None or (_number(v["wait"]) and v["wait"] >= 0)):
            raise _refused("the wait is not a number of seconds")
        if v["style"] not in STYLES:
            raise _refused("the timeout style is not menu, hidden or countdown")
        return cls(v["wait"], v["style"])


@record(frozen=True)
class Event:
    """Parent -> child: what happened at the console, and what to draw for."""

    #: False (first Event only): no menu after all; the default boots.
    show: bool
    #: First Event only: the countdown the menu starts with (None: none).
    wait: float | None
    keys: tuple[str, ...]
    #: The console hung up: nobody can type any more.
    closed: bool
    rows: int
    cols: int
    encoding: str

    @classmethod
    def from_json(cls, value: object) -> Event:
        v = _keys_of(value, tuple(f.name for f in fields(cls)))  # type: ignore[arg-type]
        if not (
            isinstance(v["show"], bool)
            and (v["wait"] is None or _number(v["wait"]))
            and isinstance(v["keys"], list)
            and all(isinstance(k, str) for k in v["keys"])
            and isinstance(v["closed"], bool)
            and _count(v["rows"])
            and _count(v["cols"])
            and isinstance(v["encoding"], str)
        ):
            raise _refused("an event field has the wrong type")
        return cls(
            v["show"], v["wait"], tuple(v["keys"]), v["closed"], v["rows"], v["cols"], v["encoding"]
        )


@record(frozen=True)
class Drawing:
    """Child -> parent: one screen. Each row is its characters and, for each, its
    attribute ("0" normal, "1" reverse); the right half of a wide character is not sent."""

    rows: tuple[tuple[str, str], ...]
    #: (row, column) of the terminal's cursor, or None to hide it.
    cursor: tuple[int, int] | None
    #: Seconds until the next Event is due without a key (None: only a key).
    tick: float | None

    @classmethod
    def from_json(cls, value: object) -> Drawing:
        v = _keys_of(value, ("rows", "cursor", "tick"))  # type: ignore[arg-type]
        rows = v["rows"]
        if not isinstance(rows, list) or not all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(s, str) for s in r) for r in rows
        ):
            raise _refused("the rows are not pairs of strings")
        cursor = v["cursor"]
        if cursor is not None and not (
            isinstance(cursor, list) and len(cursor) == 2 and all(_count(c) for c in cursor)
        ):
            raise _refused("the cursor is not a row and a column")
        if not (v["tick"] is None or (_number(v["tick"]) and v["tick"] >= 0)):
            raise _refused("the tick is not a number of seconds")
        return cls(
            tuple((text, attrs) for text, attrs in rows),
            None if cursor is None else (cursor[0], cursor[1]),
            v["tick"],
        )


def drawing_of(canvas: Canvas, tick: float | None) -> Drawing:
    """What the child sends for ``canvas``."""
    rows = []
    for row in canvas.grid:
        text = "".join(t for t, _a in row)
        attrs = "".join(ATTRIBUTE_CODES[a] * len(t) for t, a in row)
        rows.append((text, attrs))
    return Drawing(tuple(rows), canvas.cursor, tick)


def drawing_budget(rows: int, cols: int) -> int:
    """The most bytes an honest Drawing of ``rows`` x ``cols`` takes."""
    return DRAWING_OVERHEAD + rows * (5 * cols + ROW_OVERHEAD)


def canvas_of(drawing: Drawing, rows: int, cols: int, encoding: str) -> Canvas:
    """The Canvas a Drawing describes, if it is exactly ``rows`` x ``cols`` of characters
    the terminal shows as themselves; MenuProtocolError otherwise."""
    if len(drawing.rows) != rows:
        raise _refused(f"{len(drawing.rows)} rows drawn on a screen of {rows}")
    canvas = Canvas(rows, cols, encoding)
    for y, (text, attrs) in enumerate(drawing.rows):
        if len(attrs) != len(text) or not set(attrs) <= {"0", "1"}:
            raise _refused(f"row {y}'s attributes do not match its characters")
        width = 0
        for ch in text:
            shown, w = cell(ch, encoding)
            if shown != ch:
                raise _refused(f"row {y} holds U+{ord(ch):04X}, which the terminal must not get")
            width += w
        if width != cols:
            raise _refused(f"row {y} is {width} columns wide on a screen of {cols}")
        x = 0
        start = 0
        for end in range(1, len(text) + 1):
            if end == len(text) or attrs[end] != attrs[start]:
                x = canvas.put(y, x, text[start:end], REVERSE if attrs[start] == "1" else NORMAL)
                start = end
    if drawing.cursor is not None:
        y, x = drawing.cursor
        if not (y < rows and x < cols):
            raise _refused(f"the cursor ({y}, {x}) is off a screen of {rows} x {cols}")
        canvas.cursor = (y, x)
    return canvas


# -- the pipes ----------------------------------------------------------------------------


class Channel:
    """One end of the conversation: JSON objects a line, read within a byte limit and,
    on the parent's side, a deadline."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.buffer = bytearray()

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.read_fd = self.write_fd = -1

    def send(self, message: object, deadline: float | None = None) -> bool:
        """Write ``message``; False when the other end is gone."""
        data = json.dumps(asdict(message), ensure_ascii=False, separators=(",", ":"))
        view = memoryview(data.encode() + b"\n")
        while view:
            if deadline is not None:
                _wait_until([], [self.write_fd], deadline)
            try:
                view = view[os.write(self.write_fd, view) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                return False
        return True

    def receive(self, limit: int, deadline: float | None = None) -> object:
        """The next JSON value, or None when the other end has closed."""
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > limit:
                raise LimitError(f"a message of the sandboxed menu is over {limit} bytes")
            if deadline is not None:
                _wait_until([self.read_fd], [], deadline)
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        if end > limit:
            raise LimitError(f"a message of the sandboxed menu is over {limit} bytes")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        try:
            return json.loads(line)
        except (ValueError, RecursionError):
            raise _refused("not JSON") from None


def _wait_until(readers: list[int], writers: list[int], deadline: float) -> None:
    """Until a descriptor is ready; PygrubError at ``deadline``."""
    ready = select.select(readers, writers, [], max(deadline - time.monotonic(), 0))
    if not any(ready):
        raise PygrubError("the sandboxed menu did not answer in time (PYGRUB_TIMEOUT)")


# -- the child's side ---------------------------------------------------------------------


def choose_remotely(channel: Channel, menu: BootMenu, why_not: WhyNot, max_wait: float) -> Chosen:
    """The chooser inside the sandbox: the menu's path and entry, maybe edited; no
    unattended wait is longer than ``max_wait`` seconds.

    Raises NotFoundError, as the terminal's menu does, when the countdown runs out and
    neither the default nor a fallback can boot.
    """
    wait, style = unattended_wait(menu, max_wait)
    channel.send(Start(wait, style))
    event = _next_event(channel)
    if not event.show:
        return automatic(menu, why_not)
    app = MenuApp(menu, why_not, event.wait, time.monotonic())
    while (chosen := app.feed(list(event.keys), event.closed, time.monotonic())) is None:
        canvas = app.draw(event.rows, event.cols, event.encoding)
        if not channel.send(drawing_of(canvas, app.next_tick())):
            raise PygrubError("the terminal's side of the menu is gone")
        event = _next_event(channel)
    return chosen


def _next_event(channel: Channel) -> Event:
    value = channel.receive(MAX_EVENT_BYTES)
    if value is None:
        raise PygrubError("the terminal's side of the menu is gone")
    return Event.from_json(value)


# -- the parent's side --------------------------------------------------------------------


def wait_for_start(channel: Channel) -> Start | None:
    """The child's Start when it shows a menu; None when it ends without one."""
    value = channel.receive(MAX_START_BYTES)
    return None if value is None else Start.from_json(value)


def host(channel: Channel, start: Start, answer_seconds: float, max_wait: float) -> None:
    """Run the console (fds 0 and 1) for the child's menu until the child stops asking.

    Returns when the child has closed its ends: its report says what came of it.
    """
    # As the menu on this terminal: no unattended wait past PYGRUB_MENU_MAX_WAIT.
    wait = None if start.wait is None else min(start.wait, max_wait)
    with ConsoleInput(0) as console:
        show, wait = prelude(console, wait, start.style)
        if show:
            try:
                with held_log_records(), Screen(1) as screen:
                    converse(channel, console, screen, wait, answer_seconds)
                    return
            except ScreenUnavailable as e:
                log.warning("no menu on this terminal (%s): booting the default entry", e)
        no_menu = Event(False, None, (), False, 0, 0, "ascii")
        channel.send(no_menu, time.monotonic() + answer_seconds)


def converse(
    channel: Channel, console: ConsoleInput, screen: Screen, wait: float | None, answer: float
) -> None:
    """Send Events, paint Drawings, until the child closes its ends."""
    # Unattended, the child must end the menu by itself: within the countdown and a budget.
    unattended_end = None if wait is None else time.monotonic() + wait + answer
    rows, cols = bounded_size(screen)
    event = Event(True, wait, (), False, rows, cols, screen.encoding)
    # The child's death (or anything it sends out of turn) ends a wait for keys.
    console.others = (channel.read_fd,)
    while True:
        if not channel.send(event, time.monotonic() + answer):
            return
        value = channel.receive(drawing_budget(rows, cols), time.monotonic() + answer)
        if value is None:
            return
        drawing = Drawing.from_json(value)
        screen.paint(canvas_of(drawing, rows, cols, screen.encoding))
        timeout = None if drawing.tick is None else max(drawing.tick, MIN_TICK)
        if unattended_end is not None:
            left = unattended_end - time.monotonic()
            if left <= 0:
                raise PygrubError("the sandboxed menu did not boot by itself when its time was up")
            timeout = left if timeout is None else min(timeout, left)
        typed = console.read_keys(timeout)
        if typed:
            unattended_end = None
        if console.take_resize():
            screen.resize()
        rows, cols = bounded_size(screen)
        event = Event(True, None, tuple(typed), console.closed, rows, cols, screen.encoding)


def bounded_size(screen: Screen) -> tuple[int, int]:
    rows, cols = screen.size()
    return min(rows, MAX_ROWS), min(cols, MAX_COLS)
