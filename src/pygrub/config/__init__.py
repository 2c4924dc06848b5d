"""Bootloader configurations: find the guest's config file and build a BootMenu.

Formats join through ``FORMATS``, in the order pygrub looks for them (Xen's order
first). Each format module defines ``load(ctx: LoadContext) -> BootMenu``.
"""

from __future__ import annotations

import importlib
import os
import stat

from ..errors import NotFoundError, PygrubError
from ..fs import Filesystem
from ..limits import MAX_CONFIG_BYTES
from ..log import get_logger
from ..record import field, record
from ..volumes import Volume
from .guest import GuestDisk
from .model import BootEntry, BootMenu, Password, Submenu

__all__ = [
    "FORMATS",
    "ConfigFormat",
    "LoadContext",
    "BootMenu",
    "BootEntry",
    "Submenu",
    "Password",
    "find_menu",
    "load_host_config",
]

log = get_logger(__name__)


@record(frozen=True)
class ConfigFormat:
    name: str
    module: str
    #: Absolute paths inside a filesystem, in the order they are tried; one ending in
    #: "/" is a directory that marks the format (its loader gets no text).
    paths: tuple[str, ...]
    #: The module's function that reads the format into a menu.
    loader: str = "load"

    def load(self, ctx: LoadContext) -> BootMenu:
        return getattr(importlib.import_module(self.module), self.loader)(ctx)


@record
class LoadContext:
    """What a format loader may see: the config file and the disk around it."""

    path: str
    text: str
    fs: Filesystem | None = None
    volume: Volume | None = None
    guest: GuestDisk | None = None
    #: The extra arguments given with --args (Solaris reads zfs-bootfs= from them).
    extra_args: str = ""
    #: Files already being read, to bound and break include/source loops.
    include_depth: int = 0
    notes: list[str] = field(default_factory=list)

    def read_file(self, path: str) -> str | None:
        """Another file of the same filesystem as text, or None when it is missing."""
        if self.fs is None:
            return None
        if not self.fs.is_file(path):
            return None
        return decode_config(self.fs.read_file(path, MAX_CONFIG_BYTES))


#: Xen's pygrub order first (GRUB 2, EXTLINUX/ISOLINUX, GRUB legacy); then the rest.
FORMATS: list[ConfigFormat] = [
    ConfigFormat(
        "grub2",
        "pygrub.config.grub2",
        (
            "/boot/grub/grub.cfg",
            "/grub/grub.cfg",
            "/boot/grub2/grub.cfg",
            "/grub2/grub.cfg",
            # An EFI System Partition: where GRUB's EFI image reads its config.
            "/EFI/*/grub.cfg",
        ),
    ),
    ConfigFormat(
        "extlinux",
        "pygrub.config.syslinux",
        (
            "/boot/isolinux/isolinux.cfg",
            "/boot/extlinux/extlinux.conf",
            "/boot/extlinux.conf",
            "/extlinux/extlinux.conf",
            "/extlinux.conf",
            "/isolinux/isolinux.cfg",
            "/isolinux.cfg",
        ),
    ),
    ConfigFormat(
        "grub-legacy",
        "pygrub.config.grub_legacy",
        ("/boot/grub/menu.lst", "/boot/grub/grub.conf", "/grub/menu.lst", "/grub/grub.conf"),
    ),
    ConfigFormat(
        "syslinux",
        "pygrub.config.syslinux",
        ("/boot/syslinux/syslinux.cfg", "/syslinux/syslinux.cfg", "/syslinux.cfg"),
    ),
    # loader.conf is optional: entries.srel (written by kernel-install/bootctl) or the
    # systemd-boot binary also mark an ESP (or a /boot) whose loader/entries it boots.
    ConfigFormat(
        "systemd-boot",
        "pygrub.config.systemd_boot",
        (
            "/loader/loader.conf",
            "/loader/entries.srel",
            "/EFI/systemd/systemd-bootx64.efi",
            "/boot/loader/loader.conf",
            "/boot/loader/entries.srel",
        ),
    ),
    ConfigFormat("lilo", "pygrub.config.lilo", ("/etc/lilo.conf",)),
    # An ESP holding only unified kernel images: the firmware's boot entries that name
    # them are in its NVRAM, not on the disk.
    ConfigFormat("uki", "pygrub.config.systemd_boot", ("/EFI/Linux/",), "load_ukis"),
]


def decode_config(data: bytes) -> str:
    """Config text: UTF-8 where it is, the other bytes kept as surrogates."""
    return data.decode("utf-8", "surrogateescape")


@record
class Attempt:
    """One config file tried on one volume, and why it was rejected (or None)."""

    path: str
    format: str
    error: str | None = None


