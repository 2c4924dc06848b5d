"""--isconfig: a config file on this host, read with the files beside it its loader reads.

The layouts are those the loaders' own tools write: systemd-boot's ESP (loader/loader.conf,
loader/entries/*.conf), an ISO tree whose isolinux.cfg includes files, and Fedora's /boot
(grub2/grub.cfg running blscfg over loader/entries).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from imaging import Tree, write_tree

from pygrub.config import host_root


def isconfig(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pygrub", "--isconfig", *args, str(config)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def boots(config: Path, *args: str) -> str:
    proc = isconfig(config, *args)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    return proc.stdout


@pytest.mark.parametrize(
    ("path", "root", "inner"),
    [
        ("/srv/g/boot/grub2/grub.cfg", "/srv/g", "/boot/grub2/grub.cfg"),
        ("/mnt/bootfs/grub2/grub.cfg", "/mnt/bootfs", "/grub2/grub.cfg"),
        ("/mnt/esp/loader/loader.conf", "/mnt/esp", "/loader/loader.conf"),
        ("/srv/g/boot/loader/loader.conf", "/srv/g", "/boot/loader/loader.conf"),
        ("/esp/EFI/debian/grub.cfg", "/esp", "/EFI/debian/grub.cfg"),
        ("/iso/isolinux/isolinux.cfg", "/iso", "/isolinux/isolinux.cfg"),
        ("/etc/xen/guest-menu.lst", "/etc/xen", "/guest-menu.lst"),
        ("/grub.cfg", "/", "/grub.cfg"),
    ],
)
def test_the_root_is_found_from_where_the_config_sits(path, root, inner):
    assert host_root(path) == (root, inner)


ESP: Tree = {
    "loader/loader.conf": "timeout 3\ndefault fedora-*\n",
    "loader/entries/debian-6.1.conf": (
        "title Debian\nlinux /debian/vmlinuz\ninitrd /debian/initrd.img\noptions root=/dev/xvda2\n"
    ),
    "loader/entries/fedora-6.5.conf": (
        "title Fedora\nversion 6.5\nlinux /fedora/vmlinuz\ninitrd /fedora/initramfs.img\n"
        "options root=/dev/xvda3 ro\n"
    ),
    "debian/vmlinuz": b"k",
    "debian/initrd.img": b"i",
    "fedora/vmlinuz": b"k",
    "fedora/initramfs.img": b"i",
}


def test_systemd_boot_loader_conf_reads_its_entries(tmp_path):
    esp = write_tree(tmp_path / "esp", ESP)
    config = esp / "loader" / "loader.conf"
    assert boots(config, "-q") == (
        "  kernel: /fedora/vmlinuz\n  initrd: /fedora/initramfs.img\n  args: root=/dev/xvda3 ro\n"
    )
    assert boots(config, "--entry=Debian").startswith("  kernel: /debian/vmlinuz\n")


def test_systemd_boot_under_boot_names_files_under_boot(tmp_path):
    root = write_tree(tmp_path / "root", {f"boot/{path}": data for path, data in ESP.items()})
    out = boots(root / "boot" / "loader" / "loader.conf", "-q")
    assert out.startswith("  kernel: /boot/fedora/vmlinuz\n  initrd: /boot/fedora/initramfs.img\n")


def test_systemd_boot_without_entries_says_where_it_looked(tmp_path):
    esp = write_tree(
        tmp_path / "esp", {"loader/loader.conf": "timeout 3\n", "loader/entries": None}
    )
    proc = isconfig(esp / "loader" / "loader.conf", "-q")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"pygrub: error: RuntimeError: {esp}/loader/loader.conf: not a bootloader config pygrub can read, "
        f"with {esp} as its filesystem's root (systemd-boot: no menu entries; no entry in "
        "/loader/entries nor /EFI/Linux)\n"
    )


def test_systemd_boot_hides_entries_whose_kernel_is_missing_and_says_so(tmp_path):
    esp = write_tree(tmp_path / "esp", {k: v for k, v in ESP.items() if k.startswith("loader/")})
    assert sorted(p.name for p in esp.iterdir()) == ["loader"]
    proc = isconfig(esp / "loader" / "loader.conf", "-q")
    assert proc.returncode == 1
    assert (
        "(systemd-boot: no menu entries; /loader/entries/debian-6.1.conf: /debian/vmlinuz not "
        "found; systemd-boot hides the entry; /loader/entries/fedora-6.5.conf: /fedora/vmlinuz "
        "not found; systemd-boot hides the entry; no entry in /loader/entries nor /EFI/Linux)"
    ) in proc.stderr


def test_isolinux_cfg_includes_the_files_beside_it(tmp_path):
    iso = write_tree(
        tmp_path / "iso",
        {
            "isolinux/isolinux.cfg": "ui menu.c32\ninclude menu.cfg\ndefault install\n",
            "isolinux/menu.cfg": "include /isolinux/txt.cfg\nlabel rescue\n  kernel /rescue\n",
            "isolinux/txt.cfg": (
                "label install\n  kernel /install.amd/vmlinuz\n"
                "  append initrd=/install.amd/initrd.gz vga=788 --- quiet\n"
            ),
        },
    )
    config = iso / "isolinux" / "isolinux.cfg"
    assert boots(config, "-q") == (
        "  kernel: /install.amd/vmlinuz\n  initrd: /install.amd/initrd.gz\n"
        "  args: vga=788 --- quiet\n"
    )
    listed = isconfig(config, "-l", "--entry=rescue").stdout
    assert "title: rescue\n" in listed and "title: install\n" in listed


def test_an_include_cannot_leave_the_root_nor_wait_on_a_fifo(tmp_path):
    iso = write_tree(
        tmp_path / "iso",
        {
            "isolinux/isolinux.cfg": (
                "include ../../../../../etc/passwd\ninclude fifo.cfg\ninclude escape.cfg\n"
                "label a\n  kernel /a\n"
            ),
            "etc/passwd": "label inside\n  kernel /inside\n",
        },
    )
    os.mkfifo(iso / "isolinux" / "fifo.cfg")
    (iso / "isolinux" / "escape.cfg").symlink_to("/etc/hostname")
    listed = isconfig(iso / "isolinux" / "isolinux.cfg", "-l", "-q")
    assert listed.returncode == 0, listed.stderr
    titles = [line for line in listed.stdout.splitlines() if line.startswith("title: ")]
    # ".." stops at the root; the absolute symlink is read inside it, where nothing is.
    assert titles == ["title: inside", "title: a"]


FEDORA_GRUB_CFG = """\
set timeout=5
load_env
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
else
   set default="${saved_entry}"
