"""The output formats the toolstack reads, byte for byte as Xen's pygrub writes them."""

from __future__ import annotations

from ._typing import TYPE_CHECKING
from .errors import PygrubError

if TYPE_CHECKING:
    from .api import Choice, Menu, MenuItem, VolumeInfo

FORMATS = ("sxp", "simple", "simple0")


def format_sxp(kernel: str | None, ramdisk: str | None, args: str | None) -> str:
    # Xen quotes with Python's repr(); kernel is None under -n.
    text = f"linux (kernel {kernel!r})"
    if ramdisk:
        text += f"(ramdisk {ramdisk!r})"
    if args:
        text += f"(args {args!r})"
    return text


def format_simple(kernel: str | None, ramdisk: str | None, args: str | None, sep: str) -> str:
    for value in (kernel, ramdisk, args):
        if value is not None and sep in value:
            name = "NUL" if sep == "\0" else "newline"
            raise PygrubError(
                f"a value contains a {name}, which the simple output format cannot represent"
            )
    text = f"kernel {kernel}{sep}"
    if ramdisk:
        text += f"ramdisk {ramdisk}{sep}"
    if args:
        text += f"args {args}{sep}"
    return text + sep


def render(fmt: str, kernel: str | None, ramdisk: str | None, args: str | None) -> bytes:
    if fmt == "sxp":
        text = format_sxp(kernel, ramdisk, args)
    elif fmt == "simple":
        text = format_simple(kernel, ramdisk, args, "\n")
    elif fmt == "simple0":
        text = format_simple(kernel, ramdisk, args, "\0")
    else:
        raise PygrubError(f"unknown output format {fmt}")
    # Bytes the guest wrote that are not UTF-8 go back out as they came in.
    return text.encode("utf-8", "surrogateescape")


# -- JSON (output.schema.json beside this file describes every object) -------------------

#: The schema's version: bumped when a field changes meaning or goes away.
JSON_VERSION = 1


def boot_json(choice: Choice, kernel: str | None, ramdisk: str | None) -> dict:
    """``--output-format=json``: the extracted files (None with -n) and where they came from."""
    entry = choice.entry
    return {
        "version": JSON_VERSION,
        "type": "boot",
        "kernel": _text(kernel),
        "ramdisk": _text(ramdisk),
        "args": _text(choice.args),
        "bootloader": choice.bootloader,
        "config": _text(choice.config_path),
        "entry": None
        if entry is None
        else {
            "title": _text(entry.title),
            "id": _text(entry.id),
            "path": list(entry.path),
            "titles": [_text(t) for t in entry.titles],
        },
        "files": {
            "device": _text(choice.device),
            "kernel": _text(choice.kernel),
            "initrds": [_text(p) for p in choice.initrds],
        },
        "volume": volume_json(choice.volume),
        "explanation": [_text(line) for line in choice.explanation],
    }


def with_files(document: dict, kernel: str | None, ramdisk: str | None, args: str) -> dict:
    """A boot object with these files and command line in place of its own (--runas: the
    parent's, not what the sandboxed child reported)."""
    return {**document, "kernel": _text(kernel), "ramdisk": _text(ramdisk), "args": _text(args)}


def menu_json(menu: Menu) -> dict:
    """``-l --output-format=json``: the whole menu as a tree."""
    return {
        "version": JSON_VERSION,
        "type": "menu",
        "bootloader": menu.bootloader,
        "config": _text(menu.config_path),
        "volume": volume_json(menu.volume),
        "default": list(menu.default),
        "default_reason": _text(menu.default_reason),
        "chosen": None if menu.chosen is None else list(menu.chosen),
        "timeout": menu.timeout,
        "items": [_item_json(item) for item in menu.items],
        "explanation": [_text(line) for line in menu.explanation],
    }


def _item_json(item: MenuItem) -> dict:
    # Depth is bounded by api.MAX_MENU_DEPTH, checked when the menu was built.
    common = {
        "title": _text(item.title),
        "id": _text(item.id),
        "path": list(item.path),
        "default": item.default,
    }
    if hasattr(item, "items"):
        return {"type": "submenu", **common, "items": [_item_json(i) for i in item.items]}
    return {
        "type": "entry",
        **common,
        "kind": item.kind,
        "kernel": _text(item.kernel),
        "initrds": [_text(p) for p in item.initrds],
        "args": _text(item.args),
        "device": _text(item.device),
        "not_bootable": _text(item.not_bootable),
    }


def volume_json(volume: VolumeInfo) -> dict:
    fs = volume.filesystem
    return {
        "device": _text(volume.device),
        "partition": volume.partition,
        "origin": _text(volume.origin),
        "partition_label": _text(volume.partition_label),
        "filesystem": None
        if fs is None
        else {"type": fs.type, "uuid": _text(fs.uuid), "label": _text(fs.label)},
    }


def _text(value: str | None) -> str | None:
    """A guest string as valid Unicode: each byte that was not UTF-8 becomes U+FFFD.

    Loaders keep such bytes as lone surrogates; JSON readers other than Python's reject
    or mangle those, so they are replaced here (the human formats keep the bytes).
    """
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


def render_json(document: dict) -> bytes:
    import json

    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
