"""The console menu's parts without a terminal: keys, line editor, text, passwords, views.

The whole program on a pty is tested in test_menu_console.py; here each part is driven
directly (submenus from a BootMenu built in the test, every key, every size) and fuzzed
with hostile menus and key storms.
"""

from __future__ import annotations

import os
import subprocess
import sys
from unittest import mock

import pytest
from bounded import cpu_bounded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import run

from pygrub.config.model import LINUX, OTHER, BootEntry, BootMenu, Password, Submenu
from pygrub.errors import CorruptError, LimitError, NotFoundError, PygrubError, UnsupportedError
from pygrub.menu import keys, password, unattended_wait
from pygrub.menu.app import MenuApp, frame
from pygrub.menu.entries import evaluate_lines, kernel_line, plain_entry, plain_lines
from pygrub.menu.keys import KeyDecoder
from pygrub.menu.lineedit import ACCEPTED, CANCELLED, MAX_TYPED_LINE, LineEditor
from pygrub.menu.password import check_password, md5_crypt
from pygrub.menu.remote import (
    Channel,
    Drawing,
    MenuProtocolError,
    canvas_of,
    drawing_budget,
    drawing_of,
)
from pygrub.menu.text import Canvas, cell
from pygrub.select import Chosen
from pygrub.settings import menu_max_wait

# Keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"\x1b[A\x1b[B\x1b[C\x1b[D", [keys.UP, keys.DOWN, keys.RIGHT, keys.LEFT]),
        (b"\x1bOA\x1bOB\x1bOC\x1bOD", [keys.UP, keys.DOWN, keys.RIGHT, keys.LEFT]),
        (b"\x1b[1;5A", [keys.UP]),
        (b"\x1b[H\x1b[1~\x1b[7~\x1bOH", [keys.HOME] * 4),
        (b"\x1b[F\x1b[4~\x1b[8~\x1bOF", [keys.END] * 4),
        (b"\x1b[5~\x1b[6~", [keys.PAGE_UP, keys.PAGE_DOWN]),
        (b"\x1b[3~\x1b[2~", [keys.DELETE, keys.INSERT]),
        (b"\x1b[21~\x1b[12~\x1b[14~\x1bOS\x1b[[D", [keys.F10, keys.F2, keys.F4, keys.F4, keys.F4]),
        (b"\r\n\r\n", [keys.ENTER, keys.ENTER]),
        (b"\n\r", [keys.ENTER, keys.ENTER]),
        (b"\x7f\x08\t", [keys.BACKSPACE, keys.BACKSPACE, keys.TAB]),
        (b"\x18\x01a", ["\x18", "\x01", "a"]),
        ("é日".encode(), ["é", "日"]),
        (b"\xff\xc3(", ["("]),
        (b"\x1bx", [keys.ESC, "x"]),
        (b"\x1b[99~\x1b[?1;2c", []),
        (b"\x1b[" + b"1" * 40 + b"A", ["1"] * 9 + ["A"]),
    ],
)
def test_key_sequences(data, expected):
    decoder = KeyDecoder()
    assert decoder.feed(data) + decoder.flush() == expected


def test_a_lone_escape_waits_for_the_rest_then_is_the_escape_key():
    decoder = KeyDecoder()
    assert decoder.feed(b"\x1b") == [] and decoder.pending
    assert decoder.feed(b"[") == []
    assert decoder.feed(b"B") == [keys.DOWN]
    assert decoder.feed(b"\x1b") == []
    assert decoder.flush() == [keys.ESC] and not decoder.pending


def test_utf8_split_across_reads():
    decoder = KeyDecoder()
    data = "ü€𝄞".encode()
    found = [k for i in range(len(data)) for k in decoder.feed(data[i : i + 1])]
    assert found == ["ü", "€", "𝄞"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(1, 50), max_size=20))
def test_decoding_does_not_depend_on_how_input_is_cut(data, cuts):
    whole = KeyDecoder()
    expected = whole.feed(data) + whole.flush()
    pieces = KeyDecoder()
    found, start = [], 0
    for size in cuts + [len(data)]:
        found += pieces.feed(data[start : start + size])
        start += size
    found += pieces.flush()
    assert found == expected
    assert all(isinstance(k, str) and (len(k) == 1 or k.startswith("<")) for k in found)


# The line editor ------------------------------------------------------------------------


