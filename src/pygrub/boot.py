"""From a disk image to a boot plan: which volume, which config, which entry, which files.

This is the library entry point the CLI uses; it knows nothing of argv or exit codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .config import Attempt, find_menu
from .config.guest import GuestDisk
from .config.model import LINUX, BootEntry, BootMenu
from .disk import ByteSource
from .errors import NotFoundError, PygrubError
from .extract import FileRef
from .fs import Filesystem
from .log import get_logger
from .record import field, record
from .select import Chosen, choose
from .volumes import Volume, discover, volume_at_offset

log = get_logger(__name__)


@record
class BootPlan:
    """What to extract and the command line to pass."""

    kernel: FileRef
    initrds: list[FileRef]
    args: str
    menu: BootMenu | None = None
    entry: BootEntry | None = None
    path: tuple[int, ...] = ()
    volume: Volume | None = None
    #: Every volume tried, the one booted last (for --explain and the API's explanation).
    reports: list[VolumeReport] = field(default_factory=list)
    #: Booted by XCP-ng's /xenkernel rule (--default_args).
    xenkernel: bool = False
    #: How the entry (or the kernel) was chosen, one line per step, for people.
    trace: tuple[str, ...] = ()


@record
class VolumeReport:
    """What was found on one volume, for the message when nothing boots."""

    volume: Volume
    filesystem: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    problem: str | None = None

    def __str__(self) -> str:
        parts = [str(self.volume)]
        parts.append(self.filesystem or "no filesystem")
        for a in self.attempts:
            parts.append(f"{a.path}: {a.error}" if a.error else a.path)
        if self.problem:
            parts.append(self.problem)
        return ": ".join(parts[:2]) + ("" if len(parts) == 2 else " (" + "; ".join(parts[2:]) + ")")


class NothingBootable(NotFoundError):
    def __init__(self, reports: list[VolumeReport]) -> None:
        detail = "; ".join(str(r) for r in reports) or "the disk has no volumes"
        super().__init__(f"nothing bootable found: {detail}")
        self.reports = reports


def open_guest(source: ByteSource, offset: int | None = None) -> GuestDisk:
    volumes = [volume_at_offset(source, offset)] if offset is not None else discover(source)
    return GuestDisk(source, volumes)


def entry_files(
    guest: GuestDisk, home: Filesystem, home_name: str, entry: BootEntry
) -> tuple[FileRef, list[FileRef]]:
    """The kernel and initrd files of ``entry``, on its device if that holds them, else at home.

    Xen's pygrub ignores ``root`` and reads everything from the config's filesystem;
    GRUB reads from the device. Both agree when the device is the config's own volume.
    """
    assert entry.kernel is not None
    fs, where = home, home_name
    if entry.device is not None:
        volume = guest.find_volume(entry.device)
        other = guest.filesystem(volume) if volume is not None else None
        if other is not None and _holds_file(other, entry.kernel):
            fs, where = other, f"({volume.grub_name})"  # type: ignore[union-attr]
    ranges = entry.initrd_ranges or [None] * len(entry.initrds)
    initrds = [
        file_ref(fs, path, where, span) for path, span in zip(entry.initrds, ranges, strict=True)
    ]
    return file_ref(fs, entry.kernel, where, entry.kernel_range), initrds


def file_ref(fs: Filesystem, path: str, where: str, span: tuple[int, int] | None = None) -> FileRef:
    """A config's file, or the byte range ``span`` (offset, length) of it (a UKI section)."""
    fs, path = fs.grub_path(path)
    if span is None:
        return FileRef(fs, path, where)
    return FileRef(fs, path, where, span[0], span[1])


def _holds_file(fs: Filesystem, path: str) -> bool:
    try:
        fs, path = fs.grub_path(path)
        return fs.is_file(path)
    except PygrubError:
        return False


def why_not_bootable(
    guest: GuestDisk, home: Filesystem, home_name: str, entry: BootEntry
) -> str | None:
    if entry.not_bootable:
        return entry.not_bootable
    if entry.kind != LINUX:
        return f"a {entry.kind} entry, not a Linux kernel"
    if not entry.kernel:
        return "no kernel"
    try:
        kernel, initrds = entry_files(guest, home, home_name, entry)
    except PygrubError as e:
        return f"{entry.kernel}: {e}"
    for ref in [kernel, *initrds]:
        try:
            if not ref.fs.is_file(ref.path):
                return f"{ref.path} not found"
            ref.size()  # a byte range (UKI section) must lie inside its file
        except PygrubError as e:
            return f"{ref.path}: {e}"
    return None


#: Picks the entry of a menu instead of the default rules (the interactive menu): given
#: the menu and why_not(entry), what to boot (the entry possibly edited).
Chooser = Callable[[BootMenu, Callable[[BootEntry], "str | None"]], Chosen]


def plan_boot(
    guest: GuestDisk,
    entry_spec: str | None = None,
    extra_args: str = "",
    kernel: str | None = None,
    ramdisk: str | None = None,
    chooser: Chooser | None = None,
    default_args: str | None = None,
    appended_args: str = "",
) -> BootPlan:
    """Try each volume in order and plan the boot from the first that has something to boot.

    With a ``chooser``, it picks the entry of the first menu found (``entry_spec`` unused).
    ``default_args`` and ``appended_args`` are XCP-ng's --default_args and --extra_args.
    """
    plan = _plan_xenkernel(guest, default_args) if default_args is not None else None
    if plan is None:
        plan = _plan_first_bootable(guest, entry_spec, extra_args, kernel, ramdisk, chooser)
    plan.args = " ".join(a for a in (plan.args, appended_args) if a)
    return plan


