"""Choosing the entry: --entry forms, out-of-range defaults, submenus, fallbacks."""

from __future__ import annotations

import pytest

from pygrub.config.model import MULTIBOOT, BootEntry, BootMenu, Submenu
from pygrub.errors import NotFoundError
from pygrub.select import choose, find_entry


def menu(default=(0,), fallback=()):
    return BootMenu(
        items=[
            BootEntry("Debian GNU/Linux", "/vmlinuz", id="gnulinux-simple"),
            Submenu(
                "Advanced options",
                [
                    BootEntry("Debian, with Linux 6.1", "/vmlinuz-6.1", id="gnulinux-6.1"),
                    BootEntry(
                        "Debian, with Linux 6.1 (recovery mode)",
                        "/vmlinuz-6.1",
                        id="gnulinux-6.1-recovery",
                    ),
                ],
                id="gnulinux-advanced",
            ),
            BootEntry("Xen hypervisor", "/xen.gz", kind=MULTIBOOT),
            BootEntry("Memory test", "/memtest"),
        ],
        format="grub2",
        config_path="/boot/grub/grub.cfg",
        default=default,
        fallback=list(fallback),
    )


def bootable(entry):
    return None if entry.kind == "linux" and entry.kernel != "/memtest" else "cannot"


@pytest.mark.parametrize(
    "spec, path",
    [
        # A number counts the entries as -l lists them, submenus flattened (Xen's pygrub).
        ("0", (0,)),
        ("1", (1, 0)),
        ("2", (1, 1)),
        ("3", (2,)),
        ("4", (3,)),
        (" 2 ", (1, 1)),
        ("5", None),
        ("-1", None),
        ("Memory test", (3,)),
        ("gnulinux-advanced>gnulinux-6.1-recovery", (1, 1)),
        ("1>0", (1, 0)),
        ("Advanced options>1", (1, 1)),
        ("Debian, with Linux 6.1", (1, 0)),
        ("gnulinux-6.1", (1, 0)),
        ("9", None),
        ("nope", None),
        ("0>1", None),
    ],
)
def test_find_entry(spec, path):
    assert find_entry(menu(), spec) == path


def test_default_into_a_submenu_boots_its_first_entry():
    assert choose(menu(default=(1,)), None, bootable)[0] == (1, 0)


def test_out_of_range_default_is_entry_0():
    assert choose(menu(default=(7,)), None, bootable)[0] == (0,)


def test_fallback_when_the_default_cannot_boot():
    assert choose(menu(default=(2,), fallback=[(3,), (1, 1)]), None, bootable)[0] == (1, 1)


def test_nothing_bootable_says_why():
    with pytest.raises(NotFoundError, match="Xen hypervisor"):
        choose(menu(default=(2,)), None, bootable)


def test_named_entry_must_boot():
    with pytest.raises(NotFoundError, match="cannot boot"):
        choose(menu(), "Memory test", bootable)
    assert choose(menu(), "nope", bootable)[0] == (0,)
