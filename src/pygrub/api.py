"""pygrub as a library: open a disk image, see its volumes and boot menu, choose, extract.

This is the stable surface for tools built on pygrub (the README's "Python API" says
what is promised). Everything here is read-only on the image; the objects handed out
are frozen snapshots, so they stay valid after the image is closed, but choosing and
extracting need the image open.

The objects are views of the internal model, made here and nowhere else: a Menu and its
MenuEntry and MenuSubmenu items of config.model's BootMenu, BootEntry and Submenu (with
their paths, the default marked and why an entry cannot boot), a Choice of boot's
BootPlan (which it keeps, as ``plan``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from ._typing import TYPE_CHECKING
from .boot import (
    BootPlan,
    Chooser,
    NothingBootable,
    VolumeReport,
    open_guest,
    plan_boot,
    tried_volumes,
    why_not_bootable,
)
from .config import find_menu
from .config.model import BootEntry, BootMenu, Submenu
from .disk.source import open_image as _open_source
from .errors import (
    CorruptError,
    LimitError,
    NotFoundError,
    PygrubError,
    UnsupportedError,
)
from .extract import CHUNK, Extraction, FileRef, concatenation
from .formats import IMAGE_FORMATS
from .fs import Filesystem
from .record import field, record
from .select import default_choice, first_entry_under
from .settings import backing_allowed, file_size_limit
from .volumes import Volume

if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = [
    "IMAGE_FORMATS",
    "Choice",
    "CorruptError",
    "Extracted",
    "FilesystemInfo",
    "Image",
    "LimitError",
    "Menu",
    "MenuEntry",
    "MenuItem",
    "MenuSubmenu",
    "NotFoundError",
    "NothingBootable",
    "PygrubError",
    "UnsupportedError",
    "VolumeInfo",
    "as_json",
    "json_schema",
    "open_image",
]

#: Submenus nested deeper than this are refused (the loaders stop well before).
MAX_MENU_DEPTH = 64

WhyNot = Callable[[BootEntry], "str | None"]


# -- the public objects ------------------------------------------------------------------


@record(frozen=True)
class FilesystemInfo:
    """The filesystem on a volume."""

    #: "ext2/3/4", "xfs", "btrfs", "fat", "iso9660", ...
    type: str
    uuid: str | None
    label: str | None


@record(frozen=True)
class VolumeInfo:
    """A place on the disk that may hold a filesystem, in the order pygrub tries them."""

    #: GRUB's device name without parentheses: "hd0", "hd0,msdos1", "hd0,gpt2", "lvm/vg-root".
    device: str
    #: Partition number as GRUB counts it (1-based); None for a whole disk or a logical volume.
    partition: int | None
    #: What found it: "MBR partition 1 (type 0x83, active)", "whole disk", ...
    origin: str
    bootable: bool
    #: The GPT partition type GUID and name, where the table has them.
    type_guid: str | None
    partition_label: str | None
    #: None when no filesystem pygrub reads is there (``problem`` says why).
    filesystem: FilesystemInfo | None
    problem: str | None


@record(frozen=True)
class MenuEntry:
    """One bootable item of a menu, as the guest's bootloader evaluated it."""

    title: str
    id: str | None
    #: Index path through submenus; ``titles`` is the same path by title.
    path: tuple[int, ...]
    titles: tuple[str, ...]
    #: "linux", "multiboot", "multiboot2", "chainloader" or "other".
    kind: str
    #: Paths inside the guest's filesystem.
    kernel: str | None
    initrds: tuple[str, ...]
    args: str
    #: The GRUB device the entry reads its files from, as the config names it (GRUB
    #: legacy counts partitions from 0: "hd0,0"); None: the config's own volume.
    device: str | None
    #: The entry the loader's default rule names.
    default: bool
    #: Why the entry cannot boot here; None when it can.
    not_bootable: str | None

    @property
    def bootable(self) -> bool:
        return self.not_bootable is None


@record(frozen=True)
class MenuSubmenu:
    title: str
    id: str | None
    path: tuple[int, ...]
    titles: tuple[str, ...]
    items: tuple[MenuItem, ...]
    #: The default entry is inside it.
    default: bool