#: XCP-ng's fixed kernels and initrds (pygrub-always-boot-default.patch), in its order.
XENKERNELS = (("/xenkernel", "/xeninitrd"), ("/boot/xenkernel", "/boot/xeninitrd"))


def _plan_xenkernel(guest: GuestDisk, args: str) -> BootPlan | None:
    """XCP-ng's rule: a /xenkernel on the first volume boots, before any config is read."""
    if not guest.volumes:
        return None
    volume = guest.volumes[0]
    fs = guest.filesystem(volume)
    if fs is None:
        return None
    home_name = f"({volume.grub_name})"
    for kernel, initrd in XENKERNELS:
        if _holds_file(fs, kernel):
            initrds = [FileRef(fs, initrd, home_name)] if _holds_file(fs, initrd) else []
            report = VolumeReport(volume, fs.kind)
            return BootPlan(
                FileRef(fs, kernel, home_name),
                initrds,
                args,
                volume=volume,
                reports=[report],
                xenkernel=True,
                trace=(f"{kernel} found (--default_args, XCP-ng's rule): no config read",),
            )
    return None


def tried_volumes(
    guest: GuestDisk, reports: list[VolumeReport]
) -> Iterator[tuple[Volume, Filesystem, VolumeReport]]:
    """Each volume that holds a filesystem, in the order they are tried, with its report;
    every volume's report is appended to ``reports`` (one without a filesystem says why),
    for NothingBootable and --explain."""
    for volume in guest.volumes:
        report = VolumeReport(volume)
        reports.append(report)
        fs = guest.filesystem(volume)
        if fs is None:
            report.problem = guest.probe_error(volume)
            continue
        report.filesystem = fs.kind
        yield volume, fs, report


def _plan_first_bootable(
    guest: GuestDisk,
    entry_spec: str | None,
    extra_args: str,
    kernel: str | None,
    ramdisk: str | None,
    chooser: Chooser | None,
) -> BootPlan:
    reports: list[VolumeReport] = []
    for volume, fs, report in tried_volumes(guest, reports):
        home_name = f"({volume.grub_name})"
        try:
            if kernel is not None:
                plan = _plan_given_kernel(fs, home_name, kernel, ramdisk, extra_args)
            else:
                plan = _plan_from_config(guest, volume, fs, entry_spec, extra_args, report, chooser)
        except PygrubError as e:
            report.problem = str(e)
            continue
        if plan is not None:
            plan.volume = volume
            plan.reports = reports
            return plan
    raise NothingBootable(reports)


def _plan_given_kernel(
    fs: Filesystem, home_name: str, kernel: str, ramdisk: str | None, args: str
) -> BootPlan | None:
    if not fs.is_file(kernel):
        raise NotFoundError(f"--kernel {kernel} not found")
    initrds = [FileRef(fs, ramdisk, home_name)] if ramdisk else []
    how = (f"kernel {kernel} given: no bootloader config read",)
    return BootPlan(FileRef(fs, kernel, home_name), initrds, args, trace=how)


def _plan_from_config(
    guest: GuestDisk,
    volume: Volume,
    fs: Filesystem,
    entry_spec: str | None,
    extra_args: str,
    report: VolumeReport,
    chooser: Chooser | None = None,
) -> BootPlan | None:
    menu, report.attempts = find_menu(guest, volume, fs, extra_args)
    if menu is None:
        sniffed = _plan_by_sniffing(fs, f"({volume.grub_name})", extra_args)
        if sniffed is None and not report.attempts:
            report.problem = "no bootloader config"
        return sniffed
    # A config found in a btrfs subvolume names its files inside that subvolume.
    fs = menu.source_fs or fs
    home_name = f"({volume.grub_name})"

    def why_not(e: BootEntry) -> str | None:
        return why_not_bootable(guest, fs, home_name, e)

    if chooser is not None:
        chosen = chooser(menu, why_not)
    else:
        chosen = choose(menu, entry_spec, why_not)
    entry = chosen.entry
    kernel_ref, initrd_refs = entry_files(guest, fs, home_name, entry)
    args = entry.args
    if extra_args:
        args += " " + extra_args
    args = _with_boot_string(kernel_ref, args)
    return BootPlan(kernel_ref, initrd_refs, args, menu, entry, chosen.path, trace=chosen.trace)


def _with_boot_string(kernel: FileRef, args: str) -> str:
    """The command line, with the boot string of the kernel's filesystem if it has one (ZFS)
    and the kernel reads it (Solaris)."""
    boot_string = kernel.fs.bootstring()
    if boot_string is None:
        return args  # without importing config.solaris: its patterns cost 2 ms to compile
    from .config import solaris

    return solaris.boot_args(kernel.path, args, boot_string)


def _plan_by_sniffing(fs: Filesystem, home_name: str, extra_args: str) -> BootPlan | None:
    """Xen's pygrub without a config: a Solaris PV kernel, else a NetWare loader, by path."""
    from .config import solaris

    found = solaris.sniff(fs, extra_args)
    if found is None:
        return None
    fs, kernel, ramdisk, args = found
    how = (f"no bootloader config: {kernel} found, as Xen's pygrub looks for it",)
    initrds = [] if ramdisk is None else [FileRef(fs, ramdisk, home_name)]
    return BootPlan(FileRef(fs, kernel, home_name), initrds, args, trace=how)
