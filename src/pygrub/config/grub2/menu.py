"""From the evaluated config to a BootMenu, choosing the default as grub-core/normal/menu.c does.

After the config has run, GRUB shows the menu of the final context. Booting an entry
runs its body with its arguments as positional parameters and ``chosen`` set, in the
final environment (we use a copy per entry, so one entry cannot change another).
Entering a submenu opens a new context holding the exported variables, runs the
submenu's body there to build its menu, and hands it the part of ``default`` after the
first ``>`` (``>>`` stands for a literal '>').

``default`` is looked up per level: an entry id (or the title of an entry without one)
first, then a title, then a number - ids and titles first as Red Hat's GRUB does, so an
id starting with a digit is not read as a number; an unmatched value falls back to a
leading number as upstream's strtoul would; out of range or unmatched means entry 0.
Upstream (get_entry_number in GRUB 2.12's normal/menu.c) differs: a leading number
wins first, and otherwise one pass in menu order takes the first entry whose title or
id matches, so an earlier title beats a later id (tests/test_grub2_emu.py shows both).
"""

from __future__ import annotations

import re

from ...log import get_logger
from ...record import field, record
from ..model import OTHER, BootEntry, BootItem, BootMenu, Password, Submenu
from .interp import (
    BodySyntaxError,
    BootNow,
    Context,
    Env,
    FunctionReturn,
    Interpreter,
    Loaded,
    MenuDef,
    MenuReplaced,
    ScriptLimitError,
    Session,
    StopScript,
)
from .strtoul import grub_strtoul

log = get_logger(__name__)

_SUPERUSER_SEPARATORS = re.compile(r"[ ,;|&]+")
TIMEOUT_STYLES = ("menu", "countdown", "hidden")


@record
class Grub2Menu(BootMenu):
    """A BootMenu that keeps the evaluation behind it (see ``evaluate_commands``)."""

    session: Session | None = field(default=None, repr=False, compare=False)


def build_menu(session: Session) -> Grub2Menu:
    final = session.final
    assert final is not None
    env = final.env
    items, default = _build_level(session, final)
    menu = Grub2Menu(items=items, format="grub2", session=session)
    menu.default = default or (0,)
    menu.fallback = _fallbacks(final, items)
    menu.timeout, menu.timeout_style = _timeout(env)
    menu.password = _password(session, env)
    menu.default_reason = _default_reason(session, final)
    if session.top_boot is not None:
        _put_top_level_boot_first(menu, session.top_boot, final.config)
    return menu


def _build_level(session: Session, context: Context) -> tuple[list[BootItem], tuple[int, ...]]:
    """The items of one menu level and the default path from it down."""
    defs = [d for d in context.menu if not d.hidden]
    index, rest, _found = resolve_default(defs, context.env.get("default"))
    frozen = context.env.flat()
    parent_chosen = context.env.get("chosen")
    superusers = context.env.get("superusers")
    items: list[BootItem] = []
    tail: tuple[int, ...] = ()
    for position, definition in enumerate(defs):
        chosen = join_chosen(parent_chosen, definition.ident)
        locked = superusers is not None and definition.users is not None
        if definition.submenu:
            with session.nested("submenu"):
                sub = _run_submenu(
                    session,
                    context,
                    frozen,
                    definition,
                    chosen,
                    rest if position == index else None,
                )
                sub_items, sub_default = _build_level(session, sub)
            items.append(
                Submenu(
                    definition.title, sub_items, definition.entry_id, _lines(definition), locked
                )
            )
            if position == index:
                tail = sub_default
        else:
            entry = evaluate_entry(session, frozen, context.env.exported, definition, chosen)
            entry.locked = locked
            items.append(entry)
    return items, ((index,) + tail) if defs else ()


def resolve_default(defs: list[MenuDef], spec: str | None) -> tuple[int, str | None, bool]:
    """(index, the rest for the submenu, whether ``spec`` named an entry) for one level."""
    if spec is None:
        return 0, None, False
    component, rest = split_first_level(spec)
    for index, definition in enumerate(defs):
        if definition.ident == component:
            return index, rest, True
    for index, definition in enumerate(defs):
        if definition.title == component:
            return index, rest, True
    number, _end = grub_strtoul(spec)
    if number is not None and number < len(defs):
        return number, rest, True
    return 0, rest, False


def split_first_level(spec: str) -> tuple[str, str | None]:
    """ "a>>b>c>d" -> ("a>b", "c>d"): the first level of a '>' path and what follows."""
    out = []
    i = 0
    while i < len(spec):
        char = spec[i]
        if char == ">":
            if spec.startswith(">>", i):
                out.append(">")
                i += 2
                continue
            return "".join(out), spec[i + 1 :] or None
        out.append(char)
        i += 1
    return "".join(out), None


def join_chosen(parent: str | None, ident: str) -> str:
    """$chosen for an entry: the parent's chosen, '>', the id with '>' doubled."""
    own = ident.replace(">", ">>")
    return f"{parent}>{own}" if parent else own


