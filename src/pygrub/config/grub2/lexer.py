"""GRUB script tokens, as grub-core/script/yylex.l cuts them.

GRUB reads a config line by line and lexes with flex's longest-match rule. Lexing the
whole (pre-processed) text at once gives the same tokens: a quoted string left open at
the end of a line makes flex join the next line (MULTILINE), and so does a backslash
before a newline (POS_MULTILINE), which is what a scan over the joined text does anyway.
One exception is kept by hand: a token that starts with ``#`` is always a comment to the
end of its line, because flex counts COMMENT's trailing newline and wins the tie.

A word keeps its pieces apart (plain text, quoted strings, variable references) because
GRUB expands and splits each kind differently; see ``interp.expand_words``.
"""

from __future__ import annotations

import bisect
import enum
import re

from ...record import record

# Kinds of the pieces of one word (grub_script_arg_type_t).
TEXT = "text"  # unquoted text, backslash escapes still in it
DQ = "dq"  # the inside of "...", escapes already applied
SQ = "sq"  # the inside of '...'
VAR = "var"  # $name outside quotes: the value is split into words
DQVAR = "dqvar"  # $name inside "...": the value stays one word
GETTEXT = "gettext"  # $"...": a translatable string with $name references
BLOCK = "block"  # { ... } given to a command, as source text

Part = tuple[str, str]

KEYWORDS = frozenset(
    "case do done elif else esac fi for if in select then until while function".split()
)

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VARIABLE = rf"\$(?:{_NAME}|\{{{_NAME}\}}|[0-9]+|\{{[0-9]+\}}|[?#*@]|\{{[?#*@]\}})"
_DQSTR = r'"(?:\\[\s\S]|[^\\"])*"'
#: yylex.l's WORD: plain characters, quoted strings, escapes, variables, $"...".
_WORD = re.compile(
    rf"""(?:[^{{}}|&$;<> \t\n'"\\]+|{_DQSTR}|'[^']*'|\\[\s\S]|{_VARIABLE}|\${_DQSTR})+"""
)
_NAME_RE = re.compile(rf"{_NAME}\Z")
_PLAIN_WORD = re.compile(r"""[^{}|&$;<> \t\n'"\\]+""")
#: What may follow a word made of plain characters only (the text ends in a newline).
_WORD_ENDS = frozenset(" \t\n;{}|&<>")
#: Characters that start a token other than a word.
_OPERATOR_CHARS = frozenset("\n;{}|&<>")

# Inside a word (the SPLIT state of yylex.l).
_SPLIT_PLAIN = re.compile(r"""[^"'$\\]+""")
_VAR_NAME = re.compile(rf"\{{({_NAME}|[0-9]+|[?#*@])\}}|({_NAME}|[0-9]+|[?#*@])")
_DQ_PLAIN = re.compile(r'[^"$\\\n]+')
_GETTEXT_PLAIN = re.compile(r'[^"\\\n]+')


class Tok(enum.Enum):
    WORD = "word"
    KEYWORD = "keyword"
    NEWLINE = "newline"
    SEMI = "';'"
    LBR = "'{'"
    RBR = "'}'"
    BAD = "bad"
    EOF = "end of input"


@record(slots=True)
class Token:
    kind: Tok
    #: Offsets of the token in Source.text.
    start: int
    end: int
    #: The word's text as written (WORD, KEYWORD), or what is wrong (BAD).
    text: str = ""
    parts: tuple[Part, ...] = ()
    #: A bare identifier: what ``function NAME`` and ``for NAME in`` accept.
    is_name: bool = False


@record(frozen=True)
class Source:
    """Script text as GRUB's reader hands it to the lexer: every line ends in a newline."""

    name: str
    text: str
    #: Offset in ``text`` where each line starts.
    line_starts: tuple[int, ...]
    #: For each line, its 1-based number in the original file.
    line_numbers: tuple[int, ...]

    def line_index(self, offset: int) -> int:
        """Index of the line holding ``offset``."""
        return max(0, bisect.bisect_right(self.line_starts, offset) - 1)

    def line_number(self, offset: int) -> int:
        """The original file's line number at ``offset`` (for messages)."""
        if not self.line_numbers:
            return 1
        return self.line_numbers[min(self.line_index(offset), len(self.line_numbers) - 1)]

    def next_line_start(self, offset: int) -> int:
        """Where the line after the one holding ``offset`` starts (len(text) at the end)."""
        index = self.line_index(offset) + 1
        return self.line_starts[index] if index < len(self.line_starts) else len(self.text)


