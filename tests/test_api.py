"""pygrub's Python API: the README's example, volumes against blkid/sgdisk, the menu,
choosing, extracting to a directory and to file objects, limits, image formats.
"""

from __future__ import annotations

import doctest
import io
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from imaging import make_ext, make_fat, make_partitioned, run

import pygrub
from pygrub import api
from pygrub.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SAMPLE = ROOT / "samples" / "guest.img"

KERNEL = os.urandom(300_001)
INITRD = os.urandom(65_537)
UCODE = os.urandom(3)

GRUB_CFG = """\
set default="gone"
set fallback="1"
menuentry 'Gone' --id gone {
  linux /boot/vmlinuz-gone root=/dev/xvda2
}
menuentry 'Linux' --id linux {
  linux /boot/vmlinuz root=/dev/xvda2 ro
  initrd /boot/ucode.img /boot/initrd.img
}
submenu 'More' --id more {
  menuentry 'Linux, single' --id single {
    linux /boot/vmlinuz single
  }
}
"""


def guest_tree() -> dict:
    return {
        "boot/grub/grub.cfg": GRUB_CFG,
        "boot/vmlinuz": KERNEL,
        "boot/initrd.img": INITRD,
        "boot/ucode.img": UCODE,
    }


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict[str, Path]:
    """GPT: 1 a FAT ESP labelled ESP, 2 nothing, 3 the ext4 guest labelled guest-root."""
    tmp = tmp_path_factory.mktemp("api")
    esp = make_fat(tmp, {"README": "no config\n"}, 12, 4 * 1024, "esp.img", ("-n", "ESP"))
    root = make_ext(tmp, guest_tree(), size_mb=16, options=("-L", "guest-root"))
    disk = make_partitioned(tmp, [(esp, "U"), (2, "L"), (root, "L")], label="gpt")
    run("sgdisk", "-c", "1:EFI system", "-c", "3:guest root", disk)
    return {"disk": disk, "esp": esp, "root": root, "tmp": tmp}


def blkid(image: Path) -> dict[str, str]:
    out = run("blkid", "-p", "-o", "export", image).decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def sgdisk_names(disk: Path) -> dict[int, str]:
    """Partition number -> name, as sgdisk prints them (the oracle for GPT names)."""
    names = {}
    for line in run("sgdisk", "-p", disk).decode().splitlines():
        m = re.match(r"\s+(\d+)\s+\d+\s+\d+\s+\S+ \S+\s+\S+\s+(.*)$", line)
        if m:
            names[int(m[1])] = m[2].strip()
    return names


# -- the README --------------------------------------------------------------------------


def readme_section(title: str) -> str:
    return README.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_python_example_runs(monkeypatch, tmp_path):
    block = re.search(r"```python\n(.*?)```", readme_section("Python API"), re.S)[1]
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    test = doctest.DocTestParser().get_doctest(block, {}, "README", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False) == (0, len(test.examples))
    assert len(list(tmp_path.iterdir())) == 1  # extract() wrote into mkdtemp()'s directory


def test_readme_json_example_is_what_pygrub_prints():
    section = readme_section("JSON output")
    shown = json.loads(re.search(r"```json\n(.*?)```", section, re.S)[1])
    assert "$ pygrub -q -n --output-format=json samples/guest.img" in section
    proc = subprocess.run(
        [sys.executable, "-m", "pygrub", "-q", "-n", "--output-format=json", str(SAMPLE)],
        capture_output=True,
        check=True,
    )
    assert json.loads(proc.stdout) == shown


# -- the public surface ------------------------------------------------------------------


def test_all_names_are_exported_from_pygrub():
    assert pygrub.__all__ == ["__version__", *api.__all__]
    for name in api.__all__:
        assert getattr(pygrub, name) is getattr(api, name)
    with pytest.raises(AttributeError):
        pygrub.no_such_name  # noqa: B018


def test_import_pygrub_stays_light():
    """Only pygrub._typing (a few names, no imports) comes with ``import pygrub``."""
    code = "import sys, pygrub; print([m for m in sys.modules if m.startswith('pygrub.')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['pygrub._typing']"


def test_public_objects_are_frozen(layout):
    with pygrub.open_image(layout["disk"]) as image:
        volume = image.volumes()[0]
        with pytest.raises(AttributeError):
            volume.device = "hd9"  # type: ignore[misc]


# -- looking -----------------------------------------------------------------------------


