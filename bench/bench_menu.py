"""Key-to-draw latency of the console menu, on this terminal and across the sandbox.

    sudo python bench/bench_menu.py [--keys 60]

pygrub runs as libxl runs it (a pty on stdin and stdout, TERM=vt100) on an ext4 disk
whose grub.cfg has two entries, once reading the disk itself and once under --runas,
where the sandboxed reader runs the menu and pygrub draws what it describes. Once the menu
is up, Down and Up are typed in turn; each latency is the time from writing the key to
the pty until the first byte of the redrawn screen comes back. Needs root (--runas).
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import images
from common import OURS, BenchError, child_env, compile_sources, load_note, markdown_table

GRUB_CFG = """\
set default=0
set timeout=5
menuentry 'Debian GNU/Linux' {
\tlinux /boot/vmlinuz root=/dev/xvda1 ro
\tinitrd /boot/initrd.img
}
menuentry 'Debian GNU/Linux (recovery mode)' {
\tlinux /boot/vmlinuz root=/dev/xvda1 ro single
\tinitrd /boot/initrd.img
}
"""
DOWN, UP, ENTER = b"\x1b[B", b"\x1b[A", b"\r"
#: The --runas user: no passwd entry.
RUNAS_UID = 43232
#: Output ends when nothing more comes for this long.
QUIET = 0.05


def read_until(fd: int, marker: bytes, timeout: float = 20) -> bytes:
    seen = b""
    end = time.monotonic() + timeout
    while marker not in seen:
        if not select.select([fd], [], [], max(end - time.monotonic(), 0))[0]:
            raise BenchError(f"the menu never showed {marker!r}")
        seen += os.read(fd, 65536)
    return seen


def drain(fd: int) -> None:
    while select.select([fd], [], [], QUIET)[0]:
        os.read(fd, 65536)


def latencies(image: Path, work: Path, flags: list[str], keys: int) -> list[float]:
    """Seconds from each key to the first byte drawn after it."""
    master, slave = os.openpty()
    output = work / "output"
    output.write_bytes(b"")
    env = child_env() | {"TERM": "vt100", "LANG": "C.UTF-8"}
    argv = [*OURS, *flags, "-n", f"--output={output}", f"--output-directory={work}", str(image)]
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        read_until(master, b"executed automatically")
        drain(master)
        found = []
        for n in range(keys):
            start = time.perf_counter()
            os.write(master, DOWN if n % 2 == 0 else UP)
            if not select.select([master], [], [], 10)[0]:
                raise BenchError("a key drew nothing")
            found.append(time.perf_counter() - start)
            drain(master)
        os.write(master, ENTER)
        if proc.wait(20) != 0:
            raise BenchError(f"pygrub {' '.join(flags)} failed: {proc.stderr.read().decode()}")
        return found
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        os.close(master)
        os.close(slave)


def run(keys: int) -> str:
    compile_sources()
    with tempfile.TemporaryDirectory(prefix="pygrub-bench-menu-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        (tree / "boot" / "grub").mkdir(parents=True)
        (tree / "boot" / "vmlinuz").write_bytes(os.urandom(1 << 20))
        (tree / "boot" / "initrd.img").write_bytes(os.urandom(1 << 20))
        (tree / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
        image = images.ext4_mbr(work, tree)
        rows = []
        for name, flags in (
            ("on this terminal", []),
            ("under --runas (sandboxed reader)", [f"--runas={RUNAS_UID}"]),
        ):
            found = sorted(latencies(image, work, flags, keys))
            rows.append(
                [
                    name,
                    f"{statistics.median(found) * 1000:.1f}",
                    f"{found[int(len(found) * 0.9)] * 1000:.1f}",
                    f"{found[-1] * 1000:.1f}",
                ]
            )
    table = markdown_table(["menu", "median ms", "90th percentile ms", "max ms"], rows)
    return f"{table}\n\n{keys} keys each; {load_note()}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=60, help="keys typed in each mode")
    print(run(parser.parse_args().keys))


if __name__ == "__main__":
    main()
