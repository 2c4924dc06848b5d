"""The menu on the console: keyboard in, curses out, the clock, signals, and a clean exit.

libxl runs pygrub on a pty with TERM=vt100 and lets the person type through
``xl console``. Input is read here byte by byte (keys.KeyDecoder), with the terminal
in a raw mode: Ctrl-C arrives as a key and is turned into SIGINT, so the handler the CLI
installed stops the run; Ctrl-Z and Ctrl-\\ do nothing. Output goes through curses.

Whatever happens (a boot, an error, SIGTERM from libxl, Ctrl-C), the terminal is put
back as it was: curses is ended and the saved termios settings restored, with SIGTERM
and SIGINT held off while that happens, so a second signal cannot cut it short.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

from .._typing import TYPE_CHECKING
from ..config.model import BootMenu
from ..log import loaded
from ..select import Chosen, choose
from . import keys
from .app import MenuApp, WhyNot
from .keys import KeyDecoder
from .text import REVERSE, Canvas

if TYPE_CHECKING:
    import curses
    from typing import Any

log = logging.getLogger(__name__)

#: How long the rest of an escape sequence may take to arrive after its ESC.
ESCAPE_DELAY = 0.1
#: How long to wait between looks at the clock once the console has hung up.
POLL_CAP = 0.25
#: Log records kept while the menu owns the screen, shown after it.
MAX_HELD_RECORDS = 200
#: Keys that interrupt a hidden or countdown timeout (grub_key_is_interrupt).
INTERRUPT_KEYS = (keys.ESC, keys.F4)


class ScreenUnavailable(Exception):
    """curses cannot drive this terminal (unknown TERM, no cursor addressing)."""


def run(menu: BootMenu, why_not: WhyNot, wait: float | None, style: str) -> Chosen:
    """Show the menu on fds 0/1 and return the person's choice (or the default's).

    ``wait`` is the seconds before the default boots by itself (None: not at all) and
    ``style`` GRUB's timeout_style: "hidden" and "countdown" wait before any menu.
    """
    with ConsoleInput(0) as console:
        show, wait = prelude(console, wait, style)
        if not show:
            return automatic(menu, why_not)
        try:
            # Records logged meanwhile come out once the screen is given back.
            with held_log_records(), Screen(1) as screen:
                app = MenuApp(menu, why_not, wait, time.monotonic())
                return drive(app, console, screen)
        except ScreenUnavailable as e:
            log.warning("no menu on this terminal (%s): booting the default entry", e)
            return automatic(menu, why_not)


def prelude(console: ConsoleInput, wait: float | None, style: str) -> tuple[bool, float | None]:
    """(whether to show the menu, the countdown it starts with) after GRUB's wait before it.

    The menu shows at once for timeout_style "menu"; timeout 0 shows it only for a key
    already waiting, "hidden" and "countdown" only for Esc or F4 within ``wait`` seconds.
    A menu shown for a key has no countdown.
    """
    if wait == 0:
        # GRUB draws nothing for timeout=0, unless a key is already waiting.
        return console.discard_waiting_input(), None
    if wait is not None and style in ("hidden", "countdown"):
        return console.wait_for_interrupt(wait, show_seconds=style == "countdown"), None
    return True, wait


def automatic(menu: BootMenu, why_not: WhyNot) -> Chosen:
    return choose(menu, None, why_not)


def drive(app: MenuApp, console: ConsoleInput, screen: Screen) -> Chosen:
    """Paint, read keys, tell the time, until the app has a choice."""
    while True:
        if console.take_resize():
            screen.resize()
        rows, cols = screen.size()
        screen.paint(app.draw(rows, cols, screen.encoding))
        typed = console.read_keys(app.next_tick())
        choice = app.feed(typed, console.closed, time.monotonic())
        if choice is not None:
            return choice


class ConsoleInput:
    """The console's keyboard: raw mode, keys with a timeout, woken by signals.

    Signals (SIGWINCH, SIGTERM) wake select() through signal.set_wakeup_fd, so a resize
    is drawn at once; that, and the handlers, need the main thread.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.decoder = KeyDecoder()
        self.closed = False
        self.resized = False
        self.saved: list[Any] | None = None
        self.wake: tuple[int, int] | None = None
        self.previous_wakeup = -1
        self.previous_winch: Any = None
        #: Descriptors that end a wait for keys when ready (the sandboxed menu's pipe).
        self.others: tuple[int, ...] = ()

    def __enter__(self) -> ConsoleInput:
        self.saved = termios.tcgetattr(self.fd)
        try:
            self.previous_winch = signal.signal(signal.SIGWINCH, self._on_winch)
            self._wake_on_signals()
            termios.tcsetattr(self.fd, termios.TCSANOW, raw_mode(self.saved))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wake_on_signals(self) -> None:
        read_end, write_end = os.pipe()
        self.wake = (read_end, write_end)
        for end in self.wake:
            os.set_blocking(end, False)
        self.previous_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def _on_winch(self, _signum: int, _frame: FrameType | None) -> None:
        self.resized = True

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        with signals_held():
            if self.saved is not None:
                try:
                    # TCSANOW: waiting for output to drain could hang on a stalled console.
                    termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
                except termios.error:
                    pass
            if self.wake is not None:
                signal.set_wakeup_fd(self.previous_wakeup)
                for end in self.wake:
                    os.close(end)
                self.wake = None
            if self.previous_winch is not None:
                signal.signal(signal.SIGWINCH, self.previous_winch)

    def take_resize(self) -> bool:
        resized, self.resized = self.resized, False
        return resized

    def discard_waiting_input(self) -> bool:
        """Whether a key was already waiting (it is read and dropped)."""
        if not self._wait(0):
            return False
        self._read()
        return True

    def wait_for_interrupt(self, seconds: float, show_seconds: bool) -> bool:
        """Wait ``seconds``, or until Esc or F4 (True); other keys are ignored, as GRUB."""
        deadline = time.monotonic() + seconds
        shown = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if show_seconds and shown != int(-(-left // 1)):
                shown = int(-(-left // 1))
                # As GRUB prints it: the number, then blanks that clear the last one.
                write_all(1, f"\r{shown}    ".encode())
            step = left - (-(-left // 1) - 1)
            if any(key in INTERRUPT_KEYS for key in self.read_keys(step)):
                return True
        if show_seconds:
            write_all(1, b"\r      \r")
        return False

    def read_keys(self, timeout: float | None) -> list[str]:
        """The keys typed within ``timeout`` seconds (None: until one is), maybe none."""
        if self.closed:
            if timeout:
                time.sleep(min(timeout, POLL_CAP))
            return []
        if not self._wait(timeout):
            return []
        found = self.decoder.feed(self._read())
        while self.decoder.pending and not self.closed:
            if self._wait(ESCAPE_DELAY):
                found += self.decoder.feed(self._read())
            else:
                found += self.decoder.flush()
        if keys.CTRL_C in found:
            # Raw mode turned Ctrl-C into a key: make it the signal it means.
            signal.raise_signal(signal.SIGINT)
        return [key for key in found if key != keys.CTRL_C]

    def _wait(self, timeout: float | None) -> bool:
        """Whether input is ready within ``timeout``; a signal or ``others`` end the wait early."""
        watched = [self.fd, *self.others] + ([] if self.wake is None else [self.wake[0]])
        ready, _w, _x = select.select(watched, [], [], timeout)
        if self.wake is not None and self.wake[0] in ready:
            drain(self.wake[0])
        return self.fd in ready

    def _read(self) -> bytes:
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            data = b""
        if not data:
            # EOF or EIO: the other end of the pty is gone.
            self.closed = True
        return data


def raw_mode(attrs: list[Any]) -> list[Any]:
    """The termios settings for reading keys one by one, without echo or signals.

    Output processing stays on: only curses writes, and it expects it.
    """
    mode: list[Any] = [list(a) if isinstance(a, list) else a for a in attrs]
    input_flags = termios.BRKINT | termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON
    mode[0] &= ~(input_flags | termios.ISTRIP)
    mode[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
    mode[6][termios.VMIN] = 1
    mode[6][termios.VTIME] = 0
    return mode


def drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, OSError):
        pass


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT wait until the block is over (then their handlers run)."""
    held = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _HeldRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < MAX_HELD_RECORDS:
            self.records.append(record)


@contextmanager
def held_log_records() -> Iterator[None]:
    """Log records wait while curses owns the screen (stderr is often the same pty)."""
    root = loaded().getLogger()
    held = _HeldRecords()
    saved = root.handlers[:]
    root.handlers = [held]
    try:
        yield
    finally:
        root.handlers = saved
        for record in held.records:
            root.handle(record)


class Screen:
    """curses on the console's output: paints Canvases, follows the terminal's size."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.window: curses.window | None = None
        self.encoding = "ascii"
        #: Whether the terminal can hide its cursor (the vt100 cannot), and if it shows.
        self.can_hide = False
        self.cursor_shown = True

    def start(self) -> None:
        import curses

        try:
            curses.setupterm(os.environ.get("TERM", "unknown"), self.fd)
        except curses.error as e:
            raise ScreenUnavailable(str(e).strip() or "unknown terminal") from None
        if not curses.tigetstr("cup") or not curses.tigetstr("clear"):
            raise ScreenUnavailable(f"TERM={os.environ.get('TERM', '')} cannot address the cursor")
        try:
            with signals_held():
                self.window = curses.initscr()
            curses.noecho()
            curses.raw()
            self.encoding = self.window.encoding or "ascii"
            try:
                curses.curs_set(0)
                self.can_hide, self.cursor_shown = True, False
            except curses.error:
                # The vt100 cannot hide its cursor: it is parked in a corner instead.
                pass
            self.resize()
        except BaseException as e:
            # Whatever stopped the start (a signal included), curses is ended again.
            started = self.window is not None
            self.__exit__(None, None, None)
            if isinstance(e, curses.error) and not started:
                raise ScreenUnavailable(str(e)) from None
            raise

    def __enter__(self) -> Screen:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        import curses

        with signals_held():
            if self.window is not None and not curses.isendwin():
                try:
                    if self.can_hide:
                        curses.curs_set(1)
                    self.window.erase()
                    self.window.refresh()
                except curses.error:
                    pass
                curses.endwin()
            self.window = None

    def size(self) -> tuple[int, int]:
        assert self.window is not None
        return self.window.getmaxyx()

    def resize(self) -> None:
        """Follow the terminal's new size (after SIGWINCH)."""
        import curses

        assert self.window is not None
        try:
            cols, rows = os.get_terminal_size(self.fd)
        except OSError:
            return
        if rows > 0 and cols > 0 and (rows, cols) != self.window.getmaxyx():
            curses.resizeterm(rows, cols)
        self.window.clear()

    def paint(self, canvas: Canvas) -> None:
        import curses

        window = self.window
        assert window is not None
        window.erase()
        rows, cols = window.getmaxyx()
        for y, row in enumerate(canvas.grid[:rows]):
            # The bottom-right cell is never written: curses would scroll the screen.
            width = cols - 1 if y == rows - 1 else cols
            cells = row[:width]
            if cells and width < len(row) and row[width][0] == "":
                # Half a wide character would spill into the cell left alone.
                cells[-1] = (" ", cells[-1][1])
            for x, text, attr in runs(cells):
                try:
                    window.addstr(y, x, text, curses.A_REVERSE if attr == REVERSE else 0)
                except curses.error:
                    pass
        visible = canvas.cursor is not None
        y, x = canvas.cursor if canvas.cursor is not None else (rows - 1, 0)
        try:
            if self.can_hide and visible != self.cursor_shown:
                curses.curs_set(1 if visible else 0)
                self.cursor_shown = visible
            window.move(min(max(y, 0), rows - 1), min(max(x, 0), cols - 1))
        except curses.error:
            pass
        window.refresh()


def runs(row: list[tuple[str, int]]) -> Iterator[tuple[int, str, int]]:
    """(x, text, attribute) for each stretch of cells that share an attribute."""
    start, attr = 0, None
    parts: list[str] = []
    for x, (text, cell_attr) in enumerate(row):
        if cell_attr != attr:
            if parts:
                yield start, "".join(parts), attr  # type: ignore[misc]
            start, parts, attr = x, [], cell_attr
        parts.append(text)
    if parts:
        yield start, "".join(parts), attr  # type: ignore[misc]
