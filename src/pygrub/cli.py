"""The ``pygrub`` command: Xen 4.17's flags and outputs, argv and exit codes.

libxl runs:  pygrub [--kernel=K] [--ramdisk=R] [--args=A] [--runas=UID --quiet]
                    --output=FILE --output-format=simple0 --output-directory=DIR [...] DISK
Only this module knows about argv, stdout/stderr and exit codes. It imports the readers
only after the arguments are parsed, so ``--help`` stays fast.
"""

from __future__ import annotations

import getopt
import logging
import os
import signal
import sys
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from .errors import Interrupted, PygrubError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from .boot import BootPlan, Chooser
    from .config.model import BootEntry, BootMenu
    from .guest import GuestDisk

    MenuChoice = tuple[tuple[int, ...], BootEntry]

USAGE = (
    "Usage: {prog} [-q|--quiet] [-i|--interactive] [-l|--list-entries] [-n|--not-really] "
    "[--output=] [--kernel=] [--ramdisk=] [--args=] [--entry=] [--output-directory=] "
    "[--output-format=sxp|simple|simple0] [--runas=] [--offset=] <image>"
)

HELP = """
Find the kernel a Xen guest's disk would boot, copy it (and its initrd) out, and print
where they are and the kernel command line. The image is only ever read.

  -q, --quiet             no menu: boot the default entry
  -i, --interactive       show the menu on the terminal (the default)
  -l, --list-entries      list the menu entries and exit
  -n, --not-really        choose the entry but extract nothing
  -h, --help              show this help
  --output=FILE           write the result to FILE (an existing file; default stdout)
  --output-format=FMT     sxp (default), simple or simple0
  --output-directory=DIR  where boot_kernel.* and boot_ramdisk.* go
                          (default /var/run/xen/pygrub/, created 0700 when missing)
  --kernel=PATH           boot this kernel from the image; the menu is skipped
  --ramdisk=PATH          with --kernel, this initrd
  --args=ARGS             with --kernel, the command line; otherwise appended to it
  --entry=N|TITLE|ID|A>B  boot this entry (implies non-interactive)
  --offset=BYTES          the filesystem starts at BYTES; no partition table is read
  --isconfig              IMAGE is a bootloader config file on this host
  --runas=UID             read the image as this user (needs -q or --entry)
  --debug                 log what is tried, and show tracebacks

Environment: PYGRUB_MAX_FILE_SIZE_MB (per-file limit, default 1024),
PYGRUB_TIMEOUT (seconds an unattended run may take, default 60),
PYGRUB_MENU_MAX_WAIT (longest wait of the menu for a first key, default 30).
Exit status: 0 on success, 1 on error, 2 on a usage error.
"""

DEFAULT_OUTPUT_DIRECTORY = "/var/run/xen/pygrub/"
#: Seconds an unattended run may take (PYGRUB_TIMEOUT).
DEFAULT_TIMEOUT = 60.0


@dataclass
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
    debug: bool = False


class HelpRequested(Exception):
    pass


def parse_args(argv: list[str]) -> Options:
    """Parse argv as Xen's pygrub does (GNU getopt: options may follow the image)."""
    try:
        opts, rest = getopt.gnu_getopt(
            argv,
            "qilnh",
            [
                "quiet",
                "interactive",
                "list-entries",
                "not-really",
                "help",
                "output=",
                "output-format=",
                "output-directory=",
                "offset=",
                "runas=",
                "entry=",
                "kernel=",
                "ramdisk=",
                "args=",
                "isconfig",
                "debug",
            ],
        )
    except getopt.GetoptError as e:
        raise UsageError(str(e)) from None
    if any(o in ("-h", "--help") for o, _ in opts):
        raise HelpRequested
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
            if value not in ("sxp", "simple", "simple0"):
                raise UsageError(f"unknown output format {value}")
            o.output_format = value
        elif name == "--output-directory":
            if not os.path.isdir(value):
                raise UsageError(f"{value} is not an existing directory")
            o.output_directory = value + "/"
    if o.runas is not None and o.interactive:
        raise UsageError("In order to use --runas, you must also set --entry or -q")
    return o


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


