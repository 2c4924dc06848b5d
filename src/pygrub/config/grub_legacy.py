"""GRUB legacy (0.97): menu.lst / grub.conf, read the way GRUB's stage2 reads it.

A GRUB legacy config is a list of commands, one a line, with no script language. The
commands before the first ``title`` run when the menu loads (only the menu commands:
``default``, ``timeout``, ``password``, ...); each ``title`` starts an entry whose
commands run in order when it boots, stopping at the first one that fails, after which
GRUB tries the ``fallback`` entries. This module does with each line what GRUB would, so
the default and fallbacks name the entries GRUB boots, and an entry GRUB could not boot
says why in ``not_bootable`` instead of being guessed at.

Facts from GRUB 0.97's stage2 that decide indexes, and where Xen's GrubConf differs:

- A title followed by no known command is not an entry: the next title replaces it.
  Unknown commands are dropped as the file is read, so they do not count either.
- A command name ends at a blank or ``=``; then blanks and ``=`` are skipped, so
  ``default=1``, ``default 1`` and ``title=Linux`` all work.
- Numbers are GRUB's: decimal or ``0x`` hex, digits up to the first other character
  (``default 2 # two`` is 2), and anything past 0x7fffffff makes the command fail.
- Partitions count from 0: ``(hd0,0)`` is GRUB 2's ``hd0,1``; ``(hd0,4)`` the first
  logical partition, ``hd0,5``.

Solaris and illumos (their GRUB 0.97 fork, menus written by bootadm):

- ``findroot (SIG,0,a)`` makes the volume holding ``/boot/grub/bootsign/SIG`` the root
  (on ZFS the signature sits in the pool's top dataset); none holding it: the config's.
- ``bootfs pool/ROOT/be`` names the ZFS dataset the entry's files are read from; a
  ``zfs-bootfs=`` in --args overrides it (as Xen's pygrub opens that dataset); with
  neither, the pool's bootfs property decides. A dataset other than the config's own is
  written into the paths in GRUB 2's syntax, ``/ROOT/be@/platform/...``.
- ``kernel$`` and ``module$`` expand ``$ISADIR`` (amd64: Xen runs 64-bit PV guests),
  ``$ZFS-BOOTFS`` (the pool's boot string, as Xen's getbootstring makes it; left as it
  is off ZFS, as GRUB does) and ``${name}`` (``variable name value``), as expand.c does.
- An entry whose kernel is Solaris's (``/platform/*/kernel/[amd64/]unix``) boots as a
  Xen PV domain boots Solaris: the i86xpv kernel (for an i86pc one, the i86xpv kernel
  beside it, as PV-GRUB for illumos does), the first module (the boot archive) as the
  ramdisk, and the kernel path as the first word of the command line; ``-B`` property
  lists pass through untouched. Without an i86xpv kernel it stays a multiboot entry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from .._typing import TYPE_CHECKING
from ..errors import PygrubError
from ..limits import MAX_MENU_ENTRIES, check_count
from ..log import get_logger
from ..record import field, record
from . import solaris
from .model import CHAINLOADER, LINUX, MULTIBOOT, OTHER, BootEntry, BootItem, BootMenu, Password

if TYPE_CHECKING:
    from ..fs import Filesystem
    from . import LoadContext

log = get_logger(__name__)

FORMAT = "grub-legacy"

#: GRUB's MAXINT: a larger number makes the command that reads it fail.
MAX_NUMBER = 0x7FFFFFFF
#: GRUB keeps at most this many fallback entries (MAX_FALLBACK_ENTRIES).
MAX_FALLBACKS = 8
#: The largest partition number GRUB legacy accepts in a device name.
MAX_PARTITION = 254
#: GRUB stores the menu password in a 512-byte buffer (PASSWORD_BUFLEN) with two NULs.
MAX_PASSWORD = 0x200 - 2
#: GRUB reads the first 10 bytes of the ``default`` file and NUL-terminates the last.
SAVED_DEFAULT_CHARS = 9
#: Unknown command names kept for the one log line that reports them.
MAX_UNKNOWN_REPORTED = 8

#: Menu commands (BUILTIN_MENU): the only ones run before the first title.
MENU_COMMANDS = frozenset(
    "bootp color default device dhcp fallback hiddenmenu hide ifconfig pager partnew "
    "parttype password rarp serial setkey terminal terminfo tftpserver timeout unhide".split()
    # Distribution additions: Red Hat/Debian splash and colours, SUSE gfxmenu, illumos.
    + "splashimage foreground background gfxmenu min_mem64 variable".split()
)
#: Menu-only commands: inside an entry GRUB rejects them and the entry fails.
MENU_ONLY_COMMANDS = frozenset("default fallback hiddenmenu timeout".split())
#: Commands an entry may run (BUILTIN_CMDLINE), including illumos' Solaris additions.
ENTRY_COMMANDS = frozenset(
    "blocklist boot bootp cat chainloader cmp color configfile debug device dhcp "
    "displayapm displaymem dump embed find fstest geometry halt help hide ifconfig "
    "impsprobe initrd install ioprobe kernel lock makeactive map md5crypt module "
    "modulenounzip pager partnew parttype password pause quit rarp read reboot root "
    "rootnoverify savedefault serial setkey setup terminal terminfo testload testvbe "
    "tftpserver unhide uppermem vbeprobe".split()
    + "splashimage foreground background gfxmenu".split()
    + "kernel$ module$ findroot bootfs variable".split()
)
KNOWN_COMMANDS = MENU_COMMANDS | ENTRY_COMMANDS | {"title"}
#: Entry commands after which nothing boots here.
STOPPING_COMMANDS = {
    "halt": "halts the machine",
    "reboot": "reboots the machine",
    "quit": "quits GRUB",
}
#: ``kernel --type=`` values (matched as prefixes, as GRUB does) and the kind they load.
KERNEL_TYPES = (
    ("netbsd", OTHER),
    ("freebsd", OTHER),
    ("openbsd", OTHER),
    ("linux", LINUX),
    ("biglinux", LINUX),
    ("multiboot", MULTIBOOT),
)
#: BSD sub-partition letters in a device name: "(hd0,0,a)".
BSD_LETTERS = tuple("abcdefgh")
#: A GRUB blocklist: ``+1``, ``0+63``, ``2+1,10+2``.
BLOCKLIST = re.compile(r"\d*\+\d+(?:,\d*\+\d+)*")

_DIGITS = {c: i for i, c in enumerate("0123456789abcdef")} | {
    c: 10 + i for i, c in enumerate("ABCDEF")
}

#: Where ``findroot`` looks for its signature file on each volume.
BOOTSIGN_DIR = "/boot/grub/bootsign"
#: A signature is a file name; GRUB's own bound on the argument is smaller than this.
MAX_SIGNATURE = 255
#: illumos GRUB's variables (expand.c): names under 32 bytes, values under 220, 32 of them.
MAX_VARIABLE_NAME = 31
MAX_VARIABLE_VALUE = 219
MAX_VARIABLES = 32
#: ``kernel$``/``module$`` lines expand into GRUB's command-line buffer; past it they fail.
MAX_EXPANDED_LINE = 4096


@record(frozen=True, slots=True)
class Command:
    """One config line as GRUB reads it: blanks trimmed, its name and its argument."""

    #: 1-based number of the line it starts on (a backslash joins the next line).
    line: int
    text: str
    name: str
    arg: str


class Unbootable(Exception):
    """GRUB would stop this entry here; the message says why (internal, never escapes)."""


def load(ctx: LoadContext) -> BootMenu:
    """The menu GRUB legacy builds from ``ctx.text`` and the entry it boots by default."""
    settings = MenuSettings()
    items: list[BootItem] = []
    unknown = UnknownCommands()
    builder: EntryBuilder | None = None
    disk = SolarisDisk(ctx)
    for command in read_commands(ctx.text):
        if command.name == "title":
            add_entry(items, builder, ctx.path)
            # Every menu command comes before the first title: the password is known.
            builder = EntryBuilder(
                command.arg,
                command.line,
                settings.password is not None,
                disk,
                settings.variables,
            )
        elif command.name not in KNOWN_COMMANDS:
            unknown.add(command)
        elif builder is None:
            settings.apply(command, ctx.path)
        else:
            builder.add(command)
    add_entry(items, builder, ctx.path)
    unknown.report(ctx.path)

    if settings.saved_line is not None:
        settings.use_saved_default(ctx)
    return build_menu(items, settings, ctx.path, disk)


def build_menu(
    items: list[BootItem], settings: MenuSettings, path: str, disk: SolarisDisk | None = None
) -> BootMenu:
    """The BootMenu, with the default GRUB picks when the configured one does not exist."""
    count = len(items)
    default, reason = settings.default, settings.default_reason(path)
    # GRUB drops fallbacks past the end; a default past the end becomes the first fallback.
    fallback = [f for f in settings.fallback if f < count]
    if default >= count and fallback:
        reason += f", past the last entry: the first fallback, {fallback[0]}"
        default, fallback = fallback[0], fallback[1:]
    return BootMenu(
        items,
        FORMAT,
        config_path=path,
        default=(default,),
        fallback=[(f,) for f in fallback],
        timeout=settings.timeout,
        # Without a timeout GRUB shows the menu even when told to hide it.
        timeout_style="hidden" if settings.hidden and settings.timeout is not None else "menu",
        password=settings.password,
        default_reason=reason,
        evaluate=functools.partial(
            evaluate_entry,
            menu_password=settings.password is not None,
            disk=disk,
            variables=settings.variables,
        ),
    )


def evaluate_entry(
    title: str,
    lines: list[str],
    menu_password: bool,
    disk: SolarisDisk | None = None,
    variables: dict[str, str] | None = None,
) -> BootEntry:
    """An entry's edited (or typed) commands, run as GRUB runs an entry it boots.

    The menu's editor and command line use this; unlike in the file, a command GRUB
    does not know stops the entry (stage2 says "Unrecognized command").
    """
    builder = EntryBuilder(title, 1, menu_password, disk, variables)
    for number, line in enumerate(lines, 1):
        for command in read_commands(line):
            if command.name not in KNOWN_COMMANDS or command.name == "title":
                builder.entry.lines.append(command.text)
                if builder.entry.not_bootable is None:
                    builder.entry.not_bootable = (
                        f"line {number}: unknown command {quote(command.name, 30)}"
                    )
                builder.stopped = True
                continue
            builder.add(Command(number, command.text, command.name, command.arg))
    return builder.finish()


def add_entry(items: list[BootItem], builder: EntryBuilder | None, path: str) -> None:
    """Append the entry ``builder`` read, unless GRUB would drop it (no known command)."""
    if builder is None:
        return
    if not builder.entry.lines:
        log.info(
            "%s line %d: title %s has no commands; GRUB drops it",
            path,
            builder.line,
            quote(builder.entry.title),
        )
        return
    check_count(
        f"{path} line {builder.line}: GRUB legacy menu entries", len(items) + 1, MAX_MENU_ENTRIES
    )
    items.append(builder.finish())


# Reading lines -----------------------------------------------------------------------


def read_commands(text: str) -> Iterator[Command]:
    """The commands of a config, in order: no comments, no blank lines."""
    for number, line in logical_lines(text):
        # GRUB reads lines into C strings: a NUL ends the line.
        line = line.split("\0", 1)[0].strip(" ")
        if not line or line.startswith("#"):
            continue
        name, arg = split_command(line)
        yield Command(number, line, name, arg)


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Each line with the number of the physical line it starts on.

    GRUB drops every CR, reads a tab as a blank, and joins the next line to one that
    ends in a backslash (the pair becomes a blank), even a comment, which then goes on.
    """
    physical = text.replace("\r", "").replace("\t", " ").split("\n")
    last = len(physical)
    start = 1
    pieces: list[str] = []
    for number, piece in enumerate(physical, 1):
        if number < last and piece.endswith("\\"):
            pieces.append(piece[:-1] + " ")
            continue
        pieces.append(piece)
        yield start, "".join(pieces)
        start = number + 1
        pieces = []


