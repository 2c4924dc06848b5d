"""--runas: read the guest's disk in a forked child that can do nothing else.

Since XSA-443 Xen supports pygrub only run this way (libxl's restricted mode:
``LIBXL_BOOTLOADER_RESTRICT`` in xl's environment, and from Xen 4.20 on also xl.cfg's
``bootloader_restrict=1``). The parent, still root, makes every file the run may write: the
output directory, ``boot_kernel.*`` and ``boot_ramdisk.*``. The child then unshares its
mount, IPC and network namespaces, turns to an empty read-only tmpfs root that holds
only the image (under its own file name), lowers its resource limits, becomes the
target user for good, and reads the guest with the descriptors it was handed. The
parent waits, relays the child's one-line error or writes the output, and removes
whatever is not used. The tmpfs is mounted over the output directory, in the child's
namespace only: there is no directory to make, unmount or remove on the host.

Where this does better than Xen's pygrub:

- The parent writes the output file, from a report that says only the command line and
  whether a ramdisk was written. A subverted child of Xen's writes the output itself, so
  it can name any dom0 file as the kernel: libxl would load it into the guest and unlink it.
- mount(2), pivot_root(2) and prctl(2) through ctypes, not /bin/mount; the old root is
  detached, not merely chrooted away from; supplementary groups are emptied, not set to
  the uid; uid 0 and (uid_t)-1 ("unchanged" to setresuid) are refused; the ids are checked.
- No controlling terminal (TIOCSTI), not dumpable (no ptrace by the same user), killed
  with its parent, and Landlock where the kernel has it.
- PYGRUB_MAX_FILE_SIZE_MB is parsed as a number; Xen 4.17 shifts the string and fails.
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import functools
import importlib
import json
import os
import pkgutil
import pwd
import resource
import signal
import stat
import struct
import sys
from collections.abc import Callable, Iterator

from ._typing import TYPE_CHECKING
from .errors import Interrupted, LimitError, NotFoundError, PygrubError, UsageError
from .limits import megabytes_from_env
from .log import get_logger
from .record import asdict, fields, record, replace

if TYPE_CHECKING:
    from typing import NoReturn

    from .cli import Options

log = get_logger(__name__)

#: The --runas defaults in MiB: Xen's LIMIT_FSIZE, and its LIMIT_AS (twice that).
RUNAS_FILE_MB = 128
RUNAS_RAM_MB = 256
#: Bytes of report the parent reads: far more than any command line a 1 MiB config makes.
MAX_REPORT_BYTES = 4 << 20
#: Characters of the child's error message the parent repeats.
MAX_ERROR_CHARS = 4096
#: The largest user or group id; (uid_t)-1 means "leave unchanged" to setresuid.
MAX_ID = 0xFFFFFFFE
#: The largest value setrlimit takes from Python (a signed 64-bit number).
MAX_RLIMIT = (1 << 63) - 1

# <linux/sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
# <linux/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

#: What the tmpfs root may hold: one placeholder file for the image's bind mount.
ROOT_TMPFS_OPTIONS = b"mode=0755,size=64k,nr_inodes=8"

#: Modules the readers import inside functions, and the decompressors when installed.
LAZY_DEPENDENCIES = (
    "copy",
    "getopt",
    "hashlib",
    "importlib.resources",
    "io",
    "logging",
    "lzma",
    "mmap",
    "shlex",
    "unicodedata",
    "zlib",
    "lz4.block",
    "lz4.frame",
    "zstandard",
    "compression.zstd",
)
#: Codecs the readers decode with; a codec's module is imported at its first use.
CODECS = ("ascii", "cp437", "latin-1", "utf-8", "utf-16-be", "utf-16-le")
#: Modules a non-interactive run never needs (the menu) or must not import (``__main__``).
NOT_PRELOADED = ("pygrub.__main__", "pygrub.menu")


@record(frozen=True)
class Sandbox:
    """What the child is confined to."""

    uid: int
    gid: int
    #: The host file or block device bind-mounted read-only at ``inside``.
    image: str
    #: An existing host directory the empty root is mounted over, in the child's namespace.
    mountpoint: str
    #: RLIMIT_FSIZE and RLIMIT_AS, in bytes.
    file_size: int
    address_space: int
    #: Descriptors the child keeps besides stdin (then /dev/null), stdout and stderr.
    keep: tuple[int, ...] = ()
    #: Tests turn this off to look at the mount namespace under it.
    landlock: bool = True
    #: The child keeps stdout only where it prints the run's product itself (-l,
    #: --isconfig); otherwise it gets /dev/null there: stdout may be the output (XAPI
    #: reads it), which the parent alone writes.
    stdout: bool = True

    @property
    def inside(self) -> str:
        """The image's path in the sandbox: its own file name at the root.

        The name is kept because --isconfig tells config formats apart by it, and an
        error naming "/guest.img" is clearer than one naming a fixed "/disk".
        """
        name = os.path.basename(self.image)
        return "/" + (name if name not in ("", ".", "..") else "disk")


@record(frozen=True)
class Report:
    """The child's last words: JSON ``{"result": ...}`` or ``{"error": "...", "usage": bool}``."""

    result: object = None
    error: str | None = None
    usage: bool = False


