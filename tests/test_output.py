"""Output formats: byte for byte what Xen's pygrub writes, checked against its own functions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xen import xen_module

from pygrub.errors import PygrubError
from pygrub.output import format_simple, format_sxp, render, render_json

values = st.one_of(st.none(), st.text(max_size=40))


def test_sxp_matches_xen_on_a_typical_boot():
    xen = xen_module()
    args = (
        "/var/run/xen/pygrub/boot_kernel.abc",
        "/var/run/xen/pygrub/boot_ramdisk.def",
        "root=/dev/xvda1 ro quiet",
    )
    assert format_sxp(*args) == xen.format_sxp(*args)
    assert format_sxp(*args) == (
        "linux (kernel '/var/run/xen/pygrub/boot_kernel.abc')"
        "(ramdisk '/var/run/xen/pygrub/boot_ramdisk.def')(args 'root=/dev/xvda1 ro quiet')"
    )


def test_simple0_omits_empty_items_and_ends_with_an_extra_separator():
    assert format_simple("/k", None, "", "\0") == "kernel /k\0\0"
    assert format_simple("/k", "/r", "a b", "\0") == "kernel /k\0ramdisk /r\0args a b\0\0"


@settings(max_examples=300, deadline=None)
@given(kernel=values, ramdisk=values, args=values)
def test_every_format_matches_xen(kernel, ramdisk, args):
    xen = xen_module()
    assert format_sxp(kernel, ramdisk, args) == xen.format_sxp(kernel, ramdisk, args)
    for sep in ("\n", "\0"):
        try:
            expected = xen.format_simple(kernel, ramdisk, args, sep)
        except RuntimeError:
            with pytest.raises(PygrubError):
                format_simple(kernel, ramdisk, args, sep)
        else:
            assert format_simple(kernel, ramdisk, args, sep) == expected


def test_separator_in_a_value_is_refused():
    with pytest.raises(PygrubError) as refused:
        render("simple0", "/k", None, "root=/dev/xvda\0evil")
    assert str(refused.value) == (
        "a value contains a NUL, which the simple output format cannot represent"
    )
    with pytest.raises(PygrubError) as refused:
        render("simple", "/k", None, "a\nkernel /etc/shadow")
    assert str(refused.value) == (
        "a value contains a newline, which the simple output format cannot represent"
    )


def test_json_is_indented_and_keeps_non_ascii_text():
    """The layout of --output-format=json, byte for byte: two-space indents, UTF-8 text
    as it is (not \\u escapes), one newline at the end."""
    document = {"args": "root=LABEL=caf\u00e9", "initrds": ["/i"]}
    assert render_json(document) == (
        b'{\n  "args": "root=LABEL=caf\xc3\xa9",\n  "initrds": [\n    "/i"\n  ]\n}\n'
    )


def test_non_utf8_bytes_go_out_as_they_came():
    args = b"root=/dev/xvda1 label=\xff".decode("utf-8", "surrogateescape")
    assert render("simple", "/k", None, args) == b"kernel /k\nargs root=/dev/xvda1 label=\xff\n\n"


def test_render_puts_each_value_in_its_place_in_every_format():
    """What libxl (simple0), xenopsd (simple) and xend (sxp) read, whole."""
    files = ("/run/k", "/run/r", "root=/dev/xvda1 ro")
    assert render("sxp", *files) == (
        b"linux (kernel '/run/k')(ramdisk '/run/r')(args 'root=/dev/xvda1 ro')"
    )
    assert render("simple", *files) == b"kernel /run/k\nramdisk /run/r\nargs root=/dev/xvda1 ro\n\n"
    assert (
        render("simple0", *files) == b"kernel /run/k\0ramdisk /run/r\0args root=/dev/xvda1 ro\0\0"
    )
    with pytest.raises(PygrubError, match="^unknown output format json2$"):
        render("json2", *files)
