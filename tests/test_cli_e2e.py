"""The whole command on real images: layouts, errors, cleanup, signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imaging import make_ext, make_isohybrid_iso, make_partitioned, require_tool, run

KERNEL = os.urandom(200_000)
INITRD = os.urandom(70_001)

MENU_LST = """\
default 0
timeout 3
title Linux
  root (hd0,{part})
  kernel /boot/vmlinuz root=/dev/xvda ro
  initrd /boot/initrd.img
"""


def guest(part: int = 0, **extra: bytes | str) -> dict:
    tree = {
        "boot/grub/menu.lst": MENU_LST.format(part=part),
        "boot/vmlinuz": KERNEL,
        "boot/initrd.img": INITRD,
    }
    tree.update(extra)
    return tree


def pygrub(
    *args: str | os.PathLike[str], env: dict | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pygrub", *map(str, args)],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def boot(image: Path, out: Path, *args: str) -> dict[str, str]:
    out.mkdir(exist_ok=True)
    proc = pygrub("-q", "--output-format=simple", f"--output-directory={out}", *args, image)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    return dict(item.split(" ", 1) for item in proc.stdout.decode().split("\n") if item)


def test_gpt_second_partition(tmp_path):
    fs = make_ext(tmp_path, guest(part=1))
    disk = make_partitioned(
        tmp_path, [(2, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"), (fs, "L")], label="gpt"
    )
    items = boot(disk, tmp_path / "out")
    assert Path(items["kernel"]).read_bytes() == KERNEL
    assert Path(items["ramdisk"]).read_bytes() == INITRD


def test_logical_partition(tmp_path):
    fs = make_ext(tmp_path, guest(part=4))
    # A primary, then an extended partition whose first logical partition holds the guest.
    disk = tmp_path / "disk.img"
    size = fs.stat().st_size
    with open(disk, "wb") as f:
        f.truncate(size + (8 << 20))
    layout = f"label: dos\nstart=2048, size=4096, type=83\nstart=8192, type=5\nstart=10240, size={size // 512}, type=83\n"
    run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk, input=layout.encode())
    with open(fs, "rb") as fin, open(disk, "r+b") as fout:
        fout.seek(10240 * 512)
        fout.write(fin.read())
    items = boot(disk, tmp_path / "out")
    assert Path(items["kernel"]).read_bytes() == KERNEL


def test_active_partition_is_tried_first(tmp_path):
    first = make_ext(tmp_path, guest(), name="a.img")
    second_tree = guest(part=1)
    second_tree["boot/vmlinuz"] = b"the active one"
    second = make_ext(tmp_path, second_tree, name="b.img")
    disk = make_partitioned(tmp_path, [(first, "83"), (second, "83")], bootable=2)
    items = boot(disk, tmp_path / "out")
    assert Path(items["kernel"]).read_bytes() == b"the active one"


def test_next_volume_when_the_first_cannot_boot(tmp_path):
    broken = guest()
    del broken["boot/vmlinuz"]
    first = make_ext(tmp_path, broken, name="a.img")
    second = make_ext(tmp_path, guest(), name="b.img")
    disk = make_partitioned(tmp_path, [(first, "83"), (second, "83")])
    items = boot(disk, tmp_path / "out")
    assert Path(items["kernel"]).read_bytes() == KERNEL


def test_nothing_bootable_says_what_each_volume_held(tmp_path):
    broken = guest()
    del broken["boot/vmlinuz"]
    first = make_ext(tmp_path, broken, name="a.img")
    second = make_ext(tmp_path, {"etc/fstab": "# nothing to boot\n"}, name="b.img")
    disk = make_partitioned(tmp_path, [(first, "83"), (second, "83"), (1, "82")])
    out = tmp_path / "out"
    out.mkdir()
    proc = pygrub("-q", f"--output-directory={out}", disk)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and err.startswith(
        "pygrub: error: RuntimeError: nothing bootable found: "
    )
    assert "(hd0,msdos1) MBR partition 1" in err and "/boot/vmlinuz not found" in err
    assert "(hd0,msdos2)" in err and "no bootloader config" in err
    assert "(hd0,msdos3)" in err and "no filesystem" in err
    assert list(out.iterdir()) == []


def test_size_limit_removes_everything(tmp_path):
    tree = guest()
    tree["boot/initrd.img"] = os.urandom(3 << 20)
    image = make_ext(tmp_path, tree)
    out = tmp_path / "out"
    out.mkdir()
    output = tmp_path / "output"
    output.touch()
    env = dict(os.environ, PYGRUB_MAX_FILE_SIZE_MB="2")
    proc = pygrub("-q", f"--output-directory={out}", f"--output={output}", image, env=env)
    assert proc.returncode == 1
    assert b"over the 2 MiB limit (PYGRUB_MAX_FILE_SIZE_MB)" in proc.stderr
    assert list(out.iterdir()) == [] and output.read_bytes() == b""


def test_an_isohybrid_live_iso_boots_without_a_word_on_stderr(tmp_path):
    tree = {
        "isolinux/isolinux.cfg": "default live\nlabel live\n  kernel /live/vmlinuz\n  append boot=live\n",
        "live/vmlinuz": KERNEL,
    }
    image = make_isohybrid_iso(tmp_path, tree)
    # The layout under test: xorriso's MBR has partition 1 at sector 0 (sfdisk says so).
    assert b"start=           0" in run("sfdisk", "-d", image)
    items = boot(image, tmp_path / "out")  # asserts that stderr is empty
    assert Path(items["kernel"]).read_bytes() == KERNEL
    assert items["args"] == "boot=live"


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 128 KiB tmpfs: the 200 KB kernel does not fit, the 70 KB initrd does."""
    if os.geteuid() != 0:
        pytest.fail("the full output filesystem test needs root to mount a tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    run("mount", "-t", "tmpfs", "-o", "size=128k,mode=0700", "pygrub-test", mnt)
    try:
        yield mnt
    finally:
        subprocess.run([require_tool("umount"), str(mnt)], check=True)


@pytest.mark.parametrize("kernel_copies", [True, False])
def test_a_full_output_directory_names_the_file_and_leaves_nothing(
    tmp_path, small_tmpfs, monkeypatch, capfd, kernel_copies
):
    from pygrub import extract
    from pygrub.cli import main

    # Both ways a span is copied: copy_file_range, and a read into a buffer and pwrite.
    monkeypatch.setattr(extract, "_copy_file_range_works", kernel_copies)
    image = make_ext(tmp_path, guest())
    output = tmp_path / "output"
    output.touch()
    assert main(["-q", f"--output-directory={small_tmpfs}", f"--output={output}", str(image)]) == 1
    err = capfd.readouterr().err
    assert re.fullmatch(
        rf"pygrub: error: RuntimeError: writing {small_tmpfs}/boot_kernel\.[a-z0-9_]{{8}}: "
        r"No space left on device\n",
        err,
    ), err
    assert list(small_tmpfs.iterdir()) == [] and output.read_bytes() == b""


def test_a_full_output_file_is_named_and_the_extracted_files_removed(tmp_path):
    image = make_ext(tmp_path, guest())
    out = tmp_path / "out"
    out.mkdir()
    # /dev/full: every write fails with ENOSPC, as on a full filesystem.
    proc = pygrub("-q", f"--output-directory={out}", "--output=/dev/full", image)
    assert proc.returncode == 1
    assert proc.stderr == (
        b"pygrub: error: RuntimeError: writing the output file /dev/full: No space left on device\n"
    )
    assert list(out.iterdir()) == []


def test_output_file_must_exist(tmp_path):
    image = make_ext(tmp_path, guest())
    proc = pygrub("-q", f"--output-directory={tmp_path}", f"--output={tmp_path / 'missing'}", image)
    assert proc.returncode == 1 and b"cannot open output file" in proc.stderr
    assert not (tmp_path / "missing").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("boot_")] == []


