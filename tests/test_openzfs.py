"""The ZFS reader on pools made by OpenZFS 2.3 and 2.1 themselves
(scripts/make-openzfs-fixtures.sh 2.3, and 2.1).

OpenZFS, in a QEMU guest running Debian's kernel with the zfs-dkms modules, made the
pools on partitions of the committed disks (2.3) or on a whole disk it partitioned
itself (2.1), wrote the trees and read every file back after an export and import; the
script checked those sums against the trees and every block with OpenZFS's zdb (-bcc)
before writing the manifests these tests compare with: manifest.json for the data pools,
boot-manifest.json for the boot dataset's /boot.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from fswalk import assert_manifest_matches, unpacked_fixture
from hostile import FlippedSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realboot import MARKER, qemu_boot, run_pygrub_for_qemu

from pygrub.boot import open_guest
from pygrub.disk import FileSource, MemorySource
from pygrub.disk.source import SliceSource
from pygrub.errors import CorruptError, PygrubError, UnsupportedError
from pygrub.fs.zfs import ZfsFilesystem, open_filesystem
from pygrub.fs.zfs.blkptr import CHECKSUM_NAMES, VDEV_LABEL_START_SIZE

FIXTURES = Path(__file__).parent / "fixtures" / "openzfs"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
BOOT_TREE = json.loads((FIXTURES / "boot-manifest.json").read_text())["tree"]
IMAGES = sorted(MANIFEST["images"])
BOOT_DATASET = "bpool/BOOT/ubuntu_ab12cd"
#: What the boot pool's initramfs prints after MARKER (scripts/openzfs_fixture_tree.py).
MARKER_TOKEN = "openzfs-bpool"
MiB = 1 << 20


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("openzfs")
    out = {}
    for name in IMAGES:
        out[name] = unpacked_fixture(FIXTURES / name, MANIFEST["images"][name]["sha256"], tmp)
    return out


def pool_of(image: Path) -> ZfsFilesystem:
    """The ZFS filesystem pygrub finds on the disk (in its GPT's second partition)."""
    guest = open_guest(FileSource(str(image)))
    found = [guest.filesystem(volume) for volume in guest.volumes]
    pools = [fs for fs in found if isinstance(fs, ZfsFilesystem)]
    assert len(pools) == 1, found
    return pools[0]


def data_datasets() -> list[tuple[str, str]]:
    return [
        (name, dataset)
        for name in IMAGES
        for dataset in MANIFEST["images"][name]["datasets"]
        if dataset != BOOT_DATASET
    ]


@pytest.mark.parametrize(("name", "dataset"), data_datasets())
def test_data_datasets_read_as_openzfs_wrote_them(images, name, dataset):
    fs = pool_of(images[name]).with_dataset(dataset)
    assert fs.pool.version == 5000
    # Mounting a child dataset makes its mountpoint directory in the parent.
    children = tuple(child.rsplit("/", 1)[1] for child in fs.child_datasets())
    assert_manifest_matches(fs, MANIFEST["tree"], extra_in_root=children)


def test_boot_pool_opens_at_ubuntus_boot_dataset(images):
    fs = pool_of(images["openzfs-bpool.img.xz"])
    assert fs.dataset == BOOT_DATASET
    assert fs.case_insensitive is False
    assert_manifest_matches(fs, BOOT_TREE)


def test_pools_use_the_features_they_were_made_for(images):
    features = {name: MANIFEST["images"][name]["features"] for name in IMAGES}
    tank = features["openzfs-tank.img.xz"]
    for feature in (
        "large_blocks", "large_dnode", "zstd_compress", "embedded_data", "sha512", "skein",
        "blake3", "encryption", "bookmarks", "lz4_compress",
    ):  # fmt: skip
        assert tank[feature] == "active", feature
    assert "disabled" not in tank.values()
    bpool = features["openzfs-bpool.img.xz"]
    enabled = {name for name, state in bpool.items() if state != "disabled"}
    assert enabled == {
        "async_destroy", "bookmarks", "embedded_data", "empty_bpobj", "enabled_txg",
        "extensible_dataset", "filesystem_limits", "hole_birth", "large_blocks",
        "lz4_compress", "spacemap_histogram",
    }  # fmt: skip


def test_encrypted_dataset_is_refused_by_name(images):
    fs = pool_of(images["openzfs-tank.img.xz"])
    with pytest.raises(UnsupportedError, match="tank/secret.*encrypted"):
        fs.with_dataset("tank/secret").listdir("/")


def test_ubuntu_boot_pool_boots_the_debian_kernel(images, tmp_path):
    # What a QEMU user runs (tests/realboot.py): pygrub reads grub.cfg from the boot
    # dataset, follows /BOOT/ubuntu_ab12cd@/... and the kernel it copies prints the marker.
    result, found = run_pygrub_for_qemu(images["openzfs-bpool.img.xz"], tmp_path / "out")
    release = BOOT_TREE["/vmlinuz"]["target"].removeprefix("vmlinuz-")
    assert found["entry"]["title"] == "Ubuntu 22.04.4 LTS"
    assert result.args is not None and f"pygrub.test={MARKER_TOKEN}" in result.args
    assert "root=ZFS=rpool/ROOT/ubuntu_ab12cd ro" in result.args
    kernel = hashlib.sha256(result.kernel.read_bytes()).hexdigest()
    assert kernel == BOOT_TREE[f"/vmlinuz-{release}"]["sha256"]
    assert result.ramdisk is not None
    console = qemu_boot(result.kernel, result.ramdisk, result.args, timeout=600)
    assert f"{MARKER} {MARKER_TOKEN}" in console, console[-3000:]


def test_an_active_read_feature_the_reader_lacks_is_refused_by_name(images, monkeypatch):
    # tank's blake3 dataset makes org.openzfs:blake3 active in features_for_read.
    from pygrub.fs.zfs import dsl

    monkeypatch.setattr(dsl, "SUPPORTED_FEATURES", dsl.SUPPORTED_FEATURES - {"org.openzfs:blake3"})
    guest = open_guest(FileSource(str(images["openzfs-tank.img.xz"])))
    errors = []
    for volume in guest.volumes:
        if guest.filesystem(volume) is None:
            errors.append(guest.probe_error(volume))
    assert any("needs features this reader lacks: org.openzfs:blake3" in e for e in errors), errors


#: Where the disks' pool partition starts (GPT entry 2, after the 1 MiB BIOS boot one).
POOL_PARTITION = 2 * MiB


@pytest.mark.parametrize(
    ("dataset", "checksum"), [("tank/sha512", "sha512"), ("tank", "fletcher4")]
)
def test_a_flipped_byte_fails_the_blocks_checksum(images, dataset, checksum):
    # The sha512 dataset's blocks are verified too (SHA-512/256), not only fletcher4's.
    image = images["openzfs-tank.img.xz"]
    fs = pool_of(image).with_dataset(dataset)
    extent = next(fs.node_extents(fs.resolve("/big")))  # 1 MiB of zstd, not embedded
    _blkid, bp = extent.token
    assert CHECKSUM_NAMES[bp.checksum] == checksum and len(bp.dvas) == 1
    data = bytearray(image.read_bytes())
    data[POOL_PARTITION + VDEV_LABEL_START_SIZE + bp.dvas[0].offset + 20] ^= 0x40
    damaged = open_filesystem(
        SliceSource(MemorySource(data), POOL_PARTITION, len(data) - POOL_PARTITION)
    )
    assert damaged is not None
    with pytest.raises(CorruptError, match=f"{checksum} checksum does not match"):
        damaged.with_dataset(dataset).read_file("/big", 1 << 20)


def test_embedded_data_holes_and_one_mib_records(images):
    fs = pool_of(images["openzfs-tank.img.xz"])
    # 4 KiB of patterned text compresses under zstd to fit in the block pointer itself.
    (small,) = fs.node_extents(fs.resolve("/exact"))
    assert small.token[1].embedded
    big = list(fs.node_extents(fs.resolve("/big")))
    assert len(big) == 10 and all(extent.length == MiB for extent in big)
    assert "hole" in [where for _offset, _length, where in fs.extents("/sparse")]


#: What a reader walks on the tank disk: label 0's config and uberblock ring, and the
#: first MiBs of allocated blocks (MOS, dnodes, ZAPs, SA registries, zstd data).
METADATA_REGIONS = tuple(
    (POOL_PARTITION + start, length)
    for start, length in ((16 << 10, 2048), (128 << 10, 128 << 10), (4 * MiB, 4 * MiB))
)


@given(st.data())
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_bits_flipped_in_real_metadata_give_data_or_our_errors(images, data):
    flips = {}
    for _ in range(data.draw(st.integers(1, 4))):
        start, length = data.draw(st.sampled_from(METADATA_REGIONS))
        flips[start + data.draw(st.integers(0, length - 1))] = 1 << data.draw(st.integers(0, 7))
    image = images["openzfs-tank.img.xz"]
    size = image.stat().st_size - POOL_PARTITION
    started = time.monotonic()
    try:
        fs = open_filesystem(SliceSource(FlippedSource(image, flips), POOL_PARTITION, size))
        if fs is not None:
            for dataset in ("tank", "tank/sha512"):
                view = fs.with_dataset(dataset)
                for name in view.listdir("/"):
                    view.lstat("/" + name)
                view.read_file("/boot/grub/grub.cfg", 1 << 16)
    except PygrubError:
        pass
    assert time.monotonic() - started < 10


def test_snapshot_reads_as_its_dataset_did(images):
    # tank@fixture was taken once the tree was in (scripts/openzfs-fixture-init.sh).
    fs = pool_of(images["openzfs-tank.img.xz"])
    snapshot, inner = fs.grub_path("/@fixture/big")
    assert inner == "/big"
    assert snapshot.dataset_object == fs.pool.find_dataset("tank@fixture") != fs.dataset_object
    children = ("sha512", "skein", "blake3", "secret")
    assert_manifest_matches(snapshot, MANIFEST["tree"], extra_in_root=children)


# -- OpenZFS 2.1 (bookworm's contrib), on a whole disk zpool partitioned itself ------------

FIXTURES_21 = Path(__file__).parent / "fixtures" / "openzfs-2.1"
MANIFEST_21 = json.loads((FIXTURES_21 / "manifest.json").read_text())
BOOT_TREE_21 = json.loads((FIXTURES_21 / "boot-manifest.json").read_text())["tree"]
WHOLE = "openzfs21-whole.img.xz"
#: Debian's root on ZFS, the pool's bootfs: the boot tree is its /boot.
ROOT_21 = "tank21/ROOT/debian"
#: The GPT partition types zpool gives a whole disk: the pool's, and the 8 MiB reserve.
ZFS_TYPE = "6a898cc3-1dd2-11b2-99a6-080020736631"
RESERVED_TYPE = "6a945a3b-1dd2-11b2-99a6-080020736631"
#: The features OpenZFS 2.2 and 2.3 added, which the 2.3 pools have and 2.1 cannot.
SINCE_2_2 = {
    "blake3", "block_cloning", "head_errlog", "vdev_zaps_v2", "zilsaxattr",
    "redaction_list_spill", "raidz_expansion", "fast_dedup", "longname", "large_microzap",
}  # fmt: skip


@pytest.fixture(scope="module")
def whole_disk(tmp_path_factory) -> Path:
    sha256 = MANIFEST_21["images"][WHOLE]["sha256"]
    return unpacked_fixture(FIXTURES_21 / WHOLE, sha256, tmp_path_factory.mktemp("openzfs21"))


def boot_dataset_tree() -> dict[str, dict[str, object]]:
    """The root dataset's manifest: /boot holds the boot tree (the pool's root dataset
    mounts at /tank21, an empty directory here)."""
    tree: dict[str, dict[str, object]] = {"/": {"type": "directory"}}
    tree.update({"/boot" + path.rstrip("/"): entry for path, entry in BOOT_TREE_21.items()})
    return tree


def test_openzfs21_made_the_gpt_of_the_whole_disk(whole_disk):
    # zpool create on /dev/vda: partition 1 for the pool, 9 the 8 MiB reserve; pygrub
    # finds the pool in partition 1 and nowhere else.
    guest = open_guest(FileSource(str(whole_disk)))
    by_number = {volume.number: volume for volume in guest.volumes}
    assert {1, 9} <= set(by_number)
    pool, reserved = by_number[1], by_number[9]
    assert pool.type_guid == ZFS_TYPE and pool.label is not None
    assert pool.label.startswith("zfs-"), pool.label
    assert reserved.type_guid == RESERVED_TYPE and reserved.source.size == 8 * MiB
    assert pool.offset == MiB  # zpool starts the pool at sector 2048
    found = [(v.number, guest.filesystem(v)) for v in guest.volumes]
    assert [n for n, fs in found if isinstance(fs, ZfsFilesystem)] == [1], found


def test_openzfs21_data_dataset_reads_as_openzfs_wrote_it(whole_disk):
    fs = pool_of(whole_disk).with_dataset("tank21")
    assert fs.pool.version == 5000 and fs.pool.name == "tank21"
    assert_manifest_matches(fs, MANIFEST_21["tree"])


def test_openzfs21_bootfs_is_debians_root_with_its_boot(whole_disk):
    fs = pool_of(whole_disk)
    assert fs.dataset == ROOT_21  # the pool's bootfs property, not its root dataset
    assert_manifest_matches(fs, boot_dataset_tree(), extra_in_root=("tank21",))


def test_openzfs21_pool_has_every_feature_of_its_release(whole_disk):
    features = MANIFEST_21["images"][WHOLE]["features"]
    assert MANIFEST_21["images"][WHOLE]["openzfs"].startswith("2.1.")
    assert "disabled" not in features.values()  # zpool create enables all it knows
    for feature in ("large_blocks", "large_dnode", "zstd_compress", "embedded_data", "bookmarks"):
        assert features[feature] == "active", feature
    newer = set(MANIFEST["images"]["openzfs-tank.img.xz"]["features"])
    assert newer - set(features) == SINCE_2_2
    assert set(features) <= newer


def test_openzfs21_embedded_data_holes_and_one_mib_records(whole_disk):
    fs = pool_of(whole_disk).with_dataset("tank21")
    (small,) = fs.node_extents(fs.resolve("/exact"))
    assert small.token[1].embedded
    big = list(fs.node_extents(fs.resolve("/big")))
    assert len(big) == 10 and all(extent.length == MiB for extent in big)
    assert "hole" in [where for _offset, _length, where in fs.extents("/sparse")]


def test_openzfs21_whole_disk_boots_the_debian_kernel(whole_disk, tmp_path):
    # grub.cfg in the bootfs names /ROOT/debian@/boot/vmlinuz-...; the kernel pygrub
    # copies from the zstd dataset is the one QEMU boots.
    result, found = run_pygrub_for_qemu(whole_disk, tmp_path / "out")
    release = next(p for p in BOOT_TREE_21 if p.startswith("/vmlinuz-")).removeprefix("/vmlinuz-")
    assert found["entry"]["title"] == "Debian GNU/Linux"
    assert result.args is not None and "pygrub.test=openzfs21-whole" in result.args
    assert "root=ZFS=tank21/ROOT/debian ro" in result.args
    kernel = hashlib.sha256(result.kernel.read_bytes()).hexdigest()
    assert kernel == BOOT_TREE_21[f"/vmlinuz-{release}"]["sha256"]
    assert result.ramdisk is not None
    console = qemu_boot(result.kernel, result.ramdisk, result.args, timeout=600)
    assert f"{MARKER} openzfs21-whole" in console, console[-3000:]