def config_source(text: str, name: str, skip_hash_lines: bool = True) -> Source:
    """A config file as read_config_file reads it: CRs dropped, lines starting '#' skipped.

    ``skip_hash_lines=False`` reads it as grub-script-check does (tests compare with it).
    """
    kept = []
    for number, line in enumerate(_physical_lines(text), 1):
        line = line.replace("\r", "")
        if not (skip_hash_lines and line.startswith("#")):
            kept.append((number, line))
    return _source(name, kept)


def script_source(text: str, name: str) -> Source:
    """A menu entry's body as grub_script_execute_sourcecode reads it: lines as they are."""
    lines = text.split("\n")
    return _source(name, list(enumerate(lines, 1)))


def _physical_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _source(name: str, lines: list[tuple[int, str]]) -> Source:
    starts = []
    numbers = []
    chunks = []
    offset = 0
    for number, line in lines:
        # GRUB handles C strings: a NUL ends the line.
        line = line.split("\0", 1)[0]
        starts.append(offset)
        numbers.append(number)
        chunks.append(line + "\n")
        offset += len(line) + 1
    return Source(name, "".join(chunks), tuple(starts), tuple(numbers))


class Lexer:
    """Tokens of a Source, one at a time, from any line start."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.text = source.text
        self.pos = 0

    def resume_at(self, offset: int) -> None:
        self.pos = offset

    def next(self) -> Token:
        text = self.text
        pos = self.pos
        length = len(text)
        while pos < length and text[pos] in " \t":
            pos += 1
        if pos < length and text[pos] == "#":
            end = text.find("\n", pos)
            pos = length if end < 0 else end
        if pos >= length:
            self.pos = length
            return Token(Tok.EOF, length, length)
        char = text[pos]
        if char not in _OPERATOR_CHARS:
            return self._emit(self._word(pos))
        if char == "\n":
            return self._emit(Token(Tok.NEWLINE, pos, pos + 1))
        if char == ";":
            if text.startswith(";;", pos):
                return self._emit(Token(Tok.BAD, pos, pos + 2, "';;'"))
            return self._emit(Token(Tok.SEMI, pos, pos + 1))
        if char == "{":
            return self._emit(Token(Tok.LBR, pos, pos + 1))
        if char == "}":
            return self._emit(Token(Tok.RBR, pos, pos + 1))
        size = 2 if text.startswith(("||", "&&"), pos) else 1
        return self._emit(Token(Tok.BAD, pos, pos + size, f"'{text[pos : pos + size]}'"))

    def _emit(self, token: Token) -> Token:
        self.pos = token.end
        return token

    def _word(self, pos: int) -> Token:
        text = self.text
        plain = _PLAIN_WORD.match(text, pos)
        if plain is not None and text[plain.end()] in _WORD_ENDS:
            # The common case: no quote, variable or escape in the word.
            word = plain.group()
            if word in KEYWORDS:
                return Token(Tok.KEYWORD, pos, plain.end(), word, ((TEXT, word),))
            if word in ("[[", "]]"):
                return Token(Tok.BAD, pos, plain.end(), f"'{word}'")
            is_name = _NAME_RE.match(word) is not None
            return Token(Tok.WORD, pos, plain.end(), word, ((TEXT, word),), is_name)
        match = _WORD.match(text, pos)
        end = match.end() if match else pos
        if end < len(text) and (text[end] in "'\"" or text.startswith('$"', end)):
            # A quote that never closes (MULTILINE until the end of input).
            return Token(Tok.BAD, pos, len(text), "a quoted string that is never closed")
        if end == pos:
            # Only a '$' that starts no variable gets here (flex's '.' rule).
            return Token(Tok.BAD, pos, pos + 1, f"unexpected {text[pos]!r}")
        word = text[pos:end]
        if word.endswith("\n") and end == len(text):
            # A backslash-newline asks for one more line (POS_MULTILINE); there is none.
            return Token(Tok.BAD, pos, end, "a backslash-newline at the end of the script")
        if word in ("[[", "]]"):
            return Token(Tok.BAD, pos, end, f"'{word}'")
        if word in KEYWORDS:
            return Token(Tok.KEYWORD, pos, end, word, ((TEXT, word),))
        if _NAME_RE.match(word):
            return Token(Tok.WORD, pos, end, word, ((TEXT, word),), is_name=True)
        try:
            parts = split_word(word)
        except _BadVariable:
            return Token(Tok.BAD, pos, end, "a '$' that names no variable inside quotes")
        return Token(Tok.WORD, pos, end, word, parts)


def split_word(word: str) -> tuple[Part, ...]:
    """The pieces of one WORD, as yylex.l's SPLIT state emits them.

    Empty plain-text pieces are dropped (GRUB appends nothing for them); empty quoted
    pieces are kept, because a quoted "" still makes an argument.
    """
    parts: list[Part] = []
    plain: list[str] = []
    i = 0
    n = len(word)
    while i < n:
        char = word[i]
        if char == "\\":
            if i + 1 < n and word[i + 1] == "\n":
                i += 2  # line continuation inside a word vanishes
            else:
                plain.append(word[i : i + 2])
                i += 2
        elif char == '"':
            _flush(parts, plain)
            i = _split_dquote(word, i + 1, parts)
        elif char == "'":
            _flush(parts, plain)
            close = word.index("'", i + 1)
            parts.append((SQ, word[i + 1 : close]))
            i = close + 1
        elif char == "$":
            _flush(parts, plain)
            if word.startswith('$"', i):
                i = _split_gettext(word, i + 2, parts)
            else:
                i = _split_var(word, i + 1, parts, VAR)
        else:
            match = _SPLIT_PLAIN.match(word, i)
            assert match is not None
            plain.append(match.group())
            i = match.end()
    _flush(parts, plain)
    return tuple(parts)


def _flush(parts: list[Part], plain: list[str]) -> None:
    if plain:
        text = "".join(plain)
        plain.clear()
        if text:
            parts.append((TEXT, text))


class _BadVariable(Exception):
    """A '$' inside "..." that starts no variable: yylex.l's VAR state returns BAD."""


