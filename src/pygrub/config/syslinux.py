"""SYSLINUX, EXTLINUX and ISOLINUX menus (also U-Boot's extlinux.conf, which shares the syntax).

The parser follows SYSLINUX 6 (com32/elflink/ldlinux/readconfig.c and com32/menu): one
keyword per line, case-insensitive, its value the rest of the line; parser state is global,
so INCLUDEd files behave as if pasted in; a LABEL is finished ("recorded") only by the next
LABEL, MENU BEGIN/END/SEPARATOR or the end of everything. A few choices follow U-Boot and
Xen's pygrub where SYSLINUX versions disagree (a LABEL or DEFAULT holding blanks matches as a
whole first), and the ``initrd=`` token is taken out of the command line as Xen's pygrub does.
"""

from __future__ import annotations

import posixpath
import re

from .._typing import TYPE_CHECKING
from ..errors import LimitError, PygrubError
from ..limits import MAX_CONFIG_BYTES, MAX_MENU_ENTRIES, check_count
from ..record import field, record
from .model import LINUX, MULTIBOOT, OTHER, BootEntry, BootItem, BootMenu, Submenu

if TYPE_CHECKING:
    from . import LoadContext

#: INCLUDE nesting. SYSLINUX has no bound of its own: a loop overflows its stack.
MAX_INCLUDE_DEPTH = 16
#: Files read through INCLUDE, all levels together, and their bytes.
MAX_INCLUDED_FILES = 256
MAX_INCLUDED_BYTES = 8 * MAX_CONFIG_BYTES
#: MENU BEGIN nesting.
MAX_SUBMENU_DEPTH = 32
#: Notes kept about skipped INCLUDEs (a hostile file may hold a million of them).
MAX_NOTES = 64

#: DEFAULT or UI naming one of these means "show the menu".
MENU_MODULES = frozenset({"menu.c32", "vesamenu.c32"})
#: Keywords that give a label its kernel, and so its kind (readconfig.c kernel_types).
KERNEL_KEYWORDS = frozenset(
    {"kernel", "linux", "boot", "bss", "pxe", "fdimage", "comboot", "com32", "config", "localboot"}
)
#: What KERNEL runs by file extension (ldlinux.c file_extensions, plus SYSLINUX 4's COMBOOT
#: names); any other name is a Linux kernel.
EXTENSION_KINDS = {
    ".c32": "com32",
    ".img": "fdimage",
    ".bss": "bss",
    ".bin": "boot",
    ".bs": "boot",
    ".0": "pxe",
    ".com": "comboot",
    ".cbt": "comboot",
}

# SYSLINUX counts every byte up to and including the space as a blank (my_isspace).
_BLANKS = "".join(chr(c) for c in range(0x21))
_WORD = re.compile(r"[\x00-\x20]*([^\x00-\x20]*)[\x00-\x20]*")
_INITRD_TOKEN = re.compile(r"(?:^|[\x00-\x20]+)initrd=[^\x00-\x20]*")
_ATOI = re.compile(r"[\x00-\x20]*([+-]?)([0-9]+)")


def split_word(text: str) -> tuple[str, str]:
    """The first blank-separated word of ``text`` and the rest, blanks around it skipped."""
    m = _WORD.match(text)
    assert m is not None  # the pattern matches any string
    return m.group(1), text[m.end() :]


def atoi(text: str) -> int:
    """C's atoi: leading digits after blanks, 0 when there are none; huge values clamp."""
    m = _ATOI.match(text)
    if m is None:
        return 0
    digits = m.group(2).lstrip("0")[:10] or "0"
    value = min(int(digits), 2**31 - 1)
    return -value if m.group(1) == "-" else value


def strip_carets(text: str) -> str:
    """A MENU LABEL as the menu shows it: ``^`` only marks the next letter as the hotkey."""
    return text.replace("^", "")


def words(text: str) -> list[str]:
    return [w for w in re.split(r"[\x00-\x20]+", text) if w]


def join_args(*parts: str) -> str:
    return " ".join(p for p in (part.strip(_BLANKS) for part in parts) if p)


@record(eq=False)
class Label:
    """One LABEL while it is read (SYSLINUX's ``struct labeldata``)."""

    name: str
    where: str
    #: The KERNEL-type line's text: the file, then arguments of its own.
    kernel: str
    keyword: str = "kernel"
    append: str | None = None
    initrd: str | None = None
    menu_label: str | None = None
    menu_default: bool = False
    hidden: bool = False
    disabled: bool = False
    #: MENU EXIT / QUIT / GOTO: a menu command, nothing to boot.
    action: str | None = None
    lines: list[str] = field(default_factory=list)


