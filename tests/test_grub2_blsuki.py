"""GRUB 2.14's own blscfg and uki (grub-core/commands/blsuki.c), and an ESP holding only UKIs.

Oracles: coreutils' ``sort -V`` for filevercmp (both are gnulib's filevercmp of 2022);
the bytes objcopy put in each UKI for what boots; ``bootctl list`` for the order of an
ESP with only UKIs. Entries are written as GRUB 2.14's manual and kernel-install write
them.
"""

from __future__ import annotations

import functools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hostfs import HostDirFilesystem
from imaging import make_ext, make_fat, make_partitioned, run, write_tree
from test_grub2_commands import load_dirs
from test_systemd_boot import bootctl_list
from ukitools import (
    DAMAGES,
    INITRD,
    KERNEL,
    UCODE,
    build_uki,
    damaged,
    full_sections,
    padded,
    run_pygrub,
)

from pygrub.config import LoadContext
from pygrub.config.grub2 import session_of
from pygrub.config.grub2.bls import expand_value, parse_entry
from pygrub.config.grub2.blsuki import filevercmp, greatest_first, is_default_entry
from pygrub.config.systemd_boot import load_ukis
from pygrub.errors import LimitError

# -- filevercmp against coreutils --------------------------------------------------------


def sort_v(names: list[str]) -> list[str]:
    out = run("sort", "-V", input=("\n".join(names) + "\n").encode())
    return out.decode().split("\n")[:-1]


def test_filevercmp_same_order_as_sort_v():
    """sort -V breaks ties bytewise; sorting the bytewise-sorted names stably does too."""
    rng = random.Random(214)
    alphabet = "0123456789ab.~-_Z"
    names = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10))) for _ in range(3000)}
    names |= {
        "fedora-6.10.0-1.fc41.x86_64.conf",
        "fedora-6.9.12-1.fc41.x86_64.conf",
        "fedora-6.10.0~rc7-1.fc41.x86_64.conf",
        "arch-linux.efi",
        "arch-linux-lts.efi",
        "debian-6.12.9-amd64.efi",
        "debian-6.12.10-amd64.efi",
        ".hidden.conf",
        ".conf",
        "a.tar.gz",
        "a.tar",
        "a-1.2.conf",
        "a-1.10.conf",
    }
    ordered = sorted(sorted(names), key=functools.cmp_to_key(filevercmp))
    assert ordered == sort_v(sorted(names))


def test_filevercmp_examples():
    assert filevercmp("linux-6.10.conf", "linux-6.9.conf") > 0
    assert filevercmp("x-1.0~rc1.efi", "x-1.0.efi") < 0
    assert filevercmp(".conf", "a.conf") < 0
    assert filevercmp("a01.conf", "a1.conf") == 0  # leading zeros: GRUB calls it a duplicate
    assert greatest_first(["a1.conf", "b.conf", "a01.conf"]) == [1, 0]


def test_is_default_entry_by_name_title_or_index():
    assert is_default_entry("x-1.conf", "x-1.conf", None, 3)
    assert not is_default_entry("x-1", "x-1.conf", None, 3)  # blsuki compares the file name
    assert is_default_entry("Fedora", "x-1.conf", "Fedora", 3)
    assert is_default_entry("3", "x.conf", None, 3) and is_default_entry("0x3", "x.conf", None, 3)
    assert is_default_entry("03", "x.conf", None, 3)  # strtol base 0: octal 3
    assert not is_default_entry("3a", "x.conf", None, 3)
    assert not is_default_entry("-1", "x.conf", None, 0)
    assert not is_default_entry("", "x.conf", "", 0) and not is_default_entry(None, "x", None, 0)


# -- reading entries ---------------------------------------------------------------------


def test_upstream_reading_rules_differ_from_red_hats():
    text = "title\tA B\noptions x\nversion   \nlinux /never\n"
    # Upstream cuts at the first blank of either kind; a value of blanks ends the file.
    assert parse_entry("e.conf", text, upstream=True).keyvals == [
        ("title", "A B"),
        ("options", "x"),
    ]
    # Red Hat's cuts at the first space, keeps the blank value and reads on.
    assert parse_entry("e.conf", text).keyvals == [
        ("title\tA", "B"),
        ("options", "x"),
        ("version", ""),
        ("linux", "/never"),
    ]


