"""grub.cfg as Debian 13's grub-mkconfig (GRUB 2.12) writes it: every entry as GRUB boots it.

scripts/make-grub-mkconfig-fixtures.sh ran trixie's grub-install and grub-mkconfig on
real disks (MBR; GPT with an ESP and shim's grub.cfg stub; a separate /boot) with two
real kernels, in the variants an administrator makes (one kernel, GRUB_DISABLE_SUBMENU,
GRUB_DEFAULT="1>2", GRUB_DEFAULT=saved with grub-set-default, GRUB_SAVEDEFAULT with
grub-reboot), and recorded what trixie's grub-emu loaded for each entry. The default
entry and the top-level titles are checked with the corpus (test_grub2_corpus.py), the
whole command on a disk image in test_corpus.py; here, every entry of every menu.
"""

from __future__ import annotations

import pytest
from corpus import MKCONFIG, assert_entry_is, cases_in, load_expected, load_grub2_case

CASES = cases_in(MKCONFIG)


def test_every_variant_is_there():
    names = {param.id for param in CASES}
    assert {
        "bios-one-kernel",
        "bios-two-kernels",
        "bios-disable-submenu",
        "bios-submenu-path-default",
        "bios-saved-default",
        "efi-two-kernels",
        "efi-savedefault-reboot-once",
        "sepboot-two-kernels",
    } <= names


def _entries(items: list[dict], path: tuple[int, ...] = ()):
    for index, item in enumerate(items):
        if "submenu" in item:
            yield from _entries(item["submenu"], (*path, index))
        else:
            yield (*path, index), item


@pytest.mark.parametrize("case", CASES)
def test_every_entry_loads_what_grub_loads(case):
    expected = load_expected(case)
    menu = load_grub2_case(case)
    checked = 0
    for path, want in _entries(expected["entries"]):
        assert_entry_is(menu.item_at(path), want, case.name)
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("case", CASES)
def test_submenus_as_grub_shows_them(case):
    expected = load_expected(case)
    menu = load_grub2_case(case)
    for index, item in enumerate(expected["entries"]):
        if "submenu" in item:
            submenu = menu.item_at((index,))
            assert submenu.title == item["title"]
            assert [child.title for child in submenu.items] == [c["title"] for c in item["submenu"]]
