"""systemd-boot: /loader/loader.conf and the Boot Loader Specification entries beside it.

Type #1 entries are ``loader/entries/*.conf``; type #2 entries are unified kernel images
in ``/EFI/Linux/*.efi`` (read by :mod:`.uki`). Both sit on the partition holding
``/loader`` (the ESP, or an XBOOTLDR /boot); when /boot is a directory of the root
filesystem the same layout appears under /boot. The menu is sorted and the default chosen
as systemd-boot does (src/boot/boot.c: boot_entry_compare, config_select_default_entry):
EFI variables (LoaderEntryDefault, LoaderEntryOneShot, the @saved entry) live in the
firmware's NVRAM, which a disk image does not hold, so loader.conf alone decides.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import re
from collections.abc import Callable

from .._typing import TYPE_CHECKING
from ..errors import LimitError, PygrubError
from ..limits import MAX_CONFIG_BYTES, MAX_MENU_ENTRIES, check_count
from ..record import field, record
from .model import LINUX, OTHER, BootEntry, BootItem, BootMenu

if TYPE_CHECKING:
    from . import LoadContext

#: A loader.conf ``default`` pattern longer than this is ignored (ids are file names).
MAX_PATTERN = 4096
#: Entry files looked at in one entries directory.
MAX_ENTRY_FILES = 4096
#: Bytes read from entry files and UKI texts together (each file may be 1 MiB).
MAX_ENTRY_BYTES = 16 * MAX_CONFIG_BYTES
_BOOT_COUNTER = re.compile(r"^(?P<stem>.*)\+(?P<left>[0-9]+)(?:-(?P<done>[0-9]+))?$")


@record
class LoaderSettings:
    """The loader.conf keys that decide what boots."""

    default: str | None = None
    #: Seconds; None shows the menu until a key is pressed; 0 boots at once.
    timeout: float | None = 0.0


@record(eq=False)
class Entry:
    """One boot entry with the fields systemd-boot sorts on."""

    #: systemd-boot's id: the file name, boot counter removed, lower-cased.
    key: str
    entry: BootEntry
    title: str | None = None
    version: str | None = None
    machine_id: str | None = None
    sort_key: str | None = None
    #: Boot counting (``name+LEFT-DONE.conf``); -1 when the name carries no counter.
    tries_left: int = -1
    tries_done: int = -1
    options: list[str] = field(default_factory=list)


def key_values(text: str) -> list[tuple[str, str]]:
    """``key value`` lines (systemd's line_get_key_value): ``#`` comments, quotes dropped."""
    pairs = []
    for line in text.split("\n"):
        line = line.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        parts = re.split(r"[ \t]+", line, maxsplit=1)
        if len(parts) != 2:
            continue
        key, value = parts
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        pairs.append((key, value))
    return pairs


def parse_loader_conf(text: str) -> LoaderSettings:
    settings = LoaderSettings()
    for key, value in key_values(text):
        if key == "default":
            if value.startswith("@") and value.lower() != "@saved":
                continue  # systemd-boot rejects other special names
            settings.default = value
        elif key == "timeout":
            settings.timeout = parse_timeout(value, settings.timeout)
    return settings


def parse_timeout(value: str, previous: float | None) -> float | None:
    if value == "menu-force":
        return None
    if value in ("menu-hidden", "menu-disabled"):
        return 0.0
    if not value.isdigit() or len(value) > 10:
        return previous  # systemd-boot ignores a bad value
    return float(int(value))


def split_counter(name: str) -> tuple[str, int, int]:
    """``stem+LEFT-DONE`` -> (stem, LEFT, DONE); a name without a counter -> (name, -1, -1)."""
    m = _BOOT_COUNTER.match(name)
    if m is None or len(m["left"]) > 9 or len(m["done"] or "") > 9:
        return name, -1, -1
    return m["stem"], int(m["left"]), int(m["done"] or 0)


def as_path(value: str) -> str:
    """A BLS path: relative to the root of the partition, '/' or not."""
    return value if value.startswith("/") else "/" + value


def type1_entry(file_name: str, text: str) -> Entry | None:
    """A type #1 entry from its file, or None when systemd-boot would not list it."""
    stem, left, done = split_counter(file_name[: -len(".conf")])
    entry = BootEntry(title="", id=stem, lines=text.rstrip("\n").split("\n"))
    item = Entry((stem + ".conf").lower(), entry, tries_left=left, tries_done=done)
    loader: str | None = None
    for key, value in key_values(text):
        if key in ("title", "version", "machine-id", "sort-key"):
            setattr(item, key.replace("-", "_"), value)
        elif key in ("linux", "efi", "uki"):
            if loader not in (None, key):
                return None  # two kinds of program in one entry: systemd-boot drops it
            loader = key
            entry.kernel = as_path(value)
        elif key == "initrd":
            entry.initrds.append(as_path(value))
        elif key == "options":
            item.options.append(value)
    if loader is None:
        return None
    entry.args = " ".join(item.options)
    if loader != "linux":
        entry.kind = OTHER
        entry.not_bootable = f"a boot loader spec {loader!r} entry, not a Linux kernel"
    else:
        entry.kind = LINUX
    return item


def version_compare(a: str | None, b: str | None) -> int:
    """-1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b``.

    The UAPI Version Format Specification (systemd's strverscmp_improved): segments of
    digits or of letters; ``~`` sorts before anything, ``-`` before ``^`` before ``.``
    before a bare segment; numbers compare by value, letters as strings; other characters
    only separate.
    """
    x, y = a or "", b or ""
    i = j = 0
    while True:
        i, j = skip_invalid(x, i), skip_invalid(y, j)
        if at(x, i) == "~" or at(y, j) == "~":
            r = cmp(at(x, i) != "~", at(y, j) != "~")
            if r:
                return r
            i, j = i + 1, j + 1
        if i >= len(x) or j >= len(y):
            return cmp(i < len(x), j < len(y))
        for separator in "-^.":
            if at(x, i) == separator or at(y, j) == separator:
                r = cmp(at(x, i) != separator, at(y, j) != separator)
                if r:
                    return r
                i, j = i + 1, j + 1
        if is_digit(at(x, i)) or is_digit(at(y, j)):
            r, i, j = compare_numbers(x, i, y, j)
        else:
            r, i, j = compare_letters(x, i, y, j)
        if r:
            return r


def at(text: str, index: int) -> str:
    return text[index] if index < len(text) else ""


def is_digit(char: str) -> bool:
    return char.isascii() and char.isdigit()


def is_version_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "~-^.")


