"""The hostile-image suite's engine: bootable guests, their mutants, and whole-command runs.

Used by tests/test_hostile.py (a seeded slice in CI) and scripts/fuzz.py (``make fuzz``).

A *guest* is a small bootable disk image (config + kernel + initrd) made by the real
tools for one filesystem or volume format, with what a mutator needs to aim at it: the
byte ranges holding metadata, the header fields worth absurd values, where compressed
streams start, and the checksums to recompute so that damage reaches past them.

A *mutant* is a guest's image with edits (bit flips, zeroed blocks, absurd values,
copied words and blocks that make loops, decompression bombs) and perhaps truncated.

Every run is ``pygrub -q --output=FILE --output-format=simple0 --output-directory=DIR
IMAGE`` with a wall-clock bound and RLIMIT_AS, either a real ``python -m pygrub``
subprocess or ``pygrub.cli.main`` in a forked child (the same code, ~10x cheaper). The
checks (``problems``) are the issue's: exit 0 or 1, no traceback or internal error,
nothing left in DIR and an empty FILE on failure, a well-formed FILE naming only files
of DIR on success, and the image unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imaging import (
    MiB,
    Symlink,
    Tree,
    make_ext,
    make_f2fs,
    make_fat,
    require_tool,
    run,
    write_tree,
)
from lvmtools import lvm_disk, write_lv
from mdtools import fix_1x_checksum
from mdtools import member as md_member

from pygrub.disk import FileSource

SECTOR = 512
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: The environment of every run: a budget well under the hard kill, a small file limit.
RUN_ENV = {"PYGRUB_TIMEOUT": "20", "PYGRUB_MAX_FILE_SIZE_MB": "64", "LC_ALL": "C.UTF-8"}
#: Seconds after which a run is killed and reported as a hang.
HARD_TIMEOUT = 40.0
#: Address space a run may add to what it starts with (forked children inherit their parent's).
MEMORY_BUDGET = 768 * MiB
#: A run using more CPU seconds than this is reported (a tiny image should not take so long).
SLOW = 10.0

ARGS = "root=/dev/xvda1 ro quiet"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- payloads


def text_like(rng: random.Random, size: int) -> bytes:
    """Compressible bytes, so that compressing formats store real compressed streams."""
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(200)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" \n"[rng.randint(0, 1) : rng.randint(0, 1) + 1]
    return bytes(out[:size])


_RNG = random.Random(20260508)
#: Half compressible, half not; sizes cross indirect-block and extent-tree thresholds.
KERNEL = text_like(_RNG, 70_000) + _RNG.randbytes(90_000)
INITRD = _RNG.randbytes(40_001)
KERNEL_NAME = "vmlinuz-6.1"
INITRD_NAME = "initrd.img-6.1"

CONFIGS = {
    "grub2": (
        "boot/grub/grub.cfg",
        "set default=0\nset timeout=5\n"
        "menuentry 'Debian GNU/Linux' --class debian {\n"
        "  linux /boot/vmlinuz " + ARGS + "\n  initrd /boot/" + INITRD_NAME + "\n}\n"
        "menuentry 'Rescue' {\n  linux /boot/missing\n}\n",
    ),
    "grub2-efi": (
        "EFI/debian/grub.cfg",
        "set default=0\nmenuentry 'Debian' {\n  linux /boot/" + KERNEL_NAME + " " + ARGS + "\n"
        "  initrd /boot/" + INITRD_NAME + "\n}\n",
    ),
    "legacy": (
        "boot/grub/menu.lst",
        "default 0\ntimeout 5\ntitle Linux\n  kernel /boot/vmlinuz " + ARGS + "\n"
        "  initrd /boot/" + INITRD_NAME + "\ntitle Other\n  kernel /boot/other\n",
    ),
    "extlinux": (
        "boot/extlinux/extlinux.conf",
        "DEFAULT linux\nTIMEOUT 50\nLABEL linux\n  KERNEL /boot/vmlinuz\n"
        "  APPEND " + ARGS + "\n  INITRD /boot/" + INITRD_NAME + "\n",
    ),
    "isolinux": (
        "isolinux/isolinux.cfg",
        "DEFAULT linux\nLABEL linux\n  KERNEL /boot/" + KERNEL_NAME + "\n"
        "  APPEND initrd=/boot/" + INITRD_NAME + " " + ARGS + "\n",
    ),
    "syslinux": (
        "syslinux.cfg",
        "DEFAULT linux\nLABEL linux\n  LINUX /boot/" + KERNEL_NAME + "\n"
        "  INITRD /boot/" + INITRD_NAME + "\n  APPEND " + ARGS + "\n",
    ),
    "systemd-boot": (
        "loader/entries/linux.conf",
        "title Linux\nlinux /boot/" + KERNEL_NAME + "\ninitrd /boot/" + INITRD_NAME + "\n"
        "options " + ARGS + "\n",
    ),
    "lilo": (
        "etc/lilo.conf",
        "default=linux\nimage=/boot/vmlinuz\n  label=linux\n  initrd=/boot/" + INITRD_NAME + "\n"
        '  append="' + ARGS + '"\n',
    ),
}


def guest_tree(config: str, symlinks: bool = True, entries: int = 60) -> dict:
    """The files of a small bootable guest, with a multi-block directory and some links."""
    path, text = CONFIGS[config]
    tree: dict = {
        path: text,
        f"boot/{KERNEL_NAME}": KERNEL,
        f"boot/{INITRD_NAME}": INITRD,
        "etc/hostname": "guest\n",
        "a/b/c/d/e/deep.txt": "deep\n",
        **{f"many/entry-with-a-longish-name-{i:03d}": f"{i}\n" for i in range(entries)},
    }
    if config == "systemd-boot":
        tree["loader/loader.conf"] = "default linux.conf\ntimeout 3\n"
    if symlinks:
        tree["boot/vmlinuz"] = Symlink(KERNEL_NAME)
        tree["links/loop"] = Symlink("loop")
        tree["links/up"] = Symlink("../../../../..")
        tree["links/kernel"] = Symlink(f"../boot/{KERNEL_NAME}")
    else:
        # Formats without symlinks name the file itself.
        tree[path] = text.replace("/boot/vmlinuz ", f"/boot/{KERNEL_NAME} ").replace(
            "/boot/vmlinuz\n", f"/boot/{KERNEL_NAME}\n"
        )
    return tree


# ---------------------------------------------------------------- guests


@dataclass(frozen=True)
class Field:
    """A header field worth absurd values: where, how wide, which byte order."""

    offset: int
    width: int
    order: str = "<"


@dataclass
class Guest:
    """A bootable base image and where a mutator should aim."""

    name: str
    image: Path
    #: (start, end) byte ranges holding metadata.
    regions: list[tuple[int, int]]
    fields: list[Field] = field(default_factory=list)
    #: (offset, codec) where compressed streams start: "zlib", "deflate", "zstd", "xz".
    streams: list[tuple[int, str]] = field(default_factory=list)
    #: (FIXERS name, offset of its structure): checksums recomputed after damage, so that
    #: it reaches the code past them.
    fixers: list[tuple[str, int]] = field(default_factory=list)
    #: (byte offset, entry bits, entries) of FAT tables, for cluster-chain loops.
    chains: list[tuple[int, int, int]] = field(default_factory=list)
    #: Edit sets that each make a loop (an EBR chain pointing back, ...).
    loops: list[list[tuple[int, bytes]]] = field(default_factory=list)
    #: What the pristine image boots: SHA-256 of kernel and initrd, and the args.
    expect: tuple[str, str | None, str] = (sha256(KERNEL), sha256(INITRD), ARGS)
    #: SHA-256 of the guest's regular files, for "whatever was extracted came from it".
    contents: set[str] = field(default_factory=set)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.image.stat().st_size


# ---------------------------------------------------------------- where metadata lies


def _payload_sectors(blobs: Iterable[bytes]) -> set[bytes]:
    """Digests of every 512-byte piece of the file contents, the last one zero-padded."""
    digests = set()
    for blob in blobs:
        for start in range(0, len(blob), SECTOR):
            digests.add(hashlib.blake2b(blob[start : start + SECTOR].ljust(SECTOR, b"\0")).digest())
    return digests


def _data_ranges(path: Path) -> Iterator[tuple[int, int]]:
    """The allocated ranges of a (possibly sparse) file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        fd, offset = f.fileno(), 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                return
            end = os.lseek(fd, start, os.SEEK_HOLE)
            yield start, min(end, size)
            offset = end


def metadata_regions(
    image: Path, payloads: Iterable[bytes], gap: int = 4096
) -> list[tuple[int, int]]:
    """Byte ranges of ``image`` that are neither zero nor file contents: its metadata.

    File data lies in whole sectors, so a sector equal to a 512-byte piece of a payload
    is data. Compressed formats hide their data; there this finds data too, which is fine.
    """
    known = _payload_sectors(payloads)
    zero = bytes(SECTOR)
    found: list[tuple[int, int]] = []
    with open(image, "rb") as f:
        for start, end in _data_ranges(image):
            f.seek(start)
            chunk = f.read(end - start)
            for at in range(0, len(chunk), SECTOR):
                piece = chunk[at : at + SECTOR]
                if piece == zero[: len(piece)]:
                    continue
                if len(piece) == SECTOR and hashlib.blake2b(piece).digest() in known:
                    continue
                lo = start + at
                if found and lo - found[-1][1] <= gap:
                    found[-1] = (found[-1][0], lo + len(piece))
                else:
                    found.append((lo, lo + len(piece)))
    return found


def find_streams(image: Path, regions: Sequence[tuple[int, int]]) -> list[tuple[int, str]]:
    """Offsets where a zlib, zstd or xz stream seems to start (for bombs)."""
    patterns = {
        "zlib": re.compile(rb"\x78[\x01\x5e\x9c\xda]"),
        "zstd": re.compile(rb"\x28\xb5\x2f\xfd"),
        "xz": re.compile(rb"\xfd7zXZ\x00"),
    }
    found = []
    with open(image, "rb") as f:
        for start, end in regions:
            f.seek(start)
            chunk = f.read(end - start)
            for codec, pattern in patterns.items():
                for m in pattern.finditer(chunk):
                    if codec == "zlib" and int.from_bytes(m.group(), "big") % 31:
                        continue  # not a valid zlib header check
                    found.append((start + m.start(), codec))
    found.sort()
    # Thousands of false zlib hits in random data would drown the real streams.
    return found[:4000]


def blobs_of(tree: Tree) -> list[bytes]:
    return [
        v.encode() if isinstance(v, str) else v
        for v in tree.values()
        if v is not None and not isinstance(v, Symlink)
    ]


# ---------------------------------------------------------------- header fields (by spec)

