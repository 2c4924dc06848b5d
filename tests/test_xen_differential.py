"""Side by side with Xen 4.17's pygrub on images both can read: same output, same bytes.

Each case runs both programs with the same arguments on the same image and compares what
they print (the random part of mkstemp names aside) and the files they extract.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from imaging import make_ext, make_partitioned
from xen import normalise, run_xen

KERNEL = os.urandom(300_000)
INITRD = os.urandom(123_457)

MENU_LST = """\
# menu.lst written by update-grub
default		{default}
timeout		5
hiddenmenu

title		Debian GNU/Linux, kernel 6.1.0-13-amd64
root		(hd0,0)
kernel		/boot/vmlinuz-6.1.0-13-amd64 root=/dev/xvda1 ro console=hvc0 quiet
initrd		/boot/initrd.img-6.1.0-13-amd64

title		Debian GNU/Linux, kernel 6.1.0-13-amd64 (single-user mode)
root		(hd0,0)
kernel		/boot/vmlinuz-6.1.0-13-amd64 root=/dev/xvda1 ro console=hvc0 single
initrd		/boot/initrd.img-6.1.0-13-amd64

title		Rescue kernel without initrd
root		(hd0,0)
kernel		/boot/vmlinuz-rescue root=/dev/xvda1 ro 'quoted arg' it's
"""


def guest_tree(default: int = 0) -> dict:
    return {
        "boot/grub/menu.lst": MENU_LST.format(default=default),
        "boot/vmlinuz-6.1.0-13-amd64": KERNEL,
        "boot/initrd.img-6.1.0-13-amd64": INITRD,
        "boot/vmlinuz-rescue": KERNEL[::-1],
    }


def run_ours(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pygrub", *map(str, args)],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def extracted(output: bytes, fmt: str) -> list[bytes]:
    """The contents of the files an output names, in order."""
    if fmt == "sxp":
        import re

        paths = re.findall(rb"\((?:kernel|ramdisk) '([^']+)'\)", output)
    else:
        sep = b"\0" if fmt == "simple0" else b"\n"
        paths = [
            item.split(b" ", 1)[1]
            for item in output.split(sep)
            if item.startswith((b"kernel ", b"ramdisk "))
        ]
    return [Path(os.fsdecode(p)).read_bytes() for p in paths]


def compare(tmp_path: Path, image: Path, *args: str, fmt: str = "sxp") -> bytes:
    outputs = []
    for name, runner in (("xen", run_xen), ("ours", run_ours)):
        directory = tmp_path / name
        directory.mkdir(exist_ok=True)
        proc = runner(
            "-q", f"--output-format={fmt}", f"--output-directory={directory}", *args, image
        )
        assert proc.returncode == 0, f"{name}: {proc.stderr.decode()}"
        outputs.append(proc.stdout)
    xen, ours = outputs
    assert normalise(ours).replace(b"/ours/", b"/xen/") == normalise(xen)
    assert extracted(ours, fmt) == extracted(xen, fmt)
    return ours


@pytest.fixture(scope="module")
def whole_disk(tmp_path_factory):
    return make_ext(tmp_path_factory.mktemp("whole"), guest_tree(), size_mb=16)


@pytest.fixture(scope="module")
def mbr_disk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mbr")
    fs = make_ext(tmp, guest_tree(default=1), size_mb=16)
    return make_partitioned(tmp, [(fs, "83")])


@pytest.mark.parametrize("fmt", ["sxp", "simple", "simple0"])
def test_whole_disk_default_entry(tmp_path, whole_disk, fmt):
    out = compare(tmp_path, whole_disk, fmt=fmt)
    assert b"root=/dev/xvda1 ro console=hvc0 quiet" in out


@pytest.mark.parametrize("fmt", ["sxp", "simple0"])
def test_partitioned_disk_default_1(tmp_path, mbr_disk, fmt):
    out = compare(tmp_path, mbr_disk, fmt=fmt)
    assert b"single" in out


def test_entry_without_initrd_has_no_ramdisk(tmp_path, whole_disk):
    out = compare(tmp_path, whole_disk, "--entry=2")
    assert b"ramdisk" not in out and b"it's" in out
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "ours").iterdir()) == ["boot_kernel"]


def test_entry_by_title(tmp_path, whole_disk):
    compare(
        tmp_path, whole_disk, "--entry=Debian GNU/Linux, kernel 6.1.0-13-amd64 (single-user mode)"
    )


def test_args_are_appended(tmp_path, whole_disk):
    out = compare(tmp_path, whole_disk, "--args=xencons=tty", fmt="simple")
    assert out.endswith(b"args root=/dev/xvda1 ro console=hvc0 quiet xencons=tty\n\n")


def test_given_kernel_and_ramdisk_skip_the_menu(tmp_path, whole_disk):
    out = compare(
        tmp_path,
        whole_disk,
        "--kernel=/boot/vmlinuz-rescue",
        "--ramdisk=/boot/initrd.img-6.1.0-13-amd64",
        "--args=root=/dev/xvda1",
        fmt="simple0",
    )
    assert out.endswith(b"args root=/dev/xvda1\0\0")


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_relative_output_directory_gives_absolute_paths(tmp_path, whole_disk, monkeypatch, slash):
    monkeypatch.chdir(tmp_path)
    outputs = []
    for name, runner in (("xen", run_xen), ("ours", run_ours)):
        (tmp_path / name).mkdir()
        proc = runner(
            "-q", "--output-format=simple0", f"--output-directory={name}{slash}", whole_disk
        )
        assert proc.returncode == 0, f"{name}: {proc.stderr.decode()}"
        outputs.append(proc.stdout)
    xen, ours = outputs
    assert ours.startswith(b"kernel " + os.fsencode(tmp_path) + b"/ours/boot_kernel.")
    assert normalise(ours).replace(b"/ours/", b"/xen/") == normalise(xen)
    assert extracted(ours, "simple0") == extracted(xen, "simple0")


def test_offset_skips_discovery(tmp_path, mbr_disk):
    compare(tmp_path, mbr_disk, f"--offset={1 << 20}")


def test_not_really(tmp_path, whole_disk):
    out = compare(tmp_path, whole_disk, "-n")
    assert out == b"linux (kernel None)(args 'root=/dev/xvda1 ro console=hvc0 quiet')"
    assert list((tmp_path / "ours").iterdir()) == []


SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "guest.img"


@pytest.mark.parametrize("fmt", ["sxp", "simple0"])
def test_grub2_sample_guest(tmp_path, fmt):
    out = compare(tmp_path, SAMPLE, fmt=fmt)
    assert b"console=hvc0 quiet" in out


def test_grub2_entry_in_the_advanced_submenu(tmp_path):
    # Xen flattens the submenu; GRUB counts it as item 1 and opens its first entry.
    out = compare(tmp_path, SAMPLE, "--entry=1")
    assert b"ro single" in out


# Debian 12's grub-mkconfig layout with two kernels: the "Advanced options" submenu holds
# four entries, so GRUB's numbering (a submenu is one item) and Xen's (every entry of the
# flattened list) disagree from --entry=1 on.
SUBMENU_KERNELS = {f"vmlinuz-{v}": os.urandom(70_000 + i) for i, v in enumerate(("new", "old"))}
SUBMENU_CFG = """\
set default="0"
set timeout=5
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux $menuentry_id_option 'gnulinux-simple' {
\tinsmod ext2
\tlinux\t/boot/vmlinuz-new root=/dev/xvda1 ro quiet
\tinitrd\t/boot/initrd.img
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced' {
\tmenuentry 'Debian GNU/Linux, with Linux new' --class debian $menuentry_id_option 'gnulinux-new' {
\t\tlinux\t/boot/vmlinuz-new root=/dev/xvda1 ro quiet
\t\tinitrd\t/boot/initrd.img
\t}
\tmenuentry 'Debian GNU/Linux, with Linux new (recovery mode)' --class debian $menuentry_id_option 'gnulinux-new-recovery' {
\t\tlinux\t/boot/vmlinuz-new root=/dev/xvda1 ro single
\t\tinitrd\t/boot/initrd.img
\t}
\tmenuentry 'Debian GNU/Linux, with Linux old' --class debian $menuentry_id_option 'gnulinux-old' {
\t\tlinux\t/boot/vmlinuz-old root=/dev/xvda1 ro quiet
\t\tinitrd\t/boot/initrd.img
\t}
\tmenuentry 'Debian GNU/Linux, with Linux old (recovery mode)' --class debian $menuentry_id_option 'gnulinux-old-recovery' {
\t\tlinux\t/boot/vmlinuz-old root=/dev/xvda1 ro single
\t\tinitrd\t/boot/initrd.img
\t}
}
"""


@pytest.fixture(scope="module")
def submenu_disk(tmp_path_factory):
    tree = {"boot/grub/grub.cfg": SUBMENU_CFG, "boot/initrd.img": INITRD}
    tree.update({f"boot/{name}": data for name, data in SUBMENU_KERNELS.items()})
    return make_ext(tmp_path_factory.mktemp("submenu"), tree, size_mb=16)


@pytest.mark.parametrize("number", ["0", "1", "2", "3", "4", "5", "-1", "+3", " 4 "])
def test_entry_number_counts_as_xen_does_on_a_submenu_config(tmp_path, submenu_disk, number):
    # Entries 1-4 are in the submenu; 5 and -1 name none, and both boot the default.
    out = compare(tmp_path, submenu_disk, f"--entry={number}", fmt="simple")
    expected = {
        "0": ("new", "quiet"),
        "1": ("new", "quiet"),
        "2": ("new", "single"),
        "3": ("old", "quiet"),
        "+3": ("old", "quiet"),
        "4": ("old", "single"),
        " 4 ": ("old", "single"),
    }.get(number, ("new", "quiet"))
    kernel, args_word = expected
    assert extracted(out, "simple")[0] == SUBMENU_KERNELS[f"vmlinuz-{kernel}"]
    assert f"ro {args_word}\n".encode() in out


def test_entry_number_is_the_nth_entry_l_lists(submenu_disk):
    # -l's order is the order --entry=N counts, in both programs.
    titles = []
    for runner in (run_xen, run_ours):
        proc = runner("-l", submenu_disk)
        assert proc.returncode == 0, proc.stderr.decode()
        titles.append(
            [line[7:] for line in proc.stdout.decode().splitlines() if line.startswith("title: ")]
        )
    assert titles[0] == titles[1] and len(titles[1]) == 5


def test_grub_counting_is_a_path(tmp_path, submenu_disk):
    # GRUB's own numbering stays reachable: item 1 is the submenu, 1>2 its third entry.
    proc = run_ours(
        "-q",
        "--output-format=simple",
        f"--output-directory={tmp_path}",
        "--entry=1>2",
        submenu_disk,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert extracted(proc.stdout, "simple")[0] == SUBMENU_KERNELS["vmlinuz-old"]
    assert b"ro quiet\n" in proc.stdout
