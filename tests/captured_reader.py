"""A sandboxed reader taken over by the guest: attacker code in place of ``run.read_guest``.

A guest disk that found a bug in a parser runs whatever it likes where the parser runs:
in the sandboxed child, after every wall is up. Nothing in pygrub can load this module.
A test writes a ``sitecustomize.py`` that calls :func:`install` into a directory it puts
on ``PYTHONPATH`` of the ``python -m pygrub`` it starts; Python imports it at start-up,
before the sandbox exists, so everything the attacks use is imported already.

Each attack reports what it saw as one ``captured: {json}`` line on stderr (a
descriptor the child holds anyway), then returns None (the real reader goes on and the
run should boot as without it) or a forged result for the parent.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import resource
import signal
import socket
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pygrub.errors import PygrubError

#: What an attack writes into every descriptor it holds: lines the toolstack would take
#: for pygrub's output, naming a dom0 file.
FORGED = b"captured: \0kernel /etc/shadow\0ramdisk /etc/shadow\0args x\0\0\nkernel /etc/shadow\n"
#: A command line that closes sxp's item and opens another, if quoting let it.
QUOTED_ARGS = "x')(kernel '/etc/shadow')(args 'y"
#: <linux/sched.h>, <sys/ptrace.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
PTRACE_ATTACH = 16


@dataclass
class Reader:
    """read_guest's arguments, and what the test passed in."""

    o: Any
    image: str
    disk_fd: int
    files: dict[str, tuple[int, str]]
    params: dict
    #: The real reader's run: a forgery may start from what it reports.
    real: Callable[[], dict]


ATTACKS: dict[str, Callable[[Reader], object]] = {}


def attack(function: Callable[[Reader], object]) -> Callable[[Reader], object]:
    ATTACKS[function.__name__] = function
    return function


def install(name: str, params: dict) -> None:
    from pygrub import run

    real = run.read_guest

    def captured(o: Any, image: str, disk_fd: int, files: dict, menu: Any = None) -> object:
        def run_real() -> dict:
            return real(o, image, disk_fd, files, menu)

        forged = ATTACKS[name](Reader(o, image, disk_fd, files, params, run_real))
        return run_real() if forged is None else forged

    run.read_guest = captured


def seen(**facts: object) -> None:
    os.write(2, b"captured: " + json.dumps(facts).encode() + b"\n")


def error_of(action: Callable[[], object]) -> str:
    """The errno name an action fails with, the exception's name, or "ok"."""
    try:
        action()
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
    except BaseException as e:  # MemoryError, threads' RuntimeError, ...
        return type(e).__name__
    return "ok"


def libc_error(result: int) -> str:
    return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]


LIBC = ctypes.CDLL(None, use_errno=True)


def ids() -> list:
    return [os.getresuid(), os.getresgid(), os.getgroups()]


# -- the walls ----------------------------------------------------------------------------


@attack
def host_files(r: Reader) -> None:
    seen(
        ids=ids(),
        passwd=error_of(lambda: open("/etc/passwd", "rb").read()),
        secret=error_of(lambda: open(r.params["secret"], "rb").read()),
        image_by_host_path=error_of(lambda: open(r.o.image, "rb").read(1)),
        proc_self=error_of(lambda: os.listdir("/proc/self/fd")),
        list_root=error_of(lambda: os.listdir("/")),
    )


@attack
def output_directory(r: Reader) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL

    seen(
        ids=ids(),
        by_host_path=error_of(lambda: os.open(r.o.output_directory + "evil", flags, 0o644)),
        at_root=error_of(lambda: os.open("/evil", flags, 0o644)),
        mkdir=error_of(lambda: os.mkdir("/evil.d")),
        link_kernel=error_of(lambda: os.link(r.files["boot_kernel."][1], "/evil")),
        package=error_of(lambda: os.open("/.pygrub/evil.py", flags, 0o644)),
        package_source=error_of(lambda: open("/.pygrub/cli.py", "rb").read(1)),
    )


@attack
def tcp(r: Reader) -> None:
    def connect() -> None:
        with socket.socket() as s:
            s.settimeout(2)
            s.connect(("127.0.0.1", r.params["port"]))

    seen(ids=ids(), connect=error_of(connect))


@attack
def udp(r: Reader) -> None:
    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"captured", ("127.0.0.1", r.params["port"]))

    seen(ids=ids(), send=error_of(send))


@attack
def unix_socket(r: Reader) -> None:
    def connect() -> None:
        socket.socket(socket.AF_UNIX).connect(r.params["path"])

    seen(ids=ids(), connect=error_of(connect))