fi
insmod part_gpt
insmod ext2
set kernelopts="root=/dev/xvda3 ro rhgb quiet"
insmod blscfg
blscfg
"""


def bls_entry(version: str) -> str:
    return (
        f"title Fedora Linux ({version}) 39 (Server Edition)\nversion {version}\n"
        f"linux /vmlinuz-{version}\ninitrd /initramfs-{version}.img\n"
        "options $kernelopts\ngrub_users $grub_users\n"
    )


@pytest.mark.parametrize("separate_boot", [False, True])
def test_a_bls_grub_cfg_finds_its_entries_from_where_it_sits(tmp_path, separate_boot):
    boot = {
        "grub2/grub.cfg": FEDORA_GRUB_CFG,
        "loader/entries/abc-6.5.6-300.fc39.x86_64.conf": bls_entry("6.5.6-300.fc39.x86_64"),
        "loader/entries/abc-6.7.4-200.fc39.x86_64.conf": bls_entry("6.7.4-200.fc39.x86_64"),
    }
    prefix = "" if separate_boot else "boot/"
    top = write_tree(tmp_path / "fs", {prefix + path: text for path, text in boot.items()})
    # blscfg names files inside the filesystem the entries are on, as GRUB reads them.
    out = boots(top / prefix / "grub2" / "grub.cfg", "-q")
    assert out == (
        "  kernel: /vmlinuz-6.7.4-200.fc39.x86_64\n"
        "  initrd: /initramfs-6.7.4-200.fc39.x86_64.img\n"
        "  args: root=/dev/xvda3 ro rhgb quiet\n"
    )


def test_a_bls_grub_cfg_without_entries_says_where_it_looked(tmp_path):
    top = write_tree(tmp_path / "fs", {"boot/grub2/grub.cfg": FEDORA_GRUB_CFG})
    proc = isconfig(top / "boot" / "grub2" / "grub.cfg", "-q")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"pygrub: error: RuntimeError: {top}/boot/grub2/grub.cfg: not a bootloader config pygrub can read, "
        f"with {top} as its filesystem's root (grub2: no menu entries; blscfg: no entry in "
        "/loader/entries/ nor /boot/loader/entries/)\n"
    )


def test_a_missing_config_is_one_line(tmp_path):
    proc = isconfig(tmp_path / "grub.cfg")
    assert (proc.returncode, proc.stderr) == (
        1,
        f"pygrub: error: RuntimeError: cannot read config file {tmp_path}/grub.cfg: No such file or directory\n",
    )
    proc = isconfig(tmp_path)
    assert (
        proc.stderr
        == f"pygrub: error: RuntimeError: cannot read config file {tmp_path}: not a regular file\n"
    )