def skip_invalid(text: str, index: int) -> int:
    while index < len(text) and not is_version_char(text[index]):
        index += 1
    return index


def cmp(a: object, b: object) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


def run_end(text: str, index: int, digits: bool) -> int:
    while index < len(text) and text[index].isascii():
        if text[index].isdigit() != digits or not text[index].isalnum():
            break
        index += 1
    return index


def compare_numbers(x: str, i: int, y: str, j: int) -> tuple[int, int, int]:
    """Compare the digit runs at x[i:] and y[j:]; a missing run is older than any."""
    end_x, end_y = run_end(x, i, digits=True), run_end(y, j, digits=True)
    r = cmp(end_x > i, end_y > j)
    if r:
        return r, end_x, end_y
    a, b = x[i:end_x].lstrip("0"), y[j:end_y].lstrip("0")
    r = cmp(len(a), len(b)) or cmp(a, b)
    return r, end_x, end_y


def compare_letters(x: str, i: int, y: str, j: int) -> tuple[int, int, int]:
    """Compare the letter runs at x[i:] and y[j:] as strings; the longer is newer."""
    end_x, end_y = run_end(x, i, digits=False), run_end(y, j, digits=False)
    a, b = x[i:end_x], y[j:end_y]
    shortest = min(len(a), len(b))
    r = cmp(a[:shortest], b[:shortest]) or cmp(len(a), len(b))
    return r, end_x, end_y


def entry_order(a: Entry, b: Entry) -> int:
    """systemd-boot's boot_entry_compare: negative when ``a`` is listed before ``b``."""
    r = cmp(a.tries_left == 0, b.tries_left == 0)
    if r:
        return r
    r = cmp(a.sort_key is None, b.sort_key is None)
    if r:
        return r
    if a.sort_key is not None and b.sort_key is not None:
        r = cmp(a.sort_key, b.sort_key) or cmp(
            (a.machine_id is not None, a.machine_id or ""),
            (b.machine_id is not None, b.machine_id or ""),
        )
        if r:
            return r
        r = -version_compare(a.version, b.version)
        if r:
            return r
    r = -version_compare(a.key, b.key)
    if r or a.tries_left < 0 or b.tries_left < 0:
        return r
    return -cmp(a.tries_left, b.tries_left) or cmp(a.tries_done, b.tries_done)


