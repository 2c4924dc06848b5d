"""What the menu does, without a terminal: keys in, a screen (Canvas) out, and the choice.

A stack of views: the menu (one per open submenu), the entry editor, the line editor,
the command line and the password prompt. Keys go to the top view; the terminal layer
draws the top view and feeds it keys and the time. Keeping this free of curses is what
lets tests drive every key at the unit level and fuzz it.

Behaviour follows GRUB's text menu (grub-core/normal/menu_text.c, menu_entry.c) and
the keys people know from Xen's pygrub.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .. import __version__
from .._typing import Protocol
from ..config.model import BootEntry, BootItem, BootMenu, Submenu
from ..errors import PygrubError
from ..record import record
from ..select import Chosen, choose
from . import keys
from .entries import editable_lines, evaluate_lines, kernel_line
from .lineedit import ACCEPTED, CANCELLED, LineEditor
from .password import check_password
from .text import REVERSE, Canvas, title_cells, wrap

#: Says why an entry cannot boot here, or None (boot.why_not_bootable).
WhyNot = Callable[[BootEntry], "str | None"]

HEADING = f"pygrub  version {__version__}"
#: Lines a person may add in the entry editor and at the command line.
MAX_ADDED_LINES = 1000
#: Rows the entry list keeps before the help text gives way on a small terminal.
MIN_LIST_ROWS = 3
HELP_INDENT = 4
STATUS_INDENT = 3

UP_KEYS = (keys.UP, keys.ctrl("p"), "k", "^")
DOWN_KEYS = (keys.DOWN, keys.ctrl("n"), "j")
BOOT_KEYS = (keys.ctrl("x"), keys.F10)

MENU_HELP = (
    "Use the ^ and v keys to select which entry is highlighted.",
    "Press enter to boot the selected OS, `e' to edit the commands before",
    "booting, `a' to change the kernel arguments or `c' for a command line.",
)
LOCKED_HELP = (
    "Use the ^ and v keys to select which entry is highlighted.",
    "Press enter to boot the selected OS or `p' to enter a password to",
    "unlock the next set of features.",
)
SUBMENU_HELP = "Press ESC to return to the previous menu."
EDITOR_HELP = (
    "Use the ^ and v keys to select a line; `e' or enter edits it, `o' opens a",
    "new line after it (`O' before it), `d' deletes it, `c' opens a command line.",
    "Press `b', Ctrl-X or F10 to boot the edited entry, ESC to discard the edits.",
)
LINE_HELP = (
    "[ Minimal BASH-like line editing is supported. ESC at any time cancels.",
    "  ENTER at any time accepts your changes. ]",
)
COMMAND_HELP = (
    "[ Minimal BASH-like line editing is supported. ESC at any time exits.",
    "  Typing `boot' will boot with your entered commands. ]",
)
COMMAND_PROMPT = "grub> "
COMMAND_TITLE = "command line"
#: Words that leave the command line, as in Xen's pygrub.
COMMAND_EXITS = ("quit", "return")


#: What a person's pick says for --explain (the countdown's says how the rules chose).
PICKED = ("picked on the menu",)


class View(Protocol):
    def press(self, key: str) -> None: ...

    def draw(self, canvas: Canvas) -> None: ...


class MenuApp:
    """The menu's state: the view stack, the countdown, the password, the choice."""

    def __init__(self, menu: BootMenu, why_not: WhyNot, wait: float | None, now: float) -> None:
        self.menu = menu
        self.why_not = why_not
        self.unlocked = menu.password is None
        self.deadline = None if wait is None else now + wait
        self.now = now
        self.message = ""
        #: The entry to boot, possibly edited, and its path in the menu (() when typed).
        self.result: Chosen | None = None
        first = menu.default[0] if menu.default and 0 <= menu.default[0] < len(menu.items) else 0
        self.views: list[View] = [MenuView(self, menu.items, (), None, first)]

    # Time ------------------------------------------------------------------------

    def seconds_left(self) -> int | None:
        """Whole seconds the countdown shows, or None when it has stopped."""
        if self.deadline is None:
            return None
        return max(math.ceil(self.deadline - self.now), 0)

    def next_tick(self) -> float | None:
        """Seconds until the countdown's number changes (or it expires), or None."""
        if self.deadline is None:
            return None
        left = self.deadline - self.now
        if left <= 0:
            return 0.0
        return left - (math.ceil(left) - 1)

    def tick(self, now: float) -> None:
        """The clock moved on; boot the default when the countdown has run out.

        Raises NotFoundError when neither the default nor a fallback can boot, as an
        unattended run does.
        """
        self.now = now
        if self.deadline is not None and now >= self.deadline and self.result is None:
            self.result = choose(self.menu, None, self.why_not)

    def feed(self, typed: list[str], hung_up: bool, now: float) -> Chosen | None:
        """The keys typed since the last call, whether the console has hung up, and the
        time: the choice once there is one (the keys after it are not pressed)."""
        for key in typed:
            self.press(key)
            if self.result is not None:
                return self.result
        if hung_up:
            # Nobody can type any more: boot the default now.
            self.deadline = now
        self.tick(now)
        return self.result

    # Keys ------------------------------------------------------------------------

    def press(self, key: str) -> None:
        # Any key stops the countdown, and the last message has been read.
        self.deadline = None
        self.message = ""
        self.views[-1].press(key)

    def push(self, view: View) -> None:
        self.views.append(view)

    def pop(self, view: View) -> None:
        if self.views and self.views[-1] is view and len(self.views) > 1:
            self.views.pop()

    def draw(self, rows: int, cols: int, encoding: str) -> Canvas:
        canvas = Canvas(max(rows, 0), max(cols, 0), encoding)
        self.views[-1].draw(canvas)
        return canvas

    # Actions shared by the views -------------------------------------------------

    def needs_password(self) -> bool:
        return not self.unlocked

    def password_accepted(self) -> None:
        self.message = "Password accepted."

    def with_password(self, then: Callable[[], None]) -> None:
        """Run ``then`` now if the menu is unlocked, else once the password is given."""
        if self.unlocked:
            then()
        else:
            self.push(PasswordView(self, self.views[-1], then))

    def unlock(self, locked: bool, then: Callable[[], None]) -> None:
        """Run ``then``; first ask for the password when the item is ``locked``."""
        if not locked:
            then()
        elif self.menu.password is None:
            # GRUB 2 superusers without a password: nobody can open this.
            self.message = "error: locked, and the config sets no password that unlocks it"
        else:
            self.with_password(then)

    def boot(
        self, path: tuple[int, ...], entry: BootEntry, original: BootEntry | None = None
    ) -> None:
        """Choose ``entry`` if it can boot here, else say why (the person stays).

        An edited entry stays as locked as the ``original`` it was made from.
        """

        def go() -> None:
            reason = self.why_not(entry)
            if reason:
                self.message = f"error: cannot boot {entry.title[:60]!r}: {reason}"
            else:
                self.result = Chosen(path, entry, PICKED)

        self.unlock(entry.locked or (original is not None and original.locked), go)


