"""Btrfs on-disk structures, named as in the kernel's include/uapi/linux/btrfs_tree.h.

Every structure is packed little-endian and read as a Layout, by its spec field names
at the byte offsets the "On-disk Format" document gives.
"""

from __future__ import annotations

from ..._typing import NamedTuple
from ..layout import Layout


class Key(NamedTuple):
    """struct btrfs_disk_key. Tuples order the way btrfs orders keys."""

    objectid: int
    type: int
    offset: int


U64_MAX = (1 << 64) - 1
KEY_MIN = Key(0, 0, 0)

# -- the superblock --------------------------------------------------------------------

SUPERBLOCK_SIZE = 4096
#: Primary copy, then the mirrors (used only when the primary is bad).
SUPERBLOCK_OFFSETS = (0x10000, 0x4000000, 0x4000000000)
MAGIC = b"_BHRfS_M"
#: The checksum covers the superblock (and each tree block) from here to its end.
CSUM_START = 0x20
CSUM_FIELD_SIZE = 32
SYS_CHUNK_ARRAY_OFFSET = 0x32B
SYS_CHUNK_ARRAY_MAX = 2048
DEV_ITEM_OFFSET = 0xC9
MAX_LEVEL = 8  # BTRFS_MAX_LEVEL: levels are 0..7

# struct btrfs_super_block, up to metadata_uuid (sys_chunk_array is read separately)
SUPERBLOCK = Layout(
    "Superblock",
    "<",
    (
        ("csum", 0x0, "32s"),
        ("fsid", 0x20, "16s"),
        ("bytenr", 0x30, "Q"),
        ("flags", 0x38, "Q"),
        ("magic", 0x40, "8s"),
        ("generation", 0x48, "Q"),
        ("root", 0x50, "Q"),
        ("chunk_root", 0x58, "Q"),
        ("log_root", 0x60, "Q"),
        ("log_root_transid", 0x68, "Q"),
        ("total_bytes", 0x70, "Q"),
        ("bytes_used", 0x78, "Q"),
        ("root_dir_objectid", 0x80, "Q"),
        ("num_devices", 0x88, "Q"),
        ("sectorsize", 0x90, "I"),
        ("nodesize", 0x94, "I"),
        ("leafsize", 0x98, "I"),
        ("stripesize", 0x9C, "I"),
        ("sys_chunk_array_size", 0xA0, "I"),
        ("chunk_root_generation", 0xA4, "Q"),
        ("compat_flags", 0xAC, "Q"),
        ("compat_ro_flags", 0xB4, "Q"),
        ("incompat_flags", 0xBC, "Q"),
        ("csum_type", 0xC4, "H"),
        ("root_level", 0xC6, "B"),
        ("chunk_root_level", 0xC7, "B"),
        ("log_root_level", 0xC8, "B"),
        ("dev_item", 0xC9, "98s"),
        ("label", 0x12B, "256s"),
        ("cache_generation", 0x22B, "Q"),
        ("uuid_tree_generation", 0x233, "Q"),
        ("metadata_uuid", 0x23B, "16s"),
    ),
)
# struct btrfs_dev_item
DEV_ITEM = Layout(
    "DevItem",
    "<",
    (
        ("devid", 0x0, "Q"),
        ("total_bytes", 0x8, "Q"),
        ("bytes_used", 0x10, "Q"),
        ("io_align", 0x18, "I"),
        ("io_width", 0x1C, "I"),
        ("sector_size", 0x20, "I"),
        ("type", 0x24, "Q"),
        ("generation", 0x2C, "Q"),
        ("start_offset", 0x34, "Q"),
        ("dev_group", 0x3C, "I"),
        ("seek_speed", 0x40, "B"),
        ("bandwidth", 0x41, "B"),
        ("uuid", 0x42, "16s"),
        ("fsid", 0x52, "16s"),
    ),
)

#: csum_type -> (name, bytes of the checksum)
CSUM_TYPES = {0: ("crc32c", 4), 1: ("xxhash64", 8), 2: ("sha256", 32), 3: ("blake2b", 32)}

