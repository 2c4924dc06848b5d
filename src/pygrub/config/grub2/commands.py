"""The GRUB commands a config runs, evaluated without side effects.

Each command takes the interpreter, its name and its expanded arguments and returns the
status GRUB would put in $? (0 for success); failures raise CommandError. Commands that
only drive the screen, the terminal or module loading succeed and do nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import CorruptError, PygrubError
from ...log import get_logger
from ..model import CHAINLOADER, LINUX, MULTIBOOT, MULTIBOOT2, OTHER
from . import bls
from .blsdir import read_bls_dir
from .devices import grub_fs_name
from .grubenv import parse_envblk
from .interp import (
    ERR_BAD_ARGUMENT,
    ERR_BAD_FILE_TYPE,
    ERR_FILE_NOT_FOUND,
    ERR_INVALID_COMMAND,
    ERR_NO_KERNEL,
    ERR_NONE,
    ERR_TEST_FAILURE,
    ERR_UNKNOWN_DEVICE,
    BodySyntaxError,
    BootNow,
    CommandError,
    Context,
    FunctionReturn,
    Interpreter,
    Loaded,
    LoopControl,
    MenuDef,
    MenuReplaced,
    StopScript,
)
from .options import OPTIONAL, REQUIRED, Opt, first, parse_options
from .strtoul import grub_strtoul
from .testcmd import cmd_test

log = get_logger(__name__)

Command = Callable[[Interpreter, str, list[str]], int]


# -- variables ---------------------------------------------------------------------------


def cmd_set(it: Interpreter, name: str, args: list[str]) -> int:
    if not args:
        return ERR_NONE  # GRUB prints every variable
    var, equals, value = args[0].partition("=")
    if not equals:
        raise CommandError(ERR_BAD_ARGUMENT, "not an assignment")
    it.env.set(var, value)
    return ERR_NONE


def cmd_unset(it: Interpreter, name: str, args: list[str]) -> int:
    for var in args:
        it.env.unset(var)
    return ERR_NONE


def cmd_export(it: Interpreter, name: str, args: list[str]) -> int:
    if not args:
        raise CommandError(ERR_BAD_ARGUMENT, "one argument expected")
    for var in args:
        it.env.export(var)
    return ERR_NONE


def cmd_read(it: Interpreter, name: str, args: list[str]) -> int:
    # Nobody types at a pygrub that evaluates a config: the line read is empty.
    if args:
        it.env.set(args[0], "")
    return ERR_NONE


def cmd_step(it: Interpreter, name: str, args: list[str]) -> int:
    """Red Hat's increment/decrement VAR (boot counting)."""
    if len(args) != 1:
        raise CommandError(ERR_BAD_ARGUMENT, "one argument expected")
    value, end = grub_strtoul(it.env.get(args[0]) or "", 10)
    if value is None:
        raise CommandError(ERR_BAD_ARGUMENT, f"{args[0]} is not a number")
    it.env.set(args[0], str(value + 1 if name == "increment" else value - 1))
    return ERR_NONE


# -- files and other configs -----------------------------------------------------------


def cmd_source(it: Interpreter, name: str, args: list[str]) -> int:
    if len(args) != 1:
        raise CommandError(ERR_BAD_ARGUMENT, "filename expected")
    it.run_config_file(args[0])
    return ERR_NONE


def cmd_configfile(it: Interpreter, name: str, args: list[str]) -> int:
    """A new context reads the file; a menu found there is what GRUB shows from now on."""
    if len(args) != 1:
        raise CommandError(ERR_BAD_ARGUMENT, "filename expected")
    context = Context(it.env.exported_only(), [], args[0])
    nested = Interpreter(it.session, context)
    nested.run_config_file(args[0])
    if context.menu:
        raise MenuReplaced(context, args[0])
    return ERR_NONE


_LOAD_ENV_OPTIONS = (Opt("file", "f", REQUIRED), Opt("skip-sig", "s"))


def cmd_load_env(it: Interpreter, name: str, args: list[str]) -> int:
    found, whitelist = parse_options(args, _LOAD_ENV_OPTIONS)
    path = first(found, "file")
    if path is None:
        prefix = it.env.get("prefix")
        if prefix is None:
            raise CommandError(ERR_FILE_NOT_FOUND, "variable `prefix' isn't set")
        path = prefix + "/grubenv"
    data = it.read_file(path)
    try:
        pairs = parse_envblk(data, path)
    except CorruptError as e:
        raise CommandError(ERR_BAD_FILE_TYPE, str(e)) from None
    # A file is named by its path, a blocklist by its device too: "(hd0,gpt2)512+1".
    where = it.split_device(path)[1]
    if not where.startswith("/"):
        where = path
    for var, value in pairs:
        if whitelist and var not in whitelist:
            continue
        it.env.set(var, value)
        it.session.env_file_values[var] = (value, where)
    return ERR_NONE