def test_volumes_match_blkid_and_sgdisk(layout):
    with pygrub.open_image(layout["disk"]) as image:
        volumes = image.volumes()
    assert [(v.device, v.partition) for v in volumes] == [
        ("hd0,gpt1", 1),
        ("hd0,gpt2", 2),
        ("hd0,gpt3", 3),
    ]
    names = sgdisk_names(layout["disk"])
    assert [v.partition_label for v in volumes] == [names[1], names[2] or None, names[3]]
    assert volumes[0].type_guid == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    for volume, image in ((volumes[0], layout["esp"]), (volumes[2], layout["root"])):
        oracle = blkid(image)
        assert volume.filesystem is not None and volume.problem is None
        assert volume.filesystem.uuid.lower() == oracle["UUID"].lower()
        assert volume.filesystem.label == oracle["LABEL"]
    assert volumes[0].filesystem.type == "fat"
    assert volumes[2].filesystem.type == blkid(layout["root"])["TYPE"]
    assert volumes[1].filesystem is None and volumes[1].problem


def test_menu_tree_default_and_fallback(layout):
    with pygrub.open_image(layout["disk"]) as image:
        menu = image.menu()
    assert (menu.bootloader, menu.config_path, menu.volume.device) == (
        "grub2",
        "/boot/grub/grub.cfg",
        "hd0,gpt3",
    )
    assert menu.default == (0,) and menu.chosen == (1,)
    assert menu.default_reason == "default=gone"
    gone, linux, more = menu.items
    assert gone.default and gone.not_bootable == "/boot/vmlinuz-gone not found"
    assert not gone.bootable and linux.bootable
    assert linux.initrds == ("/boot/ucode.img", "/boot/initrd.img")
    assert isinstance(more, pygrub.MenuSubmenu) and not more.default
    assert [e.titles for e in menu.entries()] == [
        ("Gone",),
        ("Linux",),
        ("More", "Linux, single"),
    ]
    assert menu.item_at((2, 0)).id == "single" and menu.item_at((2, 5)) is None
    assert menu.explanation[0].startswith("skipped (hd0,gpt1)")
    assert menu.explanation[-2:] == (
        "default 0 'Gone' cannot boot here: /boot/vmlinuz-gone not found",
        "fallback 1 'Linux' boots",
    )


def test_no_config_is_nothing_bootable(tmp_path):
    image_path = make_ext(tmp_path, {"etc/hostname": "x\n"}, size_mb=4)
    with pygrub.open_image(image_path) as image:
        with pytest.raises(pygrub.NothingBootable, match="no bootloader config"):
            image.menu()
        with pytest.raises(pygrub.NotFoundError):
            image.choose()


# -- choosing and extracting -----------------------------------------------------------


def test_choose_default_falls_back_and_extracts(layout, tmp_path):
    with pygrub.open_image(layout["disk"]) as image:
        choice = image.choose(args="console=hvc0")
        files = image.extract(choice, tmp_path)
    assert choice.entry.path == (1,) and choice.entry.id == "linux"
    assert choice.args == "root=/dev/xvda2 ro console=hvc0"
    assert (choice.kernel, choice.initrds, choice.device) == (
        "/boot/vmlinuz",
        ("/boot/ucode.img", "/boot/initrd.img"),
        "hd0,gpt3",
    )
    assert (choice.bootloader, choice.config_path) == ("grub2", "/boot/grub/grub.cfg")
    assert Path(files.kernel).read_bytes() == KERNEL
    assert Path(files.ramdisk).read_bytes() == UCODE + b"\0" + INITRD + bytes(3)
    assert stat.S_IMODE(os.stat(files.kernel).st_mode) == 0o600
    assert Path(files.kernel).name.startswith("boot_kernel.")
    assert "fallback 1 'Linux' boots" in choice.explanation


def test_choose_by_id_title_path_and_kernel(layout):
    with pygrub.open_image(layout["disk"]) as image:
        assert image.choose("single").entry.titles == ("More", "Linux, single")
        assert image.choose("More>0").entry.path == (2, 0)
        assert image.choose("Linux").initrds == ("/boot/ucode.img", "/boot/initrd.img")
        missing = image.choose("no such entry")
        assert missing.entry.path == (1,)
        assert "entry 'no such entry' names no entry: the default rule applies" in (
            missing.explanation
        )
        direct = image.choose(kernel="/boot/vmlinuz", ramdisk="/boot/initrd.img", args="x=1")
        assert (direct.entry, direct.bootloader, direct.args) == (None, None, "x=1")
        with pytest.raises(pygrub.NotFoundError, match="cannot boot"):
            image.choose("gone")


