"""XAPI (XenServer, XCP-ng) as the client: its exact command line, its reading of the result.

xenopsd (xen-api ocaml/xenopsd/lib/bootloader.ml) runs

    pygrub --output-format=simple -q --runas=UID [PV-bootloader-args split on " "] DISK

with UID the uid of "qemu_base" plus the domid, stdin empty, stdout and stderr captured.
On exit status 0 it reads stdout's ``kernel``/``ramdisk``/``args`` lines and accepts
files only directly inside /var/run/xen/pygrub; otherwise it shows its user what follows
``RuntimeError: `` on stderr, and turns anything else into an internal error. The
functions below are our reading of those rules (command, parse_output_simple,
parse_exception, sanity_check_path, extract), so each test sees what a XAPI host sees.

XCP-ng's pygrub patches (xcp-ng-rpms/xen SOURCES/pygrub-add-default-and-extra-args.patch,
pygrub-always-boot-default.patch) give --default_args, --extra_args and --vm their meaning.
"""

from __future__ import annotations

import grp
import os
import posixpath
import random
import subprocess
import sys
from pathlib import Path

import pytest
from imaging import make_ext, make_partitioned
from xen import run_xen

from pygrub.settings import DEFAULT_OUTPUT_DIRECTORY

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "guest.img"
#: The venv's installed command, as XAPI's configured pygrub path.
PYGRUB = Path(sys.executable).parent / "pygrub"
#: Where XAPI accepts kernels from, without the slash pygrub's default has.
XAPI_DIR = DEFAULT_OUTPUT_DIRECTORY.rstrip("/")
#: qemu_base's uid plus a domid, as XAPI computes --runas; any uid without passwd entry.
DOMAIN_UID = 43221

KERNEL = random.Random(11).randbytes(200_000)
INITRD = random.Random(12).randbytes(70_001)
XENKERNEL = random.Random(13).randbytes(100_003)
XENINITRD = random.Random(14).randbytes(30_000)
MENU_LST = (
    "default 0\ntimeout 1\n"
    "title Linux\n  kernel /boot/vmlinuz root=/dev/xvda1 ro\n  initrd /boot/initrd.img\n"
    "title Rescue\n  kernel /boot/vmlinuz root=/dev/xvda1 single\n"
)


# -- xenopsd's rules, read from bootloader.ml --------------------------------------------


class BadError(Exception):
    """Bootloader.Bad_error: xenopsd reports an internal error."""


class ErrorFromBootloader(Exception):
    """Bootloader.Error_from_bootloader: the VM start fails with this message (BOOTLOADER_FAILED)."""


def command(disk: str | Path, pv_bootloader_args: str = "", uid: int = DOMAIN_UID) -> list[str]:
    """bootloader.ml ``command`` for Pygrub: no quoting, a plain split on each space."""
    split = pv_bootloader_args.split(" ") if pv_bootloader_args else []
    return [str(PYGRUB), "--output-format=simple", "-q", f"--runas={uid}", *split, str(disk)]


def parse_output_simple(stdout: str) -> tuple[str, str | None, str]:
    """bootloader.ml ``parse_output_simple``: (kernel, ramdisk, args) from the lines."""
    found: dict[str, str] = {}
    for line in stdout.split("\n"):
        if " " not in line:
            continue  # String.index raises Not_found: the line is skipped
        word, value = line.split(" ", 1)
        if word == "":
            continue
        if word not in ("kernel", "ramdisk", "args"):
            raise BadError(f"Unrecognised start of line when parsing bootloader result: {line}")
        if word in found:
            raise BadError(f"More than one {word} line when parsing bootloader result")
        found[word] = value
    if "kernel" not in found:
        raise BadError(f"No kernel found in {stdout}")
    return found["kernel"], found.get("ramdisk"), found.get("args", "")


def parse_exception(stderr: str) -> Exception:
    """bootloader.ml ``parse_exception``: all of stderr after the first ``RuntimeError: ``."""
    mark = "RuntimeError: "
    at = stderr.find(mark)
    if at < 0:
        return BadError(stderr)
    return ErrorFromBootloader(stderr[at + len(mark) :])