def split_command(line: str) -> tuple[str, str]:
    """(name, argument): the name ends at a blank or '='; blanks and '=' after it are skipped."""
    end = len(line)
    for separator in " =":
        found = line.find(separator)
        if 0 <= found < end:
            end = found
    return line[:end], line[end:].lstrip(" =").rstrip(" ")


def first_word(text: str) -> tuple[str, str]:
    """(first word, the rest after the blanks that follow it)."""
    word, _, rest = text.partition(" ")
    return word, rest.lstrip(" ")


def parse_number(text: str) -> tuple[int, str] | None:
    """GRUB's safe_parse_maxint: (value, the text after it), or None (no digits, overflow).

    Decimal, or hexadecimal after ``0x``; the digits end at the first other character.
    """
    base, pos = 10, 0
    if text[:2] in ("0x", "0X"):
        base, pos = 16, 2
    value, start = 0, pos
    while pos < len(text):
        digit = _DIGITS.get(text[pos])
        if digit is None or digit >= base:
            break
        if value > (MAX_NUMBER - digit) // base:
            return None
        value = value * base + digit
        pos += 1
    if pos == start:
        return None
    return value, text[pos:]


def quote(text: str, limit: int = 60) -> str:
    """Guest text for a one-line message: quoted, escaped, and cut short."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


# Devices and paths -------------------------------------------------------------------


def grub2_device(spec: str) -> str:
    """GRUB 2's name (no scheme) of a GRUB legacy device: "hd0,0" -> "hd0,1", "hd0" -> "hd0".

    ``spec`` is the text between the parentheses. A BSD sub-partition ("hd0,0,a") is
    dropped to its slice. Raises Unbootable for what no Xen guest disk can be.
    """
    shown = f"({spec[:40]})"
    if not spec.startswith("hd"):
        raise Unbootable(f"device {shown} is not a hard disk")
    parsed = parse_number(spec[2:])
    if parsed is None:
        raise Unbootable(f"bad device {shown}")
    disk, rest = parsed
    if not rest:
        return f"hd{disk}"
    if not rest.startswith(","):
        raise Unbootable(f"bad device {shown}")
    rest = rest[1:]
    if rest[:1] in BSD_LETTERS:
        raise Unbootable(f"device {shown}: a BSD partition without its slice is not supported")
    parsed = parse_number(rest)
    if parsed is None or parsed[0] > MAX_PARTITION:
        raise Unbootable(f"bad partition in device {shown}")
    partition, rest = parsed
    rest = rest.removeprefix(",")
    if rest[:1] in BSD_LETTERS:
        rest = rest[1:]
    if rest:
        raise Unbootable(f"bad device {shown}")
    return f"hd{disk},{partition + 1}"


def split_device(word: str) -> tuple[str | None, str]:
    """(device as written, path) of a file name: "(hd0,0)/vmlinuz" -> ("hd0,0", "/vmlinuz").

    The device is None when the name has no "(...)" prefix.
    """
    if not word.startswith("("):
        return None, word
    close = word.find(")")
    if close < 0:
        raise Unbootable(f"no ')' after the device in {quote(word)}")
    return word[1:close], word[close + 1 :]


def check_file(path: str, what: str) -> str:
    """``path`` when it names a file; GRUB also reads blocklists, which pygrub cannot."""
    if path.startswith("/"):
        return path
    if BLOCKLIST.fullmatch(path):
        raise Unbootable(f"{what} {quote(path)} is a blocklist, not a file")
    raise Unbootable(f"{what} {quote(path)} is not an absolute path")


# The menu commands -------------------------------------------------------------------


@record
class MenuSettings:
    """What the commands before the first title set."""

    default: int = 0
    #: Line of the ``default NUM`` in force, or None.
    default_line: int | None = None
    #: Line of a ``default saved`` in force: the number comes from the ``default`` file.
    saved_line: int | None = None
    saved_note: str = ""
    fallback: list[int] = field(default_factory=list)
    timeout: float | None = None
    hidden: bool = False
    password: Password | None = None
    #: illumos ``variable`` definitions, for ``${name}`` in kernel$ and module$ lines.
    variables: dict[str, str] = field(default_factory=dict)

    def apply(self, command: Command, path: str) -> None:
        """Run one command before the first title, as GRUB does (a failing one changes nothing)."""
        if command.name not in MENU_COMMANDS:
            log.info(
                "%s line %d: %s is ignored before the first title", path, command.line, command.name
            )
            return
        handler = getattr(self, "set_" + command.name, None)
        if handler is None:
            log.debug("%s line %d: %s ignored", path, command.line, command.name)
        elif not handler(command):
            log.info("%s line %d: GRUB rejects %s", path, command.line, quote(command.text))

    def set_default(self, command: Command) -> bool:
        if command.arg == "saved":
            self.saved_line = command.line
            return True
        parsed = parse_number(command.arg)
        if parsed is None:
            return False
        self.default = parsed[0]
        self.default_line = command.line
        self.saved_line = None
        return True

    def set_fallback(self, command: Command) -> bool:
        entries: list[int] = []
        rest = command.arg
        while rest:
            parsed = parse_number(rest)
            if parsed is None:
                return False
            number, rest = parsed
            # GRUB skips a repeat without skipping the blanks after it, as here.
            if number in entries:
                continue
            entries.append(number)
            if len(entries) == MAX_FALLBACKS:
                break
            rest = first_word(rest)[1]
        self.fallback = entries
        return True

    def set_timeout(self, command: Command) -> bool:
        parsed = parse_number(command.arg)
        if parsed is None:
            return False
        self.timeout = float(parsed[0])
        return True

    def set_hiddenmenu(self, command: Command) -> bool:
        self.hidden = True
        return True

    def set_variable(self, command: Command) -> bool:
        return define_variable(self.variables, command.arg)

    def set_password(self, command: Command) -> bool:
        kind, rest = password_kind(command.arg)
        if len(rest) > MAX_PASSWORD:
            return False
        # A second word names a config file to load once the password is given.
        self.password = Password(kind, first_word(rest)[0])
        return True

    def use_saved_default(self, ctx: LoadContext) -> None:
        """``default saved``: the number grub-set-default wrote to ``default`` beside the config."""
        directory = ctx.path.rpartition("/")[0]
        default_path = f"{directory}/default"
        text = read_saved_default(ctx, default_path)
        parsed = parse_number(text[:SAVED_DEFAULT_CHARS]) if text is not None else None
        if parsed is None:
            self.default = 0
            self.saved_note = f"no saved entry in {default_path}: entry 0"
        else:
            self.default = parsed[0]
            self.saved_note = f"saved entry {self.default} from {default_path}"

    def default_reason(self, path: str) -> str:
        if self.saved_line is not None:
            return f"{self.saved_note} (default saved in {path} line {self.saved_line})"
        if self.default_line is not None:
            return f"default {self.default} in {path} line {self.default_line}"
        return f"no default in {path}: entry 0"


def password_kind(arg: str) -> tuple[str, str]:
    """(kind, the rest) of a ``password`` argument: ``--md5``, another ``--`` option, or plain."""
    if arg.startswith("--md5"):
        return "md5", first_word(arg)[1]
    if arg.startswith("--"):
        # GRUB accepts the line but no password ever matches it.
        return "unsupported", first_word(arg)[1]
    return "plain", arg


def read_saved_default(ctx: LoadContext, path: str) -> str | None:
    """The ``default`` file's text, or None when it cannot be read (GRUB then uses 0)."""
    try:
        return ctx.read_file(path)
    except PygrubError as e:
        log.info("%s: %s", path, e)
        return None


