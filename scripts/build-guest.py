#!/usr/bin/env python3
"""Install a real Debian guest with Debian's own tools, for pygrub to boot.

    scripts/build-guest.py SUITE LAYOUT [CHOICE]     prints the guest's manifest (JSON)

mmdebstrap installs each suite once into a cached tarball (the kernel, initramfs-tools,
systemd-sysv, grub-pc, two kernel versions); each layout lays that tarball onto fresh
partitions on loop devices, writes /etc/fstab by UUID, and runs update-initramfs,
grub-install and update-grub INSIDE the guest against its loop device, so that every
line of the bootloader's configuration is Debian's. CHOICE is how the administrator
picks the kernel: "default" (the newest), "set-default" (GRUB_DEFAULT=saved and
grub-set-default on the older one) or "reboot" (grub-reboot the older one, once).

A unit in the guest prints MARKER, the running kernel, what / and /boot are mounted
from and /proc/cmdline on its consoles (ttyS0 under QEMU, hvc0 as a Xen PV domain) once
multi-user.target is reached, then powers off.

Cache ($PYGRUB_GUEST_CACHE, else ~/.cache/pygrub-guests): the tarball is keyed by its
recipe (suite, packages, hooks); an image by the tarball's package versions (dpkg-query)
and this file's own hash. PYGRUB_GUEST_REFRESH=1 installs the suite again (new package
versions on the archive). Needs root, mmdebstrap, losetup, sfdisk, sgdisk, mkfs.ext4,
mkfs.btrfs and Debian's archive.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from uuid import uuid4

MARKER = "PYGRUB-GUEST-UP"

ARCHIVE = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

SUITES = ("bookworm", "trixie")
CHOICES = ("default", "set-default", "reboot")

PACKAGES = (
    "linux-image-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "grub-pc",
    # The other firmware's GRUB, for grub-install --target=x86_64-efi (grub-efi-amd64,
    # which conflicts with grub-pc, adds only its maintainer scripts).
    "grub-efi-amd64-bin",
    # Every filesystem's tools: fsck and the initramfs hooks (btrfs device scan, lvm).
    "e2fsprogs",
    "btrfs-progs",
    "xfsprogs",
    "dosfstools",
    "lvm2",
)

#: The unit's script: one line on each console the guest has, then power off: ttyS0 under
#: QEMU, hvc0 in a Xen PV domain (whose ttyS0 has no UART behind it).
MARKER_SCRIPT = f"""#!/bin/sh
set -- $(findmnt -no SOURCE,FSTYPE,UUID /) $(findmnt -no SOURCE,FSTYPE,UUID /boot)
line="{MARKER} release=$(uname -r) target=$(systemctl is-active multi-user.target)\
 root=$1 rootfs=$2 rootuuid=$3 boot=${{4:-}} bootfs=${{5:-}} bootuuid=${{6:-}}\
 cmdline=$(cat /proc/cmdline)"
for console in /dev/ttyS0 /dev/hvc0; do
    [ -c "$console" ] && echo "$line" 2>/dev/null >"$console"
done
systemctl --no-block poweroff
"""

MARKER_UNIT = """[Unit]
Description=Tell the test that multi-user.target was reached
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/pygrub-marker

[Install]
WantedBy=multi-user.target
"""

#: Not Debian's, the test's: under TCG, and slower still as a Xen PV domain (every page
#: table update a hypercall) on a loaded machine, journald, udev and the root's device
#: took longer than systemd's 90 s defaults and the guest fell into emergency mode.
SLOW_CPU_TIMEOUTS = """[Manager]
DefaultTimeoutStartSec=20min
DefaultDeviceTimeoutSec=20min
"""

#: Run in the new root by mmdebstrap's customize hook: the older of the two kernel
#: versions the suite (with its -updates and -security) offers, the marker unit, and the
#: serial console an administrator of a QEMU guest sets for GRUB's entries.
CUSTOMIZE = r"""set -eu
newest=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9]\S*\)$/\1/p')
older=
for v in $(apt-cache madison linux-image-amd64 | awk '{print $3}'); do
    p=$(apt-cache depends "linux-image-amd64=$v" | sed -n 's/^ *Depends: \(linux-image-[0-9]\S*\)$/\1/p')
    if [ "$p" != "$newest" ]; then older=$p; fi