def sanity_check_path(path: str) -> str:
    """bootloader.ml ``sanity_check_path`` (normpath stands for resolve_dot_and_dotdot)."""
    if path == "":
        return path
    if not path.startswith("/"):
        raise BadError(f"Bootloader returned a relative path for kernel or ramdisk: {path}")
    canonical = posixpath.normpath(path)
    if posixpath.dirname(canonical) not in (XAPI_DIR, "/var/run/xend/boot"):
        raise BadError(f"Malicious guest? kernel or ramdisk path outside: {path}")
    return canonical


def extract(argv: list[str], here: Path) -> tuple[str, str | None, str]:
    """bootloader.ml ``extract`` with empty legacy and extra args, run in a mount namespace
    where XAPI's directory is ``here``: the printed paths are XAPI's, the files land in
    ``here``, and other runs sharing the host's directory neither see nor disturb ours."""
    os.makedirs(DEFAULT_OUTPUT_DIRECTORY, 0o700, exist_ok=True)
    here.mkdir(mode=0o700, exist_ok=True)
    wrapped = [
        *("unshare", "--mount", "--propagation", "private", "sh", "-c"),
        f'mount --bind "$0" {XAPI_DIR} && exec "$@"',
        str(here),
        *argv,
    ]
    proc = subprocess.run(
        wrapped, capture_output=True, stdin=subprocess.DEVNULL, timeout=120, text=True
    )
    if proc.returncode != 0:
        raise parse_exception(proc.stderr)
    kernel, ramdisk, args = parse_output_simple(proc.stdout)
    kernel = sanity_check_path(kernel)
    ramdisk = None if ramdisk is None else sanity_check_path(ramdisk)
    return kernel, ramdisk, f"{args}  "


def contents(path: str | None, here: Path) -> bytes | None:
    """A file XAPI was told of, read where the namespace put it."""
    if path is None:
        return None
    assert posixpath.dirname(path) == XAPI_DIR
    return (here / posixpath.basename(path)).read_bytes()


def guest(tmp: Path, tree: dict, name: str = "guest.img") -> Path:
    disk = make_partitioned(tmp, [(make_ext(tmp, tree, size_mb=8), "83")], name=name)
    # As XAPI attaches a VDI in dom0: group disk, mode 0660, which the reader (no groups)
    # cannot open; it reads through the descriptor root opened.
    os.chown(disk, 0, grp.getgrnam("disk").gr_gid)
    disk.chmod(0o660)
    return disk


def menu_guest(tmp: Path) -> Path:
    tree = {"boot/grub/menu.lst": MENU_LST, "boot/vmlinuz": KERNEL, "boot/initrd.img": INITRD}
    return guest(tmp, tree)


# -- the parser's own checks (so that a test below can fail) -----------------------------


def test_the_reading_of_bootloader_ml_refuses_what_xenopsd_refuses():
    ok = "kernel /var/run/xen/pygrub/k\nargs a b\n\n"
    assert parse_output_simple(ok) == ("/var/run/xen/pygrub/k", None, "a b")
    for bad in ("kernel /a\nkernel /b\n", "args x\n", "linux (kernel '/k')\n"):
        with pytest.raises(BadError):
            parse_output_simple(bad)
    for path in ("/tmp/k", "boot_kernel.x", "/var/run/xen/pygrub/../../../etc/shadow"):
        with pytest.raises(BadError):
            sanity_check_path(path)
    assert sanity_check_path("/var/run/xen/pygrub//boot_kernel.x") == f"{XAPI_DIR}/boot_kernel.x"
    assert isinstance(parse_exception("Traceback ...\nOSError: x\n"), BadError)
    assert str(parse_exception("a\nb: RuntimeError: no disk\n")) == "no disk\n"


# -- XAPI's command line -----------------------------------------------------------------