def find_menu(
    guest: GuestDisk, volume: Volume, fs: Filesystem, extra_args: str = ""
) -> tuple[BootMenu | None, list[Attempt]]:
    """The first config that loads, in FORMATS order, and every attempt made.

    The filesystem's root is searched first, then its boot views (btrfs subvolumes);
    the menu's ``source_fs`` says where its paths are.
    """
    attempts: list[Attempt] = []
    for label, view in [("", fs), *fs.boot_views()]:
        for fmt in FORMATS:
            for path in expand_paths(view, fmt.paths):
                is_dir = path.endswith("/")
                if not (view.is_dir(path) if is_dir else view.is_file(path)):
                    continue
                attempt = Attempt(f"{label}:{path}" if label else path, fmt.name)
                attempts.append(attempt)
                try:
                    text = "" if is_dir else decode_config(view.read_file(path, MAX_CONFIG_BYTES))
                    ctx = LoadContext(path, text, view, volume, guest, extra_args)
                    menu = fmt.load(ctx)
                except PygrubError as e:
                    attempt.error = str(e)
                    log.info("%s on %s: %s", attempt.path, volume, e)
                    continue
                if not menu.items:
                    attempt.error = no_entries(ctx)
                    continue
                menu.config_path = attempt.path
                menu.source_fs = view
                return menu, attempts
    return None, attempts


#: Directories a ``*`` in a config path may match (EFI/<vendor>/ on an ESP).
MAX_GLOB_MATCHES = 64


def expand_paths(fs: Filesystem, paths: tuple[str, ...]) -> list[str]:
    """``paths`` with a ``*`` path component replaced by the matching names, sorted."""
    expanded: list[str] = []
    for path in paths:
        if "*" not in path:
            expanded.append(path)
            continue
        parent, _, rest = path.partition("/*/")
        if not fs.is_dir(parent or "/"):
            continue
        names = sorted(fs.listdir(parent or "/"))[:MAX_GLOB_MATCHES]
        expanded.extend(f"{parent}/{name}/{rest}" for name in names)
    return expanded


def load_host_config(path: str, extra_args: str = "") -> BootMenu:
    """--isconfig: a config file on this host, and the files beside it that it reads.

    The config's filesystem root is found from where it sits (``host_root``), so that an
    isolinux.cfg's includes, systemd-boot's loader/entries and blscfg's entries are read
    where its loader would read them. A known file name picks its format; another name
    is tried as every format, in registry order.
    """
    from ..fs.hostdir import HostDirFilesystem

    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError as e:
        raise NotFoundError(f"cannot read config file {path}: {e.strerror}") from None
    if not regular:
        raise NotFoundError(f"cannot read config file {path}: not a regular file")
    root, inner = host_root(path)
    fs = HostDirFilesystem(root)
    text = decode_config(fs.read_file(inner, MAX_CONFIG_BYTES))
    errors = []
    for fmt in _formats_for_host_file(inner):
        ctx = LoadContext(inner, text, fs, extra_args=extra_args)
        try:
            menu = fmt.load(ctx)
        except PygrubError as e:
            errors.append(f"{fmt.name}: {e}")
            continue
        if menu.items:
            menu.config_path = path
            return menu
        errors.append(f"{fmt.name}: {no_entries(ctx)}")
    raise PygrubError(
        f"{path}: not a bootloader config pygrub can read, with {root} as its filesystem's "
        f"root ({'; '.join(errors)})"
    )


#: Notes of a loader (entries skipped, where it looked) said in the error, at most.
MAX_NOTES_SAID = 4


def no_entries(ctx: LoadContext) -> str:
    """Why a config that loaded has no entry, with the loader's notes of where it looked."""
    return "; ".join(["no menu entries", *ctx.notes[:MAX_NOTES_SAID]])


def host_root(path: str) -> tuple[str, str]:
    """The host directory a config's filesystem root is taken to be, and its path in it.

    The longest of the FORMATS paths the config's path ends with decides: for
    /srv/guest/boot/grub2/grub.cfg the root is /srv/guest and the config
    /boot/grub2/grub.cfg (so blscfg finds /srv/guest/boot/loader/entries); for
    /mnt/esp/loader/loader.conf, /mnt/esp. A path none ends it is in its own directory.
    """
    parts = [part for part in os.path.abspath(path).split("/") if part]
    depth = 1
    for fmt in FORMATS:
        for known in fmt.paths:
            tail = [part for part in known.split("/") if part]
            if len(tail) <= len(parts) and _tail_matches(parts[-len(tail) :], tail):
                depth = max(depth, len(tail))
    depth = min(depth, len(parts))
    return "/" + "/".join(parts[:-depth]), "/" + "/".join(parts[-depth:])


def _tail_matches(parts: list[str], tail: list[str]) -> bool:
    return all(want == "*" or have == want for have, want in zip(parts, tail, strict=True))


def _formats_for_host_file(path: str) -> list[ConfigFormat]:
    """The formats whose file name it has; for another name, every format.

    A loader.conf that systemd-boot finds no entry in is no LILO config (that reads its
    "default" line as a kernel): the name is trusted when it is one a loader reads.
    """
    name = path.rsplit("/", 1)[-1]
    named = [f for f in FORMATS if any(p.rsplit("/", 1)[-1] == name for p in f.paths)]
    return named or list(FORMATS)
