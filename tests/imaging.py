"""Build real disk images for tests with the real tools (mke2fs -d, sfdisk, sgdisk, ...).

A missing tool fails the test: .ci/run installs every tool, and a skip would hide that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

MiB = 1 << 20

#: A tree to put in an image: path -> file content (bytes/str), or a Symlink, or None for an empty dir.
Tree = Mapping[str, "bytes | str | Symlink | None"]


class Symlink(str):
    """A symlink target in a Tree."""


def require_tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        pytest.fail(f"test tool {name} is not installed (.ci/run installs it)")
    return path


def run(*argv: str | os.PathLike[str], input: bytes | None = None) -> bytes:
    """Run a tool; fail the test with its stderr when it fails."""
    tool = require_tool(str(argv[0]))
    proc = subprocess.run([tool, *map(str, argv[1:])], input=input, capture_output=True)
    if proc.returncode != 0:
        pytest.fail(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc.stdout


@contextmanager
def loop_mounted(image: Path, mnt: Path, *options: str) -> Iterator[Path]:
    """``image`` mounted by the kernel at ``mnt`` (root only: a loop mount)."""
    if os.geteuid() != 0:
        pytest.fail(f"{image.name} is filled through a loop mount, which needs root")
    mnt.mkdir(exist_ok=True)
    run("mount", "-o", ",".join(("loop", *options)), image, mnt)
    try:
        yield mnt
    finally:
        run("umount", mnt)


def write_tree(root: Path, tree: Tree) -> Path:
    """Materialise a Tree under ``root`` and return root."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in tree.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        elif isinstance(content, Symlink):
            os.symlink(str(content), path)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return root


def make_ext(
    tmp: Path,
    tree: Tree,
    size_mb: int = 32,
    fstype: str = "ext4",
    options: tuple[str, ...] = (),
    name: str = "fs.img",
) -> Path:
    """An ext2/3/4 image populated with ``mke2fs -d`` (no mount, no root needed)."""
    src = write_tree(tmp / (name + ".d"), tree)
    image = tmp / name
    image.unlink(missing_ok=True)
    run("mke2fs", "-q", "-F", "-t", fstype, *options, "-d", src, image, f"{size_mb}M")
    return image


