"""Unified kernel images (Boot Loader Specification type #2): a PE file whose sections hold
the kernel (.linux), the initrd (.initrd), the command line (.cmdline) and an os-release
(.osrel).

Only the headers and the two small text sections are read here; .linux and .initrd are
located (file offset and length) for a later extraction, never loaded. The kernel boots
with the initrds systemd-stub would hand it: .ucode (CPU microcode) first, then .initrd.

systemd-boot (:mod:`.systemd_boot`) and GRUB 2.14's ``uki`` and ``chainloader``
(:mod:`.grub2.blsuki`) list and boot these images. ``load`` is the config format of an
EFI System Partition that holds only them in /EFI/Linux, with no loader to read: the
firmware's boot entries naming them live in its NVRAM, which a disk image does not hold,
so the menu is the one systemd-boot would show of them (newest first by .osrel's
IMAGE_VERSION or VERSION_ID, then by file name), and its first entry boots.
"""

from __future__ import annotations

import struct

from .._typing import TYPE_CHECKING
from ..errors import CorruptError, LimitError
from ..fs import Filesystem
from ..fs.base import FileReader
from ..record import field, record

if TYPE_CHECKING:
    from typing import Any


# IMAGE_DOS_HEADER: e_magic "MZ", ..., e_lfanew (file offset of the PE signature) at 0x3c.
DOS_HEADER = struct.Struct("<2s58xI")
PE_SIGNATURE = b"PE\0\0"
# IMAGE_FILE_HEADER: Machine, NumberOfSections, TimeDateStamp, PointerToSymbolTable,
# NumberOfSymbols, SizeOfOptionalHeader, Characteristics.
COFF_HEADER = struct.Struct("<HHIIIHH")
# IMAGE_SECTION_HEADER: Name[8], VirtualSize, VirtualAddress, SizeOfRawData,
# PointerToRawData, PointerToRelocations, PointerToLinenumbers, NumberOfRelocations,
# NumberOfLinenumbers, Characteristics.
SECTION_HEADER = struct.Struct("<8sIIIIIIHHI")

#: The PE/COFF specification's limit (the Windows loader's too).
MAX_SECTIONS = 96
#: Where e_lfanew may point: headers sit at the start of the file.
MAX_HEADER_OFFSET = 1 << 20
#: .osrel and .cmdline are a few hundred bytes; anything past this is not a UKI we read.
MAX_TEXT_SECTION = 64 << 10
_TEXT_SECTIONS = (".osrel", ".cmdline")
#: The sections systemd-stub passes as initrds, in the order the kernel receives them.
INITRD_SECTIONS = (".ucode", ".initrd")


@record(frozen=True)
class Section:
    name: str
    #: Where its bytes are in the file, and how many of them there are.
    offset: int
    size: int


@record
class UnifiedKernelImage:
    path: str
    sections: dict[str, Section]
    os_release: dict[str, str] = field(default_factory=dict)
    cmdline: str = ""

    def kernel_range(self) -> tuple[int, int]:
        """(offset, length) of the kernel: the .linux section."""
        linux = self.sections[".linux"]
        return linux.offset, linux.size

    def initrd_ranges(self) -> list[tuple[int, int]]:
        """(offset, length) of each initrd section present and not empty, in load order."""
        found = (self.sections.get(name) for name in INITRD_SECTIONS)
        return [(s.offset, s.size) for s in found if s is not None and s.size]


def read_uki(fs: Filesystem, path: str) -> UnifiedKernelImage | None:
    """The image's sections and texts; None when the PE file has no .linux or no .osrel."""
    with fs.open(path) as f:
        size = f.size
        sections = section_table(f, size, path)
        if ".linux" not in sections or ".osrel" not in sections:
            return None
        texts = {}
        for name in _TEXT_SECTIONS:
            section = sections.get(name)
            if section is None:
                texts[name] = ""
                continue
            if section.size > MAX_TEXT_SECTION:
                raise LimitError(f"{path}: {name} section of {section.size} bytes")
            f.seek(section.offset)
            texts[name] = decode_text(f.read(section.size))
    return UnifiedKernelImage(
        path, sections, parse_os_release(texts[".osrel"]), stub_cmdline(texts[".cmdline"])
    )


def read_exact(f: FileReader[Any], offset: int, length: int, what: str, path: str) -> bytes:
    f.seek(offset)
    data = f.read(length)
    if len(data) != length:
        raise CorruptError(f"{path}: {what} at offset {offset} is past the end of the file")
    return data


def section_table(f: FileReader[Any], size: int, path: str) -> dict[str, Section]:
    """Name -> Section for each section, the first of a name winning (later ones belong to
    extra profiles of a multi-profile image)."""
    magic, pe_offset = DOS_HEADER.unpack(read_exact(f, 0, DOS_HEADER.size, "DOS header", path))
    if magic != b"MZ":
        raise CorruptError(f"{path}: no MZ signature at offset 0")
    if not DOS_HEADER.size <= pe_offset <= MAX_HEADER_OFFSET:
        raise CorruptError(f"{path}: PE header offset {pe_offset} at offset 0x3c is implausible")
    header = read_exact(f, pe_offset, 4 + COFF_HEADER.size, "PE header", path)
    if header[:4] != PE_SIGNATURE:
        raise CorruptError(f"{path}: no PE signature at offset {pe_offset}")
    _machine, count, _, _, _, optional_size, _ = COFF_HEADER.unpack(header[4:])
    if count > MAX_SECTIONS:
        raise LimitError(f"{path}: {count} sections in the PE header at offset {pe_offset}")
    table_offset = pe_offset + 4 + COFF_HEADER.size + optional_size
    table = read_exact(f, table_offset, count * SECTION_HEADER.size, "section table", path)
    sections: dict[str, Section] = {}
    for index in range(count):
        fields = SECTION_HEADER.unpack_from(table, index * SECTION_HEADER.size)
        raw_name, virtual_size, _, raw_size, raw_offset = fields[:5]
        name = raw_name.rstrip(b"\0").decode("ascii", "replace")
        # The file holds SizeOfRawData bytes (padded to the file alignment); VirtualSize
        # is what the section really is when it is smaller.
        length = min(virtual_size, raw_size) if virtual_size else raw_size
        if raw_offset + length > size:
            where = table_offset + index * SECTION_HEADER.size
            raise CorruptError(
                f"{path}: section {name!r} (header at offset {where}) ends past the file"
            )
        sections.setdefault(name, Section(name, raw_offset, length))
    return sections


def decode_text(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


def stub_cmdline(text: str) -> str:
    """The command line as systemd-stub passes it on (mangle_stub_cmdline): each control
    character or DEL becomes a blank, and blanks at either end are dropped."""
    return "".join(" " if c <= " " or c == "\x7f" else c for c in text).strip(" ")


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of os-release(5); quotes around a value are removed."""
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        fields[key.strip()] = value
    return fields
