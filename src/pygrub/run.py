"""One run of the ``pygrub`` command, from its settings to what the toolstack reads:

    plan      api.Image.choose (boot.plan_boot): which volume, config, entry and files
    choose    the loader's rules (select), or the person at the menu (a ``chooser``)
    extract   extract.Extraction: the kernel, then the ramdisk
    render    output: sxp, simple, simple0 or JSON, written whole to the output file

Two transports carry the same steps. In this process for ``--no-sandbox`` and
``--isconfig`` (:func:`run_here`). Across the sandbox for every other run
(:func:`run_across_sandbox`): this process, root, opens the disk and makes every file
the run may write; :func:`read_guest` plans, chooses and extracts in the sandboxed child
and reports a sandbox.Outcome, from which this process renders the output with the names
of its own files, whatever the child says. ``-l`` and ``--isconfig`` print their listing
themselves, wherever they run.
"""

from __future__ import annotations

import os
import sys

from . import clock
from ._typing import TYPE_CHECKING
from .api import Image
from .errors import PygrubError
from .extract import Extraction, make_temp_file
from .log import get_logger
from .output import boot_json, render, render_json, with_files
from .record import asdict, replace

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, TextIO

    from .api import Choice, Menu, MenuEntry
    from .boot import BootPlan, Chooser
    from .config.model import BootEntry, BootMenu
    from .sandbox import MenuWiring
    from .select import Chosen
    from .settings import Settings

log = get_logger(__name__)

#: The files a run may write, by prefix: the kernel, then the ramdisk.
BOOT_FILES = ("boot_kernel.", "boot_ramdisk.")


def run(s: Settings) -> int:
    """The command after its arguments: 0, or the exception the command reports."""
    if s.runas is not None:
        return run_across_sandbox(s)
    if s.sandboxed:
        return _run_across_sandbox_by_default(s)
    return run_here(s)


# -- in this process ---------------------------------------------------------------------


def run_here(s: Settings, chooser: Chooser | None = None) -> int:
    """The run in this process; ``chooser`` stands in for the menu on this terminal (the
    sandboxed child's, which asks the parent's)."""
    if chooser is None and s.interactive:
        chooser = _menu_chooser(s)
    if s.isconfig:
        _print_host_config(s, chooser)
        return 0
    with _open(s) as image:
        if s.list_entries:
            _print_menu(image, s)
            return 0
        choice = _choose(s, image, chooser)
        out_fd = open_output(s)
        try:
            if s.not_really:
                _print_would_extract(choice.plan)
                write_output(out_fd, _rendered(s, _document(s, choice), None, None, choice.args), s)
                return 0
            make_output_directory(s.output_directory)
            with Extraction(s.output_directory) as extraction:
                kernel, ramdisk = _extract(extraction, choice.plan, s)
                data = _rendered(s, _document(s, choice), kernel, ramdisk, choice.args)
                write_output(out_fd, data, s)
                extraction.keep()
            return 0
        finally:
            if out_fd != sys.stdout.fileno():
                os.close(out_fd)


def _open(s: Settings) -> Image:
    return Image(
        s.image, offset=s.offset, image_format=s.image_format, allow_backing=s.allow_backing
    )


def _choose(s: Settings, image: Image, chooser: Chooser | None) -> Choice:
    """What boots, by the rules or the ``chooser``; with --explain, said on stderr."""
    choice = image.choose(
        s.entry,
        args=s.args,
        kernel=s.kernel,
        ramdisk=s.ramdisk,
        default_args=s.default_args,
        extra_args=s.extra_args,
        chooser=chooser,
    )
    if s.explain:
        print_explanation(choice.explanation, sys.stderr)
    return choice


def _extract(extraction: Extraction, plan: BootPlan, s: Settings) -> tuple[str, str | None]:
    """The kernel's path and the ramdisk's (None without initrds), written by ``extraction``."""
    return extraction.write_boot_files(
        plan.kernel, plan.initrds, s.max_file_size, "PYGRUB_MAX_FILE_SIZE_MB"
    )


def _menu_chooser(s: Settings) -> Chooser:
    """The menu on this terminal as the chooser, the run's budget paused while it shows."""
    from .menu import choose_interactively

    def chooser(menu: BootMenu, why_not: Callable[[BootEntry], str | None]) -> Chosen:
        with clock.paused(s.timeout):
            return choose_interactively(menu, why_not, s.menu_max_wait)

    return chooser


# -- in the sandbox ----------------------------------------------------------------------