#: ext2/3/4 superblock (at 1024): s_inodes_count, s_blocks_count_lo, s_first_data_block,
#: s_log_block_size, s_log_cluster_size, s_blocks_per_group, s_inodes_per_group, s_rev_level,
#: s_first_ino, s_inode_size, s_feature_incompat, s_first_meta_bg, s_desc_size,
#: s_blocks_count_hi, s_log_groups_per_flex, s_reserved_gdt_blocks.
EXT_FIELDS = [
    Field(1024 + o, w)
    for o, w in (
        (0x00, 4), (0x04, 4), (0x14, 4), (0x18, 4), (0x1C, 4), (0x20, 4), (0x28, 4), (0x4C, 4),
        (0x54, 4), (0x58, 2), (0x60, 4), (0x104, 4), (0xFE, 2), (0x150, 4), (0x174, 1), (0xCE, 2),
    )
]  # fmt: skip
#: FAT BPB: BytsPerSec, SecPerClus, RsvdSecCnt, NumFATs, RootEntCnt, TotSec16, FATSz16,
#: TotSec32, FATSz32, RootClus.
FAT_FIELDS = [
    Field(o, w)
    for o, w in ((11, 2), (13, 1), (14, 2), (16, 1), (17, 2), (19, 2), (22, 2), (32, 4), (36, 4), (44, 4))
]  # fmt: skip
#: ISO 9660 primary volume descriptor (sector 16): volume space size, logical block size,
#: path table size and location, root directory record's extent and data length.
ISO_FIELDS = [
    Field(0x8000 + o, w, order)
    for o, w, order in (
        (80, 4, "<"), (84, 4, ">"), (128, 2, "<"), (130, 2, ">"), (132, 4, "<"), (140, 4, "<"),
        (158, 4, "<"), (162, 4, ">"), (166, 4, "<"), (170, 4, ">"), (156, 1, "<"),
    )
]  # fmt: skip
#: XFS superblock: sb_blocksize, sb_dblocks, sb_rootino, sb_agblocks, sb_agcount,
#: sb_inodesize, sb_inopblock, sb_blocklog, sb_inodelog, sb_inopblog, sb_agblklog, sb_dirblklog.
XFS_FIELDS = [
    Field(o, w, ">")
    for o, w in ((4, 4), (8, 8), (56, 8), (84, 4), (88, 4), (104, 2), (106, 2), (120, 1), (122, 1), (123, 1), (124, 1), (192, 1))
]  # fmt: skip
#: Btrfs superblock (64 KiB): root, chunk_root, total_bytes, root_dir_objectid, sectorsize,
#: nodesize, sys_chunk_array_size, root_level, chunk_root_level.
BTRFS_FIELDS = [
    Field(0x10000 + o, w)
    for o, w in ((0x50, 8), (0x58, 8), (0x70, 8), (0x80, 8), (0x90, 4), (0x94, 4), (0xA0, 4), (0xC6, 1), (0xC7, 1))
]  # fmt: skip
#: SquashFS superblock: inodes, block_size, fragments, compression, block_log, no_ids,
#: root_inode, bytes_used, and the table starts.
SQUASHFS_FIELDS = [
    Field(o, w)
    for o, w in ((4, 4), (12, 4), (16, 4), (20, 2), (22, 2), (26, 2), (32, 8), (40, 8), (48, 8), (64, 8), (72, 8), (80, 8))
]  # fmt: skip
#: EROFS superblock (at 1 KiB): blkszbits and sb_extslots, root_nid, meta_blkaddr,
#: feature_incompat, available_compr_algs, extra_devices, dirblkbits, packed_nid.
EROFS_FIELDS = [Field(1024 + o, w) for o, w in ((12, 2), (14, 2), (40, 4), (80, 4), (84, 2), (86, 2), (90, 1), (96, 8))]  # fmt: skip
#: qcow2 header (big-endian): version, backing_file_offset, backing_file_size, cluster_bits,
#: size, l1_size, l1_table_offset, refcount_table_offset, refcount_table_clusters,
#: nb_snapshots, snapshots_offset, incompatible_features, refcount_order, header_length,
#: compression_type.
QCOW2_FIELDS = [
    Field(o, w, ">")
    for o, w in (
        (4, 4), (8, 8), (16, 4), (20, 4), (24, 8), (36, 4), (40, 8), (48, 8), (56, 4), (60, 4),
        (64, 8), (72, 8), (96, 4), (100, 4), (104, 1),
    )
]  # fmt: skip
#: ReiserFS superblock (64 KiB): s_block_count, s_root_block, s_blocksize, s_tree_height,
#: s_bmap_nr.
REISERFS_FIELDS = [Field(65536 + o, w) for o, w in ((0, 4), (8, 4), (44, 2), (68, 2), (70, 2))]


def mbr_fields(sector: int = 0) -> list[Field]:
    """The four entries of an MBR or EBR: status, type, first LBA, sector count."""
    base = sector * SECTOR + 446
    return [
        Field(base + 16 * i + o, w) for i in range(4) for o, w in ((0, 1), (4, 1), (8, 4), (12, 4))
    ]


#: GPT header (LBA 1): header size, my LBA, alternate LBA, first/last usable, entries LBA,
#: number of entries, entry size.
GPT_FIELDS = [
    Field(512 + o, w) for o, w in ((12, 4), (24, 8), (32, 8), (40, 8), (48, 8), (72, 8), (80, 4), (84, 4))
]  # fmt: skip


# ---------------------------------------------------------------- builders


def _finish(
    name: str,
    image: Path,
    tree: Tree,
    fields: Iterable[Field] = (),
    fixers: Iterable[tuple[str, int]] = (),
    streams: bool = False,
    extra_regions: Iterable[tuple[int, int]] = (),
) -> Guest:
    blobs = blobs_of(tree)
    regions = metadata_regions(image, [b for b in blobs if len(b) > 4096])
    regions = sorted({*regions, *extra_regions})
    contents = {sha256(b) for b in blobs}
    guest = Guest(name, image, regions, list(fields), fixers=list(fixers), contents=contents)
    if streams:
        guest.streams = find_streams(image, [(0, image.stat().st_size)])
    return guest


def build_ext(tmp: Path, name: str, fstype: str, config: str, options: tuple[str, ...]) -> Guest:
    tree = guest_tree(config)
    image = make_ext(tmp, tree, size_mb=6, fstype=fstype, options=options, name=f"{name}.img")
    return _finish(name, image, tree, EXT_FIELDS)


def fat_chains(image: Path, offset: int = 0) -> list[tuple[int, int, int]]:
    """(FAT byte offset, entry bits, entries) of the first FAT, from the BPB."""
    with open(image, "rb") as f:
        f.seek(offset)
        bpb = f.read(64)
    bps, spc, reserved = struct.unpack_from("<HBH", bpb, 11)
    fatsz16, fatsz32 = struct.unpack_from("<H", bpb, 22)[0], struct.unpack_from("<I", bpb, 36)[0]
    total = struct.unpack_from("<H", bpb, 19)[0] or struct.unpack_from("<I", bpb, 32)[0]
    root_dir_sectors = (struct.unpack_from("<H", bpb, 17)[0] * 32 + bps - 1) // bps
    fatsz = fatsz16 or fatsz32
    clusters = (total - reserved - 2 * fatsz - root_dir_sectors) // spc
    bits = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
    return [(offset + reserved * bps, bits, clusters + 2)]


def build_fat(
    tmp: Path, name: str, bits: int, size_kb: int, config: str, options: tuple[str, ...] = ()
) -> Guest:
    tree = guest_tree(config, symlinks=False)
    image = make_fat(tmp, tree, bits, size_kb, f"{name}.img", options)
    guest = _finish(name, image, tree, FAT_FIELDS)
    guest.chains = fat_chains(image)
    return guest


def build_iso(tmp: Path, name: str, *options: str) -> Guest:
    tree = guest_tree("isolinux")
    src = write_tree(tmp / f"{name}.d", tree)
    image = tmp / f"{name}.img"
    run("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", *options, "-o", image, src)
    return _finish(name, image, tree, ISO_FIELDS)


def xfs_protofile(src: Path) -> bytes:
    """A mkfs.xfs(8) protofile recreating ``src`` (names and targets without spaces or ':')."""
    lines = [b"hostile", b"0 0", b"d--755 0 0"]

    def add(directory: Path) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            name = os.fsencode(entry.name)
            if entry.is_symlink():
                lines.append(name + b" l--777 0 0 " + os.fsencode(os.readlink(entry.path)))
            elif entry.is_dir():
                lines.append(name + b" d--755 0 0")
                add(Path(entry.path))
                lines.append(b"$")
            else:
                lines.append(name + b" ---644 0 0 " + os.fsencode(entry.path))

    add(src)
    lines.append(b"$")
    return b"\n".join(lines) + b"\n"


def build_xfs(tmp: Path, name: str, config: str, options: tuple[str, ...]) -> Guest:
    tree = guest_tree(config, entries=300)
    src = write_tree(tmp / f"{name}.d", tree)
    proto = tmp / f"{name}.proto"
    proto.write_bytes(xfs_protofile(src))
    image = tmp / f"{name}.img"
    with open(image, "wb") as f:
        f.truncate(16 * MiB)
    # The xfstests variables let mkfs.xfs make a filesystem under its 300 MiB minimum.
    env = {**os.environ, "TEST_DIR": "/tmp", "TEST_DEV": "/dev/null", "QA_CHECK_FS": "xfs"}
    proc = subprocess.run(
        [require_tool("mkfs.xfs"), "-q", *options, "-p", str(proto), str(image)],
        env=env,
        capture_output=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"mkfs.xfs: {proc.stderr.decode(errors='replace')}")
    return _finish(name, image, tree, XFS_FIELDS)


def build_btrfs(tmp: Path, name: str, config: str, *options: str) -> Guest:
    tree = guest_tree(config, entries=200)
    src = write_tree(tmp / f"{name}.d", tree)
    image = tmp / f"{name}.img"
    with open(image, "wb") as f:
        f.truncate(16 * MiB)
    run("mkfs.btrfs", "-q", "-f", *options, "-r", src, image)
    return _finish(name, image, tree, BTRFS_FIELDS, fixers=[("btrfs", 0)])


@contextlib.contextmanager
def mounted(image: Path, mnt: Path, *options: str) -> Iterator[Path]:
    mnt.mkdir(parents=True, exist_ok=True)
    run("mount", "-o", ",".join(("loop", *options)), image, mnt)
    try:
        yield mnt
    finally:
        subprocess.run([require_tool("umount"), str(mnt)], check=True)


def build_btrfs_compressed(tmp: Path, name: str, algorithm: str) -> Guest:
    """Btrfs whose files the kernel wrote compressed (mkfs.btrfs 6.2 cannot compress)."""
    tree = guest_tree("grub2", entries=100)
    src = write_tree(tmp / f"{name}.d", tree)
    image = tmp / f"{name}.img"
    with open(image, "wb") as f:
        f.truncate(16 * MiB)
    run("mkfs.btrfs", "-q", "-f", "-M", image)
    with mounted(image, tmp / f"{name}.mnt", f"compress-force={algorithm}") as mnt:
        run("cp", "-a", f"{src}/.", mnt)
    return _finish(name, image, tree, BTRFS_FIELDS, fixers=[("btrfs", 0)], streams=True)