#: INCOMPAT features that change nothing a reader of these trees looks at.
KNOWN_INCOMPAT = {
    0x1: "mixed_backref",
    0x2: "default_subvol",
    0x4: "mixed_groups",
    0x8: "compress_lzo",
    0x10: "compress_zstd",
    0x20: "big_metadata",
    0x40: "extended_iref",
    0x80: "raid56",  # the chunks themselves are refused by name when met
    0x100: "skinny_metadata",
    0x200: "no_holes",
    0x400: "metadata_uuid",
    0x800: "raid1c34",
    0x1000: "zoned",
    0x10000: "simple_quota",
}
#: Names of the ones we refuse, for the message.
REFUSED_INCOMPAT = {0x2000: "extent_tree_v2", 0x4000: "raid_stripe_tree"}
INCOMPAT_METADATA_UUID = 0x400

# -- tree blocks -----------------------------------------------------------------------

# struct btrfs_header
HEADER = Layout(
    "Header",
    "<",
    (
        ("csum", 0x0, "32s"),
        ("fsid", 0x20, "16s"),
        ("bytenr", 0x30, "Q"),
        ("flags", 0x38, "Q"),
        ("chunk_tree_uuid", 0x40, "16s"),
        ("generation", 0x50, "Q"),
        ("owner", 0x58, "Q"),
        ("nritems", 0x60, "I"),
        ("level", 0x64, "B"),
    ),
)
# struct btrfs_disk_key: objectid, type, offset
_KEY_ROWS = (("objectid", 0, "Q"), ("type", 8, "B"), ("offset", 9, "Q"))
DISK_KEY = Layout("DiskKey", "<", _KEY_ROWS)
# struct btrfs_item: key, offset (of its data, from the end of the header), size
ITEM = Layout("Item", "<", (*_KEY_ROWS, ("data_offset", 17, "I"), ("size", 21, "I")))
# struct btrfs_key_ptr: key, blockptr, generation
KEY_PTR = Layout("KeyPtr", "<", (*_KEY_ROWS, ("blockptr", 17, "Q"), ("generation", 25, "Q")))

# -- objectids and key types -----------------------------------------------------------

ROOT_TREE_OBJECTID = 1
CHUNK_TREE_OBJECTID = 3
FS_TREE_OBJECTID = 5
ROOT_TREE_DIR_OBJECTID = 6
FIRST_FREE_OBJECTID = 256
FIRST_CHUNK_TREE_OBJECTID = 256
LAST_FREE_OBJECTID = U64_MAX - 256
#: The inode number Linux gives the empty directory that stands for a subvolume whose
#: root reference is not there (a nested subvolume seen inside a snapshot).
EMPTY_SUBVOL_DIR_OBJECTID = 2

INODE_ITEM_KEY = 1
DIR_ITEM_KEY = 84
DIR_INDEX_KEY = 96
EXTENT_DATA_KEY = 108
ROOT_ITEM_KEY = 132
ROOT_BACKREF_KEY = 144
ROOT_REF_KEY = 156
CHUNK_ITEM_KEY = 228

# -- chunks ----------------------------------------------------------------------------

# struct btrfs_chunk (without its stripes)
CHUNK = Layout(
    "Chunk",
    "<",
    (
        ("length", 0x0, "Q"),
        ("owner", 0x8, "Q"),
        ("stripe_len", 0x10, "Q"),
        ("type", 0x18, "Q"),
        ("io_align", 0x20, "I"),
        ("io_width", 0x24, "I"),
        ("sector_size", 0x28, "I"),
        ("num_stripes", 0x2C, "H"),
        ("sub_stripes", 0x2E, "H"),
    ),
)
# struct btrfs_stripe
STRIPE = Layout(
    "Stripe",
    "<",
    (
        ("devid", 0x0, "Q"),
        ("offset", 0x8, "Q"),
        ("dev_uuid", 0x10, "16s"),
    ),
)