def edit(text: str, *pressed: str, pos: int = -1) -> LineEditor:
    editor = LineEditor(text, pos=pos)
    for key in pressed:
        editor.press(key)
    return editor


def test_line_editor_keys():
    assert edit("kernel", keys.HOME, "x").text == "xkernel"
    assert edit("kernel", keys.ctrl("a"), keys.ctrl("f"), keys.ctrl("d")).text == "krnel"
    assert edit("kernel", keys.LEFT, keys.LEFT, keys.ctrl("k")).text == "kern"
    assert edit("kernel", keys.LEFT, keys.ctrl("u")).text == "l"
    assert edit("kernel", keys.BACKSPACE, keys.ctrl("b"), keys.DELETE).text == "kern"
    assert edit("ab", keys.HOME, keys.BACKSPACE, keys.END, keys.DELETE).text == "ab"
    assert edit("ab", keys.ctrl("a"), keys.ctrl("e"), "c").text == "abc"
    assert edit("ab", keys.TAB, "\x07", "\u202e").text == "ab"
    assert edit("a", keys.ENTER).state == ACCEPTED
    assert edit("a", keys.ESC).state == CANCELLED


def test_line_editor_bounds_what_is_typed():
    editor = edit("x" * 10)
    for _ in range(MAX_TYPED_LINE + 5):
        editor.press("y")
    assert len(editor.text) == 10 + MAX_TYPED_LINE


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=300),
    st.integers(0, 400),
    st.integers(3, 100),
    st.lists(st.sampled_from([keys.LEFT, keys.RIGHT, keys.HOME, keys.END, "a", "日"]), max_size=30),
)
def test_the_cursor_stays_inside_the_window(text, pos, space, pressed):
    editor = edit(text, *pressed, pos=min(pos, len(text)))
    canvas = Canvas(3, space + 4, "utf-8")
    editor.draw(canvas, 1, 2, space)
    assert canvas.cursor is not None
    y, x = canvas.cursor
    assert y == 1 and 2 <= x < 2 + space
    assert all(len(row) == space + 4 for row in canvas.grid)


# Text on the console ----------------------------------------------------------------


@pytest.mark.parametrize(
    "ch, encoding, shown",
    [
        ("a", "ascii", ("a", 1)),
        ("\x1b", "utf-8", ("?", 1)),
        ("\x9b", "utf-8", ("?", 1)),
        ("\u202e", "utf-8", ("?", 1)),
        ("\u0301", "utf-8", ("?", 1)),
        ("\udcff", "utf-8", ("?", 1)),
        ("\t", "ascii", (" ", 1)),
        ("é", "utf-8", ("é", 1)),
        ("é", "ascii", ("e", 1)),
        ("é", "latin-1", ("é", 1)),
        ("ﬁ", "ascii", ("fi", 2)),
        ("日", "utf-8", ("日", 2)),
        ("日", "ascii", ("?", 1)),
        ("😀", "utf-8", ("😀", 2)),
        ("x", "no-such-codec", ("x", 1)),
        ("é", "no-such-codec", ("e", 1)),
    ],
)
def test_cells(ch, encoding, shown):
    assert cell(ch, encoding) == shown


def test_canvas_clips_everything():
    canvas = Canvas(2, 5, "utf-8")
    canvas.put(-1, 0, "x")
    canvas.put(0, -2, "abcdefgh")
    canvas.put(1, 3, "日日")
    assert canvas.text_rows() == ["cdefg", "   日"]
    canvas.put_cut(1, 0, [("日", 2)] * 3, 4)
    assert canvas.text_rows()[1] == "日 … "
    canvas.put(1, 1, "x")
    assert canvas.text_rows()[1] == " x … "


# Passwords ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret, salt", [("secret", "abcdefgh"), ("", "xy"), ("a" * 40, "12345678"), ("pä$$", "s")]
)
def test_md5_crypt_matches_openssl(secret, salt):
    expected = run("openssl", "passwd", "-1", "-salt", salt, secret).decode().strip()
    assert md5_crypt(secret.encode(), salt.encode()) == expected
    stored = Password("md5", expected)
    assert check_password(stored, secret)
    assert not check_password(stored, secret + "x")


def grub_pbkdf2(secret: str, rounds: int = 1000) -> str:
    out = run(
        "grub-mkpasswd-pbkdf2",
        f"--iteration-count={rounds}",
        input=f"{secret}\n{secret}\n".encode(),
    )
    return out.decode().split("is ", 1)[1].split()[0]


