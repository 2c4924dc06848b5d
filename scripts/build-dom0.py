#!/usr/bin/env python3
"""Install a Debian Xen dom0 with Debian's own packages, for QEMU to boot under Xen.

    scripts/build-dom0.py SUITE      prints the dom0's manifest (JSON)

mmdebstrap installs the suite's Xen (bookworm: 4.17, trixie: 4.20), its kernel and
systemd into a directory, which mke2fs -d packs into an ext4 image for dom0's root
(/dev/vda, which dom0's own kernel mounts: the host needn't). Xen's daemons start as the
distribution starts them (xen-utils-common's /etc/init.d/xen, run by systemd), xenconsoled
logs each guest's console to /var/log/xen/console/guest-NAME.log (XENCONSOLED_ARGS=
"--log=guest" in /etc/default/xen, which that script passes on; it ignores the
XENCONSOLED_TRACE the file's comments offer), and a unit runs /usr/local/sbin/pygrub-xen-cases once
multi-user.target is reached: it unpacks the tar archive on /dev/vdb (the test's
payload: this pygrub's .deb and what to do) and runs what it holds, its output on
hvc0.

The image holds nothing of pygrub: the test installs the .deb at boot from the payload,
so the cached image serves every commit. Xen's multiboot image (gunzipped: QEMU's
-kernel takes an uncompressed ELF), dom0's vmlinuz and initrd.img are copied beside it.

Cache ($PYGRUB_DOM0_CACHE, else ~/.cache/pygrub-dom0): keyed by the recipe (suite,
packages, hooks); the manifest lists the installed package versions.
PYGRUB_DOM0_REFRESH=1 installs the suite again. Needs root, mmdebstrap, mke2fs and
Debian's archive.
"""

from __future__ import annotations

import fcntl
import gzip
import importlib.util
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "build_guest", Path(__file__).with_name("build-guest.py")
)
assert _spec is not None and _spec.loader is not None
build_guest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_guest)
digest, run, sources, step, unwind_on_signals = (
    build_guest.digest,
    build_guest.run,
    build_guest.sources,
    build_guest.step,
    build_guest.unwind_on_signals,
)

#: suite -> the Xen series Debian ships in it
XEN = {"bookworm": "4.17", "trixie": "4.20"}

PACKAGES = (
    "linux-image-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "kmod",
    "procps",
    "e2fsprogs",
    # The .deb's dependencies, so that apt-get installs it at boot without the network.
    "python3",
    "python3-lz4",
    "python3-zstandard",
)

RUNNER = """#!/bin/sh
# The test's payload: a tar archive on the second disk, unpacked and run (on the root
# filesystem: initramfs-tools mounts /run noexec).
set -eu
mkdir -p /root/payload
cd /root/payload
tar -xf /dev/vdb
exec ./run
"""

RUNNER_UNIT = """[Unit]
Description=Run the pygrub test payload of /dev/vdb under Xen
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/pygrub-xen-cases
StandardOutput=tty
StandardError=tty
TTYPath=/dev/hvc0

[Install]
WantedBy=multi-user.target
"""

#: Run in the new root by mmdebstrap's customize hook.
CUSTOMIZE = r"""set -eu
echo '/dev/vda / ext4 errors=remount-ro 0 1' >/etc/fstab
echo dom0 >/etc/hostname
echo 'XENCONSOLED_ARGS="--log=guest"' >>/etc/default/xen
chmod 755 /usr/local/sbin/pygrub-xen-cases
systemctl enable pygrub-xen-cases.service
# The payload's output owns hvc0: no login prompt on it.
systemctl mask serial-getty@hvc0.service getty@tty1.service
apt-get clean
"""


def log(message: str) -> None:
    print(f"build-dom0: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    root = os.environ.get("PYGRUB_DOM0_CACHE") or Path.home() / ".cache" / "pygrub-dom0"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def packages(suite: str) -> tuple[str, ...]:
    xen = XEN[suite]
    return (*PACKAGES, f"xen-hypervisor-{xen}-amd64", f"xen-utils-{xen}")


def mmdebstrap_argv(suite: str, tree: Path, packages_list: Path) -> list[str]:
    files = {
        "usr/local/sbin/pygrub-xen-cases": RUNNER,
        "etc/systemd/system/pygrub-xen-cases.service": RUNNER_UNIT,
    }
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
        f"--include={','.join(packages(suite))}",
        *(f"--customize-hook={w}" for w in writes),
        f'--customize-hook=chroot "$1" sh -c {shlex.quote(CUSTOMIZE)}',
        "--customize-hook=chroot \"$1\" dpkg-query -W -f '${Package} ${Version}\\n'"
        f" | LC_ALL=C sort >{packages_list}",
        suite,
        str(tree),
        *sources(suite),
    ]


def one(tree: Path, pattern: str) -> Path:
    found = sorted(tree.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"build-dom0: {len(found)} files match {pattern}, not one")
    return found[0]


def build(suite: str) -> dict:
    recipe = digest(json.dumps(mmdebstrap_argv(suite, Path("T"), Path("P"))))
    name = f"dom0-{suite}-{recipe}"
    manifest_path = cache_dir() / f"{name}.json"
    with open(cache_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time per cache
        if manifest_path.is_file() and os.environ.get("PYGRUB_DOM0_REFRESH") != "1":
            return json.loads(manifest_path.read_text())
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            work = Path(tmp)
            tree, package_list = work / "root", work / "packages"
            tree.mkdir()  # mmdebstrap writes into an existing empty directory
            with step(f"mmdebstrap {suite}"):
                run(*mmdebstrap_argv(suite, tree, package_list))
            home = work / name
            home.mkdir()
            xen = one(tree, f"boot/xen-{XEN[suite]}-amd64.gz")
            (home / "xen").write_bytes(gzip.decompress(xen.read_bytes()))
            shutil.copy(one(tree, "boot/vmlinuz-*"), home / "vmlinuz")
            shutil.copy(one(tree, "boot/initrd.img-*"), home / "initrd.img")
            with step(f"mke2fs -d {suite}"):
                run("mke2fs", "-q", "-t", "ext4", "-L", "dom0", "-d", tree, home / "root.img", "4G")
            target = cache_dir() / name
            if target.exists():
                shutil.rmtree(target)
            home.replace(target)
            manifest = {
                "suite": suite,
                "xen": XEN[suite],
                "hypervisor": str(target / "xen"),
                "kernel": str(target / "vmlinuz"),
                "initrd": str(target / "initrd.img"),
                "root": str(target / "root.img"),
                "packages": package_list.read_text().splitlines(),
            }
            manifest_path.write_text(json.dumps(manifest, indent=1))
        return manifest


def main() -> None:
    unwind_on_signals()
    if len(sys.argv) != 2 or sys.argv[1] not in XEN:
        raise SystemExit(f"usage: {sys.argv[0]} {{{','.join(XEN)}}}")
    print(json.dumps(build(sys.argv[1]), indent=1))


if __name__ == "__main__":
    main()
