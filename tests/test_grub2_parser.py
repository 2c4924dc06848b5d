"""The GRUB script lexer and parser, with GRUB's own parser (grub-script-check) as oracle."""

from __future__ import annotations

import re
import subprocess

import pytest
from corpus import corpus_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import require_tool

from pygrub.config import LoadContext
from pygrub.config.grub2 import evaluate_commands, load, session_of
from pygrub.config.grub2.lexer import (
    DQ,
    DQVAR,
    GETTEXT,
    SQ,
    TEXT,
    VAR,
    Lexer,
    Tok,
    config_source,
    script_source,
    split_word,
)
from pygrub.config.grub2.parser import Command, For, FunctionDef, If, While, parse_units


def grub_script_check(text: str, tmp_path) -> int | None:
    """The line grub-script-check reports a syntax error at, or None."""
    path = tmp_path / "script.cfg"
    path.write_text(text)
    proc = subprocess.run(
        [require_tool("grub-script-check"), str(path)], capture_output=True, text=True, timeout=10
    )
    match = re.search(r"Syntax error at line (\d+)", proc.stderr)
    return int(match.group(1)) if match else None


def first_error(text: str) -> str | None:
    """Our first syntax error, reading the text as grub-script-check reads its file."""
    # grub-script-check turns tabs and CRs into blanks and does not skip '#' lines.
    source = config_source(text.replace("\t", " ").replace("\r", " "), "t", skip_hash_lines=False)
    return next((unit.error for unit in parse_units(source, 64) if unit.error), None)


def tokens(text: str) -> list[tuple[Tok, str]]:
    lexer = Lexer(script_source(text, "t"))
    out = []
    while True:
        token = lexer.next()
        if token.kind is Tok.EOF:
            return out
        out.append((token.kind, token.text))


# -- lexer -------------------------------------------------------------------------------


def test_word_pieces():
    assert split_word('a"b$c d"e') == (
        (TEXT, "a"),
        (DQ, "b"),
        (DQVAR, "c"),
        (DQ, " d"),
        (TEXT, "e"),
    )
    assert split_word("${x}y'$z'") == ((VAR, "x"), (TEXT, "y"), (SQ, "$z"))
    assert split_word('""') == ((DQ, ""),)
    assert split_word('"\\$\\\\\\"\\a"') == ((DQ, '$\\"\\a'),)
    assert split_word("a\\\nb") == ((TEXT, "ab"),)
    assert split_word('$"hi $x"') == ((GETTEXT, "hi $x"),)
    assert split_word("$10$#$?$@") == ((VAR, "10"), (VAR, "#"), (VAR, "?"), (VAR, "@"))


def test_comments_keywords_and_operators():
    assert tokens("echo a#b #c\nif fi") == [
        (Tok.WORD, "echo"),
        (Tok.WORD, "a#b"),
        (Tok.NEWLINE, ""),
        (Tok.KEYWORD, "if"),
        (Tok.KEYWORD, "fi"),
        (Tok.NEWLINE, ""),
    ]
    # A comment runs to the end of its line even through an open quote (flex's tie rule).
    assert tokens("#don't\n")[0] == (Tok.NEWLINE, "")
    assert [kind for kind, _ in tokens("a || b")] == [Tok.WORD, Tok.BAD, Tok.WORD, Tok.NEWLINE]
    assert tokens("{a}") == [(Tok.LBR, ""), (Tok.WORD, "a"), (Tok.RBR, ""), (Tok.NEWLINE, "")]


def test_config_lines_skip_hash_lines_and_carriage_returns():
    source = config_source("a\r\n#skipped 'quote\nb\x00ignored\n", "cfg")
    assert source.text == "a\nb\n"
    assert source.line_numbers == (1, 3)


def test_multiline_quote_joins_lines():
    [unit] = list(parse_units(config_source("echo 'a\nb' c\n", "cfg"), 64))
    [command] = unit.nodes
    assert isinstance(command, Command)
    assert command.words[1].parts == ((SQ, "a\nb"),)