done
[ -n "$older" ] || { echo "only one kernel version ($newest) in the suite" >&2; exit 1; }
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$older"
sed -i 's/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX="console=ttyS0"/' /etc/default/grub
chmod 755 /usr/local/sbin/pygrub-marker
systemctl enable pygrub-marker.service
echo pygrub-guest >/etc/hostname
apt-get clean
"""


def log(message: str) -> None:
    print(f"build-guest: {message}", file=sys.stderr, flush=True)


def run(*argv: str | Path, stdin: bytes | None = None, env: dict | None = None) -> str:
    # A process group of its own, killed whole if the build unwinds: a chroot's children
    # (update-initramfs, grub-install) would otherwise outlive it and keep the guest's
    # mounts busy, and the mounts, loop device and temporary directory would stay.
    with subprocess.Popen(
        [str(a) for a in argv],
        stdin=None if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if env is None else {**os.environ, **env},
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(stdin)
        except BaseException:
            kill_group(proc)
            raise
    if proc.returncode != 0:
        raise SystemExit(
            f"build-guest: {' '.join(map(str, argv))} failed ({proc.returncode}):\n"
            f"{stdout.decode(errors='replace')[-3000:]}"
            f"{stderr.decode(errors='replace')[-3000:]}"
        )
    return stdout.decode()


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to ``proc``'s process group, then wait (5 s at most) until it is gone."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()
    for _ in range(50):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def unwind_on_signals() -> None:
    """A build killed by SIGTERM or SIGHUP (CI's timeout, a closed terminal) unwinds as a
    failed one does: its mounts, loop devices and temporary directory go, where Python's
    default would leave gigabytes of them in the cache."""
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda signum, _frame: sys.exit(128 + signum))


@contextmanager
def step(name: str) -> Iterator[None]:
    """Log how long ``name`` took: the figures for the report and CI's budget."""
    start = time.monotonic()
    yield
    log(f"{name}: {time.monotonic() - start:.0f} s")


def cache_dir() -> Path:
    root = os.environ.get("PYGRUB_GUEST_CACHE") or Path.home() / ".cache" / "pygrub-guests"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


# -- the suite's root filesystem, installed once ------------------------------------------


def sources(suite: str) -> list[str]:
    signed = f"[signed-by={KEYRING}]"
    return [
        f"deb {signed} {ARCHIVE} {suite} main",
        f"deb {signed} {ARCHIVE} {suite}-updates main",
        f"deb {signed} {SECURITY} {suite}-security main",
    ]


def mmdebstrap_argv(
    suite: str, tarball: Path, packages_list: Path, extra: tuple[str, ...] = ()
) -> list[str]:
    files = {"usr/local/sbin/pygrub-marker": MARKER_SCRIPT}
    files["etc/systemd/system/pygrub-marker.service"] = MARKER_UNIT
    writes = [
        f'mkdir -p "$1/{Path(name).parent}" && printf %s {shlex.quote(text)} >"$1/{name}"'
        for name, text in files.items()
    ]
    return [
        "mmdebstrap",
        "--quiet",
        "--mode=root",
        "--variant=apt",
        '--aptopt=APT::Install-Recommends "false"',
        f"--include={','.join(PACKAGES + extra)}",
        # grub-pc's postinst asks for the disks to install to; there are none yet.
        "--essential-hook=echo 'grub-pc grub-pc/install_devices_empty boolean true'"
        ' | chroot "$1" debconf-set-selections',
        *(f"--customize-hook={w}" for w in writes),
        f'--customize-hook=chroot "$1" sh -c {shlex.quote(CUSTOMIZE)}',
        "--customize-hook=chroot \"$1\" dpkg-query -W -f '${Package} ${Version}\\n'"
        f" | LC_ALL=C sort >{packages_list}",
        suite,
        str(tarball),
        *sources(suite),
    ]


def rootfs_tarball(suite: str, extra: tuple[str, ...]) -> Path:
    recipe = digest(json.dumps(mmdebstrap_argv(suite, Path("T"), Path("P"), extra)))
    return cache_dir() / f"rootfs-{suite}-{recipe}.tar"


def rootfs(suite: str, extra: tuple[str, ...]) -> tuple[Path, str]:
    """The suite's installed tree (with the ``extra`` packages) as a tarball, and its
    sorted package versions."""
    tarball = rootfs_tarball(suite, extra)
    packages = tarball.with_suffix(".packages")
    if os.environ.get("PYGRUB_GUEST_REFRESH") == "1" or not packages.is_file():
        with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
            part, part_list = Path(work) / "rootfs.tar", Path(work) / "packages"
            with step(f"mmdebstrap {suite}"):
                run(*mmdebstrap_argv(suite, part, part_list, extra))
            part.replace(tarball)
            part_list.replace(packages)
    return tarball, packages.read_text()


def kernel_releases(packages: str) -> list[str]:
    """The installed kernels' releases (6.1.0-NN-amd64), oldest first by package version."""
    found = re.findall(r"^linux-image-(\d\S*-amd64) (\S+)$", packages, re.M)
    if len(found) != 2:
        raise SystemExit(f"build-guest: the rootfs holds {len(found)} kernels, not two")
    (a, a_version), (b, b_version) = found
    return [a, b] if version_lt(a_version, b_version) else [b, a]


def version_lt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0


# -- the disk -----------------------------------------------------------------------------


def partitioned_image(path: Path, size_gib: int, table: str, gpt: bool) -> None:
    """A sparse image of ``size_gib`` GiB with the partition table ``table``."""
    with open(path, "wb") as f:
        f.truncate(size_gib << 30)
    if gpt:
        run("sgdisk", "-o", *table.split(), path)
    else:
        run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", path, stdin=table.encode())


class Disk:
    """A sparse image, partitioned, on a partitioned loop device."""

    def __init__(self, stack: ExitStack, path: Path, size_gib: int, table: str, gpt: bool):
        partitioned_image(path, size_gib, table, gpt)
        self.device = run("losetup", "-P", "-f", "--show", path).strip()
        stack.callback(run, "losetup", "-d", self.device)
        # losetup -P's scan may add no partitions here (a container's loop driver):
        # partx adds the missing ones, and devtmpfs their nodes a moment later.
        run("partx", "-u", self.device)
        last = self.part(table.count("-n ") if gpt else table.count("start="))
        for _ in range(50):
            if Path(last).exists():
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"build-guest: {last} never appeared")

    def part(self, n: int) -> str:
        return f"{self.device}p{n}"


