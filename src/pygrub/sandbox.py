"""The sandbox: read the guest's disk in a forked child that can do nothing else.

Since XSA-443 Xen supports pygrub only run this way (libxl's restricted mode:
``LIBXL_BOOTLOADER_RESTRICT`` in xl's environment, and from Xen 4.20 on also xl.cfg's
``bootloader_restrict=1``), which libxl adds ``--runas`` for. Here every run that reads
a disk is sandboxed, the menu's included, ``--runas`` or not. What the run does on
either side of the walls is run.py's (``run_across_sandbox``, ``read_guest``); this
module builds the walls, forks, and carries the child's report.

The parent, still root, makes every file the run may write: the output directory,
``boot_kernel.*`` and ``boot_ramdisk.*``. The child then unshares its mount, IPC and
network namespaces, turns to an empty read-only tmpfs root that holds only the image
(under its own file name) and pygrub's own modules, lowers its resource limits, becomes
the target user for good, and reads the guest with the descriptors it was handed. The
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
- The menu works: the child runs it and evaluates the edits, the parent draws the screens
  it describes once checked, and the child holds no terminal (menu.remote, MenuWiring).
  Xen's pygrub refuses --runas without -q or --entry.
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import functools
import grp
import importlib
import json
import os
import pwd
import resource
import signal
import stat
import struct
import sys
from collections.abc import Callable

from . import clock
from ._typing import TYPE_CHECKING
from .disk.base import inherit, refuse_backing_files
from .errors import LimitError, NotFoundError, PygrubError, UsageError, status_and_message
from .log import debugging, get_logger, loaded
from .record import fields, record
from .settings import MAX_USER_ID

if TYPE_CHECKING:
    from typing import NoReturn

    from .boot import Chooser
    from .config.model import BootMenu
    from .menu.app import WhyNot
    from .select import Chosen

log = get_logger(__name__)

#: Bytes of report the parent reads: far more than any command line a 1 MiB config makes.
MAX_REPORT_BYTES = 4 << 20
#: Characters of the child's error message the parent repeats.
MAX_ERROR_CHARS = 4096
#: Bytes of what an interactive run's child printed that the parent repeats, per stream.
MAX_RELAYED_BYTES = 1 << 20
#: The largest value setrlimit takes from Python (a signed 64-bit number).
MAX_RLIMIT = (1 << 63) - 1
#: The default sandbox's ids are this plus pygrub's pid (below 2^22, PID_MAX_LIMIT):
#: 0x70000000-0x703FFFFF, in the range systemd's UIDS-GIDS leaves unassigned.
SANDBOX_UID_BASE = 0x70000000
#: Where the empty root is mounted (in the child's namespace only) by a default run that
#: extracts nothing and so has no output directory: one every Linux host has.
EMPTY_MOUNTPOINT = "/proc"
#: How an error that a wall could not be raised starts.
SETUP_FAILED = "cannot sandbox the reader: "
NO_SANDBOX_HINT = (
    "--no-sandbox reads the disk without the sandbox, as Xen's pygrub does (unsafe for "
    "untrusted guests)"
)
#: The qcow2 reader's answer to a backing file in the sandbox, which holds the image alone.
BACKING_REFUSAL = (
    "the sandboxed reader sees only the image; --no-sandbox (without --runas) reads "
    "backing files, unsafe for untrusted guests"
)

# <linux/sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
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

#: What the readers import besides pygrub's own modules and TOP_LEVEL_IMPORTS: inside functions (a
#: decompressor, a hash, when installed), or at the top of a reader a plain run may not
#: reach. A sandboxed run that needs one asks the parent to import it, and runs again.
IMPORTABLE_ON_REQUEST = frozenset(
    {
        "contextlib",
        "copy",
        "fnmatch",
        "getopt",
        "hashlib",
        "io",
        "logging",
        "lzma",
        "mmap",
        "shlex",
        "unicodedata",
        "zlib",
        "lz4",
        "lz4.block",
        "lz4.frame",
        "zstandard",
        "compression",
        "compression.zstd",
    }
)
#: Codecs the readers decode with whose module is imported at its first use. Not ascii,
#: latin-1 and utf-8: bytes.decode and str.encode do those in C, without the registry.
CODECS = ("cp437", "utf-16-be", "utf-16-le")
#: pygrub's package directory in the sandbox, bound read-only (no image is named so: see
#: Sandbox.inside).
PACKAGE_INSIDE = "/.pygrub"
#: What the readers import at their top, imported before the fork (a plain
#: run has most of them already; tests/test_sandbox.py keeps the list whole), and mmap,
#: which every extraction imports.
TOP_LEVEL_IMPORTS = (
    "abc",
    "bisect",
    "collections",
    "collections.abc",
    "contextlib",
    "enum",
    "errno",
    "fnmatch",
    "functools",
    "importlib",
    "itertools",
    "mmap",
    "os",
    "posixpath",
    "re",
    "signal",
    "stat",
    "struct",
    "sys",
    "types",
    "zlib",
)
#: Imported before the fork where this Python has them: zfs.label's SHA-256 without
#: OpenSSL (the C module hashlib falls back to; _sha2 from Python 3.12 on).
OPTIONAL_TOP_LEVEL_IMPORTS = ("_sha2", "_sha256")


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
    #: Not root: the child makes a user namespace of its own and keeps the caller's ids
    #: (``uid`` and ``gid``, mapped to themselves), dropping the capabilities it had there.
    user_namespace: bool = False
    #: pygrub's package directory, bound read-only at PACKAGE_INSIDE; "" for none.
    package: str = ""

    @property
    def inside(self) -> str:
        """The image's path in the sandbox: its own file name at the root.

        The name is kept because --isconfig tells config formats apart by it, and an
        error naming "/guest.img" is clearer than one naming a fixed "/disk".
        """
        name = os.path.basename(self.image)
        return "/" + (name if name not in ("", ".", "..", PACKAGE_INSIDE[1:]) else "disk")


@record(frozen=True)
class Report:
    """The child's last words: JSON ``{"result": ...}`` or ``{"error": "...", "usage": bool}``."""

    result: object = None
    error: str | None = None
    usage: bool = False
    #: ``"imports": [...]``: modules it could not import, which the parent may import for it.
    imports: tuple[str, ...] = ()


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

    @classmethod
    def of_run(cls, value: object, printed: bool, wants_json: bool) -> Outcome:
        """The child's result for a run that prints its product itself (``printed``) or
        not, and wants a JSON boot object or not: anything else is malformed."""
        from .output import JSON_VERSION

        outcome = cls.from_result(value)
        if outcome.printed != printed or (outcome.json is not None) != wants_json:
            raise _malformed("the result is for another mode than this run's")
        document = outcome.json
        if document is not None and (
            document.get("version") != JSON_VERSION or document.get("type") != "boot"
        ):
            raise _malformed("the JSON result is not a boot object of this version")
        return outcome


