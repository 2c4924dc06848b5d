"""ISO 9660 (ECMA-119) with Joliet and Rock Ridge (SUSP 1.12, RRIP 1.12), read-only.

Which tree is read follows GRUB: the primary volume's tree with Rock Ridge names when
its root carries SUSP and Rock Ridge; otherwise a Joliet supplementary tree (UCS-2
names) when there is one; otherwise the primary tree's own names, without case.

Every directory record and System Use entry is checked against the bytes that hold it
before a field is used (the classes of bug behind Xen's XSA-497 in libfsimage): short
records, a System Use area shorter than the SUSP skip, entries of length zero or past
their area, NM entries without a flags byte, and continuation areas outside their
block or the image are all CorruptErrors. Continuation areas per record are bounded.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .._typing import NamedTuple
from ..disk import ByteSource
from ..errors import CorruptError, LimitError, UnsupportedError
from ..record import record
from .base import Extent, ExtentKind, Filesystem, NodeType, Stat
from .directory import ListingCache, entry_name

SECTOR = 2048
#: Volume descriptors start at sector 16 (ECMA-119 6.2.1, after the System Area).
FIRST_DESCRIPTOR = 16
#: Descriptors read before the terminator must have appeared.
MAX_DESCRIPTORS = 64
STANDARD_ID = b"CD001"
TYPE_PRIMARY = 1
TYPE_SUPPLEMENTARY = 2
TYPE_TERMINATOR = 255
#: Joliet's escape sequences for UCS-2 levels 1, 2 and 3.
JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")
#: The largest directory read; with records of at least 34 bytes this is ~2M entries.
MAX_DIR_BYTES = 64 << 20
#: Sections of one multi-extent file (each up to 4 GiB).
MAX_SECTIONS = 4096
#: Continuation areas followed for one directory record (Linux: RR_MAX_CE_ENTRIES).
MAX_CONTINUATIONS = 32
#: Longest Rock Ridge name or symlink accepted (bytes, after joining the pieces).
MAX_RR_NAME = 1024


@record(frozen=True)
class Descriptor:
    """A volume descriptor's fields, its modification date and where it is."""

    fields: VolumeDescriptor
    modified: bytes  # Volume Modification Date and Time: 16 digits and a zone byte
    offset: int

    @property
    def root_record_offset(self) -> int:
        return self.offset + ROOT_RECORD_OFFSET


class VolumeDescriptor(NamedTuple):
    """The primary or a supplementary volume descriptor, bytes 0..189 (ECMA-119 8.4)."""

    type: int  # Volume Descriptor Type
    standard_id: bytes  # Standard Identifier, "CD001"
    version: int  # Volume Descriptor Version
    system_id: bytes  # System Identifier
    volume_id: bytes  # Volume Identifier
    space_size: int  # Volume Space Size (little-endian half)
    escapes: bytes  # Escape Sequences (supplementary only; Joliet's level)
    set_size: int  # Volume Set Size
    sequence: int  # Volume Sequence Number
    block_size: int  # Logical Block Size
    path_table_size: int  # Path Table Size
    path_table_l: int  # Location of Occurrence of Type L Path Table
    path_table_l_opt: int  # Location of Optional Occurrence of Type L Path Table
    root_record: bytes  # Directory Record for Root Directory


_VOLUME_DESCRIPTOR = struct.Struct("<B5sBx32s32s8xI4x32sH2xH2xH2xI4xII8x34s")
ROOT_RECORD_OFFSET = 156
#: Volume Modification Date and Time (ECMA-119 8.4.27): the digits GRUB makes a UUID of.
MODIFICATION_DATE = slice(830, 847)


class DirectoryRecord(NamedTuple):
    """The fixed part of a directory record (ECMA-119 9.1), 33 bytes."""

    length: int  # Length of Directory Record (LEN_DR)
    xa_length: int  # Extended Attribute Record Length
    location: int  # Location of Extent (little-endian half)
    data_length: int  # Data Length (little-endian half)
    recorded: bytes  # Recording Date and Time
    flags: int  # File Flags
    unit_size: int  # File Unit Size (interleaved files)
    gap_size: int  # Interleave Gap Size
    sequence: int  # Volume Sequence Number
    name_length: int  # Length of File Identifier (LEN_FI)


_DIRECTORY_RECORD = struct.Struct("<BBI4xI4x7sBBBH2xB")
RECORD_FIXED = _DIRECTORY_RECORD.size  # 33
FLAG_DIRECTORY = 0x02
FLAG_ASSOCIATED = 0x04
FLAG_MULTI_EXTENT = 0x80