def test_pbkdf2_matches_grub_mkpasswd_pbkdf2():
    stored = Password("pbkdf2", grub_pbkdf2("hunter2"), ("root", "admin"))
    assert check_password(stored, "hunter2", "admin")
    assert not check_password(stored, "hunter2", "guest")
    assert not check_password(stored, "hunter3", "root")
    assert check_password(Password("pbkdf2", stored.value.lower()), "hunter2")


def test_plain_password():
    assert check_password(Password("plain", "sésame"), "sésame")
    assert not check_password(Password("plain", "sésame"), "sesame")


@pytest.mark.parametrize(
    "stored, error",
    [
        (Password("unsupported", "x"), UnsupportedError),
        (Password("md5", "$1$salt"), CorruptError),
        (Password("pbkdf2", "grub.pbkdf2.sha256.10.AA.BB"), UnsupportedError),
        (Password("pbkdf2", "grub.pbkdf2.sha512.10.AZ.BB"), CorruptError),
        (Password("pbkdf2", "grub.pbkdf2.sha512.0.AA.BB"), CorruptError),
        (Password("pbkdf2", "grub.pbkdf2.sha512.999999999999.AA.BB"), LimitError),
        (Password("pbkdf2", "grub.pbkdf2.sha512.100000." + "AA" * 2000 + ".BB"), LimitError),
        (Password("plain", "x" * 5000), LimitError),
    ],
)
def test_passwords_that_cannot_be_checked(stored, error):
    with cpu_bounded(1), pytest.raises(error):
        check_password(stored, "x")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["plain", "md5", "pbkdf2", "weird"]), st.text(max_size=120), st.text())
def test_any_stored_password_is_checked_or_refused(kind, stored, typed):
    prefix = {"md5": "$1$", "pbkdf2": "grub.pbkdf2.sha512.1"}.get(kind, "")
    # Keep each check cheap: the bound itself is what is under test, not SHA-512.
    with mock.patch.object(password, "MAX_PBKDF2_WORK", 20_000):
        try:
            assert check_password(Password(kind, prefix + stored), typed) in (True, False)
        except PygrubError:
            pass


# Entries from edited lines ----------------------------------------------------------


def test_plain_lines_round_trip():
    entry = BootEntry("x", "/k", ["/i1", "/i 2"], "root=/dev/xvda ro", id="x1", device="hd0,2")
    menu = BootMenu([entry], "extlinux")
    lines = plain_lines(entry)
    assert lines == ["kernel /k", "initrd /i1", "initrd /i 2", "args root=/dev/xvda ro"]
    assert kernel_line(menu, lines) == 3
    again = evaluate_lines(menu, "x", lines, entry)
    assert (again.kernel, again.initrds, again.args, again.device, again.id) == (
        "/k",
        ["/i1", "/i 2"],
        "root=/dev/xvda ro",
        "hd0,2",
        "x1",
    )


@pytest.mark.parametrize(
    "lines, reason",
    [
        (["initrd /i"], "no kernel line"),
        (["linux"], "line 1: linux names no file"),
        (["kernel /k", "chainloader +1"], "line 2: unknown command 'chainloader'"),
    ],
)
def test_plain_lines_that_cannot_boot(lines, reason):
    assert plain_entry("t", lines, None).not_bootable == reason


def test_a_loader_error_while_evaluating_is_a_reason_not_a_crash():
    def evaluate(title: str, lines: list[str]) -> BootEntry:
        raise LimitError("script too long")

    menu = BootMenu([BootEntry("x")], "grub2", evaluate=evaluate)
    entry = evaluate_lines(menu, "x", ["linux /k"], None)
    assert entry.not_bootable == "script too long" and entry.kind == OTHER


# The views ------------------------------------------------------------------------------


def why_not(entry: BootEntry) -> str | None:
    if entry.not_bootable:
        return entry.not_bootable
    if entry.kind != LINUX or not entry.kernel:
        return "no kernel"
    return None


def sample_menu(**kw) -> BootMenu:
    items = [
        BootEntry("Debian", "/vmlinuz", ["/initrd"], "ro", lines=["linux /vmlinuz ro"]),
        Submenu(
            "Advanced",
            [
                BootEntry("Old", "/vmlinuz-old", [], "ro"),
                BootEntry("Recovery", "/vmlinuz-old", [], "ro single"),
                Submenu("Deeper", [BootEntry("Deepest", "/k", [], "deep")]),
            ],
        ),
        BootEntry("Broken", not_bootable="kernel not found"),
    ]
    return BootMenu(items, "test", **kw)