def test_upstream_expansion_has_no_escape():
    env = {"a": "1"}.get
    assert expand_value(r"x=\$a yy", env) == r"x=\$a yy"
    assert expand_value(r"x=\$a yy", env, escapes=False) == "x=\\1 yy"


ENTRY = """# /loader/entries/{name}.conf
title        Fedora Linux {v}
sort-key     fedora
machine-id   6a9857a393724b7a981ebb5b8495b9ea
version      {v}
options      root=UUID=6d3376e4 $extra quiet
architecture x64
linux        /6a9857a393724b7a981ebb5b8495b9ea/{v}/linux
initrd       /6a9857a393724b7a981ebb5b8495b9ea/{v}/initrd
"""


def fedora_tree(*versions: str, where: str = "loader/entries") -> dict[str, str]:
    return {f"{where}/fedora-{v}.conf": ENTRY.format(name=f"fedora-{v}", v=v) for v in versions}


def test_blscfg_with_options_is_upstreams(tmp_path):
    tree = fedora_tree("6.9.12", "6.10.0", "6.10.0~rc7")
    # Red Hat's second directory: upstream never reads it.
    tree.update(fedora_tree("7.0", where="boot/loader/entries"))
    # A hidden file is read too (blsuki only looks at the extension).
    tree["loader/entries/.old-5.0.conf"] = ENTRY.format(name=".old-5.0", v="5.0")
    cfg = "set extra=console=hvc0\nblscfg --enable-fallback\n"
    menu = load_dirs(tmp_path, cfg, [("hd0,gpt2", tree)])
    assert [item.id for item in menu.items] == [
        "fedora-6.10.0",
        "fedora-6.10.0~rc7",
        "fedora-6.9.12",
        ".old-5.0",
    ]
    first = menu.items[0]
    assert first.lines == [
        "linux /6a9857a393724b7a981ebb5b8495b9ea/6.10.0/linux root=UUID=6d3376e4 console=hvc0 quiet",
        "initrd /6a9857a393724b7a981ebb5b8495b9ea/6.10.0/initrd",
    ]
    assert first.kernel == "/6a9857a393724b7a981ebb5b8495b9ea/6.10.0/linux"
    assert first.args == "root=UUID=6d3376e4 console=hvc0 quiet"
    assert first.title == "Fedora Linux 6.10.0"


def test_bare_blscfg_is_red_hats_unless_blsuki_is_loaded(tmp_path):
    tree = fedora_tree("6.9.12", "6.10.0", where="boot/loader/entries")
    red_hat = load_dirs(tmp_path / "rh", "blscfg\n", [("hd0,gpt2", tree)])
    assert red_hat.items[0].lines[0] == "load_video"
    assert [i.id for i in red_hat.items] == ["fedora-6.10.0", "fedora-6.9.12"]
    upstream = load_dirs(tmp_path / "up", "insmod blsuki\nblscfg\n", [("hd0,gpt2", tree)])
    assert upstream.items == []  # only /loader/entries: nothing there


def test_grub_keys_and_variables(tmp_path):
    tree = {
        "loader/entries/a.conf": (
            "title Locked\nlinux /vmlinuz\noptions $kopts\ngrub_users $admins\n"
            "grub_class fedora\ngrub_class os\ngrub_hotkey x\ngrub_arg --first\ngrub_arg two\n"
        ),
        "loader/entries/b.conf": "title Open\nlinux /vmlinuz-b\ndevicetree /dtb-$dt\n",
        "loader/entries/c.conf": "title No kernel\noptions nothing\n",
    }
    cfg = (
        "set superusers=root\npassword root secret\nset kopts='ro quiet'\nset admins=alice\n"
        "set dt=x\nset blsuki_save_default=1\nblscfg -p /loader/entries\n"
    )
    menu = load_dirs(tmp_path, cfg, [("hd0,gpt2", tree)])
    assert [i.title for i in menu.items] == ["Open", "Locked"]  # c has no linux key
    definitions = {d.title: d for d in session_of(menu).final.menu}
    locked = definitions["Locked"]
    assert (locked.users, locked.hotkey, locked.classes) == ("alice ", "x", ["fedora", "os"])
    assert locked.args == ["Locked", "--first", "two"]
    assert menu.items[1].locked and not menu.items[0].locked
    assert menu.items[1].args == "ro quiet"
    assert menu.items[0].lines == ["savedefault", "linux /vmlinuz-b", "devicetree /dtb-x "]