# The menu ----------------------------------------------------------------------------


@record
class Frame:
    """Where a list screen's parts go: heading, boxed list, help, status (None: left out)."""

    title_row: int | None
    box_top: int | None
    list_top: int
    list_rows: int
    box_bottom: int | None
    help_top: int | None
    status_top: int | None
    status_rows: int
    inner_x: int
    inner_width: int


#: Parts of a list screen a small terminal drops first, first dropped first.
_DROP_ORDER = ("footer", "pads", "gap", "help", "title", "borders")


def frame(rows: int, cols: int, help_count: int) -> Frame:
    """The layout of a list screen on ``rows`` x ``cols``, parts dropped as it shrinks."""
    sizes = {
        "footer": 2,
        "pads": 2,
        "gap": 1,
        "help": help_count,
        "title": 1,
        "borders": 2,
        "status": 1,
    }
    for name in _DROP_ORDER:
        if rows - sum(sizes.values()) >= MIN_LIST_ROWS:
            break
        sizes[name] = 0
    list_rows = rows - sum(sizes.values())
    if list_rows < 1:
        sizes["status"] = 0
        list_rows = max(rows, 0)
    y = 0
    title_row = box_top = box_bottom = help_top = status_top = None
    if sizes["pads"]:
        y += 1
    if sizes["title"]:
        title_row, y = y, y + 1
    if sizes["pads"]:
        y += 1
    if sizes["borders"]:
        box_top, y = y, y + 1
    list_top, y = y, y + list_rows
    if sizes["borders"]:
        box_bottom, y = y, y + 1
    y += sizes["gap"]
    if sizes["help"]:
        help_top, y = y, y + sizes["help"]
    if sizes["status"]:
        status_top = y
    sides = bool(sizes["borders"]) and cols >= 12
    return Frame(
        title_row,
        box_top,
        list_top,
        list_rows,
        box_bottom,
        help_top,
        status_top,
        sizes["status"] + sizes["footer"],
        2 if sides else 0,
        cols - 4 if sides else cols,
    )


