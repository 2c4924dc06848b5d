"""The ``pygrub`` command: Xen 4.17's flags and outputs, argv and exit codes.

libxl runs:  pygrub [--kernel=K] [--ramdisk=R] [--args=A] [--runas=UID --quiet]
                    --output=FILE --output-format=simple0 --output-directory=DIR [...] DISK
Only this module knows about argv, stdout/stderr and exit codes. It imports the readers
only after the arguments are parsed, so ``--help`` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType, ModuleType

from . import log
from ._typing import TYPE_CHECKING
from .errors import Interrupted, PygrubError, UsageError
from .record import record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, NoReturn, TextIO

    from .api import Choice, Image, Menu, MenuEntry
    from .boot import BootPlan, Chooser
    from .config.model import BootEntry, BootMenu

    MenuChoice = tuple[tuple[int, ...], BootEntry]

_log = log.get_logger("pygrub")

DEFAULT_OUTPUT_DIRECTORY = "/var/run/xen/pygrub/"
#: What --output-format and --format accept (the readers' own list is disk.source.IMAGE_FORMATS).
OUTPUT_FORMATS = ("sxp", "simple", "simple0", "json")
IMAGE_FORMATS = ("auto", "raw", "qcow2")


@record(frozen=True)
class Flag:
    """One command-line option: what getopt parses, --help prints and the man page says."""

    long: str
    #: One letter, or None.
    short: str | None
    #: The value's name (FILE, FMT, ...); None when the option takes none.
    value: str | None
    #: For --help and the man page: the first line is the summary, the rest continue it.
    help: str
    #: Said only in the man page, after the help text.
    detail: str = ""


FLAGS: tuple[Flag, ...] = (
    Flag("quiet", "q", None, "no menu: boot the default entry"),
    Flag(
        "interactive",
        "i",
        None,
        "show the menu on the terminal (the default)",
        "Without a terminal on stdin and stdout the default entry boots.",
    ),
    Flag(
        "list-entries",
        "l",
        None,
        "list the menu entries and exit",
        "Each entry as Xen's pygrub lists it (title, root, kernel, args, initrd lines); "
        "with --output-format=json, the whole menu as a tree.",
    ),
    Flag(
        "not-really",
        "n",
        None,
        "choose the entry but extract nothing",
        "The output names kernel None (null in JSON), as Xen's pygrub does.",
    ),
    Flag("help", "h", None, "show this help"),
    Flag("version", None, None, "print the version (pygrub X.Y.Z) and exit"),
    Flag(
        "output",
        None,
        "FILE",
        "write the result to FILE (an existing file; default stdout)",
        "FILE is opened write-only and never created; - is stdout.",
    ),
    Flag(
        "output-format",
        None,
        "FMT",
        "sxp (default), simple, simple0 or json",
        "sxp: linux (kernel '...')(ramdisk '...')(args '...'). simple and simple0: "
        "kernel, ramdisk and args items each ended by a newline or a NUL, then one more. "
        "json: one object described by the JSON Schema shipped in the package "
        "(pygrub/output.schema.json), with the entry, the config file and the volume.",
    ),
    Flag(
        "output-directory",
        None,
        "DIR",
        "where boot_kernel.* and boot_ramdisk.* go\n"
        "(default /var/run/xen/pygrub/; either created 0700 when missing)",
        "A relative DIR still gives absolute paths in the output, as Xen's pygrub does.",
    ),
    Flag(
        "kernel",
        None,
        "PATH",
        "boot this kernel from the image; the menu is skipped",
    ),
    Flag(
        "ramdisk",
        None,
        "PATH",
        "with --kernel, this initrd",
        "Without --kernel it is a usage error (Xen's pygrub ignores it).",
    ),
    Flag("args", None, "ARGS", "with --kernel, the command line; otherwise appended to it"),
    Flag(
        "entry",
        None,
        "N|TITLE|ID|A>B",
        "boot this entry (implies non-interactive)",
        "A number N is the Nth entry as -l lists them (from 0, submenus flattened), as in "
        "Xen's pygrub; a title or an id matches at the top level first, then at any depth; "
        "A>B walks into submenus, counting as GRUB does (a submenu is one item).",
    ),
    Flag("offset", None, "BYTES", "the filesystem starts at BYTES; no partition table is read"),
    Flag(
        "format",
        None,
        "FMT",
        "the image's format: auto (default), raw or qcow2",
        "auto reads a qcow2 image by its magic and anything else as raw; raw never "
        "interprets a qcow2 header, as a guest-written raw disk must not be.",
    ),
    Flag(
        "isconfig",
        None,
        None,
        "IMAGE is a bootloader config file on this host",
        "The files it reads beside it (includes, loader/entries) are read inside the "
        "directory its path ends in as its loader's does: /srv/g for "
        "/srv/g/boot/grub2/grub.cfg, else the config's own directory.",
    ),
    Flag(
        "runas",
        None,
        "UID",
        "read the image as this user",
        "The image is read in the sandbox every run has by default (new namespaces, an "
        "empty root, resource limits, no other files), as this user; the file size limit "
        "is then 128 MiB, as Xen's. The menu works too: pygrub draws on the terminal "
        "what the sandboxed reader describes, and edits are evaluated in the sandbox.",
    ),
    Flag(
        "no-sandbox",
        None,
        None,
        "read the disk as root, outside the sandbox: unsafe for untrusted guests",
        "By default pygrub reads the disk in the sandbox --runas describes, as a user of "
        "its own (0x70000000 plus its pid; not root: as the caller, in a user namespace). "
        "Use this only where the sandbox cannot be built and the guest is trusted, or to "
        "read a qcow2 backing file.",
    ),
    Flag(
        "explain",
        None,
        None,
        "say which rule chose the entry (on stderr; with -l, on stdout)",
        "The volumes skipped and why, the config file and its volume, the loader's "
        "default rule and every fallback taken.",
    ),
    Flag("debug", None, None, "log what is tried, and show tracebacks"),
    # XCP-ng's pygrub patches (xcp-ng-rpms/xen SOURCES/pygrub-*.patch) add these three;
    # xenopsd passed all three until it moved to --runas, and a VM's PV-bootloader-args
    # may still name them.
    Flag(
        "extra_args",
        None,
        "ARGS",
        "append ARGS to whatever command line boots (XCP-ng)",
        "After --args, and also to the line of --kernel and of /xenkernel.",
    ),
    Flag(
        "default_args",
        None,
        "ARGS",
        "boot /xenkernel with ARGS when the disk has one (XCP-ng)",
        "/xenkernel, else /boot/xenkernel, on the first volume, with /xeninitrd (or "
        "/boot/xeninitrd) when there is one, boots before any config is read, as on XCP-ng "
        "hosts; ARGS (and --extra_args) are its command line. Xen's pygrub has no such rule, "
        "so without this flag a /xenkernel means nothing.",
    ),
    Flag("vm", None, "UUID", "ignored: XCP-ng's pygrub accepts it and does nothing with it"),
)

#: Every environment variable pygrub reads, for --help, the man page and the README
#: (tests/test_manpage.py checks that the code reads no other).
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("PYGRUB_MAX_FILE_SIZE_MB", "per-file limit, default 1024; 128 with --runas"),
    ("PYGRUB_MAX_RAM_USAGE_MB", "the sandboxed reader's memory limit, default 256"),
    ("PYGRUB_TIMEOUT", "seconds an unattended run may take, default 60"),
    ("PYGRUB_MENU_MAX_WAIT", "longest wait of the menu for a first key, default 30"),
    ("PYGRUB_ALLOW_BACKING", "1 lets a qcow2 image use a backing file in its own directory"),
    ("TERM", "the menu's terminal type; libxl sets vt100"),
)

EXIT_STATUS = "0 on success, 1 on error, 2 on a usage error."

DESCRIPTION = (
    "Find the kernel a Xen guest's disk would boot, copy it (and its initrd) out, and print\n"
    "where they are and the kernel command line. The image is only ever read."
)


def flag_names(flag: Flag) -> str:
    """The flag as --help names it: "-q, --quiet" or "--output=FILE"."""
    name = f"--{flag.long}" + (f"={flag.value}" if flag.value else "")
    return f"-{flag.short}, {name}" if flag.short else name


def usage(prog: str) -> str:
    return (
        f"Usage: {prog} [-q|--quiet] [-i|--interactive] [-l|--list-entries] [-n|--not-really] "
        "[--output=] [--kernel=] [--ramdisk=] [--args=] [--entry=] [--output-directory=] "
        f"[--output-format={'|'.join(OUTPUT_FORMATS)}] [--format={'|'.join(IMAGE_FORMATS)}] "
        "[--runas=] [--no-sandbox] [--offset=] [--explain] [--extra_args=] [--default_args=] "
        "[--vm=] <image>"
    )


def help_text() -> str:
    """--help after the usage line: FLAGS and ENVIRONMENT in two columns."""
    lines = ["", DESCRIPTION, ""]
    for flag in FLAGS:
        names = flag_names(flag)
        first, *rest = flag.help.split("\n")
        if len(names) <= 22:
            lines.append(f"  {names:<22}  {first}")
        else:
            lines += [f"  {names}", f"{'':26}{first}"]
        lines += [f"{'':26}{more}" for more in rest]
    lines.append("")
    lines.append(
        "Environment: " + ",\n".join(f"{name} ({text})" for name, text in ENVIRONMENT) + "."
    )
    lines.append(f"Exit status: {EXIT_STATUS}")
    return "\n".join(lines) + "\n"


#: Seconds an unattended run may take (PYGRUB_TIMEOUT).
DEFAULT_TIMEOUT = 60.0


@record
class Options:
    image: str
    interactive: bool = True
    list_entries: bool = False
    not_really: bool = False
    output: str | None = None
    output_format: str = "sxp"
    output_directory: str = DEFAULT_OUTPUT_DIRECTORY
    kernel: str | None = None
    ramdisk: str | None = None
    args: str = ""
    entry: str | None = None
    offset: int | None = None
    isconfig: bool = False
    runas: int | None = None
    #: --no-sandbox turns this off: see sandboxed_by_default.
    sandbox: bool = True
    debug: bool = False
    image_format: str = "auto"
    explain: bool = False
    #: XCP-ng's --extra_args and --default_args (None: no /xenkernel rule).
    extra_args: str = ""
    default_args: str | None = None


class HelpRequested(Exception):
    pass


class VersionRequested(Exception):
    pass


def _getopt_without_gettext() -> ModuleType:
    """The getopt module, imported without gettext.

    getopt imports gettext only to translate its messages, which no catalog translates,
    and that import is a millisecond of every start. Told gettext is missing, getopt keeps
    its messages as they are.
    """
    blocked = "getopt" not in sys.modules and "gettext" not in sys.modules
    if blocked:
        sys.modules["gettext"] = None  # type: ignore[assignment]
    try:
        import getopt
    finally:
        if blocked:
            del sys.modules["gettext"]
    return getopt


def parse_args(argv: list[str]) -> Options:
    """Parse argv as Xen's pygrub does (GNU getopt: options may follow the image)."""
    getopt = _getopt_without_gettext()
    try:
        opts, rest = getopt.gnu_getopt(
            argv,
            "".join(f.short + (":" if f.value else "") for f in FLAGS if f.short),
            [f.long + ("=" if f.value else "") for f in FLAGS],
        )
    except getopt.GetoptError as e:
        raise UsageError(str(e)) from None
    if any(o in ("-h", "--help") for o, _ in opts):
        raise HelpRequested
    if any(o == "--version" for o, _ in opts):
        raise VersionRequested
    if len(rest) != 1:
        raise UsageError(
            "exactly one disk image is needed"
            if not rest
            else f"unexpected arguments: {' '.join(rest[1:])}"
        )
    o = Options(rest[0])
    for name, value in opts:
        if name in ("-q", "--quiet"):
            o.interactive = False
        elif name in ("-i", "--interactive"):
            o.interactive = True
        elif name in ("-l", "--list-entries"):
            o.list_entries = True
        elif name in ("-n", "--not-really"):
            o.not_really = True
        elif name == "--output":
            o.output = None if value == "-" else value
        elif name == "--runas":
            o.runas = _integer("--runas", value)
        elif name == "--kernel":
            o.kernel = value
        elif name == "--ramdisk":
            o.ramdisk = value
        elif name == "--args":
            o.args = value
        elif name == "--offset":
            o.offset = _integer("--offset", value)
            if o.offset < 0:
                raise UsageError("--offset must not be negative")
        elif name == "--entry":
            o.entry = value
            o.interactive = False
        elif name == "--isconfig":
            o.isconfig = True
        elif name == "--debug":
            o.debug = True
        elif name == "--output-format":
            if value not in OUTPUT_FORMATS:
                raise UsageError(f"unknown output format {value}")
            o.output_format = value
        elif name == "--format":
            if value not in IMAGE_FORMATS:
                raise UsageError(f"unknown image format {value}: not {', '.join(IMAGE_FORMATS)}")
            o.image_format = value
        elif name == "--explain":
            o.explain = True
        elif name == "--no-sandbox":
            o.sandbox = False
        elif name == "--extra_args":
            o.extra_args = value
        elif name == "--default_args":
            o.default_args = value
        elif name == "--output-directory":
            if not value:
                raise UsageError("--output-directory needs a directory")
            # Made 0700 when missing, as the default is (Xen refuses a missing one).
            o.output_directory = value + "/"
    if o.runas is not None and not o.sandbox:
        raise UsageError("--runas reads the disk in the sandbox: it cannot go with --no-sandbox")
    _check_combinations(o)
    return o


