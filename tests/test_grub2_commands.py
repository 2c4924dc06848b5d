"""GRUB 2 commands one by one: BLS, search/probe, options, menus, defaults, passwords."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest
from hostfs import guest_of_dirs
from imaging import run, write_tree
from ukitools import build_uki, full_sections, objdump_sections

from pygrub.config import LoadContext
from pygrub.config.grub2 import evaluate_commands, load, session_of
from pygrub.config.grub2.bls import expand_value, parse_entry, rpmvercmp
from pygrub.config.grub2.options import OPTIONAL, REQUIRED, Opt, parse_options
from pygrub.config.model import LINUX, MULTIBOOT, BootEntry, Submenu


def load_dirs(tmp_path, text, trees, config="/boot/grub/grub.cfg", uuids=None, labels=None):
    """Load ``text`` as the config of the first volume; trees: [(grub name, tree)]."""
    dirs = [(name, write_tree(tmp_path / name.replace(",", "_"), tree)) for name, tree in trees]
    guest, volumes = guest_of_dirs(*dirs)
    for volume in volumes:
        fs = guest.filesystem(volume)
        fs.uuid = (uuids or {}).get(volume.grub_name)
        fs.label = (labels or {}).get(volume.grub_name)
    fs = guest.filesystem(volumes[0])
    return load(LoadContext(config, text, fs, volumes[0], guest))


def output(menu) -> str:
    return session_of(menu).output


# -- rpmvercmp against rpm itself --------------------------------------------------------


def test_rpmvercmp_same_as_rpm():
    """Our rpmvercmp against rpm's own (rpm.vercmp), on a few thousand random versions.

    '-' stays out: rpm.vercmp splits version-release there, GRUB's vercmp does not.
    """
    rng = random.Random(2024)
    alphabet = "0123456789abz.~_+"
    pairs = []
    for _ in range(3000):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        b = (
            a
            if rng.random() < 0.1
            else "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        )
        pairs.append((a, b))
    calls = "".join(f"t[#t+1]=rpm.vercmp({json.dumps(a)}, {json.dumps(b)}) " for a, b in pairs)
    out = run("rpm", "--eval", "%{lua: local t = {} " + calls + 'print(table.concat(t, " "))}')
    assert [rpmvercmp(a, b) for a, b in pairs] == [int(x) for x in out.split()]


def test_rpmvercmp_examples():
    assert rpmvercmp("4.18.0-240.15.1.el8_3", "4.18.0-240.1.1.el8_3") == 1
    assert rpmvercmp("1.0~rc1", "1.0") == -1
    assert rpmvercmp("1.01", "1.1") == 0
    assert rpmvercmp("2a", "2.0") == -1


# -- BLS ---------------------------------------------------------------------------------


def test_bls_file_reading_rules():
    entry = parse_entry(
        "x-1.conf",
        "  # comment\ntitle  Some  Title\r\noptions a\toptions b\noptions second\nkey\nlinux /never\n",
    )
    assert entry.name == "x-1"
    # The first space splits key and value; "key" without a value ends the file.
    assert entry.keyvals == [
        ("title", "Some  Title"),
        ("options", "a\toptions b"),
        ("options", "second"),
    ]
    assert entry.get("options") == "a\toptions b"
    assert parse_entry("y.conf", "title t\n\nlinux /k\n").get("linux") is None


def test_bls_options_expansion_keeps_grub_quirks():
    env = {"kernelopts": "root=/dev/sda1 ro", "tuned": ""}.get
    assert expand_value("$kernelopts $tuned $unset quiet", env) == "root=/dev/sda1 ro  quiet"
    # A one-character literal before '$' or at the very end is dropped by GRUB's loop.
    assert expand_value("$kernelopts 3", env) == "root=/dev/sda1 ro "
    assert expand_value("ab", env) == "ab"
    assert expand_value("a", env) is None


def test_blscfg_entries_blsdir_and_fallback(tmp_path):
    entry = "title {t}\nversion {v}\nlinux /vmlinuz-{v}\ninitrd /initramfs-{v}.img\ninitrd /extra.img\noptions $opts root=x\ngrub_class kernel\ngrub_arg --unrestricted\ngrub_hotkey k\n"
    tree = {
        f"boot/loader/entries/m-{v}.conf": entry.format(t=f"Linux {v}", v=v)
        for v in ("5.9.1", "5.10.0", "5.9.10")
    }
    tree["custom/entries/z-1.conf"] = entry.format(t="Custom", v="1")
    tree["boot/loader/entries/.hidden.conf"] = entry.format(t="Hidden", v="9")
    tree["boot/loader/entries/notes.txt"] = "title nope\n"
    text = (
        "set opts=quiet\nblscfg\nset blsdir=/custom/entries\nblscfg\nmenuentry last { linux /l; }\n"
    )
    menu = load_dirs(tmp_path, text, [("hd0,msdos1", tree)])
    assert [item.title for item in menu.items] == [
        "Linux 5.10.0",
        "Linux 5.9.10",
        "Linux 5.9.1",
        "Custom",
        "last",
    ]
    first = menu.items[0]
    assert (first.id, first.kernel, first.initrds, first.args) == (
        "m-5.10.0",
        "/vmlinuz-5.10.0",
        ["/initramfs-5.10.0.img", "/extra.img"],
        "quiet root=x",
    )
    assert first.lines[3] == "linux ($root)/vmlinuz-5.10.0 quiet root=x"
    assert first.device == "hd0,msdos1"


def test_bls_sorts_by_file_name_when_a_version_is_missing(tmp_path):
    tree = {
        "loader/entries/m-2.0.conf": "title A\nlinux /a\n",
        "loader/entries/m-10.0.conf": "title B\nversion 1\nlinux /b\n",
    }
    menu = load_dirs(tmp_path, "blscfg\n", [("hd0,msdos1", tree)])
    assert [item.title for item in menu.items] == ["B", "A"]


# -- search and probe --------------------------------------------------------------------


def test_search_by_uuid_label_file_with_hints(tmp_path):
    text = """
