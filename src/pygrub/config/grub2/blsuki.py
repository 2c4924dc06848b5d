"""GRUB 2.14's ``blscfg`` and ``uki`` commands (grub-core/commands/blsuki.c).

Upstream's blscfg reads the same Boot Loader Specification files as Red Hat's
(:mod:`.bls`), but:

- it reads one directory: ``--path DIR`` (``(dev)/dir`` or ``/dir`` on $root), else
  /loader/entries on $root, and with ``--enable-fallback`` that default when DIR held no
  entry; ``--path FILE.conf`` reads that one file. Red Hat's $blsdir, its second
  directory /boot/loader/entries and $default_kernelopts mean nothing to it;
- entries are listed by GNU's filevercmp of their file names, greatest first (no
  ``version`` key); a name comparing equal to one already listed is dropped;
- an entry's script is ``linux PATH OPTIONS``, ``initrd PATHS``, ``devicetree PATH``
  (``savedefault`` first when $blsuki_save_default is true): no ``($root)``, no
  load_video; ``options``, ``grub_users`` and ``devicetree`` are $-expanded with no
  backslash escape; ``grub_class``, ``grub_users``, ``grub_hotkey`` and ``grub_arg`` become
  menuentry's --class, --users, --hotkey and positional parameters (the manual calls
  the last ``grub_args``; the code reads ``grub_arg``, and so do we);
- ``--show-default``, ``--show-non-default`` and ``--entry FILE`` choose which entries are
  added: the default is $default when blscfg runs, compared with the file name (".conf"
  included), the title, or the entry's index in blscfg's own list.

``uki`` (EFI builds) lists the unified kernel images ``*.efi`` of /EFI/Linux on the
device GRUB's EFI image was loaded from, with the same options and order: an image
with a .linux and an .osrel holding PRETTY_NAME becomes an entry titled by it, whose id is
the file name and whose script is ``chainloader (DEV)/EFI/Linux/NAME.efi CMDLINE``.
Chainloading a UKI runs its systemd-stub, which boots the .linux section with .initrd:
``chainloader`` does that here too (``chainloaded_uki``).

Which blscfg a config means: upstream's when it gives blscfg an option (Red Hat's takes
none and ignores its arguments) or has loaded blsuki.mod or run ``uki`` (commands.py);
Red Hat's otherwise, as every Red Hat family grub.cfg (``insmod blscfg; blscfg``) expects.
"""

from __future__ import annotations

import functools
import re

from ...errors import PygrubError
from ...fs import Filesystem
from ...log import get_logger
from ...record import record
from ..model import LINUX
from ..uki import UnifiedKernelImage, read_uki, stub_cmdline
from . import bls
from .blsdir import directory_files, read_bls_dir
from .interp import (
    ERR_BAD_ARGUMENT,
    ERR_FILE_NOT_FOUND,
    ERR_NONE,
    ERR_UNKNOWN_DEVICE,
    CommandError,
    Interpreter,
    Loaded,
    MenuDef,
    ScriptLimitError,
)
from .options import REQUIRED, Opt, first, parse_options
from .strtoul import grub_strtoul

log = get_logger(__name__)

BLS_DIR = "/loader/entries/"
UKI_DIR = "/EFI/Linux"
#: blsuki.c refuses a UKI whose .cmdline or .osrel is larger (UKI_SECTION_SIZE_MAX).
MAX_UKI_TEXT = 5 * 4096
#: What reading one UKI's headers costs against the session's bound, besides its texts.
UKI_HEADER_COST = 4096
_INT_MAX = (1 << 31) - 1

OPTIONS = (
    Opt("path", "p", REQUIRED),
    Opt("enable-fallback", "f"),
    Opt("show-default", "d"),
    Opt("show-non-default", "n"),
    Opt("entry", "e", REQUIRED),
)


# -- filevercmp --------------------------------------------------------------------------

#: The suffix filevercmp sets aside first: (\.[A-Za-z~][A-Za-z0-9~]*)*$ in the C locale.
_SUFFIX = re.compile(rb"(?:\.[A-Za-z~][A-Za-z0-9~]*)*\Z")