def draw_frame(canvas: Canvas, f: Frame, label: str, help_lines: tuple[str, ...]) -> None:
    """Heading, box (with ``label`` in its top border) and help text."""
    cols = canvas.cols
    if f.title_row is not None:
        canvas.center(f.title_row, HEADING)
    if f.box_top is not None and f.box_bottom is not None:
        left, right = (1, cols - 2) if f.inner_x else (0, cols - 1)
        edge = "+" if f.inner_x else "-"
        for y in (f.box_top, f.box_bottom):
            canvas.put(y, left, edge + "-" * max(right - left - 1, 0) + edge)
        if f.inner_x:
            for y in range(f.list_top, f.list_top + f.list_rows):
                canvas.put(y, left, "|")
                canvas.put(y, right, "|")
        if label and f.inner_width > 6:
            items = title_cells(label, canvas.encoding)
            space = min(sum(w for _t, w in items), f.inner_width - 6)
            canvas.put(f.box_top, left + 2, " ")
            canvas.put_cut(f.box_top, left + 3, items, space)
            canvas.put(f.box_top, left + 3 + space, " ")
    if f.help_top is not None:
        x = HELP_INDENT if cols >= 60 else 0
        for offset, line in enumerate(help_lines):
            canvas.put_cut(f.help_top + offset, x, title_cells(line, "ascii"), cols - x)


def draw_status(canvas: Canvas, f: Frame, text: str) -> None:
    """The countdown or a message, wrapped over the status rows; what does not fit is cut."""
    if f.status_top is None or not text:
        return
    space = canvas.cols - STATUS_INDENT if canvas.cols > 20 else canvas.cols
    lines = wrap(text, space)
    if len(lines) > f.status_rows:
        lines[f.status_rows - 1 :] = [" ".join(lines[f.status_rows - 1 :])]
    for offset, line in enumerate(lines):
        canvas.put_cut(
            f.status_top + offset, canvas.cols - space, title_cells(line, canvas.encoding), space
        )


def scroll_to(top: int, selected: int, visible: int, count: int) -> int:
    """The first row to show so ``selected`` is visible."""
    visible = max(visible, 1)
    if selected < top:
        top = selected
    elif selected >= top + visible:
        top = selected - visible + 1
    return max(min(top, count - visible), 0)


