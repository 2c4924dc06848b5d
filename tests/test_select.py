"""Choosing the entry: --entry forms, out-of-range defaults, submenus, fallbacks."""

from __future__ import annotations

import pytest

from pygrub.config.model import MULTIBOOT, BootEntry, BootMenu, Submenu
from pygrub.errors import NotFoundError
from pygrub.select import choose, default_choice, dotted, find_entry


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
        # A number inside a > path is GRUB's count at that level, bounded by it.
        ("1>1", (1, 1)),
        ("1>2", None),
        ("3>0", None),
        ("4>0", None),
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


def test_a_named_entry_is_chosen_with_its_path_entry_and_step():
    chosen = choose(menu(), "gnulinux-advanced", bootable)  # a submenu: its first entry
    assert chosen.path == (1, 0)
    assert chosen.entry.id == "gnulinux-6.1"
    assert chosen.trace == ("entry 'gnulinux-advanced' names 1>0",)


def test_a_title_at_the_top_level_wins_over_the_same_title_deeper():
    """GRUB matches the menu it shows first; a submenu's entry of the same title, earlier
    in -l's order, is found only when the top level has none."""
    twice = BootMenu(
        items=[
            Submenu("More", [BootEntry("Rescue", "/vmlinuz-old", id="deep")]),
            BootEntry("Rescue", "/vmlinuz-new", id="top"),
        ],
        format="grub2",
        config_path="/boot/grub/grub.cfg",
    )
    assert find_entry(twice, "Rescue") == (1,)
    assert find_entry(twice, "deep") == (0, 0)


def test_a_one_entry_submenu_and_an_empty_one():
    odd = BootMenu(
        items=[
            Submenu("One", [BootEntry("Only", "/vmlinuz", id="only")]),
            Submenu("Empty", []),
        ],
        format="grub2",
        config_path="/boot/grub/grub.cfg",
        default=(0,),
        fallback=[(1,)],
    )
    assert choose(odd, None, bootable).path == (0, 0)
    with pytest.raises(NotFoundError) as e:
        choose(odd, "Empty", bootable)
    assert str(e.value) == "entry 'Empty' in /boot/grub/grub.cfg is an empty submenu"


def test_fallbacks_that_name_nothing_are_passed_over():
    chosen = choose(menu(default=(2,), fallback=[(9,), (1,), (0,)]), None, bootable)
    assert chosen.path == (1, 0)
    assert chosen.trace == (
        "default rule: not stated by the loader",
        "default 2 'Xen hypervisor' cannot boot here: cannot",
        "fallback 9 names no entry",
        "fallback 1>0 'Debian, with Linux 6.1' boots",
    )


def test_nothing_bootable_names_every_refusal():
    with pytest.raises(NotFoundError) as e:
        choose(menu(default=(2,), fallback=[(9,), (3,)]), None, bootable)
    assert str(e.value) == (
        "/boot/grub/grub.cfg: the default entry cannot boot"
        " ('Xen hypervisor': cannot; 'Memory test': cannot)"
    )


def test_dotted_paths():
    assert (dotted((1, 0)), dotted((3,)), dotted(())) == ("1>0", "3", "(none)")