def press(app: MenuApp, *pressed: str, rows: int = 24, cols: int = 80) -> list[str]:
    for key in pressed:
        app.draw(rows, cols, "utf-8")
        app.press(key)
    return app.draw(rows, cols, "utf-8").text_rows()


def test_submenus_open_and_close():
    app = MenuApp(sample_menu(), why_not, 5, 0)
    screen = press(app, keys.DOWN, keys.RIGHT)
    assert "+- Advanced -" in screen[3] and "*Old" in screen[4]
    screen = press(app, keys.END, keys.ENTER)
    assert "+- Deeper -" in screen[3] and "*Deepest" in screen[4]
    screen = press(app, keys.ESC, keys.LEFT)
    assert "*Advanced" in screen[5] and "Press ESC to return" not in "\n".join(screen)
    press(app, keys.LEFT, keys.ESC)  # the top level stays
    press(app, keys.ENTER, keys.DOWN, "b")
    assert app.result == Chosen((1, 1), app.menu.items[1].items[1], ("picked on the menu",))


def test_the_default_path_highlights_inside_submenus():
    app = MenuApp(sample_menu(default=(1, 2, 0)), why_not, 5, 0)
    assert "*Advanced" in press(app)[5]
    assert "*Deeper" in press(app, keys.ENTER)[6]
    assert "*Deepest" in press(app, keys.ENTER)[4]
    press(app, keys.ENTER)
    assert app.result is not None and app.result.path == (1, 2, 0)


def test_paging_through_a_long_menu():
    menu = BootMenu([BootEntry(f"entry {n}", "/k") for n in range(40)], "test")
    app = MenuApp(menu, why_not, None, 0)
    visible = frame(24, 80, 3).list_rows
    press(app, keys.PAGE_DOWN, keys.PAGE_DOWN)
    assert app.views[-1].selected == 2 * visible
    screen = press(app, keys.END)
    assert "*entry 39" in "\n".join(screen) and "^" in screen[3] and "v" not in screen[16]
    press(app, keys.PAGE_UP, keys.ctrl("p"), "k", keys.UP)
    assert app.views[-1].selected == 39 - visible - 3
    screen = press(app, keys.HOME)
    assert "*entry 0" in screen[4] and screen[16].rstrip().endswith("v-+")


def test_the_countdown():
    app = MenuApp(sample_menu(), why_not, 3, 100.0)
    assert app.seconds_left() == 3 and app.next_tick() == 1.0
    app.tick(100.4)
    assert app.seconds_left() == 3 and app.next_tick() == pytest.approx(0.6)
    assert "executed automatically in 3s." in "\n".join(press(app))
    app.tick(102.5)
    assert app.seconds_left() == 1 and app.result is None
    app.tick(103.0)
    assert (app.result.path, app.result.entry) == ((0,), app.menu.items[0])
    assert app.result.trace[-1] == "default 0 'Debian' boots"


def test_the_countdown_falls_back_or_fails_like_an_unattended_run():
    app = MenuApp(sample_menu(default=(2,), fallback=[(1,)]), why_not, 1, 0)
    app.tick(1)
    assert app.result is not None and app.result.path == (1, 0)
    app = MenuApp(sample_menu(default=(2,)), why_not, 1, 0)
    with pytest.raises(NotFoundError):
        app.tick(1)


def test_any_key_stops_the_countdown():
    app = MenuApp(sample_menu(), why_not, 3, 0)
    press(app, "x")
    app.tick(10)
    assert app.result is None and app.seconds_left() is None


def test_an_entry_that_cannot_boot_says_why():
    app = MenuApp(sample_menu(), why_not, None, 0)
    screen = "\n".join(press(app, keys.END, keys.ENTER))
    assert "error: cannot boot 'Broken': kernel not found" in screen
    assert app.result is None