def uuid_of(device: str) -> str:
    return run("blkid", "-s", "UUID", "-o", "value", device).strip()


def mount(stack: ExitStack, source: str, at: Path, *options: str, fstype: str = "") -> None:
    at.mkdir(parents=True, exist_ok=True)
    run(
        "mount", *(["-t", fstype] if fstype else []), "-o", ",".join(options or ("rw",)), source, at
    )
    stack.callback(run, "umount", at)


def in_guest(root: Path, script: str) -> str:
    return run("chroot", root, "sh", "-euc", script, env={"DEBIAN_FRONTEND": "noninteractive"})


def extract(tarball: Path, into: Path, *members: str, exclude: str | None = None) -> None:
    run(
        "tar", "-x", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-f", tarball, "-C", into,
        *([f"--exclude={exclude}"] if exclude else []), *members,
    )  # fmt: skip


# -- the layouts ---------------------------------------------------------------------------
# Each makes the filesystems on the partitions, mounts them where the guest has them and
# lays the tarball out there; the Guest collects the fstab lines.


class Guest:
    def __init__(self, stack: ExitStack, work: Path, tarball: Path, disk: Disk):
        self.stack, self.root, self.tarball, self.disk = stack, work / "root", tarball, disk
        self.fstab: list[str] = []
        #: UUID -> device, for the guest's /dev/disk/by-uuid.
        self.uuids: dict[str, str] = {}
        self.grub_install = f"grub-install --target=i386-pc {disk.device}"
        #: What is left to do once the guest's tools have run.
        self.finish: list[Callable[[], None]] = []

    def add_fs(self, device: str, where: str, fstype: str, options: str = "defaults") -> str:
        uuid = uuid_of(device)
        self.uuids[uuid] = device
        passno = 0 if fstype in ("btrfs", "xfs") else 1 if where == "/" else 2
        self.fstab.append(f"UUID={uuid} {where} {fstype} {options} 0 {passno}")
        return uuid

    def enter(self) -> None:
        """/dev, /proc and /sys for the guest's own tools: a private /dev holding the
        disk's nodes (the host's /dev has no udev and is not the guest's to change)."""
        nodes = ["null", "zero", "full", "random", "urandom", "tty", "loop-control"]
        mount(self.stack, "tmpfs", self.root / "dev", "mode=755", fstype="tmpfs")
        disk_nodes = sorted(Path("/dev").glob(Path(self.disk.device).name + "*"))
        run("cp", "-a", *(f"/dev/{n}" for n in nodes), *disk_nodes, self.root / "dev")
        mount(self.stack, "proc", self.root / "proc", fstype="proc")
        mount(self.stack, "/sys", self.root / "sys", "bind")

    def link_uuids(self) -> None:
        """The /dev/disk/by-uuid links udev would make: grub-mkconfig writes root=UUID=
        only when the root's link exists."""
        links = self.root / "dev" / "disk" / "by-uuid"
        links.mkdir(parents=True)
        for uuid, device in self.uuids.items():
            (links / uuid).symlink_to(f"../../{Path(device).name}")