@record(frozen=True)
class Outcome:
    """All the parent needs from a --runas run to write the output."""

    #: -l or --isconfig: the child printed everything itself.
    printed: bool = False
    #: The child wrote the ramdisk file.
    ramdisk: bool = False
    args: str = ""
    #: --output-format=json: the boot object; its files and args are the parent's to fill.
    json: dict | None = None

    @classmethod
    def from_result(cls, value: object) -> Outcome:
        names = {f.name for f in fields(cls)}
        if not isinstance(value, dict) or set(value) != names:
            raise _malformed("the result has other fields than printed, ramdisk, args, json")
        if not (
            isinstance(value["printed"], bool)
            and isinstance(value["ramdisk"], bool)
            and isinstance(value["args"], str)
            and (value["json"] is None or isinstance(value["json"], dict))
        ):
            raise _malformed("a result field has the wrong type")
        return cls(value["printed"], value["ramdisk"], value["args"], value["json"])


# -- the --runas command ----------------------------------------------------------------


def run_deprivileged(o: Options) -> int:
    """The whole command under --runas: prepare as root, read in the sandbox, report."""
    from . import cli
    from .extract import make_temp_file
    from .output import JSON_VERSION, render, render_json, with_files

    assert o.runas is not None
    uid, gid = user_ids(o.runas)
    require_root()
    file_size = megabytes_from_env("PYGRUB_MAX_FILE_SIZE_MB", RUNAS_FILE_MB)
    address_space = megabytes_from_env("PYGRUB_MAX_RAM_USAGE_MB", RUNAS_RAM_MB)
    disk_fd = open_disk(o.image)
    files: dict[str, tuple[int, str]] = {}
    used: set[str] = set()
    out_fd = -1
    try:
        # As Xen: the directory is made in every mode; here it is also the root's mount point.
        cli._make_output_directory(o.output_directory)
        out_fd = cli._open_output(o)
        if not (o.not_really or o.list_entries or o.isconfig):
            for prefix in ("boot_kernel.", "boot_ramdisk."):
                files[prefix] = make_temp_file(prefix, o.output_directory)
        printed = o.list_entries or o.isconfig
        box = Sandbox(
            uid,
            gid,
            o.image,
            o.output_directory,
            file_size,
            address_space,
            keep=(disk_fd, *(fd for fd, _path in files.values())),
            stdout=printed,
        )
        result = run_sandboxed(box, lambda: read_guest(o, box.inside, disk_fd, files, file_size))
        outcome = Outcome.from_result(result)
        wants_json = not printed and o.output_format == "json"
        if outcome.printed != printed or (outcome.json is not None) != wants_json:
            raise _malformed("the result is for another mode than this run's")
        if outcome.printed:
            return 0
        _check_sizes(files, file_size)
        kernel = files["boot_kernel."][1] if files else None
        ramdisk = files["boot_ramdisk."][1] if files and outcome.ramdisk else None
        if outcome.json is not None:
            # The child's object but for the files and args: those are ours, as in
            # the other formats, whatever a subverted child says.
            if outcome.json.get("version") != JSON_VERSION or outcome.json.get("type") != "boot":
                raise _malformed("the JSON result is not a boot object of this version")
            data = render_json(with_files(outcome.json, kernel, ramdisk, outcome.args))
        else:
            data = render(o.output_format, kernel, ramdisk, outcome.args or None)
        sys.stdout.flush()
        cli._write_all(out_fd, data, o)
        used = {p for p in (kernel, ramdisk) if p}
        return 0
    finally:
        for fd, path in files.values():
            os.close(fd)
            if path not in used:
                _unlink(path)
        if out_fd not in (-1, sys.stdout.fileno()):
            os.close(out_fd)
        os.close(disk_fd)


