"""Unified kernel images for tests: built as dracut, mkinitcpio and ukify build them (the
real systemd EFI stub, Debian's systemd-boot-efi, with sections added by objcopy; Debian 12
has no ukify), read back by binutils' objdump, damaged the ways the hostile tests need,
and booted through the whole command."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from imaging import run

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
KERNEL = bytes((i * 7 + i // 251) % 256 for i in range(300_000))
UCODE = b"GenuineIntel microcode\n" * 43 + b"end!"  # 993 bytes: padded to 996
INITRD = b"070701" + bytes(range(256)) * 40
OSREL = 'NAME="Debian GNU/Linux"\nID=debian\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
OSREL += 'VERSION_ID="12"\n'
CMDLINE = "root=/dev/xvda2 ro  console=hvc0\n"


def require_stub(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing (apt-get install systemd-boot-efi; .ci/run does)")
    return path


def build_uki(directory: Path, name: str, sections: dict[str, bytes]) -> Path:
    """A UKI as the tools build one: the systemd stub plus sections added by objcopy."""
    args: list[str | Path] = []
    for index, (section, data) in enumerate(sections.items()):
        part = directory / f"{name}{section}"
        part.write_bytes(data)
        args += [
            "--add-section",
            f"{section}={part}",
            "--change-section-vma",
            f"{section}={0x2000000 + index * 0x1000000:#x}",
        ]
    out = directory / name
    run("objcopy", *args, require_stub(STUB), out)
    return out


def objdump_sections(path: Path) -> dict[str, tuple[int, int]]:
    """Section name -> (file offset, size) as binutils' objdump -h reads the PE header."""
    found = {}
    for line in run("objdump", "-h", path).decode().splitlines():
        # Idx Name Size VMA LMA File-off Algn
        m = re.match(r"\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)", line)
        if m:
            found[m[1]] = (int(m[3], 16), int(m[2], 16))
    return found


def full_sections(kernel: bytes = KERNEL) -> dict[str, bytes]:
    return {
        ".osrel": OSREL.encode(),
        ".cmdline": CMDLINE.encode(),
        ".linux": kernel,
        ".ucode": UCODE,
        ".initrd": INITRD,
    }


def run_pygrub(image: Path, tmp: Path, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The whole command as libxl runs it; returns the process and the simple0 items."""
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    output = tmp / "output"
    output.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "pygrub", "-q", "--output-format=simple0",
         f"--output={output}", f"--output-directory={out}", *options, str(image)],
        capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    items = dict(item.split(" ", 1) for item in output.read_text().split("\0") if item)
    return proc, items


def padded(*parts: bytes) -> bytes:
    """Several initrds as one ramdisk: each padded to 4 bytes, as GRUB and pygrub load them."""
    return b"".join(p + bytes(-len(p) % 4) for p in parts)


#: Ways a UKI is damaged: each leaves it unreadable by any loader.
DAMAGES = ("truncated", "section past the end", "huge section count", "no PE signature")


def damaged(efi: Path, damage: str) -> bytes:
    """The bytes of ``efi`` damaged as ``damage`` (one of DAMAGES) says."""
    data = bytearray(efi.read_bytes())
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    if damage == "truncated":
        data = data[: objdump_sections(efi)[".initrd"][0] + 100]
    elif damage == "section past the end":
        table = pe + 24 + struct.unpack_from("<H", data, pe + 20)[0]
        struct.pack_into("<I", data, table + 20, len(data))  # PointerToRawData of section 0
    elif damage == "huge section count":
        struct.pack_into("<H", data, pe + 6, 0xFFFF)
    else:
        data[pe : pe + 4] = b"XX\0\0"
    return bytes(data)
