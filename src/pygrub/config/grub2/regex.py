"""POSIX extended regular expressions (GRUB's ``regexp``) translated for Python's ``re``.

Python's engine backtracks, so a hostile pattern could run for hours. We refuse what
makes backtracking explode - a repeated group that itself repeats or alternates, more
than a few repetitions in one pattern, back-references - and bound the lengths of both
the pattern and the text. Everything GRUB configs use in practice (anchors, classes,
groups, alternation, simple repetition) translates one to one.
"""

from __future__ import annotations

import re

from ...errors import PygrubError

MAX_PATTERN = 256
MAX_SUBJECT = 512
MAX_REPEATS = 3
MAX_GROUP_DEPTH = 16

_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v",
    "blank": " \\t",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "print": " -~",
    "graph": "!-~",
    "cntrl": "\\x00-\\x1f\\x7f",
    "xdigit": "0-9A-Fa-f",
}
_BACKSLASH = {
    "w": r"\w",
    "W": r"\W",
    "s": r"\s",
    "S": r"\S",
    "b": r"\b",
    "B": r"\B",
    "<": r"\b(?=\w)",
    ">": r"\b(?<=\w)",
    "`": r"\A",
    "'": r"\Z",
}


class RegexError(PygrubError):
    """A pattern regcomp would reject, or one too costly to run safely."""


def compile_ere(pattern: str) -> re.Pattern[str]:
    if len(pattern) > MAX_PATTERN:
        raise RegexError(f"regexp: pattern over {MAX_PATTERN} characters")
    translated = _Translator(pattern).translate()
    try:
        return re.compile(translated, re.DOTALL)
    except re.error as e:
        raise RegexError(f"regexp: invalid pattern: {e}") from None


def search(pattern: re.Pattern[str], subject: str) -> re.Match[str] | None:
    if len(subject) > MAX_SUBJECT:
        raise RegexError(f"regexp: text over {MAX_SUBJECT} characters")
    return pattern.search(subject)


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.repeats = 0

    def translate(self) -> str:
        out, _risky = self.alternation(0)
        if self.i < len(self.p):
            raise RegexError("regexp: unmatched ')'")
        return out

    def alternation(self, depth: int) -> tuple[str, bool]:
        """Branches up to ')' or the end; says whether it alternates or repeats inside."""
        branches = []
        risky = False
        while True:
            branch, branch_risky = self.branch(depth)
            branches.append(branch)
            risky = risky or branch_risky
            if self.i < len(self.p) and self.p[self.i] == "|":
                self.i += 1
                continue
            break
        return "|".join(branches), risky or len(branches) > 1

    def branch(self, depth: int) -> tuple[str, bool]:
        out = []
        risky = False
        while self.i < len(self.p) and self.p[self.i] not in "|)":
            atom, atom_risky = self.atom(depth)
            quantifier = self.quantifier()
            if quantifier:
                if atom_risky:
                    raise RegexError("regexp: a repeated group that repeats or alternates")
                if atom in ("^", "$", r"\Z"):
                    raise RegexError("regexp: repetition of an anchor")
                self.repeats += 1
                if self.repeats > MAX_REPEATS:
                    raise RegexError(f"regexp: over {MAX_REPEATS} repetitions")
                atom = f"(?:{atom}){quantifier}"
                risky = True
            risky = risky or atom_risky
            out.append(atom)
        return "".join(out), risky

    def atom(self, depth: int) -> tuple[str, bool]:
        char = self.p[self.i]
        self.i += 1
        if char == "(":
            if depth + 1 > MAX_GROUP_DEPTH:
                raise RegexError("regexp: groups nested too deep")
            inner, risky = self.alternation(depth + 1)
            if self.i >= len(self.p) or self.p[self.i] != ")":
                raise RegexError("regexp: unmatched '('")
            self.i += 1
            return f"({inner})", risky
        if char == "[":
            return self.bracket(), False
        if char == ".":
            return ".", False
        if char == "^":
            return "^", False
        if char == "$":
            return r"\Z", False
        if char == "\\":
            if self.i >= len(self.p):
                raise RegexError("regexp: trailing backslash")
            escaped = self.p[self.i]
            self.i += 1
            if escaped.isdigit():
                raise RegexError("regexp: back-references are not supported")
            return _BACKSLASH.get(escaped, re.escape(escaped)), False
        if char in "*+?{":
            raise RegexError(f"regexp: nothing to repeat before {char!r}")
        return re.escape(char), False

    def quantifier(self) -> str:
        if self.i >= len(self.p):
            return ""
        char = self.p[self.i]
        if char in "*+?":
            self.i += 1
            return char
        if char == "{":
            match = re.compile(r"\{([0-9]{1,3})(,([0-9]{0,3}))?\}").match(self.p, self.i)
            if match is None:
                raise RegexError("regexp: invalid repetition count")
            low = int(match.group(1))
            high = match.group(3)
            if high and int(high) < low:
                raise RegexError("regexp: invalid repetition count")
            self.i = match.end()
            return match.group()
        return ""

    def bracket(self) -> str:
        """A POSIX bracket expression: ']' first is literal, backslash is literal."""
        out = ["["]
        if self.i < len(self.p) and self.p[self.i] == "^":
            out.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= len(self.p):
                raise RegexError("regexp: unmatched '['")
            char = self.p[self.i]
            if char == "]" and not first:
                self.i += 1
                out.append("]")
                break
            first = False
            if char == "[" and self.p.startswith(("[:", "[=", "[."), self.i):
                kind = self.p[self.i + 1]
                close = self.p.find(kind + "]", self.i + 2)
                if close < 0:
                    raise RegexError("regexp: unterminated class in brackets")
                name = self.p[self.i + 2 : close]
                self.i = close + 2
                if kind == ":":
                    if name not in _CLASSES:
                        raise RegexError(f"regexp: unknown class [:{name[:20]}:]")
                    out.append(_CLASSES[name])
                elif len(name) == 1:
                    out.append(re.escape(name))
                else:
                    raise RegexError("regexp: collating elements are not supported")
                continue
            if char == "-" and out[-1] not in ("[", "^"):
                following = self.p[self.i + 1 : self.i + 2]
                out.append("-" if following and following != "]" else "\\-")
                self.i += 1
                continue
            out.append(re.escape(char))
            self.i += 1
        return "".join(out)