# -- what the parent and the child say to each other -------------------------------------


def reader_ids(runas: int | None, user_namespace: bool = False) -> tuple[int, int]:
    """(uid, gid) the child reads as: --runas's user (pygrub must be root), the caller's in
    a ``user_namespace``, else :func:`default_ids`."""
    if runas is not None:
        ids = user_ids(runas)
        require_root()
        return ids
    return (os.geteuid(), os.getegid()) if user_namespace else default_ids()


def read_only_through(image: str, disk_fd: int) -> None:
    """In the child: the disk named ``image`` is read through ``disk_fd`` (the root holds
    nothing else), and no qcow2 backing file is looked for."""
    inherit(image, disk_fd)
    refuse_backing_files(BACKING_REFUSAL)


def check_sizes(files: dict[str, tuple[int, str]], limit: int) -> None:
    """RLIMIT_FSIZE held the child's writes to ``limit``; the parent hands the files on
    only after seeing so itself."""
    for fd, path in files.values():
        size = os.fstat(fd).st_size
        if size > limit:
            raise LimitError(f"the sandboxed reader wrote {size} bytes to {path}, over {limit}")


def default_ids() -> tuple[int, int]:
    """The user and group a default run reads as: :data:`SANDBOX_UID_BASE` plus pygrub's pid.

    libxl gives pygrub no domid, so there is no per-domain user to take (restricted mode
    has ``bootloader_user``, else ``xen-qemuuser-range-base`` + domid). A fixed user, or
    ``nobody``, would be shared by every domain's reader started at once and by every
    daemon that runs as nobody: one subverted reader could signal another where Landlock
    does not scope signals (before Linux 6.12), and a file or process of ``nobody``'s is
    anyone's. A pid is unique among live processes and the reader dies with its parent,
    so no two readers alive share a user, and none outlives its run. The ids are in the
    range systemd's UIDS-GIDS leaves unassigned (between the container ranges and 2^31),
    and refused if passwd or group name them. The reader owns nothing on the host: its
    root is a read-only tmpfs, and the files it writes were made by root.
    Pids repeat across pid namespaces: two containers running pygrub at once may meet.
    """
    uid = SANDBOX_UID_BASE + os.getpid()
    for database, lookup in (("passwd", pwd.getpwuid), ("group", grp.getgrgid)):
        try:
            name = lookup(uid)[0]
        except KeyError:
            continue
        raise PygrubError(
            f"cannot sandbox the reader: id {uid}, this run's (pygrub's pid + "
            f"{SANDBOX_UID_BASE:#x}), is {name!r} in {database}; give --runas=UID"
        )
    return uid, uid