def mbr_ext4(g: Guest) -> None:
    """Debian on one ext4 partition of an MBR disk."""
    run("mkfs.ext4", "-q", g.disk.part(1))
    mount(g.stack, g.disk.part(1), g.root)
    g.add_fs(g.disk.part(1), "/", "ext4", "errors=remount-ro")
    extract(g.tarball, g.root)
    g.enter()


def btrfs_subvolume(g: Guest) -> None:
    """Root in the @ subvolume of a Btrfs partition (not the default one), /boot in it."""
    run("mkfs.btrfs", "-q", g.disk.part(1))
    top = g.root.parent / "top"
    with ExitStack() as top_mount:
        mount(top_mount, g.disk.part(1), top)
        run("btrfs", "subvolume", "create", top / "@")
    mount(g.stack, g.disk.part(1), g.root, "subvol=@")
    g.add_fs(g.disk.part(1), "/", "btrfs", "defaults,subvol=@")
    extract(g.tarball, g.root)
    g.enter()


def xfs_boot_gpt(g: Guest) -> None:
    """GPT with a BIOS boot partition; /boot on XFS made by the guest's own mkfs.xfs (the
    suite's on-disk defaults), root on ext4."""
    run("mkfs.ext4", "-q", g.disk.part(3))
    mount(g.stack, g.disk.part(3), g.root)
    g.add_fs(g.disk.part(3), "/", "ext4", "errors=remount-ro")
    extract(g.tarball, g.root, exclude="./boot/*")
    g.enter()
    in_guest(g.root, f"mkfs.xfs -q /dev/{Path(g.disk.part(2)).name}")
    mount(g.stack, g.disk.part(2), g.root / "boot")
    g.add_fs(g.disk.part(2), "/boot", "xfs")
    extract(g.tarball, g.root, "./boot")


def uefi_esp(g: Guest) -> None:
    """GPT with an EFI System Partition made by the guest's mkfs.vfat, root on ext4, and
    the signed GRUB, whose grub.cfg on the ESP hands over to /boot/grub/grub.cfg."""
    run("mkfs.ext4", "-q", g.disk.part(2))
    mount(g.stack, g.disk.part(2), g.root)
    g.add_fs(g.disk.part(2), "/", "ext4", "errors=remount-ro")
    extract(g.tarball, g.root)
    g.enter()
    esp = g.disk.part(1)
    in_guest(g.root, f"mkfs.vfat -F 32 /dev/{Path(esp).name}")
    g.add_fs(esp, "/boot/efi", "vfat", "umask=0077")
    # A kernel without vfat (a container's) cannot mount the ESP: grub-install writes
    # into a tmpfs whose source is the ESP's name (it probes that device, FAT, to
    # accept the directory), and mtools copies what it wrote into the FAT.
    mount(g.stack, esp, g.root / "boot" / "efi", "mode=700", fstype="tmpfs")
    g.grub_install = "grub-install --target=x86_64-efi --efi-directory=/boot/efi --no-nvram"
    efi = g.root / "boot" / "efi" / "EFI"
    copy = ("mcopy", "-s", "-i", esp, efi, "::/")
    g.finish.append(lambda: run(*copy, env={"MTOOLS_SKIP_CHECK": "1"}) and None)


