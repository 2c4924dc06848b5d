"""The zfs-fuse daemon, which ZFS's own tools (zpool, zfs, zdb) talk to."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from imaging import require_tool, run

QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def daemon_answers() -> bool:
    return subprocess.run([require_tool("zpool"), "list"], **QUIET).returncode == 0


@contextmanager
def zfs_fuse() -> Iterator[None]:
    """A zfs-fuse daemon for the duration: the one already running, or one started here
    and stopped on the way out."""
    if daemon_answers():
        yield
        return
    proc = subprocess.Popen([require_tool("zfs-fuse"), "--no-daemon"], **QUIET)
    try:
        for _ in range(100):
            if daemon_answers():
                break
            time.sleep(0.1)
        else:
            pytest.fail("zfs-fuse started but zpool cannot reach it")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def export_pool(name: str) -> None:
    """zpool export, retried: zfs-fuse calls a pool busy for a moment after writes."""
    for _ in range(20):
        os.sync()
        argv = [require_tool("zpool"), "export", name]
        if subprocess.run(argv, capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    run("zpool", "export", name)