def test_path_device_file_and_fallback(tmp_path):
    esp = fedora_tree("6.1", where="custom")
    boot = fedora_tree("6.2") | {"one/fedora-9.conf": ENTRY.format(name="fedora-9", v="9")}
    trees = [("hd0,gpt1", {}), ("hd0,gpt2", esp), ("hd0,gpt3", boot)]
    cases = {
        "blscfg --path (hd0,gpt2)/custom": ["fedora-6.1"],
        "blscfg --path=(hd0,gpt3)": ["fedora-6.2"],
        "set root=hd0,gpt3; blscfg -p /none": [],
        "set root=hd0,gpt3; blscfg -f -p /none": ["fedora-6.2"],
        "blscfg -f -p (hd0,gpt3)/none": ["fedora-6.2"],
        "blscfg --path (hd0,gpt3)/one/fedora-9.conf": ["fedora-9"],
        "blscfg --path (hd0,gpt3)/loader/entries x": [],
    }
    for index, (line, ids) in enumerate(cases.items()):
        menu = load_dirs(tmp_path / str(index), line + "\n", trees)
        assert [item.id for item in menu.items] == ids, line


def test_show_default_non_default_and_entry(tmp_path):
    tree = fedora_tree("1", "2", "3")
    trees = [("hd0,gpt2", tree)]
    cases = {
        "set default=fedora-2.conf; blscfg --show-default": ["fedora-2"],
        "set default=fedora-2.conf; blscfg --show-non-default": ["fedora-3", "fedora-1"],
        "set default='Fedora Linux 1'; blscfg -d": ["fedora-1"],
        "set default=0; blscfg -d": ["fedora-3"],
        "set default=fedora-2; blscfg -d": [],
        "blscfg --entry fedora-1.conf": ["fedora-1"],
        "blscfg -e fedora-1.conf -e fedora-3.conf": ["fedora-3"],
        "set default=2; blscfg -d -e fedora-3.conf": ["fedora-3", "fedora-1"],
    }
    for index, (line, ids) in enumerate(cases.items()):
        menu = load_dirs(tmp_path / str(index), line + "\n", trees)
        assert [item.id for item in menu.items] == ids, line


def test_default_names_the_entry_id(tmp_path):
    cfg = "set default=fedora-6.9\nblscfg --enable-fallback\n"
    menu = load_dirs(tmp_path, cfg, [("hd0,gpt2", fedora_tree("6.9", "6.10"))])
    assert menu.items[menu.default[0]].id == "fedora-6.9"


# -- hostile entries ---------------------------------------------------------------------


def test_garbage_huge_and_many_entries(tmp_path):
    rng = random.Random(7)
    tree: dict[str, str | bytes] = {
        f"loader/entries/g{i}.conf": bytes(rng.randrange(256) for _ in range(300))
        for i in range(50)
    }
    tree["loader/entries/huge.conf"] = "title Huge\nlinux /k\noptions " + "x" * (2 << 20)
    tree["loader/entries/dir.conf/x"] = "not a file"
    tree.update(fedora_tree("1"))
    menu = load_dirs(tmp_path, "blscfg -f\n", [("hd0,gpt2", tree)])
    assert "fedora-1" in [item.id for item in menu.items]
    assert "huge" not in [item.id for item in menu.items]


def test_looping_blscfg_is_bounded(tmp_path):
    tree = {f"loader/entries/e{i}.conf": "title t\n" + "#" * 60_000 + "\n" for i in range(40)}
    cfg = "while true; do blscfg -f; uki; done\n"
    with pytest.raises(LimitError, match="characters of script and boot entries read"):
        load_dirs(tmp_path, cfg, [("hd0,gpt1", tree)])


# -- uki ---------------------------------------------------------------------------------


OSREL = 'NAME="Fedora Linux"\nID=fedora\nPRETTY_NAME="Fedora Linux {v}"\nVERSION_ID={v}\n'


