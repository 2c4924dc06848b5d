"""Lazy start: a run imports only the modules of the formats it meets (issue 11).

The command runs as libxl runs it, in a fresh interpreter with no terminal, and reports
``sys.modules`` as it exits: the interpreter's own record of every module imported, so
nothing here depends on how pygrub loads its readers. The registries (``fs.REGISTRY``,
``config.FORMATS``) say which modules belong to which format. The extracted files are
checked against the bytes mke2fs was given.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from imaging import MiB, make_ext, make_partitioned

from pygrub.boot import open_guest, plan_boot
from pygrub.config import FORMATS, expand_paths
from pygrub.disk import MemorySource
from pygrub.errors import PygrubError
from pygrub.fs import REGISTRY

KERNEL = os.urandom(300_001)
INITRD = os.urandom(70_003)

MENU_LST = """\
default 0
timeout 5
title Debian GNU/Linux
root (hd0,0)
kernel /boot/vmlinuz root=/dev/xvda1 ro
initrd /boot/initrd.img
"""

#: As grub-mkconfig writes it on Debian (shortened): grubenv, functions, a submenu.
GRUB_CFG = """\
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
set default="0"
function load_video {
  insmod all_video
}
set timeout=5
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple' {
	load_video
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	linux	/boot/vmlinuz root=/dev/xvda1 ro quiet
	initrd	/boot/initrd.img
}
submenu 'Advanced options for Debian GNU/Linux' {
	menuentry 'Debian GNU/Linux (recovery mode)' {
		linux	/boot/vmlinuz root=/dev/xvda1 ro single
		initrd	/boot/initrd.img
	}
}
"""

#: Runs ``python -m pygrub ARGS`` and writes sys.modules, as it stands at exit, to RECORD
#: (the command leaves by os._exit, so the record is written there).
RECORDER = """\
import json, os, runpy, sys
record = sys.argv.pop(1)
exit_now = os._exit
def write_record():
    with open(record, "w") as f:
        json.dump(sorted(sys.modules), f)
def record_and_exit(status):
    write_record()
    exit_now(status)
os._exit = record_and_exit
try:
    runpy.run_module("pygrub", run_name="__main__", alter_sys=True)
finally:
    write_record()
