"""Peak memory against the initrd's size: a 16 MiB and a 512 MiB initrd (8 MiB kernel).

    python bench/bench_memory.py [--runs 3] [--sizes 16,512]

Peak RSS (ru_maxrss of exactly the command, see common.spawn) and wall time of
``pygrub -q`` for each size, ours and Xen's, on two paths through our extraction:

- ext4: the data lies in the image as it is, and the kernel copies it
  (``copy_file_range``);
- SquashFS with gzip over compressible data: every block is decompressed in Python and
  written out piece by piece.

It must not grow with the file: both sizes of one image must show the same peak.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import images
from common import (
    OURS,
    XEN_PYGRUB,
    MiB,
    Sample,
    compile_sources,
    failures_note,
    load_note,
    markdown_table,
    measure_side_by_side,
    python_note,
    seconds,
    write_compressible,
    write_random,
)

Builder = Callable[[Path, Path], Path]

#: name -> (builder, writer of the initrd's bytes).
CASES: dict[str, tuple[Builder, Callable[[Path, int], None]]] = {
    "ext4, MBR (copied by the kernel)": (images.ext4_mbr, write_random),
    "SquashFS gzip, compressible data (decompressed in Python)": (
        images.squashfs,
        write_compressible,
    ),
}


def rss(sample: Sample) -> str:
    return "–" if sample.failure else f"{sample.peak_mib:.1f}"


def run(sizes: list[int], runs: int) -> str:
    compile_sources()
    before = load_note()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pygrub-bench-") as tmp:
        for case, (builder, writer) in CASES.items():
            for size in sizes:
                work = Path(tmp) / f"{len(rows)}"
                work.mkdir()
                tree = images.make_tree(
                    work / "tree",
                    lambda p: write_random(p, 8 * MiB),
                    lambda p, size=size, writer=writer: writer(p, size * MiB),
                )
                image = builder(work, tree)
                out = work / "out"
                out.mkdir()
                common = ["-q", f"--output-directory={out}", str(image)]
                samples = measure_side_by_side(
                    {"ours": [*OURS, *common], "xen": [XEN_PYGRUB, *common]}, runs, out
                )
                ours, xen = samples["ours"], samples["xen"]
                if ours.failure:
                    raise SystemExit(f"{case}, {size} MiB: ours failed: {ours.failure}")
                rows.append([case, str(size), rss(ours), seconds(ours), rss(xen), seconds(xen)])
                for path in (image, *out.iterdir()):
                    path.unlink()
    return (
        "\n".join(
            [
                f"Peak RSS of `pygrub -q` with an 8 MiB kernel, median time of {runs} runs, both "
                f"under {python_note()}. Machine: {before} before, {load_note()} after.",
                "",
                markdown_table(
                    (
                        "image",
                        "initrd MiB",
                        "ours peak RSS MiB",
                        "ours s",
                        "Xen peak RSS MiB",
                        "Xen s",
                    ),
                    rows,
                ),
            ]
        )
        + failures_note()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="16,512", help="initrd sizes in MiB")
    a = parser.parse_args()
    print(run([int(s) for s in a.sizes.split(",")], a.runs))


if __name__ == "__main__":
    main()
