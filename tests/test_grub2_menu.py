"""config/grub2/menu.py: from the evaluated config to the menu, pinned where mutation
testing showed no test looked (tests/mutation-survivors.md): the default's lookup and
its reason, fallbacks, the timeout's C int, an entry's lines, step limit and context,
and what a submenu gets."""

from __future__ import annotations

from grubtools import editenv
from test_grub2_commands import load_dirs
from ukitools import build_uki, full_sections, objdump_sections

from pygrub.config import LoadContext
from pygrub.config.grub2 import load
from pygrub.config.grub2.interp import ScriptLimits
from pygrub.config.model import Submenu

ENTRIES = "menuentry A --id a { linux /a; }\nmenuentry B { linux /b; }\nmenuentry C { linux /c; }\n"


def menu_of(text: str):
    return load(LoadContext("/g.cfg", text))


def test_no_entries_defaults_to_the_first_place():
    menu = menu_of("set timeout=5\n")
    assert (menu.items, menu.default) == ([], (0,))
    assert menu.default_reason == "no default set: the first entry"


def test_default_by_title_number_or_nothing_and_why():
    by_title = menu_of("set default=B\n" + ENTRIES)
    assert (by_title.default, by_title.default_reason) == ((1,), "default=B")
    # A title is looked up when no id matched: A's id is "a".
    by_title_of_an_entry_with_an_id = menu_of("set default=A\n" + ENTRIES)
    assert by_title_of_an_entry_with_an_id.default_reason == "default=A"
    by_number = menu_of("set default=2\n" + ENTRIES)
    assert (by_number.default, by_number.default_reason) == ((2,), "default=2")
    # One past the last entry is no entry: the first, and the reason says so.
    for spec in ("3", "nope"):
        menu = menu_of(f"set default={spec}\n" + ENTRIES)
        assert menu.default == (0,)
        assert menu.default_reason == f"default={spec} (matches no entry: the first one)"


def test_fallbacks_name_found_entries_once_in_order():
    menu = menu_of("set fallback='2 b 2 nope 3 B'\n" + ENTRIES)
    assert menu.fallback == [(2,), (1,)]


def test_timeout_is_a_c_int():
    """menu.c keeps the timeout in an int: from 2^31 on it is negative, i.e. wait."""
    assert menu_of("set timeout=2147483647\n" + ENTRIES).timeout == 2147483647.0
    for wraps in ("2147483648", "4294967295"):
        assert menu_of(f"set timeout={wraps}\n" + ENTRIES).timeout is None
    assert menu_of("set timeout=4294967296\n" + ENTRIES).timeout == 0.0


def test_an_entrys_lines_are_its_body_without_the_last_newline():
    text = "menuentry t { linux /k }\nmenuentry u {\n linux /k\n initrd /i\n}\n"
    menu = menu_of(text + "menuentry v { linux /k\n}\n")
    assert [item.lines for item in menu.items] == [
        ["setparams 't'", " linux /k "],
        ["setparams 'u'", "", " linux /k", " initrd /i"],
        ["setparams 'v'", " linux /k"],
    ]


def test_a_submenu_keeps_its_lines_and_is_not_locked():
    menu = menu_of("submenu s {\n menuentry t { linux /k }\n}\n")
    (sub,) = menu.items
    assert isinstance(sub, Submenu)
    assert sub.lines == ["setparams 's'", "", " menuentry t { linux /k }"]
    assert sub.locked is False
    text = 'set superusers=root\nsubmenu s --users "" {\n menuentry t { linux /k }\n}\n'
    assert menu_of(text).items[0].locked is True


def test_an_entry_has_its_own_step_limit_named_after_it():
    title = "T" * 70
    body = " linux /k\n while true; do true; done\n"
    (entry,) = menu_of(f"menuentry {title} {{\n{body}}}\n").items
    limit = ScriptLimits().max_entry_steps
    assert entry.kernel == "/k"
    assert entry.not_bootable == (
        f"menu entry {title[:60]!r}:4: menu entry runs over {limit} commands"
    )


def test_an_entry_runs_with_its_arguments_and_a_menu_of_its_own():
    """The entry's title and extra words are $1, $2... (setparams); a menuentry inside a
    body goes to the body's own menu, and the entry still boots what it loaded."""
    text = "menuentry t a1 {\n menuentry inner { linux /x }\n linux /k $2 $1\n}\n"
    (entry,) = menu_of(text).items
    assert (entry.kernel, entry.args, entry.not_bootable) == ("/k", "a1 t", None)


def test_a_configfile_menu_in_an_entry_names_its_path_cut_at_200(tmp_path):
    long_dir = "d" * 120 + "/" + "e" * 120
    path = f"/{long_dir}/x.cfg"
    text = f"menuentry t {{\n configfile {path}\n}}\n"
    tree = {f"{long_dir}/x.cfg": "menuentry other { linux /o }\n"}
    (entry,) = load_dirs(tmp_path, text, [("hd0,msdos1", tree)]).items
    assert entry.not_bootable == f"opens another menu ({path[:200]})"


def test_only_the_default_submenu_gets_the_rest_of_default():
    text = (
        "set default='1>b'\n"
        'submenu s { menuentry "seen [$default]" { linux /s } }\n'
        "submenu t { menuentry a { linux /a }\n menuentry b { linux /b } }\n"
    )
    menu = menu_of(text)
    assert menu.default == (1, 1)
    assert menu.items[0].items[0].title == "seen []"


def test_a_default_empty_submenu_is_the_default_itself():
    menu = menu_of("set default=1\nmenuentry a { linux /a }\nsubmenu s { set x=1 }\n")
    assert menu.default == (1,)
    assert menu.items[1].items == []


def test_a_menu_entry_of_a_uki_keeps_its_byte_ranges(tmp_path):
    uki = build_uki(tmp_path, "u.efi", full_sections())
    sections = objdump_sections(uki)
    text = "menuentry u { chainloader /EFI/Linux/u.efi }\n"
    (entry,) = load_dirs(
        tmp_path, text, [("hd0,gpt1", {"EFI/Linux/u.efi": uki.read_bytes()})]
    ).items
    assert entry.kernel_range == sections[".linux"]
    assert entry.initrd_ranges == [sections[".ucode"], sections[".initrd"]]


def test_the_reason_names_next_entry_before_saved_entry(tmp_path):
    """Both grubenv values equal $default: next_entry is the one to name, whatever the
    file's order; and saved_entry before another variable that has the same value."""
    cases = (
        ("next_entry", {"saved_entry": "b", "next_entry": "b"}),
        ("saved_entry", {"other": "b", "saved_entry": "b"}),
    )
    for var, values in cases:
        env = editenv(tmp_path / var / "grubenv", **values)
        text = f"load_env\nset default=${var}\n" + ENTRIES.replace("B {", "b {")
        tree = {"boot/grub/grub.cfg": text, "boot/grub/grubenv": env}
        menu = load_dirs(tmp_path / var, text, [("hd0,msdos1", tree)])
        assert menu.default == (1,)
        assert menu.default_reason == f"{var}=b from /boot/grub/grubenv"