def _run_submenu(
    session: Session,
    parent: Context,
    frozen: dict[str, str],
    definition: MenuDef,
    chosen: str,
    rest: str | None,
) -> Context:
    exported = {name: frozen[name] for name in parent.env.exported if name in frozen}
    env = Env(session.limits, exported, parent.env.exported)
    env.set("chosen", chosen)
    env.export("chosen")
    if rest:
        env.set("default", rest)
    env.set("timeout", "0")
    context = Context(env, [], definition.config)
    it = Interpreter(session, context, list(definition.args), session.limits.max_entry_steps)
    try:
        it.run_body(definition.source, f"submenu {definition.title[:60]!r}")
    except MenuReplaced as replaced:
        return replaced.context
    except (BodySyntaxError, StopScript, BootNow, FunctionReturn, ScriptLimitError) as e:
        log.info("submenu %r stops early: %s", definition.title[:60], e)
    return context


def evaluate_entry(
    session: Session,
    frozen: dict[str, str],
    exported: set[str],
    definition: MenuDef,
    chosen: str,
) -> BootEntry:
    """Run an entry's body in a copy of the final environment and read what it loads."""
    env = Env(session.limits, frozen, exported)
    env.set("chosen", chosen)
    env.export("chosen")
    context = Context(env, [], definition.config)
    it = Interpreter(session, context, list(definition.args), session.limits.max_entry_steps)
    problem = None
    try:
        it.run_body(definition.source, f"menu entry {definition.title[:60]!r}")
    except (BootNow, FunctionReturn):
        pass
    except StopScript as e:
        problem = e.reason
    except MenuReplaced as e:
        problem = f"opens another menu ({e.path[:200]})"
    except (BodySyntaxError, ScriptLimitError) as e:
        problem = str(e)
    return _entry(definition, it.loaded, problem)


def _entry(definition: MenuDef, loaded: Loaded, problem: str | None) -> BootEntry:
    reason = problem or loaded.failure
    if loaded.kind is None and reason is None:
        reason = "loads no kernel"
    return BootEntry(
        title=definition.title,
        kernel=loaded.kernel,
        initrds=list(loaded.initrds),
        args=loaded.args,
        id=definition.entry_id,
        device=loaded.device,
        kind=loaded.kind or OTHER,
        lines=_lines(definition),
        not_bootable=reason,
        kernel_range=loaded.kernel_range,
        initrd_ranges=list(loaded.initrd_ranges),
    )


def _lines(definition: MenuDef) -> list[str]:
    lines = definition.source.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _fallbacks(context: Context, items: list[BootItem]) -> list[tuple[int, ...]]:
    """menu.c's fallback: blank-separated entries of the top level, in order."""
    spec = context.env.get("fallback")
    if not spec:
        return []
    defs = [d for d in context.menu if not d.hidden]
    paths: list[tuple[int, ...]] = []
    for word in spec.split():
        index, _rest, found = resolve_default(defs, word)
        if found and index < len(items) and (index,) not in paths:
            paths.append((index,))
    return paths


def _timeout(env: Env) -> tuple[float | None, str]:
    raw = env.get("timeout")
    seconds: float | None = None
    if raw is not None:
        value, _end = grub_strtoul(raw)
        if value is not None:
            # menu.c keeps it in a C int: a huge value wraps negative, i.e. "wait".
            as_int = value & 0xFFFFFFFF
            if as_int < 1 << 31:
                seconds = float(as_int)
    style = env.get("timeout_style") or "menu"
    if seconds is None or style not in TIMEOUT_STYLES:
        style = "menu"
    return seconds, style


def _password(session: Session, env: Env) -> Password | None:
    superusers = env.get("superusers")
    if not superusers:
        return None
    names = tuple(name for name in _SUPERUSER_SEPARATORS.split(superusers) if name)
    for name in names:
        if name in session.passwords:
            kind, secret = session.passwords[name]
            return Password(kind, secret, names)
    return None


def _default_reason(session: Session, context: Context) -> str:
    defs = [d for d in context.menu if not d.hidden]
    spec = context.env.get("default")
    if spec is None:
        return "no default set: the first entry"
    _index, _rest, found = resolve_default(defs, spec)
    suffix = "" if found else " (matches no entry: the first one)"
    for var in ("next_entry", "saved_entry", *session.env_file_values):
        loaded = session.env_file_values.get(var)
        if loaded is not None and loaded[0] == spec and spec:
            return f"{var}={spec} from {loaded[1]}{suffix}"
    return f"default={spec}{suffix}"


def _put_top_level_boot_first(menu: Grub2Menu, loaded: Loaded, config: str) -> None:
    """The config itself ran ``boot``: GRUB boots that kernel and never shows the menu."""
    entry = BootEntry(
        title=f"(booted by {config} itself)",
        kernel=loaded.kernel,
        initrds=list(loaded.initrds),
        args=loaded.args,
        device=loaded.device,
        kind=loaded.kind or OTHER,
        not_bootable=loaded.failure,
        kernel_range=loaded.kernel_range,
        initrd_ranges=list(loaded.initrd_ranges),
    )
    menu.items.insert(0, entry)
    menu.default = (0,)
    menu.fallback = [(path[0] + 1, *path[1:]) for path in menu.fallback]
    menu.default_reason = f"{config} runs boot itself"
