"""Every benchmark, one after the other, as the Markdown of README's "Speed" section.

    python bench/run_all.py [--quick]

Takes about three minutes on two idle cores (``--quick``: fewer runs, about two). Needs root
for the LVM row (loop devices), the tools of .ci/run, Xen 4.17's pygrub, and GNU time.
"""

from __future__ import annotations

import argparse
import sys

import bench_extract
import bench_lookup
import bench_memory
import bench_sparse
import bench_startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, rougher figures")
    quick = parser.parse_args().quick
    sections = [
        (
            "Extraction on each format",
            lambda: bench_extract.run(list(bench_extract.FORMATS), 3 if quick else 9, 8, 64),
        ),
        (
            "Memory against the initrd's size",
            lambda: bench_memory.run([16, 512], 1 if quick else 3),
        ),
        (
            "Lookup in a /boot of 10,000 files",
            lambda: bench_lookup.run(list(bench_lookup.FORMATS), 10_000, 3 if quick else 7),
        ),
        ("Time against the image's size", lambda: bench_sparse.run(3 if quick else 7)),
        ("Start-up", lambda: bench_startup.run(7 if quick else 21)),
    ]
    for title, section in sections:
        print(f"  {title} ...", file=sys.stderr)
        print(f"### {title}\n\n{section()}\n", flush=True)


if __name__ == "__main__":
    main()
