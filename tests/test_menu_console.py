"""The console menu as a person sees it: the real command on a real pty, TERM=vt100.

Each test runs ``python -m pygrub`` the way libxl does (a pty on stdin and stdout,
``--output=FILE --output-format=simple0``), reads the screen through pyte, a terminal
emulator, types keys, and checks both the screen and what was booted: the output file
and the extracted kernel's bytes.

Configs live in CONFIGS by name; a test names the one it boots, so GRUB 2 cases sit
beside GRUB legacy ones. Every test runs in each mode (the ``mode`` fixture): sandboxed by
default and under --runas, where the sandboxed reader runs the menu and pygrub draws it,
and with --no-sandbox, pygrub reading the disk itself; the last tests try what a
subverted reader could do to the console.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pyte
import pytest
from imaging import make_ext, run

KERNEL = os.urandom(150_000)
OLD_KERNEL = os.urandom(120_000)
INITRD = os.urandom(40_000)

UP, DOWN, RIGHT, LEFT = "\x1b[A", "\x1b[B", "\x1b[C", "\x1b[D"
HOME, END = "\x1b[1~", "\x1b[4~"
ESC, ENTER, CTRL_X, CTRL_C = "\x1b", "\r", "\x18", "\x03"
#: The ESC of a lone Escape key must not run into the next key's bytes.
ESC_GAP = 0.15

LEGACY = """\
default 0
timeout {timeout}
{extra}
title Debian GNU/Linux
  root (hd0,0)
  kernel /boot/vmlinuz root=/dev/xvda ro
  initrd /boot/initrd.img
title Debian GNU/Linux (old kernel)
  root (hd0,0)
  kernel /boot/vmlinuz-old root=/dev/xvda ro single
