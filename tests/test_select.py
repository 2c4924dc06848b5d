"""Choosing the entry: --entry forms, out-of-range defaults, submenus, fallbacks."""

from __future__ import annotations

import pytest

from pygrub.config.model import MULTIBOOT, BootEntry, BootMenu, Submenu
from pygrub.errors import NotFoundError
from pygrub.select import choose, default_choice, find_entry


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
    assert choose(menu(default=(1,)), None, bootable).path == (1, 0)


def test_out_of_range_default_is_entry_0():
    assert choose(menu(default=(7,)), None, bootable).path == (0,)


def test_fallback_when_the_default_cannot_boot():
    assert choose(menu(default=(2,), fallback=[(3,), (1, 1)]), None, bootable).path == (1, 1)


def test_nothing_bootable_says_why():
    with pytest.raises(NotFoundError, match="Xen hypervisor"):
        choose(menu(default=(2,)), None, bootable)


def test_named_entry_must_boot():
    with pytest.raises(NotFoundError, match="cannot boot"):
        choose(menu(), "Memory test", bootable)
    assert choose(menu(), "nope", bootable).path == (0,)


def test_the_trace_is_the_walk_that_chose():
    """--explain formats these lines: they come from the walk that chose, step by step."""
    walked = []

    def watching(entry):
        walked.append(entry.title)
        return bootable(entry)

    chosen = choose(menu(default=(2,), fallback=[(3,), (1, 1)]), None, watching)
    assert chosen.path == (1, 1) and chosen.entry.title.endswith("(recovery mode)")
    assert chosen.trace == (
        "default rule: not stated by the loader",
        "default 2 'Xen hypervisor' cannot boot here: cannot",
        "fallback 3 'Memory test' cannot boot here: cannot",
        "fallback 1>1 'Debian, with Linux 6.1 (recovery mode)' boots",
    )
    assert walked == ["Xen hypervisor", "Memory test", "Debian, with Linux 6.1 (recovery mode)"]
    assert choose(menu(), "1>0", bootable).trace == ("entry '1>0' names 1>0",)
    assert choose(menu(default=(9,)), "nope", bootable).trace == (
        "entry 'nope' names no entry: the default rule applies",
        "default rule: not stated by the loader",
        "the default 9 names no item: the first one",
        "default 0 'Debian GNU/Linux' boots",
    )


def test_default_choice_says_when_nothing_boots():
    path, trace = default_choice(menu(default=(2,), fallback=[(3,)]), bootable)
    assert path is None
    assert trace[-1] == "no fallback left: nothing on this menu boots"
    assert default_choice(menu(default=(1,)), bootable) == (
        (1, 0),
        ("default rule: not stated by the loader", "default 1>0 'Debian, with Linux 6.1' boots"),
    )
