"""Running GRUB script the way grub-core/script/execute.c does, without side effects.

Nothing here touches the host or writes to the guest: commands change variables, add
menu definitions and record what a loader command would load (``Loaded``).

The pieces:

- ``Env``: one context's variables (GRUB's ``grub_env``), with the ``root`` hook that
  drops parentheses and a cheap copy (a private layer over a frozen base) so every menu
  entry can run in its own copy of the final environment.
- ``Session``: what one config load shares: the load context, the bounds and the work
  done against them, functions (global in GRUB), passwords, and the top-level result.
- ``Interpreter``: runs units of one Source in one context, with one positional scope.

Word expansion follows grub_script_arglist_to_argv: quoted pieces always make an
argument (even empty), unquoted variables split on blanks, and backslash escapes are
removed at the very end, keeping ``\\xHH`` as Red Hat's GRUB does.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from ..._typing import TYPE_CHECKING
from ...errors import CorruptError, LimitError, PygrubError
from ...limits import MAX_CONFIG_BYTES, MAX_MENU_ENTRIES
from ...log import get_logger
from ...record import field, record
from .. import decode_config
from .lexer import BLOCK, DQ, DQVAR, GETTEXT, SQ, TEXT, VAR, Source, config_source, script_source
from .parser import Command, For, FunctionDef, If, Node, While, Word, parse_units

if TYPE_CHECKING:
    from .. import LoadContext
    from .devices import Devices

log = get_logger(__name__)

# grub_err_t values a script can see in $?.
ERR_NONE = 0
ERR_TEST_FAILURE = 1
ERR_BAD_FILE_TYPE = 4
ERR_FILE_NOT_FOUND = 5
ERR_BAD_FILENAME = 7
ERR_BAD_NUMBER = 10
ERR_OUT_OF_RANGE = 11
ERR_UNKNOWN_DEVICE = 12
ERR_INVALID_COMMAND = 17
ERR_BAD_ARGUMENT = 18
ERR_NO_KERNEL = 22
ERR_MENU = 27
ERR_IO = 29

#: ``echo`` output kept per load.
MAX_OUTPUT_CHARS = 1 << 16

_BLANKS = re.compile(r"[ \t\r\n]+")
_HEX = frozenset("0123456789abcdefABCDEF")
_GETTEXT_VAR = re.compile(r"\{([^}]*)\}|([0-9]+)|([A-Za-z_][A-Za-z0-9_]*)|([?#])")


@record(frozen=True)
class ScriptLimits:
    """Bounds on running one guest config (the guest writes the script)."""

    #: Nesting of blocks, function calls, source/eval/configfile and submenus together;
    #: well under Python's recursion limit.
    max_depth: int = 64
    #: Commands run in one load, all menu entries included.
    max_steps: int = 300_000
    #: Commands run while evaluating one menu entry.
    max_entry_steps: int = 20_000
    #: Characters of script parsed in one load (source in a loop re-reads files).
    max_script_chars: int = 32 << 20
    #: Characters in one variable value or one argument.
    max_value_chars: int = MAX_CONFIG_BYTES + 64
    #: Arguments of one command after word splitting.
    max_args: int = 10_000
    #: Variables in one context.
    max_variables: int = 10_000
    #: Menu entries and submenus defined in one load, all levels together.
    max_entries: int = MAX_MENU_ENTRIES


class ScriptLimitError(LimitError):
    """A bound on running the script was reached; commands never swallow it."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.where = where


class CommandError(Exception):
    """A command failed: GRUB prints the message and $? gets the code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class LoopControl(Exception):
    def __init__(self, levels: int, is_continue: bool) -> None:
        super().__init__("break" if not is_continue else "continue")
        self.levels = levels
        self.is_continue = is_continue


class FunctionReturn(Exception):
    def __init__(self, status: int) -> None:
        super().__init__("return")
        self.status = status


class StopScript(Exception):
    """``exit``, ``reboot``, ``halt``...: nothing after it runs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BootNow(Exception):
    """``boot``: GRUB boots what is loaded at once."""


class MenuReplaced(Exception):
    """``configfile`` read a menu: GRUB shows it at once, in its own context."""

    def __init__(self, context: Context, path: str) -> None:
        super().__init__(path)
        self.context = context
        self.path = path


class BodySyntaxError(Exception):
    """A menu entry's body did not parse: GRUB stops running it there."""


