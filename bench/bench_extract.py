"""Extraction time on every format we read: ours, Xen's pygrub and a plain copy, side by side.

    python bench/bench_extract.py [--runs 7] [--kernel-mb 8] [--initrd-mb 64] [--only ext4,xfs]

For each filesystem and volume layout a guest disk is made by the real tools, holding
/boot/grub/grub.cfg, a kernel and an initrd (random bytes), and booted with
``pygrub -q --output-directory=DIR IMAGE``: ours, Xen 4.17's (where it reads the
format; "fails" with its last message otherwise), and ``cat`` of the same two files from
the host (the floor). ReiserFS uses the small image committed in tests/fixtures.
Each command's output is checked once against the files it should extract; then each
runs ``--runs`` times, interleaved, and the table gives the medians.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import images
from common import (
    OURS,
    XEN_PYGRUB,
    BenchError,
    MiB,
    Sample,
    child_env,
    compile_sources,
    failures_note,
    load_note,
    markdown_table,
    measure_side_by_side,
    python_note,
    ratio,
    read_simple0,
    seconds,
    write_random,
)

Builder = Callable[[Path, Path], Path]

#: key -> (row name, builder from (work, tree) to a disk image).
FORMATS: dict[str, tuple[str, Builder]] = {
    "ext4": ("ext4, MBR (1 KiB blocks: mke2fs under 512 MiB, a /boot)", images.ext4_mbr),
    "ext4-4k": (
        "ext4, MBR (4 KiB blocks, a root filesystem)",
        lambda w, t: images.ext4_mbr(w, t, 4096),
    ),
    "xfs": ("XFS v5, MBR", images.xfs),
    "xfs4": ("XFS v4 (ftype=0), MBR", lambda w, t: images.xfs(w, t, version=4)),
    "btrfs": ("Btrfs, MBR", images.btrfs),
    "fat": ("FAT32, MBR", images.fat),
    "iso9660": ("ISO 9660 + Rock Ridge, whole disk", images.iso9660),
    "squashfs": ("SquashFS (gzip), MBR", images.squashfs),
    "f2fs": ("F2FS (sload.f2fs), MBR", images.f2fs),
    "erofs": ("EROFS (lz4hc), MBR", images.erofs),
    "ufs1": ("UFS1 (makefs), MBR", lambda w, t: images.ufs(w, t, 1)),
    "ufs2": ("UFS2 (makefs), MBR", lambda w, t: images.ufs(w, t, 2)),
    "reiserfs": ("ReiserFS 3.6 (fixture)", lambda w, _t: images.reiserfs_fixture(w)),
    "zfs": ("ZFS (zfs-fuse, pool version 23), MBR", images.zfs),
    "openzfs": (
        "ZFS (OpenZFS 2.3 boot pool, fixture), GPT",
        lambda w, _t: images.openzfs_fixture(w),
    ),
    "qcow2": ("qcow2 of ext4, MBR", images.qcow2),
    "lvm": ("LVM2 linear LV, ext4", images.lvm),
}

#: Where the fixtures' expected contents are listed.
MANIFESTS = {
    "reiserfs": images.FIXTURES / "reiserfs" / "manifest.json",
    "openzfs": images.FIXTURES / "openzfs" / "boot-manifest.json",
}


def boot_once(argv: list[str], image: Path, out: Path) -> dict[str, str] | str:
    """The simple0 items of one run, or its last line of stderr when it fails."""
    result = out / "result"
    result.write_bytes(b"")
    proc = subprocess.run(
        [*argv, "-q", "--output-format=simple0", f"--output={result}",
         f"--output-directory={out}", str(image)],
        capture_output=True, env=child_env(), stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit status {proc.returncode}"
    return read_simple0(result)


def manifest_hashes(path: Path) -> set[str]:
    """Every sha256 a fixture's manifest lists."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            found.update(v for k, v in node.items() if k == "sha256" and isinstance(v, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(path.read_text()))
    return found


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def check_ours(key: str, guest: images.Guest, work: Path) -> None:
    """Our extraction is right: equal to the tree's files, or listed in the fixture's manifest.

    For a fixture, the extracted files become the host copies of the plain-copy floor.
    """
    out = work / "check-ours"
    out.mkdir(exist_ok=True)
    items = boot_once(OURS, guest.image, out)
    if isinstance(items, str):
        raise BenchError(f"{key}: our pygrub failed: {items}")
    kernel = Path(items["kernel"])
    ramdisk = Path(items["ramdisk"]) if "ramdisk" in items else None
    if key in MANIFESTS:
        # The fixture's config may name no initrd (ReiserFS's does not).
        extracted = [kernel] if ramdisk is None else [kernel, ramdisk]
        listed = manifest_hashes(MANIFESTS[key])
        if any(sha256(path) not in listed for path in extracted):
            raise BenchError(f"{key}: our extraction is not in the fixture's manifest")
        guest.kernel = kernel.rename(work / "fixture-kernel")
        guest.initrd = ramdisk.rename(work / "fixture-initrd") if ramdisk else None
        guest.note = (
            f"{guest.kernel.stat().st_size / MiB:.2f} MiB kernel"
            + (f" + {guest.initrd.stat().st_size / MiB:.2f} MiB initrd" if guest.initrd else "")
            + " (the fixture's)"
        )
        return
    if ramdisk is None:
        raise BenchError(f"{key}: our pygrub extracted no ramdisk")
    if not filecmp.cmp(kernel, guest.kernel, shallow=False) or not filecmp.cmp(
        ramdisk, guest.initrd, shallow=False
    ):
        raise BenchError(f"{key}: our extraction differs from the tree")


