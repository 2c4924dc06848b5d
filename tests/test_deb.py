"""The Debian package (make deb), installed on this machine as an administrator does.

Root only, and it changes the machine while it runs: apt-get installs the package, which
diverts Xen 4.17's /usr/lib/xen-4.17/bin/pygrub; guests boot through that path as libxl
runs it; a Xen version installed after the package is taken over by the file trigger; and
apt-get purge must give Xen's file back byte for byte with no diversion left. The purge
runs whatever happens, so the machine is left as it was found.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from imaging import MiB, loop_mounted, require_tool, run, write_tree

import pygrub
from pygrub import dropin

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "guest.img"
XEN_BIN = Path("/usr/lib/xen-4.17/bin")
XEN_PYGRUB = XEN_BIN / "pygrub"
#: xen-utils-common's symlink to a Xen's pygrub, which the package's own command replaces.
USR_BIN_PYGRUB = Path("/usr/bin/pygrub")
#: A Xen series installed after pygrub: a package of ours that ships only its pygrub.
LATER_XEN = Path("/usr/lib/xen-4.29/bin")
LATER_XEN_PACKAGE = "pygrub-test-xen-4.29"
APT = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "-q"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def diversions() -> list[str]:
    out = run("dpkg-divert", "--list").decode()
    return sorted(line for line in out.splitlines() if line.endswith(" by pygrub"))


def installed(package: str) -> bool:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return proc.stdout == "install ok installed"


def root_or_fail() -> None:
    if os.geteuid() != 0:
        pytest.fail("the .deb test installs and purges a package: it must run as root")


@pytest.fixture
def machine() -> Iterator[None]:
    """Xen 4.17 as its package left it; afterwards, pygrub and the stand-in Xen purged."""
    root_or_fail()
    for tool in ("dpkg-deb", "dpkg-divert", "apt-get", "debugfs", "mkfs.btrfs"):
        require_tool(tool)
    if not XEN_PYGRUB.is_file() or dropin.is_wrapper(str(XEN_PYGRUB)):
        pytest.fail(f"{XEN_PYGRUB} is not Xen's (xen-utils-4.17 is a test tool)")
    if installed("pygrub") or diversions():
        pytest.fail("the pygrub package is already installed here: apt-get purge pygrub")
    try:
        yield
    finally:
        for package in ("pygrub", LATER_XEN_PACKAGE):
            subprocess.run(["dpkg", "--purge", package], capture_output=True)
        for directory in (LATER_XEN, LATER_XEN.parent):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()


def build_deb(out: Path) -> Path:
    run("make", "-C", ROOT, "deb", f"DEB_DIR={out}")
    (deb,) = out.glob("pygrub_*_all.deb")
    return deb


def later_xen_deb(tmp: Path) -> tuple[Path, bytes]:
    """A package shipping /usr/lib/xen-4.29/bin/pygrub, as a newer xen-utils would."""
    script = b'#!/bin/sh\necho "xen 4.29 pygrub"\n'
    root = tmp / "later-xen"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {LATER_XEN_PACKAGE}\nVersion: 1\nArchitecture: all\n"
        "Maintainer: pygrub tests <tests@localhost>\nDescription: a stand-in Xen 4.29\n"
    )
    bin_dir = root / LATER_XEN.relative_to("/")
    bin_dir.mkdir(parents=True)
    (bin_dir / "pygrub").write_bytes(script)
    (bin_dir / "pygrub").chmod(0o755)
    deb = tmp / f"{LATER_XEN_PACKAGE}.deb"
    run("dpkg-deb", "--root-owner-group", "--build", root, deb)
    return deb, script


def boot_as_libxl(pygrub_path: Path, image: Path, tmp: Path) -> dict[str, str]:
    """pygrub run as libxl runs it (README, "Use from an xl domain config")."""
    out_dir = tmp / "boot"
    out_dir.mkdir(exist_ok=True)
    result = tmp / "result"
    result.write_bytes(b"")
    proc = subprocess.run(
        [
            pygrub_path,
            f"--output={result}",
            "--output-format=simple0",
            f"--output-directory={out_dir}",
            image,
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(item.split(" ", 1) for item in result.read_text().split("\0") if item)


def sample_file(path: str) -> bytes:
    """A file of the sample guest's ext4 partition (sector 2048), read by debugfs."""
    return run("debugfs", "-R", f"cat {path}", f"{SAMPLE}?offset={2048 * 512}")


