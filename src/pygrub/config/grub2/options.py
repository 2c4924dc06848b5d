"""Command options the way GRUB's extcmd parses them (grub-core/lib/arg.c).

The rules that configs rely on: ``--opt value`` takes the next word only when it does
not start with '-', ``--opt=value`` always does, an option whose value is optional and is
followed by another option gets no value (``--users --id x``), and a command that accepts
dashes (menuentry) keeps unknown ``-x``/``--xyz`` words as positional arguments.
"""

from __future__ import annotations

from ...record import record
from .interp import ERR_BAD_ARGUMENT, CommandError

NONE = "none"
REQUIRED = "required"
OPTIONAL = "optional"


@record(frozen=True)
class Opt:
    long: str
    short: str | None = None
    value: str = NONE
    repeatable: bool = False


Parsed = dict[str, list[str | None]]


def parse_options(
    args: list[str], options: tuple[Opt, ...], accept_dash: bool = False
) -> tuple[Parsed, list[str]]:
    """(values given per option long name, positional arguments) or CommandError."""
    by_long = {opt.long: opt for opt in options}
    by_short: dict[str | None, Opt] = {opt.short: opt for opt in options if opt.short}
    found: Parsed = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or len(arg) == 1:
            positional.append(arg)
            i += 1
            continue
        if arg[1] != "-":
            if accept_dash and any(char not in by_short for char in arg[1:]):
                positional.append(arg)
                i += 1
                continue
            opt, value, i = _short_cluster(args, i, by_short, found)
        else:
            if arg == "--":
                positional.extend(args[i + 1 :])
                break
            name, equals, given = arg[2:].partition("=")
            value = given if equals else None
            found_opt = by_long.get(name)
            if (
                value is None
                and found_opt is not None
                and found_opt.value != NONE
                and i + 1 < len(args)
                and not args[i + 1].startswith("-")
            ):
                i += 1
                value = args[i]
            if found_opt is None:
                if accept_dash:
                    positional.append(arg)
                    i += 1
                    continue
                raise CommandError(ERR_BAD_ARGUMENT, f"unknown argument `{arg[:60]}'")
            opt = found_opt
        _record(found, opt, value, arg)
        i += 1
    return found, positional


def _short_cluster(
    args: list[str], i: int, by_short: dict[str | None, Opt], found: Parsed
) -> tuple[Opt, str | None, int]:
    """Options of one '-abc' word; the last one may take the next word as its value."""
    arg = args[i]
    for position in range(1, len(arg)):
        opt = by_short.get(arg[position])
        if opt is None:
            raise CommandError(ERR_BAD_ARGUMENT, f"unknown argument `-{arg[position]}'")
        if position + 1 < len(arg):
            if opt.value == REQUIRED:
                raise CommandError(ERR_BAD_ARGUMENT, f"missing mandatory option for `{opt.long}'")
            _record(found, opt, None, arg)
            continue
        value = None
        if opt.value != NONE and i + 1 < len(args):
            following = args[i + 1]
            if opt.value == REQUIRED or len(following) < 2 or following[0] != "-":
                i += 1
                value = following
        return opt, value, i
    raise AssertionError("a short option word has at least one letter")


def _record(found: Parsed, opt: Opt, value: str | None, arg: str) -> None:
    if opt.value == NONE or (value is None and opt.value == OPTIONAL):
        if value is not None:
            raise CommandError(
                ERR_BAD_ARGUMENT, f"a value was assigned to `{arg[:60]}' that takes none"
            )
    elif value is None:
        raise CommandError(ERR_BAD_ARGUMENT, f"missing mandatory option for `{opt.long}'")
    if opt.repeatable:
        found.setdefault(opt.long, []).append(value)
    else:
        found[opt.long] = [value]


def first(found: Parsed, name: str) -> str | None:
    """The (last) value given for an option, or None."""
    values = found.get(name)
    return values[-1] if values else None