def _run_across_sandbox_by_default(s: Settings) -> int:
    """A run without --runas or --no-sandbox: in the sandbox all the same.

    As root, as the run's own user (sandbox.default_ids); not root, as the caller in a user
    namespace of its own where the kernel allows one, else (one warning) unsandboxed with
    the caller's rights, which are all the guest could reach anyway.
    """
    from . import sandbox

    user_namespace = os.geteuid() != 0
    if user_namespace:
        refusal = sandbox.user_namespace_refusal()
        if refusal is not None:
            log.warning("no sandbox: %s; reading the disk with your own rights", refusal)
            return run_here(replace(s, sandbox=False))
    try:
        return run_across_sandbox(s, user_namespace)
    except PygrubError as e:
        if not str(e).startswith(sandbox.SETUP_FAILED):
            raise
        raise type(e)(f"{e}; {sandbox.NO_SANDBOX_HINT}") from None


def run_across_sandbox(s: Settings, user_namespace: bool = False) -> int:
    """The run with the guest read in the sandbox: as --runas's user, else as
    sandbox.default_ids, or as the caller in a ``user_namespace``. This process prepares
    the files, the child reads, this process writes the output."""
    from . import sandbox

    uid, gid = sandbox.reader_ids(s.runas, user_namespace)
    disk_fd = sandbox.open_disk(s.image)
    files: dict[str, tuple[int, str]] = {}
    used: set[str] = set()
    out_fd = -1
    menu: MenuWiring | None = None
    try:
        # As Xen under --runas: the directory is made in every mode, and is the root's
        # mount point. By default it is made only when used, as without the sandbox.
        runas = s.runas is not None
        mountpoint = s.output_directory if runas or s.extracts else sandbox.EMPTY_MOUNTPOINT
        if mountpoint == s.output_directory:
            make_output_directory(s.output_directory)
        out_fd = open_output(s)
        if s.extracts:
            files = {prefix: make_temp_file(prefix, s.output_directory) for prefix in BOOT_FILES}
        printed = s.list_entries or s.isconfig
        box = sandbox.Sandbox(
            uid,
            gid,
            s.image,
            mountpoint,
            s.max_file_size,
            s.max_ram_usage,
            keep=(disk_fd, *(fd for fd, _path in files.values())),
            stdout=printed,
            user_namespace=user_namespace,
            package=sandbox.package_directory(),
        )
        if s.interactive:
            menu = sandbox.MenuWiring()
            box = replace(box, keep=box.keep + menu.child_fds())
        wiring = menu

        def body() -> dict:
            return read_guest(s, box.inside, disk_fd, files, wiring)

        try:
            if wiring is None:
                result = sandbox.run_sandboxed(box, body)
            else:
                result = sandbox.run_sandboxed(
                    box, body, lambda: wiring.host(s.timeout, s.menu_max_wait)
                )
        finally:
            if menu is not None:
                menu.relay_output()
        wants_json = not printed and s.output_format == "json"
        outcome = sandbox.Outcome.of_run(result, printed, wants_json)
        if outcome.printed:
            return 0
        sandbox.check_sizes(files, s.max_file_size)
        kernel = files["boot_kernel."][1] if files else None
        ramdisk = files["boot_ramdisk."][1] if files and outcome.ramdisk else None
        # The child's JSON but for the files and args: those are ours, as in the other
        # formats, whatever a subverted child says.
        write_output(out_fd, _rendered(s, outcome.json, kernel, ramdisk, outcome.args), s)
        used = {p for p in (kernel, ramdisk) if p}
        return 0
    finally:
        for fd, path in files.values():
            os.close(fd)
            if path not in used:
                _unlink(path)
        if out_fd not in (-1, sys.stdout.fileno()):
            os.close(out_fd)
        os.close(disk_fd)
        if menu is not None:
            menu.close()


def read_guest(
    s: Settings,
    image: str,
    disk_fd: int,
    files: dict[str, tuple[int, str]],
    menu: MenuWiring | None = None,
) -> dict:
    """The run inside the sandbox: ``s`` but for the image's path there, read through
    ``disk_fd``; ``files`` pre-opened; the menu, if any, across ``menu``."""
    if menu is None:
        return _read_guest(s, image, disk_fd, files, None)
    try:
        return _read_guest(s, image, disk_fd, files, menu.chooser(s.menu_max_wait))
    finally:
        menu.child.close()