def _check_sizes(files: dict[str, tuple[int, str]], limit: int) -> None:
    """RLIMIT_FSIZE held the child's writes to ``limit``; the parent hands the files on
    only after seeing so itself."""
    for fd, path in files.values():
        size = os.fstat(fd).st_size
        if size > limit:
            raise LimitError(f"the sandboxed reader wrote {size} bytes to {path}, over {limit}")


def read_guest(
    o: Options, image: str, disk_fd: int, files: dict[str, tuple[int, str]], limit: int
) -> dict:
    """The run inside the sandbox: ``o`` but for the image's path there, read through
    ``disk_fd``; ``files`` pre-opened."""
    from . import cli
    from .api import Image
    from .disk.source import inherit
    from .extract import Extraction
    from .output import boot_json

    inherit(image, disk_fd)

    if o.list_entries or o.isconfig:
        cli.run(replace(o, image=image, runas=None))
        return asdict(Outcome(printed=True))
    with Image(image, offset=o.offset, image_format=o.image_format) as guest:
        choice = guest._choose(
            o.entry, o.args, o.kernel, o.ramdisk, None, o.default_args, o.extra_args
        )
        if o.explain:
            cli._print_explanation(choice.explanation, sys.stderr)
        plan = choice._plan
        document = boot_json(choice, None, None) if o.output_format == "json" else None
        if o.not_really:
            cli._print_would_extract(plan)
            return asdict(Outcome(args=plan.args, json=document))
        with Extraction(o.output_directory, preopened=files) as extraction:
            extraction.write("boot_kernel.", [plan.kernel], limit)
            if plan.initrds:
                extraction.write("boot_ramdisk.", plan.initrds, limit, pad=len(plan.initrds) > 1)
        return asdict(Outcome(ramdisk=bool(plan.initrds), args=plan.args, json=document))


def user_ids(uid: int) -> tuple[int, int]:
    """(uid, gid) to run as: the user's primary group from passwd, else the uid."""
    if uid == 0:
        raise UsageError("--runas=0 is root: give the unprivileged user id to read the image as")
    if not 0 < uid <= MAX_ID:
        raise UsageError(f"--runas={uid} is not a user id (1 to {MAX_ID})")
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        gid = uid
    if not 0 < gid <= MAX_ID:
        raise UsageError(f"--runas={uid}: the user's primary group {gid} is root or invalid")
    return uid, gid


def require_root() -> None:
    if os.geteuid() != 0:
        raise PygrubError(
            "--runas needs pygrub to start as root: it sets up the sandbox, then drops to the user"
        )


def open_disk(path: str) -> int:
    """The disk, opened read-only as root for the child to read through; what cannot be
    bind-mounted as the disk is refused with FileSource's messages.

    The child could not open it itself where the disk is not readable by its user: XAPI's
    disks are block devices of group ``disk``, mode 0660, and the child has no groups.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise NotFoundError(f"cannot open disk image {path}: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        os.close(fd)
        raise PygrubError(f"disk image {path} is neither a regular file nor a block device")
    os.set_blocking(fd, True)  # O_NONBLOCK only kept a FIFO from hanging the open
    return fd


# -- fork, wait, relay --------------------------------------------------------------------


def run_sandboxed(box: Sandbox, body: Callable[[], object]) -> object:
    """``body()``'s JSON value, computed in a sandboxed child; its error raised here.

    On any exception while waiting (a signal, the time budget) the child is killed first.
    """
    preload()
    read_fd, write_fd = os.pipe()
    _flush_std()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        _child(box, body, read_fd, write_fd, parent)
    os.close(write_fd)
    try:
        raw = _read_report(read_fd)
        status = _wait(pid)
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(read_fd)
    return _result(parse_report(raw), status)


def _read_report(fd: int) -> bytes:
    parts = []
    total = 0
    while chunk := os.read(fd, 1 << 16):
        total += len(chunk)
        if total > MAX_REPORT_BYTES:
            raise LimitError(f"the sandboxed reader's report is over {MAX_REPORT_BYTES} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _wait(pid: int) -> int:
    return os.waitpid(pid, 0)[1]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            return
        except (Exception, KeyboardInterrupt):
            # Another signal while reaping (our handlers raise): SIGKILL is already sent.
            continue


def _result(report: Report | None, status: int) -> object:
    if os.WIFSIGNALED(status):
        name = _signal_name(os.WTERMSIG(status))
        raise PygrubError(f"the sandboxed reader was killed by {name}")
    code = os.WEXITSTATUS(status)
    if report is not None and report.error is not None and code != 0:
        raise (UsageError if report.usage else PygrubError)(report.error)
    if report is None or report.error is not None or code != 0:
        raise PygrubError(f"the sandboxed reader exited with status {code} and no report")
    return report.result


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def parse_report(raw: bytes) -> Report | None:
    """The child's report, None when it sent none; PygrubError when it is malformed."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise _malformed("not JSON") from None
    if not isinstance(value, dict):
        raise _malformed("not a JSON object")
    if set(value) == {"result"}:
        return Report(result=value["result"])
    if set(value) == {"error", "usage"}:
        error, usage = value["error"], value["usage"]
        if isinstance(error, str) and isinstance(usage, bool):
            return Report(error=_printable(error), usage=usage)
    raise _malformed("neither a result nor an error")


