"""The shared corpus of real bootloader configs (../shared/corpus), for tests of every format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hostfs import guest_of_dirs

from pygrub.config import FORMATS, LoadContext, decode_config, grub2
from pygrub.config.model import BootEntry, BootMenu

_GRUB2_PATHS = next(f for f in FORMATS if f.name == "grub2").paths

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"

#: grub.cfg as Debian 13's grub-mkconfig writes it (scripts/make-grub-mkconfig-fixtures.sh),
#: case folders laid out as the corpus's.
MKCONFIG = Path(__file__).resolve().parent / "fixtures" / "grub-mkconfig"


def corpus_cases(*formats: str) -> list[pytest.param]:
    """One pytest param per case folder (optionally of these formats), id = folder name.

    With CI=true a missing corpus fails the run instead of quietly testing nothing.
    """
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            return [pytest.param(None, id="corpus-missing")]
        return [
            pytest.param(
                None, id="corpus-missing", marks=pytest.mark.skip(reason=f"no corpus at {CORPUS}")
            )
        ]
    return cases_in(CORPUS, *formats)


def cases_in(root: Path, *formats: str) -> list[pytest.param]:
    """The case folders under ``root`` laid out as the corpus's (expected.json in each)."""
    cases = []
    for expected in sorted(root.glob("*/expected.json")):
        data = json.loads(expected.read_text())
        if formats and data["format"] not in formats:
            continue
        cases.append(pytest.param(expected.parent, id=expected.parent.name))
    return cases


def load_expected(case: Path | None) -> dict:
    if case is None:
        pytest.fail(f"the corpus is missing at {CORPUS}")
    return json.loads((case / "expected.json").read_text())


#: Where expected.json disagrees with GRUB itself. Both configs test `[ ${iso_path} ]`
#: with iso_path unset: GRUB's test.c evaluates an empty expression as TRUE (checked
#: with grub-emu in test_grub2_emu.py::test_empty_test_is_true), so GRUB passes the
#: "findiso=" word the corpus notes assume away.
ERRATA_ARGS = {
    "nixos-25.11-iso-grub-hiddenentry": "findiso= init=/nix/store/"
    "qralkshi44a7hzr4izkzr9xhcv0z05gh-nixos-system-nixos-25.11.8801.36a601196c4e/init "
    "boot.shell_on_fail root=LABEL=nixos-graphical-25.11-x86_64 elevator=noop nohibernate "
    "splash loglevel=4 lsm=landlock,yama,bpf",
    "uroot-debian-9-live-iso": "boot=live components findiso=",
}


#: Cases whose config sits on an EFI System Partition while the kernels and BLS entries
#: are on the root filesystem: (ESP folder, config path on the ESP, root's fs uuid).
ESP_LAYOUTS = {
    "uroot-centos8-stream-blscfg": (
        "boot/efi",
        "/EFI/centos/grub.cfg",
        "d0be5cb9-622d-42d5-a531-674aaa120309",
    ),
}


def load_grub2_case(case: Path) -> BootMenu:
    """The menu pygrub.config.grub2 evaluates for a case, its folders as the guest's volumes.

    expected.json's ``volumes`` (each a folder of the case with its GRUB name and
    filesystem UUID) and ``config`` ([volume index, path]) say where GRUB starts, when
    given; else ESP_LAYOUTS does, or the case folder is hd0,msdos1 with the config at
    the first of the grub2 format's paths it holds.
    """
    expected = load_expected(case)
    if "volumes" in expected:
        given = expected["volumes"]
        guest, volumes = guest_of_dirs(*((v["grub_name"], case / v["folder"]) for v in given))
        for volume, v in zip(volumes, given, strict=True):
            guest.filesystem(volume).uuid = v["uuid"]
        index, config = expected["config"]
        volume = volumes[index]
    elif case.name in ESP_LAYOUTS:
        esp_dir, config, uuid = ESP_LAYOUTS[case.name]
        guest, volumes = guest_of_dirs(("hd0,gpt1", case / esp_dir), ("hd0,gpt2", case))
        guest.filesystem(volumes[1]).uuid = uuid
        volume = volumes[0]
    else:
        guest, volumes = guest_of_dirs(("hd0,msdos1", case))
        volume = volumes[0]
        fs = guest.filesystem(volume)
        config = next((p for p in _GRUB2_PATHS if fs.is_file(p)), None)
        if config is None:
            config = "/" + expected["config_files"][0]
    fs = guest.filesystem(volume)
    text = decode_config(fs.read_file(config, 1 << 20))
    return grub2.load(LoadContext(config, text, fs, volume, guest))


def assert_entry_is(entry: object, want: dict, case_name: str) -> None:
    """A BootEntry as expected.json describes it (the args after ERRATA_ARGS)."""
    assert isinstance(entry, BootEntry)
    assert entry.title == want["title"]
    assert entry.kernel == want["kernel"]
    assert entry.kind == want.get("type", "linux")
    if entry.kind != "linux":
        return  # hypervisor entries: the path and the kind are what we check
    assert entry.initrds == want.get("initrd", [])
    assert entry.args == ERRATA_ARGS.get(case_name, want["args"])
    assert entry.not_bootable is None
    if "id" in want:
        assert entry.id == want["id"]
