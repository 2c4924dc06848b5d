"""The drop-in install, against a temporary tree laid out like a Debian Xen host.

The real /usr/lib/xen-*/bin is never touched: every run names a --root or --xen-dir
under tmp_path, and one test checks that the host's own pygrub is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from imaging import make_ext

from pygrub import dropin

XEN_PYGRUB = b'#!/bin/sh\necho "xen pygrub $*"\n'
KERNEL = os.urandom(10_000)


@pytest.fixture
def xen_root(tmp_path) -> Path:
    """<root>/usr/lib/xen-4.17/bin with Xen's pygrub (a stand-in script) and a neighbour."""
    bin_dir = tmp_path / "root" / "usr" / "lib" / "xen-4.17" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "pygrub").write_bytes(XEN_PYGRUB)
    (bin_dir / "pygrub").chmod(0o755)
    (bin_dir / "qemu-system-i386").write_bytes(b"")
    return tmp_path / "root"


def bin_of(root: Path) -> Path:
    return root / "usr" / "lib" / "xen-4.17" / "bin"


def dropin_cli(
    *args: str | os.PathLike[str], cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pygrub.dropin", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_install_keeps_xens_and_runs_ours(xen_root, tmp_path):
    directory = bin_of(xen_root)
    original = os.stat(directory / "pygrub")
    proc = dropin_cli("--install", "--root", xen_root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"{directory}: this pygrub (the drop-in wrapper); Xen's kept as pygrub.xen"
    )
    # Xen's file itself (same inode, bytes and mode) is the backup.
    backup = os.stat(directory / "pygrub.xen")
    assert (backup.st_ino, backup.st_mode) == (original.st_ino, original.st_mode)
    assert (directory / "pygrub.xen").read_bytes() == XEN_PYGRUB
    wrapper = directory / "pygrub"
    assert dropin.is_wrapper(str(wrapper))
    assert stat.S_IMODE(wrapper.stat().st_mode) == 0o755
    assert sorted(p.name for p in directory.iterdir()) == [
        "pygrub",
        "pygrub.xen",
        "qemu-system-i386",
    ]
    # The wrapper runs this pygrub with libxl's arguments unchanged.
    help_text = subprocess.run([wrapper, "--help"], capture_output=True, text=True).stdout
    assert help_text.startswith("Usage: pygrub ")
    image = make_ext(
        tmp_path,
        {"boot/grub/grub.cfg": "menuentry 'L' {\n linux /k a=1\n}\n", "k": KERNEL},
        size_mb=4,
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = tmp_path / "result"
    result.touch()
    proc = subprocess.run(
        [
            wrapper,
            "--args=b='two words' c",
            "--quiet",
            f"--output={result}",
            "--output-format=simple0",
            f"--output-directory={out_dir}",
            image,
        ],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "TERM": "vt100"},
    )
    assert proc.returncode == 0, proc.stderr
    items = dict(i.split(" ", 1) for i in result.read_text().split("\0") if i)
    assert items["args"] == "a=1 b='two words' c"
    assert Path(items["kernel"]).read_bytes() == KERNEL


def test_wrapper_ignores_the_callers_environment_and_directory(xen_root, tmp_path):
    assert dropin_cli("--install", "--xen-dir", bin_of(xen_root)).returncode == 0
    # A "pygrub" package in the working directory or on PYTHONPATH must not be run.
    evil = tmp_path / "evil"
    (evil / "pygrub").mkdir(parents=True)
    (evil / "pygrub" / "__init__.py").write_text("raise SystemExit('evil code ran')\n")
    (evil / "pygrub" / "__main__.py").write_text("raise SystemExit('evil code ran')\n")
    proc = subprocess.run(
        [bin_of(xen_root) / "pygrub", "--help"],
        capture_output=True,
        text=True,
        cwd=evil,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(evil), "PYTHONSTARTUP": str(evil)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "evil" not in proc.stderr and proc.stdout.startswith("Usage: pygrub ")


def test_install_twice_and_after_a_xen_upgrade(xen_root):
    directory = bin_of(xen_root)
    assert dropin_cli("--install", "--root", xen_root).returncode == 0
    assert dropin_cli("--install", "--root", xen_root).returncode == 0
    assert (directory / "pygrub.xen").read_bytes() == XEN_PYGRUB
    # A package upgrade writes its new pygrub over the wrapper: that one becomes the backup.
    newer = b'#!/bin/sh\necho "xen 4.17.5 pygrub"\n'
    (directory / "pygrub").unlink()
    (directory / "pygrub").write_bytes(newer)
    status = dropin_cli("--status", "--root", xen_root)
    assert "another pygrub (Xen's); Xen's kept as pygrub.xen" in status.stdout
    assert dropin_cli("--install", "--root", xen_root).returncode == 0
    assert (directory / "pygrub.xen").read_bytes() == newer
    assert dropin.is_wrapper(str(directory / "pygrub"))


def test_uninstall_puts_xens_back(xen_root):
    directory = bin_of(xen_root)
    before = os.stat(directory / "pygrub")
    assert dropin_cli("--install", "--root", xen_root).returncode == 0
    proc = dropin_cli("--uninstall", "--root", xen_root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{directory}: another pygrub (Xen's)"
    after = os.stat(directory / "pygrub")
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert (directory / "pygrub").read_bytes() == XEN_PYGRUB
    assert not (directory / "pygrub.xen").exists()
    # Again: nothing to undo, nothing changed.
    proc = dropin_cli("--uninstall", "--root", xen_root)
    assert proc.returncode == 0 and "nothing done" in proc.stdout
    assert (directory / "pygrub").read_bytes() == XEN_PYGRUB


def test_where_xen_had_no_pygrub(tmp_path):
    directory = tmp_path / "libexec"
    directory.mkdir()
    assert dropin_cli("--install", "--xen-dir", directory).returncode == 0
    assert dropin.state(str(directory)) == dropin.State(str(directory), "ours", False)
    assert dropin_cli("--uninstall", "--xen-dir", directory).returncode == 0
    assert list(directory.iterdir()) == []


def test_a_symlinked_pygrub_is_kept_as_a_symlink(xen_root):
    directory = bin_of(xen_root)
    real = xen_root / "pygrub-real"
    (directory / "pygrub").rename(real)
    (directory / "pygrub").symlink_to(real)
    assert not dropin.is_wrapper(str(directory / "pygrub"))
    assert dropin_cli("--install", "--root", xen_root).returncode == 0
    assert os.readlink(directory / "pygrub.xen") == str(real)
    assert real.read_bytes() == XEN_PYGRUB
    assert dropin_cli("--uninstall", "--root", xen_root).returncode == 0
    assert os.readlink(directory / "pygrub") == str(real)


def test_finds_every_xen_and_says_when_there_is_none(xen_root, tmp_path):
    other = xen_root / "usr" / "libexec" / "xen" / "bin"
    other.mkdir(parents=True)
    (other / "pygrub").write_bytes(XEN_PYGRUB)
    (xen_root / "usr" / "lib" / "xen-4.14" / "bin").mkdir(parents=True)  # no pygrub there
    assert dropin.xen_directories(str(xen_root)) == [str(bin_of(xen_root)), str(other)]
    proc = dropin_cli("--status", "--root", tmp_path / "empty")
    assert proc.returncode == 1
    assert proc.stderr.startswith("pygrub-dropin: error: no Xen pygrub found under ")
    assert dropin_cli("--status", "--xen-dir", tmp_path / "nope").returncode == 1


def test_refuses_an_interpreter_without_pygrub(xen_root, tmp_path):
    proc = dropin_cli("--install", "--root", xen_root, "--python", "/bin/false")
    assert proc.returncode == 1 and "cannot import pygrub" in proc.stderr
    assert (bin_of(xen_root) / "pygrub").read_bytes() == XEN_PYGRUB
    with pytest.raises(dropin.DropinError, match="newline"):
        dropin.install(str(bin_of(xen_root)), "/usr/bin/python3\nrm -rf /", [])


def test_wrapper_is_recognised_only_when_it_is_ours(tmp_path):
    path = tmp_path / "pygrub"
    path.write_text(dropin.wrapper_text("/usr/bin/python3", str(tmp_path), ["/site"]))
    assert dropin.is_wrapper(str(path))
    path.write_bytes(dropin.MARK + b"x" * dropin.MAX_WRAPPER)
    assert not dropin.is_wrapper(str(path))
    path.write_bytes(XEN_PYGRUB)
    assert not dropin.is_wrapper(str(path))
    # Paths are quoted for sh, whatever they hold.
    text = dropin.wrapper_text("/opt/it's here/python3", "/x", ["/it's/site"])
    assert text.endswith(
        "exec '/opt/it'\\''s here/python3' -I -S -c 'import sys; sys.path += [\"/it'\\''s/site\"]; "
        'from pygrub.cli import command; command()\' "$@"\n'
    )


def _host_pygrubs() -> dict[str, str]:
    found = {}
    for directory in dropin.xen_directories("/"):
        for name in (dropin.NAME, dropin.BACKUP):
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    found[path] = hashlib.sha256(f.read()).hexdigest()
    return found


def test_the_hosts_xen_is_never_touched(xen_root):
    before = _host_pygrubs()
    for action in ("--install", "--status", "--uninstall"):
        assert dropin_cli(action, "--root", xen_root).returncode == 0
    assert _host_pygrubs() == before


def test_status_notices_when_the_wrapper_cannot_run(xen_root, tmp_path):
    """A venv deleted after --install: --status says so and fails, not "installed"."""
    python = tmp_path / "venv" / "python"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    assert dropin_cli("--install", "--root", xen_root, "--python", python).returncode == 0
    ok = dropin_cli("--status", "--root", xen_root)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip().endswith("this pygrub (the drop-in wrapper); Xen's kept as pygrub.xen")
    python.unlink()
    python.parent.rmdir()
    gone = dropin_cli("--status", "--root", xen_root)
    assert gone.returncode == 1
    assert f"but broken: its interpreter {python} is gone" in gone.stdout
    python.parent.mkdir()
    python.write_text("#!/bin/sh\necho 'no module named pygrub' >&2\nexit 1\n")
    python.chmod(0o755)
    failing = dropin_cli("--status", "--root", xen_root)
    assert failing.returncode == 1
    assert "but broken: it does not run: no module named pygrub" in failing.stdout
    # Uninstalling still works, and then there is nothing broken to report.
    assert dropin_cli("--uninstall", "--root", xen_root).returncode == 0
    assert dropin_cli("--status", "--root", xen_root).returncode == 0


# -- --dpkg-divert: what the Debian package's maintainer scripts run ----------------------


def diversions(root: Path) -> list[str]:
    proc = subprocess.run(
        ["dpkg-divert", "--root", root, "--list"], capture_output=True, text=True, check=True
    )
    return proc.stdout.splitlines()


@pytest.fixture
def dpkg_root(xen_root) -> Path:
    """xen_root with an empty dpkg database of its own, for dpkg-divert --root."""
    admin = xen_root / "var" / "lib" / "dpkg"
    admin.mkdir(parents=True)
    (admin / "diversions").touch()
    return xen_root


def test_dpkg_divert_records_the_swap_once(dpkg_root):
    directory = bin_of(dpkg_root)
    original = os.stat(directory / "pygrub")
    # The package's own diversion of xen-utils-common's /usr/bin/pygrub is not the
    # wrapper's: --uninstall leaves it to the postrm.
    usr_bin = "diversion of /usr/bin/pygrub to /usr/bin/pygrub.xen by pygrub"
    subprocess.run(
        ["dpkg-divert", "--root", dpkg_root, "--package", "pygrub", "--no-rename"]
        + ["--divert", "/usr/bin/pygrub.xen", "--add", "/usr/bin/pygrub"],
        check=True,
        capture_output=True,
    )
    record = (
        "diversion of /usr/lib/xen-4.17/bin/pygrub to /usr/lib/xen-4.17/bin/pygrub.xen by pygrub"
    )
    for _ in range(2):  # configure, then an upgrade's configure: one diversion
        proc = dropin_cli("--install", "--dpkg-divert", "--root", dpkg_root, "--path", "/site")
        assert proc.returncode == 0, proc.stderr
        assert diversions(dpkg_root) == [usr_bin, record]
    backup = os.stat(directory / "pygrub.xen")
    assert (backup.st_ino, backup.st_mode) == (original.st_ino, original.st_mode)
    text = (directory / "pygrub").read_text()
    assert dropin.is_wrapper(str(directory / "pygrub"))
    assert "# Undo: apt-get purge pygrub" in text and 'sys.path += ["/site"]' in text
    proc = dropin_cli("--uninstall", "--dpkg-divert", "--root", dpkg_root)
    assert proc.returncode == 0, proc.stderr
    assert diversions(dpkg_root) == [usr_bin]
    after = os.stat(directory / "pygrub")
    assert (after.st_ino, after.st_mode) == (original.st_ino, original.st_mode)
    assert sorted(p.name for p in directory.iterdir()) == ["pygrub", "qemu-system-i386"]


def test_dpkg_divert_takes_over_a_plain_dropin_and_leaves_a_removed_xen(dpkg_root):
    directory = bin_of(dpkg_root)
    assert dropin_cli("--install", "--root", dpkg_root).returncode == 0  # pip's, before the .deb
    assert dropin_cli("--install", "--dpkg-divert", "--root", dpkg_root).returncode == 0
    assert (directory / "pygrub.xen").read_bytes() == XEN_PYGRUB
    assert len(diversions(dpkg_root)) == 1
    # Xen's package removed: dpkg deletes the diverted file; the next run (a trigger)
    # takes the wrapper and the diversion away too.
    (directory / "pygrub.xen").unlink()
    proc = dropin_cli("--install", "--dpkg-divert", "--root", dpkg_root)
    assert proc.returncode == 0, proc.stderr
    assert diversions(dpkg_root) == []
    assert sorted(p.name for p in directory.iterdir()) == ["qemu-system-i386"]


def test_dpkg_divert_refuses_another_packages_diversion(dpkg_root):
    subprocess.run(
        ["dpkg-divert", "--root", dpkg_root, "--package", "other", "--no-rename"]
        + ["--divert", "/usr/lib/xen-4.17/bin/pygrub.other", "--add"]
        + ["/usr/lib/xen-4.17/bin/pygrub"],
        check=True,
        capture_output=True,
    )
    proc = dropin_cli("--install", "--dpkg-divert", "--root", dpkg_root)
    assert proc.returncode == 1 and "already diverted by other" in proc.stderr
    assert (bin_of(dpkg_root) / "pygrub").read_bytes() == XEN_PYGRUB
