"""GRUB script syntax (grub-core/script/parser.y) as a tree, one "unit" at a time.

GRUB parses and runs a config piece by piece: a unit is one line, stretched over the
following lines while an ``if``/``for``/``while``/``function``/``{`` is still open.
A unit with a syntax error is dropped whole and reading resumes on the line after the
token where the error was seen (read_config_file); inside a menu entry's body the first
bad unit ends the body (grub_script_execute_sourcecode). Keywords are tokens wherever
they stand, but parser.y accepts them back as plain arguments after a command's name.
"""

from __future__ import annotations

from collections.abc import Iterator

from ...record import field, record
from .lexer import BLOCK, TEXT, Lexer, Part, Source, Tok, Token


@record(slots=True)
class Word:
    parts: tuple[Part, ...]


@record
class Command:
    words: list[Word]
    line: int


@record
class If:
    #: (condition, body) for the ``if`` and each ``elif``, in order.
    branches: list[tuple[list[Node], list[Node]]]
    orelse: list[Node]
    line: int


@record
class For:
    var: str
    words: list[Word]
    body: list[Node]
    line: int


@record
class While:
    cond: list[Node]
    body: list[Node]
    until: bool
    line: int


@record
class FunctionDef:
    name: str
    body: list[Node]
    line: int


Node = Command | If | For | While | FunctionDef


@record
class Unit:
    """What GRUB parses and then runs in one go; ``error`` when it did not parse."""

    nodes: list[Node] = field(default_factory=list)
    error: str | None = None
    line: int = 0


class ScriptSyntaxError(Exception):
    def __init__(self, token: Token, message: str) -> None:
        super().__init__(message)
        self.token = token


_COMPOUND = ("if", "for", "while", "until")


def parse_units(source: Source, max_depth: int) -> Iterator[Unit]:
    """Every unit of ``source`` in order, broken ones included (with ``error`` set)."""
    parser = _Parser(source, max_depth)
    while True:
        token = parser.peek()
        if token.kind is Tok.EOF:
            return
        line = source.line_number(token.start)
        try:
            nodes = parser.unit()
        except ScriptSyntaxError as e:
            where = source.line_number(e.token.start)
            yield Unit([], f"{source.name}:{where}: syntax error: {e}", line)
            parser.recover(e.token)
            continue
        yield Unit(nodes, None, line)


