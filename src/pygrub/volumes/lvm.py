"""LVM2: physical volumes on this disk, their volume groups, and the logical volumes GRUB reads.

On disk (LVM2's lib/label/label.h and lib/format_text/layout.h):

- a 512-byte label in one of the first four sectors of the PV: a ``label_header``
  ("LABELONE", the sector it sits in, a CRC, where the ``pv_header`` starts, "LVM2 001"),
  then the ``pv_header``: the PV's UUID, its size, and two lists of ``disk_locn``
  (offset, size in bytes), data areas then metadata areas, each ended by a zero offset;
- at each metadata area's start an ``mda_header`` (CRC, magic, version, start, size) whose
  first ``raw_locn`` says where the current metadata text is in the area, which is a
  circular buffer: text running past the area's end continues after the 512-byte header;
- the metadata text, a tree of ``name { key = value }`` sections: the volume group's
  extent size (sectors), its PVs (UUID, ``pe_start`` in sectors) and LVs, each LV a list
  of segments (``start_extent``, ``extent_count``, ``type``, ``stripes = ["pv0", pe, ...]``).

Only linear and striped segments are read ("striped" with ``stripe_count = 1`` is linear);
thin, cache, RAID, mirror and snapshot volumes are refused by name, as are LVs on a PV not
on this disk. Names are GRUB's (grub-core/disk/lvm.c): ``lvm/VG-LV`` with every '-' inside
the VG and LV names doubled, as device-mapper names them, and ``lvmid/VG-UUID/LV-UUID``,
the name grub-mkconfig writes into ``set root=``.

Every checksum LVM itself checks is checked here too; every size and count is bounded.
"""

from __future__ import annotations

import bisect
import re
import struct
import zlib
from collections.abc import Iterator

from .._typing import TYPE_CHECKING, TypeVar
from ..disk import ByteSource
from ..disk.base import check_request
from ..errors import CorruptError, LimitError, NotFoundError, PygrubError, UnsupportedError
from ..limits import check_count
from ..log import get_logger
from ..record import field, record
from .volume import Volume

if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

SECTOR_SIZE = 512
LABEL_ID = b"LABELONE"
LABEL_TYPE = b"LVM2 001"
#: The label may sit in any of the first four sectors (LVM2's LABEL_SCAN_SECTORS).
LABEL_SCAN_SECTORS = 4

# label_header: id "LABELONE", sector_xl (where it is), crc_xl (from offset_xl to the end of
# the sector), offset_xl (of the pv_header, from the label's start), type "LVM2 001".
_LABEL_HEADER = struct.Struct("<8sQII8s")
_LABEL_CRC_FROM = 20
# pv_header: pv_uuid (32 characters, no dashes), device_size_xl (bytes); disk_locn lists follow.
_PV_HEADER = struct.Struct("<32sQ")
# disk_locn: offset, size (bytes from the PV's start).
_DISK_LOCN = struct.Struct("<QQ")

# mda_header: checksum_xl (of the rest of the 512 bytes), magic, version, start (absolute
# byte of this header on the PV), size (of the metadata area); raw_locn list follows.
_MDA_HEADER = struct.Struct("<I16sIQQ")
# raw_locn: offset (from the area's start), size (bytes), checksum (of the text), flags.
_RAW_LOCN = struct.Struct("<QQII")
MDA_HEADER_SIZE = 512
MDA_MAGIC = b"\x20LVM2\x20x[5A%r0N*>"
MDA_VERSION = 1
RAW_LOCN_IGNORED = 0x1
#: LVM2's calc_crc starts from this value and does not invert its result.
INITIAL_CRC = 0xF597A6CF

#: Metadata text read from one area. LVM's default area is 1 MiB and holds two copies.
MAX_METADATA_TEXT = 4 << 20
#: Section nesting in the metadata text (LVM2's own parser stops at 32).
MAX_METADATA_DEPTH = 32
#: Keys, values and list items in one metadata text, all together.
MAX_METADATA_ITEMS = 200_000
#: Digits in one number of the metadata text (a 64-bit value has at most 20).
MAX_NUMBER_DIGITS = 20
#: Stripes of one segment (LVM2's own maximum is 128).
MAX_STRIPES = 128
#: Volume groups assembled from one disk.
MAX_VOLUME_GROUPS = 64

