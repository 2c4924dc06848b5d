"""Each filesystem's UUID and label as GRUB spells them, so that ``search --fs-uuid`` and
``search --label`` in a guest's grub.cfg find the volume GRUB would.

The oracle is ``grub-probe -t fs_uuid`` / ``-t fs_label`` on the same image; where GRUB
gives a filesystem no UUID or label, pygrub must have none either (a search for it then
fails in both). Images are made by each filesystem's own tools, or are the committed
fixtures that the real ReiserFS and ZFS wrote.
"""

from __future__ import annotations

import lzma
import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from imaging import MiB, make_ext, make_f2fs, make_fat, require_tool, run, write_tree

from pygrub.disk import FileSource
from pygrub.fs import probe

FIXTURES = Path(__file__).parent / "fixtures"
TREE = {"boot/grub/grub.cfg": "set default=0\n", "boot/vmlinuz": os.urandom(5000)}
#: mkfs.xfs refuses filesystems under 300 MB unless it believes fstests runs it.
SMALL_XFS_ENV = {"TEST_DIR": "/tmp", "TEST_DEV": "/dev/null", "QA_CHECK_FS": "xfs"}


def grub_probe(image: Path, target: str) -> str | None:
    """What grub-probe prints for ``target`` of the filesystem in ``image``; None if it
    says the filesystem has no such thing."""
    argv = [require_tool("grub-probe"), "-t", target, "-d", str(image)]
    proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    if proc.returncode != 0:
        assert b"does not support" in proc.stderr or b"unknown" in proc.stderr, proc.stderr
        return None
    value = proc.stdout.decode().rstrip("\n")
    # An empty label, and a FAT's missing one (a NULL GRUB's printf spells "(null)").
    return None if value in ("", "(null)") else value


def ext4(tmp: Path) -> Path:
    return make_ext(tmp, TREE, size_mb=8, options=("-L", "rootfs", "-U", str(_uuid())))


def ext2_unlabelled(tmp: Path) -> Path:
    return make_ext(tmp, TREE, size_mb=8, fstype="ext2")


def xfs(tmp: Path) -> Path:
    image = tmp / "xfs.img"
    with open(image, "wb") as f:
        f.truncate(32 * MiB)
    proc = subprocess.run(
        [require_tool("mkfs.xfs"), "-q", "-L", "boot", str(image)],
        env={**os.environ, **SMALL_XFS_ENV},
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return image


def btrfs(tmp: Path) -> Path:
    image = tmp / "btrfs.img"
    src = write_tree(tmp / "btrfs.d", TREE)
    with open(image, "wb") as f:
        f.truncate(128 * MiB)
    run("mkfs.btrfs", "-q", "-f", "-L", "ubuntu-root", "--rootdir", src, image)
    return image


def fat(bits: int, label: bool) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        options = ("-i", secrets.token_hex(4), *(("-n", "EFI SYSTEM") if label else ()))
        size_kb = {12: 4, 16: 16, 32: 40}[bits] * 1024
        return make_fat(tmp, TREE, bits=bits, size_kb=size_kb, name="fat.img", options=options)

    return make


def iso9660(tmp: Path) -> Path:
    image = tmp / "cd.iso"
    src = write_tree(tmp / "iso.d", TREE)
    run(
        "xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "Debian 12 amd64", "-o", image, src
    )
    return image


def squashfs(tmp: Path) -> Path:
    image = tmp / "root.squashfs"
    src = write_tree(tmp / "squashfs.d", TREE)
    run("mksquashfs", src, image, "-noappend", "-quiet", "-no-progress")
    return image


def ufs(version: int) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        image = tmp / f"ufs{version}.img"
        src = write_tree(tmp / "ufs.d", TREE)
        run("makefs", "-t", "ffs", "-B", "le", "-s", "8m", "-o", f"version={version}", image, src)
        return image

    return make


def f2fs(label: str | None) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        # The label is UTF-16 on disk: one past the Basic Multilingual Plane too.
        options = ("-U", _uuid(), *(("-l", label) if label else ()))
        return make_f2fs(tmp, TREE, options=options, name="f2fs.img")

    return make


def fixture(kind: str, name: str) -> Callable[[Path], Path]:
    def unpack(tmp: Path) -> Path:
        image = tmp / name
        with lzma.open(FIXTURES / kind / f"{name}.img.xz") as src:
            image.write_bytes(src.read())
        return image

    return unpack


def _uuid() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-a{raw[17:20]}-{raw[20:]}"


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "ext4": ext4,
    "ext2-unlabelled": ext2_unlabelled,
    "xfs": xfs,
    "btrfs": btrfs,
    "fat12-unlabelled": fat(12, False),
    "fat16": fat(16, True),
    "fat32": fat(32, True),
    "iso9660": iso9660,
    "squashfs": squashfs,
    "f2fs": f2fs("Android data \U0001f4be"),
    "f2fs-unlabelled": f2fs(None),
    "ufs1": ufs(1),
    "ufs2": ufs(2),
    "reiserfs": fixture("reiserfs", "reiserfs-3.6-r5-4k"),
    "zfs-bootfs": fixture("zfs", "boot"),
    "zfs-bpool": fixture("zfs", "bpool"),
}


@pytest.mark.parametrize("kind", BUILDERS)
def test_uuid_and_label_as_grub_probe_gives_them(tmp_path, kind):
    image = BUILDERS[kind](tmp_path)
    fs = probe(FileSource(str(image)))
    assert fs is not None
    assert (fs.uuid, fs.label) == (grub_probe(image, "fs_uuid"), grub_probe(image, "fs_label"))