def _malformed(why: str) -> PygrubError:
    return PygrubError(f"the sandboxed reader's report is malformed: {why}")


def _printable(text: str) -> str:
    """One bounded line without control characters: the child's text reaches a terminal."""
    text = " ".join(text.split())[:MAX_ERROR_CHARS]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _flush_std() -> None:
    # Buffered output would otherwise be written twice, by parent and child.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


# -- preloading --------------------------------------------------------------------------


def preload() -> None:
    """Import now whatever a run may import later: inside the sandbox nothing can be."""
    import pygrub

    for name in _modules_under(pygrub.__path__, "pygrub."):
        _try_import(name)
    for name in LAZY_DEPENDENCIES:
        _try_import(name)
    for name in CODECS:
        codecs.lookup(name)
    _libc()


def _modules_under(path: list[str], prefix: str) -> Iterator[str]:
    for info in pkgutil.iter_modules(path, prefix):
        if info.name in NOT_PRELOADED:
            continue
        yield info.name
        if info.ispkg:
            module = _try_import(info.name)
            if module is not None:
                yield from _modules_under(list(module.__path__), info.name + ".")


def _try_import(name: str) -> object:
    try:
        return importlib.import_module(name)
    except Exception as e:
        # An optional decompressor (or a broken reader): a run that needs it fails on
        # it as it would without --runas; one that does not need it goes on.
        log.debug("not preloaded: %s: %s", name, e)
        return None


# -- the child ---------------------------------------------------------------------------


def _child(
    box: Sandbox, body: Callable[[], object], read_fd: int, report_fd: int, parent: int
) -> NoReturn:
    code = 1
    try:
        os.close(read_fd)
        code, report = _child_run(box, body, report_fd, parent)
        data = json.dumps(report).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(report_fd, view) :]
        _flush_std()
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _child_run(
    box: Sandbox, body: Callable[[], object], report_fd: int, parent: int
) -> tuple[int, dict]:
    try:
        enter(box, report_fd, parent)
        return 0, {"result": body()}
    except UsageError as e:
        return 2, {"error": str(e), "usage": True}
    except (PygrubError, Interrupted) as e:
        log.debug("in the sandbox", exc_info=True)
        return 1, {"error": str(e), "usage": False}
    except MemoryError:
        mib = box.address_space >> 20
        return 1, {
            "error": f"out of memory: over the sandbox's {mib} MiB (PYGRUB_MAX_RAM_USAGE_MB)",
            "usage": False,
        }
    except BaseException as e:
        log.debug("in the sandbox", exc_info=True)
        return 1, {"error": f"internal error: {type(e).__name__}: {e}", "usage": False}


def enter(box: Sandbox, report_fd: int, parent: int) -> None:
    """Confine this (forked) process; afterwards it sees only the image and its descriptors."""
    os.setsid()  # no controlling terminal: TIOCSTI cannot type into the caller's shell
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past RLIMIT_FSIZE: EFBIG, not death
    _stdin_from_dev_null()
    if not box.stdout:
        _stdout_to_dev_null()
    _close_all_but({0, 1, 2, report_fd, *box.keep, *_std_fds()})
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET), "unshare")
    _make_root(libc, box)
    _pivot_into(libc, box.mountpoint)
    _lower_limits(box)
    _drop_privileges(box.uid, box.gid)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    # After the uid change, which resets both: no ptrace by the same user, die with the parent.
    _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)  # the parent died before PDEATHSIG was set: nobody would read us
    if box.landlock:
        restrict_to(libc, box.inside)


