"""A bootable guest on FAT, ISO9660, UFS1, UFS2, F2FS, EROFS and ReiserFS through the whole
command, as a raw filesystem and inside an MBR partition."""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest
from imaging import make_f2fs, make_fat, make_partitioned, run, write_tree

KERNEL = os.urandom(150_000)
INITRD = os.urandom(40_003)
MENU_LST = "default 0\ntimeout 1\ntitle Guest\n  kernel /boot/vmlinuz root=/dev/xvda1 ro\n  initrd /boot/initrd.img\n"
TREE = {"boot/grub/menu.lst": MENU_LST, "boot/vmlinuz": KERNEL, "boot/initrd.img": INITRD}
REISER = Path(__file__).parent / "fixtures" / "reiserfs"
EROFS = Path(__file__).parent / "fixtures" / "erofs"


def fat(tmp: Path) -> Path:
    return make_fat(tmp, TREE, bits=16, size_kb=16 * 1024, name="fat.img")


def iso(tmp: Path) -> Path:
    src = write_tree(tmp / "iso.d", TREE)
    image = tmp / "iso.img"
    run("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-o", image, src)
    return image


def ufs(version: int):
    def make(tmp: Path) -> Path:
        src = write_tree(tmp / "ufs.d", TREE)
        image = tmp / f"ufs{version}.img"
        run("makefs", "-t", "ffs", "-B", "le", "-s", "8m", "-o", f"version={version}", image, src)
        return image

    return make


F2FS_UUID = "3e1f3a54-2f4b-4c2d-9a57-2b0f3f0c6d11"
#: A /boot of its own, found as GRUB finds it: by the filesystem's UUID.
GRUB_CFG = f"""set default=0
set timeout=1
menuentry 'Guest' {{
  search --no-floppy --fs-uuid --set=root {F2FS_UUID}
  linux /vmlinuz root=/dev/xvda1 ro
  initrd /initrd.img
}}
"""


def f2fs(tmp: Path) -> Path:
    boot = {"grub/grub.cfg": GRUB_CFG, "vmlinuz": KERNEL, "initrd.img": INITRD}
    return make_f2fs(tmp, boot, options=("-U", F2FS_UUID, "-l", "boot"), name="f2fs.img")


def erofs(*options: str):
    def make(tmp: Path) -> Path:
        src = write_tree(tmp / "erofs.d", TREE)
        image = tmp / "erofs.img"
        run("mkfs.erofs", "--quiet", *options, image, src)
        return image

    return make


BUILDERS = {
    "fat16": fat,
    "iso9660": iso,
    "ufs1": ufs(1),
    "ufs2": ufs(2),
    "erofs": erofs(),
    "erofs-lz4hc": erofs("-zlz4hc", "-Eztailpacking"),
    "f2fs": f2fs,
}


def pygrub(image: Path, out: Path) -> dict[str, str]:
    out.mkdir(exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pygrub",
            "-q",
            "--output-format=simple",
            f"--output-directory={out}",
            str(image),
        ],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return dict(line.split(" ", 1) for line in proc.stdout.decode().splitlines() if line)


@pytest.mark.parametrize("partitioned", [False, True], ids=["raw", "mbr"])
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_guest_boots(tmp_path, kind, partitioned):
    image = BUILDERS[kind](tmp_path)
    if partitioned:
        image = make_partitioned(tmp_path, [(image, "83")])
    items = pygrub(image, tmp_path / "out")
    assert Path(items["kernel"]).read_bytes() == KERNEL
    assert Path(items["ramdisk"]).read_bytes() == INITRD
    assert items["args"] == "root=/dev/xvda1 ro"


@pytest.mark.parametrize("partitioned", [False, True], ids=["raw", "mbr"])
def test_reiserfs_guest_boots(tmp_path, partitioned):
    """The committed ReiserFS image (populated by a real kernel) holds a GRUB 2 guest."""
    manifest = json.loads((REISER / "manifest.json").read_text())
    image = tmp_path / "reiser.img"
    image.write_bytes(lzma.decompress((REISER / "reiserfs-3.6-r5-4k.img.xz").read_bytes()))
    if partitioned:
        image = make_partitioned(tmp_path, [(image, "83")])
    items = pygrub(image, tmp_path / "out")
    kernel = hashlib.sha256(Path(items["kernel"]).read_bytes()).hexdigest()
    assert kernel == manifest["tree"]["/boot/vmlinuz-6.1"]["sha256"]
    assert "ramdisk" not in items  # its grub.cfg loads no initrd


@pytest.mark.parametrize("partitioned", [False, True], ids=["raw", "mbr"])
@pytest.mark.parametrize("name", ["zstd", "lzma-all-fragments"])
def test_erofs_1_8_guest_boots(tmp_path, name, partitioned):
    """Committed images of erofs-utils 1.8 hold a GRUB 2 guest with a kernel and initrd."""
    manifest = json.loads((EROFS / "manifest.json").read_text())
    image = tmp_path / "erofs.img"
    image.write_bytes(lzma.decompress((EROFS / f"{name}.img.xz").read_bytes()))
    if partitioned:
        image = make_partitioned(tmp_path, [(image, "83")])
    items = pygrub(image, tmp_path / "out")
    for item, path in (("kernel", "/boot/vmlinuz-6.1"), ("ramdisk", "/boot/initrd.img-6.1")):
        digest = hashlib.sha256(Path(items[item]).read_bytes()).hexdigest()
        assert digest == manifest["tree"][path]["sha256"], item
