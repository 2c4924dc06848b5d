"""The boot planner, boot.plan_boot, on real disks (mke2fs -d, sfdisk): which volume,
which config, which entry, which files, and what each volume tried says when nothing
boots. The command and the library go through it; these call it directly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from imaging import make_ext, make_partitioned

from pygrub.api import Image
from pygrub.boot import NothingBootable, open_guest, plan_boot, why_not_bootable
from pygrub.config.guest import GuestDisk
from pygrub.config.model import BootEntry
from pygrub.disk import FileSource
from pygrub.select import Chosen

KERNEL_A = os.urandom(40_000)
KERNEL_B = os.urandom(30_001)
INITRD_A = os.urandom(20_003)

#: GRUB legacy: entry 0 on the config's own volume, entry 1 with a root of its own; the
#: default is 0, the fallback 1.
MENU_LST = """\
default 0
fallback 1
timeout 5
title A
  kernel /boot/vmlinuz-a root=/dev/xvda2 ro
  initrd /boot/initrd-a
title B
  root (hd0,2)
  kernel /vmlinuz-b quiet
"""


def boot_tree(extra: dict | None = None) -> dict:
    return {
        "boot/grub/menu.lst": MENU_LST,
        "boot/vmlinuz-a": KERNEL_A,
        "boot/initrd-a": INITRD_A,
        **(extra or {}),
    }


@contextmanager
def guest_of(disk: Path) -> Iterator[GuestDisk]:
    source = FileSource(str(disk))
    try:
        yield open_guest(source)
    finally:
        source.close()


@pytest.fixture(scope="module")
def disk(tmp_path_factory) -> Path:
    """Partition 1: no filesystem; 2: the config and entry A's files; 3: entry B's kernel."""
    tmp = tmp_path_factory.mktemp("boot")
    config = make_ext(tmp, boot_tree(), name="config.img")
    other = make_ext(tmp, {"vmlinuz-b": KERNEL_B}, name="other.img")
    return make_partitioned(tmp, [(2, "83"), (config, "83"), (other, "83")])


def read(ref) -> bytes:
    with ref.fs.open(ref.path) as f:
        f.seek(ref.offset)
        return f.read(ref.size())


def test_the_first_volume_with_a_config_boots_its_default(disk):
    with guest_of(disk) as guest:
        plan = plan_boot(guest)
        assert plan.volume.grub_name == "hd0,msdos2"
        assert (plan.menu.format, plan.menu.config_path) == ("grub-legacy", "/boot/grub/menu.lst")
        assert plan.path == (0,) and plan.entry.title == "A"
        assert (plan.kernel.path, plan.kernel.where) == ("/boot/vmlinuz-a", "(hd0,msdos2)")
        assert [ref.path for ref in plan.initrds] == ["/boot/initrd-a"]
        assert (read(plan.kernel), read(plan.initrds[0])) == (KERNEL_A, INITRD_A)
        assert plan.args == "root=/dev/xvda2 ro"
        assert not plan.xenkernel
        # Every volume tried, the one that booted last: the first had no filesystem.
        assert [r.volume.grub_name for r in plan.reports] == ["hd0,msdos1", "hd0,msdos2"]
        assert plan.reports[0].filesystem is None and plan.reports[0].problem
        assert plan.reports[1].filesystem == "ext4"


def test_an_entry_reads_its_files_from_its_own_root(disk):
    with guest_of(disk) as guest:
        plan = plan_boot(guest, "B", "console=hvc0")
        assert plan.path == (1,)
        # GRUB legacy's (hd0,2) is the third partition, which holds the kernel.
        assert (plan.kernel.path, plan.kernel.where) == ("/vmlinuz-b", "(hd0,msdos3)")
        assert read(plan.kernel) == KERNEL_B
        assert plan.initrds == []
        assert plan.args == "quiet console=hvc0"


def test_extra_and_appended_args_in_their_order(disk):
    with guest_of(disk) as guest:
        plan = plan_boot(guest, "0", "extra=1", appended_args="xcp=2")
        assert plan.args == "root=/dev/xvda2 ro extra=1 xcp=2"


def test_the_default_falls_back_when_its_files_are_missing(tmp_path):
    tree = boot_tree({"vmlinuz-b": KERNEL_B})
    del tree["boot/initrd-a"]
    disk = make_partitioned(tmp_path, [(make_ext(tmp_path, tree), "83")])
    with guest_of(disk) as guest:
        plan = plan_boot(guest)
        # B's root (hd0,2) is no volume here: its kernel is looked for at home, and is there.
        assert (plan.path, plan.entry.title) == ((1,), "B")
        assert (plan.kernel.where, read(plan.kernel)) == ("(hd0,msdos1)", KERNEL_B)
        assert why_not_bootable(guest, plan.kernel.fs, "(hd0,msdos1)", plan.menu.items[0]) == (
            "/boot/initrd-a not found"
        )


def test_an_entry_named_that_cannot_boot_is_no_fallback(tmp_path):
    tree = boot_tree()
    del tree["boot/initrd-a"]
    disk = make_partitioned(tmp_path, [(make_ext(tmp_path, tree), "83")])
    with guest_of(disk) as guest, pytest.raises(NothingBootable) as caught:
        plan_boot(guest, "A")
    assert "entry 'A' (A) cannot boot: /boot/initrd-a not found" in str(caught.value)


def test_a_chooser_picks_instead_of_the_rules(disk):
    seen = []

    def chooser(menu, why_not):
        seen.append([why_not(entry) for _path, entry in menu.entries()])
        edited = BootEntry("edited", kernel="/vmlinuz-b", device="hd0,3", args="edited")
        return Chosen((1,), edited, ("picked on the menu",))

    with guest_of(disk) as guest:
        plan = plan_boot(guest, "A", chooser=chooser)
    assert seen == [[None, None]], "the chooser is told what can boot"
    assert (plan.entry.title, plan.path, plan.args) == ("edited", (1,), "edited")
    assert plan.trace == ("picked on the menu",)
    assert plan.kernel.where == "(hd0,msdos3)"


def test_a_kernel_given_reads_no_config(disk):
    with guest_of(disk) as guest:
        plan = plan_boot(guest, kernel="/vmlinuz-b", extra_args="whole line")
        assert plan.menu is None and plan.entry is None
        assert plan.volume.grub_name == "hd0,msdos3"
        assert (read(plan.kernel), plan.initrds, plan.args) == (KERNEL_B, [], "whole line")
        # The volumes before it: no filesystem, and one without that kernel.
        assert "--kernel /vmlinuz-b not found" in plan.reports[1].problem
        plan = plan_boot(guest, kernel="/boot/vmlinuz-a", ramdisk="/boot/initrd-a")
        assert [read(ref) for ref in plan.initrds] == [INITRD_A]


def test_xenkernel_boots_before_any_config_with_default_args(tmp_path):
    tree = boot_tree({"xenkernel": KERNEL_B, "boot/xeninitrd": INITRD_A})
    disk = make_partitioned(tmp_path, [(make_ext(tmp_path, tree), "83")])
    with guest_of(disk) as guest:
        plan = plan_boot(guest, default_args="xen=1", appended_args="more")
        assert plan.xenkernel and plan.menu is None
        assert read(plan.kernel) == KERNEL_B
        # /xeninitrd goes with /xenkernel only: /boot/xeninitrd with /boot/xenkernel.
        assert plan.initrds == []
        assert plan.args == "xen=1 more"
        # Without --default_args, /xenkernel means nothing.
        assert plan_boot(guest).entry.title == "A"
    with Image(disk) as image:
        explained = image.choose(default_args="xen=1").explanation
    assert "/xenkernel found (--default_args, XCP-ng's rule): no config read" in explained


def test_nothing_bootable_says_what_each_volume_held(tmp_path):
    plain = make_ext(tmp_path, {"etc/hostname": "guest\n"}, name="plain.img")
    disk = make_partitioned(tmp_path, [(1, "83"), (plain, "83")])
    with guest_of(disk) as guest, pytest.raises(NothingBootable) as caught:
        plan_boot(guest)
    reports = caught.value.reports
    assert [r.volume.grub_name for r in reports] == ["hd0,msdos1", "hd0,msdos2"]
    assert reports[1].problem == "no bootloader config"
    message = str(caught.value)
    assert message.startswith("nothing bootable found: ")
    assert "ext4 (no bootloader config)" in message


def test_a_disk_without_volumes(tmp_path):
    empty = tmp_path / "empty.img"
    empty.write_bytes(bytes(1 << 20))
    with guest_of(empty) as guest, pytest.raises(NothingBootable) as caught:
        plan_boot(guest)
    assert "nothing bootable found" in str(caught.value)