def filevercmp(a: str, b: str) -> int:
    """GNU filevercmp (gnulib of February 2022, which GRUB 2.14 builds): <0, 0 or >0.

    Version sort of file names: "", ".", "..", then other names starting with '.', then
    the rest; a suffix like ".tar.gz" or ".conf" only decides when the names without it
    compare equal.
    """
    x = a.encode("utf-8", "surrogateescape")
    y = b.encode("utf-8", "surrogateescape")
    if not x or not y:
        return bool(x) - bool(y)
    if x[:1] == b"." or y[:1] == b".":
        if x[:1] != y[:1]:
            return -1 if x[:1] == b"." else 1
        for special in (b".", b".."):
            if x == special or y == special:
                return (y == special) - (x == special)
    x_prefix = _suffix_start(x)
    y_prefix = _suffix_start(y)
    result = verrevcmp(x[:x_prefix], y[:y_prefix])
    if result or (x_prefix == len(x) and y_prefix == len(y)):
        return result
    return verrevcmp(x, y)


def _suffix_start(name: bytes) -> int:
    match = _SUFFIX.search(name)
    assert match is not None  # the empty match at the end always exists
    return match.start()


def _order(text: bytes, pos: int) -> int:
    """A byte's weight: the end before all but '~', '~' before all, letters before others."""
    if pos == len(text):
        return -1
    c = text[pos]
    if 0x30 <= c <= 0x39:
        return 0
    if 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
        return c
    if c == 0x7E:
        return -2
    return c + 256


def _is_digit(text: bytes, pos: int) -> bool:
    return pos < len(text) and 0x30 <= text[pos] <= 0x39


def verrevcmp(a: bytes, b: bytes) -> int:
    """dpkg's version comparison: non-digit runs by _order, digit runs as numbers."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _is_digit(a, i)) or (j < len(b) and not _is_digit(b, j)):
            order_a, order_b = _order(a, i), _order(b, j)
            if order_a != order_b:
                return order_a - order_b
            i += 1
            j += 1
        while i < len(a) and a[i] == 0x30:
            i += 1
        while j < len(b) and b[j] == 0x30:
            j += 1
        first_diff = 0
        while _is_digit(a, i) and _is_digit(b, j):
            first_diff = first_diff or a[i] - b[j]
            i += 1
            j += 1
        if _is_digit(a, i):
            return 1
        if _is_digit(b, j):
            return -1
        if first_diff:
            return first_diff
    return 0


def greatest_first(names: list[str]) -> list[int]:
    """Indexes of ``names`` in blsuki_add_entry's order: by filevercmp, greatest first; of
    names comparing equal only the first read is kept (GRUB drops the others)."""

    def compare(i: int, j: int) -> int:
        return filevercmp(names[i], names[j])

    order = sorted(range(len(names)), key=functools.cmp_to_key(compare), reverse=True)
    kept: list[int] = []
    for index in order:
        if kept and filevercmp(names[kept[-1]], names[index]) == 0:
            continue
        kept.append(index)
    return kept


# -- the commands ------------------------------------------------------------------------


def cmd_blsuki(it: Interpreter, name: str, args: list[str]) -> int:
    """``blscfg`` and ``uki`` with upstream's options."""
    found, positional = parse_options(args, OPTIONS)
    if positional:
        raise CommandError(ERR_BAD_ARGUMENT, "unexpected argument(s) found, see --help")
    path = first(found, "path")
    fallback = "enable-fallback" in found
    if name == "uki":
        it.session.upstream_bls = True
        listed: list[tuple[str, bls.BlsEntry | FoundImage]] = [
            (found.file_name, found) for found in _uki_entries(it, path, fallback)
        ]
    else:
        listed = [(entry.name + ".conf", entry) for entry in _bls_entries(it, path, fallback)]
    show_default = "show-default" in found
    show_non_default = "show-non-default" in found
    wanted = first(found, "entry")
    if not (show_default or show_non_default or "entry" in found):
        show_default = show_non_default = True
    default = it.env.get("default")
    for index, read in enumerate(greatest_first([file_name for file_name, _ in listed])):
        file_name, item = listed[read]
        title = item.get("title") if isinstance(item, bls.BlsEntry) else None
        is_default = is_default_entry(default, file_name, title, index)
        if (
            (show_default and is_default)
            or (show_non_default and not is_default)
            or wanted == file_name
        ):
            if isinstance(item, bls.BlsEntry):
                _add_bls_entry(it, item)
            else:
                _add_uki_entry(it, item)
    return ERR_NONE


def is_default_entry(spec: str | None, file_name: str, title: str | None, index: int) -> bool:
    """blsuki_is_default_entry: $default names the file, the title, or the index."""
    if not spec:
        return False
    if spec in (file_name, title):
        return True
    text = spec.lstrip(" \t\r\n")
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    value, end = grub_strtoul(digits, 0)
    if value is None or end != len(digits) or (negative and value):
        return False
    return value <= _INT_MAX and value == index


# -- BLS ---------------------------------------------------------------------------------


