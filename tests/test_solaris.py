"""Solaris and illumos guests: their GRUB's menu.lst (findroot, bootfs, kernel$/module$,
$ISADIR, $ZFS-BOOTFS, -B), Xen's boot string on ZFS, and Xen's sniffing of Solaris PV
kernels and the NetWare loader when a disk has no bootloader config.

Menus are written the way bootadm and libbe write them (Solaris Express/OpenSolaris on
UFS, OpenIndiana on ZFS; SmartOS from the shared corpus). ZFS pools are made by the real
ZFS (zfs-fuse) at test time, and ``zdb`` is the oracle for the dataset object numbers in
the boot strings. Xen 4.17's pygrub is the oracle for NetWare sniffing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from corpus import CORPUS
from hostfs import guest_of_dirs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import make_ext, make_partitioned, require_tool, run, write_tree
from xen import normalise, run_xen
from zfstools import export_pool, zfs_fuse

from pygrub.boot import entry_files, open_guest, plan_boot, why_not_bootable
from pygrub.config import LoadContext, find_menu, solaris
from pygrub.config.grub_legacy import MAX_EXPANDED_LINE, load
from pygrub.config.guest import parse_device
from pygrub.config.model import CHAINLOADER, LINUX, MULTIBOOT, OTHER, BootEntry
from pygrub.disk import FileSource
from pygrub.errors import PygrubError

XPV64 = "/platform/i86xpv/kernel/amd64/unix"
XPV32 = "/platform/i86xpv/kernel/unix"
METAL64 = "/platform/i86pc/kernel/amd64/unix"
ARCHIVE64 = "/platform/i86pc/amd64/boot_archive"
ARCHIVE32 = "/platform/i86pc/boot_archive"


def boot_environment(tag: str) -> dict[str, bytes]:
    """A Solaris root's boot files, each saying which file of which root it is."""
    return {
        path.lstrip("/"): f"{tag}:{path}\n".encode() * 50
        for path in (XPV64, XPV32, METAL64, ARCHIVE64, ARCHIVE32)
    }