@record(eq=False)
class Menu:
    """The top menu or a MENU BEGIN block."""

    tag: str | None
    parent: Menu | None = None
    display: str | None = None
    title: str | None = None
    items: list[Label | Menu] = field(default_factory=list)
    #: Index in ``items`` that MENU DEFAULT marked.
    default: int | None = None
    depth: int = 0
    #: Its own index in the parent's items.
    index: int = 0


@record
class Settings:
    """The global directives, last one winning."""

    append: str | None = None
    default: str | None = None
    ui: str | None = None
    ontimeout: str | None = None
    timeout: int = 0
    totaltimeout: int = 0
    prompt: bool = False
    hidden_menu: bool = False


class Parser:
    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        #: SYSLINUX changes to the config file's directory; relative names start there.
        self.cwd = posixpath.dirname(ctx.path) or "/"
        self.root = Menu(None)
        self.menu = self.root
        self.pending: Label | None = None
        self.settings = Settings()
        #: Every recorded label, hidden ones too, in file order (DEFAULT looks here).
        self.labels: list[Label] = []
        self.item_count = 0
        self.files_read = 0
        self.bytes_read = 0

    # -- reading ------------------------------------------------------------------------

    def parse_file(self, path: str, text: str, depth: int) -> None:
        lines = text.split("\n")
        index = 0
        while index < len(lines):
            # SYSLINUX ends a line at its first CR.
            raw = lines[index].split("\r", 1)[0]
            index += 1
            keyword, rest = split_word(raw)
            keyword = keyword.lower()
            if keyword == "text":
                index = skip_text_block(lines, index)
                continue
            before = self.pending
            self.directive(keyword, rest, raw, f"{path}:{index}", depth)
            if before is not None and self.pending is before:
                before.lines.append(raw)

    def directive(self, keyword: str, rest: str, raw: str, where: str, depth: int) -> None:
        label = self.pending
        settings = self.settings
        if keyword == "menu":
            self.menu_directive(rest, where, depth)
        elif keyword == "include":
            self.include(rest, where, depth, with_tag=False)
        elif keyword == "label":
            self.record()
            name = rest.rstrip(_BLANKS)
            self.pending = Label(name, where, kernel=split_word(name)[0], lines=[raw])
        elif keyword == "append":
            if label is not None:
                label.append = rest
            else:
                settings.append = rest
        elif keyword == "initrd":
            if label is not None:
                label.initrd = rest.rstrip(_BLANKS)
        elif keyword in KERNEL_KEYWORDS:
            if label is not None:
                label.kernel, label.keyword = rest, keyword
        elif keyword == "default":
            settings.default = rest.rstrip(_BLANKS)
        elif keyword == "ui":
            settings.ui = rest.rstrip(_BLANKS)
        elif keyword == "ontimeout":
            # menu.c32 keeps one per menu; only the top menu's matters for the default.
            if self.menu is self.root:
                settings.ontimeout = rest.rstrip(_BLANKS)
        elif keyword == "timeout":
            settings.timeout = atoi(rest)
        elif keyword == "totaltimeout":
            settings.totaltimeout = atoi(rest)
        elif keyword == "prompt":
            settings.prompt = atoi(rest) != 0
        # Everything else (DISPLAY, F1..F12, SERIAL, PATH, U-Boot's FDT/FDTDIR/DEVICETREE,
        # ...) changes nothing pygrub boots.

    def menu_directive(self, text: str, where: str, depth: int) -> None:
        keyword, rest = split_word(text)
        keyword = keyword.lower()
        label, menu = self.pending, self.menu
        if keyword == "label":
            if label is not None:
                label.menu_label = rest
            elif menu.parent is not None:
                menu.display = rest
        elif keyword == "title":
            menu.title = rest
        elif keyword == "default":
            if label is not None:
                label.menu_default = True
            elif menu.parent is not None:
                menu.parent.default = menu.index
        elif keyword == "hide":
            if label is not None:
                label.hidden = True
        elif keyword == "hidden":
            self.settings.hidden_menu = True
        elif keyword in ("disable", "disabled"):
            if label is not None:
                label.disabled = True
        elif keyword in ("exit", "quit", "goto"):
            if label is not None:
                label.action = keyword
        elif keyword == "begin":
            self.record()
            self.begin_submenu(rest.rstrip(_BLANKS), where)
        elif keyword == "end":
            self.record()
            self.end_submenu()
        elif keyword == "separator":
            self.record()
        elif keyword == "include":
            self.include(rest, where, depth, with_tag=True)

    def include(self, text: str, where: str, depth: int, with_tag: bool) -> None:
        name, tag = split_word(text)
        tag = tag.rstrip(_BLANKS)
        if not name:
            return
        path = self.resolve(name)
        if depth >= MAX_INCLUDE_DEPTH:
            self.note(f"{where}: INCLUDE {path} nested over {MAX_INCLUDE_DEPTH} deep")
            return
        body = self.read_include(path, where)
        if body is None:
            return
        if with_tag and tag:
            # MENU INCLUDE file tag: the file's labels form a submenu called tag.
            self.record()
            self.begin_submenu(tag, where)
            self.parse_file(path, body, depth + 1)
            self.record()
            self.end_submenu()
        else:
            self.parse_file(path, body, depth + 1)

    def read_include(self, path: str, where: str) -> str | None:
        """The included file's text; None (and a note) when it is missing or over a bound.

        SYSLINUX skips an INCLUDE it cannot open without a word; Debian's installer
        menus rely on that.
        """
        if self.files_read >= MAX_INCLUDED_FILES or self.bytes_read >= MAX_INCLUDED_BYTES:
            self.note(f"{where}: INCLUDE {path} skipped: too many included files")
            return None
        try:
            body = self.ctx.read_file(path)
        except PygrubError as e:
            self.note(f"{where}: INCLUDE {path} skipped: {e}")
            return None
        if body is None:
            self.note(f"{where}: INCLUDE {path} not found, skipped")
            return None
        self.files_read += 1
        self.bytes_read += len(body)
        return body

    def note(self, message: str) -> None:
        if len(self.ctx.notes) < MAX_NOTES:
            self.ctx.notes.append(message)

    def begin_submenu(self, tag: str, where: str) -> None:
        if self.menu.depth >= MAX_SUBMENU_DEPTH:
            raise LimitError(f"{where}: MENU BEGIN nested over {MAX_SUBMENU_DEPTH} deep")
        self.count_item(where)
        parent = self.menu
        submenu = Menu(tag or None, parent, depth=parent.depth + 1, index=len(parent.items))
        self.menu.items.append(submenu)
        self.menu = submenu

    def end_submenu(self) -> None:
        if self.menu.parent is not None:
            self.menu = self.menu.parent

    def record(self) -> None:
        """Finish the pending label: it joins the current menu (or the hidden ones)."""
        label = self.pending
        if label is None:
            return
        self.pending = None
        self.count_item(label.where)
        if label.append is None:
            label.append = self.settings.append
        self.labels.append(label)
        if label.hidden:
            return
        self.menu.items.append(label)
        if label.menu_default and label.action is None and not label.disabled:
            self.menu.default = len(self.menu.items) - 1

    def count_item(self, where: str) -> None:
        self.item_count += 1
        check_count(f"{where}: SYSLINUX menu items", self.item_count, MAX_MENU_ENTRIES)

    def resolve(self, name: str) -> str:
        """An absolute path: relative names are relative to the config file's directory."""
        return name if name.startswith("/") else posixpath.join(self.cwd, name)

    # -- building the menu --------------------------------------------------------------

    def entry_of(self, label: Label) -> BootEntry:
        title = strip_carets(label.menu_label) if label.menu_label is not None else label.name
        lines = list(label.lines)
        while lines and not lines[-1].strip(_BLANKS):
            lines.pop()
        entry = BootEntry(title=title, id=label.name, lines=lines)
        if label.disabled:
            entry.kind, entry.not_bootable = OTHER, "disabled in the menu"
        elif label.action is not None:
            entry.kind = OTHER
            entry.not_bootable = f"a menu command (MENU {label.action.upper()})"
        else:
            self.fill_boot(entry, label.keyword, label.kernel, label.append or "", label.initrd)
        return entry

    def fill_boot(
        self, entry: BootEntry, keyword: str, kernel: str, append: str, initrd: str | None
    ) -> None:
        """Kernel, initrds, args and kind from a label's KERNEL-type line, APPEND and INITRD."""
        file, own_args = split_word(kernel)
        if append.strip(_BLANKS) == "-":
            append = ""  # APPEND - : no options at all, not even the global ones
        cmdline = join_args(own_args, append)
        if initrd:
            cmdline = join_args(cmdline, "initrd=" + initrd)
        kind = kind_of(keyword, file)
        if kind == "mboot":
            self.fill_mboot(entry, cmdline)
        elif kind == LINUX:
            entry.kernel = self.resolve(file) if file else None
            entry.initrds = [self.resolve(p) for p in initrds_of(cmdline)]
            entry.args = without_initrd(cmdline)
        else:
            entry.kind = OTHER
            entry.kernel = self.resolve(file) if file and kind != "localboot" else None
            entry.args = cmdline
            entry.not_bootable = f"a SYSLINUX {kind} entry, not a Linux kernel"

    def fill_mboot(self, entry: BootEntry, cmdline: str) -> None:
        """mboot.c32 loads ``xen --- kernel args --- initrd``; a PV guest gets the kernel.

        As Xen's pygrub: the module after the first ``---`` is the Linux kernel with its
        arguments, the one after the second its initrd.
        """
        modules: list[list[str]] = [[]]
        for word in words(cmdline):
            if word == "---":
                modules.append([])
            else:
                modules[-1].append(word)
        if len(modules) < 2 or not modules[1]:
            entry.kind = MULTIBOOT
            entry.not_bootable = "an mboot.c32 entry without a Linux kernel module"
            return
        entry.kernel = self.resolve(modules[1][0])
        entry.args = " ".join(modules[1][1:])
        if len(modules) > 2 and modules[2]:
            entry.initrds = [self.resolve(modules[2][0])]

    def items_of(
        self, menu: Menu, prefix: tuple[int, ...], paths: dict[int, tuple[int, ...]]
    ) -> list[BootItem]:
        """The model's items for ``menu``; ``paths`` learns each label's index path."""
        items: list[BootItem] = []
        for index, item in enumerate(menu.items):
            path = prefix + (index,)
            if isinstance(item, Label):
                paths[id(item)] = path
                items.append(self.entry_of(item))
            else:
                title = item.display if item.display is not None else item.title
                title = strip_carets(title) if title is not None else item.tag or ""
                items.append(Submenu(title, self.items_of(item, path, paths), id=item.tag))
        return items

    def find_label(self, command: str) -> tuple[Label, str] | None:
        """The label a DEFAULT/ONTIMEOUT command names, and the words after it.

        The whole text matches first (U-Boot, SYSLINUX 4 and Xen's pygrub read LABEL and
        DEFAULT to the end of the line), then its first word (SYSLINUX 6's find_label).
        """
        for label in self.labels:
            if label.name == command:
                return label, ""
        word, extra = split_word(command)
        for label in self.labels:
            if label.name == word:
                return label, extra.rstrip(_BLANKS)
        return None

    def build(self) -> BootMenu:
        self.record()
        paths: dict[int, tuple[int, ...]] = {}
        menu = BootMenu(self.items_of(self.root, (), paths), format_name(self.ctx.path))
        if self.menu_mode():
            self.choose_in_menu(menu, paths)
        else:
            self.choose_at_prompt(menu, paths)
        return menu

    def menu_mode(self) -> bool:
        """Whether a menu module decides (UI, or DEFAULT naming menu.c32/vesamenu.c32)."""
        default = self.settings.default
        if self.settings.ui is not None:
            return True
        if not default or self.find_label(default) is not None:
            return False
        return posixpath.basename(split_word(default)[0]).lower() in MENU_MODULES

    def choose_in_menu(self, menu: BootMenu, paths: dict[int, tuple[int, ...]]) -> None:
        """menu.c32: ONTIMEOUT when the timeout runs out, else DEFAULT's label, MENU DEFAULT."""
        settings = self.settings
        menu.timeout = seconds(settings.timeout, settings.totaltimeout)
        menu.timeout_style = "hidden" if settings.hidden_menu else "menu"
        if settings.ontimeout and menu.timeout is not None:
            menu.default = self.command_path(menu, paths, settings.ontimeout)
            menu.default_reason = f"ONTIMEOUT {settings.ontimeout}"
            return
        found = self.find_label(settings.default) if settings.default else None
        if found is not None and id(found[0]) in paths:
            menu.default = paths[id(found[0])]
            menu.default_reason = f"DEFAULT names label {found[0].name!r}"
            return
        path: list[int] = []
        here: Menu | Label = self.root
        while isinstance(here, Menu) and here.items:
            index = here.default if here.default is not None else 0
            path.append(index)
            here = here.items[index]
        menu.default = tuple(path) or (0,)
        marked = self.root.default is not None
        menu.default_reason = "MENU DEFAULT" if marked else "the first label of the menu"

    def choose_at_prompt(self, menu: BootMenu, paths: dict[int, tuple[int, ...]]) -> None:
        """No menu: the boot: prompt runs DEFAULT (ONTIMEOUT when a PROMPT times out)."""
        settings = self.settings
        if settings.prompt:
            menu.timeout = seconds(settings.timeout, settings.totaltimeout)
        else:
            menu.timeout = 0.0
        menu.timeout_style = "hidden"
        command = settings.default
        reason = "DEFAULT"
        if settings.prompt and menu.timeout is not None and settings.ontimeout:
            command, reason = settings.ontimeout, "ONTIMEOUT"
        if not command:
            menu.default = (0,)
            menu.default_reason = "no DEFAULT (SYSLINUX would wait at boot:); the first label"
            return
        menu.default = self.command_path(menu, paths, command)
        menu.default_reason = f"{reason} {command}"

    def command_path(
        self, menu: BootMenu, paths: dict[int, tuple[int, ...]], command: str
    ) -> tuple[int, ...]:
        """The item a boot command runs; commands that are no menu item join the top level.

        A label with extra words, a hidden label, or a kernel named directly is booted by
        SYSLINUX all the same, so it gets an item of its own at the end of the menu.
        """
        found = self.find_label(command)
        if found is not None:
            label, extra = found
            if id(label) in paths and not extra:
                return paths[id(label)]
            entry = self.entry_of(label)
            entry.args = join_args(entry.args, extra)
            entry.title = command
        else:
            entry = BootEntry(title=command, lines=[f"default {command}"])
            self.fill_boot(entry, "kernel", command, self.settings.append or "", None)
        check_count("SYSLINUX menu items", self.item_count + 1, MAX_MENU_ENTRIES)
        menu.items.append(entry)
        return (len(menu.items) - 1,)


