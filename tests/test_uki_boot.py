"""Unified kernel images boot: the kernel, microcode + initrd and command line are
sections of one PE file, extracted as byte ranges of it.

The images are made the way dracut, mkinitcpio and ukify make them: the real systemd EFI
stub (Debian's systemd-boot-efi) with sections added by objcopy; the oracle for every
extracted byte is the data objcopy was given, and ``objdump -h`` for where it put it.
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostfs import HostDirFilesystem, guest_of_dirs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import make_fat, make_partitioned, write_tree
from ukitools import (
    CMDLINE,
    DAMAGES,
    INITRD,
    KERNEL,
    SYSTEMD_BOOT,
    UCODE,
    build_uki,
    damaged,
    full_sections,
    objdump_sections,
    padded,
    require_stub,
    run_pygrub,
)

from pygrub.boot import plan_boot
from pygrub.disk import FileSource
from pygrub.errors import CorruptError, LimitError, PygrubError
from pygrub.extract import Extraction, FileRef, copy_file
from pygrub.fs.base import Extent, ExtentKind, Filesystem, NodeType, Stat


def esp_image(
    tmp: Path, ukis: dict[str, Path], extra: dict[str, bytes | str] | None = None
) -> Path:
    """A GPT disk with one EFI System Partition holding systemd-boot and the UKIs."""
    tree: dict[str, bytes | str] = {
        "EFI/systemd/systemd-bootx64.efi": require_stub(SYSTEMD_BOOT).read_bytes(),
        "loader/loader.conf": "timeout 3\n",
    }
    for name, path in ukis.items():
        tree[f"EFI/Linux/{name}"] = path.read_bytes()
    tree.update(extra or {})
    esp = make_fat(tmp, tree, bits=16, size_kb=16 * 1024, name="esp.img")
    return make_partitioned(tmp, [(esp, "U")], label="gpt")


# -- through the whole command -------------------------------------------------------------


def test_uki_boots_through_the_whole_command(tmp_path):
    efi = build_uki(tmp_path, "debian-6.1.0-13-amd64.efi", full_sections())
    where = objdump_sections(efi)
    data = efi.read_bytes()
    # The oracle agrees with itself: objdump finds the bytes objcopy was given.
    off, size = where[".linux"]
    assert data[off : off + len(KERNEL)] == KERNEL and size >= len(KERNEL)
    image = esp_image(tmp_path, {efi.name: efi})
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert Path(items["kernel"]).read_bytes() == KERNEL
    # systemd-stub hands the kernel .ucode first, then .initrd.
    assert Path(items["ramdisk"]).read_bytes() == padded(UCODE, INITRD)
    # The command line as systemd-stub passes it on: the newline dropped, blanks kept.
    assert items["args"] == CMDLINE.rstrip("\n")


def test_uki_without_ucode_or_initrd(tmp_path):
    sections = full_sections()
    del sections[".ucode"]
    one = build_uki(tmp_path, "one.efi", sections)
    image = esp_image(tmp_path, {"one.efi": one})
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert Path(items["ramdisk"]).read_bytes() == INITRD  # one initrd: no padding
    del sections[".initrd"], sections[".cmdline"]
    bare = build_uki(tmp_path, "bare.efi", sections)
    image = esp_image(tmp_path / "bare", {"bare.efi": bare})
    proc, items = run_pygrub(image, tmp_path / "bare", "--args=quiet")
    assert proc.returncode == 0, proc.stderr.decode()
    assert Path(items["kernel"]).read_bytes() == KERNEL
    # No .cmdline: --args alone, after the blank Xen's pygrub puts before them too.
    assert "ramdisk" not in items and items["args"] == " quiet"


def test_not_really_and_list_name_the_sections(tmp_path):
    efi = build_uki(tmp_path, "x.efi", full_sections())
    image = esp_image(tmp_path, {"x.efi": efi})
    off, _ = objdump_sections(efi)[".linux"]
    proc, _ = run_pygrub(image, tmp_path, "-n")
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"/EFI/Linux/x.efi[{off}:{off + len(KERNEL)}] ({len(KERNEL)} bytes)" in (
        proc.stderr.decode()
    )
    listing = subprocess.run(
        [sys.executable, "-m", "pygrub", "-l", str(image)], capture_output=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr.decode()
    assert "Debian GNU/Linux 12 (bookworm)" in listing.stdout.decode()


def test_damaged_uki_is_skipped_and_the_next_boots(tmp_path):
    good = build_uki(tmp_path, "b-good.efi", full_sections())
    bad = bytearray(good.read_bytes())
    pe = struct.unpack_from("<I", bad, 0x3C)[0]
    struct.pack_into("<H", bad, pe + 6, 5000)  # NumberOfSections far past the limit
    (tmp_path / "a-bad.efi").write_bytes(bytes(bad))
    # loader.conf names the damaged one; systemd-boot does not list it, nor do we.
    image = esp_image(
        tmp_path,
        {"a-bad.efi": tmp_path / "a-bad.efi", "b-good.efi": good},
        {"loader/loader.conf": "default a-bad*\n"},
    )
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert Path(items["kernel"]).read_bytes() == KERNEL


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_uki_alone_is_a_clean_error(tmp_path, damage):
    efi = build_uki(tmp_path, "x.efi", full_sections())
    (tmp_path / "x.efi").write_bytes(damaged(efi, damage))
    image = esp_image(tmp_path, {"x.efi": tmp_path / "x.efi"})
    proc, items = run_pygrub(image, tmp_path)
    assert proc.returncode == 1 and not items
    err = proc.stderr.decode()
    assert err.startswith("pygrub: error: ") and err.count("\n") == 1
    assert "Traceback" not in err and "internal error" not in err
    assert not os.listdir(tmp_path / "out")


# -- the model and the plan ----------------------------------------------------------------


def test_plan_has_byte_ranges_objdump_agrees_with(tmp_path):
    efi = build_uki(tmp_path, "x.efi", full_sections())
    root = write_tree(
        tmp_path / "esp", {"loader/loader.conf": "", "EFI/Linux/x.efi": efi.read_bytes()}
    )
    plan = plan_boot(guest_of_dirs(("hd0,gpt1", root))[0])
    where = objdump_sections(efi)
    assert plan.entry is not None and plan.entry.title == "Debian GNU/Linux 12 (bookworm)"
    assert (plan.kernel.offset, plan.kernel.length) == (where[".linux"][0], len(KERNEL))
    assert [(r.offset, r.length) for r in plan.initrds] == [
        (where[".ucode"][0], len(UCODE)),
        (where[".initrd"][0], len(INITRD)),
    ]


def test_file_ref_range_outside_the_file_is_corrupt(tmp_path):
    fs = HostDirFilesystem(write_tree(tmp_path, {"f": b"x" * 100}))
    assert FileRef(fs, "/f", "(hd0)", 90, 10).size() == 10
    for offset, length in [(91, 10), (-1, 5), (0, -1), (1 << 62, 1)]:
        with pytest.raises(CorruptError, match="does not lie inside"):
            FileRef(fs, "/f", "(hd0)", offset, length).size()


def test_ramdisk_limit_counts_the_section_not_the_file(tmp_path):
    efi = build_uki(tmp_path, "x.efi", full_sections())
    root = write_tree(
        tmp_path / "esp", {"loader/loader.conf": "", "EFI/Linux/x.efi": efi.read_bytes()}
    )
    plan = plan_boot(guest_of_dirs(("hd0,gpt1", root))[0])
    out = tmp_path / "out"
    out.mkdir()
    with Extraction(str(out)) as extraction:
        path = extraction.write("boot_kernel.", [plan.kernel], len(KERNEL))
        assert Path(path).read_bytes() == KERNEL
        with pytest.raises(LimitError):
            extraction.write("boot_ramdisk.", plan.initrds, len(UCODE) + len(INITRD) - 1, pad=True)
    assert os.listdir(out) == []


# -- copy_file on byte ranges: every kind of extent ----------------------------------------


class PiecesFilesystem(Filesystem[str]):
    """One file, /f, whose extents are host spans, holes and encoded pieces as given."""

    kind = "pieces"

    def __init__(self, backing: FileSource, layout: list[tuple[str, int]]) -> None:
        super().__init__(backing)
        self.content = b""
        self.backing = backing.pread(0, backing.size)
        self.extents_list: list[Extent] = []
        pos = 0
        for kind, length in layout:
            if kind == "data":
                # Host bytes taken from the backing file, back to front, so spans are scattered.
                offset = len(self.backing) - pos - length
                self.extents_list.append(Extent(pos, length, ExtentKind.DATA, offset))
                self.content += self.backing[offset : offset + length]
            elif kind == "encoded":
                self.extents_list.append(Extent(pos, length, ExtentKind.ENCODED, pos))
                self.content += bytes((pos + i) % 253 for i in range(length))
            else:
                self.content += bytes(length)  # a hole: no extent at all
            pos += length

    def root(self) -> str:
        return "/"

    def node_stat(self, node: str) -> Stat:
        if node == "/":
            return Stat(NodeType.DIR, 0)
        return Stat(NodeType.FILE, len(self.content))

    def dir_entries(self, node: str) -> Iterator[tuple[str, str]]:
        yield "f", "/f"

    def readlink(self, node: str) -> bytes:
        raise AssertionError

    def node_extents(self, node: str) -> Iterator[Extent]:
        yield from self.extents_list

    def read_encoded(self, node: str, extent: Extent) -> bytes:
        return self.content[extent.file_offset : extent.file_offset + extent.length]


@functools.cache
def backing_file() -> FileSource:
    """64 KiB of random bytes in a host file: DATA extents copy from it through the kernel."""
    fd, path = tempfile.mkstemp()
    os.write(fd, os.urandom(64 * 1024))
    os.close(fd)
    source = FileSource(path)
    os.unlink(path)  # the open descriptor keeps it
    return source


PIECE = st.tuples(st.sampled_from(["data", "hole", "encoded"]), st.integers(1, 5000))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECE, min_size=1, max_size=8), st.data())
def test_copy_file_copies_exactly_the_range(layout, data):
    fs = PiecesFilesystem(backing_file(), layout)
    size = len(fs.content)
    offset = data.draw(st.integers(0, size))
    length = data.draw(st.integers(0, size - offset))
    at = data.draw(st.integers(0, 100))
    fd, path = tempfile.mkstemp()
    try:
        copy_file(FileRef(fs, "/f", "", offset, length), fd, at)
        os.ftruncate(fd, at + length)
        with open(fd, "rb", closefd=False) as f:
            got = f.read()
    finally:
        os.close(fd)
        os.unlink(path)
    assert got == bytes(at) + fs.content[offset : offset + length]


# -- hostile images --------------------------------------------------------------------------


@functools.cache
def sample_uki() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        return build_uki(Path(d), "x.efi", full_sections(b"K" * 3000)).read_bytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_hostile_uki_boots_its_bytes_or_fails_cleanly(tmp_path_factory, data):
    blob = bytearray(sample_uki())
    pe = struct.unpack_from("<I", blob, 0x3C)[0]
    header_end = pe + 24 + 240 + 40 * 16
    for _ in range(data.draw(st.integers(0, 6))):
        if data.draw(st.booleans()):
            where = data.draw(st.integers(0, header_end))
            blob[where] = data.draw(st.integers(0, 255))
        else:  # a whole field: an offset or size far out, or zero
            where = data.draw(st.integers(0, header_end - 4))
            value = data.draw(st.sampled_from([0, 1, len(blob), 0x7FFFFFFF, 0xFFFFFFFF]))
            struct.pack_into("<I", blob, where, value)
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    root = write_tree(
        tmp_path_factory.mktemp("esp"), {"loader/loader.conf": "", "EFI/Linux/x.efi": bytes(blob)}
    )
    out = tmp_path_factory.mktemp("out")
    try:
        plan = plan_boot(guest_of_dirs(("hd0,gpt1", root))[0])
        with Extraction(str(out)) as extraction:
            kernel = extraction.write("boot_kernel.", [plan.kernel], 1 << 20)
            extraction.keep()
    except PygrubError:
        assert os.listdir(out) == []
        return
    # Whatever the header says, what comes out is the bytes of the range it names.
    k = plan.kernel
    assert k.length is not None and k.offset + k.length <= len(blob)
    assert Path(kernel).read_bytes() == bytes(blob[k.offset : k.offset + k.length])
    shutil.rmtree(out)