def build_squashfs(tmp: Path, name: str, comp: str, block: int = 4096) -> Guest:
    tree = guest_tree("grub2")
    src = write_tree(tmp / f"{name}.d", tree)
    image = tmp / f"{name}.img"
    run("mksquashfs", src, image, "-noappend", "-quiet", "-no-progress", "-comp", comp,
        "-b", str(block))  # fmt: skip
    with open(image, "rb") as f:
        sb = f.read(96)
    inode_table = struct.unpack_from("<Q", sb, 64)[0]
    bytes_used = struct.unpack_from("<Q", sb, 40)[0]
    # The tables (inodes, directories, fragments, ids) follow the data.
    extra = [(0, 96), (inode_table, bytes_used)]
    return _finish(name, image, tree, SQUASHFS_FIELDS, streams=True, extra_regions=extra)


def build_erofs(tmp: Path, name: str, *options: str) -> Guest:
    tree = guest_tree("grub2")
    src = write_tree(tmp / f"{name}.d", tree)
    image = tmp / f"{name}.img"
    run("mkfs.erofs", "--quiet", *options, image, src)
    with open(image, "rb") as f:
        meta_blkaddr = struct.unpack_from("<I", f.read(1024 + 128), 1024 + 40)[0]
    # The superblock, and the inodes and their indexes (mkfs.erofs puts them after the data).
    extra = [(1024, 1024 + 128), (meta_blkaddr * 4096, image.stat().st_size)]
    return _finish(name, image, tree, EROFS_FIELDS, extra_regions=extra)


def build_ufs(tmp: Path, name: str, version: int, order: str, config: str) -> Guest:
    tree = guest_tree(config)
    src = write_tree(tmp / f"{name}.d", tree)
    image = tmp / f"{name}.img"
    options = f"version={version},bsize=8192,fsize=1024"
    run("makefs", "-t", "ffs", "-B", order, "-s", "4m", "-o", options, image, src)
    sb = 65536 if version == 2 else 8192
    fo = ">" if order == "be" else "<"
    # fs_sblkno, fs_cblkno, fs_iblkno, fs_dblkno, fs_ncg, fs_bsize, fs_fsize, fs_frag, fs_ipg, fs_fpg
    fields = [Field(sb + o, 4, fo) for o in (8, 12, 16, 20, 44, 48, 52, 56, 184, 188)]
    return _finish(name, image, tree, fields)


def build_f2fs(tmp: Path, name: str, config: str, *options: str) -> Guest:
    tree = guest_tree(config, entries=300)
    image = make_f2fs(tmp, tree, size_mb=64, options=options, name=f"{name}.img")
    sb = 1024
    # log_blocksize, log_blocks_per_seg, block_count, segment counts, area addresses,
    # root_ino, cp_payload
    fields = [Field(sb + o, 4) for o in (16, 20, 48, 52, 56, 60, 64, 68, 76, 84, 92, 96, 1664)]
    return _finish(name, image, tree, [Field(sb + 36, 8), *fields], fixers=[("f2fs", 0)])


def _unxz(src: Path, dst: Path) -> Path:
    """Decompress, leaving runs of zeros as holes (mutants copy only the data)."""
    zero = bytes(65536)
    with lzma.open(src) as fin, open(dst, "wb") as fout:
        while chunk := fin.read(65536):
            if chunk == zero[: len(chunk)]:
                fout.seek(len(chunk), os.SEEK_CUR)
            else:
                fout.write(chunk)
        fout.truncate()
    return dst


def _fixture_files(tree: dict) -> set[str]:
    return {entry["sha256"] for entry in tree.values() if "sha256" in entry}


def build_reiserfs(tmp: Path, name: str, fixture: str) -> Guest:
    """A committed image the kernel wrote (scripts/make-reiserfs-fixtures.sh)."""
    image = _unxz(FIXTURES / "reiserfs" / f"{fixture}.img.xz", tmp / f"{name}.img")
    tree = json.loads((FIXTURES / "reiserfs" / "manifest.json").read_text())["tree"]
    guest = Guest(name, image, metadata_regions(image, []), REISERFS_FIELDS)
    # Its grub.cfg boots the kernel alone, without arguments.
    guest.expect = (tree["/boot/vmlinuz-6.1"]["sha256"], None, "")
    guest.contents = _fixture_files(tree)
    return guest


def build_ext4_crypt(tmp: Path, name: str) -> Guest:
    """The committed ext4 whose casefolded /boot and encrypted directories the kernel
    made (scripts/make-ext4-crypt-fixtures.sh): casefolded lookups and the encryption
    flag under damage."""
    image = _unxz(FIXTURES / "ext4-crypt" / "ext4-crypt.img.xz", tmp / f"{name}.img")
    manifest = json.loads((FIXTURES / "ext4-crypt" / "manifest.json").read_text())
    tree = manifest["tree"]
    release = next(p for p in tree if p.startswith("/vmlinuz-")).removeprefix("/vmlinuz-")
    from pygrub.fs.ext4 import open_filesystem

    # Aim at the metadata, not the kernel's 8 MB: its bytes are data wherever they lie.
    fs = open_filesystem(FileSource(str(image)))
    assert fs is not None
    boot = [fs.read_file(f"/boot/{n}-{release}", 16 << 20) for n in ("vmlinuz", "initrd.img")]
    fs.source.close()
    guest = Guest(name, image, metadata_regions(image, boot), EXT_FIELDS)
    uuid = manifest["images"]["ext4-crypt.img.xz"]["uuid"]
    guest.expect = (
        tree[f"/vmlinuz-{release}"]["sha256"],
        tree[f"/initrd.img-{release}"]["sha256"],
        f"root=UUID={uuid} ro console=ttyS0 panic=-1 pygrub.test=ext4-crypt",
    )
    guest.contents = _fixture_files(tree)
    return guest


def build_zfs(tmp: Path, name: str, fixture: str) -> Guest:
    """A committed pool zfs-fuse wrote (scripts/make-zfs-fixtures.sh)."""
    image = _unxz(FIXTURES / "zfs" / f"{fixture}.img.xz", tmp / f"{name}.img")
    manifest = json.loads((FIXTURES / "zfs" / f"{fixture}.manifest.json").read_text())
    size = image.stat().st_size
    # The four labels (name/value lists, uberblock rings) and everything allocated.
    labels = [(0, 512 << 10), (size - (512 << 10), size)]
    guest = Guest(name, image, sorted({*labels, *metadata_regions(image, [])}))
    boot = manifest["datasets"][manifest["bootfs"]]
    guest.expect = (
        boot["/boot/vmlinuz-2.6.32"]["sha256"],
        boot["/boot/initrd.img-2.6.32"]["sha256"],
        f"root=ZFS={manifest['bootfs']} ro",
    )
    guest.contents = {d for tree in manifest["datasets"].values() for d in _fixture_files(tree)}
    guest.streams = find_streams(image, [(0, size)])
    return guest


# ---------------------------------------------------------------- volume formats


def sfdisk(disk: Path, size_mb: int, lines: list[str], label: str = "dos") -> Path:
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate(size_mb * MiB)
    script = "\n".join([f"label: {label}", "unit: sectors", *lines]) + "\n"
    run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk, input=script.encode())
    return disk


def place(src: Path, disk: Path, offset: int) -> None:
    with open(src, "rb") as fin, open(disk, "r+b") as fout:
        fout.seek(offset)
        shutil.copyfileobj(fin, fout, 4 * MiB)


def build_mbr(tmp: Path, name: str) -> Guest:
    """Two primaries (swap, empty FAT) and an extended partition whose second logical
    partition holds the guest: the EBR chain has to be followed."""
    tree = guest_tree("legacy")
    fs = make_ext(
        tmp, tree, size_mb=6, fstype="ext4", options=("-O", "^metadata_csum"), name=f"{name}-fs.img"
    )
    disk = sfdisk(tmp / f"{name}.img", 16, [
        "start=2048, size=2048, type=82",
        "start=4096, size=2048, type=b",
        "start=6144, size=26624, type=5",
        "start=8192, size=2048, type=83",
        f"start=12288, size={6 * MiB // SECTOR}, type=83, bootable",
    ])  # fmt: skip
    place(fs, disk, 12288 * SECTOR)
    ebrs = ebr_sectors(disk)
    assert len(ebrs) == 2, ebrs
    guest = _finish(name, disk, tree, [f for e in [0, *ebrs] for f in mbr_fields(e)])
    extended = ebrs[0]
    # The second EBR's link back to the first, and the first's link to itself.
    guest.loops = [
        [(ebrs[1] * SECTOR + 446 + 16 + 8, struct.pack("<I", 0))],
        [(ebrs[0] * SECTOR + 446 + 16 + 8, struct.pack("<I", ebrs[0] - extended))],
    ]
    return guest


def ebr_sectors(disk: Path) -> list[int]:
    """The sectors of the EBRs, following the chain from the MBR's extended partition."""
    with open(disk, "rb") as f:
        mbr = f.read(SECTOR)
        entries = [struct.unpack_from("<B3xBxxxII", mbr, 446 + 16 * i) for i in range(4)]
        (extended,) = [lba for _s, kind, lba, _n in entries if kind in (0x05, 0x0F, 0x85)]
        found, at = [], extended
        while at and len(found) < 16:
            found.append(at)
            f.seek(at * SECTOR)
            ebr = f.read(SECTOR)
            link = struct.unpack_from("<I", ebr, 446 + 16 + 8)[0]
            at = extended + link if link else 0
    return found


