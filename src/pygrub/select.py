"""Choosing the entry: --entry, the loader's default, fallbacks."""

from __future__ import annotations

from collections.abc import Callable

from .config.model import BootEntry, BootMenu, MenuItem, Submenu
from .errors import NotFoundError
from .log import get_logger

log = get_logger(__name__)


def find_entry(menu: BootMenu, spec: str) -> tuple[int, ...] | None:
    """The index path --entry names: a number, a title, an id, or a ``>`` path of them.

    A plain number N is the Nth entry as ``-l`` lists them, submenus flattened depth
    first: what Xen's pygrub boots for ``--entry=N``, so existing domain configs keep
    their kernel. GRUB's own counting (a submenu is one item) is a ``>`` path: ``1>0``.
    A title or id matches at the top level first, then at any depth.
    """
    if ">" in spec:
        return _follow_path(menu.items, spec.split(">"))
    number = _xen_number(spec)
    if number is not None:
        return _nth_entry(menu, number)
    found = _match_level(menu.items, spec)
    if found is not None:
        return (found,)
    for path, item in menu.walk():
        if item.title == spec or (item.id is not None and item.id == spec):
            return path
    return None


def _xen_number(spec: str) -> int | None:
    """``spec`` as a number the way Xen's pygrub reads --entry (Python's int()), else None."""
    try:
        return int(spec)
    except ValueError:
        return None


def _nth_entry(menu: BootMenu, number: int) -> tuple[int, ...] | None:
    """The path of the ``number``th entry of the flattened menu; None when out of range."""
    if number < 0:
        return None
    for index, (path, _entry) in enumerate(menu.entries()):
        if index == number:
            return path
    return None


def _match_level(items: list[MenuItem], spec: str) -> int | None:
    if spec.strip().isdigit():
        index = int(spec)
        return index if index < len(items) else None
    for index, item in enumerate(items):
        if item.id is not None and item.id == spec:
            return index
    for index, item in enumerate(items):
        if item.title == spec:
            return index
    return None


def _follow_path(items: list[MenuItem], parts: list[str]) -> tuple[int, ...] | None:
    path: list[int] = []
    for depth, part in enumerate(parts):
        index = _match_level(items, part)
        if index is None:
            return None
        path.append(index)
        item = items[index]
        if isinstance(item, Submenu):
            items = item.items
        elif depth != len(parts) - 1:
            return None
    return tuple(path)


def first_entry_under(menu: BootMenu, path: tuple[int, ...]) -> tuple[int, ...] | None:
    """``path`` itself when it is an entry; inside a submenu, its first entry."""
    item = menu.item_at(path)
    while isinstance(item, Submenu):
        if not item.items:
            return None
        path = path + (0,)
        item = item.items[0]
    return path if item is not None else None


def choose(
    menu: BootMenu,
    entry_spec: str | None,
    why_not: Callable[[BootEntry], str | None],
) -> tuple[tuple[int, ...], BootEntry]:
    """The entry to boot and its path.

    ``why_not(entry)`` says why an entry cannot boot here (or None). An entry named with
    --entry must boot; the default falls back along the menu's fallback list.
    """
    if entry_spec is not None:
        path = find_entry(menu, entry_spec)
        if path is None:
            log.warning("no entry %r in %s; booting the default", entry_spec, menu.config_path)
        else:
            leaf = first_entry_under(menu, path)
            if leaf is None:
                raise NotFoundError(
                    f"entry {entry_spec!r} in {menu.config_path} is an empty submenu"
                )
            entry = menu.item_at(leaf)
            assert isinstance(entry, BootEntry)
            reason = why_not(entry)
            if reason:
                raise NotFoundError(f"entry {entry_spec!r} ({entry.title}) cannot boot: {reason}")
            return leaf, entry

    candidates = [menu.default] + list(menu.fallback)
    if menu.item_at(menu.default) is None:
        log.info("default %s is out of range in %s; using entry 0", menu.default, menu.config_path)
        candidates[0] = (0,)
    reasons = []
    for path in candidates:
        leaf = first_entry_under(menu, path)
        if leaf is None:
            continue
        entry = menu.item_at(leaf)
        assert isinstance(entry, BootEntry)
        reason = why_not(entry)
        if reason is None:
            return leaf, entry
        reasons.append(f"{entry.title!r}: {reason}")
    raise NotFoundError(f"{menu.config_path}: the default entry cannot boot ({'; '.join(reasons)})")
