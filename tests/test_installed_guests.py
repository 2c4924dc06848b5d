"""Real Debian guests, installed by Debian's own tools, booted through pygrub.

scripts/build-guest.py installs each guest with mmdebstrap, grub-install and update-grub
(no line of a bootloader's configuration is written here). Each test runs pygrub exactly
as libxl runs it, then QEMU boots the kernel and initramfs pygrub copied with the
command line it printed, nothing appended: the guests' own /etc/default/grub puts
console=ttyS0 in every entry, as an administrator of a serial-console guest does. The
guest's OWN initramfs must mount its OWN root by UUID and systemd must reach
multi-user.target, where a unit prints MARKER with uname -r, findmnt of / and /boot and
/proc/cmdline, then powers off.

CI boots CI_GUESTS (one bookworm and one trixie guest, each booting its older kernel as
grub-set-default or grub-reboot chose it); ``make field`` (PYGRUB_FIELD=1) boots the
whole matrix. Under TCG on two busy cores a boot to multi-user takes minutes: the
watchdog is BOOT_TIMEOUT.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from realboot import kvm_usable, qemu_boot, run_pygrub_like_libxl

BUILDER = Path(__file__).parent.parent / "scripts" / "build-guest.py"
MARKER = "PYGRUB-GUEST-UP"
BOOT_TIMEOUT = 300 if kvm_usable() else 1200

#: (suite, layout, how the administrator chose the kernel)
CI_GUESTS = [
    ("bookworm", "mbr-ext4", "set-default"),
    ("trixie", "gpt-xfs-boot", "reboot"),
]
FIELD_GUESTS = [
    ("bookworm", "mbr-ext4", "default"),
    ("bookworm", "mbr-ext4", "reboot"),
    ("bookworm", "btrfs-subvol", "default"),
    ("bookworm", "gpt-xfs-boot", "default"),
    ("trixie", "mbr-ext4", "default"),
    ("trixie", "mbr-ext4", "set-default"),
    ("trixie", "btrfs-subvol", "default"),
    ("trixie", "gpt-xfs-boot", "default"),
    ("trixie", "uefi", "default"),
    ("bookworm", "lvm-root", "default"),
    ("trixie", "lvm-root", "default"),
]


def build_guest(suite: str, layout: str, choice: str) -> dict:
    """The builder's manifest of the guest (built, or taken from its cache)."""
    if os.geteuid() != 0:
        pytest.fail("installed guests are built on loop devices, which needs root")
    proc = subprocess.run(
        [sys.executable, str(BUILDER), suite, layout, choice],
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    sys.stderr.write(proc.stderr.decode(errors="replace"))  # the builder's step times
    if proc.returncode != 0:
        pytest.fail(f"build-guest.py {suite} {layout} {choice} failed:\n{proc.stderr.decode()}")
    return json.loads(proc.stdout)


def marker_fields(console: str) -> dict[str, str]:
    """The marker line's key=value fields; cmdline= takes the rest of the line."""
    # getty's login prompt may come first on the line.
    lines = re.findall(rf"{MARKER} (.*?)\r?$", console, re.M)
    assert lines, f"the guest never reached multi-user.target; console ends:\n{console[-4000:]}"
    head, _, cmdline = lines[-1].partition(" cmdline=")
    fields = dict(field.partition("=")[::2] for field in head.split())
    fields["cmdline"] = cmdline
    return fields


def boot_installed(tmp_path: Path, suite: str, layout: str, choice: str) -> None:
    guest = build_guest(suite, layout, choice)
    result = run_pygrub_like_libxl(Path(guest["image"]), tmp_path / "out")
    assert result.ramdisk is not None, "pygrub copied no initramfs"
    args = result.args or ""
    console = qemu_boot(
        result.kernel,
        result.ramdisk,
        args,
        BOOT_TIMEOUT,
        (Path(guest["image"]),),
        memory_mb=1024,
        snapshot=True,
    )
    seen = marker_fields(console)
    # The kernel grub-set-default / grub-reboot chose (else the newest) is the one running.
    assert seen["release"] == guest["boots"], (seen["release"], guest)
    assert seen["target"] == "active"
    # The guest ran with exactly the command line pygrub printed: update-grub's root=UUID=,
    # or on LVM the LV's /dev/mapper name (grub-mkconfig writes no UUID for an LV root).
    assert seen["cmdline"].split() == args.split()
    root_device = guest.get("root_device")
    if root_device is None:
        assert f"root=UUID={guest['root_uuid']}" in args.split()
    else:
        assert f"root={root_device}" in args.split()
        # ... which the guest's initramfs activated and mounted as / (its lvm2 script).
        assert seen["root"] == root_device, seen["root"]
    # ... and its initramfs mounted that filesystem as /.
    assert seen["rootuuid"] == guest["root_uuid"]
    root_line = next(line for line in guest["fstab"] if line.split()[1] == "/")
    assert seen["rootfs"] == root_line.split()[2]
    if "subvol=@" in root_line:
        assert "rootflags=subvol=@" in args.split()
        assert seen["root"].endswith("[/@]"), seen["root"]
    boot_line = next((line for line in guest["fstab"] if line.split()[1] == "/boot"), None)
    if boot_line is not None:
        assert f"UUID={seen['bootuuid']}" == boot_line.split()[0]
        assert seen["bootfs"] == boot_line.split()[2]
    if root_device is None:
        assert re.fullmatch(r"/dev/vda\d+(\[/@\])?", seen["root"]), seen["root"]
    else:
        assert boot_line is not None, "the LVM layout has /boot on a partition of its own"
        assert re.fullmatch(r"/dev/vda\d+", seen["boot"]), seen["boot"]


@pytest.mark.parametrize(
    ("suite", "layout", "choice"), CI_GUESTS, ids=["-".join(g) for g in CI_GUESTS]
)
def test_installed_guest_boots(tmp_path: Path, suite: str, layout: str, choice: str) -> None:
    boot_installed(tmp_path, suite, layout, choice)


@pytest.mark.parametrize(
    ("suite", "layout", "choice"), FIELD_GUESTS, ids=["-".join(g) for g in FIELD_GUESTS]
)
def test_field_guest_boots(tmp_path: Path, suite: str, layout: str, choice: str) -> None:
    if os.environ.get("PYGRUB_FIELD") != "1":
        pytest.skip("the whole matrix runs with make field (PYGRUB_FIELD=1)")
    boot_installed(tmp_path, suite, layout, choice)


def test_a_killed_build_kills_what_it_ran(tmp_path: Path) -> None:
    """SIGTERM (CI's timeout) unwinds a build as a failure does, and the builder's run()
    takes down the whole process group of what it started: a chroot's children left alive
    would keep the guest's mounts, its loop device and gigabytes of cache behind."""
    grandchild = tmp_path / "grandchild.pid"
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('build_guest', {str(BUILDER)!r})\n"
        "builder = importlib.util.module_from_spec(spec); spec.loader.exec_module(builder)\n"
        "builder.unwind_on_signals()\n"
        "try:\n"
        f"    builder.run('sh', '-c', 'sleep 300 & echo $! >{grandchild}; wait')\n"
        "finally:\n"
        "    print('unwound', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for _ in range(100):
        if grandchild.exists() and grandchild.read_text().strip():
            break
        subprocess.run(["sleep", "0.1"])
    pid = int(grandchild.read_text())
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + 15 and out == "unwound\n"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