# -- devices -----------------------------------------------------------------------------

_SEARCH_OPTIONS = (
    Opt("file", "f"),
    Opt("label", "l"),
    Opt("fs-uuid", "u"),
    Opt("set", "s", OPTIONAL),
    Opt("no-floppy", "n"),
    Opt("efidisk-only"),
    Opt("cryptodisk-only"),
    Opt("root-dev-only", "r"),
    Opt("hint", "h", REQUIRED, repeatable=True),
    Opt("hint-ieee1275", None, REQUIRED, repeatable=True),
    Opt("hint-bios", None, REQUIRED, repeatable=True),
    Opt("hint-baremetal", None, REQUIRED, repeatable=True),
    Opt("hint-efi", None, REQUIRED, repeatable=True),
    Opt("hint-arc", None, REQUIRED, repeatable=True),
)


def cmd_search(it: Interpreter, name: str, args: list[str]) -> int:
    found, positional = parse_options(args, _SEARCH_OPTIONS, accept_dash=True)
    # Hints for platforms newer than this list stay positional; search_wrap.c skips them.
    while positional and positional[0].startswith("--hint-"):
        positional.pop(0)
    var = None
    if "set" in found:
        var = first(found, "set") or "root"
    if positional:
        key = positional[0]
    elif first(found, "set"):
        key, var = first(found, "set") or "", "root"
    else:
        raise CommandError(ERR_BAD_ARGUMENT, "one argument expected")
    if "label" in found:
        how = "label"
    elif "fs-uuid" in found:
        how = "fs-uuid"
    elif "file" in found:
        how = "file"
    else:
        raise CommandError(ERR_INVALID_COMMAND, "unspecified search type")
    hints = [
        value
        for opt in _SEARCH_OPTIONS
        if opt.long.startswith("hint")
        for value in found.get(opt.long, [])
        if value
    ]
    return search(it, how, key, var, hints)


def cmd_search_short(it: Interpreter, name: str, args: list[str]) -> int:
    """search.fs_uuid / search.fs_label / search.file NAME [VARIABLE] [HINTS...]."""
    if not args:
        raise CommandError(ERR_BAD_ARGUMENT, "one argument expected")
    how = {"search.fs_uuid": "fs-uuid", "search.fs_label": "label", "search.file": "file"}[name]
    return search(it, how, args[0], args[1] if len(args) > 1 else None, args[2:])


def search(it: Interpreter, how: str, key: str, var: str | None, hints: list[str]) -> int:
    for device, fs in it.session.devices.searchable(hints):
        try:
            if how == "fs-uuid":
                hit = fs.uuid is not None and fs.uuid.lower() == key.lower()
            elif how == "label":
                hit = fs.label is not None and fs.label == key
            else:
                hit = key.startswith("/") and fs.is_file(key)
        except PygrubError as e:
            log.info("search: (%s): %s", device, e)
            continue
        if hit:
            if var is not None:
                it.env.set(var, device)
            return ERR_NONE
    raise CommandError(ERR_FILE_NOT_FOUND, f"no such device: {key[:200]}")


_PROBE_OPTIONS = (
    Opt("set", "s", REQUIRED),
    Opt("driver", "d"),
    Opt("partmap", "p"),
    Opt("fs", "f"),
    Opt("fs-uuid", "u"),
    Opt("label", "l"),
    Opt("part-uuid"),
)


def cmd_probe(it: Interpreter, name: str, args: list[str]) -> int:
    found, positional = parse_options(args, _PROBE_OPTIONS)
    if len(positional) != 1:
        raise CommandError(ERR_BAD_ARGUMENT, "device name required")
    device = positional[0]
    if device.startswith("(") and device.endswith(")"):
        device = device[1:-1]
    fs = it.session.devices.filesystem(device)
    if fs is None:
        raise CommandError(ERR_UNKNOWN_DEVICE, f"no filesystem on ({device[:80]})")
    if "fs-uuid" in found:
        value = fs.uuid
    elif "label" in found:
        value = fs.label
    elif "fs" in found:
        value = grub_fs_name(fs)
    elif "partmap" in found:
        value = "gpt" if ",gpt" in device else "msdos" if "," in device else None
    else:
        raise CommandError(ERR_BAD_ARGUMENT, "probe: this query is not supported here")
    if value is None:
        raise CommandError(ERR_BAD_ARGUMENT, f"({device[:80]}) has no such property")
    var = first(found, "set")
    if var is not None:
        it.env.set(var, value)
    return ERR_NONE


