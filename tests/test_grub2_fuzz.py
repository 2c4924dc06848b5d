"""Hostile grub.cfg, grubenv, BLS and regexp input: a menu or one of pygrub's errors, quickly.

Every outcome must be a BootMenu or a PygrubError - never IndexError, RecursionError, a
hang or an unbounded allocation. The crashes these found are kept as named regressions.
"""

from __future__ import annotations

import pytest
from bounded import cpu_bounded
from hostfs import guest_of_dirs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import write_tree

from pygrub.config import LoadContext
from pygrub.config.grub2 import (
    ScriptLimits,
    evaluate_commands,
    load,
    load_with_limits,
    session_of,
)
from pygrub.config.grub2.bls import parse_entry, rpmvercmp, sort_newest_first
from pygrub.config.grub2.grubenv import SIGNATURE, parse_envblk
from pygrub.config.grub2.regex import RegexError, compile_ere, search
from pygrub.config.model import BootMenu
from pygrub.errors import CorruptError, LimitError, PygrubError

#: Small bounds keep each example fast; the named tests below use the real ones.
FAST = ScriptLimits(max_steps=20_000, max_entry_steps=2_000, max_script_chars=4 << 20)
SECONDS = 10.0

GRUBENV = SIGNATURE + b"saved_entry=1>0\nnext_entry=\nkernelopts=root=/dev/sda1 ro\n"
GRUBENV = GRUBENV + b"#" * (1024 - len(GRUBENV))


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    root = write_tree(
        tmp_path_factory.mktemp("fuzzvol"),
        {
            "boot/grub/grub.cfg": "source /boot/grub/grub.cfg\n",
            "boot/grub/grubenv": GRUBENV,
            "boot/grub/other.cfg": "menuentry other { linux /vmlinuz ro; }\nconfigfile /boot/grub/other.cfg\n",
            "boot/vmlinuz": b"kernel",
            "loader/entries/a-1.0-1.conf": "title A\nversion 1.0-1\nlinux /vmlinuz\noptions $kernelopts\n",
            "loader/entries/a-1.0-2.conf": "title B\nversion 1.0-2\nlinux /vmlinuz\ninitrd /i\n",
        },
    )
    guest, volumes = guest_of_dirs(("hd0,msdos1", root))
    return guest, volumes[0]


def evaluate(text: str, volume, limits: ScriptLimits = FAST) -> BootMenu | PygrubError:
    guest, vol = volume
    ctx = LoadContext("/boot/grub/grub.cfg", text, guest.filesystem(vol), vol, guest)
    with cpu_bounded(SECONDS):
        try:
            result: BootMenu | PygrubError = load_with_limits(ctx, limits)
        except PygrubError as e:
            result = e
    return result


VOCABULARY = [
    "set", "x=", "$x", "${x}", "default=", "\"0\"", "'1>0'", "menuentry", "submenu",
    "'t'", "--id", "--users", "--unrestricted", "--class", "{", "}", ";", "\n", "\n",
    "if", "then", "else", "elif", "fi", "for", "in", "do", "done", "while", "until",
    "function", "f", "true", "false", "[", "]", "-f", "-e", "=", "!", "linux", "initrd",
    "/vmlinuz", "multiboot", "module", "source", "configfile", "/boot/grub/grub.cfg",
    "/boot/grub/other.cfg", "load_env", "-f", "$prefix/grubenv", "search", "--file",
    "--set=root", "blscfg", "regexp", "'(a*)*b'", "break", "continue", "return", "shift",
    "setparams", "eval", "export", "unset", "$1", "$@", "\"$@\"", "$#", "$?", "(hd0,1)",
    "($root)", "boot", "exit", "\\", "\"", "'", "#", "||", "\x00", "\r", "é", "\udcff",
]  # fmt: skip

soup = st.lists(
    st.tuples(st.sampled_from(VOCABULARY), st.sampled_from([" ", " ", ""])), max_size=40
).map(lambda parts: "".join(token + sep for token, sep in parts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=soup)
def test_token_soup(text, volume):
    evaluate(text, volume)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes(data, volume):
    evaluate(data.decode("utf-8", "surrogateescape"), volume)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=400))
def test_random_text_and_edited_entries(text, volume):
    result = evaluate(text, volume)
    if isinstance(result, BootMenu):
        session = session_of(result)
        entry = evaluate_commands(session, text, "edited")
        assert entry.kernel is not None or entry.not_bootable


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(0, 300), kind=st.sampled_from(["if", "for", "while", "block", "sub"]))
def test_deep_nesting(depth, kind, volume):
    opening, closing = {
        "if": ("if true; then ", "; fi"),
        "for": ("for x in a; do ", "; done"),
        "while": ("while false; do ", "; done"),
        "block": ("menuentry m { ", " }"),
        "sub": ("submenu s { ", " }"),
    }[kind]
    text = opening * depth + "linux /vmlinuz" + closing * depth + "\n"
    evaluate(text, volume)


# -- named regressions and hostile classics, with the real bounds -----------------------