MenuItem = MenuEntry | MenuSubmenu


@record(frozen=True)
class Menu:
    """A guest's boot menu: the first bootloader config found, in pygrub's search order."""

    #: "grub2", "grub-legacy", "extlinux", "isolinux", "syslinux", "systemd-boot", "lilo",
    #: "uki" (an ESP holding only unified kernel images).
    bootloader: str
    #: The config file, as a path inside its filesystem.
    config_path: str
    volume: VolumeInfo
    items: tuple[MenuItem, ...]
    #: Index path of the entry the loader's default rule names, and that rule in words.
    default: tuple[int, ...]
    default_reason: str
    #: Seconds before the default boots; None waits for a key.
    timeout: float | None
    #: What ``choose()`` with no entry boots: the default, or the fallback taken; None
    #: when no entry of this menu can boot here.
    chosen: tuple[int, ...] | None
    #: How the default was found, one line per step, for people.
    explanation: tuple[str, ...]

    def entries(self) -> Iterator[MenuEntry]:
        """Every entry, depth first."""
        stack: list[MenuItem] = list(reversed(self.items))
        while stack:
            item = stack.pop()
            if isinstance(item, MenuEntry):
                yield item
            else:
                stack.extend(reversed(item.items))

    def item_at(self, path: tuple[int, ...]) -> MenuItem | None:
        items = self.items
        item: MenuItem | None = None
        for index in path:
            if not 0 <= index < len(items):
                return None
            item = items[index]
            items = item.items if isinstance(item, MenuSubmenu) else ()
        return item


@record(frozen=True)
class Choice:
    """What would boot: the files to extract, the command line, and where they came from."""

    #: Paths inside the guest's filesystem on ``device``.
    kernel: str
    initrds: tuple[str, ...]
    #: The whole kernel command line (the entry's, then any extra arguments).
    args: str
    #: The GRUB device kernel and initrds are read from: "hd0,msdos1".
    device: str
    #: The volume whose config was used (or that held --kernel).
    volume: VolumeInfo
    #: None when the kernel was named directly (``kernel=``) and no config was read.
    bootloader: str | None
    config_path: str | None
    entry: MenuEntry | None
    #: How the entry was chosen, one line per step, for people.
    explanation: tuple[str, ...]
    #: What the choice was made from: pygrub.boot's plan (its files to extract).
    plan: BootPlan = field(repr=False, compare=False)
    _image: Image = field(repr=False, compare=False)


@record(frozen=True)
class Extracted:
    """Host paths of extracted files (the caller removes them when done)."""

    kernel: str
    ramdisk: str | None


# -- the image ---------------------------------------------------------------------------


def open_image(
    path: str | os.PathLike[str],
    *,
    offset: int | None = None,
    image_format: str = "auto",
    allow_backing: bool | None = None,
) -> Image:
    """Open a guest disk image (file or block device) read-only; use it as a context manager.

    ``offset``: the filesystem starts there, no partition table is read (``--offset``).
    ``image_format``: "auto" (qcow2 by its magic, else raw), "raw" or "qcow2".
    ``allow_backing``: a qcow2 image may read a backing file in its own directory
    (default: PYGRUB_ALLOW_BACKING=1, as for the command).
    """
    return Image(path, offset=offset, image_format=image_format, allow_backing=allow_backing)