_REGEXP_OPTIONS = (Opt("set", "s", REQUIRED, repeatable=True),)


def cmd_regexp(it: Interpreter, name: str, args: list[str]) -> int:
    from .regex import compile_ere
    from .regex import search as regex_search

    found, positional = parse_options(args, _REGEXP_OPTIONS)
    if len(positional) != 2:
        raise CommandError(ERR_BAD_ARGUMENT, "two arguments expected")
    try:
        match = regex_search(compile_ere(positional[0]), positional[1])
    except PygrubError as e:
        raise CommandError(ERR_TEST_FAILURE, str(e)) from None
    if match is None:
        return ERR_TEST_FAILURE
    index: int | None
    for spec in found.get("set", []):
        assert spec is not None
        index_text, colon, var = spec.partition(":")
        if not colon:
            index, var = 1, spec
        else:
            index, end = grub_strtoul(index_text, 10)
            if index is None or end != len(index_text):
                raise CommandError(ERR_BAD_ARGUMENT, f"invalid variable name format {spec[:60]}")
        group = match.group(index) if index <= (match.re.groups or 0) else None
        if group is None:
            it.env.unset(var)
        else:
            it.env.set(var, group)
    return ERR_NONE


# -- loading kernels ---------------------------------------------------------------------


def cmd_linux(it: Interpreter, name: str, args: list[str]) -> int:
    if not args:
        raise CommandError(ERR_BAD_ARGUMENT, "filename expected")
    device, path = it.split_device(args[0])
    it.loaded = Loaded(LINUX, path, device, " ".join(args[1:]))
    return ERR_NONE


def cmd_initrd(it: Interpreter, name: str, args: list[str]) -> int:
    if not args:
        raise CommandError(ERR_BAD_ARGUMENT, "filename expected")
    # A chainloaded UKI boots as Linux here, but GRUB loaded it with chainloader.
    if it.loaded.kind != LINUX or it.loaded.kernel_range is not None:
        raise CommandError(ERR_NO_KERNEL, "you need to load the kernel first")
    paths = []
    for arg in args:
        if arg.startswith("newc:"):
            # newc:NAME:PATH puts the file into the cpio archive under NAME.
            arg = arg.split(":", 2)[-1]
        device, path = it.split_device(arg)
        if device is not None and it.loaded.device is not None and device != it.loaded.device:
            log.info("initrd %s is on (%s), the kernel on (%s)", path, device, it.loaded.device)
        paths.append(path)
    it.loaded.initrds = paths
    return ERR_NONE


def cmd_multiboot(it: Interpreter, name: str, args: list[str]) -> int:
    while args and args[0].startswith("--quirk-"):
        args = args[1:]
    if not args:
        raise CommandError(ERR_BAD_ARGUMENT, "filename expected")
    device, path = it.split_device(args[0])
    kind = MULTIBOOT2 if name == "multiboot2" else MULTIBOOT
    it.loaded = Loaded(kind, path, device, " ".join(args[1:]))
    return ERR_NONE


def cmd_module(it: Interpreter, name: str, args: list[str]) -> int:
    while args and args[0] == "--nounzip":
        args = args[1:]
    if not args:
        raise CommandError(ERR_BAD_ARGUMENT, "filename expected")
    if it.loaded.kind not in (MULTIBOOT, MULTIBOOT2):
        raise CommandError(ERR_NO_KERNEL, "you need to load the kernel first")
    it.loaded.modules.append((it.split_device(args[0])[1], " ".join(args[1:])))
    return ERR_NONE


def cmd_chainloader(it: Interpreter, name: str, args: list[str]) -> int:
    while args and args[0] in ("--force", "-f"):
        args = args[1:]
    if not args:
        raise CommandError(ERR_BAD_ARGUMENT, "filename expected")
    device, path = it.split_device(args[0])
    from .blsuki import chainloaded_uki

    it.loaded = chainloaded_uki(it, device, path, " ".join(args[1:])) or Loaded(
        CHAINLOADER, path, device, " ".join(args[1:])
    )
    return ERR_NONE