class Env:
    """The variables of one context; ``copy`` is cheap (a private layer over a frozen base)."""

    def __init__(
        self,
        limits: ScriptLimits,
        base: Mapping[str, str] | None = None,
        exported: set[str] | None = None,
    ) -> None:
        self.limits = limits
        self._base: Mapping[str, str] = base if base is not None else {}
        self._own: dict[str, str] = {}
        self._gone: set[str] = set()
        self.exported: set[str] = set(exported) if exported else set()

    def get(self, name: str) -> str | None:
        value = self._own.get(name)
        if value is not None:
            return value
        if name in self._gone:
            return None
        return self._base.get(name)

    def set(self, name: str, value: str) -> None:
        if name == "root":
            # grub_env_write_root: "(hd0,1)" is stored as "hd0,1".
            if len(value) >= 2 and value[0] == "(" and value[-1] == ")":
                value = value[1:-1]
        if len(value) > self.limits.max_value_chars:
            raise ScriptLimitError(
                f"variable {name[:40]!r} over {self.limits.max_value_chars} characters"
            )
        if name not in self._own and len(self._own) >= self.limits.max_variables:
            raise ScriptLimitError(f"over {self.limits.max_variables} variables")
        self._own[name] = value
        self._gone.discard(name)

    def unset(self, name: str) -> None:
        self._own.pop(name, None)
        if name in self._base:
            self._gone.add(name)

    def export(self, name: str) -> None:
        if self.get(name) is None:
            self.set(name, "")
        self.exported.add(name)

    def flat(self) -> dict[str, str]:
        merged = {k: v for k, v in self._base.items() if k not in self._gone}
        merged.update(self._own)
        return merged

    def copy(self) -> Env:
        return Env(self.limits, self.flat(), self.exported)

    def exported_only(self) -> Env:
        """A new context's variables (grub_env_context_open): the exported ones."""
        values = {name: self.get(name) for name in self.exported}
        return Env(self.limits, {k: v for k, v in values.items() if v is not None}, self.exported)


@record
class MenuDef:
    """A menuentry/submenu as GRUB keeps it: title, options and body source, unevaluated."""

    title: str
    #: Positional arguments: the title, then the extra words ($1, $2, ...).
    args: list[str]
    #: The --id, or the BLS entry's file name.
    entry_id: str | None
    #: None for --unrestricted; "" or a user list otherwise (GRUB restricts by default).
    users: str | None
    hotkey: str | None
    classes: list[str]
    #: The body, with the ``setparams`` line GRUB puts in front of it.
    source: str
    submenu: bool = False
    hidden: bool = False
    line: int = 0
    config: str = ""

    @property
    def ident(self) -> str:
        """GRUB's entry id: the --id, else the title."""
        return self.entry_id if self.entry_id is not None else self.title


@record
class Context:
    """A GRUB environment context: its variables and the menu being built in it."""

    env: Env
    menu: list[MenuDef] = field(default_factory=list)
    #: The config file whose commands filled it (for messages).
    config: str = ""


@record
class Loaded:
    """What the loader commands of one run left loaded (GRUB's single loader slot)."""

    kind: str | None = None
    kernel: str | None = None
    device: str | None = None
    args: str = ""
    initrds: list[str] = field(default_factory=list)
    #: Multiboot modules (path, arguments); not bootable here, kept for messages.
    modules: list[tuple[str, str]] = field(default_factory=list)
    #: Why nothing can boot from this run, when a command said so.
    failure: str | None = None
    #: A chainloaded unified kernel image: the byte ranges of its kernel and initrds.
    kernel_range: tuple[int, int] | None = None
    initrd_ranges: list[tuple[int, int] | None] = field(default_factory=list)


CommandFunc = Callable[["Interpreter", str, list[str]], int]