def user_namespace_refusal() -> str | None:
    """Why this kernel gives an unprivileged process no user namespace it can mount in, or
    None when it does: a child tries, as the sandbox will."""
    libc = _libc()
    _flush_std()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _try_user_namespace(libc)
        finally:
            os._exit(code)
    status = os.waitpid(pid, 0)[1]
    number = os.WEXITSTATUS(status) if os.WIFEXITED(status) else errno.EINTR
    if number == 0:
        return None
    return f"no user namespace to build the sandbox in ({os.strerror(number)})"


def _try_user_namespace(libc: ctypes.CDLL) -> int:
    """0, or the errno of the first step of the sandbox's user namespace that fails."""
    try:
        _enter_user_namespace(libc, os.geteuid(), os.getegid())
        _check(libc.unshare(CLONE_NEWNS), "unshare")
        _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "private")
        tmpfs = MS_NOSUID | MS_NODEV | MS_NOEXEC
        _check(libc.mount(b"pygrub", b"/", b"tmpfs", tmpfs, ROOT_TMPFS_OPTIONS), "tmpfs")
    except OSError as e:
        return e.errno or errno.EPERM
    except PygrubError:
        return ctypes.get_errno() or errno.EPERM
    return 0


def user_ids(uid: int) -> tuple[int, int]:
    """(uid, gid) to run as: the user's primary group from passwd, else the uid (which the
    command line checked is no root and a user id)."""
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        gid = uid
    if not 0 < gid <= MAX_USER_ID:
        raise PygrubError(f"--runas={uid}: the user's primary group {gid} is root or invalid")
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