def make_partitioned(
    tmp: Path,
    partitions: list[tuple[Path | int, str]],
    label: str = "dos",
    name: str = "disk.img",
    bootable: int | None = None,
    gap_mb: int = 1,
) -> Path:
    """A disk with a partition table (sfdisk) holding the given filesystem images.

    ``partitions`` is a list of (image path or size in MiB, sfdisk type), e.g.
    ``(fs, "83")`` for MBR or ``(fs, "L")``. Partitions start on MiB boundaries.
    ``bootable`` is the 1-based partition number to mark active (MBR only).
    """
    layout = []
    start = gap_mb * MiB
    for content, ptype in partitions:
        size = content.stat().st_size if isinstance(content, Path) else content * MiB
        size = -(-size // MiB) * MiB
        layout.append((start, size, content, ptype))
        start += size
    disk = tmp / name
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate(start + MiB)
    lines = [f"label: {label}", "unit: sectors"]
    for index, (offset, size, _content, ptype) in enumerate(layout, 1):
        flag = ", bootable" if bootable == index else ""
        lines.append(f"start={offset // 512}, size={size // 512}, type={ptype}{flag}")
    run(
        "sfdisk",
        "--no-reread",
        "--no-tell-kernel",
        "-q",
        disk,
        input=("\n".join(lines) + "\n").encode(),
    )
    for offset, _size, content, _ptype in layout:
        if isinstance(content, Path):
            copy_into(content, disk, offset)
    return disk


def copy_into(src: Path, disk: Path, offset: int) -> None:
    """``src`` written into ``disk`` at ``offset``, but for its holes: the disk is new
    (truncated), so they read as zeros there already, and a 128 MiB filesystem of a few
    MiB of data copies in no time."""
    with open(src, "rb") as fin, open(disk, "r+b") as fout:
        end = os.fstat(fin.fileno()).st_size
        pos = 0
        while pos < end:
            try:
                data = os.lseek(fin.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: nothing but a hole is left
                break
            pos = os.lseek(fin.fileno(), data, os.SEEK_HOLE)
            fin.seek(data)
            fout.seek(offset + data)
            for _ in range(data, pos, 4 * MiB):
                fout.write(fin.read(min(4 * MiB, pos - fin.tell())))


def debugfs_ls(image: Path, directory: str) -> list[str]:
    """Names in a directory as debugfs lists them (the independent oracle for ext*).

    Entries of inode 0 are left out: debugfs lists the empty slot of an inline_data
    directory as a nameless entry.
    """
    out = run("debugfs", "-R", f"ls -p {directory}", image).decode("utf-8", "surrogateescape")
    names = []
    for line in out.splitlines():
        fields = line.split("/")  # /inode/mode/uid/gid/name/size/
        if len(fields) >= 7 and fields[1] != "0" and fields[5] not in (".", ".."):
            names.append(fields[5])
    return names


def mtool(*argv: str | os.PathLike[str]) -> str:
    """Run an mtools command; fail the test with its stderr when it fails."""
    tool = require_tool(str(argv[0]))
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", LC_ALL="C.UTF-8")
    proc = subprocess.run([tool, *map(str, argv[1:])], capture_output=True, env=env)
    if proc.returncode != 0:
        pytest.fail(f"{argv[0]} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def make_fat(
    tmp: Path,
    tree: Tree,
    bits: int,
    size_kb: int,
    name: str,
    options: tuple[str, ...] = (),
) -> Path:
    """A FAT image made by mkfs.fat and filled by mcopy from a tree written to disk."""
    src = write_tree(tmp / (name + ".d"), tree)
    image = tmp / name
    image.unlink(missing_ok=True)
    run("mkfs.fat", "-C", "-F", str(bits), *options, image, str(size_kb))
    for top in sorted(src.iterdir()):
        mtool("mcopy", "-s", "-i", image, top, "::/")
    return image


def make_f2fs(
    tmp: Path,
    tree: Tree,
    size_mb: int = 128,
    options: tuple[str, ...] = (),
    name: str = "fs.img",
) -> Path:
    """An F2FS image made by mkfs.f2fs and filled by sload.f2fs from a tree written to disk.

    sload.f2fs says nothing when the filesystem runs out of room and cuts files short
    (its reserved segments take most of an image under 128 MiB), so fsck.f2fs checks
    the result.
    """
    src = write_tree(tmp / (name + ".d"), tree)
    image = tmp / name
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_mb * MiB)
    run("mkfs.f2fs", "-q", "-f", *options, image)
    run("sload.f2fs", "-f", src, image)
    check = run("fsck.f2fs", "--dry-run", image).decode("utf-8", "replace")
    if "[Fail]" in check or "[ASSERT]" in check:
        pytest.fail(f"fsck.f2fs finds {name} inconsistent after sload.f2fs:\n{check[-3000:]}")
    return image


#: isolinux's MBR for a hybrid ISO, and its boot image (Debian package isolinux).
ISOLINUX_DIR = Path("/usr/lib/ISOLINUX")


def make_isohybrid_iso(tmp: Path, tree: Tree, *extra: str | os.PathLike[str]) -> Path:
    """An ISO laid out as live ISOs are: xorriso with isolinux's isohybrid MBR and El Torito.

    Partition 1 of that MBR starts at sector 0 and spans the ISO; ``extra`` xorriso
    options may append more (``-append_partition 2 0xef esp.img``).
    """
    for name in ("isohdpfx.bin", "isolinux.bin"):
        if not (ISOLINUX_DIR / name).is_file():
            pytest.fail(f"{ISOLINUX_DIR / name} is missing (package isolinux; .ci/run installs it)")
    src = write_tree(tmp / "iso.d", tree)
    (src / "isolinux").mkdir(exist_ok=True)
    shutil.copy(ISOLINUX_DIR / "isolinux.bin", src / "isolinux" / "isolinux.bin")
    image = tmp / "live.iso"
    run("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J",
        "-isohybrid-mbr", ISOLINUX_DIR / "isohdpfx.bin", "-b", "isolinux/isolinux.bin",
        "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
        *extra, "-o", image, src)  # fmt: skip
    return image