#: LVM2's rule for VG and LV names (lib/misc/lvm-string.c): these characters, no leading '-'.
_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")


def lvm_crc(data: bytes) -> int:
    """LVM2's calc_crc(INITIAL_CRC, data): the CRC-32 polynomial, no final inversion."""
    return zlib.crc32(data, INITIAL_CRC ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def grub_lv_name(vg_name: str, lv_name: str) -> str:
    """GRUB's device name for an LV: "lvm/" + VG + "-" + LV, with '-' inside names doubled."""
    return "lvm/" + vg_name.replace("-", "--") + "-" + lv_name.replace("-", "--")


# ------------------------------------------------------------------ label and metadata areas


@record(frozen=True)
class MetadataArea:
    """One metadata area of a PV, in bytes from the PV's start."""

    offset: int
    size: int


@record
class PhysicalVolume:
    """A PV found on this disk: where, its UUID, and the metadata texts its areas hold."""

    volume: Volume
    #: The UUID as in the label: 32 characters without the dashes the metadata text has.
    uuid: str
    areas: tuple[MetadataArea, ...]
    #: (where, text) for each area holding metadata; ``where`` is for messages.
    texts: list[tuple[str, bytes]] = field(default_factory=list)


def read_physical_volume(volume: Volume) -> PhysicalVolume | None:
    """The PV whose label is on ``volume`` with its metadata texts, or None when no valid label.

    A damaged metadata area is logged and left out: another PV of the group may hold a copy.
    """
    source = volume.source
    head = source.pread(0, LABEL_SCAN_SECTORS * SECTOR_SIZE)
    for sector in range(LABEL_SCAN_SECTORS):
        raw = head[sector * SECTOR_SIZE : (sector + 1) * SECTOR_SIZE]
        if len(raw) < SECTOR_SIZE or raw[: len(LABEL_ID)] != LABEL_ID:
            continue
        try:
            pv = _parse_label(volume, sector, raw)
        except CorruptError as e:
            log.warning("%s: %s: ignored", volume, e)
            continue
        for area in pv.areas:
            where = f"LVM metadata area at byte {area.offset} of {volume.grub_name}"
            try:
                text = _read_metadata_text(source, area)
            except PygrubError as e:
                log.warning("%s: %s", where, e)
                continue
            if text is not None:
                pv.texts.append((where, text))
        return pv
    return None


def _parse_label(volume: Volume, sector: int, raw: bytes) -> PhysicalVolume:
    where = f"LVM label at sector {sector}"
    _id, sector_xl, crc, offset, label_type = _LABEL_HEADER.unpack_from(raw)
    if sector_xl != sector:
        raise CorruptError(f"{where}: says it is at sector {sector_xl}")
    if lvm_crc(raw[_LABEL_CRC_FROM:]) != crc:
        raise CorruptError(f"{where}: checksum mismatch")
    if label_type != LABEL_TYPE:
        raise CorruptError(f"{where}: type {label_type!r} is not {LABEL_TYPE!r}")
    if offset < _LABEL_HEADER.size or offset + _PV_HEADER.size > SECTOR_SIZE:
        raise CorruptError(f"{where}: pv_header offset {offset} outside the sector")
    raw_uuid, _device_size = _PV_HEADER.unpack_from(raw, offset)
    uuid = raw_uuid.decode("ascii", "replace")
    pos = offset + _PV_HEADER.size
    _data_areas, pos = _disk_locns(raw, pos, where)
    metadata_areas, _ = _disk_locns(raw, pos, where)
    areas = tuple(MetadataArea(off, size) for off, size in metadata_areas)
    return PhysicalVolume(volume, uuid, areas)


def _disk_locns(raw: bytes, pos: int, where: str) -> tuple[list[tuple[int, int]], int]:
    """One zero-ended disk_locn list at ``pos``, and where the next list starts."""
    found: list[tuple[int, int]] = []
    while True:
        if pos + _DISK_LOCN.size > len(raw):
            raise CorruptError(f"{where}: area list runs past the sector's end")
        offset, size = _DISK_LOCN.unpack_from(raw, pos)
        pos += _DISK_LOCN.size
        if offset == 0:
            return found, pos
        found.append((offset, size))


def _read_metadata_text(source: ByteSource, area: MetadataArea) -> bytes | None:
    """The committed metadata text of one area, checksum checked; None when it holds none."""
    if area.size <= MDA_HEADER_SIZE or area.offset + area.size > source.size:
        raise CorruptError(f"area of {area.size} bytes does not fit on the PV")
    raw = source.pread(area.offset, MDA_HEADER_SIZE)
    if len(raw) < MDA_HEADER_SIZE:
        raise CorruptError("mda_header is cut short")
    checksum, magic, version, start, size = _MDA_HEADER.unpack_from(raw)
    if magic != MDA_MAGIC or version != MDA_VERSION:
        raise CorruptError("mda_header: bad magic or version")
    if lvm_crc(raw[4:]) != checksum:
        raise CorruptError("mda_header: checksum mismatch")
    if start != area.offset or size <= MDA_HEADER_SIZE or size > area.size:
        raise CorruptError(f"mda_header: start {start} or size {size} disagrees with the label")
    text_offset, text_size, text_checksum, flags = _RAW_LOCN.unpack_from(raw, _MDA_HEADER.size)
    if text_offset == 0:
        return None
    if flags & RAW_LOCN_IGNORED:
        log.debug("LVM metadata area at %d: marked ignored", area.offset)
        return None
    if not MDA_HEADER_SIZE <= text_offset < size or text_size > size - MDA_HEADER_SIZE:
        raise CorruptError(
            f"metadata text at {text_offset} of {text_size} bytes is outside the area"
        )
    check_count("LVM metadata text bytes", text_size, MAX_METADATA_TEXT)
    # The area is a ring after its header: text past the end continues right after it.
    first = min(text_size, size - text_offset)
    text = source.pread(area.offset + text_offset, first)
    if first < text_size:
        text += source.pread(area.offset + MDA_HEADER_SIZE, text_size - first)
    if len(text) != text_size:
        raise CorruptError("metadata text is cut short")
    if lvm_crc(text) != text_checksum:
        raise CorruptError("metadata text: checksum mismatch")
    return text


# ------------------------------------------------------------------ metadata text parser

if TYPE_CHECKING:
    Scalar = int | float | str
    Section = dict[str, Any]
    #: A value in the metadata text: a scalar, a list of scalars, or a nested section.
    Value = Scalar | list[Scalar] | Section

_TOKEN = re.compile(
    r"""
      (?P<skip>[ \t\r\n\f\v]+|\#[^\n]*)
    | (?P<punct>[{}\[\],=])
    | (?P<dq>"[^"\\]*(?:\\.[^"\\]*)*")
    | (?P<sq>'[^']*')
    | (?P<word>[^ \t\r\n\f\v\#{}\[\],="'\x00]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?[0-9]*\.[0-9]*")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)

#: Token kinds: "punct" (the character is the value), "string", "word", "end".
_Token = tuple[str, str, int]


def parse_metadata(text: bytes) -> Section:
    """The metadata text as nested dicts: sections, and values (int, float, str, lists of them).

    A key given twice keeps its first value, as LVM2's lookups find the first. Raises
    CorruptError (naming the byte) or LimitError; never anything else.
    """
    return _Parser(text.rstrip(b"\0").decode("utf-8", "replace")).document()


class _Parser:
    def __init__(self, text: str) -> None:
        self._tokens = self._scan(text)
        self._items = 0
        self._next: _Token = next(self._tokens)

    @staticmethod
    def _scan(text: str) -> Iterator[_Token]:
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                quote = text[pos] in "\"'"
                what = "unterminated string" if quote else f"unexpected character {text[pos]!r}"
                raise CorruptError(f"LVM metadata text, byte {pos}: {what}")
            kind = m.lastgroup
            if kind == "dq":
                yield ("string", _ESCAPE.sub(r"\1", m.group()[1:-1]), pos)
            elif kind == "sq":
                yield ("string", m.group()[1:-1], pos)
            elif kind != "skip":
                yield (kind or "", m.group(), pos)
            pos = m.end()
        while True:
            yield ("end", "", pos)

    def _take(self) -> _Token:
        token = self._next
        self._next = next(self._tokens)
        return token

    def _count(self, pos: int) -> None:
        self._items += 1
        if self._items > MAX_METADATA_ITEMS:
            raise LimitError(f"LVM metadata text, byte {pos}: over {MAX_METADATA_ITEMS} items")

    def document(self) -> Section:
        return self._section_body(depth=0)

    def _section_body(self, depth: int) -> Section:
        section: Section = {}
        while True:
            kind, text, pos = self._take()
            if kind == "end":
                if depth:
                    raise CorruptError(f"LVM metadata text, byte {pos}: unterminated section")
                return section
            if kind == "punct" and text == "}":
                if not depth:
                    raise CorruptError(f"LVM metadata text, byte {pos}: '}}' without '{{'")
                return section
            if kind not in ("word", "string"):
                raise CorruptError(f"LVM metadata text, byte {pos}: {text!r} where a name goes")
            self._count(pos)
            value = self._after_name(depth, pos)
            section.setdefault(text, value)

    def _after_name(self, depth: int, pos: int) -> Value:
        kind, text, at = self._take()
        if kind == "punct" and text == "=":
            return self._value()
        if kind == "punct" and text == "{":
            if depth + 1 > MAX_METADATA_DEPTH:
                raise LimitError(
                    f"LVM metadata text, byte {at}: sections nested over {MAX_METADATA_DEPTH} deep"
                )
            return self._section_body(depth + 1)
        raise CorruptError(f"LVM metadata text, byte {at}: expected '=' or '{{' after a name")

    def _value(self) -> Value:
        kind, text, pos = self._take()
        if kind == "punct" and text == "[":
            return self._list()
        return self._scalar(kind, text, pos)

    def _list(self) -> list[Scalar]:
        items: list[Scalar] = []
        while True:
            kind, text, pos = self._take()
            if kind == "punct" and text == "]":
                return items
            if kind == "punct" and text == ",":
                continue
            self._count(pos)
            items.append(self._scalar(kind, text, pos))

    def _scalar(self, kind: str, text: str, pos: int) -> Scalar:
        if kind == "string":
            return text
        if kind != "word":
            what = "end of text" if kind == "end" else repr(text)
            raise CorruptError(f"LVM metadata text, byte {pos}: {what} where a value goes")
        if _INT.fullmatch(text) or _FLOAT.fullmatch(text):
            if len(text.lstrip("+-")) > MAX_NUMBER_DIGITS:
                raise CorruptError(f"LVM metadata text, byte {pos}: number of {len(text)} digits")
            if _INT.fullmatch(text):
                return int(text, 10)
            try:
                return float(text)
            except ValueError:
                raise CorruptError(f"LVM metadata text, byte {pos}: bad number {text!r}") from None
        # LVM2 accepts a bare word as a string value.
        return text


# ------------------------------------------------------------------ volume group


@record(frozen=True)
class PvRef:
    """A PV as the metadata text lists it (``physical_volumes { pv0 { ... } }``)."""

    key: str
    #: The UUID without dashes, to match a label's.
    uuid: str
    #: Where extent 0 starts on the PV, in sectors.
    pe_start: int


@record(frozen=True)
class VolumeGroup:
    name: str
    id: str
    seqno: int
    #: Extent size in sectors.
    extent_size: int
    pvs: dict[str, PvRef]
    #: LV name -> its raw section, decoded one LV at a time so one bad LV spoils no other.
    lv_sections: dict[str, Section]


def volume_group(tree: Section) -> VolumeGroup:
    """The volume group a parsed metadata text describes (its first top-level section)."""
    name, vg = next(((k, v) for k, v in tree.items() if isinstance(v, dict)), (None, None))
    if name is None or vg is None:
        raise CorruptError("LVM metadata: no volume group section")
    if not _NAME.fullmatch(name):
        raise CorruptError(f"LVM metadata: volume group name {name!r} is not a valid name")
    where = f"volume group {name}"
    extent_size = _get(vg, "extent_size", int, where)
    if extent_size <= 0:
        raise CorruptError(f"LVM metadata: {where}: extent_size {extent_size}")
    pvs = {}
    for key, section in _get(vg, "physical_volumes", dict, where).items():
        if isinstance(section, dict):
            pvs[key] = _pv_ref(key, section, f"{where}, PV {key}")
    lvs = vg.get("logical_volumes", {})
    if not isinstance(lvs, dict):
        raise CorruptError(f"LVM metadata: {where}: logical_volumes is not a section")
    return VolumeGroup(
        name=name,
        id=_get(vg, "id", str, where),
        seqno=_get(vg, "seqno", int, where),
        extent_size=extent_size,
        pvs=pvs,
        lv_sections={k: v for k, v in lvs.items() if isinstance(v, dict)},
    )


def _pv_ref(key: str, section: Section, where: str) -> PvRef:
    pe_start = _get(section, "pe_start", int, where)
    if pe_start < 0:
        raise CorruptError(f"LVM metadata: {where}: pe_start {pe_start}")
    return PvRef(key, _get(section, "id", str, where).replace("-", ""), pe_start)


T = TypeVar("T")


def _get(section: Section, key: str, kind: type[T], where: str) -> T:
    value = section.get(key)
    if not isinstance(value, kind):
        raise CorruptError(f"LVM metadata: {where}: {key} missing or not a {kind.__name__}")
    return value


# ------------------------------------------------------------------ logical volumes


@record(frozen=True)
class Segment:
    """One segment: LV extents [start_extent, +extent_count) over ``stripes``."""

    start_extent: int
    extent_count: int
    #: (PV key, first physical extent) per stripe.
    stripes: tuple[tuple[str, int], ...]
    #: Stripe size in sectors; 0 for a linear segment.
    stripe_size: int


def lv_segments(vg: VolumeGroup, name: str) -> list[Segment] | None:
    """The segments of LV ``name``, or None for an LV GRUB does not list (hidden).

    Raises UnsupportedError for a segment type other than linear/striped, CorruptError for
    a segment that does not add up.
    """
    section = vg.lv_sections[name]
    where = f"LV {vg.name}/{name}"
    status = section.get("status", [])
    if not isinstance(status, list) or "VISIBLE" not in status:
        log.debug("%s: not VISIBLE (an LVM-internal volume): not listed", where)
        return None
    if not _NAME.fullmatch(name):
        raise CorruptError(f"{where}: not a valid LV name")
    count = _get(section, "segment_count", int, where)
    if not 0 < count <= len(section):
        raise CorruptError(f"{where}: segment_count {count} but {len(section)} entries")
    segments = []
    next_extent = 0
    for index in range(1, count + 1):
        raw = section.get(f"segment{index}")
        if not isinstance(raw, dict):
            raise CorruptError(f"{where}: segment{index} missing")
        segment = _segment(raw, f"{where} segment{index}")
        if segment.start_extent != next_extent:
            raise CorruptError(
                f"{where} segment{index}: starts at extent {segment.start_extent}, "
                f"not {next_extent}"
            )
        next_extent += segment.extent_count
        segments.append(segment)
    return segments


def _segment(section: Section, where: str) -> Segment:
    seg_type = _get(section, "type", str, where)
    if seg_type != "striped":
        raise UnsupportedError(
            f"{where}: segment type {seg_type!r} is not read (only linear/striped)"
        )
    start = _get(section, "start_extent", int, where)
    count = _get(section, "extent_count", int, where)
    stripe_count = _get(section, "stripe_count", int, where)
    if start < 0 or count <= 0:
        raise CorruptError(f"{where}: start_extent {start}, extent_count {count}")
    if not 0 < stripe_count <= MAX_STRIPES or count % stripe_count:
        raise CorruptError(f"{where}: {stripe_count} stripes for {count} extents")
    stripe_size = 0
    if stripe_count > 1:
        stripe_size = _get(section, "stripe_size", int, where)
        if stripe_size <= 0:
            raise CorruptError(f"{where}: stripe_size {stripe_size}")
    raw = _get(section, "stripes", list, where)
    if len(raw) != 2 * stripe_count:
        raise CorruptError(f"{where}: stripes lists {len(raw)} items for {stripe_count} stripes")
    stripes = []
    for key, pe in zip(raw[::2], raw[1::2], strict=True):
        if not isinstance(key, str) or not isinstance(pe, int) or pe < 0:
            raise CorruptError(f"{where}: stripe ({key!r}, {pe!r}) is not (PV name, extent)")
        stripes.append((key, pe))
    return Segment(start, count, tuple(stripes), stripe_size)


@record(frozen=True)
class _Piece:
    """A segment as bytes: LV bytes [start, start+length) striped over ``stripes``."""

    start: int
    length: int
    #: (PV's source, byte offset of this stripe's first extent on it) per stripe.
    stripes: tuple[tuple[ByteSource, int], ...]
    #: Bytes per stripe chunk; the whole length for a linear piece.
    chunk: int

    @property
    def end(self) -> int:
        return self.start + self.length

    def locate(self, within: int) -> tuple[ByteSource, int, int]:
        """(source, offset on it, bytes contiguous from there) for LV byte start+within."""
        chunk_index, in_chunk = divmod(within, self.chunk)
        row, stripe = divmod(chunk_index, len(self.stripes))
        source, base = self.stripes[stripe]
        run = min(self.chunk - in_chunk, self.length - within)
        return source, base + row * self.chunk + in_chunk, run


class LogicalVolumeSource:
    """The bytes of an LV: its segments laid end to end, each linear or striped over PVs."""

    def __init__(self, pieces: list[_Piece]) -> None:
        self._pieces = pieces
        self._starts = [p.start for p in pieces]
        self._size = pieces[-1].end if pieces else 0

    @property
    def size(self) -> int:
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        length = check_request(offset, length, self._size)
        parts = []
        while length > 0:
            source, host, run = self._locate(offset)
            n = min(run, length)
            data = source.pread(host, n)
            if len(data) != n:
                raise CorruptError(f"LV read at {offset}: its PV ends at byte {host + len(data)}")
            parts.append(data)
            offset += n
            length -= n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def host_span(self, offset: int, length: int) -> tuple[int, int] | None:
        if offset < 0 or length <= 0 or offset + length > self._size:
            return None
        source, host, run = self._locate(offset)
        return source.host_span(host, length) if run >= length else None

    def _locate(self, offset: int) -> tuple[ByteSource, int, int]:
        piece = self._pieces[bisect.bisect_right(self._starts, offset) - 1]
        return piece.locate(offset - piece.start)

    def __repr__(self) -> str:
        return f"LogicalVolumeSource({len(self._pieces)} segments, size={self._size})"


def lv_source(
    vg: VolumeGroup, name: str, segments: list[Segment], pvs: dict[str, PhysicalVolume]
) -> LogicalVolumeSource:
    """The LV's bytes on the PVs found (``pvs`` by UUID).

    Raises NotFoundError when a segment lies on a PV not on this disk. A segment running
    past its PV's end (a truncated image) ends the LV there, with a warning.
    """
    extent = vg.extent_size * SECTOR_SIZE
    pieces: list[_Piece] = []
    for index, segment in enumerate(segments, 1):
        stripe_length = segment.extent_count // len(segment.stripes) * extent
        stripes = []
        for key, pe in segment.stripes:
            ref = vg.pvs.get(key)
            pv = pvs.get(ref.uuid) if ref is not None else None
            if ref is None or pv is None:
                raise NotFoundError(
                    f"LV {vg.name}/{name} segment{index}: PV {key} is not on this disk"
                )
            start = ref.pe_start * SECTOR_SIZE + pe * extent
            if start + stripe_length > pv.volume.source.size:
                log.warning(
                    "LV %s/%s segment%d: runs past the end of PV %s (%s): LV cut to %d bytes",
                    vg.name,
                    name,
                    index,
                    key,
                    pv.volume.grub_name,
                    pieces[-1].end if pieces else 0,
                )
                return LogicalVolumeSource(pieces)
            stripes.append((pv.volume.source, start))
        chunk = segment.stripe_size * SECTOR_SIZE or stripe_length
        if stripe_length % chunk:
            # device-mapper refuses such a table too ("not divisible by chunk size").
            raise CorruptError(
                f"LV {vg.name}/{name} segment{index}: {stripe_length} bytes per stripe "
                f"is not a multiple of the {chunk}-byte stripe size"
            )
        pieces.append(
            _Piece(
                segment.start_extent * extent, stripe_length * len(stripes), tuple(stripes), chunk
            )
        )
    return LogicalVolumeSource(pieces)


# ------------------------------------------------------------------ assembly


def logical_volumes(pvs: list[PhysicalVolume]) -> list[Volume]:
    """Every LV readable from the PVs found on this disk, group by group; logs and skips the rest.

    Each group's newest metadata (highest seqno) found on any of its PVs is used. A PV UUID
    seen twice (a cloned disk) keeps its first place.
    """
    by_uuid: dict[str, PhysicalVolume] = {}
    for pv in pvs:
        if pv.uuid in by_uuid:
            log.warning(
                "LVM PV %s on %s: already seen on %s: ignored",
                pv.uuid,
                pv.volume.grub_name,
                by_uuid[pv.uuid].volume.grub_name,
            )
            continue
        by_uuid[pv.uuid] = pv
    volumes: list[Volume] = []
    for vg in _newest_groups(list(by_uuid.values())):
        volumes.extend(_group_volumes(vg, by_uuid))
    return volumes


def _newest_groups(pvs: list[PhysicalVolume]) -> list[VolumeGroup]:
    newest: dict[str, VolumeGroup] = {}
    parsed: set[bytes] = set()
    for pv in pvs:
        for where, text in pv.texts:
            if text in parsed:
                continue
            parsed.add(text)
            try:
                vg = volume_group(parse_metadata(text))
            except PygrubError as e:
                log.warning("%s: %s: skipped", where, e)
                continue
            known = newest.get(vg.id)
            if known is None and len(newest) >= MAX_VOLUME_GROUPS:
                log.warning("%s: over %d volume groups: skipped", where, MAX_VOLUME_GROUPS)
            elif known is None or vg.seqno > known.seqno:
                newest[vg.id] = vg
    return list(newest.values())


def _group_volumes(vg: VolumeGroup, pvs: dict[str, PhysicalVolume]) -> list[Volume]:
    cow_stores = _snapshot_stores(vg)
    volumes = []
    for name in vg.lv_sections:
        if name in cow_stores:
            log.info(
                "LV %s/%s: a snapshot's exception store, not a filesystem: skipped", vg.name, name
            )
            continue
        try:
            segments = lv_segments(vg, name)
            if segments is None:
                continue
            source = lv_source(vg, name, segments, pvs)
        except PygrubError as e:
            # Every message names the LV already.
            log.warning("%s: skipped", e)
            continue
        if source.size == 0:
            log.warning("LV %s/%s: no extent on this disk: skipped", vg.name, name)
            continue
        kind = "striped" if any(len(s.stripes) > 1 for s in segments) else "linear"
        plural = "s" if len(segments) > 1 else ""
        origin = f"LVM logical volume {vg.name}/{name} ({kind}, {len(segments)} segment{plural})"
        lv_id = vg.lv_sections[name].get("id")
        aliases = (f"lvmid/{vg.id}/{lv_id}",) if isinstance(lv_id, str) else ()
        volumes.append(Volume(source, grub_lv_name(vg.name, name), origin, aliases=aliases))
    return volumes


def _snapshot_stores(vg: VolumeGroup) -> set[str]:
    """Names of the LVs that hold old-style snapshots' copy-on-write data."""
    stores = set()
    for section in vg.lv_sections.values():
        for seg in section.values():
            if isinstance(seg, dict) and seg.get("type") == "snapshot":
                store = seg.get("cow_store")
                if isinstance(store, str):
                    stores.add(store)
    return stores
