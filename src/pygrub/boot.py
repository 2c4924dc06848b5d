"""From a disk image to a boot plan: which volume, which config, which entry, which files.

This is the library entry point the CLI uses; it knows nothing of argv or exit codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import Attempt, find_menu
from .config.model import LINUX, BootEntry, BootMenu
from .disk import ByteSource
from .errors import NotFoundError, PygrubError
from .extract import FileRef
from .fs import Filesystem
from .guest import GuestDisk
from .select import choose
from .volumes import Volume, discover, volume_at_offset

log = logging.getLogger(__name__)


@dataclass
class BootPlan:
    """What to extract and the command line to pass."""

    kernel: FileRef
    initrds: list[FileRef]
    args: str
    menu: BootMenu | None = None
    entry: BootEntry | None = None
    path: tuple[int, ...] = ()
    volume: Volume | None = None


@dataclass
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
        if other is not None and other.is_file(entry.kernel):
            fs, where = other, f"({volume.grub_name})"  # type: ignore[union-attr]
    return FileRef(fs, entry.kernel, where), [FileRef(fs, p, where) for p in entry.initrds]


def why_not_bootable(
    guest: GuestDisk, home: Filesystem, home_name: str, entry: BootEntry
) -> str | None:
    if entry.not_bootable:
        return entry.not_bootable
    if entry.kind != LINUX:
        return f"a {entry.kind} entry, not a Linux kernel"
    if not entry.kernel:
        return "no kernel"
    kernel, initrds = entry_files(guest, home, home_name, entry)
    for ref in [kernel, *initrds]:
        try:
            if not ref.fs.is_file(ref.path):
                return f"{ref.path} not found"
        except PygrubError as e:
            return f"{ref.path}: {e}"
    return None


#: Picks the entry of a menu instead of the default rules (the interactive menu): given
#: the menu and why_not(entry), returns (path, entry), the entry possibly edited.
Chooser = Callable[
    [BootMenu, Callable[[BootEntry], "str | None"]], tuple[tuple[int, ...], BootEntry]
]


def plan_boot(
    guest: GuestDisk,
    entry_spec: str | None = None,
    extra_args: str = "",
    kernel: str | None = None,
    ramdisk: str | None = None,
    chooser: Chooser | None = None,
) -> BootPlan:
    """Try each volume in order and plan the boot from the first that has something to boot.

    With a ``chooser``, it picks the entry of the first menu found (``entry_spec`` unused).
    """
    reports = []
    for volume in guest.volumes:
        report = VolumeReport(volume)
        reports.append(report)
        fs = guest.filesystem(volume)
        if fs is None:
            report.problem = guest.probe_error(volume)
            continue
        report.filesystem = fs.kind
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
            return plan
    raise NothingBootable(reports)


def _plan_given_kernel(
    fs: Filesystem, home_name: str, kernel: str, ramdisk: str | None, args: str
) -> BootPlan | None:
    if not fs.is_file(kernel):
        raise NotFoundError(f"--kernel {kernel} not found")
    initrds = [FileRef(fs, ramdisk, home_name)] if ramdisk else []
    return BootPlan(FileRef(fs, kernel, home_name), initrds, args)


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
        if not report.attempts:
            report.problem = "no bootloader config"
        return None
    # A config found in a btrfs subvolume names its files inside that subvolume.
    fs = menu.source_fs or fs
    home_name = f"({volume.grub_name})"

    def why_not(e: BootEntry) -> str | None:
        return why_not_bootable(guest, fs, home_name, e)

    if chooser is not None:
        path, entry = chooser(menu, why_not)
    else:
        path, entry = choose(menu, entry_spec, why_not)
    kernel_ref, initrd_refs = entry_files(guest, fs, home_name, entry)
    args = entry.args
    if extra_args:
        args += " " + extra_args
    return BootPlan(kernel_ref, initrd_refs, args, menu, entry, path)
