"""The ``pygrub`` command: Xen 4.17's flags and outputs, argv and exit codes.

libxl runs:  pygrub [--kernel=K] [--ramdisk=R] [--args=A] [--runas=UID --quiet]
                    --output=FILE --output-format=simple0 --output-directory=DIR [...] DISK
Only this module knows about argv and exit codes: it parses argv, builds the run's
settings (settings.Settings, with the environment's values) and calls run.run. It
imports the readers only after the arguments are parsed, so ``--help`` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType, ModuleType

from . import clock, log
from ._typing import TYPE_CHECKING
from .errors import Interrupted, PygrubError, UsageError, status_and_message
from .formats import IMAGE_FORMATS, OUTPUT_FORMATS
from .record import record
from .settings import MAX_USER_ID, Settings, with_environment

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

_log = log.get_logger("pygrub")


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


def parse_args(argv: list[str]) -> Settings:
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
    o = Settings(rest[0])
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
            o.runas = _user_id(value)
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


def _check_combinations(o: Settings) -> None:
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


def _user_id(value: str) -> int:
    """--runas's uid: the user the sandboxed reader runs as, never root."""
    uid = _integer("--runas", value)
    if uid == 0:
        raise UsageError("--runas=0 is root: give the unprivileged user id to read the image as")
    if not 0 < uid <= MAX_USER_ID:
        raise UsageError(f"--runas={uid} is not a user id (1 to {MAX_USER_ID})")
    return uid


def _interrupter(budget: float) -> Callable[[int, FrameType | None], None]:
    """The handler of the signals that stop a run: Interrupted, saying which."""

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGALRM:
            raise Interrupted(f"took longer than {budget:g} s (PYGRUB_TIMEOUT)")
        raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")

    return interrupt


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
    try:
        return _run_on_budget(options)
    except Exception as e:
        # A bug of ours (not a PygrubError) is still one line, and everything was cleaned up.
        if options.debug:
            _log.exception(
                "failed" if isinstance(e, (PygrubError, Interrupted)) else "internal error"
            )
        status, message = status_and_message(e)
        print(error_line(prog, message), file=sys.stderr)
        return status


def _run_on_budget(options: Settings) -> int:
    """The run of ``options`` with the environment's settings, stopped by SIGTERM, SIGINT,
    and SIGALRM once its time budget is spent."""
    # The menu needs a terminal on stdin and stdout; anywhere else the default boots.
    options.interactive = options.interactive and not options.list_entries
    options.interactive = options.interactive and os.isatty(0) and os.isatty(1)
    settings = with_environment(options, os.environ)
    interrupt = _interrupter(settings.timeout)
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        # The run has a budget; the menu stops the clock while a person looks at it.
        clock.start(settings.timeout)
        from .run import run

        return run(settings)
    finally:
        clock.stop()
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