def test_xapi_boots_the_sample(tmp_path, needs_root):
    here = tmp_path / "pygrub"
    kernel, ramdisk, args = extract(command(SAMPLE), here)
    assert contents(kernel, here) == b"pygrub sample: a stand-in for vmlinuz-6.1.0-28-amd64\n"
    assert contents(ramdisk, here) == b"pygrub sample: a stand-in for initrd.img-6.1.0-28-amd64\n"
    assert args == "root=UUID=5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11 ro console=hvc0 quiet  "
    assert sorted(p.name for p in here.iterdir()) == sorted(
        posixpath.basename(p) for p in (kernel, ramdisk)
    )


def test_xapi_boots_what_xens_pygrub_boots(tmp_path, needs_root):
    """Our answer to XAPI's command line is Xen 4.17's for the same disk (the oracle)."""
    disk = menu_guest(tmp_path)
    here = tmp_path / "pygrub"
    kernel, ramdisk, args = extract(command(disk), here)
    xen_dir = tmp_path / "xen"
    xen_dir.mkdir()
    xen = run_xen("--output-format=simple", "-q", f"--output-directory={xen_dir}", disk)
    assert xen.returncode == 0, xen.stderr
    xen_kernel, xen_ramdisk, xen_args = parse_output_simple(xen.stdout.decode())
    assert contents(kernel, here) == Path(xen_kernel).read_bytes() == KERNEL
    assert contents(ramdisk, here) == Path(xen_ramdisk or "").read_bytes() == INITRD
    assert args == xen_args + "  " == "root=/dev/xvda1 ro  "


def test_pv_bootloader_args_reach_pygrub_split_on_spaces(tmp_path, needs_root):
    disk = menu_guest(tmp_path)
    here = tmp_path / "pygrub"
    kernel, ramdisk, args = extract(command(disk, "--entry=Rescue --args=console=hvc0"), here)
    assert contents(kernel, here) == KERNEL and ramdisk is None
    assert args == "root=/dev/xvda1 single console=hvc0  "


def test_an_unbootable_guest_is_a_bootloader_error_with_our_line(tmp_path, needs_root):
    """XAPI shows our one line; Xen's pygrub prints no mark here: an internal error."""
    broken = MENU_LST.replace("/boot/vmlinuz", "/boot/vmlinuz-gone")
    disk = guest(tmp_path, {"boot/grub/menu.lst": broken, "boot/initrd.img": INITRD})
    here = tmp_path / "pygrub"
    with pytest.raises(ErrorFromBootloader) as ours:
        extract(command(disk), here)
    message = str(ours.value)
    assert message.startswith("nothing bootable found: (hd0,msdos1) MBR partition 1")
    assert "('Linux': /boot/vmlinuz-gone not found)" in message
    assert message.count("\n") == 1 and message.endswith("\n")
    assert list(here.iterdir()) == []
    xen_dir = tmp_path / "xen"
    xen_dir.mkdir()
    xen = run_xen("--output-format=simple", "-q", f"--output-directory={xen_dir}", disk)
    assert xen.returncode == 1
    assert isinstance(parse_exception(xen.stderr.decode()), BadError)


def test_an_image_that_is_not_a_disk_is_a_bootloader_error(tmp_path, needs_root):
    """Here Xen's pygrub reaches XAPI too, by the last line of its traceback."""
    junk = tmp_path / "junk.img"
    junk.write_bytes(random.Random(3).randbytes(1 << 20))
    junk.chmod(0o644)
    here = tmp_path / "pygrub"
    with pytest.raises(ErrorFromBootloader) as ours:
        extract(command(junk), here)
    assert str(ours.value) == (
        "nothing bootable found: (hd0) whole disk: no filesystem "
        "(no filesystem pygrub recognises)\n"
    )
    assert list(here.iterdir()) == []
    xen_dir = tmp_path / "xen"
    xen_dir.mkdir()
    xens = parse_exception(run_xen("-q", f"--output-directory={xen_dir}", junk).stderr.decode())
    assert isinstance(xens, ErrorFromBootloader)
    assert str(xens) == "Unable to find partition containing kernel\n"