#: name -> (partition table: sfdisk's script or sgdisk's options, whether GPT, the layout,
#: the packages it needs beyond PACKAGES)
LAYOUTS: dict[str, tuple[str, bool, Callable[[Guest], None], tuple[str, ...]]] = {
    "mbr-ext4": ("label: dos\nstart=2048, type=83, bootable\n", False, mbr_ext4, ()),
    "btrfs-subvol": ("label: dos\nstart=2048, type=83, bootable\n", False, btrfs_subvolume, ()),
    "gpt-xfs-boot": ("-n 1:2048:+1M -t 1:EF02 -n 2:0:+512M -n 3:0:0", True, xfs_boot_gpt, ()),
    "uefi": (
        "-n 1:2048:+100M -t 1:EF00 -n 2:0:0",
        True,
        uefi_esp,
        ("grub-efi-amd64-signed", "shim-signed"),
    ),
}


# -- the administrator's steps -------------------------------------------------------------


def choose_kernel(choice: str, older: str, root_uuid: str) -> str:
    """The commands an administrator runs to boot ``older`` (GRUB_DEFAULT=saved first, as
    grub-set-default(8) asks), after which update-grub runs again."""
    if choice == "default":
        return ""
    advanced = f"gnulinux-advanced-{root_uuid}>gnulinux-{older}-advanced-{root_uuid}"
    title = f"Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux {older}"
    enable = "sed -i 's/^GRUB_DEFAULT=.*/GRUB_DEFAULT=saved/' /etc/default/grub\nupdate-grub\n"
    if choice == "set-default":
        return enable + f"grub-set-default '{title}'\n"
    # grub-reboot's next_entry wins over a saved default of the newest kernel, once.
    return enable + "grub-set-default 0\n" + f"grub-reboot '{advanced}'\n"


# -- layouts built inside a VM --------------------------------------------------------------
# Root on LVM needs device-mapper, which a host kernel may lack (a container's: no
# dm-mod, no /lib/modules), and grub-probe must see the root's LV to write grub.cfg as
# Debian writes it. So the suite's own kernel and initramfs boot a builder (TCG where
# there is no KVM): its root /dev/vda is the suite's tree (an ext4 image, cached), the
# target disk /dev/vdb, the rootfs tarball /dev/vdc and the build's payload /dev/vdd (a
# tar archive: the script and the files it installs), whose script reports on ttyS0.

#: The names Debian's installer gives on a host named pygrub-guest ("<hostname>-vg").
LVM_VG, LVM_LV = "pygrub-guest-vg", "root"
#: The LV's device-mapper name (hyphens in the VG's name doubled), as the guest mounts it.
LVM_ROOT = f"/dev/mapper/{LVM_VG.replace('-', '--')}-{LVM_LV}"

#: name -> (the sfdisk script of the target disk, the packages beyond PACKAGES)
VM_LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    # d-i's "use entire disk and set up LVM" on MBR: /boot on ext4 first, then the PV.
    "lvm-root": ("label: dos\nstart=2048, size=512MiB, type=83, bootable\ntype=8e\n", ()),
}

#: The builder's watchdog: grub-install and update-grub under TCG on a busy machine.
VM_TIMEOUT = 3600

#: What the builder prints: the start of each step, the result, or what failed.
VM_STEP, VM_BUILT, VM_FAILED = "PYGRUB-BUILD-STEP", "PYGRUB-BUILT", "PYGRUB-BUILD-FAILED"

#: The builder's init (init= on its command line): unpack the payload and run it. It is in
#: the cached builder image, so the payload, not the image, changes with each build.
BUILDER_INIT = """#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /run/pygrub-build
cd /run/pygrub-build
tar -xf /dev/vdd
exec sh ./build.sh
"""

