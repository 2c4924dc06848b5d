"""LILO's /etc/lilo.conf.

Configs are written as liloconfig, Red Hat's installer and Gentoo handbooks write them;
Xen's LiloConf is the oracle in the part of the syntax it reads the way LILO does.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys

import pytest
from corpus import corpus_cases, load_expected
from hostfs import HostDirFilesystem, guest_of_dirs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import write_tree
from xen import XEN_PYTHON_LIB, require_xen

from pygrub.boot import plan_boot
from pygrub.config import LoadContext, find_menu, lilo
from pygrub.config.model import CHAINLOADER, LINUX, BootEntry, BootMenu
from pygrub.errors import CorruptError, LimitError, PygrubError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_text(text: str, fs=None) -> BootMenu:
    return lilo.load(LoadContext("/etc/lilo.conf", text, fs))


def default_entry(menu: BootMenu) -> BootEntry:
    item = menu.item_at(menu.default)
    assert isinstance(item, BootEntry)
    return item


@pytest.mark.parametrize("case", corpus_cases("lilo"))
def test_corpus_case(case, tmp_path):
    expected = load_expected(case)
    root = tmp_path / "fs"
    shutil.copytree(case, root, ignore=shutil.ignore_patterns("expected.json"))
    for entry in expected["entries"]:
        for path in [entry["kernel"], *entry["initrd"]]:
            write_tree(root, {path: path})
    guest, volumes = guest_of_dirs(("hd0,msdos1", root))
    menu, _ = find_menu(guest, volumes[0], guest.filesystem(volumes[0]))
    assert menu is not None and menu.config_path == "/etc/lilo.conf"
    assert list(menu.default) == expected["default_path"]
    assert len(menu.items) == len(expected["entries"])
    for mine, want in zip(menu.items, expected["entries"], strict=True):
        assert (mine.title, mine.kernel, mine.initrds, mine.args) == (
            want["title"],
            want["kernel"],
            want["initrd"],
            want["args"],
        )
    plan = plan_boot(guest)
    want = expected["default"]
    assert plan.kernel.path == want["kernel"]
    assert [r.path for r in plan.initrds] == want["initrd"]
    assert plan.args == want["args"]


REDHAT = """\
boot=/dev/hda
map=/boot/map
install=/boot/boot.b
prompt
timeout=50
message=/boot/message
lba32
default=linux

image=/boot/vmlinuz-2.4.20-8
\tlabel=linux
\tinitrd=/boot/initrd-2.4.20-8.img
\tread-only
\troot=LABEL=/
\tappend="hdc=ide-scsi"

