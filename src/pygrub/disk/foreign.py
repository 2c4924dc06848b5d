"""Files given as a disk image that are not one pygrub reads: named for what they are.

Other hypervisors' image formats, compressed images and bootloader configs are known by
their first (or last) bytes, so that the error can say what the file is and the way out.
The caller asks only when no volume of the file held a filesystem: a raw disk whose
bytes happen to match a magic here still boots, and a fixed VHD (a raw disk followed by
a footer) boots as the raw disk it is.
"""

from __future__ import annotations

from ..record import record
from .base import ByteSource

SECTOR = 512


@record(frozen=True)
class Magic:
    #: Where the bytes are; negative counts from the end of the file.
    offset: int
    value: bytes
    #: What the file is, as the message says it: "a VMDK image".
    what: str
    #: The file name's usual suffix, dropped from the suggested output's name.
    suffix: str
    #: "qemu-img" (it converts the format), a decompressor, or "" when pygrub reads the
    #: file as it is (a fixed VHD: a raw disk and a footer) and nothing would change.
    tool: str = "qemu-img"


#: The formats' own signatures: VMDK's sparse header (VMware's "Virtual Disk Format 1.1")
#: and its text descriptor, VHD's footer ("conectix": a copy at 0 in a dynamic image),
#: VHDX's file type identifier, VDI's signature, then the compressors' stream headers.
MAGICS: tuple[Magic, ...] = (
    Magic(0, b"KDMV", "a VMDK image (sparse extent)", ".vmdk"),
    Magic(0, b"COWD", "a VMDK image (ESX sparse extent)", ".vmdk"),
    Magic(0, b"# Disk DescriptorFile", "a VMDK image (descriptor file)", ".vmdk"),
    Magic(0, b"vhdxfile", "a VHDX image", ".vhdx"),
    Magic(0, b"conectix", "a VHD image (dynamic)", ".vhd"),
    Magic(-SECTOR, b"conectix", "a fixed VHD image", ".vhd", ""),
    Magic(0x40, b"\x7f\x10\xda\xbe", "a VDI image", ".vdi"),
    Magic(0, b"\x1f\x8b", "gzip-compressed", ".gz", "gzip"),
    Magic(0, b"\xfd7zXZ\x00", "xz-compressed", ".xz", "xz"),
    Magic(0, b"\x28\xb5\x2f\xfd", "zstd-compressed", ".zst", "zstd"),
    Magic(0, b"BZh", "bzip2-compressed", ".bz2", "bzip2"),
)

#: The most of a text file looked at to tell a bootloader config.
TEXT_HEAD = 4096
#: Words that start the lines of grub.cfg, menu.lst, extlinux.conf, lilo.conf, systemd-boot's
#: loader.conf and its entries. Two such lines in text make a config: one alone could be prose.
CONFIG_WORDS = frozenset(
    {
        "menuentry",
        "submenu",
        "insmod",
        "blscfg",
        "configfile",
        "title",
        "root",
        "kernel",
        "linux",
        "initrd",
        "module",
        "options",
        "append",
        "label",
        "image",
        "default",
        "timeout",
        "include",
        "hiddenmenu",
    }
)
#: Bytes that text configs never hold (every control character but tab, LF, FF and CR).
_NOT_TEXT = bytes(c for c in range(32) if c not in b"\t\n\f\r") + b"\x7f"


def not_a_disk(source: ByteSource, path: str) -> str | None:
    """What the file at ``path`` is and what to do, if it is no disk image pygrub reads.

    The sentence completes "disk image PATH is ..."; None when nothing here matches.
    """
    for magic in MAGICS:
        offset = magic.offset if magic.offset >= 0 else source.size + magic.offset
        if offset >= 0 and source.pread(offset, len(magic.value)) == magic.value:
            if not magic.tool:
                return (
                    f"{magic.what}, read as the raw disk in it: "
                    "no volume there holds a filesystem pygrub reads"
                )
            return f"{magic.what}, which pygrub does not read: {_way_out(magic, path)}"
    word = config_word(source.pread(0, TEXT_HEAD))
    if word is not None:
        from shlex import quote

        return (
            f"a text file that looks like a bootloader config (lines start with {word!r}), "
            "not a disk image: to read a config file, give --isconfig "
            f"(pygrub --isconfig {quote(path)})"
        )
    return None


def _way_out(magic: Magic, path: str) -> str:
    from shlex import quote

    stem = path[: -len(magic.suffix)] if path.lower().endswith(magic.suffix) else ""
    if stem.endswith("/"):
        stem = ""
    if magic.tool == "qemu-img":
        raw = quote((stem or path) + ".raw")
        return f"convert it first (qemu-img convert -O raw {quote(path)} {raw})"
    out = stem or path + ".raw"
    return f"decompress it first ({magic.tool} -dc {quote(path)} > {quote(out)})"


def config_word(head: bytes) -> str | None:
    """The first config word of ``head``, if it is text with two lines that start with one."""
    if not head or len(head.translate(None, _NOT_TEXT)) != len(head):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A character cut at the end of the head is still text.
        if e.start < len(head) - 3:
            return None
        text = head[: e.start].decode("utf-8")
    words = []
    for line in text.splitlines():
        first = line.replace("=", " ").split(maxsplit=1)
        if first and first[0].lower() in CONFIG_WORDS:
            words.append(first[0].lower())
    return words[0] if len(words) >= 2 else None
