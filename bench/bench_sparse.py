"""Total time against the image's size: the same boot on a 1 GiB and a 1 TiB sparse disk.

    python bench/bench_sparse.py [--runs 5]

GPT disks (sparse files) holding an 8 MiB kernel and a 64 MiB initrd in ext4:

- the ext4 filesystem filling a 1 GiB disk, then filling a 1 TiB disk (8192 block
  groups: a reader that looked at every group descriptor or bitmap would show it);
- a 1 TiB disk whose ext4 partition is only 128 MiB (the partition table's backup at
  the disk's end is 1 TiB away; nothing in between may be read).

``pygrub -q`` must take the same time on all three; ours and Xen's, side by side.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import images
from common import (
    OURS,
    XEN_PYGRUB,
    MiB,
    compile_sources,
    failures_note,
    load_note,
    markdown_table,
    measure_side_by_side,
    python_note,
    ratio,
    seconds,
    sh,
    write_random,
)

GiB = 1 << 30
TiB = 1 << 40


def small_partition_on_huge_disk(work: Path, tree: Path) -> Path:
    """A ``TiB`` GPT disk with one 128 MiB ext4 partition at 1 MiB."""
    disk = work / "huge-disk.img"
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate(TiB)
    layout = "label: gpt\nstart=2048, size=262144, type=L\n"
    sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk, stdin=layout.encode())
    sh("mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={MiB}", "-d", tree, disk, "128M")
    return disk


def run(runs: int) -> str:
    compile_sources()
    before = load_note()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pygrub-bench-") as tmp:
        work = Path(tmp)
        tree = images.make_tree(
            work / "tree",
            lambda p: write_random(p, 8 * MiB),
            lambda p: write_random(p, 64 * MiB),
        )
        cases = {
            "1 GiB disk, ext4 fills it": lambda w: images.ext4_sparse_gpt(w, tree, GiB),
            "1 TiB disk, ext4 fills it": lambda w: images.ext4_sparse_gpt(w, tree, TiB),
            "1 TiB disk, 128 MiB ext4 partition": lambda w: small_partition_on_huge_disk(w, tree),
        }
        first = None
        for name, build in cases.items():
            case_dir = work / f"case{len(rows)}"
            case_dir.mkdir()
            image = build(case_dir)
            out = case_dir / "out"
            out.mkdir()
            boot = ["-q", f"--output-directory={out}", str(image)]
            samples = measure_side_by_side(
                {"ours": [*OURS, *boot], "xen": [XEN_PYGRUB, *boot]}, runs, out
            )
            ours, xen = samples["ours"], samples["xen"]
            if ours.failure:
                raise SystemExit(f"{name}: ours failed: {ours.failure}")
            first = first or samples
            rows.append(
                [
                    name,
                    seconds(ours),
                    ratio(ours, first["ours"]),
                    seconds(xen),
                    ratio(xen, first["xen"]),
                ]
            )
            image.unlink()
    return (
        "\n".join(
            [
                f"`pygrub -q`, 8 MiB kernel + 64 MiB initrd on sparse GPT disks; medians of {runs} "
                f"runs under {python_note()}. Machine: {before} before, {load_note()} after.",
                "",
                markdown_table(
                    ("disk", "ours s", "ours vs 1 GiB", "Xen 4.17 s", "Xen vs 1 GiB"), rows
                ),
            ]
        )
        + failures_note()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    print(run(parser.parse_args().runs))


if __name__ == "__main__":
    main()
