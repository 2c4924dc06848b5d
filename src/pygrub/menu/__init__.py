"""The interactive boot menu on the domain console (``xl create -c``).

Everything here is imported only when a menu is shown. ``app`` holds the behaviour
(views, keys, countdown, password) without a terminal; ``terminal`` runs it on the
console with curses; ``keys``, ``lineedit``, ``text``, ``entries`` and ``password``
are its parts.

Timeouts are GRUB's: 0 boots at once (a waiting key shows the menu), ``hidden`` and
``countdown`` wait with no menu until Esc or F4. Nobody may be watching an
``xl create``, so no wait is longer than ``max_wait`` seconds (PYGRUB_MENU_MAX_WAIT,
default 30), not even a config's "wait for a key"; the countdown says so on the screen. Once a key
is pressed, the person takes the time they need.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..config.model import BootEntry, BootMenu
from ..select import Chosen

__all__ = ["choose_interactively", "unattended_wait"]


def unattended_wait(menu: BootMenu, cap: float) -> tuple[float, str]:
    """(seconds before the default boots by itself, timeout_style) for ``menu``.

    A config that waits forever (or says nonsense) shows the menu with a ``cap``-second
    countdown: GRUB, too, refuses hidden and countdown styles without a timeout.
    """
    timeout = menu.timeout
    if timeout is None or not math.isfinite(timeout) or timeout < 0:
        return cap, "menu"
    style = menu.timeout_style if menu.timeout_style in ("hidden", "countdown") else "menu"
    return min(timeout, cap), style


def choose_interactively(
    menu: BootMenu, why_not: Callable[[BootEntry], str | None], max_wait: float
) -> Chosen:
    """Show ``menu`` on the console (fds 0 and 1); the path and entry to boot, waiting
    ``max_wait`` seconds at most for a person who never comes.

    The entry may have been edited. Raises NotFoundError when the countdown runs out
    and neither the default nor a fallback can boot.
    """
    from .terminal import run

    wait, style = unattended_wait(menu, max_wait)
    return run(menu, why_not, wait, style)
