"""LILO: /etc/lilo.conf.

lilo.conf is a stream of ``name``, ``name=value`` and ``name="quoted value"`` options,
newlines mattering no more than blanks, ``#`` starting a comment where an option could
start. ``image=`` and ``other=`` open a section that runs to the next one; the options
before the first are global, and the kernel options among them (append, root, read-only,
read-write, initrd, literal) are defaults for every image.

The command line is built as Xen's pygrub builds it: ``append`` (plus ``addappend``),
then `` root=<root>`` and `` ro``/`` rw`` (``literal`` replaces all of it). Real LILO
passes ``BOOT_IMAGE=<label> ro root=<device number> <append>``; the kernel reads the same
options from either.
"""

from __future__ import annotations

import posixpath

from .._typing import TYPE_CHECKING
from ..errors import CorruptError, PygrubError
from ..limits import MAX_MENU_ENTRIES, check_count
from ..record import field, record
from .model import CHAINLOADER, BootEntry, BootItem, BootMenu

if TYPE_CHECKING:
    from . import LoadContext

#: Options that start a section.
SECTION_OPTIONS = frozenset({"image", "other"})
#: Kernel options that may also stand in the global section as defaults for every image.
KERNEL_DEFAULTS = ("append", "root", "initrd", "literal", "read-only", "read-write")
#: Options of a ``disk=`` geometry block: they describe BIOS drives, not a section.
DISK_OPTIONS = frozenset(
    {"disk", "bios", "sectors", "heads", "cylinders", "inaccessible", "max-partitions"}
)
_SPACE = " \t\r\f\v"


@record
class Option:
    name: str
    #: None for a flag such as ``read-only``.
    value: str | None
    line: int


@record
class Section:
    """An ``image=`` or ``other=`` section and the options that follow it."""

    kind: str
    path: str
    line: int
    options: dict[str, str | None] = field(default_factory=dict)
    last_line: int = 0


class Lexer:
    """Options out of lilo.conf text, one at a time."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.pos = 0
        self.line = 1

    def options(self) -> list[Option]:
        found = []
        while self.skip_blanks_and_comments():
            found.append(self.option())
        return found

    def skip_blanks_and_comments(self) -> bool:
        """Move to the next option; False at the end of the text."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\n":
                self.line += 1
                self.pos += 1
            elif char in _SPACE:
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return True
        return False

    def option(self) -> Option:
        start_line = self.line
        name = self.word(stop="=#")
        if not name:
            raise CorruptError(f"{self.path}:{self.line}: '=' without an option name")
        self.skip_space()
        if not self.peek("="):
            return Option(name.lower(), None, start_line)
        self.pos += 1
        self.skip_space()
        value = self.quoted() if self.peek('"') else self.word(stop="")
        return Option(name.lower(), value, start_line)

    def peek(self, char: str) -> bool:
        return self.text.startswith(char, self.pos)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def word(self, stop: str) -> str:
        """Characters up to a blank, a newline or one of ``stop``."""
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos] not in _SPACE + "\n" + stop:
            self.pos += 1
        return text[start : self.pos]

    def quoted(self) -> str:
        """A ``"..."`` value: ``\\"`` and ``\\\\`` escape, a backslash-newline continues."""
        start_line = self.line
        text = self.text
        self.pos += 1
        out: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\n":
                self.line += 1
            if char == "\\" and self.pos < len(text):
                escaped = text[self.pos]
                self.pos += 1
                if escaped == "\n":
                    self.line += 1
                    continue
                out.append(escaped if escaped in '"\\' else "\\" + escaped)
                continue
            out.append(char)
        raise CorruptError(f"{self.path}:{start_line}: quoted value never ends")


def split_sections(options: list[Option], path: str) -> tuple[dict[str, str | None], list[Section]]:
    """The global options and the sections, in file order."""
    globals_: dict[str, str | None] = {}
    sections: list[Section] = []
    for option in options:
        if option.name in SECTION_OPTIONS:
            check_count(f"{path}: LILO sections", len(sections) + 1, MAX_MENU_ENTRIES)
            if sections:
                sections[-1].last_line = option.line - 1
            sections.append(Section(option.name, option.value or "", option.line))
        elif option.name in DISK_OPTIONS:
            continue
        elif sections:
            sections[-1].options[option.name] = option.value
        else:
            globals_[option.name] = option.value
    return globals_, sections


