"""``test`` and ``[``, as grub-core/commands/test.c evaluates them.

GRUB's expression walk is its own: it reads left to right, tries three-word tests
before two-word ones, treats any other word as "true when non-empty", and combines with
``-a``/``-o`` without precedence. File tests look a name up in its directory, so a
symlink to a directory is not ``-d`` (GRUB's directory hooks report the link itself).
"""

from __future__ import annotations

from ..._typing import TYPE_CHECKING
from ...errors import NotFoundError, PygrubError
from .interp import ERR_NONE, ERR_TEST_FAILURE, CommandError
from .strtoul import grub_strtoul

if TYPE_CHECKING:
    from .interp import Interpreter

#: test.c's MAX_TEST_RECURSION_DEPTH is 100; a lower bound keeps Python's stack small.
MAX_TEST_NESTING = 32


def _signed(text: str) -> int:
    """test.c's grub_strtosl: a leading '-' negates; errors read as 0; C int wraps."""
    negative = text.startswith("-")
    value, _end = grub_strtoul(text[1:] if negative else text)
    number = value or 0
    if negative:
        number = -number
    number &= 0xFFFFFFFF
    return number - (1 << 32) if number >= 1 << 31 else number


def cmd_test(it: Interpreter, name: str, args: list[str]) -> int:
    if args and args[-1] == "]":
        args = args[:-1]
    walker = _Walk(it, args)
    return ERR_NONE if walker.expression(0) else ERR_TEST_FAILURE


class _Walk:
    def __init__(self, it: Interpreter, args: list[str]) -> None:
        self.it = it
        self.args = args
        self.pos = 0

    def expression(self, depth: int) -> bool:
        args = self.args
        state = _State()
        while self.pos < len(args):
            i = self.pos
            if i + 2 < len(args):
                verdict = self.three_word(args[i], args[i + 1], args[i + 2])
                if verdict is not None:
                    state.update(verdict)
                    self.pos += 3
                    continue
            if i + 1 < len(args):
                verdict = self.two_word(args[i], args[i + 1])
                if verdict is not None:
                    state.update(verdict)
                    self.pos += 2
                    continue
            word = args[i]
            self.pos += 1
            if word == ")":
                return state.result()
            if word == "(":
                if depth + 1 > MAX_TEST_NESTING:
                    raise CommandError(ERR_TEST_FAILURE, "test: parentheses nested too deep")
                state.update(self.expression(depth + 1))
            elif word == "!":
                state.invert = not state.invert
            elif word == "-a":
                pass
            elif word == "-o":
                state.either = state.either or state.both
                state.both = True
            else:
                state.update(word != "")
        return state.result()

    def three_word(self, left: str, op: str, right: str) -> bool | None:
        if op in ("=", "=="):
            return left == right
        if op == "!=":
            return left != right
        if op in ("<", "<=", ">", ">="):
            order = _c_compare(left, right)
            return {"<": order < 0, "<=": order <= 0, ">": order > 0, ">=": order >= 0}[op]
        numeric = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"}
        if op in numeric:
            a, b = _signed(left), _signed(right)
            return {
                "-eq": a == b,
                "-ne": a != b,
                "-lt": a < b,
                "-le": a <= b,
                "-gt": a > b,
                "-ge": a >= b,
            }[op]
        if op in ("-pgt", "-plt"):
            return _prefixed_compare(left, right, op == "-pgt")
        if op.startswith(("-nt", "-ot")):
            # File times: pygrub reads no modification times, so only existence decides.
            first = self.it_file(left)[0]
            second = self.it_file(right)[0]
            return (first and not second) if op.startswith("-nt") else (second and not first)
        return None

    def two_word(self, op: str, operand: str) -> bool | None:
        if op == "-d":
            exists, is_dir = self.it_file(operand)
            return exists and is_dir
        if op == "-e":
            return self.it_file(operand)[0]
        if op == "-f":
            exists, is_dir = self.it_file(operand)
            return exists and not is_dir
        if op == "-s":
            return file_size(self.it, operand) > 0
        if op == "-n":
            return operand != ""
        if op == "-z":
            return operand == ""
        return None

    def it_file(self, spec: str) -> tuple[bool, bool]:
        return file_info(self.it, spec)


class _State:
    """test.c's and/or/invert accumulator."""

    def __init__(self) -> None:
        self.both = True
        self.either = False
        self.invert = False

    def update(self, value: bool) -> None:
        self.both = self.both and (not value if self.invert else value)
        self.invert = False

    def result(self) -> bool:
        return self.either or self.both


def _c_compare(left: str, right: str) -> int:
    """grub_strcmp on the UTF-8 bytes."""
    a, b = _bytes(left), _bytes(right)
    return (a > b) - (a < b)


def _bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A surrogate that no byte produced (only from text typed at the menu).
        return text.encode("utf-8", "surrogatepass")


def _prefixed_compare(left: str, right: str, greater: bool) -> bool:
    """-pgt/-plt: compare the numbers after the common prefix (vmlinuz-2 -plt vmlinuz-11)."""
    i = 0
    while i < len(left) and i < len(right) and left[i] == right[i]:
        i += 1
    i -= 1
    while i > 0 and left[i].isdigit():
        i -= 1
    i += 1
    a = grub_strtoul(left[i:])[0] or 0
    b = grub_strtoul(right[i:])[0] or 0
    return a > b if greater else a < b


def file_info(it: Interpreter, spec: str) -> tuple[bool, bool]:
    """test.c's get_fileinfo: (exists, is a directory) for "(dev)/path" or "/path"."""
    try:
        device, path = it.split_device(spec)
    except CommandError:
        return False, False
    fs = it.session.devices.filesystem(device)
    if fs is None:
        return False, False
    path = path.rstrip("/")
    if not path:
        return True, True  # the whole device
    try:
        from ...fs.base import NodeType

        stat = fs.lstat(path if path.startswith("/") else "/" + path)
    except NotFoundError:
        return False, False
    except PygrubError:
        return False, False
    return True, stat.type is NodeType.DIR


def file_size(it: Interpreter, spec: str) -> int:
    """-s: the size of a file GRUB can open (a regular file or a blocklist), else 0."""
    try:
        device, path = it.split_device(spec)
    except CommandError:
        return 0
    if not path.startswith("/"):
        return blocklist_size(it, device, path, spec)
    fs = it.session.devices.filesystem(device)
    if fs is None:
        return 0
    try:
        if not fs.is_file(path):
            return 0
        return fs.stat(path).size
    except PygrubError:
        return 0


def blocklist_size(it: Interpreter, device: str | None, name: str, spec: str) -> int:
    """The bytes a blocklist lists (none are read), 0 for one GRUB cannot open."""
    from .blocklist import SECTOR_SIZE, blocklist_runs

    source = it.session.devices.source(device)
    if source is None:
        return 0
    try:
        runs = blocklist_runs(name, source.size // SECTOR_SIZE, spec[:200], None)
    except PygrubError:
        return 0
    return sum(count for _first, count in runs) * SECTOR_SIZE
