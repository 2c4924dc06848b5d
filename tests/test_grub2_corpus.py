"""Every GRUB 2 / BLS case of the shared corpus through pygrub.config.grub2.

The case folder is the volume (or, for an ESP layout, two volumes with the uuid the
config searches for). Debian 13's grub-mkconfig cases (tests/fixtures/grub-mkconfig) run
here too; tests/test_grub_mkconfig.py checks their every entry. We check the default path and the default entry's title, kernel,
initrds and args against expected.json.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from corpus import (
    CORPUS,
    MKCONFIG,
    assert_entry_is,
    cases_in,
    corpus_cases,
    load_expected,
    load_grub2_case,
)
from hostfs import guest_of_dirs

from pygrub.config import LoadContext, decode_config
from pygrub.config.grub2 import load

#: Configs with entries under `if [ "$grub_platform" = ... ]`; pygrub's platform is "xen".
PLATFORM_DEPENDENT_MENUS = (
    "ubuntu-25.10-desktop-iso",
    "opensuse-tumbleweed-live-kiwi",
    "manjaro-grub-savedefault",
    "derived-manjaro-saved-submenu-id-with-space",
)


@pytest.mark.parametrize("case", corpus_cases("grub2", "bls") + cases_in(MKCONFIG))
def test_corpus_default_entry(case):
    expected = load_expected(case)
    menu = load_grub2_case(case)
    assert list(menu.default) == expected["default_path"], menu.default_reason
    assert_entry_is(menu.item_at(menu.default), expected["default"], case.name)


@pytest.mark.parametrize("case", corpus_cases("grub2", "bls") + cases_in(MKCONFIG))
def test_corpus_top_level_titles(case):
    """The top level of the menu has the titles expected.json lists, where it is sure of them."""
    expected = load_expected(case)
    if case.name in PLATFORM_DEPENDENT_MENUS:
        pytest.skip("expected.json lists entries that exist only on some grub_platform")
    menu = load_grub2_case(case)
    want = [item["title"] for item in expected["entries"]]
    got = [item.title for item in menu.items]
    assert got == want


def _corpus_case(name: str) -> Path:
    case = CORPUS / name
    if not case.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus case {name} is missing at {CORPUS}")
        pytest.skip(f"no corpus at {CORPUS}")
    return case


def _stub_case(name: str, esp: str, stub: str, root_uuid: str | None):
    case = _corpus_case(name)
    esp_dir = case / esp if esp else case
    guest, volumes = guest_of_dirs(("hd0,gpt15", esp_dir), ("hd0,gpt1", case))
    if root_uuid:
        guest.filesystem(volumes[1]).uuid = root_uuid
    fs = guest.filesystem(volumes[0])
    menu = load(
        LoadContext(stub, decode_config(fs.read_file(stub, 1 << 20)), fs, volumes[0], guest)
    )
    return menu, load_expected(case)


def test_ubuntu_esp_stub_configfile_replaces_the_menu():
    """search.fs_uuid finds the root, configfile's menu is the one GRUB shows."""
    menu, expected = _stub_case(
        "ubuntu-16.04-cloud-grub2-and-stale-menulst",
        "boot/efi",
        "/EFI/BOOT/grub.cfg",
        "4e8e8046-457b-49ca-b4ed-78676a0fd2ab",
    )
    entry = menu.item_at(menu.default)
    assert entry.title == expected["default"]["title"]
    assert entry.kernel == expected["default"]["kernel"]
    assert entry.device == "hd0,gpt1"
    assert menu.item_at((1,)).title == "Advanced options for Ubuntu"


def test_opensuse_efi_stub_reads_the_real_config():
    menu, expected = _stub_case("opensuse-tumbleweed-live-kiwi", "", "/EFI/BOOT/grub.cfg", None)
    entry = menu.item_at(menu.default)
    assert (entry.title, entry.kernel) == (
        expected["default"]["title"],
        expected["default"]["kernel"],
    )