search --no-floppy --fs-uuid --set=root ABCD-0001
echo root=$root
search --label BOOT --set found
echo label=$found
search -f /marker -s
echo file=$root
search --file /marker --set=m --hint=hd0,gpt3 --hint-bios=hd0,gpt9
echo hinted=$m
search.fs_uuid abcd-0001 lower
echo lower=$lower
search --fs-uuid nothing --set=root
echo missing=$? root=$root
probe --set u --fs-uuid (hd0,gpt2)
probe -s fs -f hd0,gpt2
probe --set l --label hd0,gpt3
echo probe=$u,$fs,$l
"""
    trees = [
        ("hd0,gpt1", {"boot/grub/grub.cfg": ""}),
        ("hd0,gpt2", {"marker": "x"}),
        ("hd0,gpt3", {"marker": "y"}),
    ]
    menu = load_dirs(
        tmp_path,
        text,
        trees,
        uuids={"hd0,gpt2": "ABCD-0001"},
        labels={"hd0,gpt3": "BOOT"},
    )
    assert output(menu).splitlines() == [
        "root=hd0,gpt2",
        "label=hd0,gpt3",
        "file=hd0,gpt2",
        "hinted=hd0,gpt3",
        "lower=hd0,gpt2",
        "missing=5 root=hd0,gpt2",
        "probe=ABCD-0001,hostdir,BOOT",
    ]


def test_devices_map_to_volumes_and_unknown_devices_fall_back(tmp_path):
    text = """
menuentry a { linux (hd0,gpt2)/vmlinuz x; initrd (hd0,gpt2)/initrd; }
menuentry b { set root='(hd0,2)'; linux /vmlinuz; }
menuentry c { set root=lvm/vg-root; linux /vmlinuz; }
if [ -f (hd0,gpt2)/vmlinuz ]; then echo on-gpt2; fi
if [ -f (hd7,gpt1)/boot/grub/grub.cfg ]; then echo unknown-device-is-home; fi
if [ -f (hd0,gpt2)/boot/grub/grub.cfg ]; then echo wrong; fi
"""
    trees = [("hd0,gpt1", {"boot/grub/grub.cfg": ""}), ("hd0,gpt2", {"vmlinuz": "k"})]
    menu = load_dirs(tmp_path, text, trees)
    a, b, c = menu.items
    assert (a.device, a.kernel, a.initrds, a.args) == ("hd0,gpt2", "/vmlinuz", ["/initrd"], "x")
    assert (b.device, c.device) == ("hd0,2", "lvm/vg-root")
    assert output(menu).splitlines() == ["on-gpt2", "unknown-device-is-home"]


# -- options and menu entries ------------------------------------------------------------


def test_option_parsing_like_grub():
    options = (Opt("users", None, OPTIONAL), Opt("id", None, REQUIRED), Opt("set", "s", OPTIONAL))
    assert parse_options(["--users", "--id", "x", "t"], options, accept_dash=True) == (
        {"users": [None], "id": ["x"]},
        ["t"],
    )
    assert parse_options(["--id=y", "-z", "--other", "-"], options, accept_dash=True) == (
        {"id": ["y"]},
        ["-z", "--other", "-"],
    )
    assert parse_options(["-s", "var", "-s", "-x"], (Opt("set", "s", OPTIONAL), Opt("x", "x")))[
        0
    ] == {
        "set": [None],
        "x": [None],
    }


def test_menuentry_arguments_and_options(tmp_path):
    text = """