def cmd_other_loader(it: Interpreter, name: str, args: list[str]) -> int:
    """Loaders of other systems (BSD, NTLDR, XNU...): recognised, never bootable here."""
    if not args:
        raise CommandError(ERR_BAD_ARGUMENT, "filename expected")
    device, path = it.split_device(args[0])
    it.loaded = Loaded(OTHER, path, device, " ".join(args[1:]), failure=f"loads {name}")
    return ERR_NONE


def cmd_boot(it: Interpreter, name: str, args: list[str]) -> int:
    raise BootNow()


def cmd_stop(it: Interpreter, name: str, args: list[str]) -> int:
    raise StopScript(f"runs {name}")


def cmd_fail(it: Interpreter, name: str, args: list[str]) -> int:
    """Commands that need hardware or a second disk image pygrub does not have."""
    raise CommandError(ERR_INVALID_COMMAND, "not available when pygrub evaluates a config")


# -- BLS ---------------------------------------------------------------------------------


def cmd_insmod(it: Interpreter, name: str, args: list[str]) -> int:
    """Loads nothing; GRUB 2.14's blsuki module says which blscfg the config means."""
    if "blsuki" in args:
        it.session.upstream_bls = True
    return ERR_NONE


def cmd_blscfg(it: Interpreter, name: str, args: list[str]) -> int:
    """Red Hat's blscfg; upstream's (GRUB 2.14, :mod:`.blsuki`) when given options or
    when the config loaded blsuki.mod, or for ``uki``."""
    if name == "uki" or (name == "blscfg" and (args or it.session.upstream_bls)):
        from .blsuki import cmd_blsuki

        return cmd_blsuki(it, name, args)
    root = it.env.get("root") or None
    fs = it.session.devices.filesystem(root)
    if fs is None:
        raise CommandError(ERR_UNKNOWN_DEVICE, f"no filesystem on ({root})")
    blsdir = it.env.get("blsdir") or bls.BLS_DIR
    entries = read_bls_dir(it, fs, blsdir)
    if not entries:
        entries = read_bls_dir(it, fs, bls.BLS_FALLBACK_DIR)
    if not entries:
        it.session.ctx.notes.append(f"blscfg: no entry in {blsdir} nor {bls.BLS_FALLBACK_DIR}")
    for entry in bls.sort_newest_first(entries):
        _add_bls_entry(it, entry)
    return ERR_NONE


def _add_bls_entry(it: Interpreter, entry: bls.BlsEntry) -> None:
    linux = entry.get("linux")
    if linux is None:
        log.info("blscfg: %s has no 'linux' key: skipped", entry.name)
        return
    options = bls.expand_value(entry.get("options"), it.env.get)
    if options is None:
        options = bls.expand_value(it.env.get("default_kernelopts"), it.env.get)
    title = entry.get("title") or linux
    it.session.count_entry()
    it.context.menu.append(
        MenuDef(
            title=title,
            args=[title, *entry.get_all("grub_arg")],
            entry_id=entry.name,
            users=bls.expand_value(entry.get("grub_users"), it.env.get),
            hotkey=entry.get("grub_hotkey"),
            classes=entry.get_all("grub_class"),
            source=bls.entry_body(entry, options),
            line=it.line,
            config=f"{entry.name}.conf",
        )
    )


# -- menus -------------------------------------------------------------------------------

_MENUENTRY_OPTIONS = (
    Opt("class", None, REQUIRED, repeatable=True),
    Opt("users", None, OPTIONAL),
    Opt("hotkey", None, REQUIRED),
    Opt("source", None, REQUIRED),
    Opt("id", None, REQUIRED),
    Opt("unrestricted"),
)