# SUSP (IEEE P1281) and RRIP (IEEE P1282) entries: signature, length, version, data.
SUSP_HEADER = 4
_SP = struct.Struct("<2sBB2sB")  # "SP", LEN, version, check bytes 0xBE 0xEF, LEN_SKP
SP_CHECK = b"\xbe\xef"
_CE = struct.Struct("<4xI4xI4xI4x")  # block, offset, length: each both-endian, little half used
_PX_MODE = struct.Struct("<4xI")  # POSIX file mode (both-endian, little half)
PX_MIN_LENGTH = 36  # RRIP 1.10; 1.12 adds a serial number (44)
_CL = struct.Struct("<4xI")  # child directory location
NM_CONTINUE, NM_CURRENT, NM_PARENT = 0x01, 0x02, 0x04
SL_COMPONENT_CONTINUE, SL_CURRENT, SL_PARENT, SL_ROOT = 0x01, 0x02, 0x04, 0x08
S_IFMT, S_IFREG, S_IFLNK = 0o170000, 0o100000, 0o120000

# -- nodes -------------------------------------------------------------------------------


@record(frozen=True)
class IsoNode:
    type: NodeType
    size: int
    #: (volume byte offset, length) of each section of the data, in file order.
    sections: tuple[tuple[int, int], ...]
    mode: int = 0
    target: bytes = b""
    #: Volume offset of the directory record, for messages (-1: from a volume descriptor).
    record: int = -1
    #: Why the data cannot be read as plain sections, if it cannot.
    unreadable: str = ""


@record(frozen=True)
class Record:
    """One directory record, checked to lie inside its sector."""

    offset: int  # volume offset
    fixed: DirectoryRecord
    name: bytes  # File Identifier
    raw: bytes  # the whole record
    #: Where the System Use area starts in ``raw``: after the name and its padding byte.
    system_use: int


@record
class RockRidge:
    """What the SUSP entries of one record say, as far as reading files goes."""

    name: bytes | None = None
    mode: int | None = None
    symlink: bytes | None = None
    child: int | None = None  # CL: a relocated directory's real location
    relocated: bool = False  # RE: this is the relocated copy; list it only via CL
    zisofs: bool = False
    dot: bool = False  # NM names "." or ".."
    extensions: bool = False  # ER seen (Rock Ridge in use)
    skip: int | None = None  # SP seen: its LEN_SKP


# -- parsing pieces ----------------------------------------------------------------------


def parse_record(sector: bytes, pos: int, base: int) -> Record:
    """The record at ``pos`` of a sector whose first byte is at volume offset ``base``."""
    where = base + pos
    length = sector[pos]
    if length < RECORD_FIXED + 1:
        raise CorruptError(f"iso9660: directory record at {where}: length {length} is below 34")
    if pos + length > len(sector):
        raise CorruptError(
            f"iso9660: directory record at {where}: {length} bytes cross the end of its sector"
        )
    fixed = DirectoryRecord._make(_DIRECTORY_RECORD.unpack_from(sector, pos))
    if fixed.name_length == 0 or RECORD_FIXED + fixed.name_length > length:
        raise CorruptError(
            f"iso9660: directory record at {where}: name of {fixed.name_length} bytes "
            f"does not fit its {length}-byte record"
        )
    name_end = RECORD_FIXED + fixed.name_length
    raw = sector[pos : pos + length]
    # A padding byte follows an even-length identifier (ECMA-119 9.1.12).
    return Record(
        where, fixed, raw[RECORD_FIXED:name_end], raw, name_end + 1 - fixed.name_length % 2
    )


def is_dot(record: Record) -> bool:
    return record.name in (b"\x00", b"\x01")


def plain_name(identifier: bytes) -> str:
    """A level 1-3 identifier as GRUB shows it: version gone, no trailing dot, lower case."""
    name = identifier.decode("utf-8", "surrogateescape")
    semicolon = name.rfind(";")
    if semicolon >= 0:
        name = name[:semicolon]
    if name.endswith("."):
        name = name[:-1]
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def joliet_name(identifier: bytes, where: int) -> str:
    if len(identifier) % 2:
        raise CorruptError(f"iso9660: Joliet name at {where} has an odd length {len(identifier)}")
    name = identifier.decode("utf-16-be", "surrogatepass")
    semicolon = name.rfind(";")
    return name[:semicolon] if semicolon >= 0 else name


