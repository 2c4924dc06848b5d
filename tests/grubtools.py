"""GRUB's own programs as oracles: grub-editenv writes environment blocks, grub-emu runs
a grub.cfg (and reads a disk image through a device map) and shows what it printed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from imaging import require_tool, run

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_WELCOME = "Welcome to GRUB!\n"


def editenv(path: Path, **values: str) -> bytes:
    """An environment block written by grub-editenv itself: ``path`` is created (1024
    bytes) unless it exists, as a 512-byte block laid out by the caller may."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        run("grub-editenv", path, "create")
    if values:
        run("grub-editenv", path, "set", *(f"{k}={v}" for k, v in values.items()))
    return path.read_bytes()


def grub_emu(text: str, directory: Path, halt: bool = True, disk: Path | None = None) -> str:
    """What grub-emu's console shows for grub.cfg = text, minus colours and error lines.

    ``disk`` is GRUB's (hd0); without it grub-emu sees no disk."""
    tool = require_tool("grub-emu")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "grub.cfg").write_text(text + ("\nhalt\n" if halt else "\n"))
    device_map = "/dev/null"
    if disk is not None:
        device_map = str(directory / "device.map")
        Path(device_map).write_text(f"(hd0) {disk}\n")
    proc = subprocess.run(
        [tool, "-d", str(directory), "-m", device_map],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    out = _ANSI.sub("", proc.stdout.decode("utf-8", "replace")).replace("\r", "")
    if _WELCOME not in out:
        pytest.fail(f"grub-emu did not start: {proc.stderr.decode(errors='replace')[:500]}")
    out = out.split(_WELCOME, 1)[1].lstrip("\n")
    return "".join(line for line in out.splitlines(True) if not line.startswith("error: "))