def cmd_menuentry(it: Interpreter, name: str, args: list[str]) -> int:
    found, positional = parse_options(args, _MENUENTRY_OPTIONS, accept_dash=True)
    if not positional:
        raise CommandError(ERR_BAD_ARGUMENT, "missing arguments")
    source_text = first(found, "source")
    if source_text is not None and it.has_block:
        raise CommandError(ERR_BAD_ARGUMENT, "multiple menuentry definitions")
    if source_text is None and not it.has_block:
        raise CommandError(ERR_BAD_ARGUMENT, "no menuentry definition")
    users: str | None
    if first(found, "users") is not None:
        users = first(found, "users")
    elif "unrestricted" in found:
        users = None
    else:
        users = ""
    if it.has_block:
        block = positional.pop()
        body = setparams_line(positional) + block[1:-1]
    else:
        body = source_text or ""
    if not positional:
        raise CommandError(ERR_BAD_ARGUMENT, "menuentry is missing title")
    it.session.count_entry()
    it.context.menu.append(
        MenuDef(
            title=positional[0],
            args=positional,
            entry_id=first(found, "id"),
            users=users,
            hotkey=first(found, "hotkey"),
            classes=[c for c in found.get("class", []) if c is not None],
            source=body,
            submenu=name == "submenu",
            hidden=name == "hiddenentry",
            line=it.line,
            config=it.source_name,
        )
    )
    return ERR_NONE


def setparams_line(args: list[str]) -> str:
    """The line GRUB puts before an entry's body so it sees its title as $1 (menuentry.c)."""
    quoted = ["'" + arg.replace("'", "'\\''") + "'" for arg in args]
    return "setparams" + "".join(" " + q for q in quoted) + "\n"


def cmd_password(it: Interpreter, name: str, args: list[str]) -> int:
    if len(args) != 2:
        raise CommandError(ERR_BAD_ARGUMENT, "two arguments expected")
    kind = "pbkdf2" if name == "password_pbkdf2" else "plain"
    it.session.passwords[args[0]] = (kind, args[1])
    return ERR_NONE


# -- script control ----------------------------------------------------------------------


def cmd_true(it: Interpreter, name: str, args: list[str]) -> int:
    return ERR_NONE


def cmd_false(it: Interpreter, name: str, args: list[str]) -> int:
    return ERR_TEST_FAILURE


def cmd_setparams(it: Interpreter, name: str, args: list[str]) -> int:
    if it.scope is None:
        raise CommandError(ERR_INVALID_COMMAND, "setparams outside a function or entry")
    it.scope = list(args)
    return ERR_NONE


def cmd_shift(it: Interpreter, name: str, args: list[str]) -> int:
    if it.scope is None:
        return ERR_NONE
    count = 1
    if args:
        value, end = grub_strtoul(args[0], 10)
        if len(args) > 1 or value is None or end != len(args[0]):
            return ERR_BAD_ARGUMENT
        count = value
    if count > len(it.scope):
        return ERR_BAD_ARGUMENT
    it.scope = it.scope[count:]
    return ERR_NONE


def cmd_return(it: Interpreter, name: str, args: list[str]) -> int:
    if it.scope is None or len(args) > 1:
        raise CommandError(ERR_BAD_ARGUMENT, "not in function body")
    if not args:
        status = grub_strtoul(it.env.get("?") or "0", 10)[0] or 0
    else:
        value, end = grub_strtoul(args[0], 10)
        if value is None or end != len(args[0]):
            raise CommandError(ERR_BAD_ARGUMENT, "unrecognized number")
        status = value
    raise FunctionReturn(status)


def cmd_break(it: Interpreter, name: str, args: list[str]) -> int:
    count = 1
    if len(args) > 1:
        raise CommandError(ERR_BAD_ARGUMENT, "one argument expected")
    if args:
        value, end = grub_strtoul(args[0], 10)
        if value is None or end != len(args[0]):
            raise CommandError(ERR_BAD_ARGUMENT, "unrecognized number")
        if value == 0:
            raise CommandError(ERR_BAD_ARGUMENT, "can't break 0 loops")
        count = value
    levels = min(count, it.active_loops)
    if levels:
        raise LoopControl(levels, name == "continue")
    return ERR_NONE


def cmd_eval(it: Interpreter, name: str, args: list[str]) -> int:
    """GRUB's own ``eval``: its arguments run as script, inside pygrub's interpreter."""
    from .lexer import script_source

    with it.session.nested("eval"):
        try:
            return it.run_source(script_source(" ".join(args), "eval"), stop_on_error=True)
        except BodySyntaxError as e:
            raise CommandError(ERR_INVALID_COMMAND, str(e)) from None


def cmd_noop(it: Interpreter, name: str, args: list[str]) -> int:
    return ERR_NONE