def test_a_bad_pv_bootloader_arg_is_shown_to_the_user(tmp_path, needs_root):
    """Xen's pygrub prints its usage only (an internal error in XAPI); ours ends on the mark."""
    here = tmp_path / "pygrub"
    with pytest.raises(ErrorFromBootloader) as ours:
        extract(command(SAMPLE, "--entyr=1"), here)
    assert str(ours.value) == "option --entyr not recognized\n"
    xen = run_xen("--output-format=simple", "-q", "--entyr=1", SAMPLE)
    assert isinstance(parse_exception(xen.stderr.decode()), BadError)


# -- XCP-ng's flags ----------------------------------------------------------------------


def test_old_xapis_flags_and_vm_are_accepted(tmp_path, needs_root):
    """xenopsd before --runas passed -q --default_args= --extra_args= --vm=UUID (XCP-ng
    patches pygrub for them); with no /xenkernel that boots the menu's default."""
    disk = menu_guest(tmp_path)
    old = "--default_args= --extra_args= --vm=0d5f1c2e-7a4b-4c1e-9d3a-2b8f6e4a1c77"
    kernel, ramdisk, args = extract(command(disk, old), tmp_path / "a")
    assert contents(kernel, tmp_path / "a") == KERNEL
    assert contents(ramdisk, tmp_path / "a") == INITRD
    assert args == "root=/dev/xvda1 ro  "
    # getopt's other spelling, as a split on spaces makes of "--vm UUID"
    assert extract(command(disk, "--vm 0d5f1c2e"), tmp_path / "b")[2] == args


def test_extra_args_are_appended_to_what_boots(tmp_path, needs_root):
    disk = menu_guest(tmp_path)
    args = extract(command(disk, "--args=quiet --extra_args=console=hvc0"), tmp_path / "a")[2]
    assert args == "root=/dev/xvda1 ro quiet console=hvc0  "
    given = "--kernel=/boot/vmlinuz --args=root=/dev/xvda2 --extra_args=nomodeset"
    kernel, ramdisk, args = extract(command(disk, given), tmp_path / "b")
    assert (contents(kernel, tmp_path / "b"), ramdisk) == (KERNEL, None)
    assert args == "root=/dev/xvda2 nomodeset  "


@pytest.mark.parametrize("where", ["", "boot/"])
def test_default_args_boot_xenkernel_before_any_config(tmp_path, needs_root, where):
    tree = {
        "boot/grub/menu.lst": MENU_LST,
        "boot/vmlinuz": KERNEL,
        "boot/initrd.img": INITRD,
        f"{where}xenkernel": XENKERNEL,
    }
    if where == "":
        tree["xeninitrd"] = XENINITRD
    disk = guest(tmp_path, tree)
    flags = "--default_args=root=/dev/xvda1 --extra_args=console=hvc0 --entry=Rescue"
    kernel, ramdisk, args = extract(command(disk, flags), tmp_path / "a")
    assert contents(kernel, tmp_path / "a") == XENKERNEL
    assert contents(ramdisk, tmp_path / "a") == (XENINITRD if where == "" else None)
    assert args == "root=/dev/xvda1 console=hvc0  "
    # Without the flag a /xenkernel means nothing, as to Xen's pygrub.
    kernel, _ramdisk, args = extract(command(disk), tmp_path / "b")
    assert contents(kernel, tmp_path / "b") == KERNEL and args == "root=/dev/xvda1 ro  "


def test_default_args_without_xenkernel_change_nothing(tmp_path, needs_root):
    disk = menu_guest(tmp_path)
    plain = extract(command(disk), tmp_path / "a")
    flagged = extract(command(disk, "--default_args=root=/dev/sda1"), tmp_path / "b")
    assert plain[2] == flagged[2] == "root=/dev/xvda1 ro  "
    assert contents(flagged[0], tmp_path / "b") == KERNEL
