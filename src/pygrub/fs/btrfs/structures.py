"""Btrfs on-disk structures, named as in the kernel's include/uapi/linux/btrfs_tree.h.

Every structure is packed little-endian; a Record reads one by its spec field names.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from typing import Any, NamedTuple


class Record:
    """A packed little-endian C struct: ``fields`` names the members in order of ``fmt``."""

    def __init__(self, name: str, fmt: str, fields: str) -> None:
        self.struct = struct.Struct("<" + fmt)
        self.record = namedtuple(name, fields)  # type: ignore[misc]
        self.size = self.struct.size

    def read(self, buf: bytes, offset: int = 0) -> Any:
        return self.record._make(self.struct.unpack_from(buf, offset))


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
SUPERBLOCK = Record(
    "Superblock",
    "32s16sQQ8sQQQQQQQQQIIIIIQQQQHBBB98s256sQQ16s",
    "csum fsid bytenr flags magic generation root chunk_root log_root log_root_transid "
    "total_bytes bytes_used root_dir_objectid num_devices sectorsize nodesize leafsize "
    "stripesize sys_chunk_array_size chunk_root_generation compat_flags compat_ro_flags "
    "incompat_flags csum_type root_level chunk_root_level log_root_level dev_item label "
    "cache_generation uuid_tree_generation metadata_uuid",
)
# struct btrfs_dev_item: devid total_bytes bytes_used io_align io_width sector_size type
# generation start_offset dev_group seek_speed bandwidth uuid[16] fsid[16]
DEV_ITEM = Record(
    "DevItem",
    "QQQIIIQQQIBB16s16s",
    "devid total_bytes bytes_used io_align io_width sector_size type generation "
    "start_offset dev_group seek_speed bandwidth uuid fsid",
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

# struct btrfs_header: csum[32] fsid[16] bytenr flags chunk_tree_uuid[16] generation owner
# nritems level
HEADER = Record(
    "Header",
    "32s16sQQ16sQQIB",
    "csum fsid bytenr flags chunk_tree_uuid generation owner nritems level",
)
# struct btrfs_item: key, offset (from the end of the header), size
ITEM = struct.Struct("<QBQII")
# struct btrfs_key_ptr: key, blockptr, generation
KEY_PTR = struct.Struct("<QBQQQ")
DISK_KEY = struct.Struct("<QBQ")

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

# struct btrfs_chunk (without its stripes): length owner stripe_len type io_align io_width
# sector_size num_stripes sub_stripes
CHUNK = Record(
    "Chunk",
    "QQQQIIIHH",
    "length owner stripe_len type io_align io_width sector_size num_stripes sub_stripes",
)
# struct btrfs_stripe: devid offset dev_uuid[16]
STRIPE = Record("Stripe", "QQ16s", "devid offset dev_uuid")

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

# struct btrfs_inode_item (the fields we use; 160 bytes in all): generation transid size
# nbytes block_group nlink uid gid mode rdev flags
INODE_ITEM = Record(
    "InodeItem",
    "QQQQQIIIIQQ",
    "generation transid size nbytes block_group nlink uid gid mode rdev flags",
)
INODE_ITEM_SIZE = 160

# struct btrfs_root_item: the embedded inode item, then generation root_dirid bytenr
# byte_limit bytes_used last_snapshot flags refs drop_progress drop_level level (the
# 239 bytes every version has)
ROOT_ITEM = Record(
    "RootItem",
    f"{INODE_ITEM_SIZE}xQQQQQQQI17sBB",
    "generation root_dirid bytenr byte_limit bytes_used last_snapshot flags refs "
    "drop_progress drop_level level",
)

# struct btrfs_root_ref (ROOT_REF and ROOT_BACKREF): dirid sequence name_len, then the name
ROOT_REF = Record("RootRef", "QQH", "dirid sequence name_len")

# struct btrfs_dir_item: location (a disk key), transid, data_len, name_len, type; then
# the name and data_len bytes of data
DIR_ITEM = Record(
    "DirItem",
    "QBQQHHB",
    "location_objectid location_type location_offset transid data_len name_len type",
)

# struct btrfs_file_extent_item: generation ram_bytes compression encryption
# other_encoding type; inline data follows here, or for regular and prealloc extents
# disk_bytenr disk_num_bytes offset num_bytes
FILE_EXTENT_HEAD = Record(
    "FileExtentHead", "QQBBHB", "generation ram_bytes compression encryption other_encoding type"
)
FILE_EXTENT_BODY = Record("FileExtentBody", "QQQQ", "disk_bytenr disk_num_bytes offset num_bytes")

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

S_IFMT = 0o170000
S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFLNK = 0o120000
