"""Extraction benchmark: ours, Xen's pygrub and a plain copy of the same bytes, side by side.

    python bench/bench_extract.py [--runs 7] [--kernel-mb 8] [--initrd-mb 64]

Builds an MBR disk with one ext4 partition holding /boot/grub/menu.lst, a kernel and an
initrd (random bytes), then times each command end to end (fresh process each run) and
reports the median wall time and the peak RSS (ru_maxrss of that process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

XEN_PYGRUB = "/usr/lib/xen-4.17/bin/pygrub"
MiB = 1 << 20


def build_image(work: Path, kernel_mb: int, initrd_mb: int) -> tuple[Path, Path]:
    tree = work / "tree"
    (tree / "boot" / "grub").mkdir(parents=True)
    write_random(tree / "boot" / "vmlinuz", kernel_mb)
    write_random(tree / "boot" / "initrd.img", initrd_mb)
    (tree / "boot" / "grub" / "menu.lst").write_text(
        "default 0\ntimeout 0\ntitle Linux\nroot (hd0,0)\nkernel /boot/vmlinuz root=/dev/xvda1 ro\ninitrd /boot/initrd.img\n"
    )
    fs = work / "fs.img"
    size_mb = kernel_mb + initrd_mb + 32
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, fs, f"{size_mb}M"], check=True)
    disk = work / "disk.img"
    with open(disk, "wb") as f:
        f.truncate((size_mb + 2) * MiB)
    subprocess.run(
        ["sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk],
        input=f"label: dos\nstart=2048, size={size_mb * 2048}, type=83\n".encode(),
        check=True,
    )
    subprocess.run(
        ["dd", f"if={fs}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc", "status=none"],
        check=True,
    )
    fs.unlink()
    return disk, tree


def write_random(path: Path, megabytes: int) -> None:
    # In pieces: the benchmark's own memory must stay small (see measure()).
    with open(path, "wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(MiB))


def measure(argv: list[str], runs: int, out_dir: Path) -> tuple[float, int]:
    """Median wall seconds and the largest peak RSS (KiB) over ``runs`` fresh processes.

    posix_spawn (vfork) keeps this process's memory out of the child's ru_maxrss.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    path = shutil.which(argv[0]) or argv[0]
    times, peaks = [], []
    with open(os.devnull, "wb") as devnull:
        for _ in range(runs):
            for f in out_dir.iterdir():
                f.unlink()
            start = time.perf_counter()
            pid = os.posix_spawn(
                path, argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull.fileno(), 1)]
            )
            _pid, status, usage = os.wait4(pid, 0)
            elapsed = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"{' '.join(argv)} failed")
            times.append(elapsed)
            peaks.append(usage.ru_maxrss)
    return statistics.median(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--kernel-mb", type=int, default=8)
    parser.add_argument("--initrd-mb", type=int, default=64)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pygrub-bench-") as tmp:
        work = Path(tmp)
        disk, tree = build_image(work, a.kernel_mb, a.initrd_mb)
        out = work / "out"
        out.mkdir()
        # An installed package has its bytecode compiled; so does the benchmarked tree.
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(Path(__file__).parent.parent / "src")],
            check=True,
        )
        common = ["-q", f"--output-directory={out}", str(disk)]
        rows = [
            (
                "plain copy (cat > file)",
                [
                    "sh",
                    "-c",
                    f"cat {tree}/boot/vmlinuz > {out}/k; cat {tree}/boot/initrd.img > {out}/r",
                ],
            )
        ]
        rows.append(("pygrub (this project)", [sys.executable, "-m", "pygrub", *common]))
        if os.path.exists(XEN_PYGRUB):
            rows.append(("Xen 4.17 pygrub", [XEN_PYGRUB, *common]))
        results = {}
        print(
            f"{a.kernel_mb} MiB kernel + {a.initrd_mb} MiB initrd on MBR/ext4, median of {a.runs} runs"
        )
        print(f"{'command':28} {'wall s':>8} {'peak RSS MiB':>13}")
        for name, argv in rows:
            wall, peak = measure(argv, a.runs, out)
            results[name] = wall
            print(f"{name:28} {wall:8.3f} {peak / 1024:13.1f}")
        ours = results["pygrub (this project)"]
        if "Xen 4.17 pygrub" in results:
            print(f"ours / Xen: {ours / results['Xen 4.17 pygrub']:.2f}x")
        print(f"ours / plain copy: {ours / results['plain copy (cat > file)']:.2f}x")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