menuentry 'Title' --class rhel fedora --hotkey=x $menuentry_id_option 'my-id' {
  echo "1=$1 2=$2 #=$# chosen=$chosen"
  linux /k $2
}
menuentry 'Second' --users --id second extra1 "extra 2" {
  linux /k "$3"
}
menuentry --unrestricted 'Third' {
  linux /k
}
submenu 'Sub' --id sub {
  menuentry 'Inner' --id inner { echo "inner chosen=$chosen"; linux /k; }
}
"""
    menu = load(LoadContext("/boot/grub/grub.cfg", "menuentry_id_option=--id\n" + text))
    first, second, third, sub = menu.items
    assert (first.title, first.id, first.args) == ("Title", "my-id", "fedora")
    assert (second.id, second.args) == ("second", "extra 2")
    assert third.title == "Third"
    assert isinstance(sub, Submenu) and sub.items[0].id == "inner"
    assert "1=Title 2=fedora #=2 chosen=my-id" in output(menu)
    assert "inner chosen=sub>inner" in output(menu)


def test_hidden_entries_do_not_count(tmp_path):
    text = "hiddenentry 'H' { linux /h; }\nmenuentry 'A' { linux /a; }\nset default=0\n"
    menu = load(LoadContext("/boot/grub/grub.cfg", text))
    assert [item.title for item in menu.items] == ["A"]


def test_superusers_lock_restricted_entries():
    text = """
set superusers="root,admin"
password_pbkdf2 admin grub.pbkdf2.sha512.10000.AA.BB
menuentry open --unrestricted { linux /a; }
menuentry users --users alice { linux /b; }
menuentry default { linux /c; }
"""
    menu = load(LoadContext("/boot/grub/grub.cfg", text))
    assert [item.locked for item in menu.items] == [False, True, True]
    assert menu.password.kind == "pbkdf2"
    assert menu.password.users == ("root", "admin")
    no_superusers = load(LoadContext("/g.cfg", "menuentry m { linux /a; }\n"))
    assert not no_superusers.items[0].locked and no_superusers.password is None


# -- default, fallback, timeout ----------------------------------------------------------


def test_fallback_and_timeout():
    text = """