def read_only_of(options: dict[str, str | None]) -> bool | None:
    """True for read-only, False for read-write, None when the section says neither.

    A dict keeps insertion order, so the one written last is the one that counts.
    """
    mode = None
    for name in options:
        if name == "read-only":
            mode = True
        elif name == "read-write":
            mode = False
    return mode


class Builder:
    def __init__(self, ctx: LoadContext, globals_: dict[str, str | None]) -> None:
        self.ctx = ctx
        self.globals = globals_
        self.lines = ctx.text.split("\n")

    def setting(self, section: Section, name: str) -> str | None:
        """A kernel option of the section, else its global default."""
        if name in section.options:
            return section.options[name]
        return self.globals.get(name)

    def entry_of(self, section: Section) -> BootEntry:
        options = section.options
        label = options.get("label") or posixpath.basename(section.path) or section.path
        last = section.last_line or len(self.lines)
        entry = BootEntry(title=label, id=label, lines=self.lines[section.line - 1 : last], args="")
        if section.kind == "other":
            entry.kind = CHAINLOADER
            entry.not_bootable = f"a LILO other= section ({section.path}), not a Linux kernel"
            return entry
        entry.kernel = absolute(section.path) if section.path else None
        initrd = self.setting(section, "initrd")
        if initrd:
            entry.initrds = [absolute(initrd)]
        entry.args = self.command_line(section)
        return entry

    def command_line(self, section: Section) -> str:
        literal = self.setting(section, "literal")
        if literal is not None:
            return literal.strip()
        parts = [self.setting(section, "append") or "", section.options.get("addappend") or ""]
        root = self.setting(section, "root")
        if root:
            parts.append("root=" + root)
        mode = read_only_of(section.options)
        if mode is None:
            mode = read_only_of(self.globals)
        if mode is not None:
            parts.append("ro" if mode else "rw")
        return " ".join(p.strip() for p in parts if p.strip())

    def wanted(self, section: Section) -> bool:
        """False for an ``optional`` image whose file is missing: lilo leaves it out."""
        if "optional" not in section.options and "optional" not in self.globals:
            return True
        if section.kind != "image" or self.ctx.fs is None:
            return True
        try:
            present = self.ctx.fs.is_file(absolute(section.path))
        except PygrubError:
            present = False
        if not present:
            self.ctx.notes.append(f"{self.ctx.path}:{section.line}: optional {section.path} absent")
        return present


def absolute(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def default_index(
    entries: list[BootEntry], sections: list[Section], name: str | None
) -> tuple[int, str]:
    """The section ``default=`` names by label or alias, else the first one."""
    if not name:
        return 0, "the first image (no default=)"
    for match in (lambda a, b: a == b, lambda a, b: a.casefold() == b.casefold()):
        for index, (entry, section) in enumerate(zip(entries, sections, strict=True)):
            alias = section.options.get("alias")
            if match(entry.title, name) or (alias and match(alias, name)):
                return index, f"default={name}"
    return 0, f"default={name} names no image; the first one"


def timeout_of(globals_: dict[str, str | None]) -> float | None:
    """Seconds at the boot: prompt (timeout= in tenths, none = forever); 0 without a prompt."""
    if "prompt" not in globals_:
        return tenths(globals_.get("delay")) or 0.0
    return tenths(globals_.get("timeout"))


def tenths(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 9:
        return None
    number = int(value.strip())
    return number / 10 if number > 0 else None


def load(ctx: LoadContext) -> BootMenu:
    globals_, sections = split_sections(Lexer(ctx.text, ctx.path).options(), ctx.path)
    builder = Builder(ctx, globals_)
    sections = [s for s in sections if builder.wanted(s)]
    entries = [builder.entry_of(s) for s in sections]
    items: list[BootItem] = list(entries)
    menu = BootMenu(items, "lilo")
    index, menu.default_reason = default_index(entries, sections, globals_.get("default"))
    menu.default = (index,)
    menu.timeout = timeout_of(globals_)
    menu.timeout_style = "menu" if "prompt" in globals_ else "hidden"
    return menu