def _split_var(word: str, i: int, parts: list[Part], kind: str) -> int:
    match = _VAR_NAME.match(word, i)
    if match is None:
        raise _BadVariable()
    parts.append((kind, match.group(1) or match.group(2)))
    return match.end()


def _split_dquote(word: str, i: int, parts: list[Part]) -> int:
    """Pieces of a "..." string starting after its quote; returns the index after it."""
    buf: list[str] = []
    while True:
        char = word[i]
        if char == '"':
            parts.append((DQ, "".join(buf)))
            return i + 1
        if char == "$":
            parts.append((DQ, "".join(buf)))
            buf = []
            i = _split_var(word, i + 1, parts, DQVAR)
        elif char == "\\":
            following = word[i + 1]
            if following in '$\\"':
                buf.append(following)
                i += 2
            elif following == "\n":
                i += 2
            else:
                buf.append("\\")
                i += 1
        else:
            match = _DQ_PLAIN.match(word, i)
            if match:
                buf.append(match.group())
                i = match.end()
            else:
                buf.append(char)  # a newline inside the string
                i += 1


def _split_gettext(word: str, i: int, parts: list[Part]) -> int:
    """A $"..." string; its $references are resolved when it is expanded."""
    buf: list[str] = []
    while True:
        char = word[i]
        if char == '"':
            parts.append((GETTEXT, "".join(buf)))
            return i + 1
        if char == "\\":
            following = word[i + 1]
            if following == "\\":
                buf.append("\\\\")
                i += 2
            elif following == '"':
                buf.append('"')
                i += 2
            elif following == "\n":
                i += 2
            else:
                buf.append("\\")
                i += 1
        else:
            match = _GETTEXT_PLAIN.match(word, i)
            if match:
                buf.append(match.group())
                i = match.end()
            else:
                buf.append(char)
                i += 1
