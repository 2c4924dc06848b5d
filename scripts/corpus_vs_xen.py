"""For each case of ../shared/corpus: what Xen 4.17's pygrub picks and what ours picks.

    python scripts/corpus_vs_xen.py > table.md

Xen's side uses its own config parsers and its own default rule (Grub.image_index) on the
first config its search list finds; ours runs the same loaders pygrub uses, through
tests/hostfs.py. Prints a Markdown table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from corpus import CORPUS, ESP_LAYOUTS  # noqa: E402
from hostfs import guest_of_dirs  # noqa: E402
from xen import xen_module  # noqa: E402

from pygrub.config import find_menu  # noqa: E402
from pygrub.errors import PygrubError  # noqa: E402
from pygrub.select import choose  # noqa: E402


def xen_pick(case: Path) -> str:
    xen = xen_module()
    for path, parser in xen_config_list(xen):
        config = case / path.lstrip("/")
        if not config.is_file():
            continue
        cf = parser()
        cf.filename = path
        try:
            cf.parse(config.read_bytes()[: 1 << 20].decode())
            grub = xen.Grub.__new__(xen.Grub)
            grub.cf = cf
            image = cf.images[grub.image_index()]
            return f"{image.title} ({image.kernel[1]})"
        except Exception as e:  # Xen's parsers raise anything; that is the finding
            return f"fails: {type(e).__name__}"
    return "no config found"


def xen_config_list(xen: object) -> list:
    grub = sys.modules["grub.GrubConf"]
    ext = sys.modules["grub.ExtLinuxConf"]
    return (
        [
            (p, grub.Grub2ConfigFile)
            for p in (
                "/boot/grub/grub.cfg",
                "/grub/grub.cfg",
                "/boot/grub2/grub.cfg",
                "/grub2/grub.cfg",
            )
        ]
        + [
            (p, ext.ExtLinuxConfigFile)
            for p in (
                "/boot/isolinux/isolinux.cfg",
                "/boot/extlinux/extlinux.conf",
                "/boot/extlinux.conf",
                "/extlinux/extlinux.conf",
                "/extlinux.conf",
            )
        ]
        + [
            (p, grub.GrubConfigFile)
            for p in (
                "/boot/grub/menu.lst",
                "/boot/grub/grub.conf",
                "/grub/menu.lst",
                "/grub/grub.conf",
            )
        ]
    )


def our_pick(case: Path) -> str:
    layout = ESP_LAYOUTS.get(case.name)
    if layout is not None:
        esp_dir, _config, uuid = layout
        guest, volumes = guest_of_dirs(("hd0,gpt1", case / esp_dir), ("hd0,gpt2", case))
        guest.filesystem(volumes[1]).uuid = uuid
    else:
        guest, _volumes = guest_of_dirs(("hd0,msdos1", case))

    # The corpus holds configs, not kernels: every Linux entry counts as bootable here.
    def why_not(entry: object) -> str | None:
        return entry.not_bootable or (None if entry.kind == "linux" else f"a {entry.kind} entry")

    for volume in guest.volumes:
        menu, _attempts = find_menu(guest, volume, guest.filesystem(volume))
        if menu is None:
            continue
        try:
            entry = choose(menu, None, why_not).entry
        except PygrubError as e:
            return f"refuses: {str(e)[:70]}"
        return f"{entry.title} ({entry.kernel})"
    return "no config found"


def main() -> None:
    print("| case | expected default | Xen 4.17 pygrub | this pygrub |")
    print("|---|---|---|---|")
    for expected_file in sorted(CORPUS.glob("*/expected.json")):
        case = expected_file.parent
        expected = json.loads(expected_file.read_text())
        default = expected["default"]
        want = f"{default['title']} ({default.get('kernel')})"
        print(f"| {case.name} | {want} | {xen_pick(case)} | {our_pick(case)} |")


if __name__ == "__main__":
    main()