def usable_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def susp_entries(area: bytes, where: int) -> Iterator[tuple[int, bytes]]:
    """(volume offset, whole entry) of each SUSP entry in one System Use or continuation
    area that starts at volume offset ``where``."""
    pos = 0
    # Fewer than four bytes left are padding (SUSP 5.1 allows one byte of it).
    while len(area) - pos >= SUSP_HEADER:
        length = area[pos + 2]
        if length < SUSP_HEADER:
            raise CorruptError(
                f"iso9660: SUSP entry at {where + pos} has length {length}, below its header"
            )
        if pos + length > len(area):
            raise CorruptError(
                f"iso9660: SUSP entry at {where + pos}: {length} bytes run past its "
                f"{len(area)}-byte area"
            )
        yield where + pos, area[pos : pos + length]
        pos += length


def symlink_components(entry: bytes, where: int, target: list[bytes], joined: bool) -> bool:
    """Append one SL entry's component records to ``target``; returns whether the last
    component continues into the next SL entry (RRIP 4.1.3.1).

    ``target`` holds path components; an empty first item stands for the root.
    """
    if len(entry) < 5:
        raise CorruptError(f"iso9660: SL entry at {where} of {len(entry)} bytes has no flags")
    pos = 5
    while pos < len(entry):
        if pos + 2 > len(entry) or pos + 2 + entry[pos + 1] > len(entry):
            raise CorruptError(f"iso9660: SL component at {where + pos} runs past its entry")
        flags, length = entry[pos], entry[pos + 1]
        content = entry[pos + 2 : pos + 2 + length]
        kind = flags & ~SL_COMPONENT_CONTINUE
        if kind == 0:
            if joined and target:
                target[-1] += content
            else:
                target.append(content)
            joined = bool(flags & SL_COMPONENT_CONTINUE)
        elif kind == SL_CURRENT:
            target.append(b".")
            joined = False
        elif kind == SL_PARENT:
            target.append(b"..")
            joined = False
        elif kind == SL_ROOT:
            target.clear()
            target.append(b"")
            joined = False
        else:
            raise UnsupportedError(
                f"iso9660: SL component at {where + pos} with flags {flags:#04x} "
                "(volume root or host)"
            )
        pos += 2 + length
    return joined


def symlink_text(components: list[bytes]) -> bytes:
    if components == [b""]:
        return b"/"
    return b"/".join(components)


def date_uuid(digits: bytes) -> str | None:
    """GRUB's UUID for an ISO: the date digits as YYYY-MM-DD-HH-MM-SS-CC."""
    if not digits.isdigit():
        return None
    text = digits.decode("ascii")
    parts = [text[0:4]] + [text[i : i + 2] for i in range(4, 16, 2)]
    return "-".join(parts)


# -- the filesystem ----------------------------------------------------------------------


def _folded_name(item: tuple[str, IsoNode]) -> tuple[str]:
    return (item[0].casefold(),)