@functools.cache
def ukis(directory: Path) -> dict[str, bytes]:
    """Three UKIs with their own kernels and command lines, by file name."""
    directory.mkdir(parents=True, exist_ok=True)
    made = {}
    for v in ("41", "42", "9"):
        sections = full_sections(KERNEL[:1000] + v.encode())
        sections[".osrel"] = OSREL.format(v=v).encode()
        sections[".cmdline"] = f"root=LABEL=r{v} quiet\n".encode()
        made[f"fedora-{v}.efi"] = build_uki(directory, f"fedora-{v}.efi", sections).read_bytes()
    return made


def esp_disk(tmp: Path, tree: dict, root_tree: dict | None = None) -> Path:
    """A GPT disk: an EFI System Partition (mkfs.fat), after an ext4 root when given."""
    parts = [(make_fat(tmp, tree, bits=16, size_kb=16 * 1024, name="esp.img"), "U")]
    if root_tree is not None:
        parts.insert(0, (make_ext(tmp, root_tree, name="root.img"), "L"))
    return make_partitioned(tmp, parts, label="gpt")


def efi_tree(tmp: Path, grub_cfg: str | None, **extra: bytes | str) -> dict:
    tree: dict = {f"EFI/Linux/{name}": data for name, data in ukis(tmp / "ukis").items()}
    if grub_cfg is not None:
        tree["EFI/fedora/grub.cfg"] = grub_cfg
    tree.update({k.replace("__", "/"): v for k, v in extra.items()})
    return tree


def test_uki_boots_the_newest_by_file_name(tmp_path):
    image = esp_disk(tmp_path, efi_tree(tmp_path, "insmod blsuki\nuki\n"))
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    # filevercmp: fedora-42 > fedora-41 > fedora-9.
    assert Path(items["kernel"]).read_bytes() == KERNEL[:1000] + b"42"
    assert Path(items["ramdisk"]).read_bytes() == padded(UCODE, INITRD)
    assert items["args"] == "root=LABEL=r42 quiet"
    listing = subprocess.run(
        [sys.executable, "-m", "pygrub", "-l", "--output-format=json", str(image)],
        capture_output=True,
        timeout=120,
    )
    menu = json.loads(listing.stdout)
    titles = [item["title"] for item in menu["items"]]
    assert titles == ["Fedora Linux 42", "Fedora Linux 41", "Fedora Linux 9"]


def test_uki_default_options_and_chainloader_args(tmp_path):
    cfg = (
        "set default=fedora-41.efi\nuki --show-default --show-non-default\n"
        "menuentry 'by hand' {\n  chainloader /EFI/Linux/fedora-9.efi console=hvc0 $x\n}\n"
    )
    image = esp_disk(tmp_path, efi_tree(tmp_path, "set x=single\n" + cfg))
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert Path(items["kernel"]).read_bytes() == KERNEL[:1000] + b"41"
    # The stub boots with the arguments GRUB chainloads it with: the image's .cmdline.
    assert items["args"] == "root=LABEL=r41 quiet"
    proc, items = run_pygrub(image, tmp_path, "--entry=by hand")
    assert proc.returncode == 0, proc.stderr.decode()
    assert Path(items["kernel"]).read_bytes() == KERNEL[:1000] + b"9"
    assert items["args"] == "console=hvc0 single"


def test_uki_from_a_grub_cfg_on_the_root_finds_the_esp(tmp_path):
    """GRUB's image (and so uki's device) is on the ESP, partition 2; its config on the root."""
    root = {"boot/grub/grub.cfg": "uki --entry fedora-9.efi\n"}
    image = esp_disk(tmp_path, efi_tree(tmp_path, None), root)
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert Path(items["kernel"]).read_bytes() == KERNEL[:1000] + b"9"
    assert items["args"] == "root=LABEL=r9 quiet"


def test_uki_path_and_fallback(tmp_path):
    tree = efi_tree(tmp_path, None)
    cases = {
        "uki": ["fedora-42.efi", "fedora-41.efi", "fedora-9.efi"],
        "uki -p (hd0,gpt2)/nothing": [],
        "uki -f -p (hd0,gpt2)/nothing": ["fedora-42.efi", "fedora-41.efi", "fedora-9.efi"],
        "uki --path (hd0,gpt2)/EFI/Linux/fedora-9.efi": ["fedora-9.efi"],
        "set default=1; uki -n": ["fedora-42.efi", "fedora-9.efi"],
    }
    for index, (line, ids) in enumerate(cases.items()):
        menu = load_dirs(tmp_path / str(index), line + "\n", [("hd0,gpt2", tree)])
        assert [item.id for item in menu.items] == ids, line
        for item in menu.items:
            assert item.kind == "linux" and item.device == "hd0,gpt2" and item.kernel_range