class Session:
    """Everything one config load shares between its interpreters."""

    def __init__(
        self,
        ctx: LoadContext,
        devices: Devices,
        commands: Mapping[str, CommandFunc],
        fallback_commands: Mapping[str, CommandFunc],
        limits: ScriptLimits | None = None,
    ) -> None:
        self.ctx = ctx
        self.devices = devices
        self.commands = commands
        self.fallback_commands = fallback_commands
        self.limits = limits or ScriptLimits()
        self.steps = 0
        self.script_chars = 0
        self.depth = 0
        self.entries_defined = 0
        self.functions: dict[str, FunctionDef] = {}
        #: GRUB users: name -> (kind "plain"|"pbkdf2", secret).
        self.passwords: dict[str, tuple[str, str]] = {}
        #: Values load_env set: name -> (value, file), for default_reason.
        self.env_file_values: dict[str, tuple[str, str]] = {}
        #: The context whose menu GRUB shows (configfile may replace the first one).
        self.final: Context | None = None
        #: What the top level itself loaded when it ran ``boot``.
        self.top_boot: Loaded | None = None
        #: The config loaded GRUB 2.14's blsuki module or ran its ``uki``: a bare
        #: ``blscfg`` is upstream's, not Red Hat's.
        self.upstream_bls = False
        #: What ``echo`` printed (about the last MAX_OUTPUT_CHARS), for messages and tests.
        self._printed: deque[str] = deque()
        self._printed_chars = 0

    def print_text(self, text: str) -> None:
        text = text[-MAX_OUTPUT_CHARS:]
        self._printed.append(text)
        self._printed_chars += len(text)
        while self._printed_chars > MAX_OUTPUT_CHARS:
            self._printed_chars -= len(self._printed.popleft())

    @property
    def output(self) -> str:
        return "".join(self._printed)

    def charge_step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise ScriptLimitError(f"over {self.limits.max_steps} commands run")

    def charge_script(self, chars: int) -> None:
        self.script_chars += chars
        if self.script_chars > self.limits.max_script_chars:
            raise ScriptLimitError(
                f"over {self.limits.max_script_chars} characters of script parsed"
            )

    def charge_read(self, count: int, what: str) -> None:
        """Boot entry files and UKI headers commands read share the bound on script read."""
        self.script_chars += count
        if self.script_chars > self.limits.max_script_chars:
            raise ScriptLimitError(
                f"over {self.limits.max_script_chars} characters of script and boot entries "
                f"read ({what[:200]})"
            )

    def count_entry(self) -> None:
        self.entries_defined += 1
        if self.entries_defined > self.limits.max_entries:
            raise ScriptLimitError(f"over {self.limits.max_entries} menu entries")

    @contextmanager
    def nested(self, what: str) -> Iterator[None]:
        self.depth += 1
        try:
            if self.depth > self.limits.max_depth:
                raise ScriptLimitError(f"{what} nested over {self.limits.max_depth} levels")
            yield
        finally:
            self.depth -= 1

    def new_env(self, base: Mapping[str, str] | None = None) -> Env:
        return Env(self.limits, base)


