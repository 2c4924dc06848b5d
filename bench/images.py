"""Guest disks for the benchmarks, made by the real tools (mke2fs -d, mkfs.xfs -p, ...).

Each builder takes a host tree (``boot/vmlinuz``, ``boot/initrd.img``, a GRUB config)
and returns a disk image holding it. ReiserFS cannot be written without mounting it in
the kernel: its row uses a small image committed in tests/fixtures. ZFS is written by
zfs-fuse (as the tests do); OpenZFS 2.x's row uses its committed boot pool.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import REPO, SMALL_XFS_ENV, BenchError, MiB, sh, tool

FIXTURES = REPO / "tests" / "fixtures"

GRUB_CFG = """\
set default=0
set timeout=0
menuentry 'Linux' {
  linux /boot/vmlinuz root=/dev/xvda1 ro
  initrd /boot/initrd.img
}
"""


@dataclass
class Guest:
    """A disk image to boot and the host copies of what it boots (the plain-copy floor)."""

    image: Path
    kernel: Path
    initrd: Path | None
    #: What the row is made of, when it is not the 8 MiB + 64 MiB payload.
    note: str = ""


def make_tree(root: Path, kernel: Callable[[Path], None], initrd: Callable[[Path], None]) -> Path:
    """A /boot with a kernel, an initrd and grub.cfg; the writers fill the two files."""
    (root / "boot" / "grub").mkdir(parents=True, exist_ok=True)
    kernel(root / "boot" / "vmlinuz")
    initrd(root / "boot" / "initrd.img")
    (root / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    return root


def tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*"))


def guest_of(image: Path, tree: Path, note: str = "") -> Guest:
    return Guest(image, tree / "boot" / "vmlinuz", tree / "boot" / "initrd.img", note)


def fs_size_mb(tree: Path, slack_mb: int = 32) -> int:
    return tree_bytes(tree) * 11 // 10 // MiB + slack_mb


# -- partition tables ----------------------------------------------------------------------


def partitioned(disk: Path, size: int, label: str = "dos", ptype: str = "83") -> Path:
    """``disk`` of ``size`` bytes (sparse) with one partition from 1 MiB to its end."""
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate(size)
    # GPT keeps a backup table in the last 33 sectors.
    end = size // 512 - (34 if label == "gpt" else 0)
    layout = f"label: {label}\nstart=2048, size={end - 2048}, type={ptype}\n"
    sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk, stdin=layout.encode())
    return disk


def partition_holding(disk: Path, fs: Path, ptype: str = "83") -> Path:
    """An MBR disk whose one partition, at 1 MiB, is the filesystem image ``fs`` (moved in)."""
    size = -(-fs.stat().st_size // MiB) * MiB
    partitioned(disk, size + MiB, ptype=ptype)
    copy_into(fs, disk, MiB)
    fs.unlink()
    return disk


def copy_into(src: Path, disk: Path, offset: int) -> None:
    with open(src, "rb") as fin, open(disk, "r+b") as fout:
        left = os.fstat(fin.fileno()).st_size
        src_offset = 0
        while left:
            done = os.copy_file_range(fin.fileno(), fout.fileno(), left, src_offset, offset)
            if done == 0:
                raise BenchError(f"short copy of {src}")
            left -= done
            src_offset += done
            offset += done


# -- filesystems -----------------------------------------------------------------------------


def ext4_mbr(work: Path, tree: Path, block_size: int | None = None) -> Path:
    """MBR, one ext4 partition at 1 MiB (mke2fs writes it there itself: -E offset).

    mke2fs gives a filesystem under 512 MiB (these, and a separate /boot) 1 KiB blocks
    (mke2fs.conf's "small"); a root filesystem has 4 KiB ones: ``block_size``.
    """
    size_mb = fs_size_mb(tree)
    disk = partitioned(work / "ext4.img", (size_mb + 1) * MiB)
    inodes = str(sum(1 for _ in tree.rglob("*")) + 1024)
    block = ("-b", str(block_size)) if block_size else ()
    sh(
        "mke2fs", "-q", "-F", "-t", "ext4", *block, "-N", inodes, "-E", f"offset={MiB}",
        "-d", tree, disk, f"{size_mb}M",
    )  # fmt: skip
    return disk


def ext4_indexed(work: Path, tree: Path) -> Path:
    """MBR, one ext4 partition whose large directories are hash-indexed (htree).

    mke2fs -d writes every directory as a linear list; e2fsck -D indexes them as the
    kernel does once a directory outgrows one block.
    """
    size_mb = fs_size_mb(tree)
    fs = work / "ext4.fs"
    inodes = str(sum(1 for _ in tree.rglob("*")) + 1024)
    sh("mke2fs", "-q", "-F", "-t", "ext4", "-N", inodes, "-d", tree, fs, f"{size_mb}M")
    # Exit status 1: "errors corrected", here the directories it re-indexed.
    proc = subprocess.run([tool("e2fsck"), "-fyD", str(fs)], capture_output=True)
    if proc.returncode not in (0, 1):
        raise BenchError(f"e2fsck -D failed: {proc.stdout.decode(errors='replace')}")
    return partition_holding(work / "ext4-htree.img", fs)


def ext4_sparse_gpt(work: Path, tree: Path, size: int) -> Path:
    """A ``size``-byte sparse GPT disk whose ext4 partition fills it."""
    disk = partitioned(work / "sparse.img", size, label="gpt", ptype="L")
    blocks = (size - MiB - 34 * 512) // 4096
    sh(
        "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096",
        "-E", f"offset={MiB},nodiscard,lazy_itable_init=1",
        "-d", tree, disk, str(blocks),
    )  # fmt: skip
    return disk


def xfs_protofile(src: Path) -> str:
    """A mkfs.xfs(8) protofile recreating the files and directories under ``src``."""
    lines = ["pygrub-bench", "0 0", "d--755 0 0"]

    def add(directory: Path) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.is_dir():
                lines.append(f"{entry.name} d--755 0 0")
                add(entry)
                lines.append("$")
            else:
                lines.append(f"{entry.name} ---644 0 0 {entry}")

    add(src)
    lines.append("$")
    return "\n".join(lines) + "\n"


def xfs(work: Path, tree: Path, version: int = 5) -> Path:
    proto = work / "xfs.proto"
    proto.write_text(xfs_protofile(tree))
    fs = work / "xfs.fs"
    # mkfs.xfs 6.1 -p writes no more of a file than fits in one allocation group (the
    # rest is left a hole): two groups, each larger than the largest file.
    largest = max(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    size_mb = max(fs_size_mb(tree, 64), 2 * (largest // MiB + 32))
    with open(fs, "wb") as f:
        f.truncate(size_mb * MiB)
    # v4 as mkfs.xfs made it before 4.x: no CRCs, no file type in directory entries
    # (the layout Xen's reader knows).
    options = ["-m", "crc=0", "-n", "ftype=0"] if version == 4 else []
    sh("mkfs.xfs", "-q", "-f", "-d", "agcount=2", *options, "-p", proto, fs, env=SMALL_XFS_ENV)
    return partition_holding(work / f"xfs{version}.img", fs)


def btrfs(work: Path, tree: Path) -> Path:
    fs = work / "btrfs.fs"
    size_mb = max(fs_size_mb(tree, 64), 128)
    with open(fs, "wb") as f:
        f.truncate(size_mb * MiB)
    sh("mkfs.btrfs", "-q", "-f", "--rootdir", tree, fs)
    return partition_holding(work / "btrfs.img", fs)


def fat(work: Path, tree: Path) -> Path:
    fs = work / "fat.fs"
    fs.unlink(missing_ok=True)
    size_mb = max(fs_size_mb(tree), 64)
    sh("mkfs.fat", "-C", "-F", "32", fs, str(size_mb * 1024))
    env = {"MTOOLS_SKIP_CHECK": "1"}
    for top in sorted(tree.iterdir()):
        sh("mcopy", "-s", "-i", fs, top, "::/", env=env)
    return partition_holding(work / "fat.img", fs, ptype="c")


def iso9660(work: Path, tree: Path) -> Path:
    """A whole-disk ISO 9660 image with Rock Ridge and Joliet, as live media are."""
    image = work / "iso9660.img"
    sh("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-o", image, tree)
    return image


def squashfs(work: Path, tree: Path, *options: str) -> Path:
    """mksquashfs's defaults (gzip, 128 KiB blocks); random data is stored uncompressed."""
    fs = work / "squashfs.fs"
    fs.unlink(missing_ok=True)
    sh("mksquashfs", tree, fs, "-quiet", "-noappend", "-no-progress", *options)
    return partition_holding(work / "squashfs.img", fs)


def f2fs(work: Path, tree: Path) -> Path:
    """mkfs.f2fs's defaults, filled by sload.f2fs; F2FS keeps a fifth or more of a small
    device for overprovisioning, and sload cuts files short when it runs out of room."""
    fs = work / "f2fs.fs"
    fs.unlink(missing_ok=True)
    with open(fs, "wb") as f:
        f.truncate(max(2 * fs_size_mb(tree), 256) * MiB)
    sh("mkfs.f2fs", "-q", "-f", fs)
    sh("sload.f2fs", "-f", tree, fs)
    return partition_holding(work / "f2fs.img", fs)


def erofs(work: Path, tree: Path, *options: str) -> Path:
    """mkfs.erofs with lz4hc, as an appliance image; random data is stored uncompressed."""
    fs = work / "erofs.fs"
    fs.unlink(missing_ok=True)
    sh("mkfs.erofs", "--quiet", *(options or ("-zlz4hc",)), fs, tree)
    return partition_holding(work / "erofs.img", fs)


def ufs(work: Path, tree: Path, version: int) -> Path:
    fs = work / "ufs.fs"
    fs.unlink(missing_ok=True)
    size_mb = fs_size_mb(tree)
    sh("makefs", "-t", "ffs", "-s", f"{size_mb}m", "-o", f"version={version}", fs, tree)
    return partition_holding(work / f"ufs{version}.img", fs, ptype="a5")


def qcow2(work: Path, tree: Path) -> Path:
    """The ext4 MBR disk converted by qemu-img (uncompressed clusters)."""
    raw = ext4_mbr(work, tree)
    image = work / "ext4.qcow2"
    sh("qemu-img", "convert", "-O", "qcow2", raw, image)
    raw.unlink()
    return image


LVM_CONF = """\
devices {{
    filter = [ "a|^{device}$|", "r|.*|" ]
    obtain_device_list_from_udev = 0
    use_devicesfile = 0
    scan_lvs = 0
    hints = "none"
}}
activation {{
    udev_sync = 0
    udev_rules = 0
}}
backup {{
    backup = 0
    archive = 0
}}
"""


def lvm(work: Path, tree: Path) -> Path:
    """MBR, one type-8e PV, VG "vg" with one linear LV "root" holding ext4.

    LVM2's tools run on a loop device without device-mapper (the LV is never activated);
    the filesystem is written where ``lvs --segments`` places the LV. Needs root.
    """
    size_mb = fs_size_mb(tree)
    fs = work / "lv.fs"
    fs.unlink(missing_ok=True)
    sh("mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, fs, f"{size_mb}M")
    disk = partitioned(work / "lvm.img", (size_mb + 10) * MiB, ptype="8e")
    pv_size = disk.stat().st_size - MiB
    loop = sh("losetup", "-f", "--show", "-o", str(MiB), "--sizelimit", str(pv_size), disk)
    device = loop.decode().strip()
    try:
        etc = work / "lvm-etc"
        etc.mkdir(exist_ok=True)
        (etc / "lvm.conf").write_text(LVM_CONF.format(device=re.escape(device)))
        env = {"LVM_SYSTEM_DIR": str(etc), "LVM_SUPPRESS_FD_WARNINGS": "1"}

        def lvm_tool(*args: str) -> bytes:
            return sh("lvm", args[0], "--driverloaded", "n", *args[1:], env=env)

        lvm_tool("pvcreate", "-q", device)
        lvm_tool("vgcreate", "-q", "-s", "1M", "vg", device)
        lvm_tool("lvcreate", "-q", "-an", "-Zn", "-L", f"{size_mb}M", "-n", "root", "vg")
        (segment,) = lvm_report(lvm_tool, "lvs", "--segments", "-o", "seg_pe_ranges", "vg/root")
        (pv,) = lvm_report(lvm_tool, "pvs", "-o", "pe_start", device)
    finally:
        subprocess.run([tool("losetup"), "-d", device], capture_output=True)
    # One linear segment "/dev/loopN:FIRST-LAST" of 1 MiB extents.
    first_pe = int(segment["seg_pe_ranges"].rsplit(":", 1)[1].split("-")[0])
    copy_into(fs, disk, MiB + int(pv["pe_start"]) + first_pe * MiB)
    fs.unlink()
    return disk


def zfs(work: Path, tree: Path) -> Path:
    """MBR, one partition holding a single-disk pool made by zfs-fuse (pool version 23,
    its defaults: compression off, fletcher checksums) with the tree in its root dataset.
    Needs root and /dev/fuse; starts the zfs-fuse daemon when none answers, and stops it."""
    vdev = work / "zfs.vdev"
    vdev.unlink(missing_ok=True)
    with open(vdev, "wb") as f:
        f.truncate(max(fs_size_mb(tree), 96) * MiB)
    mnt = work / "zfs-mnt"
    daemon = (
        None
        if zpool_answers()
        else subprocess.Popen(
            [tool("zfs-fuse"), "--no-daemon"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    )
    try:
        for _ in range(100):
            if zpool_answers():
                break
            time.sleep(0.1)
        sh("zpool", "create", "-f", "-o", "version=23", "-m", mnt, "pygrubbench", vdev)
        try:
            shutil.copytree(tree, mnt, dirs_exist_ok=True)
        finally:
            for _ in range(20):  # zfs-fuse calls a pool busy for a moment after writes
                os.sync()
                if subprocess.run([tool("zpool"), "export", "pygrubbench"]).returncode == 0:
                    break
                time.sleep(0.5)
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait()
    return partition_holding(work / "zfs.img", vdev)


def zpool_answers() -> bool:
    return subprocess.run([tool("zpool"), "list"], capture_output=True).returncode == 0


def lvm_report(lvm_tool: Callable[..., bytes], *args: str) -> list[dict[str, str]]:
    out = lvm_tool(*args[:1], "--reportformat", "json", "--units", "b", "--nosuffix", *args[1:])
    (report,) = json.loads(out)["report"]
    (rows,) = report.values()
    return rows


# -- the committed fixtures --------------------------------------------------------------


def unpack(packed: Path, image: Path) -> Path:
    with lzma.open(packed) as src, open(image, "wb") as dst:
        shutil.copyfileobj(src, dst, 4 * MiB)
    return image


def reiserfs_fixture(work: Path) -> Path:
    return unpack(FIXTURES / "reiserfs" / "reiserfs-3.6-r5-4k.img.xz", work / "reiserfs.img")


def openzfs_fixture(work: Path) -> Path:
    """Ubuntu's boot pool made by OpenZFS 2.3 (scripts/make-openzfs-fixtures.sh): Debian's
    kernel and a small initramfs in bpool/BOOT/ubuntu_ab12cd, lz4, ashift=12, on GPT."""
    return unpack(FIXTURES / "openzfs" / "openzfs-bpool.img.xz", work / "openzfs-bpool.img")
