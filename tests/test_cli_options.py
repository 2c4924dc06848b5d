"""The command line: Xen 4.17's flags, spellings and defaults."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import pygrub
from pygrub.cli import HelpRequested, main, parse_args
from pygrub.errors import UsageError
from pygrub.settings import DEFAULT_OUTPUT_DIRECTORY


def test_defaults_are_xens():
    o = parse_args(["disk.img"])
    assert (o.interactive, o.output_format, o.output_directory) == (
        True,
        "sxp",
        DEFAULT_OUTPUT_DIRECTORY,
    )
    assert o.output is None and o.entry is None and o.offset is None and o.args == ""


def test_libxl_argv(tmp_path):
    o = parse_args(
        [
            "--kernel=/boot/vmlinuz",
            "--ramdisk=/boot/initrd.img",
            "--args=console=hvc0",
            "--runas=1234",
            "--quiet",
            "--output=/run/out",
            "--output-format=simple0",
            f"--output-directory={tmp_path}",
            "/dev/vg/guest-disk",
        ]
    )
    assert o.image == "/dev/vg/guest-disk"
    assert (o.kernel, o.ramdisk, o.args, o.runas) == (
        "/boot/vmlinuz",
        "/boot/initrd.img",
        "console=hvc0",
        1234,
    )
    assert (o.output, o.output_format, o.output_directory) == (
        "/run/out",
        "simple0",
        f"{tmp_path}/",
    )
    assert o.interactive is False


def test_spellings_and_clusters():
    a = parse_args(["--output", "x", "-qn", "disk", "--entry", "2"])
    assert (a.output, a.interactive, a.not_really, a.entry) == ("x", False, True, "2")
    assert parse_args(["-l", "disk", "-i"]).interactive is True
    assert parse_args(["--output=-", "d"]).output is None


def test_runas_keeps_the_menu():
    """Xen 4.17 refuses --runas without -q or --entry: its menu cannot run sandboxed. Ours
    can, so --runas alone shows it (libxl passes -q with --runas anyway)."""
    assert parse_args(["--runas=5", "d"]).interactive is True
    assert parse_args(["--runas=5", "-q", "d"]).interactive is False


def test_entry_implies_non_interactive():
    assert parse_args(["--entry=Debian GNU/Linux", "d"]).interactive is False


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["a", "b"],
        ["--bogus", "d"],
        ["--output-format=json2", "d"],
        ["--offset=abc", "d"],
        ["--runas=0x1", "d"],
        ["--output-directory=", "d"],
        ["--ramdisk=/boot/initrd.img", "d"],
    ],
)
def test_usage_errors(argv):
    with pytest.raises(UsageError):
        parse_args(argv)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--runas=0 is root: give the unprivileged user id to read the image as"),
        ("-1", "--runas=-1 is not a user id (1 to 4294967294)"),
        ("4294967295", "--runas=4294967295 is not a user id (1 to 4294967294)"),
        (str(1 << 40), f"--runas={1 << 40} is not a user id (1 to 4294967294)"),
    ],
)
def test_runas_refuses_root_and_what_is_no_user_id(value, message):
    with pytest.raises(UsageError, match=f"^{re.escape(message)}$"):
        parse_args([f"--runas={value}", "-q", "d"])
    assert parse_args(["--runas=4294967294", "-q", "d"]).runas == 4294967294


def test_usage_error_exit_status_and_one_line(capsys):
    assert main(["--output-format=bad", "disk"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("Usage: pygrub ")
    assert err[1:] == ["pygrub: error: RuntimeError: unknown output format bad"]


def test_ramdisk_without_kernel_is_a_usage_error(capsys):
    # Xen's pygrub ignores it; a ramdisk without its kernel is a mistake worth saying.
    assert main(["-q", "--ramdisk=/boot/initrd.img", "disk.img"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("Usage: pygrub ")
    assert err[1] == (
        "pygrub: error: RuntimeError: --ramdisk needs --kernel: it names the initrd of that kernel"
    )
    assert parse_args(["--kernel=/k", "--ramdisk=/r", "d"]).ramdisk == "/r"


def test_a_missing_output_directory_is_not_a_usage_error():
    assert parse_args(["--output-directory=/nonexistent/dir", "d"]).output_directory == (
        "/nonexistent/dir/"
    )


def test_help():
    with pytest.raises(HelpRequested):
        parse_args(["-h"])
    assert main(["--help"]) == 0


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"pygrub \d+\.\d+\.\d+\n", out)
    assert out == f"pygrub {pygrub.__version__}\n"
    # Like --help, it needs no image and wins over the other options.
    assert main(["-q", "--version", "--output-format=json"]) == 0
    assert capsys.readouterr().out == out


def test_missing_image_is_one_line_exit_1(capsys):
    assert main(["-q", "/nonexistent/disk.img"]) == 1
    assert (
        capsys.readouterr().err
        == "pygrub: error: RuntimeError: cannot open disk image /nonexistent/disk.img: No such file or directory\n"
    )


def test_help_imports_no_reader():
    code = (
        "import sys, contextlib, io\n"
        "from pygrub.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
        "bad = [m for m in sys.modules if m.startswith(('pygrub.fs', 'pygrub.config', 'pygrub.volumes', 'pygrub.disk'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