def test_edit_plain_fields_and_boot():
    app = MenuApp(sample_menu(), why_not, None, 0)
    screen = press(app, "e")
    assert [r[2:-2].strip() for r in screen[4:7]] == [
        "*kernel /vmlinuz",
        "initrd /initrd",
        "args ro",
    ]
    press(app, keys.DOWN, keys.DOWN, keys.ENTER, *" quiet", keys.ENTER, "o", *"initrd /i2")
    press(app, keys.ENTER, keys.ctrl("x"))
    assert app.result is not None
    assert (app.result.entry.args, app.result.entry.initrds) == ("ro quiet", ["/initrd", "/i2"])


def test_editor_open_and_abandon_a_line():
    app = MenuApp(sample_menu(), why_not, None, 0)
    press(app, "e", "O", keys.ESC)
    assert app.views[-1].lines == plain_lines(app.menu.items[0])
    press(app, "d", "d", "d", "d", "o", keys.ESC, keys.F10)
    assert "error: cannot boot 'Debian': no kernel line" in "\n".join(press(app))


def test_append_arguments_with_a():
    app = MenuApp(sample_menu(), why_not, None, 0)
    screen = press(app, "a")
    assert "> args ro" in screen[4]
    press(app, *" init=/bin/sh", keys.ENTER)
    assert app.result is not None and app.result.entry.args == "ro init=/bin/sh"


def test_a_without_a_kernel_line():
    menu = sample_menu(evaluate=lambda title, lines: BootEntry(title))
    app = MenuApp(menu, why_not, None, 0)
    assert "has no kernel line" in "\n".join(press(app, keys.END, "a"))


def test_command_line_with_the_plain_commands():
    app = MenuApp(sample_menu(), why_not, None, 0)
    for line in ("linux /vmlinuz-old root=/dev/xvda1", "", "initrd /i", "boot"):
        press(app, "c" if not app.views[1:] else keys.HOME, *line, keys.ENTER)
    assert app.result is not None
    assert app.result.path == ()
    entry = app.result.entry
    assert (entry.kernel, entry.initrds, entry.args) == ("/vmlinuz-old", ["/i"], "root=/dev/xvda1")


def test_command_line_uses_the_loaders_evaluation():
    seen = []

    def evaluate(title: str, lines: list[str]) -> BootEntry:
        seen.append((title, lines))
        return BootEntry(title, "/k", [], " ".join(lines))

    app = MenuApp(sample_menu(evaluate=evaluate), why_not, None, 0)
    press(app, "c", *"set a=1", keys.ENTER, *"linux /k $a", keys.ENTER, *"boot", keys.ENTER)
    assert seen == [("command line", ["set a=1", "linux /k $a"])]
    assert app.result is not None and app.result.entry.args == "set a=1 linux /k $a"


def test_a_password_guards_editing_but_not_booting():
    app = MenuApp(sample_menu(password=Password("plain", "pw")), why_not, None, 0)
    assert "`p' to enter a password" in "\n".join(press(app))
    screen = press(app, "e")
    assert screen[23].startswith("Password: ")
    screen = press(app, *"nope", keys.ENTER)
    assert "error: access denied." in "\n".join(screen)
    press(app, "c", *"pw")
    assert press(app)[23].startswith("Password: **")
    press(app, keys.ENTER)
    assert app.unlocked and type(app.views[-1]).__name__ == "CommandLineView"
    press(app, keys.ESC, keys.ENTER)
    assert app.result is not None and app.result.path == (0,)


def test_locked_entries_and_submenus_need_the_password():
    menu = sample_menu(password=Password("plain", "pw", ("root",)))
    menu.items[0].locked = True
    menu.items[1].locked = True
    app = MenuApp(menu, why_not, None, 0)
    screen = press(app, keys.ENTER)
    assert screen[23].startswith("Enter username: ")
    press(app, *"root", keys.ENTER, *"pw", keys.ENTER)
    assert app.result is not None and app.result.path == (0,)
    app = MenuApp(menu, why_not, None, 0)
    press(app, keys.DOWN, keys.ENTER, *"root", keys.ENTER, *"pw", keys.ENTER)
    assert "+- Advanced -" in press(app)[3]


def test_a_password_that_cannot_be_checked_never_unlocks():
    app = MenuApp(sample_menu(password=Password("unsupported", "x")), why_not, None, 0)
    screen = "\n".join(press(app, "p", *"x", keys.ENTER))
    assert "the config's password cannot be checked" in screen and not app.unlocked
    menu = sample_menu()
    menu.items[0].locked = True
    app = MenuApp(menu, why_not, None, 0)
    assert "no password that unlocks it" in "\n".join(press(app, keys.ENTER))


