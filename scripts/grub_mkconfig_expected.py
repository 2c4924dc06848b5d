#!/usr/bin/env python3
"""The menu grub-mkconfig wrote, and expected.json from what grub-emu booted of it.

Used by scripts/make-grub-mkconfig-fixtures.sh (not by the tests, which read expected.json):

    grub_mkconfig_expected.py paths CFG
        the id path ("submenu-id>entry-id") of every menu entry, one a line
    grub_mkconfig_expected.py expected CASE CFG EMU_DIR SOURCE NOTES VOLUMES CONFIG
        CASE/expected.json: EMU_DIR/default.txt is grub-emu's run of the config as is,
        EMU_DIR/N.txt its run with `set default=<path N>`; CFG is relative to CASE;
        VOLUMES (JSON) the disk's volumes the tests make ({grub_name, folder in CASE, fs,
        uuid}), CONFIG (JSON) [volume index, path] of the file GRUB reads first

The menu's shape is read from the lines grub-mkconfig writes (its scripts put one
`menuentry`/`submenu` per line, a submenu's entries one tab further in, the title and
then `$menuentry_id_option 'ID'`), not by a GRUB interpreter: what each entry loads is
GRUB's own answer, from grub-emu.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

_ITEM = re.compile(
    r"^\s*(?P<kind>menuentry|submenu) '(?P<title>(?:[^']|'\\'')*)'"
    r".*\$menuentry_id_option '(?P<id>[^']*)' *\{$"
)


def menu_items(text: str) -> list[dict]:
    """Top-level items as {title, id[, submenu][, conditional]}; one level of submenus.

    An item written inside an ``if`` (30_uefi-firmware's, under ``$grub_platform = efi``)
    is marked conditional: GRUB defines it only where the condition holds.
    """
    top: list[dict] = []
    blocks: list[dict | None] = []  # what each open "{" began: an item, or None
    ifs = 0
    for line in text.splitlines():
        word = line.split(maxsplit=1)[0] if line.strip() else ""
        match = _ITEM.match(line)
        if match is not None:
            item = {"title": match["title"].replace("'\\''", "'"), "id": match["id"]}
            if match["kind"] == "submenu":
                item["submenu"] = []
            if ifs:
                item["conditional"] = True
            parent = next((b for b in reversed(blocks) if b is not None), None)
            (parent["submenu"] if parent is not None else top).append(item)
            blocks.append(item)
        elif line.rstrip().endswith("{"):
            blocks.append(None)
        elif word == "}":
            blocks.pop()
        elif word == "if" and not line.rstrip().endswith("fi"):  # not a one-line if
            ifs += 1
        elif word == "fi":
            ifs -= 1
    return top


def entry_paths(items: list[dict]) -> list[tuple[list[int], list[dict]]]:
    """Every menu entry's index path and the items along it, in menu order."""
    out = []
    for i, item in enumerate(items):
        if "submenu" in item:
            for j, child in enumerate(item["submenu"]):
                out.append(([i, j], [item, child]))
        else:
            out.append(([i], [item]))
    return out


def booted(emu_output: str) -> dict:
    """What one grub-emu run loaded: the stand-ins' LINUX, INITRD and CHOSEN lines."""
    lines = dict(line.split(" ", 1) for line in emu_output.splitlines() if " " in line)
    if not {"LINUX", "INITRD", "CHOSEN"} <= lines.keys():
        raise SystemExit(f"grub-emu booted nothing: {emu_output!r}")
    kernel, _, args = lines["LINUX"].partition(" ")
    return {
        "chosen": lines["CHOSEN"],
        "kernel": kernel,
        "initrd": lines["INITRD"].split(),
        "args": args,
    }


def expected(
    case: Path, cfg: str, emu: Path, source: str, notes: str, volumes: list, config: list
) -> dict:
    items = menu_items((case / cfg).read_text())
    absent = []
    for n, (_index_path, chain) in enumerate(entry_paths(items)):
        got = booted((emu / f"{n}.txt").read_text())
        id_path = ">".join(item["id"] for item in chain)
        entry = chain[-1]
        if got["chosen"] != id_path:
            if not entry.pop("conditional", False):
                raise SystemExit(f"set default={id_path} booted {got['chosen']}")
            absent.append(entry)
            continue
        entry.update(type="linux", kernel=got["kernel"], initrd=got["initrd"], args=got["args"])
    items = [item for item in items if not any(item is a for a in absent)]
    by_chosen = {
        ">".join(item["id"] for item in chain): index_path
        for index_path, chain in entry_paths(items)
    }
    default = booted((emu / "default.txt").read_text())
    default_path = by_chosen[default["chosen"]]
    entry = items[default_path[0]]
    if len(default_path) > 1:
        entry = entry["submenu"][default_path[1]]
    if absent:
        titles = ", ".join(repr(a["title"]) for a in absent)
        notes += f"; not in the menu on grub-emu's platform (emu) nor on pygrub's (xen): {titles}"
    return {
        "source": source,
        "format": "grub2",
        "config_files": sorted(str(p.relative_to(case)) for p in case.rglob("*") if p.is_file()),
        "volumes": volumes,
        "config": config,
        "default_path": default_path,
        "default": entry,
        "entries": items,
        "notes": notes,
        "oracle": f"grub-emu 2.12 booted {default['chosen']!r} with the timeout; each entry's "
        "kernel, initrd and args are what it passed to linux/initrd when set as the default",
        "confidence": "high",
    }


def main(argv: list[str]) -> None:
    if argv[0] == "paths":
        for _index, chain in entry_paths(menu_items(Path(argv[1]).read_text())):
            print(">".join(item["id"] for item in chain))
    elif argv[0] == "expected":
        case, cfg, emu, source, notes, volumes, config = argv[1:]
        data = expected(
            Path(case), cfg, Path(emu), source, notes, json.loads(volumes), json.loads(config)
        )
        (Path(case) / "expected.json").write_text(json.dumps(data, indent=2) + "\n")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