class MenuWiring:
    """An interactive run's descriptors besides the reader's: the menu's two pipes
    (menu.remote), and memory files that stand in for the child's stdout and stderr.

    The console is the parent's alone: a child holding it could write escape sequences
    to whoever watches it, so what the child prints is repeated by the parent once the
    child is done, its control characters shown as ``?``.
    """

    def __init__(self) -> None:
        from .menu.remote import Channel

        _preload_terminal_encoding()
        self.child = Channel(-1, -1)
        self.parent = Channel(-1, -1)
        self.stdout = self.stderr = -1
        try:
            to_child, from_child = os.pipe(), os.pipe()
            self.child = Channel(to_child[0], from_child[1])
            self.parent = Channel(from_child[0], to_child[1])
            # The parent never blocks writing to a child that does not read: it has a deadline.
            os.set_blocking(to_child[1], False)
            self.stdout = os.memfd_create("pygrub-stdout", os.MFD_CLOEXEC)
            self.stderr = os.memfd_create("pygrub-stderr", os.MFD_CLOEXEC)
        except BaseException:
            self.close()
            raise

    def child_fds(self) -> tuple[int, ...]:
        return (self.child.read_fd, self.child.write_fd, self.stdout, self.stderr)

    def host(self, budget: float, max_wait: float) -> None:
        """The parent's side, after the fork: the child's menu on our terminal, if it asks,
        the run's ``budget`` of seconds paused meanwhile."""
        from .menu import remote

        self.child.close()
        start = remote.wait_for_start(self.parent)
        if start is None:
            return
        with clock.paused(budget):
            remote.host(self.parent, start, budget, max_wait)
        self.parent.close()

    def chooser(self, max_wait: float) -> Chooser:
        """The child's side, in the sandbox before any guest byte is read: stdout and
        stderr to the memory files, and the chooser that asks the parent's terminal."""
        from .menu.remote import choose_remotely

        _flush_std()
        os.dup2(self.stdout, 1)
        os.dup2(self.stderr, 2)
        channel = self.child

        def chooser(menu: BootMenu, why_not: WhyNot) -> Chosen:
            try:
                return choose_remotely(channel, menu, why_not, max_wait)
            finally:
                channel.close()

        return chooser

    def relay_output(self) -> None:
        """What the child printed, repeated on our stdout and stderr, made safe."""
        _flush_std()
        for fd, stream in ((self.stdout, sys.stdout), (self.stderr, sys.stderr)):
            data = os.pread(fd, MAX_RELAYED_BYTES, 0) if fd != -1 else b""
            if data:
                text = data.decode("utf-8", "replace")
                safe = "".join(c if c.isprintable() or c == "\n" else "?" for c in text)
                stream.write(safe if safe.endswith("\n") else safe + "\n")
                stream.flush()

    def close(self) -> None:
        self.child.close()
        self.parent.close()
        for fd in (self.stdout, self.stderr):
            if fd != -1:
                os.close(fd)
        self.stdout = self.stderr = -1


def _preload_terminal_encoding() -> None:
    """The codec of the console's encoding (curses takes the locale's), for the child."""
    import locale

    try:
        codecs.lookup(locale.nl_langinfo(locale.CODESET))
    except LookupError:
        pass


# -- fork, wait, relay --------------------------------------------------------------------


def run_sandboxed(
    box: Sandbox, body: Callable[[], object], parent_side: Callable[[], None] | None = None
) -> object:
    """``body()``'s JSON value, computed in a sandboxed child; its error raised here.

    ``parent_side()`` runs here meanwhile, before the report is read (the menu's terminal).
    On any exception while waiting (a signal, the time budget) the child is killed first.
    """
    preload()
    if parent_side is not None:
        # The menu is not shown twice: whatever the child might ask for is here already
        # (a person is looking at the screen; the milliseconds are not theirs to notice).
        _import_requested(tuple(sorted(IMPORTABLE_ON_REQUEST)))
    while True:
        report, status = _run_child(box, body, parent_side)
        # Not after a child that printed the run's product: it would be printed twice.
        if report is None or (report.error is None and box.stdout) or parent_side is not None:
            return _result(report, status)
        if not _import_requested(report.imports):
            return _result(report, status)
        # A module the child could not import, now here: again, with it. Each name is
        # asked once (imported, or unimportable), so this ends.


