"""The shared corpus of real bootloader configs (../shared/corpus), for tests of every format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


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
    cases = []
    for expected in sorted(CORPUS.glob("*/expected.json")):
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