def unique_titles(entries: list[Entry]) -> None:
    """Titles as the menu shows them: duplicates get the version, the machine id, the id."""
    for item in entries:
        item.entry.title = item.title or item.entry.id or item.key

    for pick in (
        lambda r: r.version,
        lambda r: (r.machine_id or "")[:8],
        lambda r: r.key,
    ):
        add_to_duplicates(entries, pick)


def add_to_duplicates(entries: list[Entry], pick: Callable[[Entry], str | None]) -> None:
    """Append ``(pick(entry))`` to every title that is not unique yet."""
    seen: dict[str, int] = {}
    for item in entries:
        seen[item.entry.title] = seen.get(item.entry.title, 0) + 1
    for item in entries:
        extra = pick(item)
        if seen[item.entry.title] > 1 and extra:
            item.entry.title += f" ({extra})"


def matches(pattern: str, item: Entry) -> bool:
    """The loader.conf ``default`` glob against an id, with or without its ``.conf``.

    Older systemd-boot took ``.conf`` off the ids; newer ones (and bootctl 252) match the
    whole file name. A loader.conf written for either still names the entry it meant.
    """
    names = [item.key]
    if item.key.endswith(".conf"):
        names.append(item.key[: -len(".conf")])
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)


class Loader:
    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        # Found through the systemd-boot binary (or /EFI/Linux/, by config.uki), the
        # entries are in the ESP's /loader.
        in_efi = ctx.path.lower().endswith((".efi", "/efi/linux/"))
        self.loader_dir = "/loader" if in_efi else posixpath.dirname(ctx.path) or "/"
        #: The partition root the entries' paths start from ("/boot" on a root filesystem).
        self.base = posixpath.dirname(self.loader_dir.rstrip("/")) or "/"
        self.bytes_read = 0

    def settings(self) -> LoaderSettings:
        if posixpath.basename(self.ctx.path) == "loader.conf":
            return parse_loader_conf(self.ctx.text)
        return LoaderSettings()

    def list_dir(self, path: str) -> list[str]:
        fs = self.ctx.fs
        if fs is None or not fs.is_dir(path):
            return []
        names = fs.listdir(path)
        check_count(f"{path}: directory entries", len(names), MAX_ENTRY_FILES)
        return names

    def type1_entries(self) -> list[Entry]:
        directory = posixpath.join(self.loader_dir, "entries")
        found = []
        for name in sorted(self.list_dir(directory)):
            if name.startswith(".") or name.lower().startswith("auto-"):
                continue
            if not name.lower().endswith(".conf"):
                continue
            path = posixpath.join(directory, name)
            try:
                text = self.ctx.read_file(path)
            except PygrubError as e:
                self.ctx.notes.append(f"{path}: skipped: {e}")
                continue
            if text is None:
                continue
            self.spend(len(text), path)
            item = type1_entry(name, text)
            if item is None:
                continue
            self.rebase(item.entry)
            if self.present(item.entry, path):
                found.append(item)
        return found

    def type2_entries(self) -> list[Entry]:
        from . import uki

        directory = posixpath.join(self.base, "EFI", "Linux")
        fs = self.ctx.fs
        found = []
        for name in sorted(self.list_dir(directory)):
            if name.startswith(".") or not name.lower().endswith(".efi"):
                continue
            path = posixpath.join(directory, name)
            assert fs is not None
            try:
                image = uki.read_uki(fs, path)
            except PygrubError as e:
                self.ctx.notes.append(f"{path}: not a unified kernel image: {e}")
                continue
            if image is not None:
                self.spend(len(image.cmdline) + sum(map(len, image.os_release.values())), path)
                found.append(uki_entry(name, path, image))
        return found

    def spend(self, count: int, path: str) -> None:
        self.bytes_read += count
        if self.bytes_read > MAX_ENTRY_BYTES:
            raise LimitError(f"{path}: boot entries hold over {MAX_ENTRY_BYTES} bytes together")

    def rebase(self, entry: BootEntry) -> None:
        """Entry paths are relative to the partition: under /boot when that is a directory."""
        if self.base != "/":
            entry.kernel = self.base + entry.kernel if entry.kernel else entry.kernel
            entry.initrds = [self.base + p for p in entry.initrds]

    def present(self, entry: BootEntry, path: str) -> bool:
        """systemd-boot lists an entry only when its program file exists."""
        fs = self.ctx.fs
        if fs is None or entry.kernel is None:
            return True
        try:
            if fs.is_file(entry.kernel):
                return True
        except PygrubError:
            pass
        self.ctx.notes.append(f"{path}: {entry.kernel} not found; systemd-boot hides the entry")
        return False

    def build(self) -> BootMenu:
        records = self.type1_entries() + self.type2_entries()
        if not records:
            where = (
                posixpath.join(self.loader_dir, "entries"),
                posixpath.join(self.base, "EFI", "Linux"),
            )
            self.ctx.notes.append(f"no entry in {where[0]} nor {where[1]}")
        return self.menu(records, "systemd-boot")

    def menu(self, records: list[Entry], format_name: str) -> BootMenu:
        """The entries in systemd-boot's order, the default chosen as it would."""
        settings = self.settings()
        check_count(f"{self.loader_dir}: boot entries", len(records), MAX_MENU_ENTRIES)
        records.sort(key=functools.cmp_to_key(entry_order))
        unique_titles(records)
        items: list[BootItem] = [r.entry for r in records]
        menu = BootMenu(items, format_name)
        menu.timeout = settings.timeout
        menu.timeout_style = "hidden" if settings.timeout == 0 else "menu"
        menu.default, menu.default_reason = choose_default(records, settings.default)
        return menu


