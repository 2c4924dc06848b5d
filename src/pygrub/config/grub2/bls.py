"""Boot Loader Specification entries as Red Hat's ``blscfg`` command turns them into menu entries.

GRUB 2.14's own blscfg (:mod:`.blsuki`) reads the same files with the small differences
that module lists; the reading and expanding here take a flag for them.

We follow the EL8 blscfg (grub2-2.02-90.el8 and later RHEL 8): entries are read from
``$blsdir`` (default /loader/entries) on $root, then /boot/loader/entries when the first
held none; sorted newest first by rpm's version comparison of the ``version`` key (when
every entry has one), then of the file name as name-version-release; each becomes a
menu entry whose body is the little script blscfg writes (``linux ($root)...``), so the
options' ``$kernelopts`` and the paths are evaluated when the entry runs, as in GRUB.

Reading a file, blscfg strips leading blanks, skips '#' lines, splits each line at the
first space (else tab), and STOPS at a line without a value - a blank line ends the file.
Only the first ``options`` line is used (bls_get_val), as GRUB does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ...record import record

BLS_DIR = "/loader/entries/"
BLS_FALLBACK_DIR = "/boot/loader/entries/"


@record
class BlsEntry:
    #: The file name without ".conf": the entry's id.
    name: str
    keyvals: list[tuple[str, str]]

    def get(self, key: str) -> str | None:
        for k, v in self.keyvals:
            if k == key:
                return v
        return None

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.keyvals if k == key]


def is_entry_file(name: str) -> bool:
    """blscfg reads "*.conf" files that are not hidden."""
    return not name.startswith(".") and len(name) > 5 and name.endswith(".conf")


def parse_entry(name: str, text: str, upstream: bool = False) -> BlsEntry:
    """Red Hat's blscfg cuts a line at its first space, else its first tab, and keeps a
    value of blanks as empty; upstream's (grub_strtok_r on " \t") cuts at whichever of the
    two comes first, and a value of blanks ends the file as a missing one does."""
    keyvals = []
    for raw in text.split("\n"):
        line = raw.replace("\r", "").lstrip(" \t")
        if line.startswith("#"):
            continue
        cut = line.find(" ")
        if cut < 0 or upstream:
            tab = line.find("\t")
            cut = tab if cut < 0 or 0 <= tab < cut else cut
        if cut < 0 or cut + 1 >= len(line):
            break
        value = line[cut + 1 :].lstrip(" \t")
        if upstream and not value:
            break
        keyvals.append((line[:cut], value))
    return BlsEntry(name[:-5] if name.endswith(".conf") else name, keyvals)


def sort_newest_first(entries: list[BlsEntry]) -> list[BlsEntry]:
    use_version = all(entry.get("version") is not None for entry in entries)

    def compare(a: BlsEntry, b: BlsEntry) -> int:
        if use_version:
            order = _split_cmp(a.get("version") or "", b.get("version") or "", has_name=False)
            if order:
                return order
        return _split_cmp(a.name, b.name, has_name=True)

    return sorted(entries, key=functools.cmp_to_key(compare), reverse=True)


def _split_nvr(text: str, has_name: bool) -> tuple[str, str, str]:
    """split_package_string: (name, version, release) cut at the last dashes."""
    head, dash, release = text.rpartition("-")
    if not dash:
        head, release = text, ""
    if not has_name:
        return "", head if dash else text, release if dash else ""
    if not dash:
        return text, "", ""
    name, dash2, version = head.rpartition("-")
    if not dash2:
        # name-release only: what is left is the name, the release becomes the version.
        return head, release, ""
    return name, version, release


def _split_cmp(a: str, b: str, has_name: bool) -> int:
    name_a, version_a, release_a = _split_nvr(a, has_name)
    name_b, version_b, release_b = _split_nvr(b, has_name)
    if has_name:
        order = rpmvercmp(name_a, name_b)
        if order:
            return order
    return rpmvercmp(version_a, version_b) or rpmvercmp(release_a, release_b)


def rpmvercmp(a: str, b: str) -> int:
    """rpm's version comparison: 1 when ``a`` is newer, -1 when older, 0 when equal.

    Segments are runs of digits or of letters; anything else separates them. Numbers
    compare as numbers and beat letters; '~' sorts before everything, even the end.
    """
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not (a[i].isascii() and a[i].isalnum()) and a[i] != "~":
            i += 1
        while j < len(b) and not (b[j].isascii() and b[j].isalnum()) and b[j] != "~":
            j += 1
        tilde_a = i < len(a) and a[i] == "~"
        tilde_b = j < len(b) and b[j] == "~"
        if tilde_a or tilde_b:
            if not tilde_a:
                return 1
            if not tilde_b:
                return -1
            i += 1
            j += 1
            continue
        if i >= len(a) or j >= len(b):
            break
        numeric = a[i].isdigit()
        end_a = _segment_end(a, i, numeric)
        end_b = _segment_end(b, j, numeric)
        if end_b == j:
            # The other side has a segment of the other type: numbers are newer.
            return 1 if numeric else -1
        seg_a, seg_b = a[i:end_a], b[j:end_b]
        if numeric:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
        i, j = end_a, end_b
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def _segment_end(text: str, start: int, numeric: bool) -> int:
    end = start
    while (
        end < len(text)
        and text[end].isascii()
        and (text[end].isdigit() if numeric else text[end].isalpha())
    ):
        end += 1
    return end


def expand_value(
    value: str | None, lookup: Callable[[str], str | None], escapes: bool = True
) -> str | None:
    """blscfg's expand_val: $name replaced by its value and a blank; unset names vanish.

    This is a character-for-character model of GRUB's loop, quirks included: a literal
    piece of one character just before a '$' or at the very end is dropped. Red Hat's
    leaves a '$' after a backslash alone (``escapes``); upstream's (blsuki_expand_val)
    has no escape.
    """
    if value is None:
        return None
    buffer: str | None = None
    start = end = 0
    is_var = False

    def append(piece_start: int, piece_end: int) -> None:
        nonlocal buffer
        piece = value[piece_start : piece_end + 1]
        if is_var:
            found = lookup(piece)
            if found is None:
                return
            piece = found + " "
        buffer = (buffer or "") + piece

    for pos, char in enumerate(value):
        if char == "$" and not (escapes and value[end] == "\\"):
            if start != end:
                append(start, end)
            is_var = True
            start = pos + 1
        elif is_var and not (char.isascii() and (char.isalnum() or char == "_")):
            append(start, end)
            is_var = False
            start = pos
            if char == " ":
                start += 1
        end = pos
    if start != end:
        append(start, end)
    return buffer


def entry_body(entry: BlsEntry, options: str | None) -> str:
    """The script blscfg gives a BLS entry (EL8 create_entry), options already expanded."""
    linux = entry.get("linux") or ""
    lines = [
        "load_video",
        "set gfx_payload=keep",
        "insmod gzio",
        f"linux ($root){linux}{' ' + options if options is not None else ''}",
    ]
    initrds = entry.get_all("initrd")
    if initrds:
        lines.append("initrd " + "".join(f" ($root){path}" for path in initrds))
    return "\n".join(lines) + "\n"