def test_p_without_a_password_does_nothing():
    app = MenuApp(sample_menu(), why_not, None, 0)
    press(app, "p")
    assert len(app.views) == 1 and app.message == ""


# Timeouts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timeout, style, expected",
    [
        (None, "hidden", (30.0, "menu")),
        (float("nan"), "menu", (30.0, "menu")),
        (-1.0, "menu", (30.0, "menu")),
        (5.0, "countdown", (5.0, "countdown")),
        (1e12, "hidden", (30.0, "hidden")),
        (0.0, "menu", (0.0, "menu")),
        (3.0, "bogus", (3.0, "menu")),
    ],
)
def test_unattended_wait(timeout, style, expected):
    menu = BootMenu([BootEntry("x")], "test", timeout=timeout, timeout_style=style)
    assert unattended_wait(menu, 30.0) == expected


def test_max_wait_from_the_environment(monkeypatch):
    assert menu_max_wait({"PYGRUB_MENU_MAX_WAIT": "2.5"}) == 2.5
    for bad in ("-1", "soon", "inf", "nan"):
        with pytest.raises(PygrubError, match="PYGRUB_MENU_MAX_WAIT"):
            menu_max_wait({"PYGRUB_MENU_MAX_WAIT": bad})


def test_non_interactive_when_stdin_is_not_a_terminal(tmp_path):
    """Without a terminal the default boots and curses is never loaded."""
    config = tmp_path / "menu.lst"
    config.write_text("timeout 100\ntitle A\n kernel /a\ntitle B\n kernel /b\n")
    code = (
        "import sys; from pygrub import cli; rc = cli.main(sys.argv[1:]);"
        "assert 'curses' not in sys.modules and 'pygrub.menu.terminal' not in sys.modules;"
        "sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--isconfig", str(config)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"  kernel: /a\n  args: \n"


# Fuzzing: hostile menus, key storms, any terminal size ---------------------------------

#: Guest text that has hurt terminals and layouts: escapes, bidi overrides, combining
#: marks, undecodable bytes, wide characters, tabs, NULs, very long words.
HOSTILE = [
    "Debian GNU/Linux",
    "",
    "\x1b]0;pwned\x07",
    "\x9b2J",
    "abc\u202edcba",
    "e\u0301t\u0301e\u0301",
    "\udcff\udc80",
    "日本語のタイトル",
    "\ttab\there",
    "nul\x00byte",
    "x" * 300,
    "linux /k root=/dev/xvda",
    "limit",
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.sampled_from(list("aé日\x1b\u202e\u0301\udcff\t ")), max_size=30),
)


def entries() -> st.SearchStrategy[BootEntry]:
    return st.builds(
        BootEntry,
        title=hostile_text,
        kernel=st.sampled_from([None, "/k", "\x1b"]),
        initrds=st.lists(st.sampled_from(["/i", "日"]), max_size=2),
        args=hostile_text,
        lines=st.lists(hostile_text, max_size=4),
        locked=st.booleans(),
        not_bootable=st.sampled_from([None, None, "kernel not found"]),
    )


menu_items = st.recursive(
    entries(),
    lambda children: st.builds(
        Submenu, title=hostile_text, items=st.lists(children, max_size=5), locked=st.booleans()
    ),
    max_leaves=10,
)

passwords = st.one_of(
    st.none(),
    st.builds(
        Password,
        kind=st.sampled_from(["plain", "md5", "pbkdf2", "unsupported"]),
        value=st.sampled_from(["pw", "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1", "grub.pbkdf2.x"]),
        users=st.sampled_from([(), ("root",)]),
    ),
)


def evaluators() -> st.SearchStrategy:
    def evaluate(title: str, lines: list[str]) -> BootEntry:
        if any("limit" in line for line in lines):
            raise LimitError("too much")
        kernel = next((line.split()[1] for line in lines if line.startswith("linux ")), None)
        return BootEntry(title, kernel, [], "x")

    return st.sampled_from([None, evaluate])


menus = st.builds(
    BootMenu,
    items=st.lists(menu_items, min_size=1, max_size=8),
    format=st.just("fuzz"),
    default=st.lists(st.integers(-2, 10), max_size=4).map(tuple),
    fallback=st.lists(st.lists(st.integers(0, 8), min_size=1, max_size=3).map(tuple), max_size=3),
    timeout=st.one_of(st.none(), st.floats(allow_nan=True)),
    password=passwords,
    evaluate=evaluators(),
)