BLOCK_GROUP_DATA = 0x1
BLOCK_GROUP_SYSTEM = 0x2
BLOCK_GROUP_METADATA = 0x4
#: Profile bits of a chunk's type; none set means SINGLE.
PROFILES = {
    0x8: "raid0",
    0x10: "raid1",
    0x20: "dup",
    0x40: "raid10",
    0x80: "raid5",
    0x100: "raid6",
    0x200: "raid1c3",
    0x400: "raid1c4",
}
#: Profiles where every stripe is a whole copy of the chunk.
MIRRORED = {0x10: 2, 0x20: 2, 0x200: 3, 0x400: 4}

# -- items of the root tree and of filesystem trees ------------------------------------

# struct btrfs_inode_item, up to flags (160 bytes in all)
INODE_ITEM = Layout(
    "InodeItem",
    "<",
    (
        ("generation", 0x0, "Q"),
        ("transid", 0x8, "Q"),
        ("size", 0x10, "Q"),
        ("nbytes", 0x18, "Q"),
        ("block_group", 0x20, "Q"),
        ("nlink", 0x28, "I"),
        ("uid", 0x2C, "I"),
        ("gid", 0x30, "I"),
        ("mode", 0x34, "I"),
        ("rdev", 0x38, "Q"),
        ("flags", 0x40, "Q"),
    ),
)
INODE_ITEM_SIZE = 160

# struct btrfs_root_item: the embedded inode item, then the 239 bytes every version has
ROOT_ITEM = Layout(
    "RootItem",
    "<",
    (
        ("generation", 0xA0, "Q"),
        ("root_dirid", 0xA8, "Q"),
        ("bytenr", 0xB0, "Q"),
        ("byte_limit", 0xB8, "Q"),
        ("bytes_used", 0xC0, "Q"),
        ("last_snapshot", 0xC8, "Q"),
        ("flags", 0xD0, "Q"),
        ("refs", 0xD8, "I"),
        ("drop_progress", 0xDC, "17s"),
        ("drop_level", 0xED, "B"),
        ("level", 0xEE, "B"),
    ),
)

# struct btrfs_root_ref (ROOT_REF and ROOT_BACKREF); the name follows
ROOT_REF = Layout(
    "RootRef",
    "<",
    (
        ("dirid", 0x0, "Q"),
        ("sequence", 0x8, "Q"),
        ("name_len", 0x10, "H"),
    ),
)

# struct btrfs_dir_item: location (a disk key), transid, data_len, name_len, type; then
# the name and data_len bytes of data
DIR_ITEM = Layout(
    "DirItem",
    "<",
    (
        ("location_objectid", 0x0, "Q"),
        ("location_type", 0x8, "B"),
        ("location_offset", 0x9, "Q"),
        ("transid", 0x11, "Q"),
        ("data_len", 0x19, "H"),
        ("name_len", 0x1B, "H"),
        ("type", 0x1D, "B"),
    ),
)

# struct btrfs_file_extent_item: the head; inline data follows it, or for regular and
# prealloc extents the body
FILE_EXTENT_HEAD = Layout(
    "FileExtentHead",
    "<",
    (
        ("generation", 0x0, "Q"),
        ("ram_bytes", 0x8, "Q"),
        ("compression", 0x10, "B"),
        ("encryption", 0x11, "B"),
        ("other_encoding", 0x12, "H"),
        ("type", 0x14, "B"),
    ),
)
FILE_EXTENT_BODY = Layout(
    "FileExtentBody",
    "<",
    (
        ("disk_bytenr", 0x0, "Q"),
        ("disk_num_bytes", 0x8, "Q"),
        ("offset", 0x10, "Q"),
        ("num_bytes", 0x18, "Q"),
    ),
)

FILE_EXTENT_INLINE = 0
FILE_EXTENT_REG = 1
FILE_EXTENT_PREALLOC = 2

COMPRESS_NONE = 0
COMPRESS_ZLIB = 1
COMPRESS_LZO = 2
COMPRESS_ZSTD = 3
COMPRESSION_NAMES = {COMPRESS_ZLIB: "zlib", COMPRESS_LZO: "lzo", COMPRESS_ZSTD: "zstd"}
#: BTRFS_MAX_COMPRESSED / BTRFS_MAX_UNCOMPRESSED: no compressed extent is larger.
MAX_COMPRESSED = 128 * 1024
MAX_UNCOMPRESSED = 128 * 1024