def _bls_entries(it: Interpreter, path: str | None, fallback: bool) -> list[bls.BlsEntry]:
    if path is not None and path.endswith(".conf"):
        # GRUB 2.14 copies a NULL device and directory here (blsuki_read_entry); the
        # entry's script uses neither, so the file is what counts.
        text = it.read_file(path).decode("utf-8", "surrogateescape")
        it.session.charge_read(len(text), path)
        return [bls.parse_entry(path.rsplit("/", 1)[-1], text, upstream=True)]
    device, directory = _where(path, BLS_DIR)
    if device is None:
        device = it.env.get("root") or None
    fs = it.session.devices.filesystem(device)
    if fs is None:
        raise CommandError(ERR_UNKNOWN_DEVICE, f"no filesystem on ({device})")
    entries = read_bls_dir(it, fs, directory, upstream=True)
    if not entries and fallback:
        entries = read_bls_dir(it, fs, BLS_DIR, upstream=True)
    if not entries:
        it.session.ctx.notes.append(f"blscfg: no entry in ({device}){directory}")
    return entries


def _where(path: str | None, default: str) -> tuple[str | None, str]:
    """(device or None, directory) of --path as blsuki_load_entries splits it."""
    if path is None:
        return None, default
    if path.startswith("("):
        close = path.find(")")
        if close < 0:
            raise CommandError(ERR_BAD_ARGUMENT, f"invalid file name `{path[:200]}'")
        return path[1:close], path[close + 1 :] or default
    return None, path if path.startswith("/") else default


def _add_bls_entry(it: Interpreter, entry: bls.BlsEntry) -> None:
    linux = entry.get("linux")
    if linux is None:
        log.info("blscfg: %s has no 'linux' key: skipped", entry.name)
        return
    title = entry.get("title") or linux
    save = _env_bool(it.env.get("blsuki_save_default"))
    it.session.count_entry()
    it.context.menu.append(
        MenuDef(
            title=title,
            args=[title, *entry.get_all("grub_arg")],
            entry_id=entry.name,
            users=bls.expand_value(entry.get("grub_users"), it.env.get, escapes=False),
            hotkey=entry.get("grub_hotkey"),
            classes=entry.get_all("grub_class"),
            source=entry_body(entry, it, save),
            line=it.line,
            config=f"{entry.name}.conf",
        )
    )


def entry_body(entry: bls.BlsEntry, it: Interpreter, save_default: bool) -> str:
    """The script blsuki.c gives a BLS entry (bls_create_entry), values expanded."""
    lines = ["savedefault"] if save_default else []
    options = bls.expand_value(entry.get("options"), it.env.get, escapes=False)
    linux = entry.get("linux") or ""
    lines.append(f"linux {linux}" + (f" {options}" if options is not None else ""))
    initrds = entry.get_all("initrd")
    if initrds:
        lines.append("initrd" + "".join(f" {path}" for path in initrds))
    devicetree = bls.expand_value(entry.get("devicetree"), it.env.get, escapes=False)
    if devicetree is not None:
        lines.append(f"devicetree {devicetree}")
    return "\n".join(lines) + "\n"


def _env_bool(value: str | None) -> bool:
    """grub_env_get_bool: set and not empty, "0", "false", "disable" or "no"."""
    return bool(value) and value not in ("0", "false", "disable", "no")


# -- UKI ---------------------------------------------------------------------------------


@record
class FoundImage:
    """A UKI the ``uki`` command read, and where: its entry chainloads it from there."""

    device: str
    directory: str
    file_name: str
    image: UnifiedKernelImage


def _uki_entries(it: Interpreter, path: str | None, fallback: bool) -> list[FoundImage]:
    if path is not None and path.endswith(".efi"):
        device, file_path = it.split_device(path)
        device = device or it.session.devices.home_name
        fs = it.session.devices.filesystem(device)
        if fs is None or not file_path.startswith("/") or not fs.is_file(file_path):
            raise CommandError(ERR_FILE_NOT_FOUND, f"file `{path[:200]}' not found")
        directory, _, file_name = file_path.rpartition("/")
        image = read_kernel_image(it, fs, file_path, f"({device}){file_path}")
        return [FoundImage(device, directory, file_name, image)] if image is not None else []
    device, directory = _where(path, UKI_DIR)
    if device is None:
        device = efi_device(it, directory)
    fs = it.session.devices.filesystem(device)
    if fs is None:
        raise CommandError(ERR_UNKNOWN_DEVICE, f"no filesystem on ({device})")
    found = _read_uki_dir(it, fs, device, directory)
    if not found and fallback:
        found = _read_uki_dir(it, fs, device, UKI_DIR)
    if not found:
        it.session.ctx.notes.append(f"uki: no unified kernel image in ({device}){directory}")
    return found