named_keys = [
    getattr(keys, name)
    for name in dir(keys)
    if name.isupper() and isinstance(getattr(keys, name), str) and len(getattr(keys, name)) > 1
]
key_strategy = st.one_of(
    st.sampled_from(named_keys),
    st.sampled_from(list("abcdejkopObv ^$/-x") + ["pw", "boot", "linux /k"]),
    st.characters(max_codepoint=0x9F),
    st.characters(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    menus,
    st.lists(st.tuples(key_strategy, st.integers(0, 3)), max_size=40),
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 140)), min_size=1, max_size=4),
    st.sampled_from(["utf-8", "ascii", "latin-1"]),
)
def test_fuzz_menu(menu, pressed, sizes, encoding):
    """Any menu, any keys, any size: a bootable choice, no choice yet, or our error."""
    app = MenuApp(menu, why_not, 2, 0.0)
    now = 0.0
    try:
        for step, (key, advance) in enumerate(pressed):
            rows, cols = sizes[step % len(sizes)]
            canvas = app.draw(rows, cols, encoding)
            assert len(canvas.grid) == rows and all(len(r) == cols for r in canvas.grid)
            if canvas.cursor is not None:
                assert 0 <= canvas.cursor[0] < rows and 0 <= canvas.cursor[1] < cols
            assert_crosses_the_sandbox(canvas, encoding)
            for text in key if len(key) > 1 and not key.startswith("<") else [key]:
                app.press(text)
            now += advance
            app.tick(now)
            if app.result is not None:
                break
    except PygrubError:
        return
    if app.result is not None:
        assert why_not(app.result.entry) is None
        item = menu.item_at(app.result.path) if app.result.path else None
        assert app.result.path == () or isinstance(item, BootEntry)


# The menu across the sandbox (remote) -------------------------------------------------


def assert_crosses_the_sandbox(canvas: Canvas, encoding: str) -> None:
    """What the sandboxed child sends for ``canvas`` is accepted, within its byte budget,
    and draws the same screen."""
    r, w = os.pipe()
    try:
        Channel(-1, w).send(drawing_of(canvas, 0.5))
        os.close(w)
        w = -1
        rows, cols = canvas.rows, canvas.cols
        value = Channel(r, -1).receive(drawing_budget(rows, cols))
    finally:
        os.close(r)
        if w != -1:
            os.close(w)
    drawn = canvas_of(Drawing.from_json(value), rows, cols, encoding)
    assert drawn.text_rows() == canvas.text_rows()
    assert [[a for _t, a in row] for row in drawn.grid] == [
        [a for _t, a in row] for row in canvas.grid
    ]
    assert drawn.cursor == canvas.cursor


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.text(max_size=12), st.text(alphabet="01x", max_size=12)), max_size=3),
    st.sampled_from(["utf-8", "ascii"]),
)
def test_a_drawing_the_parent_accepts_holds_only_what_the_terminal_shows(rows, encoding):
    """Whatever a subverted child sends: refused, or cells the terminal shows as themselves."""
    try:
        canvas = canvas_of(Drawing(tuple(rows), None, None), len(rows), 6, encoding)
    except MenuProtocolError:
        return
    for row in canvas.grid:
        for text, _attr in row:
            assert all(cell(c, encoding) == (c, cell(c, encoding)[1]) for c in text)
            assert all(c.isprintable() for c in text)


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"rows": [], "cursor": None},
        {"rows": [["a", "0", "x"]], "cursor": None, "tick": None},
        {"rows": [["a", 0]], "cursor": None, "tick": None},
        {"rows": [], "cursor": [0], "tick": None},
        {"rows": [], "cursor": [-1, 0], "tick": None},
        {"rows": [], "cursor": None, "tick": float("nan")},
        {"rows": [], "cursor": None, "tick": -1},
        {"rows": [], "cursor": None, "tick": True},
    ],
)
def test_malformed_drawings_are_refused(value):
    with pytest.raises(MenuProtocolError):
        Drawing.from_json(value)


def test_a_cursor_off_the_screen_is_refused():
    with pytest.raises(MenuProtocolError, match=r"the cursor \(1, 0\) is off a screen of 1 x 2"):
        canvas_of(Drawing((("ab", "00"),), (1, 0), None), 1, 2, "ascii")