def run_pygrub(image: Path, tmp: Path, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The whole command as libxl runs it; returns the process and the simple0 items."""
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    output = tmp / "output"
    output.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "pygrub", "-q", "--output-format=simple0",
         f"--output={output}", f"--output-directory={out}", *options, str(image)],
        capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    items = dict(item.split(" ", 1) for item in output.read_text().split("\0") if item)
    return proc, items


def booted(image: Path, tmp: Path, *options: str) -> tuple[bytes, bytes | None, str]:
    """(kernel bytes, ramdisk bytes or None, args) of a run that must succeed."""
    proc, items = run_pygrub(image, tmp, *options)
    assert proc.returncode == 0, proc.stderr.decode()
    ramdisk = Path(items["ramdisk"]).read_bytes() if "ramdisk" in items else None
    return Path(items["kernel"]).read_bytes(), ramdisk, items.get("args", "")


def menu_of(root: Path, text: str, extra_args: str = "", path: str = "/boot/grub/menu.lst"):
    guest, volumes = guest_of_dirs(("hd0,msdos1", root))
    fs = guest.filesystem(volumes[0])
    return load(LoadContext(path, text, fs, volumes[0], guest, extra_args))


# -- Solaris Express / OpenSolaris on UFS (ext4 stands in: the loader is the same) -----------

UFS_MENU = """\
#pragma ident	"@(#)menu.lst	1.1	05/09/01 SMI"
#
# default menu entry to boot
default 0
#
# menu timeout in second before default OS is booted
# set to -1 to wait for user input
timeout 10
splashimage /boot/grub/splash.xpm.gz
#---------- ADDED BY BOOTADM - DO NOT EDIT ----------
title Solaris Express Community Edition snv_87 X86
findroot (rootfs0,0,a)
kernel$ /platform/i86pc/kernel/$ISADIR/unix
module$ /platform/i86pc/$ISADIR/boot_archive
#---------------------END BOOTADM--------------------
#---------- ADDED BY BOOTADM - DO NOT EDIT ----------
title Solaris failsafe
findroot (rootfs0,0,a)
kernel /boot/platform/i86pc/kernel/unix -s -B console=ttyb
module /boot/x86.miniroot-safe
#---------------------END BOOTADM--------------------
"""


@pytest.fixture(scope="module")
def ufs_guest(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ufs")
    tree = boot_environment("root")
    tree |= {
        "boot/grub/menu.lst": UFS_MENU.encode(),
        "boot/grub/bootsign/rootfs0": b"",
        "boot/platform/i86pc/kernel/unix": b"failsafe kernel",
        "boot/x86.miniroot-safe": b"failsafe miniroot",
    }
    return make_ext(tmp, tree, size_mb=16)


def test_ufs_bootadm_menu_boots_the_pv_kernel(ufs_guest, tmp_path):
    env = boot_environment("root")
    kernel, ramdisk, args = booted(ufs_guest, tmp_path)
    # The i86pc kernel cannot run PV: the i86xpv one beside it boots, with the archive.
    assert kernel == env[XPV64.lstrip("/")]
    assert ramdisk == env[ARCHIVE64.lstrip("/")]
    assert args == XPV64
    kernel, ramdisk, args = booted(ufs_guest, tmp_path, "--args=-v -m verbose")
    assert args == f"{XPV64} -v -m verbose"


def test_failsafe_entry_is_not_a_pv_boot(tmp_path):
    root = write_tree(tmp_path, boot_environment("r") | {"boot/grub/bootsign/rootfs0": b""})
    menu = menu_of(root, UFS_MENU)
    assert [e.kind for e in menu.items] == [LINUX, MULTIBOOT]
    # The miniroot's kernel is no /platform/<platform>/kernel one: a multiboot entry.
    assert menu.items[1].kernel == "/boot/platform/i86pc/kernel/unix"
    assert menu.items[1].args == "-s -B console=ttyb"


# -- the SmartOS menu of the shared corpus, on a disk that has a PV kernel -------------------


def test_smartos_corpus_menu_boots_pv_with_its_properties(tmp_path):
    case = CORPUS / "smartos-headnode-menulst"
    if not case.is_dir():
        pytest.fail(f"the corpus case {case} is missing")
    tree = {str(f.relative_to(case)): f.read_bytes() for f in case.rglob("*") if f.is_file()}
    tree.pop("expected.json")
    tree |= boot_environment("smartos")
    image = make_ext(tmp_path, tree, size_mb=16)
    kernel, ramdisk, args = booted(image, tmp_path)
    assert kernel.startswith(b"smartos:" + XPV64.encode())
    assert ramdisk is not None and ramdisk.startswith(b"smartos:" + ARCHIVE64.encode())
    # -B property lists pass through as written, quotes and all.
    assert args == f"{XPV64} -B console=text,headnode=true"
    _, _, args = booted(image, tmp_path, "--entry=2")
    assert args == f'{XPV64} -B console=ttyb,ttyb-mode="115200,8,n,1,-",headnode=true'


# -- findroot across volumes -------------------------------------------------------------------

FINDROOT_MENU = """\
default 0
timeout 5
title on the second partition
findroot (rootfs1,1,a)
kernel$ /platform/i86xpv/kernel/$ISADIR/unix -B console=ttya
module$ /platform/i86pc/$ISADIR/boot_archive
title a signature nobody has
findroot (rootfs9,0,a)
kernel$ /platform/i86xpv/kernel/$ISADIR/unix -B console=ttya
module$ /platform/i86pc/$ISADIR/boot_archive
"""


def test_findroot_picks_the_volume_with_the_signature(tmp_path):
    first = boot_environment("first") | {"boot/grub/menu.lst": FINDROOT_MENU.encode()}
    second = boot_environment("second") | {"boot/grub/bootsign/rootfs1": b""}
    disk = make_partitioned(
        tmp_path,
        [
            (make_ext(tmp_path, first, size_mb=8, name="p1.img"), "83"),
            (make_ext(tmp_path, second, size_mb=8, name="p2.img"), "83"),
        ],
    )
    kernel, ramdisk, args = booted(disk, tmp_path)
    assert kernel.startswith(b"second:") and ramdisk is not None and ramdisk.startswith(b"second:")
    assert args == f"{XPV64} -B console=ttya"
    # No volume holds the signature: the config's own volume is the root.
    kernel, _, _ = booted(disk, tmp_path, "--entry=1")
    assert kernel.startswith(b"first:")


# -- Xen's sniffing when there is no config ----------------------------------------------------


def test_sniffs_a_solaris_pv_kernel_as_xen_does(tmp_path):
    image = make_ext(tmp_path, boot_environment("sniffed"), size_mb=16)
    env = boot_environment("sniffed")
    kernel, ramdisk, args = booted(image, tmp_path)
    assert kernel == env[XPV64.lstrip("/")] and ramdisk == env[ARCHIVE64.lstrip("/")]
    assert args == XPV64
    # Xen puts root= and ip= first, then the kernel path, then the rest, blanks and all.
    _, _, args = booted(
        image, tmp_path, f"--args=-k root=/dev/dsk/c0d0s0 {XPV64} ip=dhcp -B console=ttya"
    )
    assert args == f"root=/dev/dsk/c0d0s0 ip=dhcp  {XPV64} -k -B console=ttya "


def test_sniffs_a_32_bit_solaris(tmp_path):
    tree = {k: v for k, v in boot_environment("x86").items() if "amd64" not in k}
    image = make_ext(tmp_path, tree, size_mb=16)
    kernel, ramdisk, args = booted(image, tmp_path)
    assert kernel.startswith(f"x86:{XPV32}".encode())
    assert ramdisk is not None and ramdisk.startswith(f"x86:{ARCHIVE32}".encode())
    assert args == XPV32


def compare_with_xen(image: Path, tmp: Path, *args: str) -> bytes:
    """Our output and extracted file against Xen 4.17's pygrub for the same options."""
    outputs, files = [], []
    for name, command in (("xen", run_xen), ("ours", run_ours)):
        directory = tmp / name
        directory.mkdir()
        proc = command(
            "-q", "--output-format=simple", f"--output-directory={directory}", *args, image
        )
        assert proc.returncode == 0, f"{name}: {proc.stderr.decode()}"
        outputs.append(normalise(proc.stdout).replace(b"/ours/", b"/xen/"))
        files.append([p.read_bytes() for p in sorted(directory.iterdir())])
    assert outputs[0] == outputs[1]
    assert files[0] == files[1]
    return outputs[1]


def run_ours(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pygrub", *map(str, args)],
        capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_sniffs_netware_as_xen_4_17_does(tmp_path):
    image = make_ext(tmp_path, {"nwserver/xnloader.sys": b"MZ NetWare loader" * 100}, size_mb=8)
    output = compare_with_xen(image, tmp_path, "--args=SERVER -NA")
    assert b"args SERVER -NA\n" in output and b"ramdisk" not in output


def test_a_config_wins_over_sniffing(tmp_path):
    menu = "title Linux\nkernel /vmlinuz ro\n"
    tree = boot_environment("s") | {
        "boot/grub/menu.lst": menu.encode(),
        "vmlinuz": b"linux kernel",
        "nwserver/xnloader.sys": b"netware",
    }
    kernel, ramdisk, args = booted(make_ext(tmp_path, tree, size_mb=16), tmp_path)
    assert (kernel, ramdisk, args) == (b"linux kernel", None, "ro")


# -- OpenIndiana on ZFS, pools made by zfs-fuse ------------------------------------------------


@pytest.fixture(scope="module")
def zfs_daemon():
    """zfs-fuse running (the zpool, zfs and zdb of zfs-fuse talk to it)."""
    for tool in ("zfs", "zdb"):
        require_tool(tool)
    with zfs_fuse():
        yield


def build_pool(
    tmp: Path, pool: str, top: dict[str, bytes], datasets: dict[str, dict[str, bytes]], bootfs: str
) -> Path:
    """A single-disk pool (version 23) with these files; exported, so its image is whole."""
    vdev = tmp / f"{pool}.img"
    with open(vdev, "wb") as f:
        f.truncate(64 << 20)
    mnt = tmp / "mnt"
    run("zpool", "create", "-f", "-o", "version=23", "-o", "cachefile=none",
        "-m", mnt / pool, pool, vdev)  # fmt: skip
    try:
        write_tree(mnt / pool, top)
        run("zfs", "create", "-o", "mountpoint=none", f"{pool}/ROOT")
        for name, tree in datasets.items():
            run("zfs", "create", "-o", f"mountpoint={mnt / name}", f"{pool}/ROOT/{name}")
            write_tree(mnt / name, tree)
        run("zpool", "set", f"bootfs={pool}/ROOT/{bootfs}", pool)
        export_pool(pool)
    except BaseException:
        subprocess.run([require_tool("zpool"), "destroy", "-f", pool], capture_output=True)
        raise
    return vdev


def zdb_object(vdev: Path, dataset: str) -> int:
    """The dataset's object number as ZFS's debugger reads it from the exported pool."""
    out = run("zdb", "-e", "-p", vdev.parent, "-d", dataset).decode()
    m = re.search(r"Dataset \S+ \[ZPL\], ID (\d+)", out)
    assert m is not None, out
    return int(m[1])


OI_MENU = """\
splashimage /boot/grub/splash.xpm.gz
background 215ECA
timeout 30
default 0
#---------- ADDED BY BOOTADM - DO NOT EDIT ----------
title openindiana-2
findroot (pool_{pool},0,a)
bootfs {pool}/ROOT/openindiana-2
kernel$ /platform/i86pc/kernel/$ISADIR/unix -B $ZFS-BOOTFS,console=graphics
module$ /platform/i86pc/$ISADIR/boot_archive
#============ End of LIBBE entry =============
title openindiana
findroot (pool_{pool},0,a)
bootfs {pool}/ROOT/openindiana
kernel$ /platform/i86pc/kernel/$ISADIR/unix -B $ZFS-BOOTFS,console=ttya
module$ /platform/i86pc/$ISADIR/boot_archive
#============ End of LIBBE entry =============
"""


@pytest.fixture(scope="module")
def oi_pool(zfs_daemon, tmp_path_factory) -> tuple[Path, str]:
    """OpenIndiana's layout: menu.lst and the signature in the pool's top dataset, a boot
    environment per dataset, the pool's bootfs the older one (the menu's default is newer)."""
    tmp = tmp_path_factory.mktemp("oi")
    pool = f"oi{os.getpid()}"  # pool names are the daemon's, shared by every test run
    top = {
        "boot/grub/menu.lst": OI_MENU.format(pool=pool).encode(),
        f"boot/grub/bootsign/pool_{pool}": b"",
    }
    datasets = {
        "openindiana": boot_environment("be1"),
        "openindiana-2": boot_environment("be2"),
    }
    return build_pool(tmp, pool, top, datasets, "openindiana"), pool


def test_openindiana_menu_on_zfs_boots_its_bootfs(oi_pool, tmp_path):
    vdev, pool = oi_pool
    be2 = zdb_object(vdev, f"{pool}/ROOT/openindiana-2")
    kernel, ramdisk, args = booted(vdev, tmp_path)
    # The bootfs line, not the pool's bootfs property, names the dataset; $ZFS-BOOTFS is
    # the boot string Xen's getbootstring makes for it.
    assert kernel.startswith(f"be2:{XPV64}".encode())
    assert ramdisk is not None and ramdisk.startswith(f"be2:{ARCHIVE64}".encode())
    assert args == f"{XPV64} -B zfs-bootfs={pool}/{be2},bootpath='',console=graphics"
    be1 = zdb_object(vdev, f"{pool}/ROOT/openindiana")
    kernel, _, args = booted(vdev, tmp_path, "--entry=openindiana")
    assert kernel.startswith(b"be1:")
    assert args == f"{XPV64} -B zfs-bootfs={pool}/{be1},bootpath='',console=ttya"


def test_zfs_bootfs_in_args_selects_the_dataset_as_in_xen(oi_pool, tmp_path):
    vdev, pool = oi_pool
    be1 = zdb_object(vdev, f"{pool}/ROOT/openindiana")
    kernel, _, args = booted(vdev, tmp_path, f"--args=zfs-bootfs={pool}/ROOT/openindiana")
    assert kernel.startswith(b"be1:")
    boot_string = f"zfs-bootfs={pool}/{be1},bootpath=''"
    # Xen replaces every zfs-bootfs= with the boot string, the one --args brought too.
    assert args == f"{XPV64} -B {boot_string},console=graphics {boot_string}"


@pytest.fixture(scope="module")
def sniff_pool(zfs_daemon, tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("sniff")
    pool = f"sn{os.getpid()}"
    datasets = {"s11": boot_environment("s11"), "s11old": boot_environment("old")}
    return build_pool(tmp, pool, {}, datasets, "s11"), pool


def test_sniffed_solaris_on_zfs_gets_the_boot_string(sniff_pool, tmp_path):
    vdev, pool = sniff_pool
    s11 = zdb_object(vdev, f"{pool}/ROOT/s11")
    kernel, ramdisk, args = booted(vdev, tmp_path, "--args=-B console=ttya")
    assert kernel.startswith(b"s11:") and ramdisk is not None and ramdisk.startswith(b"s11:")
    assert args == f" {XPV64} -B console=ttya  -B zfs-bootfs={pool}/{s11},bootpath=''"
    old = zdb_object(vdev, f"{pool}/ROOT/s11old")
    kernel, _, args = booted(vdev, tmp_path, f"--args=zfs-bootfs={pool}/ROOT/s11old -v")
    assert kernel.startswith(b"old:")
    assert args == f" {XPV64} zfs-bootfs={pool}/{old},bootpath='' -v "


def test_unknown_dataset_is_a_clean_error(sniff_pool, oi_pool, tmp_path):
    for vdev, pool in (sniff_pool, oi_pool):
        proc, items = run_pygrub(vdev, tmp_path, f"--args=zfs-bootfs={pool}/ROOT/nope")
        assert proc.returncode == 1 and not items
        assert "nope" in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()


# -- the loader, piece by piece --------------------------------------------------------------


def only(text: str, root: Path | None = None, extra_args: str = "") -> BootEntry:
    if root is None:
        menu = load(LoadContext("/boot/grub/menu.lst", text))
    else:
        menu = menu_of(root, text, extra_args)
    assert len(menu.items) == 1
    item = menu.items[0]
    assert isinstance(item, BootEntry)
    return item


def test_expansion_rules_of_illumos_grub():
    entry = only(
        "variable console ttyb\n"
        "title t\n"
        "kernel$ /platform/i86xpv/kernel/$ISADIR/unix -B console=${console},x=${nope\n"
        "module$ /platform/i86pc/$ISADIR/boot_archive\n"
    )
    # ${ unterminated stays as it is; $ZFS-BOOTFS off ZFS is left for the kernel to see.
    assert (entry.kind, entry.kernel, entry.initrds) == (LINUX, XPV64, [ARCHIVE64])
    assert entry.args == f"{XPV64} -B console=ttyb,x=${{nope"
    entry = only("title t\nkernel$ /platform/i86xpv/kernel/unix -B $ZFS-BOOTFS\nmodule /a\n")
    assert entry.args == f"{XPV32} -B $ZFS-BOOTFS" and entry.initrds == ["/a"]
    # Only the $ lines expand.
    entry = only("title t\nkernel /platform/i86xpv/kernel/$ISADIR/unix\nmodule /a\n")
    assert entry.kernel == "/platform/i86xpv/kernel/$ISADIR/unix" and entry.kind == MULTIBOOT


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("kernel$ /platform/i86xpv/kernel/unix -B ${undefined}\n", "not defined"),
        ("kernel$ /platform/i86xpv/kernel/unix\n", "no boot archive"),
        ("bootfs /rpool/ROOT/be\nkernel /k\n", "not a ZFS dataset name"),
        ("bootfs rpool/ROOT/be@snap\nkernel /k\n", "not a ZFS dataset name"),
        ("findroot (a/b,0,a)\nkernel /k\n", "not a signature"),
        ("findroot (rootfs0\nkernel /k\n", "no ')'"),
        ("findroot\nkernel /k\n", "not a signature"),
        ("kernel$ /x/" + "$ISADIR" * 1000 + "\n", f"over {MAX_EXPANDED_LINE}"),
        ("variable " + "v" * 40 + " x\nkernel /k\n", "variable"),
    ],
)
def test_malformed_solaris_lines_make_the_entry_unbootable(body, reason):
    entry = only("title t\n" + body)
    assert entry.not_bootable is not None and reason in entry.not_bootable


def test_variables_are_bounded_and_menu_wide():
    lines = "".join(f"variable v{i} {i}\n" for i in range(40))
    menu = load(
        LoadContext(
            "/boot/grub/menu.lst",
            lines + "title t\nkernel$ /platform/i86xpv/kernel/unix ${v31} ${v0}\nmodule /a\n"
            "title u\nkernel$ /platform/i86xpv/kernel/unix ${v32}\nmodule /a\n",
        )
    )
    assert menu.items[0].args == f"{XPV32} 31 0"
    assert "not defined" in menu.items[1].not_bootable


def test_bare_metal_kernel_without_pv_kernel_stays_multiboot(tmp_path):
    root = write_tree(tmp_path, {METAL64.lstrip("/"): "k", ARCHIVE64.lstrip("/"): "a"})
    entry = only(f"title t\nkernel {METAL64} -B x=1\nmodule {ARCHIVE64}\n", root)
    assert entry.kind == MULTIBOOT and entry.kernel == METAL64 and entry.args == "-B x=1"
    assert "a multiboot entry, not a Linux kernel" in entry.not_bootable
    assert "no PV kernel" in entry.not_bootable
    with pytest.raises(PygrubError, match="multiboot entry"):
        plan_boot(guest_of_dirs(("hd0,msdos1", write_tree(root, {"boot/grub/menu.lst":
            f"title t\nkernel {METAL64}\nmodule {ARCHIVE64}\n"})))[0])  # fmt: skip


def test_xvm_dom0_entry_stays_a_hypervisor_entry(tmp_path):
    root = write_tree(tmp_path, boot_environment("x") | {"boot/amd64/xen.gz": b"xen"})
    text = (
        "title Solaris xVM\nkernel$ /boot/$ISADIR/xen.gz\n"
        f"module$ {XPV64} {XPV64} -B $ZFS-BOOTFS\nmodule$ {ARCHIVE64}\n"
    )
    entry = only(text, root)
    assert entry.kind == MULTIBOOT and entry.kernel == "/boot/amd64/xen.gz"


def test_with_boot_string_is_xens_rule():
    bs = "zfs-bootfs=rpool/42,bootpath='/xpvd/xdf@0:a'"
    assert solaris.with_boot_string("", bs) == ""
    assert solaris.with_boot_string("-v", bs) == f"-v -B {bs}"
    assert solaris.with_boot_string("-B zfs-bootfs=rpool/ROOT/be,x=1", bs) == f"-B {bs},x=1"
    # A boot string already there is replaced by itself, not doubled.
    assert solaris.with_boot_string(f"-B {bs},x=1", bs) == f"-B {bs},x=1"
    assert solaris.zfs_bootfs_option("a zfs-bootfs=rpool/ROOT/be,x") == "rpool/ROOT/be"
    assert solaris.zfs_bootfs_option("zfs-bootfs=rpool/ROOT/be") == "rpool/ROOT/be"
    assert solaris.zfs_bootfs_option("zfs-bootfs= x") is None
    assert solaris.sniffed_args(XPV64, "") == XPV64


# -- hostile menus ---------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "(", ")", ",", "${", "}", "${v}", "$ISADIR", "$ZFS-BOOTFS", "@", "/", "\0", " ", "\n",
        "9" * 12, "é", "-B ", "amd64/", "unix",
    ]
)  # fmt: skip
SOUP = st.lists(FRAGMENTS, max_size=6).map("".join)
PATHS = st.one_of(
    st.sampled_from(
        [
            "/platform/i86xpv/kernel/$ISADIR/unix",
            "/platform/i86pc/kernel/$ISADIR/unix",
            "/platform/i86pc/$ISADIR/boot_archive",
            "/platform/i86xpv/kernel/unix",
            "(hd0,0)/platform/i86pc/boot_archive",
            "/ROOT/be@/platform/i86xpv/kernel/amd64/unix",
        ]
    ),
    SOUP,
)
LINES = st.one_of(
    st.just("title t"),
    st.builds("findroot ({},0,a)".format, st.sampled_from(["rootfs0", "pool_rpool", "x/y", ""])),
    st.builds("bootfs {}".format, st.sampled_from(["rpool/ROOT/be", "/abs", "a@b", ""])),
    st.builds("kernel$ {} {}".format, PATHS, st.one_of(st.just("-B $ZFS-BOOTFS,x=${v}"), SOUP)),
    st.builds("kernel {} {}".format, PATHS, SOUP),
    st.builds("module$ {}".format, PATHS),
    st.builds("module {}".format, PATHS),
    st.builds("variable v {}".format, SOUP),
    st.sampled_from(["root (hd0,0)", "root (hd0,0,a)", "boot", "initrd /x"]),
    SOUP,
)
#: An entry as bootadm writes it; the fuzzer keeps, drops or replaces each line.
BOOTADM_ENTRY = (
    "title t",
    "findroot (rootfs0,0,a)",
    "bootfs rpool/ROOT/be",
    "kernel$ /platform/i86pc/kernel/$ISADIR/unix -B $ZFS-BOOTFS,console=ttya",
    "module$ /platform/i86pc/$ISADIR/boot_archive",
)
ENTRY = st.tuples(
    *(st.one_of(*[st.just(line)] * 4, st.just(""), LINES) for line in BOOTADM_ENTRY)
).map("\n".join)
ONE_LINE_OFF = st.builds(
    lambda index, line: "\n".join(BOOTADM_ENTRY[:index] + (line,) + BOOTADM_ENTRY[index + 1 :]),
    st.integers(0, len(BOOTADM_ENTRY)),
    st.one_of(st.just(""), LINES),
)
MENUS = st.lists(st.one_of(ONE_LINE_OFF, ENTRY, LINES), max_size=6).map("\n".join)


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory) -> Path:
    return write_tree(
        tmp_path_factory.mktemp("fuzz"),
        boot_environment("f") | {"boot/grub/bootsign/rootfs0": b""},
    )


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(MENUS, st.sampled_from(["", "zfs-bootfs=x/y -v"]))
def test_fuzz_solaris_menus(fuzz_root, text, extra_args):
    guest, volumes = guest_of_dirs(("hd0,msdos1", fuzz_root))
    fs = guest.filesystem(volumes[0])
    try:
        menu = load(LoadContext("/boot/grub/menu.lst", text, fs, volumes[0], guest, extra_args))
    except PygrubError:
        return
    for item in menu.items:
        assert isinstance(item, BootEntry)
        assert item.kind in (LINUX, MULTIBOOT, CHAINLOADER, OTHER)
        assert item.not_bootable is None or "\n" not in item.not_bootable
        assert item.device is None or parse_device(item.device) is not None
        if item.kind == LINUX and item.not_bootable is None:
            assert item.kernel is not None and item.kernel.startswith("/")
            assert len(item.args) <= 2 * MAX_EXPANDED_LINE + len(text)
    # What boot.py makes of every entry: a reason, or files that are there.
    home = guest.filesystem(volumes[0])
    assert home is not None
    for item in menu.items:
        assert isinstance(item, BootEntry)
        if why_not_bootable(guest, home, "(hd0,msdos1)", item) is None:
            kernel, initrds = entry_files(guest, home, "(hd0,msdos1)", item)
            assert all(ref.fs.is_file(ref.path) for ref in [kernel, *initrds])


def test_find_menu_reads_a_zfs_top_dataset_menu(oi_pool):
    vdev, pool = oi_pool
    guest = open_guest(FileSource(str(vdev)))
    volume = guest.volumes[0]
    fs = guest.filesystem(volume)
    assert fs is not None and fs.kind == "zfs"
    menu, attempts = find_menu(guest, volume, fs)
    assert menu is not None, attempts
    assert menu.config_path == f"{pool}:/boot/grub/menu.lst"
    assert [e.title for e in menu.items] == ["openindiana-2", "openindiana"]
    assert menu.items[0].kernel == f"/ROOT/openindiana-2@{XPV64}"