class Interpreter:
    """Runs script in one context with one positional scope, recording what it loads."""

    def __init__(
        self,
        session: Session,
        context: Context,
        scope: list[str] | None = None,
        step_limit: int | None = None,
    ) -> None:
        self.session = session
        self.context = context
        #: Positional parameters ($1...), None outside functions and entry bodies.
        self.scope = scope
        self.active_loops = 0
        self.loaded = Loaded()
        self.steps = 0
        self.step_limit = step_limit
        #: The line of the command running now, and whether it was given a { block }.
        self.line = 0
        self.has_block = False
        self.source_name = context.config

    @property
    def env(self) -> Env:
        return self.context.env

    @property
    def limits(self) -> ScriptLimits:
        return self.session.limits

    # -- running script -----------------------------------------------------------------

    def run_config(self, text: str, name: str) -> int:
        """A config file's text, unit by unit; broken units are skipped as GRUB does."""
        return self.run_source(config_source(text, name), stop_on_error=False)

    def run_body(self, text: str, name: str) -> int:
        """A menu entry's body; the first broken unit ends it (BodySyntaxError)."""
        return self.run_source(script_source(text, name), stop_on_error=True)

    def run_source(self, source: Source, stop_on_error: bool) -> int:
        self.session.charge_script(len(source.text))
        status = 0
        previous = self.source_name
        self.source_name = source.name
        try:
            # Parsing nests too: it shares the depth left by what is running now.
            depth_left = max(1, self.limits.max_depth - self.session.depth)
            for unit in parse_units(source, depth_left):
                if unit.error is not None:
                    log.info("%s", unit.error)
                    if stop_on_error:
                        raise BodySyntaxError(unit.error)
                    continue
                commands: list[Node] = []
                for node in unit.nodes:
                    if isinstance(node, FunctionDef):
                        # GRUB defines functions while parsing, before the unit runs.
                        self.session.functions[node.name] = node
                    else:
                        commands.append(node)
                if commands:
                    status = self.exec_list(commands)
        finally:
            self.source_name = previous
        return status

    def exec_list(self, nodes: list[Node]) -> int:
        status = 0
        for node in nodes:
            status = self.exec_node(node)
        return status

    def exec_node(self, node: Node) -> int:
        try:
            self.session.charge_step()
            self.steps += 1
            if self.step_limit is not None and self.steps > self.step_limit:
                raise ScriptLimitError(f"menu entry runs over {self.step_limit} commands")
            if isinstance(node, Command):
                status = self.exec_command(node)
            elif isinstance(node, If):
                status = self.exec_if(node)
            elif isinstance(node, For):
                status = self.exec_for(node)
            elif isinstance(node, While):
                status = self.exec_while(node)
            else:
                status = 0
            self.env.set("?", str(status))
        except ScriptLimitError as e:
            if e.where is None:
                raise ScriptLimitError(e.message, f"{self.source_name}:{node.line}") from None
            raise
        return status

    def exec_command(self, node: Command) -> int:
        self.line = node.line
        argv = self.expand_words(node.words)
        if not argv:
            return 0
        self.has_block = bool(node.words[-1].parts) and node.words[-1].parts[0][0] == BLOCK
        return self.run_argv(argv)

    def exec_if(self, node: If) -> int:
        with self.session.nested("if"):
            for cond, body in node.branches:
                if self.exec_list(cond) == 0:
                    return self.exec_list(body)
            if node.orelse:
                return self.exec_list(node.orelse)
            return 0

    def exec_for(self, node: For) -> int:
        values = self.expand_words(node.words)
        status = 0
        with self.session.nested("for"):
            self.active_loops += 1
            try:
                for value in values:
                    self.set_script_var(node.var, value)
                    try:
                        status = self.exec_list(node.body)
                    except LoopControl as jump:
                        if jump.levels > 1:
                            jump.levels -= 1
                            raise
                        status = 0
                        if not jump.is_continue:
                            break
            finally:
                self.active_loops -= 1
        return status

    def exec_while(self, node: While) -> int:
        status = 0
        with self.session.nested("while"):
            self.active_loops += 1
            try:
                while True:
                    try:
                        status = self.exec_list(node.cond)
                        if (status == 0) if node.until else (status != 0):
                            break
                        status = self.exec_list(node.body)
                    except LoopControl as jump:
                        if jump.levels > 1:
                            jump.levels -= 1
                            raise
                        status = 0
                        if not jump.is_continue:
                            break
            finally:
                self.active_loops -= 1
        return status

    def call_function(self, function: FunctionDef, args: list[str]) -> int:
        with self.session.nested(f"function {function.name}"):
            saved = (self.scope, self.active_loops)
            self.scope = list(args)
            self.active_loops = 0
            try:
                return self.exec_list(function.body)
            except FunctionReturn as returned:
                return returned.status
            finally:
                self.scope, self.active_loops = saved

    def run_argv(self, argv: list[str]) -> int:
        """One command line after expansion: ``!``, builtins, functions, ``a=b``."""
        name, args = argv[0], argv[1:]
        invert = False
        if name == "!":
            if not args:
                log.info("%s:%d: '!' with no command", self.source_name, self.line)
                return ERR_BAD_ARGUMENT
            invert = True
            name, args = args[0], args[1:]
        status = self.dispatch(name, args)
        if not invert:
            return status
        if status == ERR_TEST_FAILURE:
            return ERR_NONE
        if status == ERR_NONE:
            return ERR_TEST_FAILURE
        return ERR_NONE

    def dispatch(self, name: str, args: list[str]) -> int:
        command = self.session.commands.get(name)
        if command is not None:
            return self.run_builtin(command, name, args)
        function = self.session.functions.get(name)
        if function is not None:
            return self.call_function(function, args)
        command = self.session.fallback_commands.get(name)
        if command is not None:
            return self.run_builtin(command, name, args)
        if "=" in name:
            var, value = name.split("=", 1)
            self.set_script_var(var, value)
            return ERR_NONE
        # GRUB prints "can't find command" and goes on as if it had succeeded ($? is 0),
        # as grub-emu shows: test_grub2_emu.py::test_unknown_command_succeeds.
        log.info("%s:%d: unknown command %r", self.source_name, self.line, name[:60])
        return ERR_NONE

    def run_builtin(self, command: CommandFunc, name: str, args: list[str]) -> int:
        try:
            return command(self, name, args)
        except CommandError as e:
            log.info("%s:%d: %s: %s", self.source_name, self.line, name, e)
            return e.code
        except ScriptLimitError:
            raise
        except PygrubError as e:
            # A guest filesystem that cannot be read makes the command fail, as in GRUB.
            log.info("%s:%d: %s: %s", self.source_name, self.line, name, e)
            return ERR_IO

    def set_script_var(self, name: str, value: str) -> None:
        """grub_script_env_set: positional and special names cannot be assigned."""
        if not name or name[0].isdigit() or name in ("#", "*", "@"):
            log.info("%s:%d: invalid variable name %r", self.source_name, self.line, name[:40])
            return
        self.env.set(name, value)

    # -- word expansion -----------------------------------------------------------------

    def expand_words(self, words: list[Word]) -> list[str]:
        out: list[str | None] = []
        limit = self.limits.max_value_chars
        for word in words:
            if not out or out[-1] is not None:
                out.append(None)
            for kind, text in word.parts:
                if kind == TEXT:
                    if text:
                        _append(out, text, limit)
                elif kind == DQ or kind == SQ:
                    _append(out, wildcard_escape(text), limit)
                elif kind == VAR or kind == DQVAR:
                    split = kind == VAR
                    for index, value in enumerate(self.variable_values(text, split)):
                        if index:
                            out.append(None)
                        _append(out, var_escape(value) if split else wildcard_escape(value), limit)
                elif kind == GETTEXT:
                    _append(out, wildcard_escape(self.expand_gettext(text)), limit)
                elif kind == BLOCK:
                    _append(out, "{" + wildcard_escape(text) + "}", limit)
                if len(out) > self.limits.max_args:
                    raise ScriptLimitError(f"a command with over {self.limits.max_args} arguments")
        if out and out[-1] is None:
            out.pop()
        return [unescape(arg) for arg in out if arg is not None]

    def variable_values(self, name: str, split: bool) -> list[str]:
        """grub_script_env_get: the words (split) or the string a reference stands for."""
        if name[0].isdigit() or name in ("#", "*", "@"):
            return self.positional_values(name, split)
        value = self.env.get(name)
        if not value:
            return []
        return split_blanks(value) if split else [value]

    def positional_values(self, name: str, split: bool) -> list[str]:
        scope = self.scope
        if scope is None:
            return []
        if name == "#":
            return [str(len(scope))]
        if name == "*" and not split:
            return [" ".join(scope)] if scope else []
        if name in ("*", "@"):
            if split:
                return [word for arg in scope for word in split_blanks(arg)]
            return list(scope)
        number = int(name) if len(name) < 10 else 0
        if number == 0 or number > len(scope):
            return []
        value = scope[number - 1]
        return split_blanks(value) if split else [value]

    def expand_gettext(self, text: str) -> str:
        """A $"..." string: its $name references replaced (there is no translation here)."""
        out = []
        i = 0
        escaped = False
        n = len(text)
        while i < n:
            char = text[i]
            if char == "\\":
                if not escaped and _is_hex_escape(text, i):
                    out.append(text[i : i + 4])
                    i += 4
                    continue
                escaped = not escaped
                if not escaped:
                    out.append("\\")
                i += 1
            elif char == "$" and escaped:
                escaped = False
                out.append("$")
                i += 1
            elif char == "$":
                i = self._gettext_variable(text, i + 1, out)
            else:
                if escaped:
                    out.append("\\")
                    escaped = False
                out.append(char)
                i += 1
        return "".join(out)

    def _gettext_variable(self, text: str, i: int, out: list[str]) -> int:
        match = _GETTEXT_VAR.match(text, i)
        if match is None:
            out.append("$")
            return i
        name = next(group for group in match.groups() if group is not None)
        if name == "#":
            out.append(str(len(self.scope)) if self.scope is not None else "0")
        else:
            out.append(self.env.get(name) or "")
        return match.end()

    # -- files and devices --------------------------------------------------------------

    def split_device(self, spec: str) -> tuple[str | None, str]:
        """("(hd0,1)/boot/x" | "/boot/x") -> (device without parentheses or $root, path)."""
        if spec.startswith("("):
            close = spec.find(")")
            if close < 0:
                raise CommandError(ERR_BAD_FILENAME, f"missing `)' in {spec[:80]!r}")
            return spec[1:close], spec[close + 1 :]
        return self.env.get("root") or None, spec

    def read_file(self, spec: str) -> bytes:
        """A guest file GRUB would open, within MAX_CONFIG_BYTES: an absolute path, or
        else a blocklist (kern/file.c opens any other name as one)."""
        device, path = self.split_device(spec)
        if not path.startswith("/"):
            return self.read_blocklist(device, path, spec)
        fs = self.session.devices.filesystem(device)
        if fs is None or not path.startswith("/") or not fs.is_file(path):
            raise CommandError(ERR_FILE_NOT_FOUND, f"file `{spec[:200]}' not found")
        size = fs.stat(path).size
        if size > MAX_CONFIG_BYTES:
            raise CommandError(
                ERR_OUT_OF_RANGE, f"{spec[:200]} is {size} bytes, over {MAX_CONFIG_BYTES}"
            )
        return fs.read_file(path, MAX_CONFIG_BYTES)

    def read_blocklist(self, device: str | None, name: str, spec: str) -> bytes:
        """The sectors blocklist ``name`` lists on ``device``, within MAX_CONFIG_BYTES."""
        from .blocklist import read_blocklist

        source = self.session.devices.source(device)
        if source is None:
            raise CommandError(ERR_UNKNOWN_DEVICE, f"no disk to read blocklist {spec[:200]}")
        try:
            return read_blocklist(source, name, spec[:200], MAX_CONFIG_BYTES)
        except LimitError as e:
            raise CommandError(ERR_OUT_OF_RANGE, str(e)) from None
        except CorruptError as e:
            raise CommandError(ERR_BAD_FILENAME, str(e)) from None

    def config_path(self, spec: str) -> str:
        """The value GRUB gives $config_file for a file read as config."""
        if spec.startswith("("):
            return spec
        return f"({self.env.get('root') or ''}){spec}"

    def run_config_file(self, spec: str) -> int:
        """``source``: read a config file into the current context and menu."""
        text = decode_config(self.read_file(spec))
        full = self.config_path(spec)
        old_file = self.env.get("config_file")
        old_dir = self.env.get("config_directory")
        self.env.set("config_file", full)
        self.env.set("config_directory", full.rsplit("/", 1)[0] if "/" in full else full)
        self.env.export("config_file")
        self.env.export("config_directory")
        try:
            with self.session.nested(f"source {spec[:80]}"):
                return self.run_config(text, spec)
        finally:
            for name, old in (("config_file", old_file), ("config_directory", old_dir)):
                if old is None:
                    self.env.unset(name)
                else:
                    self.env.set(name, old)