def draw_list(
    canvas: Canvas, f: Frame, rows: list[tuple[str, bool]], selected: int, top: int
) -> None:
    """List rows (text, whether it opens a submenu), the selected one highlighted."""
    space = f.inner_width
    for offset in range(f.list_rows):
        index = top + offset
        if index >= len(rows) or space < 1:
            break
        text, opens = rows[index]
        y = f.list_top + offset
        attr = REVERSE if index == selected else 0
        canvas.put(y, f.inner_x, "*" if index == selected else " ", attr)
        tail = 2 if opens and space >= 6 else 0
        canvas.put_cut(y, f.inner_x + 1, title_cells(text, canvas.encoding), space - 1 - tail, attr)
        if tail:
            canvas.put(y, f.inner_x + space - tail, " >", attr)
    # Arrows in the border say that the list goes on above or below.
    arrow_x = f.inner_x + space - 2
    if top > 0 and f.box_top is not None:
        canvas.put(f.box_top, arrow_x, "^")
    if top + f.list_rows < len(rows) and f.box_bottom is not None:
        canvas.put(f.box_bottom, arrow_x, "v")


def move(key: str, selected: int, count: int, page: int) -> int:
    """The selection after a movement key (unchanged for other keys)."""
    if count <= 0:
        return 0
    if key in UP_KEYS:
        selected -= 1
    elif key in DOWN_KEYS:
        selected += 1
    elif key == keys.PAGE_UP:
        selected -= max(page, 1)
    elif key == keys.PAGE_DOWN:
        selected += max(page, 1)
    elif key == keys.HOME:
        selected = 0
    elif key == keys.END:
        selected = count - 1
    return min(max(selected, 0), count - 1)


class MenuView:
    """One level of the menu: the top level, or an open submenu."""

    def __init__(
        self,
        app: MenuApp,
        items: list[BootItem],
        path: tuple[int, ...],
        title: str | None,
        selected: int,
    ) -> None:
        self.app = app
        self.items = items
        self.path = path
        self.title = title
        self.selected = selected if 0 <= selected < len(items) else 0
        self.top = 0
        self.page = 1

    def press(self, key: str) -> None:
        app = self.app
        self.selected = move(key, self.selected, len(self.items), self.page)
        if key in (keys.ENTER, keys.RIGHT, "b") + BOOT_KEYS:
            self.activate()
        elif key in (keys.ESC, keys.LEFT):
            app.pop(self)
        elif key == "p" and app.menu.password is not None and not app.unlocked:
            app.with_password(app.password_accepted)
        elif key == "e":
            app.with_password(self.edit)
        elif key == "a":
            app.with_password(self.edit_arguments)
        elif key in ("c", keys.F2):
            app.with_password(lambda: app.push(CommandLineView(app)))

    def current(self) -> BootItem | None:
        return self.items[self.selected] if self.items else None

    def activate(self) -> None:
        item = self.current()
        path = self.path + (self.selected,)
        if isinstance(item, Submenu):
            self.app.unlock(item.locked, lambda: self.open(item, path))
        elif item is not None:
            self.app.boot(path, item)

    def open(self, submenu: Submenu, path: tuple[int, ...]) -> None:
        default = self.app.menu.default
        # The default's path names the entry highlighted inside the submenu too.
        inner = (
            default[len(path)] if default[: len(path)] == path and len(default) > len(path) else 0
        )
        self.app.push(MenuView(self.app, submenu.items, path, submenu.title, inner))

    def edit(self) -> None:
        item = self.current()
        if isinstance(item, BootEntry):
            self.app.push(EditorView(self.app, self.path + (self.selected,), item))
        elif item is not None:
            self.app.message = "A submenu has no commands to edit: open it with enter."

    def edit_arguments(self) -> None:
        item = self.current()
        if not isinstance(item, BootEntry):
            return
        app = self.app
        lines = editable_lines(app.menu, item)
        index = kernel_line(app.menu, lines)
        if index is None:
            app.message = f"{item.title[:60]!r} has no kernel line to edit."
            return
        path = self.path + (self.selected,)

        def accepted(text: str) -> None:
            edited = lines[:index] + [text] + lines[index + 1 :]
            app.boot(path, evaluate_lines(app.menu, item.title, edited, item), item)

        app.push(LineView(app, LineEditor(lines[index]), accepted))

    def draw(self, canvas: Canvas) -> None:
        app = self.app
        help_lines: tuple[str, ...] = LOCKED_HELP if app.needs_password() else MENU_HELP
        if self.path:
            help_lines = help_lines + (SUBMENU_HELP,)
        f = frame(canvas.rows, canvas.cols, len(help_lines))
        self.page = f.list_rows
        self.top = scroll_to(self.top, self.selected, f.list_rows, len(self.items))
        draw_frame(canvas, f, self.title or "", help_lines)
        rows = [(item.title, isinstance(item, Submenu)) for item in self.items]
        draw_list(canvas, f, rows, self.selected, self.top)
        left = app.seconds_left()
        status = app.message
        if not status and left is not None:
            status = f"The highlighted entry will be executed automatically in {left}s."
        draw_status(canvas, f, status)