@functools.cache
def _libc() -> ctypes.CDLL:
    # dlopen(NULL): the C library Python is linked with; find_library would run ldconfig.
    libc = ctypes.CDLL(None, use_errno=True)
    text, flags = ctypes.c_char_p, ctypes.c_ulong
    libc.mount.argtypes = [text, text, text, flags, text]
    libc.umount2.argtypes = [text, ctypes.c_int]
    libc.pivot_root.argtypes = [text, text]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.prctl.argtypes = [ctypes.c_int, flags, flags, flags, flags]
    libc.syscall.restype = ctypes.c_long
    return libc


def _check(result: int, what: str) -> None:
    if result < 0:
        raise _setup_error(what, ctypes.get_errno())


def _setup_error(what: str, number: int) -> PygrubError:
    hint = ""
    if number == errno.EPERM:
        hint = " (it needs root with CAP_SYS_ADMIN where namespaces are allowed)"
    return PygrubError(f"cannot sandbox the reader: {what}: {os.strerror(number)}{hint}")


def _stdin_from_dev_null() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    if fd != 0:
        os.dup2(fd, 0)
        os.close(fd)


def _stdout_to_dev_null() -> None:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.close(fd)
    out = _fileno(sys.stdout)
    if out not in (None, 1, 2):
        os.dup2(1, out)  # a test's capture stands for stdout: it is the output there


def _fileno(stream: object) -> int | None:
    try:
        return stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def _std_fds() -> set[int]:
    """Where sys.stdout and sys.stderr write, when that is not 1 and 2 (a test's capture)."""
    return {fd for fd in (_fileno(sys.stdout), _fileno(sys.stderr)) if fd is not None}


def _close_all_but(keep: set[int]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    finite = [v for v in (soft, hard) if v != resource.RLIM_INFINITY]
    top = max(finite, default=1 << 20)
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(top, low))


