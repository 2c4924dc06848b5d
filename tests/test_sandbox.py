"""--runas: the sandbox probed from inside, and whole runs compared with runs without it.

The probes run in the real sandbox (``sandbox.run_sandboxed`` forks this process and
confines the child exactly as a --runas run does), so they see what a subverted reader
would see. The whole runs go through ``python -m pygrub`` or ``cli.main``. Everything
here that sets up namespaces needs root: under CI it fails without, elsewhere it skips.
"""

from __future__ import annotations

import ast
import ctypes
import errno
import json
import os
import pwd
import random
import re
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import captured_reader
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import make_ext, make_fat, require_tool, run, write_tree

from pygrub import cli, sandbox
from pygrub import run as pygrub_run
from pygrub import settings as pygrub_settings
from pygrub.errors import PygrubError, UsageError
from pygrub.settings import DEFAULT_MAX_RAM_MB, Settings, with_environment

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "guest.img"
NOBODY = 65534
#: A uid with no passwd entry (its gid is then the uid), one per kind of test so that a
#: search for leftover processes by uid sees only its own.
UNNAMED = 43219
SLOW_UID = 43220

KERNEL = random.Random(1).randbytes(300_000)
INITRD = random.Random(2).randbytes(90_001)
MENU_LST = "default 0\ntimeout 1\ntitle Linux\n  kernel /boot/vmlinuz root=/dev/xvda1 ro\n"


# -- helpers ---------------------------------------------------------------------------


def error_of(action) -> str:
    """The errno name an action fails with, or "ok"."""
    try:
        action()
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
    return "ok"


def vm_size() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmSize:\s+(\d+) kB", status, re.M)[1]) << 10


def sandboxed(tmp_path: Path, body, uid=UNNAMED, image=SAMPLE, keep=(), landlock=True):
    """body() run in the sandbox; its address-space limit leaves room above this process."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir(exist_ok=True)
    uid, gid = sandbox.user_ids(uid)
    box = sandbox.Sandbox(
        uid,
        gid,
        str(image),
        str(mountpoint),
        file_size=1 << 20,
        address_space=vm_size() + (512 << 20),
        keep=tuple(keep),
        landlock=landlock,
    )
    return sandbox.run_sandboxed(box, body), box


def prctl(option: int) -> int:
    return ctypes.CDLL(None, use_errno=True).prctl(option, 0, 0, 0, 0)


def fork_and_exit() -> None:
    if os.fork() == 0:
        os._exit(0)


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        m = re.search(r"^Uid:\s+(\d+)", status, re.M)
        if m and int(m[1]) == uid:
            found.append(int(entry.name))
    return found


def wait_until_gone(uid: int, seconds: float = 5) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_of(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


class HostShm:
    """A System V shared memory segment every user may open: visible unless the IPC
    namespace differs."""

    IPC_CREAT = 0o1000
    IPC_RMID = 0

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.key = random.randrange(1 << 20, 1 << 30)
        self.id = self.libc.shmget(self.key, 4096, self.IPC_CREAT | 0o666)
        assert self.id >= 0, os.strerror(ctypes.get_errno())

    def lookup(self) -> str:
        if self.libc.shmget(self.key, 0, 0) >= 0:
            return "ok"
        return errno.errorcode[ctypes.get_errno()]

    def remove(self) -> None:
        self.libc.shmctl(self.id, self.IPC_RMID, None)


def guest_tree(initrd: bool = True) -> dict:
    menu = MENU_LST + ("  initrd /boot/initrd.img\n" if initrd else "")
    tree = {"boot/grub/menu.lst": menu, "boot/vmlinuz": KERNEL}
    if initrd:
        tree["boot/initrd.img"] = INITRD
    return tree


def readable(image: Path) -> Path:
    """The image readable by any user, as xl.cfg asks of a bootloader_user's disk."""
    image.chmod(0o644)
    return image


def main_in_process(capfd, *argv: str | os.PathLike[str]) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, out, err


