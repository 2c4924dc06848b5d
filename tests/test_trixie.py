"""Filesystems as Debian 13's own mkfs tools make them, defaults and newest features.

scripts/make-trixie-fixtures.sh made the committed images in a trixie chroot (e2fsprogs
1.47, xfsprogs 6.13, btrfs-progs 6.14; versions in tests/fixtures/trixie/VERSIONS), each
checked by its own tool's checker first: the default ext4 (orphan_file,
metadata_csum_seed, 1 KiB blocks at /boot's size), one with 4 KiB blocks, large_dir,
encrypt, casefold and verity too; XFS with the defaults (reflink, bigtime, inobtcount,
nrext64) and with metadir, parent pointers and exchange-range; Btrfs with the defaults
(free-space-tree, no-holes) and zstd-compressed with block-group-tree and simple quotas.
Each must read back exactly the tree the manifest records.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
from fswalk import assert_manifest_matches, unpacked_fixture

from pygrub.disk import FileSource, MemorySource
from pygrub.errors import UnsupportedError
from pygrub.fs import probe

FIXTURES = Path(__file__).parent / "fixtures" / "trixie"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
IMAGES = sorted(MANIFEST["images"])

#: What each image's tools add to the root that the source tree does not hold.
MADE_BY_MKFS = {"ext4": ("lost+found",), "xfs": (), "btrfs": ()}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("trixie")
    out = {}
    for name in IMAGES:
        out[name] = unpacked_fixture(FIXTURES / name, MANIFEST["images"][name], tmp)
    return out


@pytest.mark.parametrize("name", IMAGES)
def test_image_reads_as_mkfs_wrote_it(images, name):
    kind = name.split("-")[0]
    fs = probe(FileSource(str(images[name])))
    assert fs is not None and fs.kind.startswith(kind), name
    assert_manifest_matches(fs, MANIFEST["tree"], extra_in_root=MADE_BY_MKFS[kind])
    kernel = MANIFEST["tree"]["/boot/vmlinuz-6.1"]
    data = fs.read_file("/links/long200", kernel["size"] + 1)
    assert hashlib.sha256(data).hexdigest() == kernel["sha256"]
    fs.source.close()


def test_the_newest_features_are_on(images):
    # The fixtures hold what their names say, so a rebuilt set cannot quietly lose them.
    ext4 = images["ext4-newest.img.xz"].read_bytes()
    (compat, incompat, ro_compat) = struct.unpack_from("<3I", ext4, 1024 + 0x5C)
    assert compat & 0x1000  # orphan_file
    assert incompat & 0x2000 and incompat & 0x4000  # csum_seed, large_dir
    assert incompat & 0x10000 and incompat & 0x20000  # encrypt, casefold
    assert ro_compat & 0x8000  # verity
    xfs = images["xfs-newest.img.xz"].read_bytes()
    (xfs_incompat,) = struct.unpack_from(">I", xfs, 216)
    assert (
        xfs_incompat & 0x100 and xfs_incompat & 0x80 and xfs_incompat & 0x40 and xfs_incompat & 0x20
    )
    btrfs = images["btrfs-zstd.img.xz"].read_bytes()
    (btrfs_incompat,) = struct.unpack_from("<Q", btrfs, 0x10000 + 0xBC)
    assert btrfs_incompat & 0x10  # compress_zstd
    (btrfs_ro,) = struct.unpack_from("<Q", btrfs, 0x10000 + 0xB4)
    assert btrfs_ro & 0x8  # block_group_tree


def test_xfs_zoned_is_refused_by_name(images):
    # The one incompatible feature xfsprogs 6.13 knows and we do not read.
    image = bytearray(images["xfs-default.img.xz"].read_bytes()[: 1 << 20])
    (incompat,) = struct.unpack_from(">I", image, 216)
    struct.pack_into(">I", image, 216, incompat | 0x200)
    with pytest.raises(UnsupportedError, match="zoned"):
        probe(MemorySource(bytes(image)))