def _make_root(libc: ctypes.CDLL, box: Sandbox) -> None:
    """An empty read-only tmpfs over the mount point, holding the image bound read-only."""
    mountpoint = os.fsencode(box.mountpoint)
    # systemd shares / : without this, the mounts below would appear in the host's namespace.
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")
    before = os.stat(mountpoint).st_dev
    _check(
        libc.mount(
            b"pygrub", mountpoint, b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, ROOT_TMPFS_OPTIONS
        ),
        f"mounting a tmpfs on {box.mountpoint}",
    )
    if os.stat(mountpoint).st_dev == before:
        raise PygrubError(
            f"cannot sandbox the reader: a tmpfs mounted on {box.mountpoint} does not show there"
        )
    disk = os.path.join(mountpoint, os.fsencode(box.inside.lstrip("/")))
    os.close(os.open(disk, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    image = os.fsencode(box.image)
    flags = MS_RDONLY | MS_NOSUID | MS_NOEXEC
    if stat.S_ISREG(os.stat(image).st_mode):
        # Not for a block device: nodev would forbid opening the very node we must read.
        flags |= MS_NODEV
    _check(libc.mount(image, disk, None, MS_BIND, None), f"binding {box.image}")
    _check(libc.mount(None, disk, None, MS_REMOUNT | MS_BIND | flags, None), "remounting the disk")
    _check(
        libc.mount(
            None, mountpoint, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None
        ),
        "remounting the root read-only",
    )


def _pivot_into(libc: ctypes.CDLL, mountpoint: str) -> None:
    os.chdir(mountpoint)
    if libc.pivot_root(b".", b".") == 0:
        # The old root is now stacked on the new one: detach it, and the host is gone.
        _check(libc.umount2(b".", MNT_DETACH), "detaching the old root")
    else:
        number = ctypes.get_errno()
        if number != errno.EINVAL:
            raise _setup_error("pivot_root", number)
        # The host root cannot be pivoted away (an initramfs): chroot, as Xen does. The
        # user drops CAP_SYS_CHROOT below, so it cannot climb out.
        os.chroot(".")
    os.chdir("/")


def _lower_limits(box: Sandbox) -> None:
    for which in (
        resource.RLIMIT_NPROC,
        resource.RLIMIT_CORE,
        resource.RLIMIT_MEMLOCK,
        resource.RLIMIT_MSGQUEUE,
    ):
        _lower(which, 0)
    _lower(resource.RLIMIT_FSIZE, box.file_size)
    _lower(resource.RLIMIT_AS, box.address_space)


def _lower(which: int, value: int) -> None:
    """Set both limits to ``value``, never above the hard limit the caller had."""
    hard = resource.getrlimit(which)[1]
    value = min(value, MAX_RLIMIT)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise PygrubError(f"cannot sandbox the reader: the ids did not all change to {uid}:{gid}")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise PygrubError("cannot sandbox the reader: root could be regained after the uid change")


# -- Landlock (Documentation/userspace-api/landlock.rst) -----------------------------------

#: The syscall numbers are the same on every architecture Xen runs on.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
#: struct landlock_ruleset_attr: handled_access_fs, handled_access_net (ABI 4), scoped (ABI 6)
RULESET_ATTR = struct.Struct("=QQQ")
#: struct landlock_path_beneath_attr, packed: allowed_access, parent_fd
PATH_BENEATH_ATTR = struct.Struct("=Qi")
ACCESS_FS_READ_FILE = 1 << 2
#: ABI 1's thirteen rights (execute ... make_sym), then refer (2), truncate (3), ioctl_dev (5).
ACCESS_FS_ABI1 = (1 << 13) - 1
ACCESS_FS_REFER = 1 << 13
ACCESS_FS_TRUNCATE = 1 << 14
ACCESS_FS_IOCTL_DEV = 1 << 15
#: ABI 4: bind_tcp, connect_tcp. ABI 6: scope abstract unix sockets and signals.
ACCESS_NET_TCP = 0b11
SCOPE_UNIX_AND_SIGNAL = 0b11


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when it has none (too old, or disabled)."""
    libc = _libc()
    version = libc.syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        ctypes.c_long(0),
        ctypes.c_long(0),
        ctypes.c_long(LANDLOCK_CREATE_RULESET_VERSION),
    )
    if version < 0:
        number = ctypes.get_errno()
        if number in (errno.ENOSYS, errno.EOPNOTSUPP):
            return 0
        raise _setup_error("landlock_create_ruleset", number)
    return int(version)


def restrict_to(libc: ctypes.CDLL, readable: str) -> bool:
    """Forbid every filesystem access but reading ``readable``, and TCP and signals out as
    far as the kernel's ABI knows them; False when the kernel has no Landlock."""
    abi = landlock_abi()
    if abi == 0:
        log.debug("no Landlock in this kernel: the sandbox goes without it")
        return False
    fs = ACCESS_FS_ABI1
    fs |= ACCESS_FS_REFER if abi >= 2 else 0
    fs |= ACCESS_FS_TRUNCATE if abi >= 3 else 0
    fs |= ACCESS_FS_IOCTL_DEV if abi >= 5 else 0
    net = ACCESS_NET_TCP if abi >= 4 else 0
    scoped = SCOPE_UNIX_AND_SIGNAL if abi >= 6 else 0
    # An older kernel refuses fields it does not know unless they are left out.
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = ctypes.create_string_buffer(RULESET_ATTR.pack(fs, net, scoped))
    ruleset = libc.syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        ctypes.c_long(ctypes.addressof(attr)),
        ctypes.c_long(size),
        ctypes.c_long(0),
    )
    _check(ruleset, "landlock_create_ruleset")
    try:
        target = os.open(readable, os.O_PATH | os.O_CLOEXEC)
        try:
            rule = ctypes.create_string_buffer(PATH_BENEATH_ATTR.pack(ACCESS_FS_READ_FILE, target))
            _check(
                libc.syscall(
                    ctypes.c_long(SYS_LANDLOCK_ADD_RULE),
                    ctypes.c_long(ruleset),
                    ctypes.c_long(LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.c_long(ctypes.addressof(rule)),
                    ctypes.c_long(0),
                ),
                "landlock_add_rule",
            )
        finally:
            os.close(target)
        _check(
            libc.syscall(
                ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_long(ruleset), ctypes.c_long(0)
            ),
            "landlock_restrict_self",
        )
    finally:
        os.close(ruleset)
    return True
