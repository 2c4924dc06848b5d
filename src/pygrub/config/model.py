"""BootMenu: what every bootloader format produces, whatever its syntax."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .._typing import TYPE_CHECKING
from ..record import field, record

if TYPE_CHECKING:
    from ..fs import Filesystem

#: Entry kinds. Only LINUX entries are bootable by a Xen PV domain builder.
LINUX = "linux"
MULTIBOOT = "multiboot"
MULTIBOOT2 = "multiboot2"
CHAINLOADER = "chainloader"
OTHER = "other"

#: A byte range of a file: (offset, length).
ByteRange = tuple[int, int]


@record
class BootEntry:
    """One bootable item of a menu."""

    title: str
    kernel: str | None = None
    #: In load order; several are concatenated into one ramdisk.
    initrds: list[str] = field(default_factory=list)
    args: str = ""
    id: str | None = None
    #: GRUB device name (no parentheses) holding kernel and initrds; None: the config's volume.
    device: str | None = None
    #: ``device`` as the config wrote it, for people: GRUB legacy's "hd0,0" is GRUB 2's
    #: "hd0,1". None: as ``device``.
    device_name: str | None = None
    kind: str = LINUX
    #: The source lines of the entry, for the menu's editor.
    lines: list[str] = field(default_factory=list)
    #: Booting it needs the password (GRUB legacy ``lock``, GRUB 2 ``--users``).
    locked: bool = False
    #: Why this entry cannot boot here, when the loader already knows.
    not_bootable: str | None = None
    #: When the kernel is only part of its file (a unified kernel image's .linux section):
    #: its (offset, length) there; None is the whole file.
    kernel_range: ByteRange | None = None
    #: The same for each initrd, in the order of ``initrds``; empty when all are whole files.
    initrd_ranges: list[ByteRange | None] = field(default_factory=list)


@record
class Submenu:
    title: str
    items: list[BootEntry | Submenu] = field(default_factory=list)
    id: str | None = None
    lines: list[str] = field(default_factory=list)
    locked: bool = False


BootItem = BootEntry | Submenu


@record
class Password:
    """A menu password: ``plain``, ``md5`` (crypt $1$) or ``pbkdf2`` (grub.pbkdf2.sha512)."""

    kind: str
    value: str
    #: GRUB 2 superusers allowed by it; empty for GRUB legacy.
    users: tuple[str, ...] = ()


@record
class BootMenu:
    items: list[BootItem]
    #: Format name: "grub2", "grub-legacy", "extlinux", "lilo", "systemd-boot", ...
    format: str
    #: The file it was read from, as a path inside its filesystem.
    config_path: str = ""
    #: Index path of the default entry through submenus, as the real loader resolves it.
    default: tuple[int, ...] = (0,)
    #: Index paths tried in order when the default cannot boot.
    fallback: list[tuple[int, ...]] = field(default_factory=list)
    #: Seconds before the default boots; None waits for a key.
    timeout: float | None = None
    timeout_style: str = "menu"
    password: Password | None = None
    #: One line saying which rule chose the default (for -l and messages).
    default_reason: str = ""
    #: The filesystem (or btrfs subvolume view) the config was read from; its paths are there.
    source_fs: Filesystem | None = field(default=None, repr=False, compare=False)
    #: Re-evaluates an edited entry (title, command lines) as the loader would, for the
    #: menu's editor and command line; None when the format offers no editor.
    evaluate: Callable[[str, list[str]], BootEntry] | None = field(
        default=None, repr=False, compare=False
    )

    def item_at(self, path: tuple[int, ...]) -> BootItem | None:
        """The item at an index path, or None when the path leads nowhere."""
        items: list[BootItem] = self.items
        item: BootItem | None = None
        for index in path:
            if not 0 <= index < len(items):
                return None
            item = items[index]
            items = item.items if isinstance(item, Submenu) else []
        return item

    def walk(self) -> Iterator[tuple[tuple[int, ...], BootItem]]:
        """Every item, depth first, with its index path."""
        yield from _walk_items((), self.items)

    def entries(self) -> Iterator[tuple[tuple[int, ...], BootEntry]]:
        """Every BootEntry, depth first."""
        for path, item in self.walk():
            if isinstance(item, BootEntry):
                yield path, item


def _walk_items(
    prefix: tuple[int, ...], items: list[BootItem]
) -> Iterator[tuple[tuple[int, ...], BootItem]]:
    # Recursion depth is bounded by the loaders' submenu nesting limit.
    for index, item in enumerate(items):
        path = prefix + (index,)
        yield path, item
        if isinstance(item, Submenu):
            yield from _walk_items(path, item.items)
