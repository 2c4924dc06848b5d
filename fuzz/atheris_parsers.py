#!/usr/bin/env python3
"""Coverage-guided fuzzing of one format's parsers with atheris (libFuzzer for Python).

    pip install '.[fuzz]'
    python fuzz/atheris_parsers.py ext4 -max_total_time=300 -artifact_prefix=crashes/ corpus/

TARGET is a guest of tests/hostile.py (ext4, fat16, btrfs-zstd, f2fs, qcow2-zlib, lvm, ...). A
whole disk image is too big for libFuzzer to mutate well, so the fuzzer's input is an
edit script applied to that guest's base image, aimed at its metadata: each 8-byte
record is (region selector, offset in the region, operation, value). The edited image
goes through the library's own pipeline (volumes, filesystem probe, config, entry
choice) and its kernel and initrd are read; any exception other than pygrub's own
errors is a crash. Crash inputs replay with ``python fuzz/atheris_parsers.py TARGET FILE``.
"""

from __future__ import annotations

import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import atheris  # noqa: E402
import hostile  # noqa: E402

# Every reader and loader now, inside the context, so that coverage guides into them all.
with atheris.instrument_imports():
    from pygrub.boot import open_guest, plan_boot
    from pygrub.disk import MemorySource
    from pygrub.disk.qcow2 import Qcow2Source, is_qcow2
    from pygrub.errors import Interrupted, PygrubError

    hostile.warm_imports()

#: One edit: region selector, offset within the region, operation, value.
EDIT = struct.Struct("<HIBB")
#: Bytes of the kernel and initrd read per input (what extraction would copy).
READ_LIMIT = 64 << 20
CHUNK = 1 << 20


def apply_edits(base: bytes, regions: list[tuple[int, int]], script: bytes) -> bytes:
    """The base image with the script's edits: bit flips, byte values, zeroed sectors,
    absurd 32-bit words, and a truncation."""
    image = bytearray(base)
    for selector, where, op, value in EDIT.iter_unpack(
        script[: len(script) // EDIT.size * EDIT.size]
    ):
        start, end = regions[selector % len(regions)]
        at = start + where % (end - start)
        if at >= len(image):
            continue  # cut off by an earlier truncation
        kind = op % 5
        if kind == 0:
            image[at] ^= 1 << (value % 8)
        elif kind == 1:
            image[at] = value
        elif kind == 2:
            at -= at % 512
            image[at : at + 512] = bytes(len(image[at : at + 512]))
        elif kind == 3:
            word = hostile.absurd_values(4, len(base))[value % 18]
            image[at : at + 4] = word.to_bytes(4, "little")[: len(image) - at]
        else:
            del image[at:]
    return bytes(image)


def boot_and_read(image: bytes) -> None:
    """What the command does with an image, in-process, reading the files it would copy."""
    source = MemorySource(image)
    disk = Qcow2Source(source) if is_qcow2(image[:4]) else source
    plan = plan_boot(open_guest(disk))
    for ref in [plan.kernel, *plan.initrds]:
        with ref.fs.open(ref.path) as f:
            left = READ_LIMIT
            while left > 0 and (chunk := f.read(min(CHUNK, left))):
                left -= len(chunk)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in hostile.BUILDERS:
        sys.exit(f"usage: {sys.argv[0]} TARGET [libFuzzer flags] [corpus]\n"
                 f"targets: {', '.join(hostile.BUILDERS)}")  # fmt: skip
    target = sys.argv.pop(1)
    guest = hostile.BUILDERS[target](Path(tempfile.mkdtemp(prefix="atheris-")), target)
    base = guest.image.read_bytes()
    regions = [r for r in guest.regions if r[1] > r[0]] or [(0, len(base))]

    def one_input(script: bytes) -> None:
        try:
            boot_and_read(apply_edits(base, regions, script))
        except (PygrubError, Interrupted):
            pass

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