def build_gpt(tmp: Path, name: str) -> Guest:
    """An ESP (FAT16, GRUB's EFI config) and a Linux partition (ext4) on a GPT disk."""
    esp_tree = guest_tree("grub2-efi", symlinks=False, entries=5)
    esp = make_fat(tmp, esp_tree, 16, 8192, f"{name}-esp.img", ("-s", "2"))
    root_tree = guest_tree("grub2", entries=20)
    root = make_ext(tmp, root_tree, size_mb=6, name=f"{name}-root.img")
    disk = sfdisk(tmp / f"{name}.img", 18, [
        "start=2048, size=16384, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        f"start=18432, size={6 * MiB // SECTOR}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    ], label="gpt")  # fmt: skip
    place(esp, disk, 2048 * SECTOR)
    place(root, disk, 18432 * SECTOR)
    tree = {**esp_tree, **root_tree}
    size = disk.stat().st_size
    backup = [(size - 33 * SECTOR, size)]
    guest = _finish(
        name, disk, tree, [*mbr_fields(0), *GPT_FIELDS], [("gpt", 0)], extra_regions=backup
    )
    guest.chains = fat_chains(disk, 2048 * SECTOR)
    return guest


def vtoc_label(slices: dict[int, tuple[int, int, int]], nparts: int = 16) -> bytes:
    """A Solaris x86 dk_label: slot -> (v_part tag, start sector, size), checksummed."""
    label = bytearray(SECTOR)
    struct.pack_into("<II", label, 12, 0x600DDEEE, 1)  # v_sanity, v_version
    struct.pack_into("<HH", label, 28, SECTOR, nparts)  # v_sectorsz, v_nparts
    for slot, (tag, start, size) in slices.items():
        struct.pack_into(
            "<HHII", label, 72 + 12 * slot, tag, 0, start, size
        )  # p_tag, p_flag, p_start, p_size
    struct.pack_into("<H", label, 508, 0xDABE)  # dkl_magic
    fix_vtoc(label, 0)
    return bytes(label)


def build_vtoc(tmp: Path, name: str) -> Guest:
    """An MBR Solaris partition (0xbf) whose VTOC root slice (tag 2) holds the guest.

    No tool here writes a VTOC: the label is written by hand from dklabel.h."""
    tree = guest_tree("grub2")
    fs = make_ext(tmp, tree, size_mb=6, name=f"{name}-fs.img")
    disk = sfdisk(tmp / f"{name}.img", 12, ["start=2048, size=20480, type=bf, bootable"])
    root_start = 2048  # sectors into the partition
    label = vtoc_label({0: (2, root_start, 6 * MiB // SECTOR), 2: (5, 0, 20480), 7: (8, 64, 512)})
    with open(disk, "r+b") as f:
        f.seek(2048 * SECTOR + SECTOR)
        f.write(label)
    place(fs, disk, (2048 + root_start) * SECTOR)
    at = 2048 * SECTOR + SECTOR
    fields = [*mbr_fields(0), Field(at + 12, 4), Field(at + 28, 2), Field(at + 30, 2)]
    fields += [Field(at + 72 + 12 * s + o, 4) for s in (0, 2, 7) for o in (4, 8)]
    return _finish(name, disk, tree, fields, [("vtoc", at)], extra_regions=[(at, at + SECTOR)])


def build_hybrid_iso(tmp: Path, name: str) -> Guest:
    """An ISO 9660 image with an MBR partition table appended by xorriso (an ESP)."""
    esp_tree = guest_tree("grub2-efi", symlinks=False, entries=3)
    esp = make_fat(tmp, esp_tree, 12, 1024, f"{name}-esp.img")
    tree = guest_tree("isolinux")
    src = write_tree(tmp / f"{name}.d", tree)
    image = tmp / f"{name}.img"
    run("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-append_partition", "2", "0xef", esp,
        "-o", image, src)  # fmt: skip
    # The whole disk (the ISO) is tried first: its isolinux.cfg boots.
    return _finish(name, image, {**tree, **esp_tree}, [*mbr_fields(0), *ISO_FIELDS])


def build_lvm(tmp: Path, name: str) -> Guest:
    """A type-8e partition made a PV by LVM2, VG "vg0": LV "swap", then LV "root" (the
    guest) in two segments around LV "gap". Loop devices, so it needs root."""
    disk = sfdisk(tmp / f"{name}.img", 20, ["start=2048, size=36864, type=8e"])
    lvm = lvm_disk(
        tmp / f"{name}-lvm",
        disk,
        [(MiB, 18 * MiB)],
        "vg0",
        [
            ("lvcreate", "-an", "-Zn", "-L", "2M", "-n", "swap", "vg0"),
            ("lvcreate", "-an", "-Zn", "-L", "3M", "-n", "root", "vg0"),
            ("lvcreate", "-an", "-Zn", "-L", "1M", "-n", "gap", "vg0"),
            ("lvextend", "-L", "+3M", "vg0/root"),
        ],
    )
    tree = guest_tree("legacy", entries=10)
    fs = make_ext(tmp, tree, size_mb=6, options=("-O", "^metadata_csum"), name=f"{name}-fs.img")
    write_lv(lvm, "root", fs.read_bytes())
    # The label sector and the metadata text area: numbers there are worth absurd values.
    return _finish(
        name, disk, tree, mbr_fields(0), [("lvm", MiB)], extra_regions=[(MiB, MiB + 8192)]
    )


def build_md(tmp: Path, name: str) -> Guest:
    """An MD RAID1 member (metadata 1.2) on an MBR partition of type 0xfd, its array the guest."""
    tree = guest_tree("grub2", entries=20)
    fs = make_ext(tmp, tree, size_mb=6, name=f"{name}-fs.img")
    member = tmp / f"{name}-member.img"
    member.write_bytes(md_member(fs.read_bytes(), "1.2"))
    member_sectors = member.stat().st_size // SECTOR
    examined = run("mdadm", "--examine", member).decode()
    assert "Raid Level : raid1" in examined and "correct" in examined, examined
    disk = sfdisk(tmp / f"{name}.img", 10, [f"start=2048, size={member_sectors}, type=fd"])
    place(member, disk, 2048 * SECTOR)
    at = 2048 * SECTOR + 8 * SECTOR
    # level, size, raid_disks, data_offset, data_size, super_offset, dev_number, max_dev
    fields = [
        Field(at + o, w)
        for o, w in ((72, 4), (80, 8), (92, 4), (128, 8), (136, 8), (144, 8), (160, 4), (220, 4))
    ]
    return _finish(
        name, disk, tree, [*mbr_fields(0), *fields], [("md", at)], extra_regions=[(at, at + 1024)]
    )


def qcow2_l2_entries(image: Path) -> list[tuple[int, int]]:
    """(host offset, stored length) of every compressed cluster (qcow2 spec, L1 -> L2)."""
    data = image.read_bytes()
    cluster_bits = struct.unpack_from(">I", data, 20)[0]
    l1_size, l1_offset = struct.unpack_from(">IQ", data, 36)
    csize_shift = 62 - (cluster_bits - 8)
    found = []
    for i in range(l1_size):
        l2 = struct.unpack_from(">Q", data, l1_offset + 8 * i)[0] & 0x00FFFFFFFFFFFE00
        if not l2:
            continue
        for j in range(1 << (cluster_bits - 3)):
            entry = struct.unpack_from(">Q", data, l2 + 8 * j)[0]
            if entry & (1 << 62):
                host = entry & ((1 << csize_shift) - 1)
                sectors = ((entry >> csize_shift) & ((1 << (cluster_bits - 8)) - 1)) + 1
                found.append((host, sectors * SECTOR - (host % SECTOR)))
    return found


def build_qcow2(tmp: Path, name: str, *options: str) -> Guest:
    """An MBR disk whose ext4 partition is the guest, converted by qemu-img."""
    tree = guest_tree("legacy", entries=20)
    fs = make_ext(tmp, tree, size_mb=6, name=f"{name}-fs.img")
    raw = sfdisk(tmp / f"{name}-raw.img", 8, [f"start=2048, size={6 * MiB // SECTOR}, type=83"])
    place(fs, raw, MiB)
    image = tmp / f"{name}.img"
    run("qemu-img", "convert", "-O", "qcow2", *options, raw, image)
    guest = _finish(name, image, tree, QCOW2_FIELDS)
    if "-c" in options:
        codec = "zstd" if any("zstd" in o for o in options) else "deflate"
        guest.streams = [(host, codec) for host, _length in qcow2_l2_entries(image)]
    return guest


#: name -> builder(tmp, name). Each makes a guest that boots (KERNEL, INITRD, ARGS)
#: unless its ``expect`` says otherwise.
BUILDERS: dict[str, Callable[[Path, str], Guest]] = {
    "ext2": lambda t, n: build_ext(t, n, "ext2", "extlinux", ("-b", "1024")),
    "ext3": lambda t, n: build_ext(t, n, "ext3", "legacy", ("-b", "1024", "-O", "^dir_index")),
    "ext4": lambda t, n: build_ext(t, n, "ext4", "grub2", ()),
    "ext4-nocsum": lambda t, n: build_ext(t, n, "ext4", "grub2", ("-O", "^metadata_csum,^has_journal,inline_data", "-I", "256")),
    "fat12": lambda t, n: build_fat(t, n, 12, 1024, "syslinux", ("-s", "1")),
    "fat16": lambda t, n: build_fat(t, n, 16, 8192, "systemd-boot", ("-s", "2")),
    "fat32": lambda t, n: build_fat(t, n, 32, 34000, "grub2-efi", ("-s", "1")),
    "iso9660": lambda t, n: build_iso(t, n),
    "xfs-v5": lambda t, n: build_xfs(t, n, "grub2", ("-b", "size=1024")),
    "xfs-v4": lambda t, n: build_xfs(t, n, "legacy", ("-m", "crc=0", "-b", "size=512", "-i", "size=256")),
    "btrfs": lambda t, n: build_btrfs(t, n, "grub2"),
    "btrfs-mixed": lambda t, n: build_btrfs(t, n, "legacy", "-M"),
    "btrfs-zstd": lambda t, n: build_btrfs_compressed(t, n, "zstd"),
    "btrfs-zlib": lambda t, n: build_btrfs_compressed(t, n, "zlib"),
    "squashfs-gzip": lambda t, n: build_squashfs(t, n, "gzip"),
    "squashfs-xz": lambda t, n: build_squashfs(t, n, "xz"),
    "squashfs-zstd": lambda t, n: build_squashfs(t, n, "zstd"),
    "squashfs-lz4": lambda t, n: build_squashfs(t, n, "lz4"),
    "squashfs-lzo": lambda t, n: build_squashfs(t, n, "lzo"),
    "f2fs": lambda t, n: build_f2fs(t, n, "grub2"),
    "f2fs-features": lambda t, n: build_f2fs(t, n, "legacy", "-O", "extra_attr,inode_checksum,inode_crtime,sb_checksum,lost_found"),
    "erofs": lambda t, n: build_erofs(t, n),
    "erofs-lz4hc": lambda t, n: build_erofs(t, n, "-zlz4hc", "-C16384", "-Eztailpacking"),
    "erofs-legacy": lambda t, n: build_erofs(t, n, "-zlz4", "-Elegacy-compress"),
    "ufs1": lambda t, n: build_ufs(t, n, 1, "le", "lilo"),
    "ufs2": lambda t, n: build_ufs(t, n, 2, "be", "grub2"),
    "reiserfs": lambda t, n: build_reiserfs(t, n, "reiserfs-3.6-r5-4k"),
    "ext4-crypt": build_ext4_crypt,
    "zfs": lambda t, n: build_zfs(t, n, "boot"),
    "mbr": build_mbr,
    "gpt": build_gpt,
    "vtoc": build_vtoc,
    "hybrid-iso": build_hybrid_iso,
    "lvm": build_lvm,
    "md": build_md,
    "qcow2": lambda t, n: build_qcow2(t, n, "-o", "compat=1.1,cluster_size=4096"),
    "qcow2-v2": lambda t, n: build_qcow2(t, n, "-o", "compat=0.10,cluster_size=512"),
    "qcow2-zlib": lambda t, n: build_qcow2(t, n, "-c", "-o", "cluster_size=4096"),
    "qcow2-zstd": lambda t, n: build_qcow2(t, n, "-c", "-o", "compression_type=zstd,cluster_size=4096"),
}  # fmt: skip


def build_guests(tmp: Path, names: Iterable[str] | None = None) -> dict[str, Guest]:
    tmp.mkdir(parents=True, exist_ok=True)
    return {name: BUILDERS[name](tmp, name) for name in (names or BUILDERS)}


# ---------------------------------------------------------------- checksum fixers


class Buffer:
    """Reads and writes at offsets of a bytearray or an open file, clipped to its end."""

    def __init__(self, target: bytearray | io.BufferedRandom) -> None:
        self.target = target

    @property
    def size(self) -> int:
        if isinstance(self.target, bytearray):
            return len(self.target)
        return os.fstat(self.target.fileno()).st_size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        if isinstance(self.target, bytearray):
            return bytes(self.target[offset : offset + length])
        return os.pread(self.target.fileno(), length, offset)

    def write(self, offset: int, data: bytes) -> None:
        data = data[: max(0, self.size - offset)]
        if offset < 0 or not data:
            return
        if isinstance(self.target, bytearray):
            self.target[offset : offset + len(data)] = data
        else:
            os.pwrite(self.target.fileno(), data, offset)


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as btrfs checksums its blocks."""
    crc = 0xFFFFFFFF
    table = _CRC32C
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def lvm_crc(data: bytes) -> int:
    """LVM2's calc_crc: CRC-32 started from 0xf597a6cf, without the final inversion."""
    return zlib.crc32(data, 0xF597A6CF ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def fix_gpt(buf: Buffer, _at: int, touched: Sequence[int] = ()) -> None:
    """Both GPT headers' entry-array and header CRC32s (UEFI 2.x, 5.3.2)."""
    size = buf.size
    for lba in (1, size // SECTOR - 1):
        header = bytearray(buf.read(lba * SECTOR, SECTOR))
        if len(header) < 92 or header[:8] != b"EFI PART":
            continue
        header_size = min(max(struct.unpack_from("<I", header, 12)[0], 92), SECTOR)
        entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
        if count * entry_size <= MiB:
            array = buf.read(entries_lba * SECTOR, count * entry_size)
            struct.pack_into("<I", header, 88, zlib.crc32(array))
        struct.pack_into("<I", header, 16, 0)
        struct.pack_into("<I", header, 16, zlib.crc32(bytes(header[:header_size])))
        buf.write(lba * SECTOR, bytes(header))


def fix_md(buf: Buffer | bytearray, at: int, touched: Sequence[int] = ()) -> None:
    """An MD 1.x superblock's sb_csum: the folded 32-bit sum of 256 + 2 * max_dev bytes."""
    buf = Buffer(buf) if isinstance(buf, bytearray) else buf
    raw = bytearray(buf.read(at, 4096).ljust(4096, b"\0"))
    fix_1x_checksum(raw)
    buf.write(at + 216, bytes(raw[216:220]))


def fix_vtoc(buf: Buffer | bytearray, at: int, touched: Sequence[int] = ()) -> None:
    """A dk_label's dkl_cksum: the XOR of its other 255 16-bit words."""
    buf = Buffer(buf) if isinstance(buf, bytearray) else buf
    label = buf.read(at, 510)
    checksum = 0
    for (word,) in struct.iter_unpack("<H", label.ljust(510, b"\0")):
        checksum ^= word
    buf.write(at + 510, struct.pack("<H", checksum))


def fix_lvm(buf: Buffer, at: int, touched: Sequence[int] = ()) -> None:
    """A PV's label header CRC, its first metadata area header CRC and the text's CRC."""
    label = buf.read(at + SECTOR, SECTOR)
    if label[:8] == b"LABELONE":
        buf.write(at + SECTOR + 16, struct.pack("<I", lvm_crc(label[20:])))
    header = bytearray(buf.read(at + 4096, SECTOR))
    if len(header) < SECTOR:
        return
    offset, size = struct.unpack_from("<QQ", header, 40)
    if 0 < size <= MiB and offset < MiB:
        struct.pack_into("<I", header, 56, lvm_crc(buf.read(at + 4096 + offset, size)))
    struct.pack_into("<I", header, 0, lvm_crc(bytes(header[4:])))
    buf.write(at + 4096, bytes(header))


def fix_btrfs(buf: Buffer, at: int, touched: Sequence[int] = ()) -> None:
    """CRC-32C of the superblock and of every tree block a mutation touched."""
    sb = buf.read(at + 0x10000, 4096)
    if len(sb) < 4096 or sb[0x40:0x48] != b"_BHRfS_M":
        return
    nodesize = struct.unpack_from("<I", sb, 0x94)[0]
    fsid = sb[0x20:0x30]
    if nodesize in (4096, 8192, 16384, 32768, 65536):
        for block in sorted({(t - at) // nodesize * nodesize + at for t in touched}):
            node = buf.read(block, nodesize)
            if len(node) == nodesize and node[0x20:0x30] == fsid:
                buf.write(block, struct.pack("<I", crc32c(node[32:])).ljust(32, b"\0"))
    sb = buf.read(at + 0x10000, 4096)
    buf.write(at + 0x10000, struct.pack("<I", crc32c(sb[32:])).ljust(32, b"\0"))


F2FS_MAGIC = 0xF2F52010


def f2fs_crc(data: bytes) -> int:
    """f2fs_crc32(): the CRC-32 polynomial from F2FS's magic, no final inversion."""
    return zlib.crc32(data, F2FS_MAGIC ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def fix_f2fs(buf: Buffer, at: int, touched: Sequence[int] = ()) -> None:
    """f2fs_crc32 of each checkpoint block a mutation touched, and of the superblocks."""
    sb = buf.read(at + 1024, 3072)
    if len(sb) < 3072 or sb[:4] != struct.pack("<I", F2FS_MAGIC):
        return
    cp_start = at + struct.unpack_from("<I", sb, 76)[0] * 4096
    for block in sorted({(t - at) // 4096 * 4096 + at for t in touched}):
        if not cp_start <= block < cp_start + 2 * 512 * 4096:
            continue
        raw = buf.read(block, 4096)
        (crc_at,) = struct.unpack_from("<I", raw.ljust(4096, b"\0"), 164)
        if len(raw) == 4096 and 192 <= crc_at <= 4092:
            buf.write(block + crc_at, struct.pack("<I", f2fs_crc(raw[:crc_at])))
    for copy in (1024, 5120):
        raw = buf.read(at + copy, 3072)
        if len(raw) == 3072 and struct.unpack_from("<I", raw, 2180)[0] & 0x800:
            buf.write(at + copy + 3068, struct.pack("<I", f2fs_crc(raw[:3068])))


FIXERS: dict[str, Callable[..., None]] = {
    "gpt": fix_gpt,
    "md": fix_md,
    "vtoc": fix_vtoc,
    "lvm": fix_lvm,
    "btrfs": fix_btrfs,
    "f2fs": fix_f2fs,
}


# ---------------------------------------------------------------- decompression bombs

_BOMBS: dict[str, bytes] = {}


def bomb(codec: str) -> bytes:
    """A stream of ``codec`` that inflates to far more than any block or cluster holds."""
    if codec not in _BOMBS:
        zeros = bytes(MiB)
        if codec in ("zlib", "deflate"):
            z = zlib.compressobj(9, zlib.DEFLATED, 15 if codec == "zlib" else -15)
            data = b"".join(z.compress(zeros) for _ in range(64)) + z.flush()
        elif codec == "zstd":
            import zstandard

            # No content size in the frame header: only the output bound stops it.
            z = zstandard.ZstdCompressor(level=3, write_content_size=False).compressobj()
            data = b"".join(z.compress(zeros) for _ in range(1024)) + z.flush()
        elif codec == "xz":
            x = lzma.LZMACompressor(lzma.FORMAT_XZ)
            data = b"".join(x.compress(zeros) for _ in range(256)) + x.flush()
        else:
            raise ValueError(codec)
        _BOMBS[codec] = data
    return _BOMBS[codec]


# ---------------------------------------------------------------- mutants


@dataclass
class Mutant:
    """Edits to a guest's image, applied in order, then checksums fixed, then truncation."""

    guest: str
    seed: int
    what: list[str] = field(default_factory=list)
    edits: list[tuple[int, bytes]] = field(default_factory=list)
    truncate: int | None = None
    fix: bool = False

    def describe(self) -> str:
        tail = f", cut at {self.truncate}" if self.truncate is not None else ""
        fixed = ", checksums fixed" if self.fix else ""
        return f"{self.guest} #{self.seed}: {'; '.join(self.what)}{tail}{fixed}"

    def to_json(self) -> dict:
        return {
            "guest": self.guest,
            "seed": self.seed,
            "what": self.what,
            "edits": [(o, d.hex()) for o, d in self.edits],
            "truncate": self.truncate,
            "fix": self.fix,
        }

    @classmethod
    def from_json(cls, raw: dict) -> Mutant:
        edits = [(o, bytes.fromhex(d)) for o, d in raw["edits"]]
        return cls(raw["guest"], raw["seed"], raw["what"], edits, raw["truncate"], raw["fix"])


def absurd_values(width: int, size: int) -> list[int]:
    top = (1 << (8 * width)) - 1
    values = [0, 1, 2, 3, 7, 0xFF, top, top - 1, top >> 1, (top >> 1) + 1, size // SECTOR, size]
    values += [size + 1, size * 4096, 1 << (8 * width - 2), 4096, 65536, 0x10000 - 1]
    return [v & top for v in values]


class Mutator:
    """Draws mutants of one guest from a seeded random generator."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.size = guest.size
        self._fd = os.open(guest.image, os.O_RDONLY)
        self.regions = [r for r in guest.regions if r[1] > r[0]] or [(0, min(self.size, MiB))]
        self.weights = [end - start for start, end in self.regions]

    def close(self) -> None:
        os.close(self._fd)

    def base(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset).ljust(length, b"\0")

    def where(self, rng: random.Random, align: int = 1) -> int:
        """A metadata offset (its region chosen by size), aligned down to ``align``."""
        start, end = rng.choices(self.regions, self.weights)[0]
        offset = rng.randrange(start, end)
        return max(0, min(offset - offset % align, self.size - align))

    def operations(self) -> list[tuple[str, int]]:
        ops = [("flip", 30), ("byte", 8), ("zero", 10), ("cut", 6), ("absurd", 20),
               ("splice", 8), ("copy", 6), ("smear", 3), ("anywhere", 3)]  # fmt: skip
        if self.guest.streams:
            ops.append(("bomb", 12))
        if self.guest.chains or self.guest.loops:
            ops.append(("loop", 8))
        return ops

    def mutant(self, seed: int) -> Mutant:
        rng = random.Random(f"{self.guest.name}/{seed}")
        m = Mutant(self.guest.name, seed)
        names, weights = zip(*self.operations(), strict=True)
        for _ in range(rng.choice((1, 1, 1, 1, 2, 2, 3))):
            getattr(self, "_" + rng.choices(names, weights)[0])(rng, m)
        m.fix = bool(self.guest.fixers) and rng.random() < 0.6
        return m

    def _flip(self, rng: random.Random, m: Mutant) -> None:
        count = rng.choice((1, 1, 1, 2, 3, 8, 32))
        for _ in range(count):
            at = self.where(rng)
            m.edits.append((at, bytes([self.base(at, 1)[0] ^ (1 << rng.randrange(8))])))
        m.what.append(f"{count} bit flips from 0x{m.edits[-count][0]:x}")

    def _byte(self, rng: random.Random, m: Mutant) -> None:
        at = self.where(rng)
        value = rng.choice((0, 0xFF, 0x80, 0x7F, 0x01, rng.randrange(256)))
        m.edits.append((at, bytes([value])))
        m.what.append(f"byte 0x{at:x}=0x{value:02x}")

    def _zero(self, rng: random.Random, m: Mutant) -> None:
        block = rng.choice((512, 1024, 4096, 4096, 16384))
        at = self.where(rng, block)
        m.edits.append((at, bytes(block)))
        m.what.append(f"zeroed {block} at 0x{at:x}")

    def _cut(self, rng: random.Random, m: Mutant) -> None:
        if rng.random() < 0.5:
            at = rng.randrange(self.size)
        else:
            start, end = rng.choice(self.regions)
            at = rng.choice((start, end, rng.randrange(start, end)))
            at -= at % rng.choice((1, SECTOR, 4096))
        m.truncate = at if m.truncate is None else min(m.truncate, at)

    def _absurd(self, rng: random.Random, m: Mutant) -> None:
        if self.guest.fields and rng.random() < 0.7:
            f = rng.choice(self.guest.fields)
        else:
            width = rng.choice((2, 4, 4, 8))
            f = Field(self.where(rng, width), width, rng.choice("<>"))
        value = rng.choice(absurd_values(f.width, self.size))
        if rng.random() < 0.2:  # nudge the real value: off-by-one, doubled, negated
            (old,) = struct.unpack(f.order + "BHxIxxxQ"[f.width - 1], self.base(f.offset, f.width))
            value = rng.choice((old + 1, old - 1, old * 2, -old, old << 8)) % (1 << (8 * f.width))
        m.edits.append((f.offset, value.to_bytes(f.width, "little" if f.order == "<" else "big")))
        m.what.append(f"{f.width}-byte field 0x{f.offset:x}={value:#x}")

    def _splice(self, rng: random.Random, m: Mutant) -> None:
        """A word copied from elsewhere in the metadata: pointers that point back (loops)."""
        width = rng.choice((4, 8))
        src, dst = self.where(rng, width), self.where(rng, width)
        m.edits.append((dst, self.base(src, width)))
        m.what.append(f"word 0x{src:x} copied to 0x{dst:x}")

    def _copy(self, rng: random.Random, m: Mutant) -> None:
        """A metadata block copied over another: duplicate tree nodes, cycles."""
        block = rng.choice((512, 1024, 4096))
        src, dst = self.where(rng, block), self.where(rng, block)
        m.edits.append((dst, self.base(src, block)))
        m.what.append(f"block 0x{src:x} copied to 0x{dst:x} ({block})")

    def _smear(self, rng: random.Random, m: Mutant) -> None:
        length = rng.choice((16, 64, 256))
        at = self.where(rng)
        m.edits.append((at, rng.randbytes(length)))
        m.what.append(f"{length} random bytes at 0x{at:x}")

    def _anywhere(self, rng: random.Random, m: Mutant) -> None:
        for _ in range(rng.choice((1, 4, 16))):
            at = rng.randrange(self.size)
            m.edits.append((at, bytes([self.base(at, 1)[0] ^ (1 << rng.randrange(8))])))
        m.what.append("bit flips anywhere")

    def _bomb(self, rng: random.Random, m: Mutant) -> None:
        at, codec = rng.choice(self.guest.streams)
        payload = bomb(codec)
        length = min(rng.choice((64, 512, 4096, 65536, len(payload))), len(payload))
        m.edits.append((at, payload[:length]))
        m.what.append(f"{codec} bomb of {length} bytes at 0x{at:x}")

    def _loop(self, rng: random.Random, m: Mutant) -> None:
        if self.guest.loops and (not self.guest.chains or rng.random() < 0.5):
            edits = rng.choice(self.guest.loops)
            m.edits.extend(edits)
            m.what.append(f"loop edit at 0x{edits[0][0]:x}")
            return
        fat, bits, entries = rng.choice(self.guest.chains)
        # A cluster in use made to point at itself or at an earlier cluster of some chain.
        for _ in range(16):
            cluster = rng.randrange(2, min(entries, 4096))
            if self._fat_get(fat, bits, cluster) >= 2:
                break
        target = rng.choice((cluster, rng.randrange(2, cluster + 1)))
        m.edits.extend(self._fat_set(fat, bits, cluster, target))
        m.what.append(f"FAT{bits} cluster {cluster} -> {target}")

    def _fat_get(self, fat: int, bits: int, cluster: int) -> int:
        if bits == 12:
            raw = int.from_bytes(self.base(fat + cluster * 3 // 2, 2), "little")
            return raw >> 4 if cluster & 1 else raw & 0xFFF
        width = bits // 8
        return int.from_bytes(self.base(fat + cluster * width, width), "little") & 0x0FFFFFFF

    def _fat_set(self, fat: int, bits: int, cluster: int, value: int) -> list[tuple[int, bytes]]:
        if bits == 12:
            at = fat + cluster * 3 // 2
            raw = int.from_bytes(self.base(at, 2), "little")
            raw = (raw & 0x000F) | (value << 4) if cluster & 1 else (raw & 0xF000) | value
            return [(at, raw.to_bytes(2, "little"))]
        return [(fat + cluster * bits // 8, value.to_bytes(bits // 8, "little"))]


def sparse_copy(src: Path, dst: Path) -> None:
    """Copy only the allocated ranges of ``src`` (images are mostly holes)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.truncate(os.fstat(fin.fileno()).st_size)
        for start, end in _data_ranges(src):
            for at in range(start, end, 4 * MiB):
                data = os.pread(fin.fileno(), min(4 * MiB, end - at), at)
                os.pwrite(fout.fileno(), data, at)


def write_mutant(guest: Guest, mutant: Mutant, path: Path) -> None:
    """The mutant's image at ``path``: a copy of the guest's, edited, fixed, truncated."""
    sparse_copy(guest.image, path)
    with open(path, "r+b") as f:
        buf = Buffer(f)  # type: ignore[arg-type]
        for offset, data in mutant.edits:
            buf.write(offset, data)
        if mutant.fix:
            touched = [o for o, _ in mutant.edits]
            for name, at in guest.fixers:
                FIXERS[name](buf, at, touched)
        if mutant.truncate is not None:
            f.truncate(mutant.truncate)


# ---------------------------------------------------------------- running the command


@dataclass
class Run:
    """One whole-command run: the image, its output directory and file, and its outcome."""

    label: str
    image: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    #: SHA-256 of the guest's files: what a successful run must have extracted (if known).
    contents: set[str] | None = None
    #: A forked child calling pygrub.cli.main (cheap), or an exec of ``python -m pygrub``.
    in_process: bool = True
    digest: str = ""
    #: Filled in by the runner.
    status: int | None = None
    signal: int | None = None
    timed_out: bool = False
    elapsed: float = 0.0
    #: User and system CPU seconds: unlike wall-clock time, other load does not inflate it.
    cpu: float = 0.0
    maxrss_kb: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    output: bytes = b""
    problems: list[str] = field(default_factory=list)
    #: The kernel, ramdisk and args items of the output file, when it parsed.
    items: dict[str, bytes] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.workdir / "out"

    @property
    def output_file(self) -> Path:
        return self.workdir / "output"

    def argv(self) -> list[str]:
        return [
            "-q",
            f"--output={self.output_file}",
            "--output-format=simple0",
            f"--output-directory={self.out_dir}",
            *self.extra_args,
            str(self.image),
        ]


def file_digest(path: Path) -> str:
    """SHA-256 of a file's size and its non-zero MiB chunks (holes are skipped unread).

    It depends on the bytes alone, not on how the filesystem allocated them."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    chunks = sorted(
        {c for start, end in _data_ranges(path) for c in range(start // MiB, -(-end // MiB))}
    )
    zero = bytes(MiB)
    with open(path, "rb") as f:
        for chunk in chunks:
            f.seek(chunk * MiB)
            data = f.read(MiB)
            if data != zero[: len(data)]:
                digest.update(b"@%d:" % chunk)
                digest.update(data)
    return digest.hexdigest()


def content_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()  # type: ignore[attr-defined]


def prepare(run_: Run) -> Run:
    """Make the run's empty output directory and output file, and hash its image."""
    run_.out_dir.mkdir(parents=True, exist_ok=True)
    run_.output_file.write_bytes(b"")
    run_.digest = file_digest(run_.image)
    return run_


def _child_main(run_: Run, memory: int, in_process: bool) -> None:
    """In the forked child: limits, descriptors, then the command. Never returns."""
    status = 70
    try:
        os.setpgid(0, 0)
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(run_.workdir / "stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(run_.workdir / "stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        env = {**os.environ, **RUN_ENV, **run_.env}
        if not in_process:
            argv = [sys.executable, "-m", "pygrub", *run_.argv()]
            env["PYTHONPATH"] = str(ROOT / "src")
            os.execve(sys.executable, argv, env)
        os.environ.clear()
        os.environ.update(env)
        # Fresh streams on the new descriptors, as a new interpreter would have.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), "utf-8", "surrogateescape")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), "utf-8", "backslashreplace")
        import logging

        logging.root.handlers.clear()
        from pygrub.cli import main

        status = main(run_.argv())
    except BaseException:  # noqa: B036 - whatever escapes is the finding
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status if isinstance(status, int) else 70)


def warm_imports() -> None:
    """Import every reader once, so forked children do not each pay for it."""
    import importlib
    import pkgutil

    import pygrub

    for info in pkgutil.walk_packages(pygrub.__path__, "pygrub."):
        if ".menu" in info.name or info.name.endswith(("sandbox", "__main__")):
            continue
        with contextlib.suppress(Exception):
            importlib.import_module(info.name)


def _vm_size() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def execute(
    runs: Iterable[Run],
    jobs: int = 2,
    timeout: float = HARD_TIMEOUT,
    memory: int = MEMORY_BUDGET,
) -> Iterator[Run]:
    """Run each (prepared) run in a child, ``jobs`` at a time; yield each as it ends, checked.

    A forked child calling pygrub.cli.main may use the parent's size plus ``memory``; an
    exec of ``python -m pygrub`` may use ``memory``. Peak RSS is reported over the parent's
    for forks (they share its pages)."""
    pending = iter(runs)
    active: dict[int, tuple[Run, int, float]] = {}  # pidfd -> (run, pid, started)
    poller = select.poll()
    fork_limit, baseline = _vm_size() + memory, _rss()
    exhausted = False
    while active or not exhausted:
        while not exhausted and len(active) < jobs:
            run_ = next(pending, None)
            if run_ is None:
                exhausted = True
                break
            sys.stdout.flush()
            sys.stderr.flush()
            started = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _child_main(run_, fork_limit if run_.in_process else memory, run_.in_process)
            pidfd = os.pidfd_open(pid)
            poller.register(pidfd, select.POLLIN)
            active[pidfd] = (run_, pid, started)
        if not active:
            break
        now = time.monotonic()
        wait_ms = max(0, min(s + timeout - now for _r, _p, s in active.values())) * 1000
        ready = {fd for fd, _ev in poller.poll(wait_ms)}
        now = time.monotonic()
        for pidfd, (run_, pid, started) in list(active.items()):
            if pidfd not in ready and now - started < timeout:
                continue
            run_.timed_out = pidfd not in ready
            # The whole group (a --runas run forks): before reaping, so the group id is ours.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _pid, status, usage = os.wait4(pid, 0)
            run_.elapsed = time.monotonic() - started
            run_.cpu = usage.ru_utime + usage.ru_stime
            run_.maxrss_kb = max(0, usage.ru_maxrss - (baseline if run_.in_process else 0))
            if os.WIFSIGNALED(status):
                run_.signal = os.WTERMSIG(status)
            else:
                run_.status = os.WEXITSTATUS(status)
            poller.unregister(pidfd)
            os.close(pidfd)
            del active[pidfd]
            check(run_)
            yield run_


# ---------------------------------------------------------------- the checks


def parse_simple0(data: bytes) -> dict[str, bytes]:
    """``kernel K\\0[ramdisk R\\0][args A\\0]\\0`` as Xen's simple0 format; ValueError if not."""
    if not data.endswith(b"\0\0"):
        raise ValueError("not ended by two NULs")
    items: dict[str, bytes] = {}
    order = ("kernel", "ramdisk", "args")
    for item in data[:-2].split(b"\0"):
        key, _, value = item.partition(b" ")
        name = key.decode("ascii", "replace")
        if (
            name not in order
            or name in items
            or (items and order.index(name) < order.index(list(items)[-1]))
        ):
            raise ValueError(f"unexpected item {item[:40]!r}")
        items[name] = value
    if "kernel" not in items:
        raise ValueError("no kernel item")
    return items


def check(run_: Run) -> None:
    """Fill ``run_.problems`` with every way the run broke the rules."""
    out_dir, problems = run_.out_dir, run_.problems
    run_.stdout = (run_.workdir / "stdout").read_bytes()
    run_.stderr = (run_.workdir / "stderr").read_bytes()
    run_.output = run_.output_file.read_bytes()
    err = run_.stderr.decode("utf-8", "replace")
    if run_.timed_out:
        problems.append(f"hang: killed after {run_.elapsed:.1f} s")
    elif run_.signal is not None:
        problems.append(f"killed by signal {run_.signal}")
    elif run_.status not in (0, 1):
        problems.append(f"exit status {run_.status}")
    if "Traceback" in err or "internal error" in err:
        line = next((x for x in err.splitlines() if "internal error" in x), err.strip()[-300:])
        problems.append(f"internal error: {line}")
    # PYGRUB_TIMEOUT is wall-clock time: on a loaded machine only CPU time says "slow".
    if run_.cpu > SLOW or ("took longer than" in err and run_.cpu > SLOW / 2):
        problems.append(f"slow: {run_.cpu:.1f} s of CPU in {run_.elapsed:.1f} s")
    left = sorted(p.name for p in out_dir.iterdir())
    if run_.status == 0:
        _check_success(run_, left)
    else:
        if left:
            problems.append(f"left in the output directory: {left}")
        if run_.output:
            problems.append(f"output file not empty on failure: {run_.output[:80]!r}")
        if run_.status == 1 and not err.rstrip("\n").rsplit("\n", 1)[-1].startswith(
            "pygrub: error: "
        ):
            problems.append(f"no one-line error: {err[-200:]!r}")
    if file_digest(run_.image) != run_.digest:
        problems.append("the image changed")


def _check_success(run_: Run, left: list[str]) -> None:
    problems = run_.problems
    try:
        items = parse_simple0(run_.output)
    except ValueError as e:
        problems.append(f"malformed output {run_.output[:80]!r}: {e}")
        return
    run_.items = items
    named = []
    for key in ("kernel", "ramdisk"):
        if key not in items:
            continue
        path = Path(os.fsdecode(items[key]))
        prefix = "boot_kernel." if key == "kernel" else "boot_ramdisk."
        if path.parent != run_.out_dir or not path.name.startswith(prefix):
            problems.append(f"{key} path {path} is not a new file of the output directory")
            continue
        if path.is_symlink() or not path.is_file():
            problems.append(f"{key} {path} is not a regular file")
            continue
        named.append(path.name)
        if run_.contents is not None and content_digest(path) not in run_.contents:
            # Several initrds are concatenated: only a single file's bytes are known.
            problems.append(f"{key} is not a file of the guest")
    if sorted(named) != left:
        problems.append(f"output directory holds {left}, the output names {sorted(named)}")
    if run_.stdout:
        problems.append(f"stdout not empty: {run_.stdout[:80]!r}")


# ---------------------------------------------------------------- hostile configs


@dataclass(frozen=True)
class Special:
    """A node that is not a file, directory or symlink: "fifo", or "chr"/"blk" major:minor."""

    kind: str
    major: int = 0
    minor: int = 0


@dataclass
class ConfigCase:
    """A well-formed filesystem whose config and files are the attack."""

    name: str
    tree: dict
    #: "boot" (must boot KERNEL), "fail" (must fail), or "any" (either, within the rules).
    expect: str = "any"
    fs: str = "ext4"
    #: Whether an extracted ramdisk is one guest file (several initrds are concatenated).
    single_files: bool = True


def grub2(config: str | bytes, files: dict | None = None) -> dict:
    """A guest booting with GRUB 2's ``config``, plus ``files`` (which may replace it)."""
    return {
        "boot/grub/grub.cfg": config,
        f"boot/{KERNEL_NAME}": KERNEL,
        f"boot/{INITRD_NAME}": INITRD,
        **(files or {}),
    }


ENTRY = (
    f"menuentry 'Linux' {{\n  linux /boot/{KERNEL_NAME} {ARGS}\n  initrd /boot/{INITRD_NAME}\n}}\n"
)
KERNEL_VIA_LINK = "menuentry 'Linux' {\n  linux /boot/vmlinuz ro\n}\n"


def symlink_chain(hops: int) -> dict:
    """/boot/vmlinuz -> l1 -> ... -> KERNEL_NAME: ``hops`` symlinks to follow."""
    links = {"boot/vmlinuz": Symlink("l1" if hops > 1 else KERNEL_NAME)}
    for n in range(1, hops):
        links[f"boot/l{n}"] = Symlink(f"l{n + 1}" if n + 1 < hops else KERNEL_NAME)
    return links


def config_cases() -> list[ConfigCase]:
    nest = 5000
    values = " ".join(str(i) for i in range(1000))
    cases = [
        ConfigCase("grub2-pristine", grub2(ENTRY), "boot"),
        ConfigCase("grub2-deep-if", grub2("if true; then\n" * nest + ENTRY + "fi\n" * nest)),
        ConfigCase("grub2-unclosed-if", grub2(ENTRY + "if true; then\n" * 100_000)),
        ConfigCase("grub2-deep-braces", grub2("{\n" * nest + ENTRY + "}\n" * nest)),
        ConfigCase("grub2-deep-submenu", grub2("submenu s {\n" * 3000 + ENTRY + "}\n" * 3000)),
        ConfigCase("grub2-recursive-function", grub2("function f { f\n}\nf\n" + ENTRY)),
        ConfigCase("grub2-mutual-recursion", grub2("function a { b\n}\nfunction b { a\n}\na\n" + ENTRY)),
        ConfigCase("grub2-source-self", grub2("source /boot/grub/grub.cfg\n" + ENTRY)),
        ConfigCase("grub2-configfile-self", grub2(ENTRY + "configfile /boot/grub/grub.cfg\n")),
        ConfigCase(
            "grub2-configfile-pingpong",
            grub2("configfile /boot/grub/b.cfg\n", {"boot/grub/b.cfg": "configfile /boot/grub/grub.cfg\n" + ENTRY}),
        ),
        ConfigCase("grub2-while-true", grub2("while true; do set x=1; done\n" + ENTRY)),
        ConfigCase("grub2-nested-for", grub2(f"for a in {values}; do for b in {values}; do for c in {values}; do set x=$a$b$c; done; done; done\n" + ENTRY)),
        ConfigCase("grub2-string-doubling", grub2("set a=0123456789abcdef\n" + 'set a="$a$a"\n' * 48 + 'menuentry "$a" {\n linux /boot/vmlinuz-6.1 $a\n}\n')),
        ConfigCase("grub2-regexp-backtracking", grub2('regexp --set=x "(a*)*b" "' + "a" * 40 + '"\n' + 'regexp "((a|aa)+)+$" "' + "a" * 60 + '!"\n' + ENTRY)),
        ConfigCase("grub2-huge-title", grub2("menuentry '" + "T" * 900_000 + f"' {{\n linux /boot/{KERNEL_NAME}\n}}\n"), "boot"),
        ConfigCase("grub2-huge-args", grub2(f"menuentry x {{\n linux /boot/{KERNEL_NAME} " + "a" * 900_000 + "\n}\n")),
        ConfigCase("grub2-many-entries", grub2(f"menuentry e {{ linux /boot/{KERNEL_NAME}\n}}\n" * 30_000)),
        ConfigCase("grub2-many-initrds", grub2(f"menuentry x {{\n linux /boot/{KERNEL_NAME}\n initrd" + f" /boot/{INITRD_NAME}" * 3000 + "\n}\n"), single_files=False),
        ConfigCase(
            "grub2-quotes-parens-newlines",
            grub2(
                "menuentry \"a\\\"b(c)\n)d'e\" {\n linux /boot/" + KERNEL_NAME
                + " 'x\"y' \"p'q\" '(r)' \"new\nline\" \\$HOME ')' \\( \n}\n"
            ),
            "boot",
        ),
        ConfigCase("grub2-nul-in-args", grub2(b"menuentry 'nul\0title' {\n linux /boot/" + KERNEL_NAME.encode() + b" a\0b 'c\0d'\n}\n")),
        ConfigCase("grub2-nul-in-path", grub2(b"menuentry x {\n linux /boot/" + KERNEL_NAME.encode() + b"\0.bak\n}\n")),
        ConfigCase("grub2-invalid-utf8-and-bidi", grub2("menuentry '\u202eevil\u202c' {\n linux /boot/".encode() + KERNEL_NAME.encode() + b" \xff\xfe\x80 x\x1b[2J\n}\n")),
        ConfigCase("grub2-dotdot-above-root", grub2(f"menuentry x {{\n linux /../../../../boot/{KERNEL_NAME}\n}}\n"), "boot"),
        ConfigCase("grub2-dotdot-host-file", grub2("menuentry x {\n linux /../../../../../etc/passwd\n}\n"), "fail"),
        ConfigCase("grub2-device-host-file", grub2("menuentry x {\n linux (host)/etc/passwd\n}\nmenuentry y {\n linux (hd9,gpt9)/etc/shadow\n}\n"), "fail"),
        ConfigCase("grub2-garbage", grub2(random.Random(5).randbytes(200_000))),
        ConfigCase("grub2-huge-file", grub2("#" * (3 * MiB) + "\n" + ENTRY)),
        ConfigCase(
            "grub2-grubenv-hostile",
            grub2(
                "load_env\nset default=\"${saved_entry}\"\n" + ENTRY,
                {"boot/grub/grubenv": b"# GRUB Environment Block\nsaved_entry=" + b"x>" * 400 + b"\n" + b"#" * 100},
            ),
            "boot",
        ),
        # Blocklists: the whole device, past its end, 64-bit wrap, thousands of runs,
        # sectors of the filesystem's own metadata read as an environment and a script.
        ConfigCase(
            "grub2-blocklists-hostile",
            grub2(
                "load_env -f 0+\nload_env -f (hd0)1+18446744073709551615\nload_env -f 0+1\n"
                "source 18446744073709551615+1\nsource " + ",".join(["2+1"] * 5000) + "\n"
                "configfile 0+2\nsource +\n[ -s 0+ ]\n" + ENTRY
            ),
            "boot",
        ),
        ConfigCase(
            "bls-many-entries",
            grub2("blscfg\n", {f"loader/entries/e{i:04d}.conf": f"title T{i}\nversion 1.{i}\nlinux /boot/{KERNEL_NAME}\noptions {ARGS}\n" for i in range(400)}),
        ),
        # Symlinks: out of the guest, loops, long chains, and nodes that are not files.
        ConfigCase("kernel-symlink-absolute-host", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Symlink("/etc/passwd")}), "fail"),
        ConfigCase("kernel-symlink-relative-escape", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Symlink("../" * 30 + "etc/shadow")}), "fail"),
        ConfigCase("kernel-symlink-proc", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Symlink("/proc/self/environ")}), "fail"),
        ConfigCase("kernel-symlink-self", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Symlink("vmlinuz")}), "fail"),
        ConfigCase("kernel-symlink-pair", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Symlink("a"), "boot/a": Symlink("vmlinuz")}), "fail"),
        ConfigCase("kernel-symlink-chain-40", {**grub2(KERNEL_VIA_LINK), **symlink_chain(40)}, "boot"),
        ConfigCase("kernel-symlink-chain-41", {**grub2(KERNEL_VIA_LINK), **symlink_chain(41)}, "fail"),
        ConfigCase("kernel-symlink-dir-loop", grub2("menuentry x {\n linux /boot/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/" + KERNEL_NAME + "\n}\n", {"boot/d": Symlink(".")})),
        ConfigCase("config-symlink-self", grub2("", {"boot/grub/grub.cfg": Symlink("grub.cfg")}), "fail"),
        ConfigCase("config-symlink-host", grub2("", {"boot/grub/grub.cfg": Symlink("/etc/xen/xl.conf")}), "fail"),
        ConfigCase("kernel-fifo", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Special("fifo")}), "fail"),
        ConfigCase("kernel-char-device", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Special("chr", 1, 5)}), "fail"),
        ConfigCase("kernel-block-device", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Special("blk", 7, 0)}), "fail"),
        ConfigCase("kernel-directory", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz/x": "x"}), "fail"),
        ConfigCase("kernel-huge-sparse", grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Special("sparse", 3 << 30)}), "fail"),
        # GRUB legacy, SYSLINUX family, systemd-boot, LILO.
        ConfigCase("legacy-many-titles", {"boot/grub/menu.lst": f"title t\nkernel /boot/{KERNEL_NAME}\n" * 40_000, f"boot/{KERNEL_NAME}": KERNEL}),
        ConfigCase("legacy-absurd-default", {"boot/grub/menu.lst": "default 99999999999999999999999\nfallback 1 0 1 0 -5\ntimeout -1\n" + f"title t\nkernel /boot/{KERNEL_NAME}\n", f"boot/{KERNEL_NAME}": KERNEL}, "boot"),
        ConfigCase("legacy-title-specials", {"boot/grub/menu.lst": b"title a\0b (c) 'd\" \xff\nkernel /boot/" + KERNEL_NAME.encode() + b" x='(y)' \"z\n", f"boot/{KERNEL_NAME}": KERNEL}),
        ConfigCase("legacy-configfile-loop", {"boot/grub/menu.lst": "configfile /boot/grub/menu.lst\n" + f"title t\nkernel /boot/{KERNEL_NAME}\n", f"boot/{KERNEL_NAME}": KERNEL}),
        ConfigCase("extlinux-include-self", {"boot/extlinux/extlinux.conf": "INCLUDE /boot/extlinux/extlinux.conf\nDEFAULT l\nLABEL l\n KERNEL /boot/" + KERNEL_NAME + "\n", f"boot/{KERNEL_NAME}": KERNEL}),
        ConfigCase("extlinux-deep-menus", {"boot/extlinux/extlinux.conf": "MENU BEGIN m\n" * nest + "LABEL l\n KERNEL /boot/" + KERNEL_NAME + "\n" + "MENU END\n" * nest, f"boot/{KERNEL_NAME}": KERNEL}),
        ConfigCase("extlinux-append-specials", {"boot/extlinux/extlinux.conf": b"DEFAULT l\nLABEL l\n KERNEL /boot/" + KERNEL_NAME.encode() + b"\n APPEND a\0b 'c' \"d\" (e)\n", f"boot/{KERNEL_NAME}": KERNEL}),
        ConfigCase("systemd-boot-many-entries", {"loader/loader.conf": "default *\n", f"boot/{KERNEL_NAME}": KERNEL, **{f"loader/entries/e{i:04d}.conf": f"title {'T' * 200}\nlinux /boot/{KERNEL_NAME}\noptions {ARGS}\n" for i in range(400)}}),
        ConfigCase("systemd-boot-escape", {"loader/loader.conf": "default x.conf\n", "loader/entries/x.conf": "title x\nlinux /../../../etc/passwd\n", f"boot/{KERNEL_NAME}": KERNEL}, "fail"),
        ConfigCase("lilo-escape", {"etc/lilo.conf": "image=../../../../../../etc/passwd\n label=x\n", f"boot/{KERNEL_NAME}": KERNEL}, "fail"),
    ]  # fmt: skip
    # The same escapes through each reader's own symlinks.
    for fs in ("squashfs", "iso9660", "xfs", "btrfs", "ufs"):
        cases.append(
            ConfigCase(
                f"{fs}-symlink-absolute-host",
                grub2(KERNEL_VIA_LINK, {"boot/vmlinuz": Symlink("/etc/passwd")}),
                "fail",
                fs,
            )
        )
        cases.append(
            ConfigCase(
                f"{fs}-symlink-chain-41",
                {**grub2(KERNEL_VIA_LINK), **symlink_chain(41)},
                "fail",
                fs,
            )
        )
        cases.append(ConfigCase(f"{fs}-symlink-chain-40", {**grub2(KERNEL_VIA_LINK), **symlink_chain(40)}, "boot", fs))  # fmt: skip
    return cases