@attack
def abstract_socket(r: Reader) -> None:
    name = b"\0" + r.params["name"].encode()

    def connect() -> None:
        socket.socket(socket.AF_UNIX).connect(name)

    def send() -> None:
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"captured", name)

    seen(ids=ids(), connect=error_of(connect), send=error_of(send))


@attack
def parent(r: Reader) -> None:
    ppid = os.getppid()
    seen(
        ids=ids(),
        parent=ppid,
        sigterm=error_of(lambda: os.kill(ppid, signal.SIGTERM)),
        sigkill=error_of(lambda: os.kill(ppid, signal.SIGKILL)),
        everybody=error_of(lambda: os.kill(-1, signal.SIGKILL)),
        ptrace=libc_error(LIBC.ptrace(PTRACE_ATTACH, ppid, None, None)),
        environ=error_of(lambda: open(f"/proc/{ppid}/environ", "rb").read()),
        mount_proc=libc_error(LIBC.mount(b"proc", b"/", b"proc", 0, None)),
    )


@attack
def fork(r: Reader) -> None:
    def fork_and_exit() -> None:
        if os.fork() == 0:
            os._exit(0)

    def thread() -> None:
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()

    seen(ids=ids(), fork=error_of(fork_and_exit), thread=error_of(thread))


@attack
def memory(r: Reader) -> None:
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]

    def raise_limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit * 2, limit * 2))

    seen(
        ids=ids(),
        limit=limit,
        bytearray=error_of(lambda: bytearray(limit)),
        mmap=error_of(lambda: mmap.mmap(-1, limit)),
        raise_limit=error_of(raise_limit),
    )


@attack
def file_size(r: Reader) -> None:
    fd = r.files["boot_kernel."][0]
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]

    def raise_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit * 2, limit * 2))

    seen(
        ids=ids(),
        limit=limit,
        at_limit=error_of(lambda: os.pwrite(fd, b"x", limit - 1)),
        past_limit=error_of(lambda: os.pwrite(fd, b"x", limit)),
        truncate=error_of(lambda: os.ftruncate(fd, limit + 1)),
        fallocate=error_of(lambda: os.posix_fallocate(fd, 0, limit + 1)),
        raise_limit=error_of(raise_limit),
    )


@attack
def setuid(r: Reader) -> None:
    seen(
        ids=ids(),
        setuid=error_of(lambda: os.setuid(0)),
        setresuid=error_of(lambda: os.setresuid(0, 0, 0)),
        setgid=error_of(lambda: os.setgid(0)),
        setgroups=error_of(lambda: os.setgroups([0])),
        chroot=error_of(lambda: os.chroot("/")),
        unshare_mounts=libc_error(LIBC.unshare(CLONE_NEWNS)),
    )


# -- forged reports -----------------------------------------------------------------------


def writable_descriptors() -> list[int]:
    found = []
    for fd in range(256):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            found.append(fd)
    return found


@attack
def every_descriptor(r: Reader) -> None:
    """Forged output lines into every descriptor, the report pipe too, then the real run."""
    written = {}
    for fd in writable_descriptors():
        written[fd] = error_of(lambda fd=fd: os.write(fd, FORGED))
    sys.stdout.buffer.write(FORGED)
    sys.stdout.flush()
    seen(ids=ids(), written=written)


def forged_result(r: Reader, **changes: object) -> dict:
    """The real run's result with ``changes``: the files are written as they would be."""
    return {**r.real(), **changes}


@attack
def separator_in_args(r: Reader) -> dict:
    return forged_result(r, args="root=/dev/xvda1\0kernel /etc/shadow\0\0")


@attack
def newline_in_args(r: Reader) -> dict:
    return forged_result(r, args="root=/dev/xvda1\nkernel /etc/shadow\n\n")


@attack
def quote_in_args(r: Reader) -> dict:
    return forged_result(r, args=QUOTED_ARGS)


@attack
def json_naming_files(r: Reader) -> dict:
    result = r.real()
    files = {"kernel": "/etc/shadow", "ramdisk": "/etc/shadow", "args": "root=/dev/xvda1 ro"}
    return {**result, "json": {**result["json"], **files}}


@attack
def another_mode(r: Reader) -> dict:
    return forged_result(r, printed=True)


@attack
def oversized(r: Reader) -> str:
    return "kernel /etc/shadow " * (5 << 20)


@attack
def no_report(r: Reader) -> None:
    os._exit(0)


@attack
def crash(r: Reader) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


@attack
def error_with_controls(r: Reader) -> None:
    raise PygrubError("bad\n\x1b[2Jkernel /etc/shadow\0\r\n" * 2000)