def test_write_to_file_objects(layout, tmp_path):
    with pygrub.open_image(layout["disk"]) as image:
        choice = image.choose("linux")
        kernel, ramdisk = io.BytesIO(), io.BytesIO()
        assert image.write_kernel(choice, kernel) == len(KERNEL)
        written = image.write_ramdisk(choice, ramdisk)
        files = image.extract(choice, tmp_path)
        single = image.choose("single")
        assert image.write_ramdisk(single, io.BytesIO()) == 0
        with open(tmp_path / "raw", "wb", buffering=0) as unbuffered:
            image.write_kernel(choice, unbuffered)
    assert kernel.getvalue() == KERNEL == (tmp_path / "raw").read_bytes()
    assert ramdisk.getvalue() == Path(files.ramdisk).read_bytes()
    assert written == len(ramdisk.getvalue())


def test_limits_leave_nothing_behind(layout, tmp_path):
    with pygrub.open_image(layout["disk"]) as image:
        choice = image.choose("linux")
        with pytest.raises(pygrub.LimitError):
            image.extract(choice, tmp_path, max_size=len(INITRD) + 100)
        assert list(tmp_path.iterdir()) == []
        with pytest.raises(pygrub.LimitError):
            image.write_kernel(choice, io.BytesIO(), max_size=1000)
        with pytest.raises(pygrub.LimitError, match="ramdisk"):
            image.write_ramdisk(choice, io.BytesIO(), max_size=len(INITRD) + 1)


def test_misuse_is_refused(layout, tmp_path):
    with pygrub.open_image(layout["disk"]) as first, pygrub.open_image(layout["disk"]) as other:
        choice = first.choose()
        with pytest.raises(ValueError, match="another image"):
            other.extract(choice, tmp_path)
    assert first.closed
    with pytest.raises(ValueError, match="closed"):
        first.volumes()
    with pytest.raises(ValueError, match="closed"):
        first.write_kernel(choice, io.BytesIO())
    with pytest.raises(ValueError):
        pygrub.open_image(layout["disk"], offset=-1)
    with pytest.raises(pygrub.NotFoundError, match="cannot open disk image"):
        pygrub.open_image(tmp_path / "missing.img")


def test_offset_reads_one_filesystem(layout):
    start = 1 << 20
    with pygrub.open_image(layout["disk"], offset=start) as image:
        assert [v.filesystem.type for v in image.volumes()] == ["fat"]


# -- image formats -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def qcow2(layout) -> Path:
    out = layout["tmp"] / "disk.qcow2"
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", layout["disk"], out)
    return out


def test_image_formats(layout, qcow2):
    with pygrub.open_image(qcow2) as image:
        assert image.choose().kernel == "/boot/vmlinuz"
    with pygrub.open_image(qcow2, image_format="qcow2") as image:
        assert image.menu().chosen == (1,)
    # Read as raw, a qcow2 file is a disk holding no filesystem pygrub knows.
    with pygrub.open_image(qcow2, image_format="raw") as image:
        with pytest.raises(pygrub.NothingBootable):
            image.choose()
    with pytest.raises(pygrub.CorruptError, match="no qcow2 header"):
        pygrub.open_image(layout["disk"], image_format="qcow2")
    with pytest.raises(pygrub.PygrubError, match="unknown image format"):
        pygrub.open_image(layout["disk"], image_format="vmdk")
    assert pygrub.IMAGE_FORMATS == ("auto", "raw", "qcow2")


def test_format_flag(layout, qcow2, capfd):
    assert main(["-qn", "--format=qcow2", str(qcow2)]) == 0
    assert "kernel None" in capfd.readouterr().out
    assert main(["-qn", "--format=raw", str(qcow2)]) == 1
    assert "nothing bootable found" in capfd.readouterr().err
    assert main(["-qn", "--format=vmdk", str(qcow2)]) == 2
    assert "unknown image format vmdk" in capfd.readouterr().err


def test_cli_flags_agree_with_the_readers():
    from pygrub import formats

    assert formats.IMAGE_FORMATS == pygrub.IMAGE_FORMATS


def test_cli_boots_through_the_api(layout, monkeypatch, capfd):
    calls = []
    original = api.Image.choose

    def spy(self, *args, **kwargs):
        calls.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(api.Image, "choose", spy)
    # Unsandboxed: the spy's list is this process's, and a sandboxed reader is a fork.
    assert main(["-qn", "--no-sandbox", "--entry=single", str(layout["disk"])]) == 0
    assert calls == ["single"]
    assert "args 'single'" in capfd.readouterr().out
