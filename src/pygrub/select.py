"""Choosing the entry: --entry, the loader's default, fallbacks.

The rules say what they did as they do it (``Chosen.trace``, ``default_choice``): --explain
only formats those lines, so a change to a rule cannot leave its explanation behind.
"""

from __future__ import annotations

from collections.abc import Callable

from .config.model import BootEntry, BootItem, BootMenu, Submenu
from .errors import NotFoundError
from .log import get_logger
from .record import record

log = get_logger(__name__)

WhyNot = Callable[[BootEntry], "str | None"]


@record(frozen=True)
class Chosen:
    """The entry to boot, its index path, and how the rules came to it."""

    path: tuple[int, ...]
    entry: BootEntry
    #: One line per step, for people (--explain).
    trace: tuple[str, ...]


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


def _match_level(items: list[BootItem], spec: str) -> int | None:
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


def _follow_path(items: list[BootItem], parts: list[str]) -> tuple[int, ...] | None:
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


def choose(menu: BootMenu, entry_spec: str | None, why_not: WhyNot) -> Chosen:
    """The entry to boot, its path, and the steps taken.

    ``why_not(entry)`` says why an entry cannot boot here (or None). An entry named with
    --entry must boot; the default falls back along the menu's fallback list.
    """
    trace: tuple[str, ...] = ()
    if entry_spec is not None:
        path = find_entry(menu, entry_spec)
        if path is not None:
            return _named(menu, entry_spec, path, why_not)
        log.warning("no entry %r in %s; booting the default", entry_spec, menu.config_path)
        trace = (f"entry {entry_spec!r} names no entry: the default rule applies",)
    found, steps, refusals = _follow_default(menu, why_not)
    if found is None:
        raise NotFoundError(
            f"{menu.config_path}: the default entry cannot boot ({'; '.join(refusals)})"
        )
    return Chosen(found[0], found[1], trace + steps)


def default_choice(
    menu: BootMenu, why_not: WhyNot
) -> tuple[tuple[int, ...] | None, tuple[str, ...]]:
    """The path the loader's default rule boots (None when nothing on the menu can boot
    here), and the steps taken."""
    found, steps, _refusals = _follow_default(menu, why_not)
    return (None if found is None else found[0]), steps


def _named(menu: BootMenu, entry_spec: str, path: tuple[int, ...], why_not: WhyNot) -> Chosen:
    """The entry --entry names at ``path``, which must boot."""
    leaf = first_entry_under(menu, path)
    if leaf is None:
        raise NotFoundError(f"entry {entry_spec!r} in {menu.config_path} is an empty submenu")
    entry = menu.item_at(leaf)
    assert isinstance(entry, BootEntry)
    reason = why_not(entry)
    if reason:
        raise NotFoundError(f"entry {entry_spec!r} ({entry.title}) cannot boot: {reason}")
    return Chosen(leaf, entry, (f"entry {entry_spec!r} names {dotted(leaf)}",))


def _follow_default(
    menu: BootMenu, why_not: WhyNot
) -> tuple[tuple[tuple[int, ...], BootEntry] | None, tuple[str, ...], list[str]]:
    """The default, else the first fallback that boots: (its path and entry, or None),
    the steps taken, and why each entry tried cannot boot."""
    steps = [f"default rule: {menu.default_reason or 'not stated by the loader'}"]
    candidates = [menu.default, *menu.fallback]
    if menu.item_at(menu.default) is None:
        log.info("default %s is out of range in %s; using entry 0", menu.default, menu.config_path)
        steps.append(f"the default {dotted(menu.default)} names no item: the first one")
        candidates[0] = (0,)
    refusals: list[str] = []
    for number, path in enumerate(candidates):
        role = "default" if number == 0 else "fallback"
        leaf = first_entry_under(menu, path)
        if leaf is None:
            steps.append(f"{role} {dotted(path)} names no entry")
            continue
        entry = menu.item_at(leaf)
        assert isinstance(entry, BootEntry)
        reason = why_not(entry)
        if reason is None:
            steps.append(f"{role} {dotted(leaf)} {entry.title!r} boots")
            return (leaf, entry), tuple(steps), refusals
        steps.append(f"{role} {dotted(leaf)} {entry.title!r} cannot boot here: {reason}")
        refusals.append(f"{entry.title!r}: {reason}")
    steps.append("no fallback left: nothing on this menu boots")
    return None, tuple(steps), refusals


def dotted(path: tuple[int, ...]) -> str:
    """An index path as --entry accepts it: "1>0"."""
    return ">".join(map(str, path)) or "(none)"