def skip_text_block(lines: list[str], index: int) -> int:
    """The index after a TEXT HELP block's ENDTEXT line (its lines are help, not commands)."""
    while index < len(lines):
        keyword, _ = split_word(lines[index].split("\r", 1)[0])
        index += 1
        if keyword.lower() == "endtext":
            break
    return index


def kind_of(keyword: str, file: str) -> str:
    """LINUX, "mboot" for Xen through mboot.c32, or the SYSLINUX name of another kind."""
    base = posixpath.basename(file).lower()
    if keyword in ("kernel", "com32") and base == "mboot.c32":
        return "mboot"
    if keyword == "linux":
        return LINUX
    if keyword == "kernel":
        for extension, kind in EXTENSION_KINDS.items():
            if base.endswith(extension) and not version_numbered(base, extension):
                return kind
        return LINUX
    return keyword


def version_numbered(base: str, extension: str) -> bool:
    """Whether ``.0`` ends a version (vmlinuz-4.1.0) rather than naming a PXE program.

    SYSLINUX would try vmlinuz-4.1.0 as a PXE image; U-Boot and Xen's pygrub boot it as
    the kernel it is, and so do we.
    """
    return extension == ".0" and base[-3:-2].isdigit()


def initrds_of(cmdline: str) -> list[str]:
    """The files of the first ``initrd=`` option, comma-separated, as SYSLINUX loads them."""
    for word in words(cmdline):
        if word.startswith("initrd="):
            return [name for name in word[len("initrd=") :].split(",") if name]
    return []


def without_initrd(cmdline: str) -> str:
    """The command line without its ``initrd=`` options (Xen's pygrub removes them)."""
    return _INITRD_TOKEN.sub("", cmdline).strip(_BLANKS)


def seconds(timeout: int, totaltimeout: int) -> float | None:
    """TIMEOUT/TOTALTIMEOUT (tenths of a second, 0 = none) as seconds; None waits forever."""
    limits = [t for t in (timeout, totaltimeout) if t > 0]
    return min(limits) / 10 if limits else None


def format_name(path: str) -> str:
    name = posixpath.basename(path).lower()
    if name.startswith("isolinux"):
        return "isolinux"
    if name.startswith("syslinux"):
        return "syslinux"
    return "extlinux"


def load(ctx: LoadContext) -> BootMenu:
    parser = Parser(ctx)
    parser.parse_file(ctx.path, ctx.text, 0)
    return parser.build()
