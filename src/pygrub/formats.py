"""The names of the formats pygrub reads and writes, written once: what ``--format`` and
``--output-format`` accept, the library's ``IMAGE_FORMATS``, and what the readers check."""

from __future__ import annotations

#: Disk image formats: sniff the magic, or trust the caller (as libguestfs's format=).
IMAGE_FORMATS = ("auto", "raw", "qcow2")
#: What the toolstack reads: Xen's three, and pygrub's JSON (output.schema.json).
OUTPUT_FORMATS = ("sxp", "simple", "simple0", "json")