# -- parser ------------------------------------------------------------------------------


def parse(text: str):
    return list(parse_units(config_source(text, "cfg"), 64))


def test_compound_commands():
    units = parse(
        "if a; then b; elif c; then d; else e; fi\n"
        "for x in 1 2; do y; done\n"
        "while a\ndo b\ndone\n"
        "until a; do b; done\n"
        "function f\n{ a; }\n"
    )
    kinds = [type(unit.nodes[0]) for unit in units]
    assert kinds == [If, For, While, While, FunctionDef]
    assert len(units[0].nodes[0].branches) == 2
    assert units[3].nodes[0].until


def test_block_keeps_its_source_text():
    [unit] = parse("menuentry 'x' {\n  linux /k  a\n# comment line dropped by the reader\n  b }\n")
    block = unit.nodes[0].words[-1]
    assert block.parts[0][1] == "\n  linux /k  a\n  b "


def test_syntax_error_skips_to_the_next_line():
    units = parse("echo a\nfi; echo skipped\necho b\nif true; then\n echo c\n}\necho d\n")
    # The if unit breaks at '}' on line 6; reading resumes on line 7.
    assert [u.error is None for u in units] == [True, False, True, False, True]
    assert "cfg:2: syntax error" in units[1].error


def test_body_stops_at_the_first_broken_unit():
    text = 'menuentry m --source "linux /k a\necho x; ;\ninitrd /i"\n'
    menu = load(LoadContext("/grub.cfg", text))
    # Running a body stops at its first broken unit: initrd never runs.
    entry = menu.items[0]
    assert entry.kernel == "/k" and entry.initrds == []
    assert "syntax error" in entry.not_bootable
    edited = evaluate_commands(session_of(menu), "linux /k2 b\ninitrd /i2\n")
    assert (edited.kernel, edited.initrds, edited.args) == ("/k2", ["/i2"], "b")


def test_nesting_over_the_bound_is_a_broken_unit():
    deep = "if true; then " * 80 + "echo x" + "; fi" * 80
    [unit] = parse(deep + "\n")
    assert unit.error is not None and "nested over 64 levels" in unit.error


# -- GRUB's parser as the oracle ---------------------------------------------------------

VOCABULARY = [
    "echo", "a", "b", "if", "then", "else", "elif", "fi", "for", "x", "in", "do", "done",
    "{", "}", ";", "\n", "\n", "'", '"', "$x", "${x}", "$", "\\", "#", "||", "&&", "|", "<",
    ">", "[[", "]]", "function fn", "case", "esac", "select", "menuentry", "t", "\\\n",
    "'q'", '"q"', " ", " ", "a#b", "$1", '$"g"', ";;", "}x", "x{", '"$"', '"a$x b"',
]  # fmt: skip

_soup = st.lists(
    st.tuples(st.sampled_from(VOCABULARY), st.sampled_from(["", " ", " "])), max_size=16
).map(lambda parts: "".join(t if t in ("\n", " ") else t + sep for t, sep in parts))


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=_soup)
def test_syntax_errors_same_as_grub_script_check(text, tmp_path):
    """Whatever the token soup, we find a syntax error exactly when GRUB's parser does."""
    assert (first_error(text) is None) == (grub_script_check(text, tmp_path) is None)


@pytest.mark.parametrize("case", corpus_cases("grub2", "bls"))
def test_corpus_configs_parse_like_grub(case, tmp_path):
    if case is None:
        pytest.fail("the corpus is missing")
    for cfg in sorted(case.rglob("*.cfg")):
        text = cfg.read_text(errors="surrogateescape")
        assert (first_error(text) is None) == (grub_script_check(text, tmp_path) is None), cfg


def test_unknown_commands_are_logged_and_do_not_stop(tmp_path):
    menu = load(
        LoadContext("/grub.cfg", "false\nfrobnicate a\necho status=$?\nmenuentry m { linux /k; }\n")
    )
    assert session_of(menu).output == "status=0\n"
    assert menu.items[0].kernel == "/k"