HOSTILE = {
    "infinite loop": "while true; do true; done\nmenuentry m { linux /k; }\n",
    "recursive function": "function f { f; }\nf\n",
    "mutual recursion": "function a { b; }\nfunction b { a; }\na\n",
    "source itself": "source /boot/grub/grub.cfg\n",
    "configfile itself": "configfile /boot/grub/grub.cfg\n",
    "eval itself": "function f { eval f; }\nf\n",
    "exponential variable": "set a=xx\nwhile true; do set a=$a$a; done\n",
    "huge for list": "set a=x\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do set a=\"$a $a\"; done\nfor w in $a; do true; done\n",
    "entry loops forever": "menuentry m { while true; do true; done; linux /k; }\nmenuentry n { linux /n; }\n",
    "many entries": "while true; do menuentry m { linux /k; }; done\n",
    "test parentheses": "[ " + "( " * 200 + "a" + " )" * 200 + " ]\nmenuentry m { linux /k; }\n",
    "submenu recursion": "function f { submenu s { f; }; }\nf\n",
    "dollar in quotes": 'echo "$ "\nmenuentry m { linux /k; }\n',
    "backslash at the end": "echo a\\",
    "eval syntax error": "eval if\nmenuentry m { linux /k; }\n",
    "many words": 'set a="' + "x " * 20_000 + '"\nfor w in $a; do true; done\n',
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_config(name, volume):
    result = evaluate(HOSTILE[name], volume, ScriptLimits())
    assert isinstance(result, (BootMenu, PygrubError))


def test_infinite_loop_is_a_limit_error(volume):
    result = evaluate(HOSTILE["infinite loop"], volume, ScriptLimits())
    assert isinstance(result, LimitError) and "commands run" in str(result)


def test_entry_that_loops_is_not_bootable_and_others_are(volume):
    result = evaluate(HOSTILE["entry loops forever"], volume, ScriptLimits())
    assert isinstance(result, BootMenu)
    assert "menu entry runs over" in result.items[0].not_bootable
    assert result.items[1].kernel == "/n"


def test_word_splitting_is_bounded(volume):
    result = evaluate(HOSTILE["many words"], volume, ScriptLimits())
    assert isinstance(result, LimitError) and "over 10000 arguments" in str(result)


def test_recursion_is_a_limit_error_not_a_crash(volume):
    for name in ("recursive function", "mutual recursion", "eval itself", "source itself"):
        result = evaluate(HOSTILE[name], volume, ScriptLimits())
        assert isinstance(result, LimitError), name
        assert "nested over 64 levels" in str(result)


def test_load_without_a_filesystem():
    menu = load(
        LoadContext("/boot/grub/grub.cfg", "source /x\nload_env\nmenuentry m { linux /k; }\n")
    )
    assert menu.items[0].kernel == "/k"


# -- grubenv -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([GRUBENV, SIGNATURE + b"a=b\\", SIGNATURE, SIGNATURE + b"x"]),
    flips=st.lists(st.tuples(st.integers(0, 1100), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 1100),
)
def test_grubenv_mutations(base, flips, cut):
    data = bytearray(base)
    for offset, value in flips:
        if offset < len(data):
            data[offset] = value
    try:
        pairs = parse_envblk(bytes(data[:cut]), "grubenv")
    except CorruptError as e:
        assert "offset 0" in str(e)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in pairs)


# -- BLS ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    files=st.lists(
        st.tuples(st.text(max_size=12), st.text(alphabet="abc 019.-~\t\n$_\r#", max_size=80)),
        max_size=8,
    )
)
def test_bls_entries_never_crash(files):
    entries = [parse_entry(name + ".conf", text) for name, text in files]
    ordered = sort_newest_first(entries)
    assert sorted(e.name for e in ordered) == sorted(e.name for e in entries)


@settings(max_examples=300, deadline=None)
@given(a=st.text(max_size=20), b=st.text(max_size=20))
def test_rpmvercmp_is_antisymmetric(a, b):
    assert rpmvercmp(a, b) == -rpmvercmp(b, a)


# -- regexp ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.text(alphabet="ab()[]^$.*+?{}|\\,:0129-", max_size=30),
    text=st.text("ab(", max_size=60),
)
def test_regexp_patterns(pattern, text):
    with cpu_bounded(2):
        try:
            search(compile_ere(pattern), text)
        except RegexError:
            pass


def test_regexp_refuses_catastrophic_patterns():
    for pattern in ("(a*)*b", "(a|aa)*b", "(a+)+$", ".*.*.*.*x", "(a)\\1"):
        with pytest.raises(RegexError):
            compile_ere(pattern)


def test_regexp_subject_is_bounded():
    with pytest.raises(RegexError):
        search(compile_ere("a"), "b" * 10_000)


def test_regexp_posix_classes_and_anchors():
    assert search(compile_ere("^[[:alpha:]]+-([[:digit:]]+)$"), "linux-42").group(1) == "42"
    assert search(compile_ere("a$"), "a\n") is None  # POSIX '$' is the very end
    assert search(compile_ere("[]a]"), "]") is not None
    assert search(compile_ere("[a\\]"), "\\") is not None  # backslash is literal in brackets
