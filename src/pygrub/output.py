"""The output formats the toolstack reads, byte for byte as Xen's pygrub writes them."""

from __future__ import annotations

from .errors import PygrubError

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