def write_case_tree(root: Path, tree: dict) -> Path:
    """Like imaging.write_tree, plus Special nodes (made with mknod, so as root)."""
    plain = {k: v for k, v in tree.items() if not isinstance(v, Special)}
    write_tree(root, plain)
    for rel, node in tree.items():
        if not isinstance(node, Special):
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if node.kind == "fifo":
            os.mkfifo(path)
        elif node.kind == "sparse":
            with open(path, "wb") as f:
                f.truncate(node.major)
                f.write(b"MZ")
        else:
            kind = {"chr": 0o20000, "blk": 0o60000}[node.kind]
            os.mknod(path, 0o644 | kind, os.makedev(node.major, node.minor))
    return root


def build_case(tmp: Path, case: ConfigCase) -> Path:
    """The case's tree as a filesystem image of kind ``case.fs``."""
    src = write_case_tree(tmp / f"{case.name}.d", case.tree)
    image = tmp / f"{case.name}.img"
    image.unlink(missing_ok=True)
    allocated = sum(len(v) for v in case.tree.values() if isinstance(v, (bytes, str)))
    size_mb = 8 + allocated * 3 // MiB
    if case.fs == "ext4":
        files = len(case.tree)
        run(
            "mke2fs",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-N",
            str(files + 256),
            "-d",
            src,
            image,
            f"{size_mb}M",
        )
    elif case.fs == "squashfs":
        run("mksquashfs", src, image, "-noappend", "-quiet", "-no-progress")
    elif case.fs == "iso9660":
        run("xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", image, src)
    elif case.fs == "xfs":
        proto = tmp / f"{case.name}.proto"
        proto.write_bytes(xfs_protofile(src))
        with open(image, "wb") as f:
            f.truncate(16 * MiB)
        env = {**os.environ, "TEST_DIR": "/tmp", "TEST_DEV": "/dev/null", "QA_CHECK_FS": "xfs"}
        subprocess.run(
            [require_tool("mkfs.xfs"), "-q", "-p", str(proto), str(image)],
            env=env,
            check=True,
            capture_output=True,
        )
    elif case.fs == "btrfs":
        with open(image, "wb") as f:
            f.truncate(16 * MiB)
        run("mkfs.btrfs", "-q", "-f", "-M", "-r", src, image)
    elif case.fs == "ufs":
        run("makefs", "-t", "ffs", "-s", f"{size_mb}m", "-o", "version=2", image, src)
    else:
        raise ValueError(case.fs)
    return image


