"""Files that are no disk pygrub reads, named for what they are, with the way out.

The fixtures are made by the real tools (qemu-img, gzip, xz, zstd, bzip2) from a real
guest disk; the way out each message gives is then run as the shell would, and its
result must boot: the message is checked by what it makes happen, not only by its words.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from imaging import make_ext, make_partitioned, require_tool, run

import pygrub

KERNEL = os.urandom(50_000)
MENU_LST = "default 0\ntitle Linux\n  root (hd0,0)\n  kernel /boot/vmlinuz root=/dev/xvda1\n"


def pygrub_cli(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pygrub", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.fixture(scope="module")
def guest_disk(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("guest")
    fs = make_ext(tmp, {"boot/grub/menu.lst": MENU_LST, "boot/vmlinuz": KERNEL}, size_mb=8)
    return make_partitioned(tmp, [(fs, "83")])


def boots(image: Path, cwd: Path) -> bool:
    out = cwd / "out"
    out.mkdir(exist_ok=True)
    proc = pygrub_cli("-q", "--output-format=simple", f"--output-directory={out}", image, cwd=cwd)
    if proc.returncode != 0:
        return False
    kernel = proc.stdout.split("\n")[0].removeprefix("kernel ")
    return Path(kernel).read_bytes() == KERNEL


def way_out(message: str) -> str:
    """The shell command a message suggests, between its last parentheses."""
    return message[message.rindex("(") + 1 : message.rindex(")")]


CONVERTED = [
    # (qemu-img format and options, file name, what the message calls it)
    (["-O", "vmdk"], "guest.vmdk", "a VMDK image (sparse extent)"),
    (
        ["-O", "vmdk", "-o", "subformat=streamOptimized"],
        "guest.vmdk",
        "a VMDK image (sparse extent)",
    ),
    (
        ["-O", "vmdk", "-o", "subformat=monolithicFlat"],
        "guest.vmdk",
        "a VMDK image (descriptor file)",
    ),
    (["-O", "vpc"], "guest.vhd", "a VHD image (dynamic)"),
    (["-O", "vhdx"], "guest.vhdx", "a VHDX image"),
    (["-O", "vdi"], "guest.vdi", "a VDI image"),
]


@pytest.mark.parametrize(("options", "name", "what"), CONVERTED)
def test_image_formats_are_named_and_their_conversion_boots(
    tmp_path, guest_disk, options, name, what
):
    image = tmp_path / name
    run("qemu-img", "convert", "-f", "raw", *options, guest_disk, image)
    proc = pygrub_cli("-q", name, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    stem = name.rsplit(".", 1)[0]
    assert proc.stderr == (
        f"pygrub: error: RuntimeError: disk image {name} is {what}, which pygrub does not read: "
        f"convert it first (qemu-img convert -O raw {name} {stem}.raw)\n"
    )
    require_tool("qemu-img")
    subprocess.run(way_out(proc.stderr), shell=True, cwd=tmp_path, check=True)
    assert boots(tmp_path / f"{stem}.raw", tmp_path)


COMPRESSORS = [("gzip", ".gz"), ("xz", ".xz"), ("zstd", ".zst"), ("bzip2", ".bz2")]


@pytest.mark.parametrize(("tool", "suffix"), COMPRESSORS)
def test_compressed_images_are_named_and_their_decompression_boots(
    tmp_path, guest_disk, tool, suffix
):
    packed = tmp_path / f"guest.img{suffix}"
    packed.write_bytes(run(tool, "-c", guest_disk))
    proc = pygrub_cli("-q", packed.name, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"pygrub: error: RuntimeError: disk image guest.img{suffix} is {tool}-compressed, which pygrub does "
        f"not read: decompress it first ({tool} -dc guest.img{suffix} > guest.img)\n"
    )
    require_tool(tool)
    subprocess.run(way_out(proc.stderr), shell=True, cwd=tmp_path, check=True)
    assert boots(tmp_path / "guest.img", tmp_path)


def test_a_name_without_the_suffix_is_decompressed_beside_it(tmp_path, guest_disk):
    packed = tmp_path / "disk image"
    packed.write_bytes(run("xz", "-c", "-0", guest_disk))
    proc = pygrub_cli("-q", packed.name, cwd=tmp_path)
    assert way_out(proc.stderr) == "xz -dc 'disk image' > 'disk image.raw'"


def test_a_fixed_vhd_is_the_raw_disk_it_holds(tmp_path, guest_disk):
    fixed = tmp_path / "guest.vhd"
    run("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", guest_disk, fixed)
    assert boots(fixed, tmp_path)
    empty = tmp_path / "empty.vhd"
    run("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", empty, "8M")
    proc = pygrub_cli("-q", empty.name, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == (
        "pygrub: error: RuntimeError: disk image empty.vhd is a fixed VHD image, read as the raw disk in "
        "it: no volume there holds a filesystem pygrub reads\n"
    )


def test_a_filesystem_is_never_misnamed(tmp_path):
    """A whole-disk ext4 whose unused boot block starts like a VMDK, a gzip or a config."""
    for head in (b"KDMV", b"\x1f\x8b\x08", b"vhdxfile", b"menuentry x {\nlinux /vmlinuz\n"):
        fs = make_ext(tmp_path, {"boot/grub/menu.lst": MENU_LST, "boot/vmlinuz": KERNEL})
        with open(fs, "r+b") as f:
            f.write(head)
        with pygrub.open_image(fs) as image:
            assert image.choose().kernel == "/boot/vmlinuz"


@pytest.mark.parametrize(
    ("name", "text", "word"),
    [
        ("grub.cfg", "set default=0\nmenuentry 'Debian' {\n\tlinux /vmlinuz\n}\n", "menuentry"),
        ("menu.lst", "default 0\ntimeout 5\ntitle Debian\n  kernel /vmlinuz\n", "default"),
        ("extlinux.conf", "DEFAULT linux\nLABEL linux\n  KERNEL /vmlinuz\n", "default"),
        ("loader.conf", "timeout 3\ndefault debian-*\n", "timeout"),
        ("lilo.conf", "boot=/dev/xvda\nimage=/vmlinuz\n  label=linux\n", "image"),
    ],
)
def test_a_config_given_as_the_image_points_to_isconfig(tmp_path, name, text, word):
    (tmp_path / name).write_text(text)
    proc = pygrub_cli("-q", name, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"pygrub: error: RuntimeError: disk image {name} is a text file that looks like a bootloader config "
        f"(lines start with {word!r}), not a disk image: to read a config file, give "
        f"--isconfig (pygrub --isconfig {name})\n"
    )


@pytest.mark.parametrize(
    "content",
    [
        b"kernel panics are rare\nand this is prose\n",  # one config word: prose, maybe
        b"title x\nkernel y\n\x00",  # a NUL: not text
        b"title \xff\xfe\nkernel y\n",  # not UTF-8
        bytes(4096),  # a blank disk
    ],
)
def test_other_files_get_the_usual_message(tmp_path, content):
    (tmp_path / "file").write_bytes(content)
    proc = pygrub_cli("-q", "file", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "pygrub: error: RuntimeError: nothing bootable found: (hd0) whole disk: "
    )


def test_an_empty_image_says_so(tmp_path):
    (tmp_path / "empty.img").touch()
    proc = pygrub_cli("-q", "empty.img", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        1,
        "pygrub: error: RuntimeError: disk image empty.img is empty (0 bytes)\n",
    )
    run("qemu-img", "create", "-q", "-f", "qcow2", tmp_path / "empty.qcow2", "0")
    proc = pygrub_cli("-q", "empty.qcow2", cwd=tmp_path)
    assert (
        proc.stderr
        == "pygrub: error: RuntimeError: disk image empty.qcow2 is empty (a qcow2 image of 0 bytes)\n"
    )


def test_offset_past_the_end_names_the_image_and_its_size(tmp_path, guest_disk):
    size = guest_disk.stat().st_size
    for offset in (size, size + 1, 1 << 62):
        proc = pygrub_cli("-q", f"--offset={offset}", guest_disk, cwd=tmp_path)
        assert (proc.returncode, proc.stderr) == (
            1,
            f"pygrub: error: RuntimeError: offset {offset} is at or past the end of disk image "
            f"{guest_disk} ({size} bytes)\n",
        )
    assert boots_at(guest_disk, 1 << 20, tmp_path)


def boots_at(image: Path, offset: int, cwd: Path) -> bool:
    proc = pygrub_cli("-q", "-n", f"--offset={offset}", image, cwd=cwd)
    return proc.returncode == 0 and proc.stdout.startswith("linux (kernel None)")