def load_ukis(ctx: LoadContext) -> BootMenu:
    """The menu of the unified kernel images in ``ctx.path`` (an ESP's /EFI/Linux/ with
    no loader): systemd-boot's type #2 entries alone."""
    loader = Loader(ctx)
    records = loader.type2_entries()
    if not records:
        ctx.notes.append(f"no unified kernel image in {ctx.path}")
    menu = loader.menu(records, "uki")
    menu.default_reason = "no loader on the ESP: the newest image, as systemd-boot orders them"
    return menu


def uki_entry(name: str, path: str, image: object) -> Entry:
    """A type #2 entry: title, version and sort key from the image's .osrel; the kernel
    and initrds are byte ranges (sections) of the image file."""
    from .uki import UnifiedKernelImage

    assert isinstance(image, UnifiedKernelImage)
    stem, left, done = split_counter(name[: -len(".efi")])
    osrel = image.os_release
    entry = BootEntry(title="", id=stem, args=image.cmdline, kind=LINUX)
    entry.kernel = path
    entry.kernel_range = image.kernel_range()
    for initrd in image.initrd_ranges():
        entry.initrds.append(path)
        entry.initrd_ranges.append(initrd)
    if not entry.kernel_range[1]:
        entry.not_bootable = f"{path}: the .linux section is empty"
    item = Entry((stem + ".efi").lower(), entry, tries_left=left, tries_done=done)
    item.title = osrel.get("PRETTY_NAME") or osrel.get("NAME") or osrel.get("ID")
    item.sort_key = osrel.get("IMAGE_ID") or osrel.get("ID")
    item.version = osrel.get("IMAGE_VERSION") or osrel.get("VERSION_ID")
    return item


def choose_default(records: list[Entry], pattern: str | None) -> tuple[tuple[int, ...], str]:
    """The first entry in menu order the ``default`` glob matches, else the first entry."""
    if pattern is None:
        return (0,), "no default in loader.conf: the first entry"
    if pattern.lower() == "@saved":
        return (0,), "default @saved: the last booted entry is an EFI variable; the first entry"
    if len(pattern) > MAX_PATTERN:
        raise LimitError(f"loader.conf: default pattern of {len(pattern)} characters")
    wanted = pattern.lower()
    for index, item in enumerate(records):
        if matches(wanted, item):
            return (index,), f"default {pattern} matches {item.key}"
    return (0,), f"default {pattern} matches no entry: the first entry"


def load(ctx: LoadContext) -> BootMenu:
    return Loader(ctx).build()