class _Parser:
    def __init__(self, source: Source, max_depth: int) -> None:
        self.source = source
        self.lexer = Lexer(source)
        self.max_depth = max_depth
        self.depth = 0
        self.look: Token | None = None

    # -- tokens ---------------------------------------------------------------------

    def peek(self) -> Token:
        if self.look is None:
            self.look = self.lexer.next()
        return self.look

    def take(self) -> Token:
        token = self.peek()
        self.look = None
        return token

    def expect_keyword(self, word: str) -> Token:
        token = self.take()
        if token.kind is not Tok.KEYWORD or token.text != word:
            raise ScriptSyntaxError(token, f"expected '{word}', found {_describe(token)}")
        return token

    def recover(self, token: Token) -> None:
        """Drop the rest of the line where ``token`` ends, as GRUB drops its buffer."""
        self.look = None
        self.depth = 0
        if token.kind is Tok.EOF:
            self.lexer.resume_at(len(self.source.text))
            return
        self.lexer.resume_at(self.source.next_line_start(max(token.start, token.end - 1)))

    def nest(self, token: Token) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise ScriptSyntaxError(token, f"blocks nested over {self.max_depth} levels")

    def line_of(self, token: Token) -> int:
        return self.source.line_number(token.start)

    # -- grammar --------------------------------------------------------------------

    def unit(self) -> list[Node]:
        """script: statements each ended by ';' or a newline; the first newline ends it."""
        nodes: list[Node] = []
        while True:
            token = self.peek()
            if token.kind is Tok.EOF:
                return nodes
            if token.kind is Tok.NEWLINE:
                self.take()
                return nodes
            nodes.append(self.statement())
            token = self.take()
            if token.kind is Tok.NEWLINE:
                return nodes
            if token.kind is not Tok.SEMI:
                raise ScriptSyntaxError(token, f"unexpected {_describe(token)}")

    def statement(self) -> Node:
        token = self.peek()
        if token.kind is Tok.KEYWORD and token.text == "function":
            return self.function()
        return self.command()

    def command(self) -> Node:
        token = self.peek()
        if token.kind is Tok.WORD:
            return self.grubcmd()
        if token.kind is Tok.KEYWORD and token.text in _COMPOUND:
            self.nest(token)
            if token.text == "if":
                node: Node = self.ifcmd()
            elif token.text == "for":
                node = self.forcmd()
            else:
                node = self.whilecmd()
            self.depth -= 1
            return node
        raise ScriptSyntaxError(token, f"unexpected {_describe(token)}")

    def grubcmd(self) -> Command:
        first = self.take()
        words = [Word(first.parts)]
        while True:
            token = self.peek()
            if token.kind in (Tok.WORD, Tok.KEYWORD):
                self.take()
                words.append(Word(token.parts))
            elif token.kind is Tok.LBR:
                words.append(self.block())
                break
            else:
                break
        return Command(words, self.line_of(first))

    def block(self) -> Word:
        """{ commands }: kept as its source text (the command reads the text)."""
        open_brace = self.take()
        self.nest(open_brace)
        self.commands()
        close = self.take()
        if close.kind is not Tok.RBR:
            raise ScriptSyntaxError(close, f"expected '}}', found {_describe(close)}")
        self.depth -= 1
        return Word(((BLOCK, self.source.text[open_brace.end : close.start]),))

    def commands(self) -> tuple[list[Node], bool]:
        """commands1: one or more commands; says whether a delimiter followed the last."""
        self.skip_newlines()
        nodes = [self.command()]
        while True:
            token = self.peek()
            if token.kind not in (Tok.SEMI, Tok.NEWLINE):
                return nodes, False
            self.take()
            self.skip_newlines()
            token = self.peek()
            if token.kind is Tok.WORD or (token.kind is Tok.KEYWORD and token.text in _COMPOUND):
                nodes.append(self.command())
            else:
                return nodes, True

    def delimited_commands(self) -> list[Node]:
        """commands1 delimiters1: the form before then/do/done/fi/else and a function's '}'."""
        nodes, delimited = self.commands()
        if not delimited:
            token = self.peek()
            raise ScriptSyntaxError(token, f"expected ';' or newline, found {_describe(token)}")
        return nodes

    def skip_newlines(self) -> None:
        while self.peek().kind is Tok.NEWLINE:
            self.take()

    def ifcmd(self) -> If:
        first = self.take()
        branches = []
        orelse: list[Node] = []
        while True:
            cond = self.delimited_commands()
            self.expect_keyword("then")
            body = self.delimited_commands()
            branches.append((cond, body))
            token = self.take()
            if token.kind is Tok.KEYWORD and token.text == "elif":
                continue
            if token.kind is Tok.KEYWORD and token.text == "else":
                orelse = self.delimited_commands()
                self.expect_keyword("fi")
            elif not (token.kind is Tok.KEYWORD and token.text == "fi"):
                raise ScriptSyntaxError(token, f"expected 'fi', found {_describe(token)}")
            return If(branches, orelse, self.line_of(first))

    def forcmd(self) -> For:
        first = self.take()
        name = self.take()
        if not name.is_name:
            raise ScriptSyntaxError(name, f"expected a variable name, found {_describe(name)}")
        self.expect_keyword("in")
        words = []
        while self.peek().kind in (Tok.WORD, Tok.KEYWORD):
            words.append(Word(self.take().parts))
        token = self.take()
        if token.kind not in (Tok.SEMI, Tok.NEWLINE):
            raise ScriptSyntaxError(token, f"expected ';' or newline, found {_describe(token)}")
        self.skip_newlines()
        self.expect_keyword("do")
        body = self.delimited_commands()
        self.expect_keyword("done")
        return For(name.text, words, body, self.line_of(first))

    def whilecmd(self) -> While:
        first = self.take()
        cond = self.delimited_commands()
        self.expect_keyword("do")
        body = self.delimited_commands()
        self.expect_keyword("done")
        return While(cond, body, first.text == "until", self.line_of(first))

    def function(self) -> FunctionDef:
        first = self.take()
        name = self.take()
        if not name.is_name:
            raise ScriptSyntaxError(name, f"expected a function name, found {_describe(name)}")
        self.nest(first)
        self.skip_newlines()
        token = self.take()
        if token.kind is not Tok.LBR:
            raise ScriptSyntaxError(token, f"expected '{{', found {_describe(token)}")
        body = self.delimited_commands()
        token = self.take()
        if token.kind is not Tok.RBR:
            raise ScriptSyntaxError(token, f"expected '}}', found {_describe(token)}")
        self.depth -= 1
        return FunctionDef(name.text, body, self.line_of(first))


def _describe(token: Token) -> str:
    if token.kind is Tok.WORD:
        return repr(token.text[:40])
    if token.kind is Tok.KEYWORD:
        return f"'{token.text}'"
    if token.kind is Tok.BAD:
        return token.text
    return token.kind.value


def text_word(text: str) -> Word:
    """A word holding literal text (for commands built by pygrub itself)."""
    return Word(((TEXT, text),))