other=/dev/hda1
\toptional
\tlabel=DOS
"""


def test_red_hat_installer_style():
    menu = load_text(REDHAT)
    entry = default_entry(menu)
    assert (entry.title, entry.kernel) == ("linux", "/boot/vmlinuz-2.4.20-8")
    assert entry.initrds == ["/boot/initrd-2.4.20-8.img"]
    assert entry.args == "hdc=ide-scsi root=LABEL=/ ro"
    assert menu.timeout == 5.0 and menu.format == "lilo"
    dos = menu.items[1]
    assert dos.kind == CHAINLOADER and dos.not_bootable and dos.kernel is None


def test_globals_are_defaults_for_images():
    menu = load_text(
        'root=/dev/sda1\nread-only\nappend="console=ttyS0"\ninitrd=/boot/initrd\n'
        "image=/boot/a\n label=a\n"
        "image=/boot/b\n label=b\n root=/dev/sda2\n read-write\n append=quiet\n"
        "  initrd=/boot/initrd-b\n"
    )
    a, b = menu.items
    assert (a.args, a.initrds) == ("console=ttyS0 root=/dev/sda1 ro", ["/boot/initrd"])
    assert (b.args, b.initrds) == ("quiet root=/dev/sda2 rw", ["/boot/initrd-b"])


def test_addappend_and_literal():
    menu = load_text(
        'append="console=ttyS0"\n'
        'image=/a\n label=a\n addappend="nomodeset"\n root=/dev/sda1\n'
        'image=/b\n label=b\n literal="init=/bin/sh"\n root=/dev/sda1\n read-only\n'
    )
    assert [e.args for e in menu.items] == [
        "console=ttyS0 nomodeset root=/dev/sda1",
        "init=/bin/sh",
    ]


def test_syntax_quotes_comments_and_layout():
    menu = load_text(
        "default = second   # trailing comment\r\n"
        'image = /vmlinuz label = first append = "a=\\"b c\\" d\\\\e" read-only\n'
        "image=/vmlinuz.old\n"
        '  label="second"  # "quoted label" with a stray quote"\n'
        '  append="one \\\n two"\n'
    )
    first, second = menu.items
    assert first.args == 'a="b c" d\\e ro'
    assert (second.title, second.args) == ("second", "one  two")
    assert menu.default == (1,)


def test_label_defaults_to_the_image_file_name():
    menu = load_text("default=bzImage\nimage=/boot/vmlinuz-6.1\nimage=/boot/bzImage\n")
    assert [e.title for e in menu.items] == ["vmlinuz-6.1", "bzImage"]
    assert menu.default == (1,)


@pytest.mark.parametrize(
    ("default", "index"), [("old", 1), ("previous", 1), ("OLD", 1), ("nosuch", 0), (None, 0)]
)
def test_default_by_label_alias_or_first(default, index):
    head = f"default={default}\n" if default else ""
    menu = load_text(head + "image=/a\n label=new\nimage=/b\n label=old\n alias=previous\n")
    assert menu.default == (index,)


def test_default_may_be_another_os():
    menu = load_text("other=/dev/sda1\n label=windows\nimage=/vmlinuz\n label=linux\n")
    assert menu.default == (0,) and default_entry(menu).kind == CHAINLOADER


def test_disk_geometry_blocks_are_not_images():
    menu = load_text(
        "disk=/dev/sda\n bios=0x80\n sectors=63\nimage=/vmlinuz\n label=l\n root=/dev/sda1\n"
        "disk=/dev/sdb\n inaccessible\n"
    )
    assert len(menu.items) == 1 and default_entry(menu).args == "root=/dev/sda1"


def test_optional_images_that_are_missing_are_left_out(tmp_path):
    root = write_tree(tmp_path, {"boot/vmlinuz": "k"})
    menu = load_text(
        "image=/boot/gone\n label=gone\n optional\nimage=/boot/vmlinuz\n label=here\n optional\n",
        HostDirFilesystem(root),
    )
    assert [e.title for e in menu.items] == ["here"]


@pytest.mark.parametrize(
    ("head", "timeout", "style"),
    [
        ("prompt\ntimeout=150\n", 15.0, "menu"),
        ("prompt\n", None, "menu"),
        ("", 0.0, "hidden"),
        ("delay=30\n", 3.0, "hidden"),
        ("prompt\ntimeout=-5\n", None, "menu"),
    ],
)
def test_timeouts(head, timeout, style):
    menu = load_text(head + "image=/vmlinuz\n")
    assert (menu.timeout, menu.timeout_style) == (timeout, style)


def test_found_in_etc(tmp_path):
    root = write_tree(tmp_path, {"etc/lilo.conf": "image=/vmlinuz\n label=l\n", "vmlinuz": "k"})
    guest, volumes = guest_of_dirs(("hd0,msdos1", root))
    menu, _ = find_menu(guest, volumes[0], guest.filesystem(volumes[0]))
    assert menu is not None and menu.format == "lilo"
    assert plan_boot(guest).kernel.path == "/vmlinuz"
    assert default_entry(menu).kind == LINUX


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('image=/a\nappend="never ends\n', "quoted value never ends"),
        ("=value\n", "without an option name"),
    ],
)
def test_malformed_syntax(text, message):
    with pytest.raises(CorruptError, match=message):
        load_text(text)


def test_huge_image_count_is_a_limit_error():
    with pytest.raises(LimitError, match="LILO sections"):
        load_text("image=/k\n" * 100_000)


# -- Xen's LiloConf as the oracle ---------------------------------------------------------


def xen_lilo():
    require_xen()
    if str(XEN_PYTHON_LIB) not in sys.path:
        sys.path.insert(1, str(XEN_PYTHON_LIB))
    return importlib.import_module("grub.LiloConf")


NAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)
ARG = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-=/:,", min_size=1, max_size=12)


@st.composite
def xen_compatible_configs(draw):
    """lilo.conf in the part Xen's LiloConf reads as LILO does: no comments after values,
    no global kernel options, an append quoted and not empty."""
    labels = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    lines = ["boot=/dev/xvda", "map=/boot/map"]
    if draw(st.booleans()):
        lines.append("prompt")
        lines.append(f"timeout={draw(st.integers(0, 1000))}")
    if draw(st.booleans()):
        lines.append(f"default={draw(st.sampled_from(labels))}")
    for label in labels:
        lines.append(f"image=/boot/{draw(NAME)}")
        lines.append(f"\tlabel={label}")
        if draw(st.booleans()):
            lines.append(f"\troot=/dev/{draw(NAME)}")
        if draw(st.booleans()):
            lines.append("\tread-only")
        if draw(st.booleans()):
            lines.append(f"\tinitrd=/boot/{draw(NAME)}")
        args = draw(st.lists(ARG, max_size=4))
        if args:
            lines.append(f'\tappend="{" ".join(args)}"')
    return "\n".join(lines) + "\n"


@FUZZ
@given(xen_compatible_configs())
def test_agrees_with_xen_liloconf(text):
    xen = xen_lilo().LiloConfigFile()
    xen.filename = "/"
    xen.parse(text)
    menu = load_text(text)
    assert menu.default == (xen.default,)
    assert len(menu.items) == len(xen.images)
    for mine, theirs in zip(menu.items, xen.images, strict=True):
        assert mine.title == theirs.title
        assert mine.kernel == re.sub("/+", "/", theirs.kernel[1])
        assert mine.initrds == ([re.sub("/+", "/", theirs.initrd[1])] if theirs.initrd else [])
        assert mine.args == theirs.args.strip()


# -- hostile input ------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "image",
        "other",
        "label",
        "alias",
        "append",
        "addappend",
        "literal",
        "root",
        "initrd",
        "read-only",
        "read-write",
        "default",
        "prompt",
        "timeout",
        "delay",
        "optional",
        "disk",
        "bios",
        "=",
        " = ",
        '"',
        '\\"',
        "\\",
        "\\\n",
        "#",
        "\n",
        "\r\n",
        " ",
        "\t",
        "/boot/k",
        "a",
        "b",
        "99999999999999",
        "-1",
        "\x00",
        "\udcff",
    ]
)


@FUZZ
@given(st.lists(FRAGMENTS, max_size=60).map("".join))
def test_fuzz_never_crashes(text):
    try:
        menu = load_text(text)
    except PygrubError:
        return
    if menu.items:
        assert isinstance(menu.item_at(menu.default), BootEntry)
    for _, entry in menu.entries():
        assert entry.kernel is None or entry.kernel.startswith("/")


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_binary_garbage(data):
    try:
        load_text(data.decode("utf-8", "surrogateescape"))
    except PygrubError:
        pass