def _run_child(
    box: Sandbox, body: Callable[[], object], parent_side: Callable[[], None] | None
) -> tuple[Report | None, int]:
    read_fd, write_fd = os.pipe()
    _flush_std()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        _child(box, body, read_fd, write_fd, parent)
    os.close(write_fd)
    try:
        if parent_side is not None:
            parent_side()
        raw = _read_report(read_fd)
        status = _wait(pid)
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(read_fd)
    return parse_report(raw), status


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
    imports = value.pop("imports", [])
    if not (
        isinstance(imports, list)
        and all(isinstance(n, str) and n in IMPORTABLE_ON_REQUEST for n in imports)
    ):
        raise _malformed("it asks for modules it may not have")
    asked = tuple(dict.fromkeys(imports))
    if set(value) == {"result"}:
        return Report(result=value["result"], imports=asked)
    if set(value) == {"error", "usage"}:
        error, usage = value["error"], value["usage"]
        if isinstance(error, str) and isinstance(usage, bool):
            return Report(error=_printable(error), usage=usage, imports=asked)
    raise _malformed("neither a result nor an error")


def _malformed(why: str) -> PygrubError:
    return PygrubError(f"the sandboxed reader's report is malformed: {why}")


def _printable(text: str) -> str:
    """One bounded line without control characters: the child's text reaches a terminal."""
    text = " ".join(text.split())[:MAX_ERROR_CHARS]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _flush_std() -> None:
    # Buffered output would otherwise be written twice, by parent and child.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


# -- preloading --------------------------------------------------------------------------


def preload() -> None:
    """Import now what a sandboxed run cannot import later.

    Inside the sandbox only the image and pygrub's own package directory (bound read-only
    at :data:`PACKAGE_INSIDE`) can be read: our modules are imported there as the guest
    needs them, as in a plain run. What they import at their top is imported here, and the
    codecs are looked up; whatever else a reader imports (IMPORTABLE_ON_REQUEST: a
    decompressor, a hash) is imported only when a sandboxed run asks for it (run_sandboxed).
    """
    for name in TOP_LEVEL_IMPORTS:
        importlib.import_module(name)
    for name in OPTIONAL_TOP_LEVEL_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if debugging():
        loaded()  # --debug logs in the child, where logging could not be imported
    for name in CODECS:
        codecs.lookup(name)
    _libc()


def package_directory() -> str:
    """Where pygrub's modules are on the host: the sandbox binds it read-only."""
    import pygrub

    return os.path.dirname(os.path.abspath(pygrub.__file__))


def _import_from_package_inside() -> None:
    """Point the packages already imported at the package's place in the sandbox, so that
    their modules not imported yet are found there (by Python's own path finder)."""
    outside = package_directory()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__path__", None)
        if not (name == "pygrub" or name.startswith("pygrub.")) or path is None:
            continue
        module.__path__ = [
            PACKAGE_INSIDE + p[len(outside) :] if p.startswith(outside) else p for p in path
        ]
    sys.path_importer_cache.clear()


