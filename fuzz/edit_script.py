"""What one fuzz input does, without atheris: shared by fuzz/atheris_parsers.py, which
instruments it, and tests/test_fuzz_corpus.py, which replays the committed corpus.

A whole disk image is too big for libFuzzer to mutate well, so an input is an edit
script applied to a guest of tests/hostile.py, aimed at its metadata: each 8-byte record
is (region selector, offset in the region, operation, value). The edited image goes
through the library's own pipeline (volumes, filesystem probe, config, entry choice) and
its kernel and initrd are read; any exception other than pygrub's own errors is a crash.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import hostile  # noqa: E402

from pygrub.boot import open_guest, plan_boot  # noqa: E402
from pygrub.disk import MemorySource  # noqa: E402
from pygrub.disk.qcow2 import Qcow2Source, is_qcow2  # noqa: E402
from pygrub.errors import Interrupted, PygrubError  # noqa: E402

#: One edit: region selector, offset within the region, operation, value.
EDIT = struct.Struct("<HIBB")
#: Bytes of the kernel and initrd read per input (what extraction would copy).
READ_LIMIT = 64 << 20
CHUNK = 1 << 20
#: Where each target's corpus grows (make fuzz-long) and is replayed from (CI).
CORPUS = ROOT / "fuzz" / "corpus"


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


@dataclass
class Target:
    """A hostile guest's base image and the regions its edit scripts aim at."""

    name: str
    base: bytes
    regions: list[tuple[int, int]]

    def run(self, script: bytes) -> None:
        """One fuzz input: pygrub's own errors are a correct refusal; anything else raises."""
        try:
            boot_and_read(apply_edits(self.base, self.regions, script))
        except (PygrubError, Interrupted):
            pass


def build_target(name: str, tmp: Path) -> Target:
    """The hostile guest ``name`` (tests/hostile.py BUILDERS), built in ``tmp``."""
    guest = hostile.BUILDERS[name](tmp, name)
    base = guest.image.read_bytes()
    regions = [r for r in guest.regions if r[1] > r[0]] or [(0, len(base))]
    return Target(name, base, regions)