"""

GRUB2 = """\
set default={default}
set timeout={timeout}
{extra}
menuentry 'Debian GNU/Linux' --id debian {unrestricted}{{
\tlinux /boot/vmlinuz root=/dev/xvda1 ro
\tinitrd /boot/initrd.img
}}
submenu 'Advanced options for Debian GNU/Linux' --id advanced {unrestricted}{{
\tmenuentry 'Debian GNU/Linux, with Linux old' --id old {unrestricted}{{
\t\tlinux /boot/vmlinuz-old root=/dev/xvda1 ro
\t\tinitrd /boot/initrd.img
\t}}
\tmenuentry 'Debian GNU/Linux, with Linux old (recovery mode)' --id recovery {{
\t\tlinux /boot/vmlinuz-old root=/dev/xvda1 ro single
\t}}
}}
"""

#: Name -> (config path, text).
CONFIGS = {
    "legacy": ("boot/grub/menu.lst", LEGACY.format(timeout=5, extra="")),
    "legacy-1s": ("boot/grub/menu.lst", LEGACY.format(timeout=1, extra="")),
    "legacy-broken": (
        "boot/grub/menu.lst",
        LEGACY.format(timeout=1, extra="").replace("/boot/vmlinuz", "/boot/missing"),
    ),
    "legacy-0s": ("boot/grub/menu.lst", LEGACY.format(timeout=0, extra="")),
    "legacy-forever": ("boot/grub/menu.lst", LEGACY.replace("timeout {timeout}\n", "")),
    "legacy-md5": (
        "boot/grub/menu.lst",
        # openssl passwd -1 -salt abcdefgh secret
        LEGACY.format(timeout=5, extra="password --md5 $1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"),
    ),
    "legacy-unicode": (
        "boot/grub/menu.lst",
        LEGACY.format(timeout=5, extra="").replace(
            "title Debian GNU/Linux (old kernel)",
            "title D\u00e9bian \u00e9t\u00e9 \x1b]0;pwned\x07 (old kernel)",
        ),
    ),
    "legacy-long": (
        "boot/grub/menu.lst",
        LEGACY.format(timeout=5, extra="").replace(
            "kernel /boot/vmlinuz root=/dev/xvda ro\n",
            "kernel /boot/vmlinuz root=/dev/xvda ro " + "x" * 150 + " end\n",
        ),
    ),
    "extlinux": (
        "boot/extlinux/extlinux.conf",
        "UI menu.c32\nDEFAULT linux\nTIMEOUT 50\n"
        "LABEL linux\n  KERNEL /boot/vmlinuz\n  INITRD /boot/initrd.img\n"
        "  APPEND root=/dev/xvda ro\n"
        "LABEL old\n  KERNEL /boot/vmlinuz-old\n  APPEND root=/dev/xvda ro single\n",
    ),
    "grub2": (
        "boot/grub/grub.cfg",
        GRUB2.format(default=0, timeout=5, extra="", unrestricted=""),
    ),
    "grub2-countdown": (
        "boot/grub/grub.cfg",
        GRUB2.format(default=0, timeout=2, extra="set timeout_style=countdown", unrestricted=""),
    ),
    "grub2-hidden": (
        "boot/grub/grub.cfg",
        GRUB2.format(default=0, timeout=1, extra="set timeout_style=hidden", unrestricted=""),
    ),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Ext4 images holding one of CONFIGS (or an extra grub.cfg text), made once each."""
    made: dict[str, Path] = {}

    def image(name: str, text: str | None = None) -> Path:
        key = name if text is None else f"{name}:{text}"
        if key not in made:
            path, config = CONFIGS[name] if text is None else ("boot/grub/grub.cfg", text)
            tree = {
                path: config,
                "boot/vmlinuz": KERNEL,
                "boot/vmlinuz-old": OLD_KERNEL,
                "boot/initrd.img": INITRD,
            }
            tmp = tmp_path_factory.mktemp("menu")
            made[key] = make_ext(tmp, tree, size_mb=8)
        return made[key]

    return image


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Console:
    """pygrub on a pty, as libxl runs it; the screen is read through pyte."""

    def __init__(
        self,
        image: Path,
        tmp: Path,
        *args: str,
        rows: int = 24,
        cols: int = 80,
        program: tuple[str, ...] = ("-m", "pygrub"),
        **env: str,
    ) -> None:
        self.master, self.slave = os.openpty()
        set_size(self.slave, rows, cols)
        self.saved_modes = termios.tcgetattr(self.slave)
        self.out = tmp / "out"
        self.out.mkdir(exist_ok=True)
        self.result = tmp / "result"
        self.result.write_bytes(b"")
        environment = {k: v for k, v in os.environ.items() if k not in ("LINES", "COLUMNS")}
        environment.update({"TERM": "vt100", "LANG": "C.UTF-8", "PYGRUB_MENU_MAX_WAIT": "20"})
        # A run that hangs is made to say where (finish() sends SIGABRT): two tests hung
        # without output once in CI, under load, and never again.
        environment["PYTHONFAULTHANDLER"] = "1"
        environment.update(env)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *program,
                f"--output={self.result}",
                "--output-format=simple0",
                f"--output-directory={self.out}",
                *args,
                str(image),
            ],
            stdin=self.slave,
            stdout=self.slave,
            stderr=subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        #: Every byte the program wrote to the terminal.
        self.raw = bytearray()

    def pump(self, timeout: float) -> None:
        """Feed the emulator what the program wrote within ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            ready, _w, _x = select.select([self.master], [], [], max(left, 0))
            if ready:
                data = os.read(self.master, 65536)
                self.raw += data
                self.stream.feed(data)
            elif left <= 0:
                return

    @property
    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, check: str | Callable[[], bool], timeout: float = 10) -> None:
        test = (lambda: check in self.text) if isinstance(check, str) else check
        end = time.monotonic() + timeout
        while not test():
            if time.monotonic() > end or self.proc.poll() is not None:
                self.pump(0.1)
                if test():
                    return
                pytest.fail(f"screen never showed {check!r}:\n{self.text}")
            self.pump(0.05)

    def send(self, *keys: str) -> None:
        for key in keys:
            os.write(self.master, key.encode())
            if key == ESC:
                time.sleep(ESC_GAP)

    def highlighted(self) -> list[str]:
        """The rows drawn in reverse video (the highlighted entry or line)."""
        rows = []
        for y in range(self.screen.lines):
            line = self.screen.buffer[y]
            if any(line[x].reverse for x in range(self.screen.columns)):
                rows.append(self.screen.display[y].strip())
        return rows

    def resize(self, rows: int, cols: int) -> None:
        set_size(self.slave, rows, cols)
        self.screen.resize(rows, cols)
        self.proc.send_signal(signal.SIGWINCH)

    def finish(self, timeout: float = 10) -> tuple[int, str, dict[str, str]]:
        """(exit status, stderr, the simple0 items written) once the program has ended."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.pump(0.1)
            pytest.fail(f"pygrub did not finish:\n{self.text}\n{self.tracebacks()}")
        self.pump(0.05)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read().decode()
        items = self.result.read_bytes().split(b"\0")
        result = dict(i.decode().split(" ", 1) for i in items if i)
        return code, err, result

    def tracebacks(self) -> str:
        """Where the run is stuck: faulthandler's dump on SIGABRT, from stderr. The
        sandboxed reader (a session of its own) first, then pygrub."""
        for pid in [*children(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        assert self.proc.stderr is not None
        # Not read() to EOF: a reader that outlived the signal could hold stderr open.
        said = bytearray()
        while select.select([self.proc.stderr], [], [], 2)[0]:
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            if not chunk:
                break
            said += chunk
        return said.decode(errors="replace")[-6000:]

    def terminal_restored(self) -> bool:
        return termios.tcgetattr(self.slave) == self.saved_modes

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        os.close(self.master)
        os.close(self.slave)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The field after the command's closing parenthesis: state, then ppid.
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


#: The --runas user of the sandboxed menu: no passwd entry, used by no other test.
MENU_UID = 43231


@pytest.fixture(params=["default", "runas", "no-sandbox"])
def mode(request) -> tuple[str, ...]:
    """Every menu test runs three times: sandboxed by default (root, no flag) and under
    --runas, where the sandboxed reader runs the menu and pygrub only draws it, and with
    --no-sandbox, pygrub reading the disk and running the menu itself."""
    if request.param == "runas":
        request.getfixturevalue("needs_root")
        return (f"--runas={MENU_UID}",)
    if request.param == "no-sandbox":
        return ("--no-sandbox",)
    request.getfixturevalue("needs_root")
    return ()


@pytest.fixture
def console(images, tmp_path, mode):
    started: list[Console] = []

    def start(name: str, *args: str, text: str | None = None, **kw) -> Console:
        c = Console(images(name, text), tmp_path, *mode, *args, **kw)
        started.append(c)
        return c

    yield start
    for c in started:
        c.close()


def booted(c: Console, result: dict[str, str]) -> bytes:
    """The bytes of the kernel the run extracted."""
    return Path(result["kernel"]).read_bytes()


MAIN_MENU = "The highlighted entry will be executed automatically in"


def test_pick_the_second_entry(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    assert len(c.highlighted()) == 1
    assert c.highlighted()[0].startswith("|*Debian GNU/Linux ")
    c.send(DOWN)
    c.wait_for("*Debian GNU/Linux (old kernel)")
    assert MAIN_MENU not in c.text, "a key stops the countdown"
    assert len(c.highlighted()) == 1 and "(old kernel)" in c.highlighted()[0]
    c.send(ENTER)
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert result["args"] == "root=/dev/xvda ro single"
    assert "ramdisk" not in result
    assert booted(c, result) == OLD_KERNEL
    assert c.terminal_restored()


def test_keys_people_know_move_the_highlight(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send("j")
    c.wait_for("*Debian GNU/Linux (old kernel)")
    c.send("k")
    c.wait_for("*Debian GNU/Linux  ")
    c.send(END)
    c.wait_for("*Debian GNU/Linux (old kernel)")
    c.send(HOME, "\x0e")  # Ctrl-N
    c.wait_for("*Debian GNU/Linux (old kernel)")
    c.send("b")
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == OLD_KERNEL


def test_the_countdown_boots_the_default(console):
    c = console("legacy-1s")
    c.wait_for("The highlighted entry will be executed automatically in 1s.")
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert result["args"] == "root=/dev/xvda ro"
    assert booted(c, result) == KERNEL
    assert Path(result["ramdisk"]).read_bytes() == INITRD
    assert c.terminal_restored()


def test_a_default_that_cannot_boot_fails_like_an_unattended_run(console):
    c = console("legacy-broken")
    c.wait_for(MAIN_MENU)
    code, err, result = c.finish()
    assert (code, result) == (1, {})
    assert err.startswith("pygrub: error: RuntimeError: nothing bootable found: ")
    assert "/boot/missing not found" in err
    assert c.terminal_restored() and list(c.out.iterdir()) == []


def test_any_key_stops_the_countdown(console):
    c = console("legacy-1s")
    c.wait_for(MAIN_MENU)
    c.send("x")
    c.wait_for(lambda: MAIN_MENU not in c.text)
    # Well past the timeout the menu is still there, waiting for the person.
    c.pump(1.5)
    assert c.proc.poll() is None and "*Debian GNU/Linux" in c.text
    c.send(DOWN, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == OLD_KERNEL


def test_no_timeout_waits_at_most_the_configured_limit(console):
    c = console("legacy-forever", PYGRUB_MENU_MAX_WAIT="1")
    c.wait_for("The highlighted entry will be executed automatically in 1s.")
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == KERNEL


def test_timeout_zero_boots_at_once_and_draws_nothing(console):
    c = console("legacy-0s")
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert booted(c, result) == KERNEL
    assert c.text.strip() == ""


def test_hidden_timeout_draws_nothing_and_boots_the_default(console):
    c = console("grub2-hidden")
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert result["args"] == "root=/dev/xvda1 ro"
    assert c.text.strip() == ""


def test_escape_during_a_hidden_timeout_shows_the_menu(console):
    c = console("grub2-hidden")
    c.pump(0.3)
    c.send(ESC)
    c.wait_for("*Debian GNU/Linux")
    assert MAIN_MENU not in c.text
    c.pump(1.2)
    assert c.proc.poll() is None
    c.send(ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == KERNEL


def test_countdown_style_counts_without_a_menu_until_escape(console):
    c = console("grub2-countdown")
    c.wait_for(lambda: c.screen.display[0].startswith("2 "))
    assert "pygrub" not in c.text
    c.send(ESC)
    c.wait_for("*Debian GNU/Linux")
    assert MAIN_MENU not in c.text
    c.send(DOWN, ENTER, DOWN, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and result["args"] == "root=/dev/xvda1 ro single"


def test_edit_a_line_and_boot_it(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send("e")
    c.wait_for("kernel /boot/vmlinuz root=/dev/xvda ro")
    assert "+- Debian GNU/Linux -" in c.text
    assert c.highlighted()[0].startswith("|*root (hd0,0)")
    c.send(DOWN)
    c.wait_for("*kernel /boot/vmlinuz")
    c.send("e")
    c.wait_for("Minimal BASH-like line editing")
    assert "> kernel /boot/vmlinuz root=/dev/xvda ro" in c.text
    # Home, then over "kernel /boot/vmlinuz" to its end: the old kernel instead.
    c.send(HOME, *[RIGHT] * len("kernel /boot/vmlinuz"), "-old", END, " quiet", ENTER)
    c.wait_for("*kernel /boot/vmlinuz-old root=/dev/xvda ro quiet")
    c.send(DOWN, "d")  # the initrd line goes
    c.wait_for(lambda: "initrd" not in c.text)
    c.send(CTRL_X)
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert result["args"] == "root=/dev/xvda ro quiet"
    assert "ramdisk" not in result
    assert booted(c, result) == OLD_KERNEL


def test_open_a_line_in_the_editor(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send(DOWN, "e")
    c.wait_for("*root (hd0,0)")
    c.send(DOWN, "o")
    c.wait_for("Minimal BASH-like line editing")
    c.send("initrd /boot/initrd.img", ENTER)
    c.wait_for("*initrd /boot/initrd.img")
    c.send("b")
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == OLD_KERNEL
    assert Path(result["ramdisk"]).read_bytes() == INITRD


def test_escape_discards_the_edits(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send("e")
    c.wait_for("*root (hd0,0)")
    c.send("d", "d")
    c.wait_for(lambda: "kernel" not in c.text)
    c.send(ESC)
    c.wait_for("*Debian GNU/Linux")
    c.send(ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == KERNEL


def test_a_broken_edit_says_why_and_stays(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send("e", DOWN, "e", END, *["\x7f"] * 50, "kernel /boot/nothing-here", ENTER)
    c.wait_for("*kernel /boot/nothing-here")
    c.send("b")
    c.wait_for("/boot/nothing-here not found")
    assert c.proc.poll() is None
    c.send(ESC, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == KERNEL


def test_append_kernel_arguments(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send("a")
    c.wait_for("> kernel /boot/vmlinuz root=/dev/xvda ro")
    c.send(" console=hvc0", ENTER)
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert result["args"] == "root=/dev/xvda ro console=hvc0"
    assert booted(c, result) == KERNEL


def test_args_flag_is_still_appended_after_the_menu(console):
    c = console("legacy", "--args=extra=1")
    c.wait_for(MAIN_MENU)
    c.send("a", " quiet", ENTER)
    code, _err, result = c.finish()
    assert code == 0 and result["args"] == "root=/dev/xvda ro quiet extra=1"


def test_a_long_line_scrolls_sideways(console):
    c = console("legacy-long")
    c.wait_for(MAIN_MENU)
    c.send("a")
    c.wait_for(" end")
    row = next(r for r in c.screen.display if r.startswith("> "))
    assert row[2] == "<", "the start of the line is off screen"
    assert row.rstrip().endswith(" end")
    c.send(HOME)
    c.wait_for("> kernel /boot/vmlinuz")
    row = next(r for r in c.screen.display if r.startswith("> "))
    assert row.rstrip().endswith(">"), "more of the line follows"
    c.send("\x05", "\x08", "\x08", "\x08", "fin", ENTER)  # Ctrl-E, then backspaces
    code, _err, result = c.finish()
    assert code == 0 and result["args"].endswith("x fin")


def test_command_line_boots_a_kernel_by_hand(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send("c")
    c.wait_for("grub> ")
    c.send("kernel /boot/vmlinuz-old root=/dev/xvda2 init=/bin/sh", ENTER)
    c.send("initrd /boot/initrd.img", ENTER)
    c.wait_for("grub> initrd /boot/initrd.img")
    assert "grub> kernel /boot/vmlinuz-old root=/dev/xvda2 init=/bin/sh" in c.text
    c.send("boot", ENTER)
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert result["args"] == "root=/dev/xvda2 init=/bin/sh"
    assert booted(c, result) == OLD_KERNEL
    assert Path(result["ramdisk"]).read_bytes() == INITRD


def test_command_line_escape_returns_to_the_menu(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send("c")
    c.wait_for("grub> ")
    c.send(ESC)
    c.wait_for("*Debian GNU/Linux")
    c.send(DOWN, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == OLD_KERNEL


def test_wrong_then_right_password(console):
    c = console("legacy-md5")
    c.wait_for("`p' to enter a password")
    c.send("e")
    c.wait_for("Password: ")
    c.send("wrong", ENTER)
    c.wait_for("error: access denied.")
    c.send("e")
    c.wait_for("Password: ")
    c.send("secret")
    c.wait_for("Password: ******")
    c.send(ENTER)
    c.wait_for("*root (hd0,0)")
    c.send(DOWN, DOWN, "d", "b")
    code, _err, result = c.finish()
    assert code == 0 and "ramdisk" not in result
    assert booted(c, result) == KERNEL


def test_a_password_protected_menu_still_boots_without_one(console):
    c = console("legacy-md5")
    c.wait_for("`p' to enter a password")
    c.send(DOWN, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == OLD_KERNEL


def test_p_unlocks_the_menu(console):
    c = console("legacy-md5")
    c.wait_for("`p' to enter a password")
    c.send("p")
    c.wait_for("Password: ")
    c.send("secret", ENTER)
    c.wait_for("Password accepted.")
    assert "`e' to edit the commands" in c.text
    c.send("a", " single", ENTER)
    code, _err, result = c.finish()
    assert code == 0 and result["args"] == "root=/dev/xvda ro single"


def test_submenu_opens_and_closes(console):
    c = console("grub2")
    c.wait_for(MAIN_MENU)
    assert "Advanced options for Debian GNU/Linux" in c.text
    c.send(DOWN, RIGHT)
    c.wait_for("+- Advanced options for Debian GNU/Linux -")
    assert "Press ESC to return to the previous menu." in c.text
    assert "*Debian GNU/Linux, with Linux old " in c.text
    c.send(ESC)
    c.wait_for("*Advanced options for Debian GNU/Linux")
    assert "Press ESC to return" not in c.text
    c.send(ENTER)
    c.wait_for("+- Advanced options for Debian GNU/Linux -")
    c.send(DOWN, ENTER)
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert result["args"] == "root=/dev/xvda1 ro single"
    assert booted(c, result) == OLD_KERNEL


def test_the_default_inside_a_submenu_is_highlighted(console):
    text = GRUB2.format(default='"advanced>recovery"', timeout=5, extra="", unrestricted="")
    c = console("grub2", text=text)
    c.wait_for("*Advanced options for Debian GNU/Linux")
    c.send(ENTER)
    c.wait_for("*Debian GNU/Linux, with Linux old (recovery mode)")
    c.send(LEFT, UP, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == KERNEL


def test_grub2_edit_is_evaluated_by_the_script_engine(console):
    c = console("grub2")
    c.wait_for(MAIN_MENU)
    c.send("e")
    c.wait_for("linux /boot/vmlinuz root=/dev/xvda1 ro")
    # GRUB's editor shows the body as written: setparams, a blank line, linux, initrd.
    c.send(DOWN, DOWN)
    c.wait_for("* linux /boot/vmlinuz root=/dev/xvda1 ro")  # a tab shows as one blank
    c.send("O")
    c.wait_for("Minimal BASH-like line editing")
    c.send("set extra=quiet", ENTER)
    c.wait_for("*set extra=quiet")
    c.send(DOWN, "e", " $extra", ENTER, DOWN, "d", "\x1b[21~")  # F10
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert result["args"] == "root=/dev/xvda1 ro quiet"
    assert "ramdisk" not in result


def test_a_format_without_a_script_edits_plain_fields(console):
    c = console("extlinux")
    c.wait_for(MAIN_MENU)
    c.send("e")
    c.wait_for("args root=/dev/xvda ro")
    assert "*kernel /boot/vmlinuz " in c.text and " initrd /boot/initrd.img" in c.text
    c.send(DOWN, DOWN, "e", " quiet", ENTER, DOWN, UP, UP, "e")
    c.wait_for("> kernel /boot/vmlinuz")
    c.send("-old", ENTER, "b")
    code, err, result = c.finish()
    assert (code, err) == (0, "")
    assert result["args"] == "root=/dev/xvda ro quiet"
    assert booted(c, result) == OLD_KERNEL
    assert Path(result["ramdisk"]).read_bytes() == INITRD


def test_grub2_command_line(console):
    c = console("grub2")
    c.wait_for(MAIN_MENU)
    c.send("c")
    c.wait_for("grub> ")
    for line in ("set k=/boot/vmlinuz-old", "linux $k root=/dev/xvda3", "boot"):
        c.send(line, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and result["args"] == "root=/dev/xvda3"
    assert booted(c, result) == OLD_KERNEL


def test_grub2_superuser_password(console, tmp_path):
    hashed = grub_pbkdf2("hunter2")
    # Not exported, superusers would not reach the submenu: GRUB would not ask there.
    extra = f'set superusers="admin"\nexport superusers\npassword_pbkdf2 admin {hashed}'
    text = GRUB2.format(default=0, timeout=5, extra=extra, unrestricted="--unrestricted ")
    c = console("grub2", text=text)
    c.wait_for(MAIN_MENU)
    # The recovery entry is not --unrestricted: booting it asks who you are.
    c.send(DOWN, ENTER, DOWN, ENTER)
    c.wait_for("Enter username: ")
    c.send("admin", ENTER)
    c.wait_for("Password: ")
    c.send("hunter1", ENTER)
    c.wait_for("error: access denied.")
    c.send(ENTER)
    c.wait_for("Enter username: ")
    c.send("admin", ENTER, "hunter2", ENTER)
    code, _err, result = c.finish()
    assert code == 0 and result["args"] == "root=/dev/xvda1 ro single"


def grub_pbkdf2(password: str) -> str:
    out = run(
        "grub-mkpasswd-pbkdf2", "--iteration-count=1000", input=f"{password}\n{password}\n".encode()
    )
    return out.decode().split("is ", 1)[1].split()[0]


def test_non_ascii_titles_on_a_utf8_terminal(console):
    c = console("legacy-unicode")
    c.wait_for(MAIN_MENU)
    assert "D\u00e9bian \u00e9t\u00e9 ?]0;pwned? (old kernel)" in c.text
    c.send(DOWN, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == OLD_KERNEL


def test_non_ascii_titles_on_an_ascii_terminal(console):
    c = console("legacy-unicode", LC_ALL="C", LANG="C")
    c.wait_for(MAIN_MENU)
    assert "Debian ete ?]0;pwned? (old kernel)" in c.text
    c.send(DOWN, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == OLD_KERNEL


def test_resize(console):
    c = console("grub2")
    c.wait_for(MAIN_MENU)
    c.resize(30, 100)
    c.wait_for(
        lambda: (
            c.screen.display[3].rstrip().endswith("-+") and len(c.screen.display[3].rstrip()) == 99
        )
    )
    assert "*Debian GNU/Linux" in c.text and MAIN_MENU in c.text
    c.resize(6, 30)
    c.wait_for(lambda: c.screen.display[1].startswith(" |*Debian GNU/Linux "))
    assert all(len(row.rstrip()) <= 30 for row in c.screen.display)
    c.send(DOWN)
    c.wait_for("*Advanced options")
    c.resize(24, 80)
    c.wait_for("pygrub  version")
    c.send(UP, ENTER)
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == KERNEL


def test_sigterm_restores_the_terminal_and_leaves_nothing(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send("e")
    c.wait_for("*root (hd0,0)")
    c.proc.send_signal(signal.SIGTERM)
    code, err, result = c.finish()
    assert (code, err, result) == (
        1,
        "pygrub: error: RuntimeError: stopped by signal SIGTERM\n",
        {},
    )
    assert c.terminal_restored()
    assert list(c.out.iterdir()) == []


def test_ctrl_c_restores_the_terminal(console):
    c = console("legacy")
    c.wait_for(MAIN_MENU)
    c.send("c")
    c.wait_for("grub> ")
    c.send("kernel /boot/vmlin", CTRL_C)
    code, err, result = c.finish()
    assert (code, err, result) == (1, "pygrub: error: RuntimeError: stopped by signal SIGINT\n", {})
    assert c.terminal_restored()


def test_quiet_never_shows_the_menu(console):
    c = console("legacy", "-q")
    code, _err, result = c.finish()
    assert code == 0 and booted(c, result) == KERNEL
    assert c.text.strip() == ""


@pytest.mark.parametrize("term", ["dumb", "no-such-terminal"])
def test_a_terminal_curses_cannot_drive_boots_the_default(console, term):
    c = console("legacy", TERM=term)
    code, err, result = c.finish()
    assert code == 0 and booted(c, result) == KERNEL
    assert err.startswith("pygrub: WARNING: no menu on this terminal (")
    assert err.endswith("): booting the default entry\n")
    assert c.terminal_restored()


# -- the menu under --runas: what the sandboxed reader may not do to the console ---------

#: A stand-in for the sandboxed reader's side of the menu, for these tests only: the
#: program runs pygrub's command with ``remote.drawing_of`` (called only in the child)
#: replaced, as a reader subverted by the guest's disk could replace it. Its first
#: argument, taken off before pygrub parses the rest, says how it misbehaves.
SUBVERTED = """
import os, sys, time
from pygrub import cli
from pygrub.menu import remote
from pygrub.record import replace

how = sys.argv.pop(1)
honest = remote.drawing_of
printed = []

def drawing_of(canvas, tick):
    d = honest(canvas, tick)
    rows = list(d.rows)
    text, attrs = rows[1]
    if how == "escape":
        rows[1] = ("\\x1b]0;pwned\\x07" + text[10:], attrs)
    elif how == "bidi":
        rows[1] = ("\\u202e" + text[1:], attrs)
    elif how == "wide":
        rows[1] = (text + "x", attrs + "0")
    elif how == "rows":
        rows.append(rows[1])
    elif how == "oversized":
        rows[1] = ("x" * (1 << 22), "0" * (1 << 22))
    elif how == "silent":
        time.sleep(3600)
    elif how == "endless":
        tick = 0
    elif how == "prints" and not printed:
        printed.append(True)
        os.write(1, b"\\x1b]0;pwned\\x07 on stdout\\n")
        os.write(2, b"\\x1b]0;pwned\\x07 on stderr\\n")
    return replace(d, rows=tuple(rows), tick=tick)

if how == "endless":
    remote.MenuApp.feed = lambda self, typed, hung_up, now: None
remote.drawing_of = drawing_of
cli.command()
"""


@pytest.fixture
def sandboxed(images, tmp_path, needs_root):
    """A console running pygrub --runas, maybe with a subverted reader (SUBVERTED)."""
    started: list[Console] = []

    def start(name: str, how: str | None = None, **kw) -> Console:
        program = ("-m", "pygrub") if how is None else ("-c", SUBVERTED, how)
        c = Console(images(name), tmp_path, f"--runas={MENU_UID}", program=program, **kw)
        started.append(c)
        return c

    yield start
    for c in started:
        c.close()


def reader_of(pid: int) -> int:
    """The sandboxed child of pygrub ``pid``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status and f"\nUid:\t{MENU_UID}\t" in status:
                return int(entry.name)
    pytest.fail(f"pygrub {pid} has no child running as {MENU_UID}")


def test_a_reader_killed_mid_menu_leaves_the_terminal_as_it_was(sandboxed):
    c = sandboxed("legacy")
    c.wait_for(MAIN_MENU)
    c.send("e")
    c.wait_for("*root (hd0,0)")
    os.kill(reader_of(c.proc.pid), signal.SIGKILL)
    code, err, result = c.finish()
    assert (code, err, result) == (
        1,
        "pygrub: error: RuntimeError: the sandboxed reader was killed by SIGKILL\n",
        {},
    )
    assert c.terminal_restored()
    assert list(c.out.iterdir()) == []


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("escape", "row 1 holds U+001B, which the terminal must not get"),
        ("bidi", "row 1 holds U+202E, which the terminal must not get"),
        ("wide", "row 1 is 81 columns wide on a screen of 80"),
        ("rows", "25 rows drawn on a screen of 24"),
        # 24 rows of 80 columns: 4096 + 24 * (5 * 80 + 16) bytes at most.
        ("oversized", "a message of the sandboxed menu is over 14080 bytes"),
        ("silent", "the sandboxed menu did not answer in time (PYGRUB_TIMEOUT)"),
        ("endless", "the sandboxed menu did not boot by itself when its time was up"),
    ],
)
def test_a_subverted_reader_cannot_write_to_the_console(sandboxed, how, error):
    # Only a reader that goes quiet or never boots is ended by PYGRUB_TIMEOUT: it is short
    # for those two and long for the rest, whose refusal must come first on a busy machine.
    timeout = "2" if how in ("silent", "endless") else "30"
    c = sandboxed("legacy-1s", how, PYGRUB_TIMEOUT=timeout)
    code, err, result = c.finish(timeout=45)
    if how in ("escape", "bidi", "wide", "rows"):
        error = "the sandboxed menu's message is refused: " + error
    assert (code, err, result) == (1, f"pygrub: error: RuntimeError: {error}\n", {}), err
    assert b"pwned" not in c.raw and "\u202e" not in c.raw.decode(errors="replace")
    assert c.terminal_restored()
    assert list(c.out.iterdir()) == []


def test_what_the_reader_prints_reaches_no_terminal_unescaped(sandboxed):
    c = sandboxed("legacy", "prints")
    c.wait_for(MAIN_MENU)
    c.send(DOWN, ENTER)
    code, err, result = c.finish()
    assert code == 0 and booted(c, result) == OLD_KERNEL
    # Repeated by pygrub once the reader is done, control characters shown as '?'.
    assert b"\x1b]0;pwned" not in c.raw and b"?]0;pwned? on stdout\r\n" in c.raw
    assert err == "?]0;pwned? on stderr\n"
    assert c.terminal_restored()


def test_a_run_that_hangs_says_where(images, tmp_path):
    """finish()'s failure carries each process's stack, for a hang seen once in CI."""
    child = "import os, time; os.fork() or time.sleep(60); time.sleep(60)"
    c = Console(images("legacy"), tmp_path, program=("-c", child))
    try:
        time.sleep(0.5)
        assert len(children(c.proc.pid)) == 1
        with pytest.raises(pytest.fail.Exception, match=r"(?s)did not finish.*line 1") as e:
            c.finish(timeout=1)
        assert str(e.value).count("line 1 in <module>") == 2  # the parent's and the child's
    finally:
        c.close()