# The entry editor --------------------------------------------------------------------


class EditorView:
    """An entry's lines: pick one and edit it, open or delete lines, boot the result."""

    def __init__(self, app: MenuApp, path: tuple[int, ...], entry: BootEntry) -> None:
        self.app = app
        self.path = path
        self.entry = entry
        self.lines = editable_lines(app.menu, entry)
        self.limit = len(self.lines) + MAX_ADDED_LINES
        self.selected = 0
        self.top = 0
        self.page = 1

    def press(self, key: str) -> None:
        app = self.app
        self.selected = move(key, self.selected, len(self.lines), self.page)
        if key in ("e", keys.ENTER) and self.lines:
            self.edit(self.selected, opened=False)
        elif key in ("o", "O", keys.ctrl("o")):
            self.open_line(self.selected + (0 if key == "O" or not self.lines else 1))
        elif key == "d" and self.lines:
            del self.lines[self.selected]
            self.selected = min(self.selected, max(len(self.lines) - 1, 0))
        elif key in ("b",) + BOOT_KEYS:
            entry = evaluate_lines(app.menu, self.entry.title, self.lines, self.entry)
            app.boot(self.path, entry, self.entry)
        elif key in ("c", keys.F2):
            app.push(CommandLineView(app))
        elif key == keys.ESC:
            app.pop(self)

    def open_line(self, index: int) -> None:
        if len(self.lines) >= self.limit:
            self.app.message = f"error: an entry may have {self.limit} lines"
            return
        self.lines.insert(index, "")
        self.selected = index
        self.edit(index, opened=True)

    def edit(self, index: int, opened: bool) -> None:
        def accepted(text: str) -> None:
            self.lines[index] = text

        def cancelled() -> None:
            # A line opened and then abandoned is not kept.
            if opened and not self.lines[index]:
                del self.lines[index]
                self.selected = min(index, max(len(self.lines) - 1, 0))

        self.app.push(LineView(self.app, LineEditor(self.lines[index]), accepted, cancelled))

    def draw(self, canvas: Canvas) -> None:
        f = frame(canvas.rows, canvas.cols, len(EDITOR_HELP))
        self.page = f.list_rows
        self.top = scroll_to(self.top, self.selected, f.list_rows, len(self.lines))
        draw_frame(canvas, f, self.entry.title, EDITOR_HELP)
        draw_list(canvas, f, [(line, False) for line in self.lines], self.selected, self.top)
        draw_status(canvas, f, self.app.message)


# One line, the command line, the password --------------------------------------------