def case_contents(case: ConfigCase) -> set[str] | None:
    if not case.single_files:
        return None
    return {
        sha256(b)
        for b in blobs_of({k: v for k, v in case.tree.items() if not isinstance(v, Special)})
    }


def case_problems(case: ConfigCase, run_: Run) -> list[str]:
    """The general checks, plus the case's own expectation."""
    problems = list(run_.problems)
    if case.expect == "boot":
        if run_.status != 0:
            problems.append(f"expected to boot: {run_.stderr.decode(errors='replace')[-300:]}")
        elif content_digest(Path(os.fsdecode(run_.items.get("kernel", b"/nonexistent")))) != sha256(
            KERNEL
        ):
            problems.append("booted something other than the kernel")
    elif case.expect == "fail" and run_.status == 0:
        problems.append(f"expected to fail, booted {run_.items}")
    return problems


class FlippedSource:
    """A host image with a few bytes changed, read without copying the image."""

    def __init__(self, path: Path, flips: dict[int, int]) -> None:
        self.base = FileSource(str(path))
        self.flips = flips

    @property
    def size(self) -> int:
        return self.base.size

    def pread(self, offset: int, length: int) -> bytes:
        data = self.base.pread(offset, length)
        hits = [pos for pos in self.flips if offset <= pos < offset + len(data)]
        if not hits:
            return data
        buf = bytearray(data)
        for pos in hits:
            buf[pos - offset] ^= self.flips[pos]
        return bytes(buf)

    def host_span(self, offset: int, length: int) -> None:
        return None