def test_missing_default_output_directory_is_created_0700(tmp_path, capfd):
    from pygrub.run import run as run_cli
    from pygrub.settings import Settings as Options

    image = make_ext(tmp_path, guest())
    out = tmp_path / "new" / "dir"
    # --output-directory must exist (as in Xen); only the default one is created.
    assert run_cli(Options(str(image), interactive=False, output_directory=f"{out}/")) == 0
    assert out.stat().st_mode & 0o777 == 0o700
    assert capfd.readouterr().out.startswith(f"linux (kernel '{out}/boot_kernel.")


def test_a_missing_output_directory_given_is_created_0700(tmp_path):
    # Xen's pygrub says "... is not an existing directory"; libxl always passes one that exists.
    image = make_ext(tmp_path, guest())
    out = tmp_path / "new" / "dir"
    proc = pygrub("-q", "--output-format=simple", f"--output-directory={out}", image)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert out.stat().st_mode & 0o7777 == 0o700
    kernel = Path(proc.stdout.decode().split("\n")[0].removeprefix("kernel "))
    assert kernel.parent == out and kernel.read_bytes() == KERNEL


def test_an_output_directory_that_is_a_file_is_one_line(tmp_path):
    image = make_ext(tmp_path, guest())
    (tmp_path / "file").touch()
    proc = pygrub("-q", f"--output-directory={tmp_path / 'file'}", image)
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        f"pygrub: error: RuntimeError: output directory {tmp_path / 'file'}/ exists and is not a directory\n"
    )


