"""GRUB 2: grub.cfg evaluated the way GRUB runs it, and the menu GRUB would show.

Xen's pygrub greps grub.cfg line by line. GRUB instead runs it as a script: variables,
``if``, functions, ``load_env`` of grubenv, ``search`` for the root device, ``source``,
``blscfg``..., and only then shows the menu of what the script defined. We do the same
without side effects (nothing runs on the host, nothing is written to the guest):

- ``lexer``/``parser``: grub-core/script's tokens and grammar, unit by unit.
- ``interp``: word expansion and the execution rules of execute.c; ``commands``: the
  builtins; ``devices``: GRUB device names onto the guest's volumes; ``grubenv``,
  ``blocklist``, ``bls``, ``regex``, ``testcmd``: what those commands read and compute.
- ``menu``: entries evaluated, ``default``/``fallback``/``timeout`` resolved.

The session behind a menu stays reachable, for the interactive menu's editor::

    menu = load(ctx)                  # a Grub2Menu (a BootMenu)
    session = session_of(menu)        # final environment, functions, devices, bounds
    entry = evaluate_commands(session, edited_text, title)   # -> BootEntry

``evaluate_commands`` runs a typed or edited entry body (``setparams`` line included,
as GRUB's editor shows it) in a copy of the final environment, exactly as booting a menu
entry does, and returns the BootEntry it would boot.
"""

from __future__ import annotations

import posixpath

from ...errors import LimitError
from ...log import get_logger
from .. import LoadContext
from ..model import BootEntry, BootMenu
from .commands import COMMANDS, FALLBACK_COMMANDS
from .devices import Devices
from .interp import (
    BootNow,
    Context,
    Env,
    Interpreter,
    MenuDef,
    MenuReplaced,
    ScriptLimits,
    Session,
    StopScript,
)
from .menu import Grub2Menu, build_menu, evaluate_entry

__all__ = [
    "Grub2Menu",
    "ScriptLimits",
    "Session",
    "evaluate_commands",
    "load",
    "load_with_limits",
    "session_of",
]

log = get_logger(__name__)

#: What normal.mod sets before it reads grub.cfg (GRUB 2.06 and Red Hat's).
FEATURES = (
    "feature_chainloader_bpb",
    "feature_ntldr",
    "feature_platform_search_hint",
    "feature_default_font_path",
    "feature_all_video_module",
    "feature_menuentry_id",
    "feature_menuentry_options",
    "feature_200_final",
    "feature_nativedisk_cmd",
    "feature_timeout_style",
)


def load(ctx: LoadContext) -> BootMenu:
    """The menu GRUB would show for ``ctx.text`` (a grub.cfg), default resolved."""
    return load_with_limits(ctx, ScriptLimits())


def load_with_limits(ctx: LoadContext, limits: ScriptLimits) -> Grub2Menu:
    session = Session(ctx, Devices(ctx), COMMANDS, FALLBACK_COMMANDS, limits)
    try:
        _run_top_level(session)
        menu = build_menu(session)
    except RecursionError:
        # The depth bounds keep well inside Python's stack; this is only a safety net.
        raise LimitError(f"{ctx.path}: script nested too deep to evaluate") from None
    menu.evaluate = lambda title, lines: _evaluate_guarded(session, "\n".join(lines), title)
    return menu


def _evaluate_guarded(session: Session, text: str, title: str) -> BootEntry:
    try:
        return evaluate_commands(session, text, title)
    except RecursionError:
        raise LimitError(f"edited entry {title!r}: script nested too deep to evaluate") from None


def session_of(menu: BootMenu) -> Session | None:
    """The evaluation behind a menu ``load`` returned (None for other formats)."""
    session = getattr(menu, "session", None)
    return session if isinstance(session, Session) else None


def evaluate_commands(session: Session, text: str, title: str = "") -> BootEntry:
    """What booting ``text`` as a menu entry body would load, in the final environment."""
    final = session.final
    assert final is not None, "the session has not run a config"
    # Each evaluation asked for later (the menu's editor) gets the bounds afresh.
    session.steps = session.script_chars = session.depth = 0
    definition = MenuDef(title, [title] if title else [], None, None, None, [], text)
    return evaluate_entry(session, final.env.flat(), final.env.exported, definition, title)


def _run_top_level(session: Session) -> None:
    ctx = session.ctx
    env = _preset_env(session)
    context = Context(env, [], ctx.path)
    it = Interpreter(session, context)
    full = f"({session.devices.home_name}){ctx.path}"
    env.set("config_file", full)
    env.set("config_directory", full.rsplit("/", 1)[0])
    env.export("config_file")
    env.export("config_directory")
    try:
        it.run_config(ctx.text, ctx.path)
    except MenuReplaced as replaced:
        context = replaced.context
    except StopScript as stop:
        log.info("%s %s at the top level: the rest is not read", ctx.path, stop.reason)
    except BootNow:
        if it.loaded.kind is not None:
            session.top_boot = it.loaded
    session.final = context


def _preset_env(session: Session) -> Env:
    """Variables GRUB has before grub.cfg runs: $root, $prefix, platform, features."""
    root = session.devices.home_name
    directory = posixpath.dirname(session.ctx.path) or "/"
    prefix = f"({root}){directory}"
    env = session.new_env()
    presets = {
        "root": root,
        "prefix": prefix,
        "cmdpath": prefix,
        "grub_platform": "xen",
        "grub_cpu": "x86_64",
        "color_normal": "light-gray/black",
        "color_highlight": "black/light-gray",
        **{feature: "y" for feature in FEATURES},
    }
    for name, value in presets.items():
        env.set(name, value)
        env.export(name)
    return env