class IsoFilesystem(Filesystem[IsoNode]):
    kind = "iso9660"

    def __init__(self, source: ByteSource, primary: Descriptor, joliet: Descriptor | None) -> None:
        super().__init__(source)
        self.rock_ridge = False
        self.joliet = False
        #: SUSP's LEN_SKP: bytes before the entries in every System Use area.
        self.susp_skip = 0
        self._listings: ListingCache[int, tuple[str, IsoNode]] = ListingCache()
        chosen = primary
        self._root = self._root_node(primary)
        if self._detect_rock_ridge(self._root):
            self.rock_ridge = True
        elif joliet is not None:
            chosen, self.joliet = joliet, True
            self._root = self._root_node(joliet)
            self.rock_ridge = self._detect_rock_ridge(self._root)
        self.case_insensitive = not (self.rock_ridge or self.joliet)
        # GRUB names the volume by the descriptor whose tree it reads.
        self.label = self._label(chosen.fields)
        self.uuid = date_uuid(chosen.modified[:16])

    # -- reading --------------------------------------------------------------------------

    def _read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or offset + length > self.source.size:
            raise CorruptError(
                f"iso9660: {what} at {offset} ({length} bytes) is outside the "
                f"{self.source.size}-byte image"
            )
        data = self.source.pread(offset, length)
        if len(data) != length:
            raise CorruptError(f"iso9660: short read of {what} at {offset}")
        return data

    def _records(self, node: IsoNode) -> Iterator[Record]:
        """Every record of a directory, sector by sector; a zero length ends a sector."""
        ((start, size),) = node.sections
        if size > MAX_DIR_BYTES:
            raise LimitError(
                f"iso9660: directory at {start} has {size} bytes, over {MAX_DIR_BYTES}"
            )
        for sector_start in range(0, size, SECTOR):
            length = min(SECTOR, size - sector_start)
            sector = self._read(start + sector_start, length, "directory sector")
            pos = 0
            while pos < length and sector[pos] != 0:
                record = parse_record(sector, pos, start + sector_start)
                yield record
                pos += record.fixed.length

    # -- Rock Ridge ---------------------------------------------------------------------------

    def _system_use(self, record: Record, skip: int) -> Iterator[tuple[bytes, bytes, int]]:
        """(signature, entry, volume offset) of a record's SUSP entries, continuations too."""
        start = record.system_use + skip
        if start > len(record.raw):
            raise CorruptError(
                f"iso9660: directory record at {record.offset}: its {len(record.raw)} bytes "
                f"end before its System Use area (at {record.system_use}, SUSP skip {skip})"
            )
        area, where = record.raw[start:], record.offset + start
        for _ in range(MAX_CONTINUATIONS + 1):
            continuation = None
            for at, entry in susp_entries(area, where):
                sig = entry[:2]
                if sig == b"ST":
                    return
                if sig == b"CE":
                    continuation = self._continuation(entry, at)
                    continue
                yield sig, entry, at
            if continuation is None:
                return
            where, area = continuation
        raise LimitError(
            f"iso9660: directory record at {record.offset} has over {MAX_CONTINUATIONS} "
            "continuation areas"
        )

    def _continuation(self, entry: bytes, where: int) -> tuple[int, bytes]:
        if len(entry) != 28:
            raise CorruptError(f"iso9660: CE entry at {where} has length {len(entry)}, not 28")
        block, offset, length = _CE.unpack(entry)
        if offset + length > SECTOR:
            raise CorruptError(
                f"iso9660: CE entry at {where}: {length} bytes at offset {offset} leave "
                f"block {block}"
            )
        start = block * SECTOR + offset
        if start + length > self.source.size:
            raise CorruptError(
                f"iso9660: CE entry at {where}: block {block} is outside the "
                f"{self.source.size}-byte image"
            )
        return start, self._read(start, length, "SUSP continuation area")

    def _rock_ridge(self, record: Record, skip: int) -> RockRidge:
        rr = RockRidge()
        name_parts: list[bytes] = []
        name_continues = True
        symlink: list[bytes] | None = None
        joined = False
        for sig, entry, where in self._system_use(record, skip):
            if sig == b"NM":
                if len(entry) < 5:
                    raise CorruptError(
                        f"iso9660: NM entry at {where} of {len(entry)} bytes has no flags"
                    )
                if entry[4] & (NM_CURRENT | NM_PARENT):
                    rr.dot = True
                elif name_continues:
                    name_parts.append(entry[5:])
                    name_continues = bool(entry[4] & NM_CONTINUE)
            elif sig == b"PX":
                if len(entry) < PX_MIN_LENGTH:
                    raise CorruptError(f"iso9660: PX entry at {where} of {len(entry)} bytes")
                (rr.mode,) = _PX_MODE.unpack_from(entry)
            elif sig == b"SL":
                symlink = [] if symlink is None else symlink
                joined = symlink_components(entry, where, symlink, joined)
            elif sig == b"CL":
                if len(entry) < _CL.size:
                    raise CorruptError(f"iso9660: CL entry at {where} of {len(entry)} bytes")
                (rr.child,) = _CL.unpack_from(entry)
            elif sig == b"RE":
                rr.relocated = True
            elif sig == b"ZF":
                rr.zisofs = True
            elif sig == b"ER":
                rr.extensions = True
            elif sig == b"SP":
                if len(entry) < _SP.size:
                    raise CorruptError(f"iso9660: SP entry at {where} of {len(entry)} bytes")
                _sig, _len, _version, check, skip_bytes = _SP.unpack_from(entry)
                if check == SP_CHECK:
                    rr.skip = skip_bytes
        if name_parts:
            rr.name = b"".join(name_parts)
            if len(rr.name) > MAX_RR_NAME:
                raise CorruptError(
                    f"iso9660: NM name of record at {record.offset} is {len(rr.name)} bytes"
                )
        if symlink is not None:
            rr.symlink = symlink_text(symlink)
        return rr

    def _detect_rock_ridge(self, root: IsoNode) -> bool:
        """Rock Ridge is in use when the root's "." record starts with SP and has ER."""
        first = next(self._records(root), None)
        if first is None or not is_dot(first):
            raise CorruptError(
                f"iso9660: root directory at {root.sections[0][0]} has no '.' record"
            )
        area = first.raw[first.system_use :]
        if len(area) < _SP.size or area[:2] != b"SP" or area[4:6] != SP_CHECK:
            return False
        rr = self._rock_ridge(first, 0)
        if rr.skip is None or not (rr.extensions or rr.mode is not None):
            return False
        self.susp_skip = rr.skip
        return True

    # -- nodes --------------------------------------------------------------------------------

    def _root_node(self, desc: Descriptor) -> IsoNode:
        where = desc.root_record_offset
        record = parse_record(desc.fields.root_record, 0, where)
        if not record.fixed.flags & FLAG_DIRECTORY:
            raise CorruptError(f"iso9660: root directory record at {where} is not a directory")
        return self._dir_node(record.fixed, where, 0)

    def _dir_node(self, fixed: DirectoryRecord, where: int, mode: int) -> IsoNode:
        # Its extent is checked against the image when it is read, not here, so that one
        # bad entry does not hide its siblings.
        start = (fixed.location + fixed.xa_length) * SECTOR
        return IsoNode(
            NodeType.DIR, fixed.data_length, ((start, fixed.data_length),), mode, record=where
        )

    def _relocated_dir(self, block: int, where: int, mode: int) -> IsoNode:
        """The directory a CL entry points to, sized by its own "." record."""
        start = block * SECTOR
        sector = self._read(start, SECTOR, "relocated directory")
        if sector[0] == 0:
            raise CorruptError(f"iso9660: CL entry of record at {where}: block {block} is empty")
        dot = parse_record(sector, 0, start)
        if not is_dot(dot) or not dot.fixed.flags & FLAG_DIRECTORY:
            raise CorruptError(
                f"iso9660: CL entry of record at {where}: block {block} is not a directory"
            )
        return self._dir_node(dot.fixed, dot.offset, mode)

    def _entry_name(self, record: Record, rr: RockRidge | None) -> str:
        if rr is not None and rr.name is not None:
            return rr.name.decode("utf-8", "surrogateescape")
        if self.joliet:
            return joliet_name(record.name, record.offset)
        return plain_name(record.name)

    def _node(self, records: list[Record], rr: RockRidge | None) -> IsoNode:
        first = records[0]
        fixed = first.fixed
        mode = rr.mode if rr is not None and rr.mode is not None else 0
        if fixed.flags & FLAG_DIRECTORY:
            return self._dir_node(fixed, first.offset, mode & 0o7777)
        if rr is not None and rr.child is not None:
            return self._relocated_dir(rr.child, first.offset, mode & 0o7777)
        if rr is not None and (rr.symlink is not None or mode & S_IFMT == S_IFLNK):
            target = rr.symlink or b""
            return IsoNode(NodeType.SYMLINK, len(target), (), mode & 0o7777, target, first.offset)
        node_type = NodeType.FILE
        if rr is not None and rr.mode is not None and mode & S_IFMT != S_IFREG:
            node_type = NodeType.OTHER
        sections = []
        size = 0
        for part in records:
            start = (part.fixed.location + part.fixed.xa_length) * SECTOR
            sections.append((start, part.fixed.data_length))
            size += part.fixed.data_length
        unreadable = ""
        if fixed.unit_size or fixed.gap_size:
            unreadable = "interleaved file"
        elif rr is not None and rr.zisofs:
            unreadable = "zisofs-compressed file"
        return IsoNode(
            node_type,
            size,
            tuple(sections),
            mode & 0o7777,
            record=first.offset,
            unreadable=unreadable,
        )

    def _files(self, node: IsoNode) -> Iterator[list[Record]]:
        """The records of a directory grouped per file: a multi-extent file has several."""
        group: list[Record] = []
        for section in self._records(node):
            if group and section.name != group[0].name:
                raise CorruptError(
                    f"iso9660: multi-extent file at {group[0].offset}: section at "
                    f"{section.offset} has another name"
                )
            group.append(section)
            if len(group) > MAX_SECTIONS:
                raise LimitError(
                    f"iso9660: file at {group[0].offset} has over {MAX_SECTIONS} sections"
                )
            if not section.fixed.flags & FLAG_MULTI_EXTENT:
                yield group
                group = []
        if group:
            raise CorruptError(
                f"iso9660: multi-extent file at {group[0].offset} has no final section"
            )

    # -- the Filesystem primitives ------------------------------------------------------------

    def root(self) -> IsoNode:
        return self._root

    def node_stat(self, node: IsoNode) -> Stat:
        return Stat(node.type, node.size, node.mode)

    def dir_entries(self, node: IsoNode) -> Iterator[tuple[str, IsoNode]]:
        """The directory's entries; a listing read to its end is kept for later lookups."""
        if node.type is not NodeType.DIR:
            return
        yield from self._listings.listing(node.sections[0][0], lambda: self._scan(node))

    def lookup(self, node: IsoNode, name: str) -> IsoNode | None:
        if node.type is not NodeType.DIR:
            return None
        fold = self.case_insensitive
        found = self._listings.find(
            node.sections[0][0],
            lambda: self._scan(node),
            name.casefold() if fold else name,
            _folded_name if fold else entry_name,
        )
        return None if found is None else found[1]

    def _scan(self, node: IsoNode) -> Iterator[tuple[str, IsoNode]]:
        for records in self._files(node):
            first = records[0]
            if is_dot(first) or first.fixed.flags & FLAG_ASSOCIATED:
                continue
            if len(records) > 1 and first.fixed.flags & FLAG_DIRECTORY:
                raise CorruptError(f"iso9660: directory record at {first.offset} is multi-extent")
            rr = self._rock_ridge(first, self.susp_skip) if self.rock_ridge else None
            if rr is not None and (rr.relocated or rr.dot):
                continue
            name = self._entry_name(first, rr)
            if not usable_name(name):
                continue
            yield name, self._node(records, rr)

    def readlink(self, node: IsoNode) -> bytes:
        return node.target

    def node_extents(self, node: IsoNode) -> Iterator[Extent]:
        if node.unreadable:
            raise UnsupportedError(f"iso9660: record at {node.record}: {node.unreadable}")
        file_offset = 0
        for start, length in node.sections:
            yield Extent(file_offset, length, ExtentKind.DATA, start)
            file_offset += length

    # -- identity -----------------------------------------------------------------------------

    def _label(self, desc: VolumeDescriptor) -> str | None:
        raw = desc.volume_id
        if self.joliet:
            text = raw.decode("utf-16-be", "surrogatepass")
        else:
            text = raw.decode("utf-8", "surrogateescape")
        text = text.split("\0", 1)[0].rstrip(" ")
        return text or None