def check_xen(guest: images.Guest, work: Path) -> str | None:
    """None when Xen's pygrub extracts the right files, else why not (its message)."""
    out = work / "check-xen"
    out.mkdir(exist_ok=True)
    items = boot_once([XEN_PYGRUB], guest.image, out)
    if isinstance(items, str):
        return items
    if not items.get("kernel") or bool(items.get("ramdisk")) != bool(guest.initrd):
        return "no kernel or ramdisk in its output"
    same = filecmp.cmp(items["kernel"], guest.kernel, shallow=False) and (
        guest.initrd is None or filecmp.cmp(items["ramdisk"], guest.initrd, shallow=False)
    )
    return None if same else "extracts other bytes"


def bench_one(
    key: str, builder: Builder, tree: Path, work: Path, runs: int, note: str
) -> tuple[dict[str, Sample], str]:
    """The samples of the three commands on this format, and the payload's description."""
    image = builder(work, tree)
    guest = images.guest_of(image, tree, note)
    check_ours(key, guest, work)
    xen_problem = check_xen(guest, work) if os.path.exists(XEN_PYGRUB) else "not installed"
    out = work / "out"
    out.mkdir(exist_ok=True)
    plain = f"cat {guest.kernel} > {out}/k"
    if guest.initrd is not None:
        plain += f" && cat {guest.initrd} > {out}/r"
    commands = {
        "plain": ["sh", "-c", plain],
        "ours": [*OURS, "-q", f"--output-directory={out}", str(image)],
    }
    if xen_problem is None:
        commands["xen"] = [XEN_PYGRUB, "-q", f"--output-directory={out}", str(image)]
    samples = measure_side_by_side(commands, runs, out)
    if xen_problem is not None:
        samples["xen"] = Sample(failure=xen_problem)
    for failed in (name for name, s in samples.items() if s.failure and name != "xen"):
        raise BenchError(f"{key}: {failed} failed during the runs: {samples[failed].failure}")
    image.unlink()
    return samples, guest.note


def row(name: str, note: str, samples: dict[str, Sample]) -> list[str]:
    plain, ours, xen = samples["plain"], samples["ours"], samples["xen"]
    return [
        name,
        note,
        seconds(plain),
        seconds(ours),
        seconds(xen),
        ratio(ours, xen),
        ratio(ours, plain),
        f"{ours.peak_mib:.1f}",
    ]


HEADERS = (
    "format",
    "payload",
    "plain copy s",
    "ours s",
    "Xen 4.17 s",
    "ours/Xen",
    "ours/copy",
    "our peak RSS MiB",
)


def run(keys: list[str], runs: int, kernel_mb: int, initrd_mb: int) -> str:
    """The Markdown section: what was measured, the machine's load, the table."""
    compile_sources()
    note = f"{kernel_mb} + {initrd_mb} MiB"
    before = load_note()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pygrub-bench-") as tmp:
        tree = images.make_tree(
            Path(tmp) / "tree",
            lambda p: write_random(p, kernel_mb * MiB),
            lambda p: write_random(p, initrd_mb * MiB),
        )
        for key in keys:
            name, builder = FORMATS[key]
            work = Path(tmp) / key
            work.mkdir()
            try:
                samples, payload = bench_one(key, builder, tree, work, runs, note)
            except BenchError as e:
                rows.append([name, note, "–", f"not measured: {e}", "–", "–", "–", "–"])
                continue
            finally:
                print(f"  {key} done", file=sys.stderr)
            rows.append(row(name, payload, samples))
            shutil.rmtree(work, ignore_errors=True)
    return (
        "\n".join(
            [
                f"Extraction, `pygrub -q`: median of {runs} runs each, interleaved; both pygrubs "
                f"under {python_note()}. Machine: {before} before, {load_note()} after.",
                "",
                markdown_table(HEADERS, rows),
            ]
        )
        + failures_note()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--kernel-mb", type=int, default=8)
    parser.add_argument("--initrd-mb", type=int, default=64)
    parser.add_argument("--only", default=",".join(FORMATS), help="comma-separated keys")
    a = parser.parse_args()
    keys = [k for k in a.only.split(",") if k]
    unknown = [k for k in keys if k not in FORMATS]
    if unknown:
        parser.error(f"unknown formats {unknown}; known: {', '.join(FORMATS)}")
    print(run(keys, a.runs, a.kernel_mb, a.initrd_mb))


if __name__ == "__main__":
    main()
