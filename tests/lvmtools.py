"""LVM2's own tools on loop devices, for tests that need real PVs, VGs and LVs.

The tools run without device-mapper (``--driverloaded n``, LVs never activated) and with
a private lvm.conf that sees only the test's loop devices; filesystems are written into
an LV at the places ``lvs --segments`` reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from imaging import require_tool, run

LVM_CONF = """\
devices {{
    filter = [ {accept} "r|.*|" ]
    obtain_device_list_from_udev = 0
    use_devicesfile = 0
    scan_lvs = 0
    hints = "none"
    md_component_detection = 0
    multipath_component_detection = 0
    pv_min_size = 512
}}
activation {{
    udev_sync = 0
    udev_rules = 0
}}
backup {{
    backup = 0
    archive = 0
}}
"""


@contextmanager
def loop_devices(image: Path, spans: list[tuple[int, int]]) -> Iterator[list[str]]:
    """Loop devices over byte ranges of ``image``, detached on the way out."""
    losetup = require_tool("losetup")
    devices: list[str] = []
    try:
        for offset, size in spans:
            out = run("losetup", "-f", "--show", "-o", str(offset), "--sizelimit", str(size), image)
            devices.append(out.decode().strip())
        yield devices
    finally:
        for device in devices:
            subprocess.run([losetup, "-d", device], capture_output=True)


class Lvm:
    """LVM2's commands with a private configuration that sees exactly ``devices``."""

    def __init__(self, root: Path, devices: list[str]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        accept = "".join(f'"a|^{re.escape(d)}$|", ' for d in devices)
        (root / "lvm.conf").write_text(LVM_CONF.format(accept=accept))
        self.env = {**os.environ, "LVM_SYSTEM_DIR": str(root), "LVM_SUPPRESS_FD_WARNINGS": "1"}
        self.tool = require_tool("lvm")

    def __call__(self, command: str, *args: str) -> bytes:
        argv = [self.tool, command, "--driverloaded", "n", *args]
        proc = subprocess.run(argv, env=self.env, capture_output=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            pytest.fail(f"lvm {command} {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
        return proc.stdout

    def report(self, command: str, *args: str) -> list[dict[str, str]]:
        out = self(command, "--reportformat", "json", "--units", "b", "--nosuffix", *args)
        (report,) = json.loads(out)["report"]
        (rows,) = report.values()
        return rows


@dataclass
class LvmDisk:
    """A disk image whose PVs were made by LVM2, with LVM2's own reports of it."""

    path: Path
    #: PV device name -> its byte offset on the disk image.
    pv_offsets: dict[str, int]
    #: lvs --segments rows, pvs rows, the extent size in bytes.
    segments: list[dict[str, str]]
    pvs: list[dict[str, str]]
    extent: int
    #: LV name -> lv_size in bytes as lvs reports it.
    lv_sizes: dict[str, int]
    #: LV name -> GRUB's "lvmid/VG-UUID/LV-UUID" name of it, from the UUIDs lvs reports.
    lvmids: dict[str, str]
    #: LV name -> the bytes written into it.
    contents: dict[str, bytes]


def lvm_disk(
    tmp: Path,
    disk: Path,
    spans: list[tuple[int, int]],
    vg: str,
    commands: list[tuple[str, ...]],
) -> LvmDisk:
    """PVs over ``spans`` of ``disk``, one VG ``vg``, then ``commands`` (lvcreate, lvextend...)."""
    with loop_devices(disk, spans) as devices:
        lvm = Lvm(tmp / "lvm-etc", devices)
        lvm("pvcreate", "-q", *devices)
        lvm("vgcreate", "-q", "-s", "1M", vg, *devices)
        for command, *args in commands:
            lvm(command, "-q", *(a.format(*devices) for a in args))
        segments = lvm.report(
            "lvs",
            "--segments",
            "-o",
            "lv_name,seg_start,seg_size,stripes,stripe_size,seg_pe_ranges",
            vg,
        )
        pvs = lvm.report("pvs", "-o", "pv_name,pv_uuid,pe_start", *devices)
        (vg_row,) = lvm.report("vgs", "-o", "vg_extent_size", vg)
        lvs = lvm.report("lvs", "-o", "lv_name,lv_size,lv_uuid,vg_uuid", vg)
        lv_sizes = {r["lv_name"]: int(r["lv_size"]) for r in lvs}
        lvmids = {r["lv_name"]: f"lvmid/{r['vg_uuid']}/{r['lv_uuid']}" for r in lvs}
        pv_offsets = {d: offset for d, (offset, _) in zip(devices, spans, strict=True)}
    extent = int(vg_row["vg_extent_size"])
    return LvmDisk(disk, pv_offsets, segments, pvs, extent, lv_sizes, lvmids, {})


def lvs_extents(d: LvmDisk, lv: str) -> Iterator[tuple[int, int, int]]:
    """(LV byte, disk byte, length) runs of ``lv`` as lvs --segments places them."""
    pe_start = {p["pv_name"]: int(p["pe_start"]) for p in d.pvs}
    for seg in (s for s in d.segments if s["lv_name"] == lv):
        start, size = int(seg["seg_start"]), int(seg["seg_size"])
        stripes = int(seg["stripes"])
        chunk = int(seg["stripe_size"]) if stripes > 1 else size
        places = []
        for part in seg["seg_pe_ranges"].split():
            device, first, _last = re.fullmatch(r"(.+):(\d+)-(\d+)", part).groups()
            places.append(d.pv_offsets[device] + pe_start[device] + int(first) * d.extent)
        for n, lv_byte in enumerate(range(start, start + size, chunk)):
            row, stripe = divmod(n, stripes)
            yield lv_byte, places[stripe] + row * chunk, chunk


def write_lv(d: LvmDisk, lv: str, data: bytes) -> None:
    assert len(data) == d.lv_sizes[lv]
    with open(d.path, "r+b") as f:
        for lv_byte, disk_byte, length in lvs_extents(d, lv):
            f.seek(disk_byte)
            f.write(data[lv_byte : lv_byte + length])
    d.contents[lv] = data