#: The builder's payload script for root on LVM; the steps a Debian installer takes
#: (with udev running, so /dev/disk/by-uuid and /dev/mapper are as on an install), then
#: the guest's own tools in its root. Not update-initramfs: the initramfs Debian's kernel
#: postinst made in mmdebstrap already has lvm2's hook (unconditional: lvm, dm-mod,
#: 69-lvm.rules) and MODULES=most's drivers, and making it again under TCG took 40
#: minutes a kernel (thousands of short processes). The host chose the filesystems'
#: UUIDs (mkfs -U) so that choose_kernel()'s commands, which name the root's UUID, are
#: written here.
LVM_BUILD = """set -eu
trap 'echo "{failed} in step $step"; echo o >/proc/sysrq-trigger; sleep 60' EXIT
step=boot
say() {{ step=$1; echo "{step} $1"; }}
in_guest() {{ chroot /mnt env DEBIAN_FRONTEND=noninteractive "$@"; }}
say udev
for fs in proc:/proc sysfs:/sys devtmpfs:/dev; do
    mountpoint -q "${{fs#*:}}" || mount -t "${{fs%%:*}}" "${{fs%%:*}}" "${{fs#*:}}"
done
dmesg -n 1
mkdir -p /run/lock
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle
say lvm
pvcreate /dev/vdb2
vgcreate {vg} /dev/vdb2
lvcreate -y -n {lv} -l 100%FREE {vg}
udevadm settle
mkfs.ext4 -q -U {root_uuid} {root}
mkfs.ext4 -q -U {boot_uuid} /dev/vdb1
udevadm settle
ls -l /dev/mapper /dev/disk/by-uuid
say rootfs
mount {root} /mnt
mkdir /mnt/boot
mount /dev/vdb1 /mnt/boot
tar -x --numeric-owner --xattrs --xattrs-include='*' -f /dev/vdc -C /mnt
cp fstab /mnt/etc/fstab
mkdir -p /mnt/etc/systemd/system.conf.d
cp pygrub-tcg.conf /mnt/etc/systemd/system.conf.d/
for d in dev proc sys run; do mount --bind /$d /mnt/$d; done
say grub-install
in_guest grub-install --target=i386-pc /dev/vdb
say update-grub
in_guest update-grub
say choose-kernel
in_guest sh -euc {choose}
say report
linux=$(grep -m1 '^[[:space:]]*linux[[:space:]]' /mnt/boot/grub/grub.cfg)
set -- $(blkid -s UUID -o value {root}) $(blkid -s UUID -o value /dev/vdb1)
for d in run sys proc dev boot; do umount /mnt/$d; done
umount /mnt
vgchange -an {vg}
sync
echo "{built} root_uuid=$1 boot_uuid=$2 linux=$(echo $linux)"
trap - EXIT
echo o >/proc/sysrq-trigger
sleep 60
"""


def builder(suite: str, tarball: Path, release: str) -> Path:
    """The builder VM, cached: the suite's tree as an ext4 image (root.img) with
    BUILDER_INIT, and its kernel ``release``'s vmlinuz and initrd.img beside it."""
    home = cache_dir() / f"builder-{suite}-{digest(tarball.name, BUILDER_INIT, release)}"
    if (home / "root.img").is_file():
        return home
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        tree, part = Path(tmp) / "tree", Path(tmp) / home.name
        tree.mkdir()
        part.mkdir()
        with step(f"builder {suite}: the tree and mke2fs -d"):
            extract(tarball, tree)
            init = tree / "usr" / "local" / "sbin" / "pygrub-builder"
            init.write_text(BUILDER_INIT)
            init.chmod(0o755)
            for name in ("vmlinuz", "initrd.img"):
                (part / name).write_bytes((tree / "boot" / f"{name}-{release}").read_bytes())
            run("mke2fs", "-q", "-t", "ext4", "-d", tree, part / "root.img", "4G")
        part.replace(home)
    return home


def payload(path: Path, files: dict[str, str]) -> None:
    """A tar archive of ``files`` (name -> text), for the builder's /dev/vdd."""
    with tarfile.open(path, "w") as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(data), 0o644
            archive.addfile(member, io.BytesIO(data))