set default=2
set fallback="0 b 9"
set timeout=7
set timeout_style=countdown
menuentry a { linux /a; }
menuentry b { linux /b; }
menuentry c { chainloader +1; }
"""
    menu = load(LoadContext("/g.cfg", text))
    assert menu.default == (2,)
    assert menu.fallback == [(0,), (1,)]
    assert (menu.timeout, menu.timeout_style) == (7.0, "countdown")
    assert menu.items[2].kind == "chainloader"
    waiting = load(
        LoadContext(
            "/g.cfg", "set timeout=-1\nset timeout_style=hidden\nmenuentry a { linux /a; }\n"
        )
    )
    assert (waiting.timeout, waiting.timeout_style) == (None, "menu")


def test_default_is_saved_entry_from_load_env_whitelist(tmp_path):
    env = tmp_path / "env" / "grubenv"
    env.parent.mkdir()
    run("grub-editenv", env, "create")
    run("grub-editenv", env, "set", "saved_entry=b", "other=1")
    text = "load_env -f $prefix/grubenv saved_entry\nset default=$saved_entry\necho other=[$other]\nmenuentry a { linux /a; }\nmenuentry b { linux /b; }\n"
    menu = load_dirs(
        tmp_path,
        text,
        [("hd0,msdos1", {"boot/grub/grub.cfg": text, "boot/grub/grubenv": env.read_bytes()})],
    )
    assert menu.default == (1,)
    assert menu.default_reason == "saved_entry=b from /boot/grub/grubenv"
    assert output(menu) == "other=[]\n"


def test_configfile_replaces_the_menu_and_its_context(tmp_path):
    top = "set shown=top\nexport shown\nset hidden=top\nmenuentry old { linux /old; }\nconfigfile /boot/grub/next.cfg\nmenuentry never { linux /never; }\n"
    nested = 'menuentry "new $shown [$hidden]" { linux /new; }\n'
    menu = load_dirs(tmp_path, top, [("hd0,msdos1", {"boot/grub/next.cfg": nested})])
    assert [item.title for item in menu.items] == ["new top []"]


def test_boot_at_the_top_level_boots_what_is_loaded():
    menu = load(LoadContext("/g.cfg", "menuentry m { linux /m; }\nlinux /direct a b\nboot\n"))
    assert menu.default == (0,)
    assert (menu.items[0].kernel, menu.items[0].args) == ("/direct", "a b")
    assert menu.default_reason == "/g.cfg runs boot itself"


def test_boot_at_the_top_level_keeps_all_it_loaded_and_moves_the_fallbacks_down():
    text = (
        "set fallback='1 0'\nmenuentry m { linux /m; }\nmenuentry n { linux /n; }\n"
        "linux (hd0)/direct a b\ninitrd /i1 /i2\nboot\n"
    )
    menu = load(LoadContext("/g.cfg", text))
    assert menu.items[0] == BootEntry(
        title="(booted by /g.cfg itself)",
        kernel="/direct",
        initrds=["/i1", "/i2"],
        args="a b",
        device="hd0",
        kind=LINUX,
    )
    # The entries the fallback named are one further down now.
    assert (menu.default, menu.fallback) == ((0,), [(2,), (1,)])
    xen = load(LoadContext("/g.cfg", "multiboot /xen.gz\nboot\n")).items[0]
    assert (xen.kind, xen.kernel, xen.not_bootable) == (MULTIBOOT, "/xen.gz", None)


def empty_linux(uki: Path) -> bytes:
    """The UKI with its .linux section's sizes (VirtualSize, SizeOfRawData) set to 0."""
    data = bytearray(uki.read_bytes())
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    count, optional = struct.unpack_from("<H12xH", data, pe + 6)
    table = pe + 24 + optional
    for header in range(table, table + 40 * count, 40):
        if data[header : header + 8].rstrip(b"\0") == b".linux":
            struct.pack_into("<I", data, header + 8, 0)
            struct.pack_into("<I", data, header + 16, 0)
    return bytes(data)


def test_boot_at_the_top_level_of_a_uki_boots_its_sections(tmp_path):
    """``chainloader`` of a UKI then ``boot``: the kernel and initrds are byte ranges of
    the one file, and an empty .linux is why it cannot boot."""
    uki = build_uki(tmp_path, "u.efi", full_sections())
    tree = {"EFI/Linux/u.efi": uki.read_bytes(), "EFI/Linux/e.efi": empty_linux(uki)}
    sections = objdump_sections(uki)
    for name, failure in (("u", None), ("e", "/EFI/Linux/e.efi: the .linux section is empty")):
        text = f"menuentry m {{ linux /m; }}\nchainloader /EFI/Linux/{name}.efi\nboot\n"
        booted = load_dirs(tmp_path / name, text, [("hd0,gpt1", tree)]).items[0]
        assert (booted.kernel, booted.device, booted.kind) == (
            f"/EFI/Linux/{name}.efi",
            "hd0,gpt1",
            LINUX,
        )
        assert booted.not_bootable == failure
        assert booted.kernel_range == (
            sections[".linux"][0],
            0 if failure else sections[".linux"][1],
        )
        assert booted.initrd_ranges == [sections[".ucode"], sections[".initrd"]]
        assert booted.initrds == [booted.kernel] * 2