class Image:
    """An open guest disk. Nothing is ever written to it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        offset: int | None = None,
        image_format: str = "auto",
        allow_backing: bool | None = None,
    ) -> None:
        self.path = os.fspath(path)
        if offset is not None and offset < 0:
            raise ValueError(f"offset must not be negative, not {offset}")
        if allow_backing is None:
            allow_backing = backing_allowed(os.environ)
        self._source = _open_source(self.path, image_format, allow_backing)
        try:
            if offset is not None and offset >= self._source.size:
                raise NotFoundError(
                    f"offset {offset} is at or past the end of disk image {self.path}"
                    f" ({self._source.size} bytes)"
                )
            self._guest = open_guest(self._source, offset)
        except BaseException:
            self._source.close()
            raise
        self._offset = offset
        self._closed = False

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._source.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"image {self.path} is closed")

    # -- looking -------------------------------------------------------------------------

    def volumes(self) -> list[VolumeInfo]:
        """Every volume in the order pygrub tries them, each with its filesystem (if read)."""
        self._check_open()
        return [self._volume_info(v) for v in self._guest.volumes]

    def menu(self, args: str = "") -> Menu:
        """The boot menu of the first volume with a bootloader config (what ``pygrub -l`` lists).

        ``args`` are the extra kernel arguments (``--args``); Solaris configs read them.
        Raises NothingBootable (a NotFoundError) saying what each volume held.
        """
        self._check_open()
        reports: list[VolumeReport] = []
        for volume, fs, report in tried_volumes(self._guest, reports):
            menu, report.attempts = find_menu(self._guest, volume, fs, args)
            if menu is not None:
                skipped = tuple(f"skipped {r}" for r in reports[:-1])
                return self._public_menu(menu, volume, fs, skipped)
            if not report.attempts:
                report.problem = "no bootloader config"
        self._refuse_what_is_no_disk()
        raise NothingBootable(reports)

    # -- choosing ------------------------------------------------------------------------

    def choose(
        self,
        entry: str | None = None,
        *,
        args: str = "",
        kernel: str | None = None,
        ramdisk: str | None = None,
        default_args: str | None = None,
        extra_args: str = "",
        chooser: Chooser | None = None,
    ) -> Choice:
        """What the guest would boot, tried volume by volume as ``pygrub -q`` does.

        ``entry`` picks as ``--entry``: an index into :meth:`Menu.entries` (submenus
        flattened, as Xen's pygrub counts), a title, an id or an ``A>B`` path; an
        entry that is not found falls back to the default rules, as Xen's pygrub does.
        ``args`` are appended to the entry's command line. ``kernel`` (and ``ramdisk``)
        name the files directly and read no config; ``args`` is then the whole line.
        ``default_args`` and ``extra_args`` are XCP-ng's --default_args and --extra_args;
        a ``chooser`` (the command's interactive menu) picks the entry instead of the rules.
        """
        entry_spec, appended_args = entry, extra_args
        self._check_open()
        try:
            plan = plan_boot(
                self._guest, entry_spec, args, kernel, ramdisk, chooser, default_args, appended_args
            )
        except NothingBootable:
            self._refuse_what_is_no_disk()
            raise
        assert plan.volume is not None
        fs = self._guest.filesystem(plan.volume)
        assert fs is not None
        volume = self._volume_info(plan.volume)
        menu, public_entry = plan.menu, None
        how = list(plan.trace)
        if menu is not None:
            assert plan.entry is not None
            public_entry = _entry_at(menu, plan.path, plan.entry, _default_leaf(menu), None)
            how.insert(0, f"config {menu.config_path} ({menu.format})")
        if plan.entry is not None and plan.entry.device_name is not None:
            how.append(f"the entry's ({plan.entry.device_name}) is {plan.kernel.where}")
        lines = [
            *(f"skipped {r}" for r in plan.reports[:-1]),
            f"volume {_describe_volume(volume)}",
            *how,
            f"boot {plan.kernel}" + "".join(f" + {ref}" for ref in plan.initrds),
        ]
        return Choice(
            kernel=plan.kernel.path,
            initrds=tuple(ref.path for ref in plan.initrds),
            args=plan.args,
            device=plan.kernel.where.removeprefix("(").removesuffix(")"),
            volume=volume,
            bootloader=menu.format if menu is not None else None,
            config_path=menu.config_path if menu is not None else None,
            entry=public_entry,
            explanation=tuple(lines),
            plan=plan,
            _image=self,
        )

    # -- extracting ----------------------------------------------------------------------

    def extract(
        self, choice: Choice, directory: str | os.PathLike[str], *, max_size: int | None = None
    ) -> Extracted:
        """Write ``boot_kernel.XXXXXXXX`` (and ``boot_ramdisk.XXXXXXXX``) into ``directory``.

        Several initrds become one ramdisk, each padded to 4 bytes, as GRUB loads them.
        ``max_size`` bounds each file (default: PYGRUB_MAX_FILE_SIZE_MB, else 1 GiB). On
        any error nothing is left behind.
        """
        plan = self._plan_of(choice)
        with Extraction(os.fspath(directory)) as extraction:
            kernel, ramdisk = extraction.write_boot_files(
                plan.kernel, plan.initrds, *_limit(max_size)
            )
            extraction.keep()
        return Extracted(kernel, ramdisk)

    def write_kernel(self, choice: Choice, out: BinaryIO, *, max_size: int | None = None) -> int:
        """Copy the kernel into a writable binary file object; returns the bytes written."""
        plan = self._plan_of(choice)
        return _stream([plan.kernel], out, pad=False, limit=_limit(max_size))

    def write_ramdisk(self, choice: Choice, out: BinaryIO, *, max_size: int | None = None) -> int:
        """Copy the initrds, as one ramdisk, into ``out``; returns the bytes written (0: none)."""
        plan = self._plan_of(choice)
        return _stream(plan.initrds, out, pad=len(plan.initrds) > 1, limit=_limit(max_size))

    def _plan_of(self, choice: Choice) -> BootPlan:
        self._check_open()
        if choice._image is not self:
            raise ValueError("the choice was made on another image")
        return choice.plan

    def _refuse_what_is_no_disk(self) -> None:
        """When nothing booted: UnsupportedError naming a file that is no disk (a VMDK, ...).

        Only when no volume holds a filesystem, so a real disk is never misnamed; and not
        with an offset, where the caller said what the file is.
        """
        if self._offset is not None or self._guest.filesystems():
            return
        from .disk.foreign import not_a_disk

        what = not_a_disk(self._source, self.path)
        if what is not None:
            raise UnsupportedError(f"disk image {self.path} is {what}")

    # -- building the public objects -----------------------------------------------------

    def _volume_info(self, volume: Volume) -> VolumeInfo:
        fs = self._guest.filesystem(volume)
        return VolumeInfo(
            device=volume.grub_name,
            partition=volume.number,
            origin=volume.origin,
            bootable=volume.bootable,
            type_guid=volume.type_guid,
            partition_label=volume.label,
            filesystem=FilesystemInfo(fs.kind, fs.uuid, fs.label) if fs is not None else None,
            problem=None if fs is not None else self._guest.probe_error(volume),
        )

    def _why_not(self, menu: BootMenu, volume: Volume, fs: Filesystem) -> WhyNot:
        # A config found in a btrfs subvolume names its files inside that subvolume.
        home = menu.source_fs or fs
        home_name = f"({volume.grub_name})"

        def why_not(entry: BootEntry) -> str | None:
            return why_not_bootable(self._guest, home, home_name, entry)

        return why_not

    def _public_menu(
        self, menu: BootMenu, volume: Volume, fs: Filesystem, skipped: tuple[str, ...]
    ) -> Menu:
        why_not = self._why_not(menu, volume, fs)
        default_leaf = _default_leaf(menu)
        chosen, how = default_choice(menu, why_not)
        info = self._volume_info(volume)
        lines = [
            *skipped,
            f"volume {_describe_volume(info)}",
            f"config {menu.config_path} ({menu.format})",
            *how,
        ]
        return Menu(
            bootloader=menu.format,
            config_path=menu.config_path,
            volume=info,
            items=_public_items(menu, menu.items, (), (), default_leaf, why_not),
            default=default_leaf or (),
            default_reason=menu.default_reason,
            timeout=menu.timeout,
            chosen=chosen,
            explanation=tuple(lines),
        )


# -- JSON ------------------------------------------------------------------------------


def as_json(item: Menu | Choice, extracted: Extracted | None = None) -> dict:
    """The object ``pygrub --output-format=json`` prints for a menu (-l) or a choice.

    For a choice, ``extracted`` gives the kernel and ramdisk paths (null without it).
    """
    from .output import boot_json, menu_json

    if isinstance(item, Menu):
        return menu_json(item)
    kernel = extracted.kernel if extracted is not None else None
    ramdisk = extracted.ramdisk if extracted is not None else None
    return boot_json(item, kernel, ramdisk)


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) every ``as_json`` object validates against."""
    import json
    from importlib.resources import files

    return json.loads(files("pygrub").joinpath("output.schema.json").read_text("utf-8"))


# -- helpers -----------------------------------------------------------------------------


def _default_leaf(menu: BootMenu) -> tuple[int, ...] | None:
    """The entry the default rule names, as select.choose resolves it (entry 0 if out of range)."""
    start = menu.default if menu.item_at(menu.default) is not None else (0,)
    return first_entry_under(menu, start)


def _public_items(
    menu: BootMenu,
    items: list[BootEntry | Submenu],
    prefix: tuple[int, ...],
    titles: tuple[str, ...],
    default_leaf: tuple[int, ...] | None,
    why_not: WhyNot,
) -> tuple[MenuItem, ...]:
    if len(prefix) >= MAX_MENU_DEPTH:
        raise LimitError(f"{menu.config_path}: submenus nested over {MAX_MENU_DEPTH} deep")
    public: list[MenuItem] = []
    for index, item in enumerate(items):
        path = prefix + (index,)
        if isinstance(item, BootEntry):
            public.append(_entry_at(menu, path, item, default_leaf, why_not(item), titles))
            continue
        holds_default = default_leaf is not None and default_leaf[: len(path)] == path
        inner = _public_items(menu, item.items, path, titles + (item.title,), default_leaf, why_not)
        public.append(
            MenuSubmenu(item.title, item.id, path, titles + (item.title,), inner, holds_default)
        )
    return tuple(public)


def _entry_at(
    menu: BootMenu,
    path: tuple[int, ...],
    entry: BootEntry,
    default_leaf: tuple[int, ...] | None,
    not_bootable: str | None,
    parents: tuple[str, ...] | None = None,
) -> MenuEntry:
    if parents is None:
        parents = _titles_above(menu, path)
    return MenuEntry(
        title=entry.title,
        id=entry.id,
        path=path,
        titles=parents + (entry.title,),
        kind=entry.kind,
        kernel=entry.kernel,
        initrds=tuple(entry.initrds),
        args=entry.args,
        device=entry.device_name or entry.device,
        default=path == default_leaf,
        not_bootable=not_bootable,
    )


def _titles_above(menu: BootMenu, path: tuple[int, ...]) -> tuple[str, ...]:
    """Titles of the submenus leading to ``path``."""
    titles = []
    for depth in range(1, len(path)):
        item = menu.item_at(path[:depth])
        titles.append(item.title if item is not None else "")
    return tuple(titles)


def _describe_volume(volume: VolumeInfo) -> str:
    text = f"({volume.device}) {volume.origin}"
    fs = volume.filesystem
    if fs is None:
        return f"{text}: {volume.problem or 'no filesystem'}"
    text += f": {fs.type}"
    if fs.uuid:
        text += f" UUID={fs.uuid}"
    if fs.label:
        text += f" LABEL={fs.label!r}"
    return text


def _limit(max_size: int | None) -> tuple[int, str]:
    """The size limit of each extracted file, and what set it."""
    if max_size is not None:
        return max_size, ""
    return file_size_limit(os.environ), "PYGRUB_MAX_FILE_SIZE_MB"


def _stream(refs: list[FileRef], out: BinaryIO, pad: bool, limit: tuple[int, str]) -> int:
    """Write the files one after another into ``out``; each padded to 4 bytes if ``pad``."""
    total = 0
    for ref, offset, size, padding in concatenation(refs, limit[0], pad, limit[1]):
        with ref.fs.open(ref.path) as reader:
            # A reference may be a byte range of its file (a unified kernel image's section).
            reader.seek(getattr(ref, "offset", 0))
            done = 0
            while done < size:
                data = reader.read(min(CHUNK, size - done))
                if not data:
                    raise CorruptError(f"{ref}: ends at byte {done} of {size}")
                _write_all(out, data)
                done += len(data)
        if padding:
            _write_all(out, bytes(padding))
        total = offset + size + padding
    return total


def _write_all(out: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = out.write(view)
        # Buffered writers write everything and may return None; raw ones may write less.
        view = view[len(view) if written is None else written :]