def find_descriptors(source: ByteSource) -> tuple[Descriptor, Descriptor | None] | None:
    """The primary and the first Joliet descriptor; None when sector 16 is not ISO 9660."""
    primary: Descriptor | None = None
    joliet: Descriptor | None = None
    for index in range(MAX_DESCRIPTORS):
        offset = (FIRST_DESCRIPTOR + index) * SECTOR
        sector = source.pread(offset, SECTOR) if offset + SECTOR <= source.size else b""
        if sector[1:6] != STANDARD_ID:
            if index == 0:
                return None
            raise CorruptError(
                f"iso9660: volume descriptor set ends without a terminator at {offset}"
            )
        fields = VolumeDescriptor._make(_VOLUME_DESCRIPTOR.unpack_from(sector))
        if fields.type == TYPE_TERMINATOR:
            break
        desc = Descriptor(fields, sector[MODIFICATION_DATE], offset)
        if fields.type == TYPE_PRIMARY and primary is None:
            primary = desc
        elif (
            fields.type == TYPE_SUPPLEMENTARY
            and joliet is None
            and fields.escapes[:3] in JOLIET_ESCAPES
        ):
            joliet = desc
    else:
        raise LimitError(f"iso9660: no descriptor set terminator in {MAX_DESCRIPTORS} descriptors")
    if primary is None:
        raise CorruptError("iso9660: no primary volume descriptor")
    for found in (primary, joliet):
        if found is not None and found.fields.block_size != SECTOR:
            raise UnsupportedError(
                f"iso9660: logical block size {found.fields.block_size} in the descriptor at "
                f"{found.offset} (only {SECTOR} is read)"
            )
    return primary, joliet


def open_filesystem(source: ByteSource) -> IsoFilesystem | None:
    found = find_descriptors(source)
    if found is None:
        return None
    return IsoFilesystem(source, *found)