"""

FS_DRIVERS = {t.module for t in REGISTRY}
CONFIG_FORMATS = {f.module for f in FORMATS}
#: What an MBR disk of one partition in a raw image needs of the lower layers.
PLAIN_MBR_LAYERS = {
    "pygrub.disk",
    "pygrub.disk.base",
    "pygrub.disk.source",
    "pygrub.volumes",
    "pygrub.volumes.discovery",
    "pygrub.volumes.mbr",
    "pygrub.volumes.volume",
}
INTERACTIVE_ONLY = {"curses", "_curses", "pygrub.menu"}
#: Standard modules a quiet run leaves out: dataclasses (with inspect, ast), logging
#: (with threading, traceback) and typing cost 45-55 ms of start-up (pygrub.record,
#: pygrub.log, pygrub._typing).
HEAVY_STDLIB = {"dataclasses", "inspect", "ast", "logging", "typing"}


def guest_disk(tmp: Path, config_path: str, config: str) -> Path:
    tree = {config_path: config, "boot/vmlinuz": KERNEL, "boot/initrd.img": INITRD}
    fs = make_ext(tmp, tree, size_mb=8)
    return make_partitioned(tmp, [(fs, "83")])


@pytest.fixture(scope="module")
def legacy_disk(tmp_path_factory) -> Path:
    return guest_disk(tmp_path_factory.mktemp("legacy"), "boot/grub/menu.lst", MENU_LST)


@pytest.fixture(scope="module")
def grub2_disk(tmp_path_factory) -> Path:
    return guest_disk(tmp_path_factory.mktemp("grub2"), "boot/grub/grub.cfg", GRUB_CFG)


def imported_by(
    tmp: Path, *args: str | Path
) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    """The finished command (stdin and stdout no terminal) and every module it imported.

    With --no-sandbox: the sandboxed reader imports the same readers, but in a child that
    can write no record (bench/bench_startup.py measures the sandboxed run)."""
    record = tmp / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", RECORDER, str(record), "--no-sandbox", *map(str, args)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    return proc, set(json.loads(record.read_text()))


def within(modules: set[str], packages: set[str]) -> set[str]:
    """The modules that are one of ``packages`` or inside one."""
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)}


def boot_and_check(tmp: Path, disk: Path, *flags: str) -> set[str]:
    """Boot ``disk`` like libxl, check the files written, and return the modules imported."""
    out = tmp / "out"
    out.mkdir()
    result = tmp / "result"
    result.write_bytes(b"")
    proc, modules = imported_by(
        tmp, *flags, "--output-format=simple0", f"--output={result}",
        f"--output-directory={out}", disk,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    items = dict(i.split(" ", 1) for i in result.read_text().split("\0") if i)
    assert Path(items["kernel"]).read_bytes() == KERNEL
    assert Path(items["ramdisk"]).read_bytes() == INITRD
    return modules


def assert_only_met_formats(modules: set[str], config_format: str) -> None:
    assert within(modules, FS_DRIVERS) == {"pygrub.fs.ext4"}
    assert within(modules, CONFIG_FORMATS) == within(modules, {config_format})
    assert config_format in modules
    assert within(modules, {"pygrub.disk", "pygrub.volumes"}) <= PLAIN_MBR_LAYERS
    assert not within(modules, INTERACTIVE_ONLY)
    assert "pygrub.sandbox" not in modules
    assert not modules & HEAVY_STDLIB


def test_grub_legacy_guest_imports_ext4_and_grub_legacy_only(legacy_disk, tmp_path):
    modules = boot_and_check(tmp_path, legacy_disk, "-q")
    assert_only_met_formats(modules, "pygrub.config.grub_legacy")
    assert not within(modules, {"pygrub.config.grub2"})


def test_grub2_guest_imports_ext4_and_grub2_only(grub2_disk, tmp_path):
    modules = boot_and_check(tmp_path, grub2_disk, "-q")
    assert_only_met_formats(modules, "pygrub.config.grub2")
    # Solaris's facts (2 ms of patterns) are for GRUB legacy and ZFS only.
    assert "pygrub.config.solaris" not in modules


def test_no_terminal_means_no_menu_and_no_curses(grub2_disk, tmp_path):
    # Interactive is the default; without a terminal on stdin and stdout the default boots.
    modules = boot_and_check(tmp_path, grub2_disk)
    assert not within(modules, INTERACTIVE_ONLY)


def test_help_reads_no_disk_layer(tmp_path):
    proc, modules = imported_by(tmp_path, "--help")
    assert proc.returncode == 0
    assert b"--output-format" in proc.stdout
    layers = {"pygrub.fs", "pygrub.config", "pygrub.volumes", "pygrub.disk", "pygrub.boot"}
    assert not within(modules, layers)
    assert not within(modules, INTERACTIVE_ONLY)


def test_usage_error_reads_no_disk_layer(tmp_path):
    proc, modules = imported_by(tmp_path, "--output-format=nonsense", "disk.img")
    assert proc.returncode == 2
    assert not within(modules, {"pygrub.fs", "pygrub.config", "pygrub.volumes", "pygrub.disk"})


# -- hostile disks: a reader is loaded only when the bytes name its format -----------------


@pytest.fixture(scope="module")
def grub2_bytes(grub2_disk) -> bytes:
    return grub2_disk.read_bytes()


def drivers_named_by(guest_volumes: list) -> set[str]:
    """The filesystem drivers whose magic some volume carries (what probe may load)."""
    named = set()
    for volume in guest_volumes:
        for fstype in REGISTRY:
            try:
                if fstype.matches(b"", volume.source):
                    named.add(fstype.module)
            except PygrubError:
                continue
    return named


def formats_present(guest) -> set[str]:
    """The config formats with a file at one of their paths on a readable filesystem."""
    present = set()
    for _volume, fs in guest.filesystems():
        for view in [fs, *(v for _label, v in fs.boot_views())]:
            for fmt in FORMATS:
                try:
                    if any(view.is_file(p) for p in expand_paths(view, fmt.paths)):
                        present.add(fmt.module)
                except PygrubError:
                    continue
    return present


FS_START = MiB
#: Where flips matter most: the MBR, the superblock, the group descriptors, anywhere.
OFFSETS = st.one_of(
    st.integers(0x1BE, 0x1FF),
    st.integers(FS_START + 1024, FS_START + 2047),
    st.integers(FS_START + 4096, FS_START + 8191),
    st.integers(0, 3 * MiB),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    flips=st.lists(st.tuples(OFFSETS, st.integers(1, 255)), max_size=6),
    cut=st.one_of(st.none(), st.none(), st.none(), st.integers(0, 10 * MiB)),
)
def test_hostile_disk_loads_only_the_readers_its_bytes_name(grub2_bytes, flips, cut, monkeypatch):
    data = bytearray(grub2_bytes)
    for offset, mask in flips:
        if offset < len(data):
            data[offset] ^= mask
    if cut is not None:
        del data[cut:]
    loaded: list[str] = []
    real_import = importlib.import_module

    def recording_import(name: str, package: str | None = None) -> object:
        loaded.append(name)
        return real_import(name, package)

    guest = None
    with monkeypatch.context() as m:
        m.setattr(importlib, "import_module", recording_import)
        try:
            guest = open_guest(MemorySource(bytes(data)))
            plan = plan_boot(guest)
            assert plan.kernel.fs.is_file(plan.kernel.path)
            event("planned")
        except PygrubError as e:
            event(type(e).__name__)  # one of ours: the outcome the rules allow besides a plan
    if guest is None:
        assert not set(loaded) & (FS_DRIVERS | CONFIG_FORMATS)
        return
    assert set(loaded) & FS_DRIVERS <= drivers_named_by(guest.volumes)
    assert set(loaded) & CONFIG_FORMATS <= formats_present(guest)


def clipped_partition(disk: Path, tmp: Path) -> Path:
    """``disk`` with a second MBR partition running past its end: a warning, then a boot."""
    data = bytearray(disk.read_bytes())
    sectors = len(data) // 512
    entry = bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + (sectors - 8).to_bytes(4, "little")
    data[446 + 16 : 446 + 32] = entry + (1000).to_bytes(4, "little")
    warned = tmp / "warned.img"
    warned.write_bytes(bytes(data))
    return warned


def test_warnings_and_debug_messages_still_reach_stderr(grub2_disk, tmp_path):
    """Logging is imported when there is something to say, configured as the command says."""
    disk = clipped_partition(grub2_disk, tmp_path)
    (tmp_path / "quiet").mkdir()
    modules = boot_and_check(tmp_path / "quiet", disk, "-q")
    assert "logging" in modules
    proc, _ = imported_by(tmp_path, "-q", "-n", disk)
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 0
    assert [line for line in lines if not line.startswith("would extract")] == [
        "pygrub: WARNING: MBR partition 2 (type 0x83): ends past the end of the disk: clipped"
    ]
    tree = {"boot/grub/grub.cfg": GRUB_CFG, "boot/vmlinuz": KERNEL, "boot/initrd.img": INITRD}
    whole_disk = make_ext(tmp_path, tree)
    proc, _ = imported_by(tmp_path, "-q", "-n", "--debug", whole_disk)
    assert proc.returncode == 0
    expected = "pygrub: DEBUG: no MBR signature at 510: the whole disk is one volume"
    assert expected in proc.stderr.decode().splitlines()
    proc, modules = imported_by(tmp_path, "-q", "-n", whole_disk)
    assert proc.returncode == 0 and "DEBUG" not in proc.stderr.decode()
    assert "logging" not in modules