class Requests:
    """Last on ``sys.meta_path`` in the child: the modules it could not import that the
    parent may import for it (then it runs the child again)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name in IMPORTABLE_ON_REQUEST and name not in self.names:
            self.names.append(name)


def _import_requested(names: tuple[str, ...]) -> bool:
    """Import what the child asked for (names parse_report let through); whether any was
    new here, so that running the child again can help."""
    new = False
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            new = True
        except ImportError as e:
            # An optional decompressor not installed: the run fails on it as it would
            # without the sandbox.
            log.debug("the sandboxed reader asked for %s: %s", name, e)
    return new


# -- the child ---------------------------------------------------------------------------


def _child(
    box: Sandbox,
    body: Callable[[], object],
    read_fd: int,
    report_fd: int,
    parent: int,
) -> NoReturn:
    code = 1
    try:
        os.close(read_fd)
        requests = Requests()
        sys.meta_path.append(requests)
        code, report = _child_run(box, body, report_fd, parent)
        if requests.names:
            report["imports"] = requests.names
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
    except MemoryError:
        mib = box.address_space >> 20
        return 1, {
            "error": f"out of memory: over the sandbox's {mib} MiB (PYGRUB_MAX_RAM_USAGE_MB)",
            "usage": False,
        }
    except BaseException as e:
        log.debug("in the sandbox", exc_info=True)
        status, message = status_and_message(e)
        return status, {"error": message, "usage": status == 2}


def enter(box: Sandbox, report_fd: int, parent: int) -> None:
    """Confine this (forked) process; afterwards it sees only the image and its descriptors."""
    os.setsid()  # no controlling terminal: TIOCSTI cannot type into the caller's shell
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past RLIMIT_FSIZE: EFBIG, not death
    _stdin_from_dev_null()
    if not box.stdout:
        _stdout_to_dev_null()
    _close_all_but({0, 1, 2, report_fd, *box.keep, *_std_fds()})
    libc = _libc()
    if box.user_namespace:
        _enter_user_namespace(libc, box.uid, box.gid)
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET), "unshare")
    _make_root(libc, box)
    _pivot_into(libc, box.mountpoint)
    if box.package:
        _import_from_package_inside()
    _lower_limits(box)
    if box.user_namespace:
        _drop_capabilities(libc)
    else:
        _drop_privileges(box.uid, box.gid)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    # After the uid change, which resets both: no ptrace by the same user, die with the parent.
    _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)  # the parent died before PDEATHSIG was set: nobody would read us
    if box.landlock:
        restrict_to(libc, box.inside, PACKAGE_INSIDE if box.package else None)


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


def _enter_user_namespace(libc: ctypes.CDLL, uid: int, gid: int) -> None:
    """A user namespace of our own, in which the caller's ids are themselves and nobody
    else exists; its capabilities let the namespaces below be made without root."""
    _check(libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    # setgroups must be denied before an unprivileged process may write gid_map.
    for name, line in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(line)
        except OSError as e:
            raise _setup_error(f"writing /proc/self/{name}", e.errno or errno.EPERM) from None


#: <linux/capability.h>: _LINUX_CAPABILITY_VERSION_3, and its two 32-bit data words
CAPABILITY_VERSION_3 = 0x20080522
CAP_HEADER = struct.Struct("=Ii")
CAP_DATA_SIZE = 2 * 3 * 4


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """Lose every capability the user namespace gave: effective, permitted, inheritable
    (and so ambient). The ids stay the caller's; root is not mapped at all."""
    header = ctypes.create_string_buffer(CAP_HEADER.pack(CAPABILITY_VERSION_3, 0))
    data = ctypes.create_string_buffer(CAP_DATA_SIZE)
    _check(libc.capset(header, data), "capset")
    _check(libc.capget(header, data), "capget")
    if any(data.raw):
        raise PygrubError(f"{SETUP_FAILED}capabilities remain after capset")
    try:
        os.setuid(0)
    except OSError:
        return
    raise PygrubError(f"{SETUP_FAILED}root could be regained in the user namespace")


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
    if box.package:
        package = os.path.join(mountpoint, os.fsencode(PACKAGE_INSIDE[1:]))
        os.mkdir(package, 0o755)
        _check(libc.mount(os.fsencode(box.package), package, None, MS_BIND, None), "binding pygrub")
        sealed = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
        _check(libc.mount(None, package, None, sealed, None), "remounting pygrub")
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
ACCESS_FS_READ_DIR = 1 << 3
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


def restrict_to(libc: ctypes.CDLL, readable: str, package: str | None = None) -> bool:
    """Forbid every filesystem access but reading ``readable`` (and the files and
    directories under ``package``), and TCP and signals out as far as the kernel's ABI
    knows them; False when the kernel has no Landlock."""
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
        _allow(libc, ruleset, readable, ACCESS_FS_READ_FILE)
        if package is not None:
            _allow(libc, ruleset, package, ACCESS_FS_READ_FILE | ACCESS_FS_READ_DIR)
        _check(
            libc.syscall(
                ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_long(ruleset), ctypes.c_long(0)
            ),
            "landlock_restrict_self",
        )
    finally:
        os.close(ruleset)
    return True


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> None:
    target = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = ctypes.create_string_buffer(PATH_BENEATH_ATTR.pack(access, target))
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