def split_blanks(value: str) -> list[str]:
    """grub_script_argv_split_append: words separated by blanks (space, tab, CR, LF)."""
    return [word for word in _BLANKS.split(value) if word]


def _append(out: list[str | None], text: str, limit: int) -> None:
    current = out[-1]
    joined = text if current is None else current + text
    if len(joined) > limit:
        raise ScriptLimitError(f"an argument over {limit} characters")
    out[-1] = joined


def _is_hex_escape(text: str, i: int) -> bool:
    return i + 3 < len(text) and text[i + 1] == "x" and text[i + 2] in _HEX and text[i + 3] in _HEX


def wildcard_escape(text: str) -> str:
    """Protect '*', '?' and '\\' of quoted text (Red Hat's GRUB leaves \\xHH alone)."""
    if not any(c in text for c in "*?\\"):
        return text
    out = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and _is_hex_escape(text, i):
            out.append(text[i : i + 4])
            i += 4
            continue
        if char in "*?\\":
            out.append("\\")
        out.append(char)
        i += 1
    return "".join(out)


def var_escape(text: str) -> str:
    """An unquoted variable's word: backslashes doubled, as arglist_to_argv does."""
    if "\\" not in text:
        return text
    out = []
    for i, char in enumerate(text):
        if char == "\\":
            out.append("\\")
            if i + 1 < len(text) and text[i + 1] in "?*":
                out.append("\\")
        out.append(char)
    return "".join(out)


def unescape(text: str) -> str:
    """The final pass over each argument: '\\c' becomes 'c'; '\\xHH' stays (Red Hat)."""
    if "\\" not in text:
        return text
    out = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\":
            if _is_hex_escape(text, i):
                out.append(text[i : i + 4])
                i += 4
                continue
            if i + 1 < n:
                out.append(text[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)