# Entries -----------------------------------------------------------------------------


class EntryBuilder:
    """Runs an entry's commands in order, as GRUB does when the entry boots."""

    def __init__(
        self,
        title: str,
        line: int,
        menu_password: bool,
        disk: SolarisDisk | None = None,
        variables: dict[str, str] | None = None,
    ) -> None:
        self.line = line
        #: ``lock`` stops an entry only when a menu password exists to unlock it.
        self.menu_password = menu_password
        self.entry = BootEntry(title)
        #: The root device the entry's commands see, GRUB 2's name; None is the config's
        #: own volume. ``root_name`` is the same device as the config wrote it, for people.
        self.root: str | None = None
        self.root_name: str | None = None
        self.loader: str | None = None
        self.stopped = False
        #: The disk around the config, for findroot and ZFS datasets; None: no disk (--isconfig).
        self.disk = disk
        #: illumos variables: the menu's, then this entry's own (GRUB's are global; an
        #: entry's changes matter only to the entry that makes them here).
        self.variables = dict(variables or {})
        #: The ZFS dataset named by ``bootfs``.
        self.bootfs: str | None = None
        #: The files of the module lines since the kernel line, in order.
        self.modules: list[str] = []

    def add(self, command: Command) -> None:
        self.entry.lines.append(command.text)
        if command.name == "lock" and self.menu_password:
            self.entry.locked = True
        elif command.name == "password":
            # Inside an entry, ``password`` asks for it before the entry goes on booting.
            self.entry.locked = True
        if self.stopped:
            return
        try:
            self.run(command)
        except Unbootable as e:
            self.entry.not_bootable = f"line {command.line}: {e}"
            self.stopped = True

    def run(self, command: Command) -> None:
        name, arg = command.name, command.arg
        if name in ("root", "rootnoverify"):
            self.set_root(arg)
        elif name == "kernel":
            self.load_kernel(arg)
        elif name == "kernel$":
            self.load_kernel(self.expand(arg))
        elif name == "initrd":
            self.load_initrd(arg)
        elif name in ("module", "modulenounzip"):
            self.load_module(name, arg)
        elif name == "module$":
            self.load_module(name, self.expand(arg))
        elif name == "findroot":
            self.find_root(arg)
        elif name == "bootfs":
            self.set_bootfs(arg)
        elif name == "variable":
            if not define_variable(self.variables, arg):
                raise Unbootable(f"variable {quote(arg, 40)} is not one GRUB can hold")
        elif name == "chainloader":
            self.load_chainloader(arg)
        elif name == "configfile":
            self.entry.kind = OTHER
            raise Unbootable(f"configfile {quote(arg)} loads another menu")
        elif name in STOPPING_COMMANDS:
            raise Unbootable(f"{name} {STOPPING_COMMANDS[name]}")
        elif name in MENU_ONLY_COMMANDS:
            raise Unbootable(f"{name} only works before the first title")
        elif name == "boot":
            # GRUB boots here: later lines never run.
            self.stopped = True

    def set_root(self, arg: str) -> None:
        word = first_word(arg)[0]
        if not word:
            return
        if not word.startswith("("):
            raise Unbootable(f"root {quote(word)} is not a device")
        self.root, self.root_name, _ = self.locate(word)

    def load_kernel(self, arg: str) -> None:
        entry = self.entry
        entry.kind = LINUX
        while arg.startswith(("--type=", "--no-mem-option")):
            if arg.startswith("--type="):
                entry.kind = kernel_kind(arg[len("--type=") :])
            arg = first_word(arg)[1]
        word, args = first_word(arg)
        entry.device, entry.device_name, path = self.locate(word)
        entry.kernel = check_file(path, "kernel")
        entry.args = args
        # A new kernel forgets what the previous one loaded.
        entry.initrds = []
        self.modules = []
        self.loader = "kernel"

    def load_initrd(self, arg: str) -> None:
        if self.loader != "kernel":
            raise Unbootable("initrd before any kernel")
        if self.entry.kind != LINUX:
            raise Unbootable(f"initrd after a {self.entry.kind} kernel, not a Linux one")
        device, name, path = self.locate(first_word(arg)[0])
        self.warn_other_device("initrd", device, name)
        # GRUB 0.97 loads one initrd: a second replaces the first.
        self.entry.initrds = [check_file(path, "initrd")]

    def load_module(self, name: str, arg: str) -> None:
        if self.loader != "kernel":
            raise Unbootable(f"{name} before any kernel")
        if self.entry.kind == LINUX:
            self.entry.kind = MULTIBOOT
        device, device_name, path = self.locate(first_word(arg)[0])
        self.warn_other_device(name, device, device_name)
        self.modules.append(path)

    def warn_other_device(self, what: str, device: str | None, name: str | None) -> None:
        if device != self.entry.device:
            log.warning(
                "title %s: %s on (%s) but kernel on (%s); reading both from the kernel's",
                quote(self.entry.title),
                what,
                name,
                self.entry.device_name,
            )

    def locate(self, word: str) -> tuple[str | None, str | None, str]:
        """(GRUB 2 device, device as written, path) of a file name; without a "(...)"
        prefix, the root's."""
        written, path = split_device(word)
        if written is None:
            return self.root, self.root_name, path
        return grub2_device(written), written, path

    def load_chainloader(self, arg: str) -> None:
        if arg.startswith("--force"):
            arg = first_word(arg)[1]
        word = first_word(arg)[0]
        device, name, path = self.locate(word)
        if not path:
            raise Unbootable("chainloader names no file")
        entry = self.entry
        entry.kind = CHAINLOADER
        entry.kernel, entry.args, entry.initrds = path, "", []
        entry.device, entry.device_name = device, name
        self.loader = "chainloader"

    # Solaris commands ----------------------------------------------------------------

    def find_root(self, arg: str) -> None:
        signature = findroot_signature(arg)
        if self.disk is not None:
            self.root = self.root_name = self.disk.signature_device(signature)

    def set_bootfs(self, arg: str) -> None:
        name = first_word(arg)[0]
        # illumos GRUB refuses a path; a snapshot cannot be a boot environment here.
        if not name or name.startswith("/") or "@" in name:
            raise Unbootable(f"bootfs {quote(name)} is not a ZFS dataset name")
        self.bootfs = name

    def expand(self, text: str) -> str:
        """``text`` with illumos GRUB's variables expanded (expand.c's expand_string)."""
        out: list[str] = []
        size = 0
        pos = 0
        while pos < len(text):
            piece, pos = self.expand_at(text, pos)
            out.append(piece)
            size += len(piece)
            if size > MAX_EXPANDED_LINE:
                raise Unbootable(f"the expanded line is over {MAX_EXPANDED_LINE} characters")
        return "".join(out)

    def expand_at(self, text: str, pos: int) -> tuple[str, int]:
        """What the text at ``pos`` expands to, and where the rest starts."""
        if text.startswith("$ISADIR", pos):
            return solaris.ISADIR, pos + len("$ISADIR")
        if text.startswith("$ZFS-BOOTFS", pos):
            boot_string = self.boot_string()
            if boot_string is not None:
                return boot_string, pos + len("$ZFS-BOOTFS")
        if text.startswith("${", pos):
            end = text.find("}", pos + 2, pos + 2 + MAX_VARIABLE_NAME + 1)
            if end < 0:
                return "${", pos + 2  # unterminated: copied as it is
            name = text[pos + 2 : end]
            if name not in self.variables:
                raise Unbootable(f"variable {quote(name, 40)} is not defined")
            return self.variables[name], end + 1
        return text[pos], pos + 1

    def boot_string(self) -> str | None:
        """``$ZFS-BOOTFS``: the boot string of the root's dataset; None off ZFS."""
        fs, _prefix = self.boot_dataset(self.root)
        return None if fs is None else fs.bootstring()

    def boot_dataset(self, device: str | None) -> tuple[Filesystem | None, str]:
        """The filesystem files on ``device`` are read from, and the path prefix naming its
        ZFS dataset when that is not the one the paths are read from by default."""
        if self.disk is None:
            return None, ""
        return self.disk.dataset(device, self.bootfs)

    # The end of the entry ---------------------------------------------------------------

    def finish(self) -> BootEntry:
        entry = self.entry
        if entry.not_bootable is None and self.loader == "kernel":
            try:
                self.place_files()
            except Unbootable as e:
                entry.not_bootable = str(e)
        if entry.not_bootable is None and self.loader is None:
            entry.not_bootable = "no kernel or chainloader line"
        return entry

    def place_files(self) -> None:
        """Where the kernel's files are: a Solaris PV boot, a ZFS dataset."""
        entry = self.entry
        assert entry.kernel is not None
        fs, prefix = self.boot_dataset(entry.device)
        if solaris.is_solaris_kernel(entry.kernel):
            self.boot_solaris(fs)
        if prefix and entry.kind in (LINUX, MULTIBOOT):
            entry.kernel = prefix + entry.kernel
            entry.initrds = [prefix + path for path in entry.initrds]

    def boot_solaris(self, fs: Filesystem | None) -> None:
        """Make a Solaris kernel's entry the PV boot Xen runs, when an i86xpv kernel is there."""
        entry = self.entry
        assert entry.kernel is not None
        kernel = entry.kernel
        pv = solaris.pv_kernel(kernel)
        assert pv is not None
        if pv != kernel and not holds_file(fs, pv):
            if entry.kind == MULTIBOOT:
                entry.not_bootable = (
                    f"a multiboot entry, not a Linux kernel: {kernel} is Solaris's "
                    f"bare-metal kernel and there is no PV kernel {pv} beside it"
                )
            return
        if not self.modules:
            raise Unbootable(f"the Solaris kernel {kernel} has no boot archive module")
        entry.kind = LINUX
        entry.kernel = pv
        entry.initrds = [check_file(self.modules[0], "module")]
        entry.args = " ".join(word for word in (pv, entry.args) if word)