def fedora_btrfs(tmp: Path) -> tuple[Path, bytes, bytes]:
    """A Fedora-style /boot on Btrfs, written by the kernel with compress-force=zstd."""
    rng = random.Random(29)
    words = [bytes(rng.choices(b"abcdefgh", k=rng.randint(2, 9))) for _ in range(500)]
    kernel = b" ".join(rng.choices(words, k=300_000))[: 2 * MiB]
    initrd = b"\n".join(rng.choices(words, k=200_000))[: MiB + 7]
    image = tmp / "fedora-boot.img"
    with open(image, "wb") as f:
        f.truncate(128 * MiB)
    run("mkfs.btrfs", "-q", "-f", image)
    cfg = "set default=0\nmenuentry 'Fedora Linux' {\n  linux /vmlinuz root=LABEL=fedora ro\n  initrd /initramfs.img\n}\n"
    with loop_mounted(image, tmp / "mnt", "compress-force=zstd") as mnt:
        write_tree(
            mnt,
            {"grub2/grub.cfg": cfg, "vmlinuz": kernel, "initramfs.img": initrd},
        )
    dump = run("btrfs", "inspect-internal", "dump-tree", "-t", "fs", image).decode()
    assert "compression 3" in dump, "the kernel wrote zstd extents"
    return image, kernel, initrd


def xen_diversion(path: Path) -> str:
    return f"diversion of {path} to {path}.xen by pygrub"


def test_deb_installs_takes_over_xens_pygrub_and_purges_clean(machine, tmp_path):
    xen_before = sha256(XEN_PYGRUB)
    usr_bin_before = os.readlink(USR_BIN_PYGRUB) if USR_BIN_PYGRUB.is_symlink() else None
    deb = build_deb(tmp_path / "dist")
    fields = run("dpkg-deb", "-f", deb, "Package", "Version", "Depends").decode()
    assert f"Version: {pygrub.__version__}\n" in fields
    for needed in ("python3 (>= 3.10)", "python3-lz4", "python3-zstandard"):
        assert needed in fields
    contents = run("dpkg-deb", "-c", deb).decode()
    for path in (
        "./usr/bin/pygrub",
        "./usr/bin/pygrub-dropin",
        "./usr/lib/python3/dist-packages/pygrub/cli.py",
        "./usr/lib/python3/dist-packages/pygrub/output.schema.json",
        "./usr/share/man/man1/pygrub.1.gz",
        "./usr/share/doc/pygrub/copyright",
    ):
        assert path in contents, path

    subprocess.run([*APT, "install", f"./{deb.name}"], cwd=deb.parent, check=True)
    assert installed("pygrub")
    ours = sorted(map(xen_diversion, (USR_BIN_PYGRUB, XEN_PYGRUB)))
    assert diversions() == ours
    assert sha256(XEN_BIN / "pygrub.xen") == xen_before
    assert dropin.is_wrapper(str(XEN_PYGRUB))
    # It is our code that answers at Xen's path (Xen's pygrub has no --version).
    for command in (XEN_PYGRUB, Path("/usr/bin/pygrub")):
        out = run(command, "--version").decode()
        assert out == f"pygrub {pygrub.__version__}\n"
    assert "Xen's pygrub back" not in run("/usr/bin/pygrub-dropin", "--status").decode()

    items = boot_as_libxl(XEN_PYGRUB, SAMPLE, tmp_path)
    assert Path(items["kernel"]).read_bytes() == sample_file("/boot/vmlinuz-6.1.0-28-amd64")
    assert Path(items["ramdisk"]).read_bytes() == sample_file("/boot/initrd.img-6.1.0-28-amd64")
    # A zstd-compressed Btrfs /boot needs nothing but the package's own Depends.
    image, kernel, initrd = fedora_btrfs(tmp_path)
    items = boot_as_libxl(XEN_PYGRUB, image, tmp_path)
    assert Path(items["kernel"]).read_bytes() == kernel
    assert Path(items["ramdisk"]).read_bytes() == initrd
    assert items["args"] == "root=LABEL=fedora ro"

    # An upgrade (the same version again) keeps one diversion and Xen's file.
    run("dpkg", "-i", deb)
    assert diversions() == ours and sha256(XEN_BIN / "pygrub.xen") == xen_before

    # A Xen installed later is taken over by the trigger, and let go when it leaves.
    later, script = later_xen_deb(tmp_path)
    run("dpkg", "-i", later)
    assert (LATER_XEN / "pygrub.xen").read_bytes() == script
    assert dropin.is_wrapper(str(LATER_XEN / "pygrub"))
    assert diversions() == sorted([*ours, xen_diversion(LATER_XEN / "pygrub")])
    run("dpkg", "--purge", LATER_XEN_PACKAGE)
    assert not (LATER_XEN / "pygrub").exists() and not (LATER_XEN / "pygrub.xen").exists()
    assert diversions() == ours

    subprocess.run([*APT, "purge", "pygrub"], check=True)
    assert not installed("pygrub")
    assert sha256(XEN_PYGRUB) == xen_before
    assert not (XEN_BIN / "pygrub.xen").exists()
    assert diversions() == []
    if usr_bin_before is not None:
        assert os.readlink(USR_BIN_PYGRUB) == usr_bin_before
    for gone in ("/usr/bin/pygrub.xen", "/usr/lib/python3/dist-packages/pygrub"):
        assert not os.path.lexists(gone), f"{gone} left behind"