def _check_combinations(o: Options) -> None:
    if o.ramdisk is not None and o.kernel is None:
        # Xen ignores it; a ramdisk is only ever given with the kernel it goes with.
        raise UsageError("--ramdisk needs --kernel: it names the initrd of that kernel")
    if o.isconfig and o.output_format == "json":
        raise UsageError("--output-format=json does not apply to --isconfig")


def _integer(flag: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{flag} value must be an integer") from None


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    if signum == signal.SIGALRM:
        raise Interrupted(f"took longer than {run_budget():g} s (PYGRUB_TIMEOUT)")
    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


def run_budget() -> float:
    """Seconds an unattended run may take, from PYGRUB_TIMEOUT (default 60; libxl waits longer)."""
    raw = os.environ.get("PYGRUB_TIMEOUT", "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise UsageError(f"PYGRUB_TIMEOUT must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise UsageError(f"PYGRUB_TIMEOUT must be positive, not {raw!r}")
    return value


def command() -> NoReturn:
    """The ``pygrub`` command: :func:`main`, then out without the interpreter's teardown.

    Unloading the modules of a run costs 10-12 ms of every domain start, and by the time
    main returns every file it opened is closed; only stdout and stderr need a flush.
    """
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 1
    os._exit(status)


def main(argv: list[str] | None = None) -> int:
    prog = "pygrub"
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = parse_args(argv)
    except HelpRequested:
        print(usage(prog) + "\n" + help_text(), end="")
        return 0
    except VersionRequested:
        from . import __version__

        print(f"{prog} {__version__}")
        return 0
    except UsageError as e:
        # The usage first: the error stays the last line, all XAPI shows of a bad flag.
        print(usage(prog), file=sys.stderr)
        print(error_line(prog, str(e)), file=sys.stderr)
        return 2
    log.configure(
        log.DEBUG if options.debug else log.WARNING, f"{prog}: %(levelname)s: %(message)s"
    )
    previous = {
        s: signal.signal(s, _raise_interrupted)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
    }
    try:
        # The menu needs a terminal on stdin and stdout; anywhere else the default boots.
        options.interactive = options.interactive and not options.list_entries
        options.interactive = options.interactive and os.isatty(0) and os.isatty(1)
        # The run has a budget; the menu stops the clock while a person looks at it.
        signal.setitimer(signal.ITIMER_REAL, run_budget())
        return run(options)
    except (PygrubError, Interrupted) as e:
        if options.debug:
            _log.exception("failed")
        print(error_line(prog, str(e)), file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except (Exception, RecursionError, MemoryError) as e:
        # A bug of ours, not the guest's: still one line, and everything was cleaned up.
        if options.debug:
            _log.exception("internal error")
        print(error_line(prog, f"internal error: {type(e).__name__}: {e}"), file=sys.stderr)
        return 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, handler in previous.items():
            signal.signal(s, handler)


#: xenopsd (xen-api ocaml/xenopsd/lib/bootloader.ml, parse_exception) shows its user what
#: follows this on the bootloader's stderr; a failure without it is an internal error there.
#: Xen's pygrub reaches it by the last line of its traceback.
XAPI_ERROR_MARK = "RuntimeError: "


def error_line(prog: str, message: str) -> str:
    """The one line a failure prints: libxl's log reads it whole, XAPI from the mark on."""
    return f"{prog}: error: {XAPI_ERROR_MARK}{_one_line(message)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def sandboxed_by_default(o: Options) -> bool:
    """Whether a run without --runas reads the disk in the sandbox: all but --no-sandbox
    and --isconfig (a host file the administrator names, with what it includes beside it,
    which the sandbox's one-file root cannot hold). The menu runs in the sandbox too."""
    return o.sandbox and not o.isconfig


def run(o: Options) -> int:
    if o.runas is not None:
        from .sandbox import run_deprivileged

        return run_deprivileged(o)
    if sandboxed_by_default(o):
        from .sandbox import run_by_default

        return run_by_default(o)

    if o.isconfig:
        return _run_isconfig(o)

    from .api import Image

    with Image(o.image, offset=o.offset, image_format=o.image_format) as image:
        if o.list_entries:
            return _list_entries(image, o)
        chooser = _menu_chooser() if o.interactive else None
        choice = image._choose(
            o.entry, o.args, o.kernel, o.ramdisk, chooser, o.default_args, o.extra_args
        )
        if o.explain:
            _print_explanation(choice.explanation, sys.stderr)
        return _extract_and_report(choice, o)


def _menu_chooser() -> Chooser:
    """The interactive menu as plan_boot's chooser, the run's budget paused while it shows."""
    from .menu import choose_interactively

    def chooser(menu: BootMenu, why_not: Callable[[BootEntry], str | None]) -> MenuChoice:
        with budget_paused():
            return choose_interactively(menu, why_not)

    return chooser


class budget_paused:  # noqa: N801 - used as a function: ``with budget_paused():``
    """The run's clock stopped while a person looks at the menu, restarted in full after.

    A class, not contextlib's decorator: importing contextlib is time every run pays.
    """

    def __enter__(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)

    def __exit__(self, *_exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, run_budget())


def _open_output(o: Options) -> int:
    if o.output is None:
        return sys.stdout.fileno()
    try:
        # Xen opens the file libxl made: write-only, never created here.
        return os.open(o.output, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PygrubError(f"cannot open output file {o.output}: {e.strerror}") from None


def _make_output_directory(directory: str) -> None:
    try:
        os.makedirs(directory, 0o700)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise PygrubError(
                f"output directory {directory} exists and is not a directory"
            ) from None
    except OSError as e:
        raise PygrubError(f"cannot create output directory {directory}: {e.strerror}") from None


def _extract_and_report(choice: Choice, o: Options) -> int:
    from .extract import Extraction
    from .limits import max_file_size

    plan = choice._plan
    limit = max_file_size()
    out_fd = _open_output(o)
    try:
        if o.not_really:
            _print_would_extract(plan)
            _write_all(out_fd, _rendered(o, choice, None, None), o)
            return 0
        _make_output_directory(o.output_directory)
        with Extraction(o.output_directory) as extraction:
            kernel_path = extraction.write("boot_kernel.", [plan.kernel], limit)
            ramdisk_path = None
            if plan.initrds:
                ramdisk_path = extraction.write(
                    "boot_ramdisk.", plan.initrds, limit, pad=len(plan.initrds) > 1
                )
            data = _rendered(o, choice, kernel_path, ramdisk_path)
            sys.stdout.flush()
            _write_all(out_fd, data, o)
            extraction.keep()
        return 0
    finally:
        if out_fd != sys.stdout.fileno():
            os.close(out_fd)


def _print_would_extract(plan: BootPlan) -> None:
    for ref in [plan.kernel, *plan.initrds]:
        print(f"would extract {ref} ({ref.size()} bytes)", file=sys.stderr)


def _rendered(o: Options, choice: Choice, kernel: str | None, ramdisk: str | None) -> bytes:
    from .output import boot_json, render, render_json

    if o.output_format == "json":
        return render_json(boot_json(choice, kernel, ramdisk))
    return render(o.output_format, kernel, ramdisk, choice.args or None)


def _write_all(fd: int, data: bytes, o: Options) -> None:
    """The output, all of it, to the output file (or stdout) ``fd`` of ``o``."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except OSError as e:
            where = f"output file {o.output}" if o.output is not None else "standard output"
            raise PygrubError(f"writing the {where}: {e.strerror}") from None


def _list_entries(image: Image, o: Options) -> int:
    menu = image.menu(o.args)
    if o.output_format == "json":
        from .output import menu_json, render_json

        sys.stdout.flush()
        sys.stdout.buffer.write(render_json(menu_json(menu)))
        sys.stdout.flush()
        if o.explain:
            _print_explanation(menu.explanation, sys.stderr)
        return 0
    print(
        f"Using {menu.bootloader} config {menu.config_path} on ({menu.volume.device})",
        file=sys.stderr,
    )
    _print_entries(menu.entries())
    if o.explain:
        _print_explanation((*menu_tree(menu), *menu.explanation), sys.stdout)
    return 0


def _print_entries(entries: Iterable[BootEntry | MenuEntry]) -> None:
    """The entries as Xen's pygrub lists them (title, root, kernel, args, initrd)."""
    for entry in entries:
        root = f"({entry.device})" if entry.device else "None"
        print(f"title: {entry.title}")
        print(f"  root: {root}")
        print(f"  kernel: {entry.kernel}")
        print(f"  args: {entry.args}")
        print(f"  initrd: {' '.join(entry.initrds)}")


def menu_tree(menu: Menu) -> list[str]:
    """The menu for people: one line per item, indented by depth, the default marked ``*``."""
    lines = [f"menu of {menu.config_path} ({menu.bootloader}); * the default:"]
    for path, item in _walk_public(menu.items):
        text = f"{'*' if item.default else ' '} {'  ' * (len(path) - 1)}"
        text += f"{'>'.join(map(str, path))} {item.title}"
        if item.id is not None:
            text += f" [id {item.id}]"
        if hasattr(item, "items"):
            text += " >"
        elif item.not_bootable is not None:
            text += f" (cannot boot here: {item.not_bootable})"
        if path == menu.chosen and not item.default:
            text += " (boots: fallback)"
        lines.append(text)
    return lines


def _walk_public(items: tuple) -> Iterator[tuple[tuple[int, ...], Any]]:
    for item in items:
        yield item.path, item
        if hasattr(item, "items"):
            yield from _walk_public(item.items)


def _print_explanation(lines: Iterable[str], stream: TextIO) -> None:
    # Guest strings go to a person's terminal: no control or bidi characters reach it.
    for line in lines:
        print("explain: " + "".join(c if c.isprintable() else "?" for c in line), file=stream)


def _run_isconfig(o: Options, chooser: Chooser | None = None) -> int:
    """--isconfig; ``chooser`` stands in for the menu on this terminal (--runas's)."""
    from .config import load_host_config
    from .select import choose

    menu = load_host_config(o.image, o.args)
    if o.list_entries:
        _print_entries(entry for _path, entry in menu.entries())

    def why_not(e: BootEntry) -> str | None:
        return None if e.kernel else "no kernel"

    if o.interactive:
        _path, entry = (chooser or _menu_chooser())(menu, why_not)
    else:
        _path, entry = choose(menu, o.entry, why_not)
    args = entry.args + (" " + o.args if o.args else "")
    print(f"  kernel: {entry.kernel}")
    if entry.initrds:
        print(f"  initrd: {' '.join(entry.initrds)}")
    print(f"  args: {args}")
    return 0