def main(argv: list[str] | None = None) -> int:
    prog = "pygrub"
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = parse_args(argv)
    except HelpRequested:
        print(USAGE.format(prog=prog) + "\n" + HELP, end="")
        return 0
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        print(USAGE.format(prog=prog), file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if options.debug else logging.WARNING,
        format=f"{prog}: %(levelname)s: %(message)s",
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
            logging.exception("failed")
        print(f"{prog}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except (Exception, RecursionError, MemoryError) as e:
        # A bug of ours, not the guest's: still one line, and everything was cleaned up.
        if options.debug:
            logging.exception("internal error")
        print(
            f"{prog}: error: internal error: {type(e).__name__}: {_one_line(str(e))}",
            file=sys.stderr,
        )
        return 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run(o: Options) -> int:
    if o.runas is not None:
        from .sandbox import run_deprivileged

        return run_deprivileged(o)

    from .limits import MAX_CONFIG_BYTES

    if o.isconfig:
        return _run_isconfig(o, MAX_CONFIG_BYTES)

    from .boot import open_guest, plan_boot
    from .disk import open_image

    source = open_image(o.image)
    try:
        guest = open_guest(source, o.offset)
        if o.list_entries:
            return _list_entries(guest, o)
        chooser = _menu_chooser() if o.interactive else None
        plan = plan_boot(guest, o.entry, o.args, o.kernel, o.ramdisk, chooser)
        return _extract_and_report(plan, o)
    finally:
        source.close()


def _menu_chooser() -> Chooser:
    """The interactive menu as plan_boot's chooser, the run's budget paused while it shows."""
    from .menu import choose_interactively

    def chooser(menu: BootMenu, why_not: Callable[[BootEntry], str | None]) -> MenuChoice:
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            return choose_interactively(menu, why_not)
        finally:
            signal.setitimer(signal.ITIMER_REAL, run_budget())

    return chooser


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


def _extract_and_report(plan: BootPlan, o: Options) -> int:
    from .extract import Extraction
    from .limits import max_file_size
    from .output import render

    limit = max_file_size()
    out_fd = _open_output(o)
    try:
        if o.not_really:
            for ref in [plan.kernel, *plan.initrds]:
                print(f"would extract {ref} ({ref.size()} bytes)", file=sys.stderr)
            data = render(o.output_format, None, None, plan.args or None)
            _write_all(out_fd, data)
            return 0
        _make_output_directory(o.output_directory)
        with Extraction(o.output_directory) as extraction:
            kernel_path = extraction.write("boot_kernel.", [plan.kernel], limit)
            ramdisk_path = None
            if plan.initrds:
                ramdisk_path = extraction.write(
                    "boot_ramdisk.", plan.initrds, limit, pad=len(plan.initrds) > 1
                )
            data = render(o.output_format, kernel_path, ramdisk_path, plan.args or None)
            sys.stdout.flush()
            _write_all(out_fd, data)
            extraction.keep()
        return 0
    finally:
        if out_fd != sys.stdout.fileno():
            os.close(out_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _list_entries(guest: GuestDisk, o: Options) -> int:
    from .boot import NothingBootable, VolumeReport
    from .config import find_menu

    reports = []
    for volume in guest.volumes:
        report = VolumeReport(volume)
        reports.append(report)
        fs = guest.filesystem(volume)
        if fs is None:
            report.problem = guest.probe_error(volume)
            continue
        report.filesystem = fs.kind
        menu, report.attempts = find_menu(guest, volume, fs, o.args)
        if menu is not None:
            print(
                f"Using {menu.format} config {menu.config_path} on ({volume.grub_name})",
                file=sys.stderr,
            )
            _print_menu(menu)
            return 0
    raise NothingBootable(reports)


def _print_menu(menu: BootMenu) -> None:
    """The entries as Xen's pygrub lists them (title, root, kernel, args, initrd)."""
    for _path, entry in menu.entries():
        root = f"({entry.device})" if entry.device else "None"
        print(f"title: {entry.title}")
        print(f"  root: {root}")
        print(f"  kernel: {entry.kernel}")
        print(f"  args: {entry.args}")
        print(f"  initrd: {' '.join(entry.initrds)}")


def _run_isconfig(o: Options, max_bytes: int) -> int:
    from .config import load_config_file
    from .select import choose

    try:
        with open(o.image, "rb") as f:
            data = f.read(max_bytes)
    except OSError as e:
        raise PygrubError(f"cannot read config file {o.image}: {e.strerror}") from None
    menu = load_config_file(o.image, data, o.args)
    if o.list_entries:
        _print_menu(menu)

    def why_not(e: BootEntry) -> str | None:
        return None if e.kernel else "no kernel"

    if o.interactive:
        _path, entry = _menu_chooser()(menu, why_not)
    else:
        _path, entry = choose(menu, o.entry, why_not)
    args = entry.args + (" " + o.args if o.args else "")
    print(f"  kernel: {entry.kernel}")
    if entry.initrds:
        print(f"  initrd: {' '.join(entry.initrds)}")
    print(f"  args: {args}")
    return 0