def test_uki_without_pretty_name_or_with_big_texts_is_skipped(tmp_path):
    made = tmp_path / "made"
    made.mkdir()
    sections = full_sections()
    sections[".osrel"] = b"NAME=Nameless\n"
    nameless = build_uki(made, "a-nameless.efi", sections).read_bytes()
    sections = full_sections()
    sections[".cmdline"] = b"x" * 30_000
    big = build_uki(made, "b-big.efi", sections).read_bytes()
    tree = efi_tree(tmp_path, None, **{"EFI__Linux__z-nameless.efi": nameless})
    tree["EFI/Linux/z-big.efi"] = big
    menu = load_dirs(tmp_path / "l", "uki\n", [("hd0,gpt1", tree)])
    assert [item.id for item in menu.items] == ["fedora-42.efi", "fedora-41.efi", "fedora-9.efi"]
    notes = " ".join(menu_notes(menu))
    assert "no PRETTY_NAME" in notes and "over GRUB's 20480" in notes


def menu_notes(menu) -> list[str]:
    return session_of(menu).ctx.notes


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_uki_is_skipped_and_the_next_boots(tmp_path, damage):
    efi = tmp_path / "z-0.efi"
    efi.write_bytes(ukis(tmp_path / "ukis")["fedora-42.efi"])
    tree = efi_tree(tmp_path, "uki\n")
    tree["EFI/Linux/zz-broken.efi"] = damaged(efi, damage)
    image = esp_disk(tmp_path, tree)
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert Path(items["kernel"]).read_bytes() == KERNEL[:1000] + b"42"


def test_chainloader_of_a_damaged_uki_cannot_boot(tmp_path):
    efi = tmp_path / "x.efi"
    efi.write_bytes(ukis(tmp_path / "ukis")["fedora-42.efi"])
    cfg = "menuentry broken { chainloader /x.efi; }\n"
    image = esp_disk(tmp_path, {"EFI/fedora/grub.cfg": cfg, "x.efi": damaged(efi, "truncated")})
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 1 and not items
    err = proc.stderr.decode()
    assert err.startswith("pygrub: error: RuntimeError: ") and err.count("\n") == 1
    assert "chainloader" in err


# -- an ESP holding only UKIs ------------------------------------------------------------


def test_esp_with_only_ukis_boots_the_newest(tmp_path):
    image = esp_disk(tmp_path, efi_tree(tmp_path, None))
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    # systemd-boot's order: VERSION_ID 42 is the newest.
    assert Path(items["kernel"]).read_bytes() == KERNEL[:1000] + b"42"
    assert items["args"] == "root=LABEL=r42 quiet"
    listing = subprocess.run(
        [sys.executable, "-m", "pygrub", "-q", "-n", "--output-format=json", str(image)],
        capture_output=True,
        timeout=120,
    )
    chosen = json.loads(listing.stdout)
    assert (chosen["bootloader"], chosen["config"]) == ("uki", "/EFI/Linux/")


def test_esp_with_only_ukis_in_bootctls_order(tmp_path):
    tree = efi_tree(tmp_path, None)
    root = write_tree(tmp_path / "esp", tree)
    theirs, _default = bootctl_list(root, tmp_path / "mnt")
    menu = load_ukis(LoadContext("/EFI/Linux/", "", HostDirFilesystem(root)))
    assert [e.title for e in menu.items] == [e["showTitle"] for e in theirs]
    assert menu.format == "uki"


def test_esp_with_only_damaged_ukis_is_a_clean_error(tmp_path):
    efi = tmp_path / "x.efi"
    efi.write_bytes(ukis(tmp_path / "ukis")["fedora-42.efi"])
    image = esp_disk(tmp_path, {"EFI/Linux/x.efi": damaged(efi, "no PE signature")})
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 1 and not items
    err = proc.stderr.decode()
    assert err.startswith("pygrub: error: RuntimeError: ") and err.count("\n") == 1
    assert "/EFI/Linux/" in err and "no unified kernel image" in err