def _read_guest(
    s: Settings,
    image: str,
    disk_fd: int,
    files: dict[str, tuple[int, str]],
    chooser: Chooser | None,
) -> dict:
    from .sandbox import Outcome, read_only_through

    if not s.isconfig:
        # A disk is only ever read through disk_fd: by the name it was given, the errors
        # name it as a run without the sandbox does. A config is opened by its path here.
        image = s.image
    read_only_through(image, disk_fd)
    here = replace(s, image=image, runas=None, sandbox=False)
    if s.list_entries or s.isconfig:
        run_here(here, chooser)
        return asdict(Outcome(printed=True))
    with _open(here) as guest:
        choice = _choose(here, guest, chooser)
        document = _document(s, choice)
        if s.not_really:
            _print_would_extract(choice.plan)
            return asdict(Outcome(args=choice.args, json=document))
        with Extraction(s.output_directory, preopened=files) as extraction:
            _kernel, ramdisk = _extract(extraction, choice.plan, s)
        return asdict(Outcome(ramdisk=ramdisk is not None, args=choice.args, json=document))


# -- the output --------------------------------------------------------------------------


def open_output(s: Settings) -> int:
    if s.output is None:
        return sys.stdout.fileno()
    try:
        # Xen opens the file libxl made: write-only, never created here.
        return os.open(s.output, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PygrubError(f"cannot open output file {s.output}: {e.strerror}") from None


def make_output_directory(directory: str) -> None:
    try:
        os.makedirs(directory, 0o700)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise PygrubError(
                f"output directory {directory} exists and is not a directory"
            ) from None
    except OSError as e:
        raise PygrubError(f"cannot create output directory {directory}: {e.strerror}") from None


def _document(s: Settings, choice: Choice) -> dict | None:
    """--output-format=json: the boot object, its files still to fill in."""
    return boot_json(choice, None, None) if s.output_format == "json" else None


def _rendered(
    s: Settings, document: dict | None, kernel: str | None, ramdisk: str | None, args: str
) -> bytes:
    """What the toolstack reads: ``document`` with these files and ``args``, or the format's
    line."""
    if document is not None:
        return render_json(with_files(document, kernel, ramdisk, args))
    return render(s.output_format, kernel, ramdisk, args or None)


def write_output(fd: int, data: bytes, s: Settings) -> None:
    """The output, all of it, to the output file (or stdout) ``fd``, after what is printed."""
    sys.stdout.flush()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except OSError as e:
            where = f"output file {s.output}" if s.output is not None else "standard output"
            raise PygrubError(f"writing the {where}: {e.strerror}") from None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- what is printed for people ------------------------------------------------------------


def _print_would_extract(plan: BootPlan) -> None:
    for ref in [plan.kernel, *plan.initrds]:
        print(f"would extract {ref} ({ref.size()} bytes)", file=sys.stderr)


def _print_menu(image: Image, s: Settings) -> None:
    """-l: the menu as Xen's pygrub lists it, or as JSON."""
    menu = image.menu(s.args)
    if s.output_format == "json":
        from .output import menu_json

        sys.stdout.flush()
        sys.stdout.buffer.write(render_json(menu_json(menu)))
        sys.stdout.flush()
        if s.explain:
            print_explanation(menu.explanation, sys.stderr)
        return
    print(
        f"Using {menu.bootloader} config {menu.config_path} on ({menu.volume.device})",
        file=sys.stderr,
    )
    _print_entries(menu.entries())
    if s.explain:
        print_explanation((*menu_tree(menu), *menu.explanation), sys.stdout)


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


def print_explanation(lines: Iterable[str], stream: TextIO) -> None:
    # Guest strings go to a person's terminal: no control or bidi characters reach it.
    for line in lines:
        print("explain: " + "".join(c if c.isprintable() else "?" for c in line), file=stream)


def _print_host_config(s: Settings, chooser: Chooser | None) -> None:
    """--isconfig: the entry a config file on this host boots (and, with -l, its entries)."""
    from .config import load_host_config
    from .select import choose

    menu = load_host_config(s.image, s.args)
    if s.list_entries:
        _print_entries(entry for _path, entry in menu.entries())

    def why_not(e: BootEntry) -> str | None:
        return None if e.kernel else "no kernel"

    chosen = chooser(menu, why_not) if chooser is not None else choose(menu, s.entry, why_not)
    entry = chosen.entry
    args = entry.args + (" " + s.args if s.args else "")
    print(f"  kernel: {entry.kernel}")
    if entry.initrds:
        print(f"  initrd: {' '.join(entry.initrds)}")
    print(f"  args: {args}")