def kernel_kind(value: str) -> str:
    """The entry kind of ``kernel --type=VALUE`` (GRUB matches the type as a prefix)."""
    for prefix, kind in KERNEL_TYPES:
        if value.startswith(prefix):
            return kind
    raise Unbootable(f"kernel --type={quote(first_word(value)[0])} is not a type GRUB knows")


class UnknownCommands:
    """Commands GRUB does not know, which it drops as it reads: reported in one line."""

    def __init__(self) -> None:
        self.count = 0
        self.examples: list[str] = []

    def add(self, command: Command) -> None:
        self.count += 1
        if len(self.examples) < MAX_UNKNOWN_REPORTED:
            self.examples.append(f"{quote(command.name, 30)} (line {command.line})")

    def report(self, path: str) -> None:
        if self.count:
            more = (
                f" and {self.count - len(self.examples)} more"
                if self.count > len(self.examples)
                else ""
            )
            log.warning("%s: unknown commands ignored: %s%s", path, ", ".join(self.examples), more)


# Solaris and illumos -----------------------------------------------------------------


class SolarisDisk:
    """The disk as Solaris's GRUB commands see it: signature files and ZFS datasets."""

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        #: Xen's pygrub opens a ZFS pool at the dataset a ``zfs-bootfs=`` in --args names.
        self.zfs_bootfs = solaris.zfs_bootfs_option(ctx.extra_args)
        self._signatures: dict[str, str | None] = {}
        self._datasets: dict[tuple[str | None, str | None], tuple[Filesystem | None, str]] = {}

    def signature_device(self, signature: str) -> str | None:
        """The device ``findroot`` makes the root: the config's own volume (None) when it
        holds the signature file, else the first volume that does, else the config's."""
        if signature not in self._signatures:
            self._signatures[signature] = self.find_signature(signature)
        return self._signatures[signature]

    def find_signature(self, signature: str) -> str | None:
        path = f"{BOOTSIGN_DIR}/{signature}"
        ctx = self.ctx
        if ctx.fs is not None and holds_signature(ctx.fs, path):
            return None
        if ctx.guest is None:
            return None
        for volume, fs in ctx.guest.filesystems():
            if volume is not ctx.volume and holds_signature(fs, path):
                return volume.grub_name
        log.info("%s: no volume holds %s; the config's volume is the root", ctx.path, path)
        return None

    def volume_fs(self, device: str | None) -> Filesystem | None:
        """The filesystem a device's files are read from; None: the config's own."""
        ctx = self.ctx
        if device is None or ctx.guest is None:
            return ctx.fs if device is None else None
        volume = ctx.guest.find_volume(device)
        return ctx.guest.filesystem(volume) if volume is not None else None

    def default_fs(self, device: str | None) -> Filesystem | None:
        """The volume's filesystem as probed: on ZFS, at the pool's bootfs dataset."""
        ctx = self.ctx
        if device is None and ctx.guest is not None and ctx.volume is not None:
            return ctx.guest.filesystem(ctx.volume) or ctx.fs
        return self.volume_fs(device)

    def dataset(self, device: str | None, bootfs: str | None) -> tuple[Filesystem | None, str]:
        """The filesystem an entry on ``device`` reads its files from, and the path prefix
        (``/ROOT/be@``) naming its ZFS dataset when it is not the one paths go to."""
        key = (device, bootfs)
        if key not in self._datasets:
            self._datasets[key] = self.find_dataset(device, bootfs)
        return self._datasets[key]

    def find_dataset(self, device: str | None, bootfs: str | None) -> tuple[Filesystem | None, str]:
        home = self.volume_fs(device)
        if home is None or home.kind != "zfs":
            return home, ""
        view = solaris.as_zfs(home)
        default = self.default_fs(device)
        if default is None or default.kind != "zfs":
            default = view
        name = self.zfs_bootfs or bootfs or solaris.as_zfs(default).dataset
        if name == view.dataset:
            return view, ""
        try:
            chosen = view.with_dataset(name)
        except PygrubError as e:
            raise Unbootable(f"ZFS dataset {quote(name, 80)}: {e}") from None
        # GRUB 2's /dataset@/path names a dataset relative to the pool; "/@" its top.
        return chosen, "/" + chosen.dataset.partition("/")[2] + "@"