def test_a_submenu_runs_with_its_title_chosen_timeout_and_exports(tmp_path):
    """Entering a submenu (menu.c): a new context with only the exported variables,
    $chosen set and exported, timeout=0 (it is on the auto-boot path), its arguments as $1."""
    text = """set a=1
export a
set b=2
set timeout=5
submenu S --id s {
  menuentry "$1 t=$timeout c=$chosen a=$a b=$b" { linux /k; }
  submenu T { menuentry "a=$a c=$chosen" { linux /k; } }
}
submenu R --id r { configfile /n.cfg; }
"""
    nested = 'menuentry "in n.cfg c=$chosen a=$a" { linux /k; }\n'
    menu = load_dirs(tmp_path, text, [("hd0", {"n.cfg": nested})])
    s, r = menu.items
    first, t = s.items
    assert first.title == "S t=0 c=s a=1 b="
    assert [item.title for item in t.items] == ["a=1 c=s>T"]
    assert [item.title for item in r.items] == ["in n.cfg c=r a=1"]


def test_an_endless_submenu_body_stops_at_the_entry_step_limit():
    """Its own 20,000-command limit, not the session's 300,000: the entry after it still
    has commands left to run."""
    text = (
        "submenu S {\n menuentry one { linux /k; }\n while true; do true; done\n"
        " menuentry two { linux /k; }\n}\nmenuentry after { linux /a; }\n"
    )
    submenu, after = load(LoadContext("/g.cfg", text)).items
    assert [item.title for item in submenu.items] == ["one"]
    assert (after.kernel, after.not_bootable) == ("/a", None)


def test_entries_that_load_no_linux_kernel():
    text = """
menuentry xen { multiboot /xen.gz dom0_mem=1G; module /vmlinuz root=/dev/sda; module --nounzip /initrd; }
menuentry fw { fwsetup; }
menuentry none { echo nothing; }
menuentry bad { initrd /i; }
menuentry bsd { kfreebsd /boot/kernel; }
"""
    xen, fw, none, bad, bsd = load(LoadContext("/g.cfg", text)).items
    assert (xen.kind, xen.kernel, xen.args, xen.not_bootable) == (
        "multiboot",
        "/xen.gz",
        "dom0_mem=1G",
        None,
    )
    assert fw.not_bootable == "runs fwsetup"
    assert none.not_bootable == "loads no kernel"
    assert bad.not_bootable == "loads no kernel"
    assert bsd.not_bootable == "loads kfreebsd"


def test_evaluate_commands_uses_the_final_environment():
    menu = load(LoadContext("/g.cfg", "set opts='quiet splash'\nmenuentry m { linux /m $opts; }\n"))
    session = session_of(menu)
    entry = evaluate_commands(
        session, "setparams 'Edited' x\nlinux /vmlinuz $opts $1 $2\ninitrd /a /b\n"
    )
    assert (entry.kernel, entry.args, entry.initrds) == (
        "/vmlinuz",
        "quiet splash Edited x",
        ["/a", "/b"],
    )
    # The final environment itself is untouched by evaluations.
    again = evaluate_commands(session, "set opts=changed\nlinux /v $opts\n")
    assert again.args == "changed"
    assert menu.items[0].args == "quiet splash"
    assert evaluate_commands(session, "linux /v $opts\n").args == "quiet splash"


def test_preset_variables():
    text = 'echo "$root|$prefix|$config_file|$config_directory|$grub_platform|$grub_cpu|$feature_timeout_style"\n'
    menu = load(LoadContext("/boot/grub2/grub.cfg", text))
    assert (
        output(menu)
        == "hd0|(hd0)/boot/grub2|(hd0)/boot/grub2/grub.cfg|(hd0)/boot/grub2|xen|x86_64|y\n"
    )


@pytest.mark.parametrize(
    "line, args",
    [
        (
            "linux /k inst.stage2=hd:LABEL=CentOS\\x207\\x20x86_64 a\\ b",
            "inst.stage2=hd:LABEL=CentOS\\x207\\x20x86_64 a b",
        ),
        ('linux /k "" x', " x"),
        ("linux /k ${unset} x   y", "x y"),
        ('linux /k initrd=/x "q\\"uote"', 'initrd=/x q"uote'),
    ],
)
def test_kernel_arguments(line, args):
    menu = load(LoadContext("/g.cfg", f"menuentry m {{ {line}; }}\n"))
    assert menu.items[0].args == args