def pygrub(*argv: str | os.PathLike[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pygrub", *map(str, argv)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env=env,
    )


def items(output: bytes) -> dict[str, str]:
    return dict(i.split(" ", 1) for i in output.decode().split("\0") if i)


# -- the sandbox from inside -----------------------------------------------------------


def test_the_child_sees_only_the_disk_and_its_descriptors(tmp_path, needs_root):
    # A copy any user may write: what stops the write is the read-only bind mount alone.
    image = tmp_path / "guest.img"
    shutil.copy(SAMPLE, image)
    image.chmod(0o666)
    kept = os.open(tmp_path / "kept", os.O_RDWR | os.O_CREAT, 0o600)
    stray = os.open(tmp_path / "stray", os.O_RDWR | os.O_CREAT, 0o600)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    name = b"\0pygrub-sandbox-test-%d" % os.getpid()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(name)
    abstract.listen()
    shm = HostShm()
    null = os.stat("/dev/null").st_rdev

    def probe() -> dict:
        def unix() -> None:
            socket.socket(socket.AF_UNIX).connect(name)

        return {
            "ids": [os.getresuid(), os.getresgid(), os.getgroups()],
            "root": sorted(os.listdir("/")),
            "head": open("/guest.img", "rb").read(4096).hex(),
            "passwd": error_of(lambda: open("/etc/passwd")),
            "write_disk": error_of(lambda: os.open("/guest.img", os.O_WRONLY)),
            "create": error_of(lambda: os.open("/new", os.O_WRONLY | os.O_CREAT, 0o600)),
            "tcp": error_of(lambda: socket.socket().connect(("127.0.0.1", port))),
            "abstract_unix": error_of(unix),
            "sysv_ipc": shm.lookup(),
            "fork": error_of(fork_and_exit),
            "setuid0": error_of(lambda: os.setuid(0)),
            "stray_fd": error_of(lambda: os.fstat(stray)),
            "kept_fd": stat.S_ISREG(os.fstat(kept).st_mode),
            "stdin_is_null": os.fstat(0).st_rdev == null,
            "own_session": os.getsid(0) == os.getpid(),
            "no_new_privs": prctl(39),  # PR_GET_NO_NEW_PRIVS
            "dumpable": prctl(3),  # PR_GET_DUMPABLE
            "limits": {
                n: resource.getrlimit(getattr(resource, n))
                for n in ("RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE")
            },
            "fsize": resource.getrlimit(resource.RLIMIT_FSIZE),
            "address_space": resource.getrlimit(resource.RLIMIT_AS),
            "write_to_limit": error_of(lambda: os.pwrite(kept, b"x", (1 << 20) - 1)),
            "write_past_limit": error_of(lambda: os.pwrite(kept, b"x", 1 << 20)),
            "huge_allocation": _allocation(resource.getrlimit(resource.RLIMIT_AS)[0]),
        }

    try:
        # The host itself reaches all three: the probes below are not vacuous.
        socket.create_connection(("127.0.0.1", port)).close()
        socket.socket(socket.AF_UNIX).connect(name)
        assert shm.lookup() == "ok"
        seen, box = sandboxed(tmp_path, probe, uid=NOBODY, image=image, keep=[kept], landlock=False)
    finally:
        shm.remove()
        listener.close()
        abstract.close()
    nobody = pwd.getpwuid(NOBODY)
    assert seen["ids"] == [[NOBODY] * 3, [nobody.pw_gid] * 3, []]
    assert seen["root"] == ["guest.img"]
    assert bytes.fromhex(seen["head"]) == SAMPLE.read_bytes()[:4096]
    assert seen["passwd"] == "ENOENT"
    assert seen["write_disk"] == "EROFS" and seen["create"] == "EROFS"
    assert seen["tcp"] == "ENETUNREACH"  # a new network namespace: even loopback is down
    assert seen["abstract_unix"] == "ECONNREFUSED"
    assert seen["sysv_ipc"] == "ENOENT"
    assert seen["fork"] == "EAGAIN" and seen["setuid0"] == "EPERM"
    assert seen["stray_fd"] == "EBADF" and seen["kept_fd"] is True
    assert seen["stdin_is_null"] and seen["own_session"]
    assert seen["no_new_privs"] == 1 and seen["dumpable"] == 0
    assert all(v == [0, 0] for v in seen["limits"].values()), seen["limits"]
    assert seen["fsize"] == [1 << 20, 1 << 20]
    assert seen["address_space"] == [box.address_space] * 2
    assert seen["write_to_limit"] == "ok" and seen["write_past_limit"] == "EFBIG"
    assert seen["huge_allocation"] == "MemoryError"
    # The mounts were made in the child's namespace only: none reached the host's table
    # (compared by path, as other processes on the host may mount meanwhile).
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
    assert os.listdir(tmp_path / "mnt") == []


def _allocation(size: int) -> str:
    try:
        bytearray(size)
    except MemoryError:
        return "MemoryError"
    return "ok"


def test_landlock_forbids_everything_not_already_open(tmp_path, needs_root):
    abi = sandbox.landlock_abi()
    kept = os.open(tmp_path / "kept", os.O_RDWR | os.O_CREAT, 0o600)
    sleeper = subprocess.Popen(["sleep", "60"], user=UNNAMED, group=UNNAMED)

    def probe() -> dict:
        return {
            "list_root": error_of(lambda: os.listdir("/")),
            "read_disk": len(open("/guest.img", "rb").read(512)),
            "truncate_kept": error_of(lambda: os.ftruncate(kept, 10)),
            "tcp": error_of(lambda: socket.socket().connect(("127.0.0.1", 9))),
            "signal_same_user": error_of(lambda: os.kill(sleeper.pid, 0)),
        }

    try:
        with_landlock, _ = sandboxed(tmp_path, probe, keep=[kept])
        without, _ = sandboxed(tmp_path, probe, keep=[kept], landlock=False)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert with_landlock["read_disk"] == without["read_disk"] == 512
    assert with_landlock["truncate_kept"] == "ok"
    assert without["list_root"] == "ok" and without["signal_same_user"] == "ok"
    if abi == 0:
        # No Landlock in this kernel: the sandbox goes on without it.
        assert with_landlock == without
        return
    assert with_landlock["list_root"] == "EACCES"
    assert with_landlock["tcp"] == ("EACCES" if abi >= 4 else "ENETUNREACH")
    assert with_landlock["signal_same_user"] == ("EPERM" if abi >= 6 else "ok")


def test_a_user_without_passwd_entry_runs_with_its_uid_as_gid(needs_root):
    with pytest.raises(KeyError):
        pwd.getpwuid(UNNAMED)
    assert sandbox.user_ids(UNNAMED) == (UNNAMED, UNNAMED)
    assert sandbox.user_ids(NOBODY) == (NOBODY, pwd.getpwuid(NOBODY).pw_gid)


def test_a_user_whose_group_is_root_is_refused(monkeypatch):
    """The uid was checked on the command line; passwd's group is a fact of this host."""
    monkeypatch.setattr(sandbox.pwd, "getpwuid", lambda uid: pwd.struct_passwd(
        ("u", "x", uid, 0, "", "/", "/bin/false")))  # fmt: skip
    with pytest.raises(
        PygrubError, match=r"^--runas=1234: the user's primary group 0 is root"
    ) as e:
        sandbox.user_ids(1234)
    assert not isinstance(e.value, UsageError)


# -- whole runs ------------------------------------------------------------------------


def test_runas_boot_is_the_plain_boot(tmp_path, needs_root):
    """The libxl command line, sandboxed and not: same output, same files, nothing else."""
    image = readable(Path(shutil.copy(SAMPLE, tmp_path / "guest.img")))
    results = []
    for extra in ([f"--runas={UNNAMED}", "-q"], ["-q"]):
        out = tmp_path / f"out{len(results)}"
        out.mkdir()
        output = tmp_path / f"output{len(results)}"
        output.touch()
        proc = pygrub(
            *extra,
            f"--output={output}",
            "--output-format=simple0",
            f"--output-directory={out}",
            image,
        )
        assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
        found = items(output.read_bytes())
        named = sorted(Path(found[k]).name for k in ("kernel", "ramdisk"))
        assert sorted(os.listdir(out)) == named
        for key in ("kernel", "ramdisk"):
            st_ = os.stat(found[key])
            assert (st_.st_uid, st_.st_gid, stat.S_IMODE(st_.st_mode)) == (0, 0, 0o600)
        results.append(
            (
                re.sub(rb"/out\d/boot_(\w+)\.\w{8}", rb"/boot_\1", output.read_bytes()),
                Path(found["kernel"]).read_bytes(),
                Path(found["ramdisk"]).read_bytes(),
            )
        )
    assert results[0] == results[1]


def build_fat_guest(tmp: Path) -> Path:
    conf = "DEFAULT linux\nLABEL linux\n  KERNEL /boot/vmlinuz\n  APPEND root=/dev/xvda1\n"
    tree = {"boot/extlinux/extlinux.conf": conf, "boot/vmlinuz": KERNEL}
    return make_fat(tmp, tree, 12, 4096, "fat.img")


def build_iso_guest(tmp: Path) -> Path:
    conf = "DEFAULT live\nLABEL live\n  KERNEL /isolinux/vmlinuz\n  APPEND boot=live\n  INITRD /isolinux/initrd.img\n"
    tree = {
        "isolinux/isolinux.cfg": conf,
        "isolinux/vmlinuz": KERNEL,
        "isolinux/initrd.img": INITRD,
    }
    src = write_tree(tmp / "iso.d", tree)
    image = tmp / "guest.iso"
    run("xorriso", "-as", "mkisofs", "-quiet", "-J", "-R", "-o", image, src)
    return image


GUESTS = {
    "ext4, kernel and initrd": lambda tmp: make_ext(tmp, guest_tree()),
    "ext4, no initrd": lambda tmp: make_ext(tmp, guest_tree(initrd=False)),
    "FAT (cp437 names)": build_fat_guest,
    "ISO 9660 with Joliet (UTF-16 names)": build_iso_guest,
}


@pytest.mark.parametrize("kind", GUESTS)
@pytest.mark.parametrize("uid", [NOBODY, UNNAMED])
def test_guests_boot_the_same_under_runas(tmp_path, capfd, monkeypatch, needs_root, kind, uid):
    # In this process: its address space is larger than a fresh pygrub's.
    monkeypatch.setenv("PYGRUB_MAX_RAM_USAGE_MB", "4096")
    image = readable(GUESTS[kind](tmp_path))
    seen = []
    for runas in ([f"--runas={uid}"], []):
        out = tmp_path / f"out{len(seen)}"
        out.mkdir()
        output = tmp_path / f"output{len(seen)}"
        output.touch()
        argv = [*runas, "-q", f"--output={output}", "--output-format=simple0"]
        code, _out, err = main_in_process(capfd, *argv, f"--output-directory={out}", image)
        assert code == 0 and err == "", err
        found = items(output.read_bytes())
        files = {k: Path(found[k]).read_bytes() for k in ("kernel", "ramdisk") if k in found}
        assert sorted(os.listdir(out)) == sorted(Path(found[k]).name for k in files)
        seen.append((found.get("args"), files))
    assert seen[0] == seen[1]
    assert seen[0][1]["kernel"] == KERNEL


@pytest.mark.parametrize(
    "flags",
    [
        ["-l"],
        ["-n"],
        ["-n", "--entry=0", "--args=extra"],
        ["-n", "--output-format=json", "--explain"],
        ["-n", "--format=raw"],
    ],
    ids=["list", "not-really", "entry", "json-explain", "format"],
)
def test_other_modes_print_the_same_under_runas(tmp_path, capfd, monkeypatch, needs_root, flags):
    monkeypatch.setenv("PYGRUB_MAX_RAM_USAGE_MB", "4096")
    image = readable(make_ext(tmp_path, guest_tree()))
    out = tmp_path / "out"
    out.mkdir()
    plain = main_in_process(capfd, "-q", *flags, f"--output-directory={out}", image)
    runas = main_in_process(
        capfd, f"--runas={UNNAMED}", "-q", *flags, f"--output-directory={out}", image
    )
    assert plain[0] == 0 and runas == plain
    assert os.listdir(out) == []


def test_json_boot_of_a_qcow2_under_runas(tmp_path, capfd, monkeypatch, needs_root):
    """--output-format=json, --explain and --format=qcow2 under --runas: the same object
    as without (but for the temporary names), the same files, the same explanation."""
    monkeypatch.setenv("PYGRUB_MAX_RAM_USAGE_MB", "4096")
    raw = make_ext(tmp_path, guest_tree())
    image = tmp_path / "guest.qcow2"
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", raw, image)
    readable(image)
    seen = []
    for runas in ([f"--runas={UNNAMED}"], []):
        out = tmp_path / f"out{len(seen)}"
        out.mkdir()
        flags = ["-q", "--output-format=json", "--explain", "--format=qcow2"]
        code, stdout, err = main_in_process(
            capfd, *runas, *flags, f"--output-directory={out}", image
        )
        assert code == 0, err
        document = json.loads(stdout)
        paths = {k: Path(document.pop(k)) for k in ("kernel", "ramdisk")}
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
        seen.append((document, {k: p.read_bytes() for k, p in paths.items()}, err))
    assert seen[0] == seen[1]
    document, files, err = seen[0]
    assert files == {"kernel": KERNEL, "ramdisk": INITRD}
    assert document["bootloader"] == "grub-legacy" or document["config"] == "/boot/grub/menu.lst"
    assert "explain: config /boot/grub/menu.lst (grub-legacy)" in err.splitlines()


def test_isconfig_under_runas(tmp_path, capfd, monkeypatch, needs_root):
    monkeypatch.setenv("PYGRUB_MAX_RAM_USAGE_MB", "4096")
    config = tmp_path / "menu.lst"
    config.write_text(MENU_LST)
    config.chmod(0o644)
    plain = main_in_process(capfd, "--isconfig", "-q", config)
    runas = main_in_process(capfd, "--isconfig", "-q", f"--runas={UNNAMED}", config)
    assert plain[0] == 0 and runas == plain


def test_block_device_image(tmp_path, capfd, monkeypatch, needs_root):
    """A guest on a block device: bound into the sandbox without nodev, which would forbid it."""
    monkeypatch.setenv("PYGRUB_MAX_RAM_USAGE_MB", "4096")
    image = make_ext(tmp_path, guest_tree())
    device = run("losetup", "--find", "--show", "--read-only", image).decode().strip()
    out = tmp_path / "out"
    out.mkdir()
    output = tmp_path / "output"
    output.touch()
    try:
        # The administrator gives each domain's bootloader user its disk, as xl.cfg asks.
        os.chown(device, UNNAMED, -1)
        code, _out, err = main_in_process(
            capfd, f"--runas={UNNAMED}", "-q", f"--output={output}", "--output-format=simple0",
            f"--output-directory={out}", device,
        )  # fmt: skip
    finally:
        os.chown(device, 0, -1)
        run("losetup", "--detach", device)
    assert code == 0, err
    found = items(output.read_bytes())
    assert Path(found["kernel"]).read_bytes() == KERNEL
    assert Path(found["ramdisk"]).read_bytes() == INITRD


# -- failures end cleanly --------------------------------------------------------------


def test_kernel_over_the_file_size_limit(tmp_path, needs_root):
    tree = guest_tree()
    tree["boot/vmlinuz"] = os.urandom(2 << 20)
    image = readable(make_ext(tmp_path, tree))
    out = tmp_path / "out"
    out.mkdir()
    output = tmp_path / "output"
    output.touch()
    env = dict(os.environ, PYGRUB_MAX_FILE_SIZE_MB="1")
    proc = pygrub(
        f"--runas={UNNAMED}", "-q", f"--output={output}", "--output-format=simple0",
        f"--output-directory={out}", image, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1
    assert b"over the 1 MiB limit (PYGRUB_MAX_FILE_SIZE_MB)" in proc.stderr
    assert os.listdir(out) == [] and output.read_bytes() == b""


def test_rlimit_fsize_stops_a_ramdisk_the_reader_did_not_check(
    tmp_path, capfd, monkeypatch, needs_root
):
    # Each initrd is under the limit, so the reader copies both; the second copy crosses
    # RLIMIT_FSIZE, and the kernel, not Python, stops the write.
    monkeypatch.setenv("PYGRUB_MAX_RAM_USAGE_MB", "4096")
    monkeypatch.setenv("PYGRUB_MAX_FILE_SIZE_MB", "1")
    grub_cfg = "set default=0\nmenuentry 'Linux' {\n  linux /vmlinuz\n  initrd /a.img /b.img\n}\n"
    tree = {"boot/grub/grub.cfg": grub_cfg, "vmlinuz": KERNEL}
    tree["a.img"] = os.urandom(700_000)
    tree["b.img"] = os.urandom(700_000)
    image = readable(make_ext(tmp_path, tree))
    out = tmp_path / "out"
    out.mkdir()
    output = tmp_path / "output"
    output.touch()
    code, _out, err = main_in_process(
        capfd, f"--runas={UNNAMED}", "-q", f"--output={output}", f"--output-directory={out}", image
    )
    assert code == 1 and len(err.splitlines()) == 1
    assert "File too large" in err
    assert os.listdir(out) == [] and output.read_bytes() == b""


def test_runas_without_namespaces_fails_closed(tmp_path, needs_root):
    """Root without CAP_SYS_ADMIN (a locked-down container): an error, never an unsandboxed run."""
    image = readable(make_ext(tmp_path, guest_tree()))
    out = tmp_path / "out"
    out.mkdir()
    output = tmp_path / "output"
    output.touch()
    setpriv = require_tool("setpriv")
    proc = subprocess.run(
        [
            setpriv, "--bounding-set=-sys_admin", sys.executable, "-m", "pygrub",
            f"--runas={UNNAMED}", "-q", f"--output={output}", f"--output-directory={out}", image,
        ],
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        "pygrub: error: RuntimeError: cannot sandbox the reader: unshare: Operation not permitted "
        "(it needs root with CAP_SYS_ADMIN where namespaces are allowed)\n"
    )
    assert os.listdir(out) == [] and output.read_bytes() == b""


def test_runas_needs_root(tmp_path, needs_root):
    image = readable(make_ext(tmp_path, guest_tree()))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.dup2(write_end, 2)
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # not pytest's capture
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            code = cli.main([f"--runas={UNNAMED}", "-q", "--output-directory=/tmp", str(image)])
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        err = f.read()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 1
    assert (
        err
        == b"pygrub: error: RuntimeError: --runas needs pygrub to start as root: it sets up the sandbox, then drops to the user\n"
    )


@pytest.mark.parametrize("runas", ["0", "-1", "4294967295"])
def test_runas_root_or_no_user_is_a_usage_error(tmp_path, capfd, needs_root, runas):
    out = tmp_path / "out"
    out.mkdir()
    code, _out, err = main_in_process(
        capfd, f"--runas={runas}", "-q", f"--output-directory={out}", SAMPLE
    )
    # A command-line mistake like any other: the usage, then the one line.
    usage, line = err.splitlines()
    assert code == 2 and usage.startswith("Usage: pygrub ")
    assert line.startswith(f"pygrub: error: RuntimeError: --runas={runas} ")
    assert os.listdir(out) == []


def test_disk_the_user_cannot_open_is_read_through_the_parents_descriptor(
    tmp_path, capfd, monkeypatch, needs_root
):
    # XAPI's disks are block devices of group disk, mode 0660, and the reader has no
    # groups: root opens the disk read-only and the reader reads through that descriptor.
    monkeypatch.setenv("PYGRUB_MAX_RAM_USAGE_MB", "4096")
    image = make_ext(tmp_path, guest_tree())
    image.chmod(0o600)
    out = tmp_path / "out"
    out.mkdir()
    output = tmp_path / "output"
    output.touch()
    argv = [f"--runas={UNNAMED}", "-q", f"--output={output}", "--output-format=simple0"]
    code, _out, err = main_in_process(capfd, *argv, f"--output-directory={out}", image)
    assert code == 0 and err == "", err
    found = items(output.read_bytes())
    assert Path(found["kernel"]).read_bytes() == KERNEL
    assert Path(found["ramdisk"]).read_bytes() == INITRD


SLOW_RUN = (
    "import sys, time\n"
    "from pygrub import cli, extract\n"
    "real = extract.copy_file\n"
    "def slow(*a):\n"
    "    real(*a); print('copied', file=sys.stderr, flush=True); time.sleep(60)\n"
    "extract.copy_file = slow\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("stop", ["SIGTERM", "parent SIGKILL"])
def test_a_stopped_run_takes_its_child_with_it(tmp_path, needs_root, stop):
    image = readable(make_ext(tmp_path, guest_tree()))
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYGRUB_TIMEOUT="100")
    argv = [f"--runas={SLOW_UID}", "-q", f"--output-directory={out}", str(image)]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    # On stderr: the reader's stdout is /dev/null where it is not the product.
    assert proc.stderr is not None and proc.stderr.readline() == b"copied\n"
    assert len(processes_of(SLOW_UID)) == 1
    if stop == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:
        proc.kill()
    _out, err = proc.communicate(timeout=30)
    # The child dies with its parent even when the parent had no chance to kill it.
    assert wait_until_gone(SLOW_UID) == []
    if stop == "parent SIGKILL":
        return
    assert proc.returncode == 1 and len(err.splitlines()) == 1
    assert b"stopped by signal SIGTERM" in err
    assert os.listdir(out) == []


# -- what the sandbox depends on -------------------------------------------------------


def reader_sources() -> list[Path]:
    """The modules a sandboxed run may import: all but the menu, and the tools run alone."""
    package = ROOT / "src" / "pygrub"
    skipped = {"__main__.py", "dropin.py", "manpage.py", "sandbox.py"}
    return [
        path
        for path in package.rglob("*.py")
        if "menu" not in path.relative_to(package).parts and path.name not in skipped
    ]


def test_preload_covers_every_codec_and_import():
    """Inside the sandbox no file can be read: every codec a reader names is looked up
    before the fork, every module it imports at its top is imported then, and every one it
    imports inside a function is there already or one the child may ask the parent for."""
    import codecs

    codec_names: set[str] = set()
    late: set[str] = set()
    top: set[str] = set()
    for path in reader_sources():
        text = path.read_text()
        codec_names |= set(re.findall(r"\.(?:de|en)code\(\s*\"([^\"]+)\"", text))
        late |= set(re.findall(r"^[ \t]+import ([\w.]+)", text, re.M))
        late |= set(re.findall(r"^[ \t]+from ([\w][\w.]*) import", text, re.M))
        top |= set(re.findall(r"^import ([\w.]+)", text, re.M))
        top |= set(re.findall(r"^from (\w[\w.]*) import", text, re.M))
    preloaded = {codecs.lookup(name).name for name in sandbox.CODECS}
    unloaded = sorted(n for n in codec_names if codecs.lookup(n).name not in preloaded)
    # ... and those not preloaded are decoded without importing anything: a fresh Python
    # that decodes and encodes with each imports no module for it (a bug in a codec name
    # or a Python that drops its fast path shows up here).
    check = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "for name in sys.argv[1:]:\n"
        "    b'\\xff\\x00abc'.decode(name, 'replace'); 'abc'.encode(name)\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    imported = subprocess.run(
        [sys.executable, "-c", check, *unloaded], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert unloaded and imported == "[]", (unloaded, imported)
    ours = {n for n in top | late if n == "pygrub" or n.startswith("pygrub.")}
    # typing only under TYPE_CHECKING; importlib.resources only in api.json_schema().
    late -= {"typing", "importlib.resources"}
    assert top - ours - {"__future__"} <= set(sandbox.TOP_LEVEL_IMPORTS)
    probe = (
        "import sys, json, importlib.util\n"
        "from pygrub import sandbox\n"
        "sandbox.preload()\n"
        "names = json.loads(sys.argv[1])\n"
        "print(json.dumps(sorted(n for n in names if n not in sys.modules\n"
        "                        and n not in sandbox.IMPORTABLE_ON_REQUEST\n"
        "                        and importlib.util.find_spec(n.split('.')[0]) is not None)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(sorted(late - ours))],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert json.loads(proc.stdout) == []


REQUESTING_CHILD = """
import json, os, sys
from pygrub import sandbox
forks = []
real_fork = os.fork
def fork():
    forks.append(1)
    return real_fork()
os.fork = fork
assert {name!r} not in sys.modules
box = sandbox.Sandbox({uid}, {uid}, sys.argv[1], sys.argv[2], 1 << 20, 1 << 30)
try:
    result = sandbox.run_sandboxed(box, lambda: __import__({name!r}).__name__)
except Exception as e:
    result = str(e)
print(json.dumps([result, len(forks), {name!r} in sys.modules]))
"""


@pytest.mark.parametrize(
    "name, expected",
    [("unicodedata", ["unicodedata", 2, True]), ("antigravity", [None, 1, False])],
)
def test_a_module_the_child_needs_is_imported_by_the_parent_on_request(
    tmp_path, needs_root, name, expected
):
    """A reader's late import the parent did not make: the child asks for it, the parent
    imports it and runs the child again. Only IMPORTABLE_ON_REQUEST is honoured."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    code = REQUESTING_CHILD.format(name=name, uid=UNNAMED)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(SAMPLE), str(mountpoint)],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result, forks, imported = json.loads(proc.stdout)
    if expected[0] is None:
        assert result == f"internal error: ModuleNotFoundError: No module named '{name}'"
        expected[0] = result
    assert [result, forks, imported] == expected


def test_runas_limits_default_as_xen(tmp_path, monkeypatch, needs_root):
    # as shipped, not the fixture's
    monkeypatch.setattr(pygrub_settings, "DEFAULT_MAX_RAM_MB", DEFAULT_MAX_RAM_MB)
    boxes = []
    monkeypatch.setattr(sandbox, "run_sandboxed", lambda box, body: boxes.append(box) or {
        "printed": False, "ramdisk": False, "args": "", "json": None
    })  # fmt: skip
    options = Settings(str(SAMPLE), interactive=False, runas=UNNAMED, not_really=True)
    options.output_directory = f"{tmp_path}/"
    options.output = str(tmp_path / "output")
    Path(options.output).touch()
    assert pygrub_run.run(with_environment(options, {})) == 0
    environ = {"PYGRUB_MAX_FILE_SIZE_MB": "7", "PYGRUB_MAX_RAM_USAGE_MB": "99"}
    assert pygrub_run.run(with_environment(options, environ)) == 0
    assert [(b.file_size, b.address_space) for b in boxes] == [
        (128 << 20, 256 << 20),
        (7 << 20, 99 << 20),
    ]
    environ["PYGRUB_MAX_RAM_USAGE_MB"] = "2M"
    with pytest.raises(UsageError, match="PYGRUB_MAX_RAM_USAGE_MB must be a whole number"):
        pygrub_run.run(with_environment(options, environ))


def test_a_huge_file_size_limit_is_clamped_not_an_error(tmp_path, needs_root):
    def probe() -> list:
        return list(resource.getrlimit(resource.RLIMIT_FSIZE))

    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    box = sandbox.Sandbox(UNNAMED, UNNAMED, str(SAMPLE), str(mountpoint), 10**30, 1 << 40)
    expected = sandbox.MAX_RLIMIT if hard == resource.RLIM_INFINITY else hard
    assert sandbox.run_sandboxed(box, probe) == [expected, expected]


# -- the parent reads a report the child controls --------------------------------------

VALID_REPORTS = [
    json.dumps(
        {"result": {"printed": False, "ramdisk": True, "args": "root=/dev/xvda1 ro", "json": None}}
    ),
    json.dumps({"error": "nothing bootable found", "usage": False}),
    json.dumps({"result": None}),
]


def check_report(raw: bytes) -> None:
    try:
        report = sandbox.parse_report(raw)
    except PygrubError as e:
        assert str(e).startswith("the sandboxed reader's report is malformed")
        return
    assert (report is None) == (raw == b"")
    if report is not None and report.error is not None:
        assert len(report.error) <= sandbox.MAX_ERROR_CHARS * len("\\U0001f600")
        assert report.error.isprintable()
    if report is not None and report.error is None:
        try:
            outcome = sandbox.Outcome.from_result(report.result)
        except PygrubError:
            return
        assert isinstance(outcome.args, str) and isinstance(outcome.ramdisk, bool)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(VALID_REPORTS),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), max_size=4),
    cut=st.integers(0, 10_000),
)
def test_report_bit_flipped_or_truncated(base, flips, cut):
    raw = bytearray(base.encode())
    for where, bit in flips:
        raw[where % len(raw)] ^= 1 << bit
    check_report(bytes(raw[: max(cut, 0)]))
    check_report(bytes(raw))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    value=json_values,
    wrap=st.sampled_from(["result", "error", "raw"]),
    usage=json_values,
)
def test_report_of_any_shape(value, wrap, usage):
    if wrap == "result":
        doc = {"result": value}
    elif wrap == "error":
        doc = {"error": value, "usage": usage}
    else:
        doc = value
    check_report(json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), depth=st.integers(0, 200_000))
def test_report_of_garbage_and_deep_nesting(data, depth):
    check_report(data)
    check_report(b"[" * depth + b"]" * depth)
    check_report(b'{"result":' + b"[" * depth)
    check_report(b'{"error": "' + "\x1b[2J\u202e\n".encode() * 5000 + b'", "usage": true}')


def test_oversized_report_kills_the_child(tmp_path, needs_root):
    with pytest.raises(PygrubError, match="report is over"):
        sandboxed(tmp_path, lambda: "x" * (sandbox.MAX_REPORT_BYTES + 1))
    assert wait_until_gone(UNNAMED) == []


def test_child_errors_come_back_as_one_line(tmp_path, needs_root):
    def fail() -> None:
        raise PygrubError("bad\nthing\x1b[2J")

    with pytest.raises(PygrubError) as caught:
        sandboxed(tmp_path, fail)
    assert str(caught.value) == "bad thing\\x1b[2J"

    def crash() -> None:
        os.kill(os.getpid(), signal.SIGSEGV)

    with pytest.raises(PygrubError, match="the sandboxed reader was killed by SIGSEGV"):
        sandboxed(tmp_path, crash)

    with pytest.raises(PygrubError, match="internal error: ZeroDivisionError"):
        sandboxed(tmp_path, lambda: 1 // 0)


# -- hostile images under --runas ------------------------------------------------------


#: Where the sample guest keeps its structures (debugfs "stats" and "blocks" on its
#: partition, which starts at 1 MiB with 1 KiB blocks): the MBR, the superblock and group
#: descriptors, the first inodes, the root directory, /boot, /boot/grub and grub.cfg.
SAMPLE_STRUCTURES = [
    (0, 512),
    ((1 << 20) + 1024, (1 << 20) + 3 * 1024),
    ((1 << 20) + 82 * 1024, (1 << 20) + 90 * 1024),
    ((1 << 20) + 51 * 1024, (1 << 20) + 52 * 1024),
    ((1 << 20) + 1474 * 1024, (1 << 20) + 1478 * 1024),
]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(
        st.tuples(st.sampled_from(SAMPLE_STRUCTURES), st.integers(0, 1 << 20), st.integers(0, 7)),
        min_size=1,
        max_size=8,
    ),
    cut=st.one_of(st.none(), st.integers(0, 8 << 20)),
)
def test_hostile_images_end_in_a_boot_or_one_error(
    tmp_path_factory, capfd, monkeypatch, needs_root, flips, cut
):
    monkeypatch.setenv("PYGRUB_MAX_RAM_USAGE_MB", "4096")
    monkeypatch.setenv("PYGRUB_TIMEOUT", "30")
    tmp = tmp_path_factory.mktemp("hostile")
    data = bytearray(SAMPLE.read_bytes())
    for (start, end), where, bit in flips:
        data[start + where % (end - start)] ^= 1 << bit
    image = tmp / "guest.img"
    image.write_bytes(bytes(data[:cut]) if cut is not None else bytes(data))
    image.chmod(0o644)
    out = tmp / "out"
    out.mkdir()
    output = tmp / "output"
    output.touch()
    code, _out, err = main_in_process(
        capfd, f"--runas={UNNAMED}", "-q", f"--output={output}", "--output-format=simple0",
        f"--output-directory={out}", image,
    )  # fmt: skip
    assert code in (0, 1), err
    if code == 1:
        assert len(err.splitlines()) == 1 and err.startswith("pygrub: error: ")
        assert os.listdir(out) == [] and output.read_bytes() == b""
        return
    found = items(output.read_bytes())
    named = {Path(found[k]).name for k in ("kernel", "ramdisk") if k in found}
    assert set(os.listdir(out)) == named


# -- walls proven against a captured reader -------------------------------------------
#
# tests/captured_reader.py puts attacker code where the reader runs, as a guest disk that
# found a bug in a parser would; each test runs the command as the toolstack does and
# checks the wall from both sides: what the attacker saw, and that the host saw nothing.

#: The sandbox as restricted mode asks for it, and as every other run as root has it.
MODES = {"runas": [f"--runas={UNNAMED}"], "default": []}
TESTS = Path(__file__).resolve().parent
#: The line of captured_reader.FORGED that does not start with its mark.
FORGED_LINE = "kernel /etc/shadow"


@dataclass
class Captured:
    proc: subprocess.CompletedProcess
    #: pygrub's, the sandboxed reader's parent.
    pid: int
    #: What the attacker reported from inside.
    seen: dict
    #: stderr without the attacker's lines.
    errors: list[str]
    out: Path
    output: bytes


def captured_run(
    tmp_path: Path,
    mode: str,
    name: str,
    params: dict | None = None,
    *flags: str,
    env: dict | None = None,
    to_stdout: bool = False,
) -> Captured:
    """``python -m pygrub`` on a guest with kernel and initrd, its reader replaced by the
    attack ``name``; the output in a file as libxl asks, or on stdout as XAPI reads it."""
    hook = tmp_path / "hook"
    hook.mkdir()
    install = f"import captured_reader\ncaptured_reader.install({name!r}, {params or {}!r})\n"
    (hook / "sitecustomize.py").write_text(install)
    image = readable(make_ext(tmp_path, guest_tree()))
    out = tmp_path / "out"
    out.mkdir()
    output = tmp_path / "output"
    output.touch()
    where = [] if to_stdout else [f"--output={output}"]
    environment = dict(os.environ, **(env or {}), PYTHONPATH=f"{hook}:{TESTS}")
    flags = flags or ("--output-format=simple0",)
    argv = [*MODES[mode], "-q", *where, f"--output-directory={out}", *flags, str(image)]
    with subprocess.Popen(
        [sys.executable, "-m", "pygrub", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    ) as popen:
        stdout, stderr = popen.communicate(timeout=120)
    proc = subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr)
    lines = stderr.decode(errors="replace").splitlines()
    reports = [json.loads(x[10:]) for x in lines if x.startswith("captured: {")]
    errors = [x for x in lines if not x.startswith("captured: ") and x != FORGED_LINE]
    output_bytes = stdout if to_stdout else output.read_bytes()
    return Captured(proc, popen.pid, reports[0] if reports else {}, errors, out, output_bytes)


def check_outcome(run: Captured, flags: tuple[str, ...] = ("--output-format=simple0",)) -> str:
    """Whatever the attacker did: the right boot with the parent's files and nothing else,
    or one clean error line and nothing left. "boot" or "error"."""
    proc = run.proc
    if proc.returncode != 0:
        assert proc.returncode == 1, proc.stderr
        assert len(run.errors) == 1 and run.errors[0].startswith("pygrub: error: RuntimeError: ")
        assert os.listdir(run.out) == [] and run.output == b""
        return "error"
    assert run.errors == [], proc.stderr
    if "--output-format=json" in flags:
        document = json.loads(run.output)
        found = {k: document[k] for k in ("kernel", "ramdisk", "args")}
    else:
        assert run.output.endswith(b"\0\0") and run.output.count(b"\0") == 4, run.output
        found = items(run.output)
        assert set(found) == {"kernel", "ramdisk", "args"}
    assert found["args"] == "root=/dev/xvda1 ro"
    named = {Path(found[k]) for k in ("kernel", "ramdisk")}
    assert {p.parent for p in named} == {run.out}
    assert sorted(os.listdir(run.out)) == sorted(p.name for p in named)
    assert Path(found["kernel"]).read_bytes() == KERNEL
    assert Path(found["ramdisk"]).read_bytes() == INITRD
    return "boot"


def sandbox_uid(mode: str, run: Captured) -> int:
    return UNNAMED if mode == "runas" else sandbox.SANDBOX_UID_BASE + run.pid


def check_ids(mode: str, run: Captured) -> None:
    uid = sandbox_uid(mode, run)
    assert run.seen["ids"] == [[uid] * 3, [uid] * 3, []]


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_read_host_files(tmp_path, needs_root, mode):
    # In /tmp, readable by everybody: only the sandbox's isolation keeps it from the reader.
    fd, secret = tempfile.mkstemp(prefix="pygrub-secret-", dir="/tmp")
    os.write(fd, b"secret")
    os.close(fd)
    os.chmod(secret, 0o644)
    try:
        setpriv = require_tool("setpriv")
        uid_flags = [f"--reuid={UNNAMED}", f"--regid={UNNAMED}", "--clear-groups"]
        assert run(setpriv, *uid_flags, "cat", secret) == b"secret"
        captured = captured_run(tmp_path, mode, "host_files", {"secret": secret})
    finally:
        os.unlink(secret)
    check_ids(mode, captured)
    assert captured.seen["passwd"] == captured.seen["secret"] == "ENOENT"
    assert captured.seen["image_by_host_path"] == captured.seen["proc_self"] == "ENOENT"
    # Landlock (5.13) forbids even listing the root; without it, only the image is there.
    assert captured.seen["list_root"] == ("EACCES" if sandbox.landlock_abi() else "ok")
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_write_the_output_directory(tmp_path, needs_root, mode):
    captured = captured_run(tmp_path, mode, "output_directory")
    check_ids(mode, captured)
    landlocked = "EACCES" if sandbox.landlock_abi() else None
    assert captured.seen["by_host_path"] in ("ENOENT", landlocked)
    for how in ("at_root", "mkdir", "link_kernel", "package"):
        assert captured.seen[how] in ("EROFS", "ENOENT", landlocked), how
    # pygrub's own modules are there to be imported, read-only.
    assert captured.seen["package_source"] == "ok"
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_has_no_tcp(tmp_path, needs_root, mode):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        captured = captured_run(tmp_path, mode, "tcp", {"port": listener.getsockname()[1]})
        assert error_of(listener.accept) == "EAGAIN"
        # The host itself reaches it: the wall is the namespace, not a closed port.
        socket.create_connection(listener.getsockname()).close()
        assert error_of(listener.accept) == "ok"
    check_ids(mode, captured)
    assert captured.seen["connect"] in ("ENETUNREACH", "EACCES")
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_has_no_udp(tmp_path, needs_root, mode):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        captured = captured_run(tmp_path, mode, "udp", {"port": receiver.getsockname()[1]})
        assert error_of(lambda: receiver.recv(100)) == "EAGAIN"
    check_ids(mode, captured)
    assert captured.seen["send"] == "ENETUNREACH"
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_reach_a_unix_socket(tmp_path, needs_root, mode):
    path = f"/tmp/pygrub-captured-{os.getpid()}.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        os.chmod(path, 0o777)  # any user may connect: only isolation stops the reader
        listener.listen()
        listener.setblocking(False)
        try:
            captured = captured_run(tmp_path, mode, "unix_socket", {"path": path})
            assert error_of(listener.accept) == "EAGAIN"
        finally:
            os.unlink(path)
    check_ids(mode, captured)
    assert captured.seen["connect"] in ("ENOENT", "EACCES")
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_reach_an_abstract_socket(tmp_path, needs_root, mode):
    name = f"pygrub-captured-{os.getpid()}"
    with (
        socket.socket(socket.AF_UNIX) as listener,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver,
    ):
        listener.bind(b"\0" + name.encode())
        listener.listen()
        listener.setblocking(False)
        receiver.bind(b"\0" + name.encode())
        receiver.setblocking(False)
        captured = captured_run(tmp_path, mode, "abstract_socket", {"name": name})
        assert error_of(listener.accept) == "EAGAIN"
        assert error_of(lambda: receiver.recv(100)) == "EAGAIN"
    check_ids(mode, captured)
    # The network namespace has its own abstract names; Landlock 6.12 scopes them too.
    assert captured.seen["connect"] in ("ECONNREFUSED", "EPERM")
    assert captured.seen["send"] in ("ECONNREFUSED", "EPERM")
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_signal_or_inspect_its_parent(tmp_path, needs_root, mode):
    # A process of --runas's user: kill(-1) reaches it unless Landlock (6.12) scopes signals.
    sleeper = subprocess.Popen(["sleep", "60"], user=UNNAMED, group=UNNAMED)
    try:
        captured = captured_run(tmp_path, mode, "parent")
        survived = sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    check_ids(mode, captured)
    assert captured.seen["parent"] == captured.pid
    for how in ("sigterm", "sigkill", "ptrace"):
        assert captured.seen[how] == "EPERM", how
    # kill(-1) says "ok" even when every process refused: what counts is who survived.
    assert survived or (mode == "runas" and sandbox.landlock_abi() < 6)
    assert captured.seen["environ"] == "ENOENT"
    assert captured.seen["mount_proc"] == "EPERM"
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_fork(tmp_path, needs_root, mode):
    captured = captured_run(tmp_path, mode, "fork")
    check_ids(mode, captured)
    assert captured.seen["fork"] == "EAGAIN"
    assert captured.seen["thread"] == "RuntimeError"  # "can't start new thread"
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_allocate_past_the_memory_limit(tmp_path, needs_root, mode):
    env = {"PYGRUB_MAX_RAM_USAGE_MB": "300"}
    captured = captured_run(tmp_path, mode, "memory", env=env)
    check_ids(mode, captured)
    assert captured.seen["limit"] == 300 << 20
    assert captured.seen["bytearray"] == "MemoryError"
    assert captured.seen["mmap"] == "ENOMEM"
    assert captured.seen["raise_limit"] in ("EPERM", "ValueError")
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_write_past_the_file_size_limit(tmp_path, needs_root, mode):
    captured = captured_run(tmp_path, mode, "file_size", env={"PYGRUB_MAX_FILE_SIZE_MB": "1"})
    check_ids(mode, captured)
    assert captured.seen["limit"] == 1 << 20
    assert captured.seen["at_limit"] == "ok"
    for how in ("past_limit", "truncate", "fallocate"):
        assert captured.seen[how] == "EFBIG", how
    assert captured.seen["raise_limit"] in ("EPERM", "ValueError")
    assert check_outcome(captured) == "boot"


@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_regain_root(tmp_path, needs_root, mode):
    captured = captured_run(tmp_path, mode, "setuid")
    check_ids(mode, captured)
    for how in ("setuid", "setresuid", "setgid", "setgroups", "chroot", "unshare_mounts"):
        assert captured.seen[how] == "EPERM", how
    assert check_outcome(captured) == "boot"


FORGERIES = {
    # attack: (output flags, to stdout, what the run must end in)
    "every_descriptor": (("--output-format=simple0",), True, "error"),
    "separator_in_args": (("--output-format=simple0",), False, "error"),
    "newline_in_args": (("--output-format=simple",), True, "error"),
    "quote_in_args": (("--output-format=sxp",), True, "sxp"),
    "json_naming_files": (("--output-format=json",), False, "boot"),
    "another_mode": (("--output-format=simple0",), False, "error"),
    "oversized": (("--output-format=simple0",), False, "error"),
    "no_report": (("--output-format=simple0",), False, "error"),
    "crash": (("--output-format=simple0",), False, "error"),
    "error_with_controls": (("--output-format=simple0",), False, "error"),
}


@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize("mode", MODES)
def test_captured_reader_cannot_forge_the_output(tmp_path, needs_root, mode, forgery):
    """Whatever the reader writes, and into whichever descriptor: the parent names only
    files it made, lets no separator into an item, and ends in a boot or one line."""
    flags, to_stdout, expected = FORGERIES[forgery]
    captured = captured_run(tmp_path, mode, forgery, None, *flags, to_stdout=to_stdout)
    if expected == "sxp":
        # Python's repr quotes the quotes: the command line stays one item, whatever it holds.
        assert captured.proc.returncode == 0 and captured.errors == [], captured.proc.stderr
        found = sxp_items(captured.output)
        assert found["args"] == captured_reader.QUOTED_ARGS
        assert [Path(found[k]).parent for k in ("kernel", "ramdisk")] == [captured.out] * 2
        assert Path(found["kernel"]).read_bytes() == KERNEL
        return
    assert b"/etc/shadow" not in captured.output
    assert check_outcome(captured, flags) == expected
    if forgery == "every_descriptor":
        # It did write: into stderr (its line came through), stdout and the report pipe.
        assert captured.seen["written"]["2"] == "ok"
    if expected == "error":
        assert not any(c in captured.errors[0] for c in "\0\x1b\r")


def sxp_items(output: bytes) -> dict[str, str]:
    text = output.decode()
    assert text.startswith("linux ")
    pairs = re.findall(r"\((kernel|ramdisk|args) ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\)", text)
    assert "linux " + "".join(f"({k} {v})" for k, v in pairs) == text
    return {k: ast.literal_eval(v) for k, v in pairs}


# -- the sandbox by default ------------------------------------------------------------


def test_default_run_reads_as_a_user_of_its_own(tmp_path, needs_root):
    """Two runs: two users, each pygrub's pid above the base, neither in passwd."""
    seen = []
    for attempt in range(2):
        (tmp_path / str(attempt)).mkdir()
        captured = captured_run(tmp_path / str(attempt), "default", "host_files")
        uid = sandbox.SANDBOX_UID_BASE + captured.pid
        assert captured.seen["ids"] == [[uid] * 3, [uid] * 3, []]
        with pytest.raises(KeyError):
            pwd.getpwuid(uid)
        assert check_outcome(captured) == "boot"
        seen.append(uid)
    assert seen[0] != seen[1]


def test_default_ids_named_in_passwd_are_refused(monkeypatch):
    monkeypatch.setattr(sandbox.pwd, "getpwuid", lambda uid: ("someone",))
    with pytest.raises(PygrubError, match=r"is 'someone' in passwd; give --runas=UID"):
        sandbox.default_ids()


def test_no_sandbox_and_runas_are_a_usage_error():
    with pytest.raises(UsageError, match="cannot go with --no-sandbox"):
        cli.parse_args([f"--runas={UNNAMED}", "-q", "--no-sandbox", str(SAMPLE)])


@pytest.mark.parametrize(
    "options, sandboxed",
    [
        ({"interactive": False}, True),
        ({"interactive": False, "list_entries": True}, True),
        ({"interactive": False, "not_really": True}, True),
        ({"interactive": False, "sandbox": False}, False),
        ({"interactive": False, "isconfig": True}, False),
        ({"interactive": True}, True),
        ({"interactive": True, "sandbox": False}, False),
    ],
)
def test_which_runs_are_sandboxed_by_default(options, sandboxed):
    assert Settings(str(SAMPLE), **options).sandboxed is sandboxed


def test_default_without_namespaces_names_the_way_out(tmp_path, needs_root):
    """Root without CAP_SYS_ADMIN (a locked-down container): one line naming the wall and
    --no-sandbox; with it, the run boots."""
    image = readable(make_ext(tmp_path, guest_tree()))
    setpriv = require_tool("setpriv")
    outcomes = []
    for extra in ([], ["--no-sandbox"]):
        out = tmp_path / f"out{len(outcomes)}"
        out.mkdir()
        proc = subprocess.run(
            [
                setpriv, "--bounding-set=-sys_admin", sys.executable, "-m", "pygrub",
                "-q", *extra, "--output-format=simple0", f"--output-directory={out}", image,
            ],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )  # fmt: skip
        outcomes.append((proc, out))
    (refused, out), (unsandboxed, out_plain) = outcomes
    assert refused.returncode == 1 and os.listdir(out) == [] and refused.stdout == b""
    assert refused.stderr.decode() == (
        "pygrub: error: RuntimeError: cannot sandbox the reader: unshare: Operation not "
        "permitted (it needs root with CAP_SYS_ADMIN where namespaces are allowed); "
        f"{sandbox.NO_SANDBOX_HINT}\n"
    )
    assert unsandboxed.returncode == 0, unsandboxed.stderr
    assert Path(items(unsandboxed.stdout)["kernel"]).read_bytes() == KERNEL


def test_qcow2_backing_file_needs_no_sandbox(tmp_path, needs_root):
    raw = make_ext(tmp_path, guest_tree())
    image = tmp_path / "overlay.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", raw.name, "-F", "raw", image)
    env = dict(os.environ, PYGRUB_ALLOW_BACKING="1")
    out = tmp_path / "out"
    out.mkdir()
    flags = ["-q", "--output-format=simple0", f"--output-directory={out}", image]
    refused = pygrub(*flags, env=env)
    assert refused.returncode == 1 and os.listdir(out) == []
    assert refused.stderr.decode() == (
        f"pygrub: error: RuntimeError: qcow2: {image} has a backing file "
        f"'{raw.name}': {sandbox.BACKING_REFUSAL}\n"
    )
    unsandboxed = pygrub("--no-sandbox", *flags, env=env)
    assert unsandboxed.returncode == 0, unsandboxed.stderr
    assert Path(items(unsandboxed.stdout)["ramdisk"]).read_bytes() == INITRD


def as_nobody(code: str, *argv: str) -> subprocess.CompletedProcess:
    """``python -c code`` as nobody, with no groups: a caller that is not root."""
    setpriv = require_tool("setpriv")
    return subprocess.run(
        [
            setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            sys.executable, "-c", code, *argv,
        ],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(TESTS)),
    )  # fmt: skip


NOT_ROOT_RUN = """
import json, os, sys
import captured_reader
from pygrub import cli, sandbox
captured_reader.install("host_files", {"secret": "/etc/passwd"})
refusal = sandbox.user_namespace_refusal()
if sys.argv[1] == "refused":
    sandbox.user_namespace_refusal = lambda: "no user namespace to build the sandbox in (test)"
sys.stderr.flush()
sys.exit(cli.main(["-q", "--output-format=simple0", "--output-directory=" + sys.argv[2], sys.argv[3]]))
"""


@pytest.mark.parametrize("kernel", ["allows", "refused"])
def test_not_root_reads_in_a_user_namespace_else_warns(kernel, needs_root):
    """Not root: the reader is sandboxed in a user namespace of its own, as the caller;
    where the kernel gives none, one warning and the caller's own rights."""
    if kernel == "allows" and sandbox.user_namespace_refusal() is not None:
        pytest.fail("this kernel gives unprivileged processes no user namespace")
    work = Path(tempfile.mkdtemp(prefix="pygrub-not-root-", dir="/tmp"))
    try:
        work.chmod(0o755)
        image = readable(make_ext(work, guest_tree()))
        out = work / "out"
        out.mkdir()
        os.chown(out, NOBODY, -1)
        proc = as_nobody(NOT_ROOT_RUN, kernel, str(out), str(image))
        found = items(proc.stdout)
        assert Path(found["kernel"]).read_bytes() == KERNEL
        assert Path(found["ramdisk"]).read_bytes() == INITRD
        assert sorted(os.listdir(out)) == sorted(Path(found[k]).name for k in found if k != "args")
    finally:
        shutil.rmtree(work)
    lines = proc.stderr.decode().splitlines()
    reports = [json.loads(x[10:]) for x in lines if x.startswith("captured: {")]
    others = [x for x in lines if not x.startswith("captured: ")]
    assert proc.returncode == 0, proc.stderr
    nogroup = pwd.getpwuid(NOBODY).pw_gid
    if kernel == "allows":
        assert others == []
        # The caller's ids, and a view of nothing but the image.
        assert reports[0]["ids"] == [[NOBODY] * 3, [nogroup] * 3, []]
        assert reports[0]["passwd"] == reports[0]["secret"] == "ENOENT"
        assert reports[0]["image_by_host_path"] == "ENOENT"
    else:
        assert others == [
            "pygrub: WARNING: no sandbox: no user namespace to build the sandbox in (test); "
            "reading the disk with your own rights"
        ]
        assert reports == []  # no sandbox, so no sandboxed reader to stand in for
