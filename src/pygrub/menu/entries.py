"""Edited lines back into a BootEntry, as the loader would read them.

Formats with a script (GRUB legacy, GRUB 2) re-evaluate an edited entry themselves
through ``BootMenu.evaluate``. For the others the editor shows the entry's fields as
plain lines and reads them back here:

    kernel PATH          the kernel (the rest of the line, blanks included)
    linux PATH ARGS...   the kernel and its arguments, as typed at a command line
    initrd PATH          one initrd per line, loaded in order
    args ARGUMENTS       the kernel command line
"""

from __future__ import annotations

import re

from ..config.model import LINUX, OTHER, BootEntry, BootMenu
from ..errors import PygrubError
from ..record import replace

#: Commands whose line holds the kernel and its arguments (what ``a`` edits).
KERNEL_COMMANDS = frozenset(
    {"kernel", "kernel$", "linux", "linux16", "linuxefi", "multiboot", "multiboot2"}
)
#: A command's name: blanks first, then up to a blank (or '=', as GRUB legacy allows).
_COMMAND = re.compile(r"\s*([^\s=]*)")


def command_name(line: str) -> str:
    match = _COMMAND.match(line)
    return match.group(1) if match else ""


def plain_lines(entry: BootEntry) -> list[str]:
    """An entry's fields as the plain lines its editor shows."""
    lines = [f"kernel {entry.kernel}"] if entry.kernel else []
    lines += [f"initrd {path}" for path in entry.initrds]
    return lines + [f"args {entry.args}"]


def editable_lines(menu: BootMenu, entry: BootEntry) -> list[str]:
    return list(entry.lines) if menu.evaluate is not None else plain_lines(entry)


def kernel_line(menu: BootMenu, lines: list[str]) -> int | None:
    """The index of the line ``a`` edits: the kernel's (``args`` for plain lines)."""
    wanted = KERNEL_COMMANDS if menu.evaluate is not None else frozenset({"args"})
    for index, line in enumerate(lines):
        if command_name(line) in wanted:
            return index
    return None


def evaluate_lines(
    menu: BootMenu, title: str, lines: list[str], base: BootEntry | None
) -> BootEntry:
    """The entry ``lines`` make: the loader's own evaluation, or the plain fields.

    A loader error is turned into an entry that says why it cannot boot.
    """
    try:
        if menu.evaluate is not None:
            entry = menu.evaluate(title, list(lines))
        else:
            entry = plain_entry(title, lines, base)
    except PygrubError as e:
        entry = BootEntry(title, lines=list(lines), kind=OTHER, not_bootable=str(e))
    if base is not None:
        entry.id = entry.id or base.id
    return entry


def plain_entry(title: str, lines: list[str], base: BootEntry | None) -> BootEntry:
    entry = BootEntry(title, lines=list(lines), kind=LINUX)
    if base is not None:
        entry = replace(base, title=title, lines=list(lines), initrds=[], args="")
        entry.kernel, entry.kind, entry.not_bootable = None, LINUX, None
    for number, line in enumerate(lines, 1):
        name = command_name(line)
        rest = line.strip()[len(name) :].strip()
        if not name or name.startswith("#"):
            continue
        if name == "kernel":
            entry.kernel = rest
        elif name == "linux":
            entry.kernel, _, args = rest.partition(" ")
            entry.args = args.strip()
        elif name == "initrd":
            entry.initrds.append(rest)
        elif name == "args":
            entry.args = rest
        else:
            entry.not_bootable = f"line {number}: unknown command {name[:40]!r}"
            entry.kind = OTHER
            return entry
        if name in ("kernel", "linux", "initrd") and not rest:
            entry.not_bootable = f"line {number}: {name} names no file"
            return entry
    if not entry.kernel:
        entry.not_bootable = "no kernel line"
    return entry
