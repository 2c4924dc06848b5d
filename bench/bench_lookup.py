"""Lookup in a /boot of 10,000 files, on each filesystem that can be written without mounting.

    python bench/bench_lookup.py [--runs 7] [--files 10000] [--only ext4,fat]

Two images per filesystem: /boot with the kernel, the initrd (1 MiB each) and grub.cfg,
and the same with ``--files`` more empty files, the kernel written last (so that it is
the last entry where a directory keeps creation order). Measured:

- ``stat("/boot/vmlinuz")`` alone, in a fresh process after the probe: its time and the
  bytes it read from the image (a lookup should read the directories on its path, and of
  an indexed directory only the blocks the index leads to);
- the whole ``pygrub -q`` on both images, ours and Xen's (which reads every config and
  kernel path through the same lookups).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import images
from common import (
    OURS,
    PYTHON,
    XEN_PYGRUB,
    MiB,
    child_env,
    compile_sources,
    failures_note,
    load_note,
    markdown_table,
    measure_side_by_side,
    python_note,
    seconds,
    write_random,
)

Builder = Callable[[Path, Path], Path]

FORMATS: dict[str, tuple[str, Builder]] = {
    "ext4": ("ext4, linear directory (mke2fs -d)", images.ext4_mbr),
    "ext4-htree": ("ext4, htree directory (e2fsck -D)", images.ext4_indexed),
    "xfs": ("XFS v5", images.xfs),
    "btrfs": ("Btrfs", images.btrfs),
    "fat": ("FAT32", images.fat),
    "iso9660": ("ISO 9660 + Rock Ridge", images.iso9660),
    "squashfs": ("SquashFS", images.squashfs),
    "ufs2": ("UFS2", lambda w, t: images.ufs(w, t, 2)),
}

#: Run in a fresh process: probe the first volume, then time one stat() and count its reads.
LOOKUP = """\
import sys, time
from pygrub.disk import open_image
from pygrub.disk.source import FileSource
from pygrub.fs import probe
from pygrub.volumes import discover

read = [0]
pread = FileSource.pread
def counting(self, offset, length):
    data = pread(self, offset, length)
    read[0] += len(data)
    return data
FileSource.pread = counting

fs = probe(discover(open_image(sys.argv[1]))[0].source)
before = read[0]
start = time.perf_counter()
fs.stat("/boot/vmlinuz")
print(time.perf_counter() - start, read[0] - before)
"""


def lookup(image: Path, runs: int) -> tuple[float, int]:
    """Median seconds of the stat() and the bytes it read."""
    times, sizes = [], set()
    for _ in range(runs):
        proc = subprocess.run(
            [PYTHON, "-c", LOOKUP, str(image)],
            capture_output=True, text=True, env=child_env(), check=True,
        )  # fmt: skip
        seconds, size = proc.stdout.split()
        times.append(float(seconds))
        sizes.add(int(size))
    return statistics.median(times), max(sizes)


def tree_with(root: Path, files: int) -> Path:
    """The /boot tree, ``files`` empty files first and the kernel last."""
    (root / "boot" / "grub").mkdir(parents=True)
    for n in range(files):
        (root / "boot" / f"F{n:05d}.BIN").touch()  # 8.3 names: no LFN to generate on FAT
    return images.make_tree(root, lambda p: write_random(p, MiB), lambda p: write_random(p, MiB))


def kib(size: int) -> str:
    return f"{size / 1024:.0f}"


def run(keys: list[str], files: int, runs: int) -> str:
    compile_sources()
    before = load_note()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pygrub-bench-") as tmp:
        small = tree_with(Path(tmp) / "small", 0)
        big = tree_with(Path(tmp) / "big", files)
        for key in keys:
            name, builder = FORMATS[key]
            work = Path(tmp) / key
            (work / "small").mkdir(parents=True)
            (work / "big").mkdir()
            small_image, big_image = builder(work / "small", small), builder(work / "big", big)
            out = work / "out"
            out.mkdir()
            small_stat, small_read = lookup(small_image, runs)
            big_stat, big_read = lookup(big_image, runs)

            boot = ["-q", f"--output-directory={out}"]
            samples = measure_side_by_side(
                {
                    "ours small": [*OURS, *boot, str(small_image)],
                    "ours big": [*OURS, *boot, str(big_image)],
                    "xen small": [XEN_PYGRUB, *boot, str(small_image)],
                    "xen big": [XEN_PYGRUB, *boot, str(big_image)],
                },
                runs,
                out,
            )
            rows.append(
                [
                    name,
                    f"{small_stat * 1000:.2f} / {big_stat * 1000:.2f}",
                    f"{kib(small_read)} / {kib(big_read)}",
                    f"{seconds(samples['ours small'])} / {seconds(samples['ours big'])}",
                    f"{seconds(samples['xen small'])} / {seconds(samples['xen big'])}",
                ]
            )
    return (
        "\n".join(
            [
                f"Lookup of /boot/vmlinuz among 3 / {files + 3} entries of /boot; medians of "
                f"{runs} runs, under {python_note()}. Machine: {before} before, "
                f"{load_note()} after.",
                "",
                markdown_table(
                    (
                        "filesystem",
                        f"stat() ms, 3 / {files + 3} entries",
                        "KiB it read",
                        "ours `pygrub -q` s",
                        "Xen `pygrub -q` s",
                    ),
                    rows,
                ),
            ]
        )
        + failures_note()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--only", default=",".join(FORMATS), help="comma-separated keys")
    a = parser.parse_args()
    keys = [k for k in a.only.split(",") if k]
    unknown = [k for k in keys if k not in FORMATS]
    if unknown:
        parser.error(f"unknown filesystems {unknown}; known: {', '.join(FORMATS)}")
    print(run(keys, a.files, a.runs))


if __name__ == "__main__":
    main()