def test_list_entries(tmp_path):
    image = make_ext(tmp_path, guest())
    proc = pygrub("-l", image)
    assert proc.returncode == 0
    assert proc.stdout.decode() == (
        "title: Linux\n  root: (hd0,0)\n  kernel: /boot/vmlinuz\n  args: root=/dev/xvda ro\n  initrd: /boot/initrd.img\n"
    )


def test_isconfig(tmp_path):
    cfg = tmp_path / "menu.lst"
    cfg.write_text(MENU_LST.format(part=0))
    proc = pygrub("--isconfig", "--args=extra", cfg)
    assert proc.returncode == 0
    assert (
        proc.stdout.decode()
        == "  kernel: /boot/vmlinuz\n  initrd: /boot/initrd.img\n  args: root=/dev/xvda ro extra\n"
    )


def test_sigterm_during_extraction_leaves_nothing(tmp_path):
    image = make_ext(tmp_path, guest())
    out = tmp_path / "out"
    out.mkdir()
    # Slow the copy down so the signal lands in the middle of it.
    code = (
        "import sys, time; from pygrub import cli, extract\n"
        "real = extract.copy_file\n"
        "def slow(*a):\n"
        "    real(*a); print('copied', file=sys.stderr, flush=True); time.sleep(30)\n"
        "extract.copy_file = slow\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "-q", f"--output-directory={out}", str(image)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # On stderr: the sandboxed reader's stdout is /dev/null, the output being the parent's.
    assert proc.stderr is not None and proc.stderr.readline() == b"copied\n"
    assert list(out.iterdir())  # the kernel, and the sandbox made the ramdisk's file too
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    _out, err = proc.communicate(timeout=20)
    assert time.monotonic() - start < 10
    assert proc.returncode == 1
    assert err == b"pygrub: error: RuntimeError: stopped by signal SIGTERM\n"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("args", [["-n"], ["-q", "-n"]])
def test_not_really_writes_nothing(tmp_path, args):
    image = make_ext(tmp_path, guest())
    out = tmp_path / "out"
    out.mkdir()
    proc = pygrub(*args, f"--output-directory={out}", image)
    assert proc.returncode == 0
    assert proc.stdout == b"linux (kernel None)(args 'root=/dev/xvda ro')"
    assert b"would extract (hd0)/boot/vmlinuz (200000 bytes)" in proc.stderr
    assert list(out.iterdir()) == []


def test_wall_clock_budget(tmp_path):
    image = make_ext(tmp_path, guest())
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import sys, time; from pygrub import cli, extract\n"
        "real = extract.copy_file\n"
        "def slow(*a):\n"
        "    real(*a); time.sleep(30)\n"
        "extract.copy_file = slow\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    env = dict(os.environ, PYGRUB_TIMEOUT="0.5")
    proc = subprocess.run(
        [sys.executable, "-c", code, "-q", f"--output-directory={out}", str(image)],
        capture_output=True,
        timeout=20,
        env=env,
    )
    assert proc.returncode == 1
    assert proc.stderr == b"pygrub: error: RuntimeError: took longer than 0.5 s (PYGRUB_TIMEOUT)\n"
    assert list(out.iterdir()) == []


def test_an_internal_error_is_one_line_and_cleans_up(tmp_path):
    image = make_ext(tmp_path, guest())
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import sys; from pygrub import cli, extract\n"
        "real = extract.copy_file\n"
        "calls = []\n"
        "def broken(*a):\n"
        "    real(*a); calls.append(1)\n"
        "    if len(calls) == 2: raise KeyError('bug')\n"
        "extract.copy_file = broken\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "-q", f"--output-directory={out}", str(image)],
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 1
    assert proc.stderr == b"pygrub: error: RuntimeError: internal error: KeyError: 'bug'\n"
    assert list(out.iterdir()) == []


def test_output_files_are_private_and_named_as_mkstemp(tmp_path):
    from pygrub.extract import make_temp_file

    names = set()
    for _ in range(50):
        fd, path = make_temp_file("boot_kernel.", str(tmp_path))
        os.close(fd)
        name = os.path.basename(path)
        assert name.startswith("boot_kernel.") and len(name) == len("boot_kernel.") + 8
        assert os.stat(path).st_mode & 0o777 == 0o600
        names.add(name)
    assert len(names) == 50
    os.symlink("/etc/passwd", tmp_path / "boot_kernel.trap")
    assert not (tmp_path / "boot_kernel.trap").resolve().samefile(tmp_path)