class LineView:
    """A whole screen for editing one line; Enter hands the text on, Esc cancels."""

    def __init__(
        self,
        app: MenuApp,
        editor: LineEditor,
        accepted: Callable[[str], None],
        cancelled: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.editor = editor
        self.accepted = accepted
        self.cancelled = cancelled

    def press(self, key: str) -> None:
        self.editor.press(key)
        if self.editor.state == ACCEPTED:
            self.app.pop(self)
            self.accepted(self.editor.text)
        elif self.editor.state == CANCELLED:
            self.app.pop(self)
            if self.cancelled is not None:
                self.cancelled()

    def draw(self, canvas: Canvas) -> None:
        y = draw_header(canvas, LINE_HELP)
        canvas.put(y, 0, "> ")
        self.editor.draw(canvas, y, 2, canvas.cols - 2)
        draw_message(canvas, y + 2, self.app.message)


def draw_header(canvas: Canvas, lines: tuple[str, ...]) -> int:
    """Help lines at the top when there is room; the row where editing goes."""
    if canvas.rows < 6:
        return 0
    for offset, line in enumerate(lines):
        canvas.put_cut(1 + offset, 2, title_cells(line, "ascii"), canvas.cols - 2)
    return len(lines) + 2


def draw_message(canvas: Canvas, y: int, text: str) -> None:
    for offset, line in enumerate(wrap(text, canvas.cols)):
        if y + offset < canvas.rows:
            canvas.put_cut(y + offset, 0, title_cells(line, canvas.encoding), canvas.cols)


class CommandLineView:
    """GRUB's command line: typed lines make an entry body; ``boot`` boots it."""

    def __init__(self, app: MenuApp) -> None:
        self.app = app
        self.body: list[str] = []
        self.editor = LineEditor()

    def press(self, key: str) -> None:
        app = self.app
        self.editor.press(key)
        if self.editor.state == CANCELLED:
            app.pop(self)
            return
        if self.editor.state != ACCEPTED:
            return
        text = self.editor.text
        self.editor = LineEditor()
        command = text.strip()
        if command == "boot":
            app.boot((), evaluate_lines(app.menu, COMMAND_TITLE, self.body, None))
        elif command in COMMAND_EXITS:
            app.pop(self)
        elif not command:
            return
        elif len(self.body) >= MAX_ADDED_LINES:
            app.message = f"error: at most {MAX_ADDED_LINES} commands before boot"
        else:
            self.body.append(text)

    def draw(self, canvas: Canvas) -> None:
        top = draw_header(canvas, COMMAND_HELP)
        message = wrap(self.app.message, canvas.cols)[:2]
        bottom = max(canvas.rows - len(message), top + 1)
        space = bottom - top
        shown = self.body[-(space - 1) :] if space > 1 else []
        y = top
        for line in shown:
            canvas.put_cut(y, 0, title_cells(COMMAND_PROMPT + line, canvas.encoding), canvas.cols)
            y += 1
        canvas.put(y, 0, COMMAND_PROMPT)
        self.editor.draw(canvas, y, len(COMMAND_PROMPT), canvas.cols - len(COMMAND_PROMPT))
        draw_message(canvas, y + 1, self.app.message)


class PasswordView:
    """Asks for the user name (GRUB 2 superusers) and the password, over the screen below."""

    def __init__(self, app: MenuApp, below: View, then: Callable[[], None]) -> None:
        self.app = app
        self.below = below
        self.then = then
        password = app.menu.password
        self.asks_user = bool(password is not None and password.users)
        self.user: str | None = None
        self.editor = LineEditor(masked=not self.asks_user)

    def press(self, key: str) -> None:
        app = self.app
        self.editor.press(key)
        if self.editor.state == CANCELLED:
            app.pop(self)
        elif self.editor.state == ACCEPTED:
            if self.asks_user and self.user is None:
                self.user = self.editor.text
                self.editor = LineEditor(masked=True)
                return
            app.pop(self)
            if self.accepts(self.editor.text):
                app.unlocked = True
                self.then()

    def accepts(self, typed: str) -> bool:
        app = self.app
        assert app.menu.password is not None
        try:
            if check_password(app.menu.password, typed, self.user):
                return True
            app.message = "error: access denied."
        except PygrubError as e:
            app.message = f"error: the config's password cannot be checked: {e}"
        return False

    def draw(self, canvas: Canvas) -> None:
        self.below.draw(canvas)
        if canvas.rows < 1:
            return
        y = canvas.rows - 1
        prompt = "Enter username: " if self.asks_user and self.user is None else "Password: "
        canvas.fill(y, 0, canvas.cols)
        canvas.put(y, 0, prompt)
        if canvas.cols - len(prompt) >= 3:
            self.editor.draw(canvas, y, len(prompt), canvas.cols - len(prompt))