def boot_builder(
    home: Path, disks: list[tuple[Path, bool]], timeout: float, console_log: Path
) -> str:
    """The builder's serial console once it powers off, each step's time logged as its
    VM_STEP line arrives and the console written to ``console_log`` as it comes (tail -f it).
    ``disks`` are raw images after its root, each with whether the VM may write it."""
    accel = ["-accel", "tcg", "-cpu", "max"]
    if os.environ.get("PYGRUB_TEST_ACCEL") == "kvm":
        accel = ["-accel", "kvm", "-cpu", "host"]
    args = "root=/dev/vda rw console=ttyS0 panic=-1 quiet init=/usr/local/sbin/pygrub-builder"
    argv = [
        "qemu-system-x86_64", *accel, "-smp", "2", "-m", "1536",
        "-kernel", home / "vmlinuz", "-initrd", home / "initrd.img", "-append", args,
        # The cached image stays as it was: its writes (udev, LVM's backups) are dropped.
        "-drive", f"file={home / 'root.img'},format=raw,if=virtio,snapshot=on",
        *(a for disk, rw in disks for a in (
            "-drive", f"file={disk},format=raw,if=virtio{'' if rw else ',readonly=on'}")),
        "-nographic", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nic", "none",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    seen, pending = bytearray(), b""
    started = last = time.monotonic()
    name = "builder VM boot"
    try:
        with console_log.open("wb") as sink:
            while True:
                left = started + timeout - time.monotonic()
                if left <= 0:
                    raise SystemExit(
                        f"build-guest: the builder did not power off in {timeout:.0f} s; "
                        f"console ends:\n{bytes(seen[-3000:]).decode(errors='replace')}"
                    )
                ready, _, _ = select.select([proc.stdout], [], [], min(left, 5))
                if not ready:
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
                sink.write(chunk)
                sink.flush()
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    m = re.search(rf"{VM_STEP} (\S+)".encode(), line)
                    if m:
                        now = time.monotonic()
                        log(f"{name}: {now - last:.0f} s")
                        name, last = m[1].decode(), now
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log(f"{name}: {time.monotonic() - last:.0f} s")
    return seen.decode(errors="replace")


def fstab_text(lines: list[str]) -> str:
    """/etc/fstab with Debian's header line and ``lines``."""
    header = "# <file system> <mount point> <type> <options> <dump> <pass>\n"
    return header + "".join(line + "\n" for line in lines)


def manifest_of(
    suite: str, layout: str, choice: str, name: str, kernels: list[str], fstab: list[str],
    root_uuid: str, uuids: list[str],
) -> dict:  # fmt: skip
    """What the tests read of a built guest (kernels: older, newer)."""
    return {
        "suite": suite,
        "layout": layout,
        "choice": choice,
        "image": str(cache_dir() / f"{name}.img"),
        "kernels": kernels,
        "boots": kernels[1] if choice == "default" else kernels[0],
        "fstab": fstab,
        "root_uuid": root_uuid,
        "uuids": sorted(uuids),
    }


def build_in_vm(suite: str, layout: str, choice: str) -> dict:
    """A VM_LAYOUTS guest: the partition table here, the rest in the builder VM."""
    table, extra = VM_LAYOUTS[layout]
    tarball, packages = rootfs(suite, extra)
    older, newer = kernel_releases(packages)
    name = image_name(suite, layout, choice, packages)
    manifest_path = cache_dir() / f"{name}.json"
    if manifest_path.is_file():
        return json.loads(manifest_path.read_text())
    home = builder(suite, tarball, newer)
    root_uuid, boot_uuid = str(uuid4()), str(uuid4())
    # d-i writes the root LV's /dev/mapper name in fstab (an LV's name is as stable as a
    # UUID and names the VG to activate), and /boot by UUID; so does this builder.
    fstab = [
        f"{LVM_ROOT} / ext4 errors=remount-ro 0 1",
        f"UUID={boot_uuid} /boot ext4 defaults 0 2",
    ]
    script = LVM_BUILD.format(
        failed=VM_FAILED, step=VM_STEP, built=VM_BUILT, vg=LVM_VG, lv=LVM_LV, root=LVM_ROOT,
        root_uuid=root_uuid, boot_uuid=boot_uuid,
        choose=shlex.quote(choose_kernel(choice, older, root_uuid) or "true"),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        work = Path(tmp)
        disk, archive = work / "disk.img", work / "payload.tar"
        partitioned_image(disk, 4, table, False)
        payload(archive, {
            "build.sh": script,
            "fstab": fstab_text(fstab),
            "pygrub-tcg.conf": SLOW_CPU_TIMEOUTS,
        })  # fmt: skip
        console_log = cache_dir() / f"{name}.console"
        log(f"{name}: the builder's console is in {console_log}")
        with step(f"{name}: the builder VM, in all"):
            console = boot_builder(
                home, [(disk, True), (tarball, False), (archive, False)], VM_TIMEOUT, console_log
            )
        built = re.findall(rf"^{VM_BUILT} (.*?)\r?$", console, re.M)
        if not built or VM_FAILED in console:
            raise SystemExit(f"build-guest: the builder failed; console ends:\n{console[-4000:]}")
        head, _, linux = built[-1].partition(" linux=")
        report = dict(field.partition("=")[::2] for field in head.split())
        if (report.get("root_uuid"), report.get("boot_uuid")) != (root_uuid, boot_uuid):
            raise SystemExit(f"build-guest: the builder reported {report}, not {root_uuid}")
        log(f"{name}: grub.cfg's first linux line: {linux}")
        manifest = manifest_of(
            suite, layout, choice, name, [older, newer], fstab, root_uuid, [root_uuid, boot_uuid]
        )
        # The root is an LV: grub-mkconfig names its device, not its UUID.
        manifest.update(root_device=LVM_ROOT, lvm={"vg": LVM_VG, "lv": LVM_LV})
        disk.replace(manifest["image"])
        console_log.unlink()
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def image_name(suite: str, layout: str, choice: str, packages: str) -> str:
    key = digest(packages, Path(__file__).read_bytes(), layout, choice)
    return f"{suite}-{layout}-{choice}-{key}"


def cached(suite: str, layout: str, choice: str) -> dict | None:
    """The manifest of a guest already built, else None (without waiting for the lock)."""
    extra = VM_LAYOUTS[layout][1] if layout in VM_LAYOUTS else LAYOUTS[layout][3]
    packages = rootfs_tarball(suite, extra).with_suffix(".packages")
    if os.environ.get("PYGRUB_GUEST_REFRESH") == "1" or not packages.is_file():
        return None
    manifest = cache_dir() / f"{image_name(suite, layout, choice, packages.read_text())}.json"
    return json.loads(manifest.read_text()) if manifest.is_file() else None


def build(suite: str, layout: str, choice: str) -> dict:
    if layout in VM_LAYOUTS:
        return build_in_vm(suite, layout, choice)
    table, gpt, lay, extra = LAYOUTS[layout]
    tarball, packages = rootfs(suite, extra)
    older, newer = kernel_releases(packages)
    name = image_name(suite, layout, choice, packages)
    manifest_path = cache_dir() / f"{name}.json"
    if manifest_path.is_file():
        return json.loads(manifest_path.read_text())
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp, ExitStack() as stack:
        work = Path(tmp)
        part = work / "disk.img"
        disk = Disk(stack, part, 4, table, gpt)
        guest = Guest(stack, work, tarball, disk)
        with step(f"{name}: partitions, filesystems and the rootfs"):
            lay(guest)
        (guest.root / "etc" / "fstab").write_text(fstab_text(guest.fstab))
        slow = guest.root / "etc" / "systemd" / "system.conf.d"
        slow.mkdir(parents=True, exist_ok=True)
        (slow / "pygrub-tcg.conf").write_text(SLOW_CPU_TIMEOUTS)
        guest.link_uuids()
        root_uuid = next(iter(guest.uuids))  # the root is laid first
        script = f"update-initramfs -u -k all\n{guest.grub_install}\nupdate-grub\n" + choose_kernel(
            choice, older, root_uuid
        )
        with step(f"{name}: update-initramfs, grub-install, update-grub in the guest"):
            in_guest(guest.root, script)
        for finish in guest.finish:
            finish()
        manifest = manifest_of(
            suite, layout, choice, name, [older, newer], guest.fstab, root_uuid, list(guest.uuids)
        )
        stack.close()
        part.replace(manifest["image"])
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> None:
    unwind_on_signals()
    args = sys.argv[1:]
    layouts = [*LAYOUTS, *VM_LAYOUTS]
    if len(args) not in (2, 3) or args[0] not in SUITES or args[1] not in layouts:
        raise SystemExit(
            f"usage: {sys.argv[0]} {{{','.join(SUITES)}}} {{{','.join(layouts)}}}"
            f" [{{{','.join(CHOICES)}}}]"
        )
    choice = args[2] if len(args) == 3 else "default"
    if choice not in CHOICES:
        raise SystemExit(f"build-guest: CHOICE is one of {', '.join(CHOICES)}")
    manifest = cached(args[0], args[1], choice)
    if manifest is None:
        # Two builders (CI and a developer, or two tests) share the cache and its loop
        # devices: one at a time.
        with open(cache_dir() / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            manifest = build(args[0], args[1], choice)
    print(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