_ECHO_ESCAPES = {"\\": "\\", "a": "\a", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ECHO_OPTIONS = (Opt("newline", "n"), Opt("escapes", "e"))


def cmd_echo(it: Interpreter, name: str, args: list[str]) -> int:
    """echo [-n] [-e] WORDS: what it prints is kept in the session (options come first)."""
    leading = 0
    while leading < len(args) and _echo_option(args[leading]):
        leading += 1
    found, _rest = parse_options(args[:leading], _ECHO_OPTIONS)
    newline = "newline" not in found
    pieces = []
    for arg in args[leading:]:
        if "escapes" in found:
            arg, stop = _echo_escapes(arg)
            newline = newline and not stop
        pieces.append(arg)
    it.session.print_text(" ".join(pieces) + ("\n" if newline else ""))
    return ERR_NONE


def _echo_option(arg: str) -> bool:
    return len(arg) > 1 and arg[0] == "-" and all(char in "ne" for char in arg[1:])


def _echo_escapes(text: str) -> tuple[str, bool]:
    """echo -e: (the text with \\n, \\t... applied, whether \\c asked for no newline)."""
    out = []
    stop = False
    i = 0
    while i < len(text):
        if text[i] == "\\":
            if i + 1 >= len(text):
                break
            code = text[i + 1]
            if code == "c":
                stop = True
            else:
                out.append(_ECHO_ESCAPES.get(code, ""))
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out), stop


# -- the tables --------------------------------------------------------------------------

_NOOPS = (
    "rmmod lsmod terminal_input terminal_output terminal terminfo serial loadfont "
    "background_image background_color play clear cls lsfonts gettext help ls cat lspci "
    "videoinfo videotest vbeinfo usb nativedisk devicetree save_env list_env sleep "
    "cpuid cutmem badram gptsync parttool drivemap tpm_measure verify_detached trust distrust "
    "set_bootmenu_entry gfxterm_background lsefi lsefisystab lsacpi pager time"
).split()

COMMANDS: dict[str, Command] = {
    **{name: cmd_noop for name in _NOOPS},
    "echo": cmd_echo,
    "set": cmd_set,
    "unset": cmd_unset,
    "export": cmd_export,
    "read": cmd_read,
    "increment": cmd_step,
    "decrement": cmd_step,
    "source": cmd_source,
    ".": cmd_source,
    "configfile": cmd_configfile,
    "load_env": cmd_load_env,
    "search": cmd_search,
    "search.fs_uuid": cmd_search_short,
    "search.fs_label": cmd_search_short,
    "search.file": cmd_search_short,
    "probe": cmd_probe,
    "regexp": cmd_regexp,
    "linux": cmd_linux,
    "linux16": cmd_linux,
    "linuxefi": cmd_linux,
    "initrd": cmd_initrd,
    "initrd16": cmd_initrd,
    "initrdefi": cmd_initrd,
    "multiboot": cmd_multiboot,
    "multiboot2": cmd_multiboot,
    "module": cmd_module,
    "module2": cmd_module,
    "chainloader": cmd_chainloader,
    **{
        name: cmd_other_loader
        for name in (
            "kfreebsd knetbsd kopenbsd ntldr appleloader legacy_kernel xnu_kernel "
            "xnu_kernel64 freedos plan9 truecrypt pxechainloader xen_hypervisor"
        ).split()
    },
    "insmod": cmd_insmod,
    "blscfg": cmd_blscfg,
    "bls_import": cmd_blscfg,
    "uki": cmd_blscfg,
    "menuentry": cmd_menuentry,
    "submenu": cmd_menuentry,
    "hiddenentry": cmd_menuentry,
    "password": cmd_password,
    "password_pbkdf2": cmd_password,
    "true": cmd_true,
    "false": cmd_false,
    "test": cmd_test,
    "[": cmd_test,
    "setparams": cmd_setparams,
    "shift": cmd_shift,
    "return": cmd_return,
    "break": cmd_break,
    "continue": cmd_break,
    "eval": cmd_eval,
    "boot": cmd_boot,
    **{name: cmd_stop for name in ("exit", "reboot", "halt", "fwsetup", "normal_exit")},
    # No key is ever held down, no hardware matches a blacklist.
    "keystatus": cmd_false,
    "hwmatch": cmd_false,
    **{name: cmd_fail for name in ("loopback", "cryptomount", "smbios", "tr", "net_bootp")},
}

#: Names configs usually define as functions; when they do not, GRUB would fail, but
#: nothing about them decides what boots, so they quietly succeed (after functions).
FALLBACK_COMMANDS: dict[str, Command] = {
    name: cmd_noop for name in ("load_video", "gfxmode", "savedefault", "recordfail")
}