def efi_device(it: Interpreter, directory: str) -> str:
    """The device GRUB's EFI image came from: $cmdpath's (the config's own, unless the
    config changed it); when that has no ``directory``, the first FAT filesystem of the
    disk that has it (an EFI System Partition)."""
    cmdpath = it.env.get("cmdpath") or ""
    home = it.session.devices.home_name
    device = (it.split_device(cmdpath)[0] if cmdpath.startswith("(") else None) or home
    candidates = [(device, it.session.devices.filesystem(device))]
    candidates += [(name, fs) for name, fs in it.session.devices.searchable([]) if fs.kind == "fat"]
    for name, fs in candidates:
        try:
            if fs is not None and fs.is_dir(directory):
                return name
        except PygrubError as e:
            log.info("uki: (%s)%s: %s", name, directory, e)
    return device


def _read_uki_dir(it: Interpreter, fs: Filesystem, device: str, directory: str) -> list[FoundImage]:
    found = []
    efi_files = directory_files(fs, directory, lambda name: name.endswith(".efi"), "uki")
    for file_name, path in efi_files:
        image = read_kernel_image(it, fs, path, f"({device}){path}")
        if image is not None:
            found.append(FoundImage(device, directory.rstrip("/"), file_name, image))
        if len(found) > it.limits.max_entries:
            raise ScriptLimitError(f"uki: over {it.limits.max_entries} images in {directory}")
    return found


def read_kernel_image(
    it: Interpreter, fs: Filesystem, path: str, where: str
) -> UnifiedKernelImage | None:
    """The UKI at ``path``, or None (noted) where blsuki.c would skip it."""
    it.session.charge_read(UKI_HEADER_COST, where)
    try:
        image = read_uki(fs, path)
    except PygrubError as e:
        it.session.ctx.notes.append(f"{where}: not a unified kernel image: {e}")
        return None
    if image is None:
        it.session.ctx.notes.append(f"{where}: no .linux or no .osrel section")
        return None
    for name in (".cmdline", ".osrel"):
        section = image.sections.get(name)
        if section is not None:
            it.session.charge_read(section.size, where)
            if section.size > MAX_UKI_TEXT:
                it.session.ctx.notes.append(
                    f"{where}: {name} of {section.size} bytes, over GRUB's {MAX_UKI_TEXT}"
                )
                return None
    return image


def _add_uki_entry(it: Interpreter, found: FoundImage) -> None:
    image = found.image
    where = f"({found.device}){found.directory}/{found.file_name}"
    title = image.os_release.get("PRETTY_NAME")
    if not title:
        # GRUB 2.14 would title the entry with a NULL pointer; later GRUB skips it.
        it.session.ctx.notes.append(f"{where}: no PRETTY_NAME in .osrel: skipped")
        return
    save = _env_bool(it.env.get("blsuki_save_default"))
    source = "savedefault\n" if save else ""
    source += f"chainloader {where}"
    source += f" {image.cmdline}\n" if ".cmdline" in image.sections else "\n"
    it.session.count_entry()
    it.context.menu.append(
        MenuDef(
            title=title,
            args=[title],
            entry_id=found.file_name,
            users=None,
            hotkey=None,
            classes=[],
            source=source,
            line=it.line,
            config=where,
        )
    )


# -- chainloader -------------------------------------------------------------------------


def chainloaded_uki(it: Interpreter, device: str | None, path: str, args: str) -> Loaded | None:
    """What chainloading ``path`` boots when it is a UKI: systemd-stub's kernel, initrds
    (.ucode, .initrd) and command line (the arguments when given, else .cmdline)."""
    fs = it.session.devices.filesystem(device)
    try:
        if fs is None or not path.startswith("/") or not fs.is_file(path):
            return None
    except PygrubError:
        return None
    it.session.charge_read(UKI_HEADER_COST, path)
    try:
        image = read_uki(fs, path)
    except PygrubError as e:
        log.info("chainloader %s: not a unified kernel image: %s", path[:200], e)
        return None
    if image is None:
        return None
    loaded = Loaded(LINUX, path, device, stub_cmdline(args) or image.cmdline)
    loaded.kernel_range = image.kernel_range()
    for span in image.initrd_ranges():
        loaded.initrds.append(path)
        loaded.initrd_ranges.append(span)
    if not loaded.kernel_range[1]:
        loaded.failure = f"{path}: the .linux section is empty"
    return loaded