def holds_signature(fs: Filesystem, path: str) -> bool:
    """Whether ``fs`` has the findroot signature file; ZFS keeps it in the pool's top dataset."""
    try:
        if fs.kind == "zfs":
            fs, path = fs.grub_path("/@" + path)
        return fs.is_file(path)
    except PygrubError:
        return False


def holds_file(fs: Filesystem | None, path: str) -> bool:
    if fs is None:
        return False
    try:
        return fs.is_file(path)
    except PygrubError:
        return False


def findroot_signature(arg: str) -> str:
    """The signature of ``findroot SIG`` or ``findroot (SIG,0,a)``; the partition and slice
    only speed GRUB's search up, which pygrub does not need."""
    word = first_word(arg)[0]
    if word.startswith("("):
        close = word.find(")")
        if close < 0:
            raise Unbootable(f"no ')' after the signature in {quote(word)}")
        word = word[1:close].split(",", 1)[0]
    if not word or word in (".", "..") or "/" in word or len(word) > MAX_SIGNATURE:
        raise Unbootable(f"findroot {quote(word)} is not a signature file name")
    return word


def define_variable(variables: dict[str, str], arg: str) -> bool:
    """``variable NAME [VALUE]``; False when GRUB's table cannot take it."""
    name, value = first_word(arg)
    if not name or len(name) > MAX_VARIABLE_NAME or len(value) > MAX_VARIABLE_VALUE:
        return False
    if name not in variables and len(variables) >= MAX_VARIABLES:
        return False
    variables[name] = value
    return True
