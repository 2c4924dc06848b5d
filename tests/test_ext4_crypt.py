"""ext4 with casefolded and encrypted directories, made for real
(scripts/make-ext4-crypt-fixtures.sh).

Debian 13's mke2fs made the filesystem (encrypt, casefold and the newest features of the
trixie fixture); then Debian's kernel, in a QEMU guest, made a casefolded /boot holding a
kernel, a marker initramfs and grub.cfg, a casefolded directory of mixed-case names, a
directory under an fscrypt v2 policy (trixie's fscrypt, a raw key) and one under a v1
policy (e4crypt), and printed its own view: whether each of a list of names is found in
the casefolded directories (the oracle for our lookups) and the encrypted directory's
entries. trixie's debugfs listed every directory for the manifest.

GRUB 2.12 cannot read this filesystem at all (casefold is in neither its supported nor
its ignored incompatible features: grub-fstest says "unknown filesystem"); Xen's pygrub
reads it through libext2fs. pygrub reads it as the kernel does: a casefolded directory
finds a name in any case, and an encrypted directory is refused by name when a path goes
through it, as GRUB refuses one ("directory is encrypted"), never read as plain names.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from fswalk import assert_manifest_matches, unpacked_fixture
from realboot import MARKER, qemu_boot, run_pygrub_for_qemu

from pygrub.disk import FileSource
from pygrub.errors import NotFoundError, UnsupportedError
from pygrub.fs import probe
from pygrub.fs.base import NodeType
from pygrub.fs.ext4 import EXT4_CASEFOLD_FL, EXT4_ENCRYPT_FL, Ext4Filesystem

FIXTURES = Path(__file__).parent / "fixtures" / "ext4-crypt"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
IMAGE = "ext4-crypt.img.xz"
FACTS = MANIFEST["images"][IMAGE]
BOOT_TREE = MANIFEST["tree"]
MARKER_TOKEN = "ext4-crypt"


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    return unpacked_fixture(FIXTURES / IMAGE, FACTS["sha256"], tmp_path_factory.mktemp("crypt"))


@pytest.fixture
def fs(image) -> Ext4Filesystem:
    found = probe(FileSource(str(image)))
    assert isinstance(found, Ext4Filesystem)
    return found


def guest_said(prefix: str) -> list[str]:
    """What the guest printed after ``prefix`` (FIXTURE-LOOKUP, FIXTURE-LOCKED...)."""
    return [line.removeprefix(prefix + " ") for line in FACTS["guest"] if line.startswith(prefix)]


def debugfs_names(directory: str) -> list[str]:
    """The names debugfs listed in a directory that is not encrypted (they are in hex)."""
    return sorted(bytes.fromhex(str(e["name"])).decode() for e in FACTS["debugfs"][directory])


def test_the_kernel_made_the_directories_it_was_asked_for(fs):
    # The fixture holds what its name says, so a rebuilt one cannot quietly lose it.
    attributes = {line.split()[-1]: line.split()[0] for line in guest_said("FIXTURE-LSATTR")}
    assert "F" in attributes["/mnt/boot"] and "F" in attributes["/mnt/Folded"]
    assert "E" in attributes["/mnt/locked"] and "E" in attributes["/mnt/locked-v1"]
    for path, flag in (("/boot", EXT4_CASEFOLD_FL), ("/Folded", EXT4_CASEFOLD_FL),
                       ("/locked", EXT4_ENCRYPT_FL), ("/locked-v1", EXT4_ENCRYPT_FL)):  # fmt: skip
        assert fs.inode(fs.resolve(path)).flags & flag, path


def test_boot_reads_as_the_kernel_wrote_it(fs):
    # The boot tree under /boot; the root's other names are what the rest made.
    tree = {"/": {"type": "directory"}}
    tree.update({"/boot" + path.rstrip("/"): entry for path, entry in BOOT_TREE.items()})
    others = tuple(name for name in debugfs_names("/") if name != "boot")
    assert_manifest_matches(fs, tree, extra_in_root=others)


def test_listings_match_debugfs(fs):
    # Every directory debugfs lists that is not encrypted: the same names, in any order.
    for directory in ("/", "/boot", "/Folded", "/Folded/Sub.Dir"):
        assert sorted(fs.listdir(directory)) == debugfs_names(directory), directory


def test_casefolded_lookups_find_what_the_kernel_finds(fs):
    # The guest asked its kernel for each name: found or not. Ours must agree, name by name.
    lookups = [line.split() for line in guest_said("FIXTURE-LOOKUP")]
    assert len(lookups) > 15
    found_by_kernel = {bytes.fromhex(h).decode(): answer == "found" for h, answer in lookups}
    assert sum(found_by_kernel.values()) > 10 and not all(found_by_kernel.values())
    for name, found in found_by_kernel.items():
        try:
            fs.stat(name)
            ours = True
        except NotFoundError:
            ours = False
        assert ours == found, name


def test_a_casefolded_name_reads_the_same_file(fs):
    release = next(p for p in BOOT_TREE if p.startswith("/vmlinuz-")).removeprefix("/vmlinuz-")
    kernel = BOOT_TREE[f"/vmlinuz-{release}"]
    data = fs.read_file(f"/boot/VMLINUZ-{release}", kernel["size"] + 1)
    assert hashlib.sha256(data).hexdigest() == kernel["sha256"]
    assert fs.resolve(f"/boot/VMLINUZ-{release}") == fs.resolve(f"/boot/vmlinuz-{release}")


@pytest.mark.parametrize("directory", ["/locked", "/locked-v1"])
def test_an_encrypted_directory_is_refused_by_name(fs, directory):
    # Its names are ciphertext (debugfs lists them; the kernel without the key shows
    # encoded ones): a path through it is refused, as GRUB refuses it, never misread.
    assert fs.stat(directory).type is NodeType.DIR
    assert len(FACTS["debugfs"][directory]) >= 1
    with pytest.raises(UnsupportedError, match="encrypted"):
        fs.listdir(directory)
    with pytest.raises(UnsupportedError, match="encrypted"):
        fs.stat(directory + "/secret.txt")


def test_the_locked_directory_holds_what_the_kernel_listed(fs):
    # With the key the kernel listed the plain names; locked, as many encoded ones.
    unlocked = [n for n in guest_said("FIXTURE-UNLOCKED") if n not in (".", "..")]
    locked = [n for n in guest_said("FIXTURE-LOCKED") if n not in (".", "..")]
    assert sorted(unlocked) == sorted(["secret.txt", "grub", "link", "n" * 200])
    assert len(locked) == len(unlocked) == len(FACTS["debugfs"]["/locked"])
    assert not set(locked) & set(unlocked)


def test_boots_the_debian_kernel_from_the_casefolded_boot(image, tmp_path):
    result, found = run_pygrub_for_qemu(image, tmp_path / "out")
    assert found["entry"]["title"] == "Debian GNU/Linux"
    assert result.args is not None and f"pygrub.test={MARKER_TOKEN}" in result.args
    release = next(p for p in BOOT_TREE if p.startswith("/vmlinuz-")).removeprefix("/vmlinuz-")
    kernel = hashlib.sha256(result.kernel.read_bytes()).hexdigest()
    assert kernel == BOOT_TREE[f"/vmlinuz-{release}"]["sha256"]
    assert result.ramdisk is not None
    console = qemu_boot(result.kernel, result.ramdisk, result.args, timeout=600)
    assert f"{MARKER} {MARKER_TOKEN}" in console, console[-3000:]
    assert os.path.getsize(result.kernel) == BOOT_TREE[f"/vmlinuz-{release}"]["size"]
