"""Path walking shared by every driver: '.', '..', symlinks, bounds; the file object."""

from __future__ import annotations

import os

import pytest
from hostfs import HostDirFilesystem
from hypothesis import given, settings
from hypothesis import strategies as st

from pygrub.disk import MemorySource
from pygrub.errors import CorruptError, LimitError, NotFoundError, PygrubError
from pygrub.fs import base
from pygrub.fs.base import Extent, ExtentKind, FileReader, NodeType
from pygrub.fs.blockmap import pointer_runs
from pygrub.fs.directory import ListingCache, bounded, entry_name


@pytest.fixture
def fs(tmp_path):
    root = tmp_path / "root"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1").write_bytes(b"kernel")
    (root / "boot" / "grub" / "grub.cfg").write_text("menuentry x {}\n")
    os.symlink("vmlinuz-6.1", root / "boot" / "vmlinuz")
    os.symlink("/boot", root / "abs")
    os.symlink("../../../../../../etc/hostname", root / "boot" / "escape")
    os.symlink("/../../etc", root / "boot" / "escape-abs")
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    os.symlink(".", root / "dot")
    (tmp_path / "outside").write_text("host secret")
    return HostDirFilesystem(root)


def test_plain_relative_and_absolute_symlinks(fs):
    assert fs.read_file("/boot/vmlinuz", 100) == b"kernel"
    assert fs.read_file("abs/vmlinuz", 100) == b"kernel"
    assert fs.read_file("//boot/./grub/../vmlinuz-6.1", 100) == b"kernel"
    assert fs.lstat("/boot/vmlinuz").type is NodeType.SYMLINK
    assert fs.stat("/boot/vmlinuz").type is NodeType.FILE
    assert fs.readlink_path("/boot/vmlinuz") == "vmlinuz-6.1"


def test_dotdot_never_leaves_the_filesystem(fs):
    assert fs.is_dir("/../../..")
    assert sorted(fs.listdir("/../..")) == sorted(fs.listdir("/"))
    with pytest.raises(NotFoundError):
        fs.read_file("/boot/escape", 100)  # resolves to /etc/hostname inside the guest
    assert fs.is_dir("/boot/escape-abs") is False
    assert not fs.exists("/../outside")


def test_symlink_loops_end_with_a_limit(fs):
    with pytest.raises(LimitError, match="symlinks"):
        fs.stat("/loop-a")
    # A self-referencing directory link is fine to walk through a bounded number of times.
    assert fs.is_file("/dot/dot/dot/boot/vmlinuz")
    with pytest.raises(LimitError):
        fs.stat("/" + "dot/" * 50 + "boot")


def test_not_a_directory_and_missing(fs):
    with pytest.raises(NotFoundError, match="not a directory"):
        fs.stat("/boot/vmlinuz-6.1/x")
    with pytest.raises(NotFoundError):
        fs.open("/boot/grub")
    assert fs.exists("/nope") is False and fs.is_file("/boot/grub") is False


class _Pieces(HostDirFilesystem):
    """Serves a file as given extents, to test the reader's stitching."""

    def __init__(self, root, extents, data):
        super().__init__(root)
        self._extents = extents
        self._data = data

    def node_extents(self, node):
        yield from self._extents

    def read_encoded(self, node, extent):
        return self._data[extent.offset : extent.offset + extent.length]


def test_reader_fills_gaps_with_holes_and_clips_to_size(tmp_path):
    data = bytes(range(256)) * 4
    extents = [
        Extent(0, 10, ExtentKind.ENCODED, 0),
        Extent(20, 10, ExtentKind.ENCODED, 20),
        Extent(40, 5000, ExtentKind.ENCODED, 40),
    ]
    fs = _Pieces(tmp_path, extents, data)
    reader = FileReader(fs, tmp_path, 100, "f")
    out = reader.read()
    assert out == data[:10] + bytes(10) + data[20:30] + bytes(10) + data[40:100]
    reader.seek(25)
    assert reader.read(20) == data[25:30] + bytes(10) + data[40:45]
    buf = bytearray(8)
    reader.seek(-8, 2)
    assert reader.readinto(buf) == 8 and bytes(buf) == data[92:100]
    assert reader.read() == b""


def test_reader_refuses_overlapping_extents(tmp_path):
    extents = [Extent(0, 10, ExtentKind.ENCODED, 0), Extent(5, 10, ExtentKind.ENCODED, 5)]
    fs = _Pieces(tmp_path, extents, bytes(100))
    with pytest.raises(CorruptError, match="overlaps"):
        FileReader(fs, tmp_path, 20, "f").read()


def test_reader_seeks_from_each_whence_and_back(tmp_path):
    data = bytes(range(256))
    extents = [Extent(0, 100, ExtentKind.ENCODED, 0), Extent(100, 156, ExtentKind.ENCODED, 100)]
    fs = _Pieces(tmp_path, extents, data)
    reader = FileReader(fs, tmp_path, 256, "f")
    assert (reader.seek(10), reader.tell()) == (10, 10)
    assert reader.seek(5, 1) == 15 and reader.read(3) == data[15:18]
    assert reader.seek(-6, 2) == 250 and reader.read() == data[250:]
    # Backwards, into an extent already passed: the walk starts again.
    assert reader.seek(3) == 3 and reader.read(2) == data[3:5]
    assert reader.seek(0, 2) == 256 and reader.read(10) == b""
    assert reader.seek(300) == 300 and reader.read() == b""  # past the end reads nothing
    with pytest.raises(ValueError, match="^negative seek position$"):
        reader.seek(-1)
    with pytest.raises(ValueError, match="^negative seek position$"):
        reader.seek(-257, 2)
    with pytest.raises(ValueError, match="^bad whence 3$"):
        reader.seek(0, 3)
    assert reader.tell() == 300  # a refused seek moves nothing


def test_reader_close_drops_what_it_keeps(tmp_path):
    fs = _Pieces(tmp_path, [Extent(0, 64, ExtentKind.ENCODED, 0)], bytes(range(64)))
    with FileReader(fs, tmp_path, 64, "f") as reader:
        assert reader.read(8) == bytes(range(8))
        assert reader._decoded is not None
    # A file object's close: the decoded extent (up to MAX_READ bytes) goes with it.
    assert (reader._extents, reader._current, reader._decoded) == (None, None, None)
    assert reader.read(4) == bytes(range(8, 12))  # and a read after it starts a new walk


def test_extents_name_holes_and_encoded_pieces(tmp_path):
    (tmp_path / "dir").mkdir()
    extents = [Extent(0, 10, ExtentKind.ENCODED, 0), Extent(30, 10, ExtentKind.ENCODED, 30)]
    fs = _Pieces(tmp_path, extents, bytes(64))
    (tmp_path / "f").write_bytes(bytes(50))
    assert list(fs.extents("/f")) == [
        (0, 10, "encoded"), (10, 20, "hole"), (30, 10, "encoded"), (40, 10, "hole"),
    ]  # fmt: skip
    with pytest.raises(NotFoundError, match=r"^hostdir: /dir is a directory, not a file$"):
        list(fs.extents("/dir"))


def test_listdir_exists_lstat_and_readlink_path(fs, monkeypatch):
    assert sorted(fs.listdir("/boot")) == ["escape", "escape-abs", "grub", "vmlinuz", "vmlinuz-6.1"]
    with pytest.raises(NotFoundError, match=r"^hostdir: /boot/vmlinuz is not a directory$"):
        fs.listdir("/boot/vmlinuz")
    monkeypatch.setattr(base, "MAX_DIR_ENTRIES", 4)
    with pytest.raises(LimitError, match=r"^hostdir: /boot has over 4 entries$"):
        fs.listdir("/boot")
    assert fs.exists("/boot/vmlinuz") and fs.exists("/abs") and fs.exists("/boot/grub")
    assert not fs.exists("/boot/escape")  # a link whose target is not in the guest
    assert fs.lstat("/abs").type is NodeType.SYMLINK and fs.stat("/abs").type is NodeType.DIR
    assert fs.lstat("/boot/escape").type is NodeType.SYMLINK
    with pytest.raises(NotFoundError):
        fs.stat("/boot/escape")
    assert fs.readlink_path("/abs") == "/boot"
    with pytest.raises(NotFoundError, match=r"^hostdir: /boot/grub is not a symlink$"):
        fs.readlink_path("/boot/grub")


@pytest.mark.parametrize(
    ("target", "problem"),
    [(b"", "empty symlink target"), (b"x" * 4097, "symlink target of 4097 bytes")],
)
def test_symlink_targets_empty_or_too_long_are_corrupt(fs, monkeypatch, target, problem):
    assert len(b"x" * base.MAX_SYMLINK_TARGET) == 4096  # the longest kept (PATH_MAX)
    monkeypatch.setattr(type(fs), "readlink", lambda self, node: target)
    for call in (fs.readlink_path, fs.stat):
        with pytest.raises(CorruptError, match=f"^hostdir: {problem}$"):
            call("/abs")
    monkeypatch.setattr(type(fs), "readlink", lambda self, node: b"x" * 4096)
    assert fs.readlink_path("/abs") == "x" * 4096


# -- fs/directory.py ListingCache: kept listings answer as a scan would ---------------------

directories = st.dictionaries(
    st.integers(0, 5),
    st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "A"]), st.integers()), max_size=12),
)


@given(directories, st.lists(st.tuples(st.integers(0, 5), st.sampled_from("abcdeA")), max_size=30))
@settings(max_examples=300, deadline=None)
def test_listing_cache_finds_what_a_scan_finds(dirs, lookups):
    """Whatever is kept or evicted (a budget of 10 items), each lookup answers the first
    entry with that name, as a scan of the directory would."""
    cache: ListingCache[int, tuple[str, int]] = ListingCache(budget=10)
    for key, want in lookups:
        entries = dirs.get(key, [])
        expected = next((e for e in entries if e[0] == want), None)
        assert cache.find(key, lambda e=entries: iter(e), want, entry_name) == expected
        assert sum(len(v) for v in cache._kept.values()) <= 10


def test_listing_cache_reads_a_directory_to_its_end_once():
    reads: list[int] = []

    def scan():
        for n in range(100):
            reads.append(n)
            yield (f"f{n}", n)

    cache: ListingCache[str, tuple[str, int]] = ListingCache()
    assert cache.find("/boot", scan, "f3", entry_name) == ("f3", 3)
    assert len(reads) == 4  # the first lookup stops at its entry
    assert cache.find("/boot", scan, "f50", entry_name) == ("f50", 50)
    assert cache.find("/boot", scan, "nope", entry_name) is None
    assert cache.find("/boot", scan, "f99", entry_name) == ("f99", 99)
    assert len(reads) == 4 + 100


def test_bounded_refuses_a_directory_past_the_entry_bound(monkeypatch):
    from pygrub.fs import directory

    monkeypatch.setattr(directory, "MAX_DIR_ENTRIES", 5)
    assert list(bounded(range(5), "d")) == [0, 1, 2, 3, 4]
    with pytest.raises(LimitError, match="d has over 5 entries"):
        list(bounded(range(6), "d"))


# -- pointer_runs: block map pointers into runs ---------------------------------------------


def naive_pointer_runs(pointers: list[int], step: int) -> list[tuple[int, int, int]]:
    """The plain definition, one pointer at a time."""
    runs: list[list[int]] = []
    for index, pointer in enumerate(pointers):
        if not pointer:
            continue
        if (
            runs
            and runs[-1][0] + runs[-1][1] == index
            and pointer == runs[-1][2] + runs[-1][1] * step
        ):
            runs[-1][1] += 1
        else:
            runs.append([index, 1, pointer])
    return [(a, b, c) for a, b, c in runs]


#: A map block as files make them: stretches written in one go, holes, stray pointers.
SEGMENTS = st.lists(
    st.one_of(
        st.tuples(st.just("run"), st.integers(1, 5000), st.integers(1, 700)),
        st.tuples(st.just("holes"), st.just(0), st.integers(1, 300)),
        st.tuples(st.just("stray"), st.integers(0, 5000), st.just(1)),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(SEGMENTS, st.sampled_from([1, 2, 8]))
def test_pointer_runs_match_the_plain_definition(segments, step):
    pointers: list[int] = []
    for kind, first, length in segments:
        if kind == "run":
            pointers += range(first, first + length * step, step)
        else:
            pointers += [first] * length
    assert list(pointer_runs(tuple(pointers), step)) == naive_pointer_runs(pointers, step)


def test_pointer_runs_of_a_whole_block_and_of_holes():
    assert list(pointer_runs(tuple(range(100, 1124)))) == [(0, 1024, 100)]
    assert list(pointer_runs((0,) * 1024)) == []
    assert list(pointer_runs((0, 5, 6, 0, 7, 8, 8), step=1)) == [(1, 2, 5), (4, 2, 7), (6, 1, 8)]


# -- what mutation testing found no test looking at (tests/mutation-survivors.md) -----------


class _Flat(base.Filesystem[str]):
    """One directory of empty files, for the base class's own lookup (most drivers have
    their own: FAT's and ISO9660's without Rock Ridge compare names without case)."""

    kind = "flat"

    def __init__(self, names, case_insensitive=False):
        super().__init__(MemorySource(b""))
        self.names = names
        self.case_insensitive = case_insensitive

    def root(self):
        return "/"

    def node_stat(self, node):
        return base.Stat(NodeType.DIR if node == "/" else NodeType.FILE, 0)

    def dir_entries(self, node):
        assert node == "/"
        return ((name, name) for name in self.names)

    def readlink(self, node):
        raise AssertionError("no symlinks")

    def node_extents(self, node):
        return iter(())


def test_lookup_compares_case_only_where_the_filesystem_does():
    names = ["BOOT", "grub"]
    assert _Flat(names).lookup("/", "BOOT") == "BOOT"
    assert _Flat(names).lookup("/", "boot") is None
    assert _Flat(names, case_insensitive=True).lookup("/", "boot") == "BOOT"
    assert _Flat(names, case_insensitive=True).lookup("/", "GRUB") == "grub"
    assert _Flat(names, case_insensitive=True).lookup("/", "efi") is None


def test_lookup_reads_at_most_the_entry_bound(monkeypatch):
    monkeypatch.setattr(base, "MAX_DIR_ENTRIES", 4)
    assert _Flat(["a", "b", "c", "d"]).lookup("/", "d") == "d"
    with pytest.raises(LimitError, match=r"^flat: directory has over 4 entries$"):
        _Flat(["a", "b", "c", "d", "e"]).lookup("/", "e")


def test_an_encoded_extent_needs_a_driver_that_decodes():
    fs = _Flat([])
    with pytest.raises(
        CorruptError, match=r"^flat: encoded extent at file offset 7 not supported$"
    ):
        fs.read_encoded("x", Extent(7, 1, ExtentKind.ENCODED))


def test_symlink_targets_keep_bytes_that_are_not_utf8(fs, monkeypatch):
    monkeypatch.setattr(type(fs), "readlink", lambda self, node: b"caf\xe9")
    assert fs.readlink_path("/abs") == "caf\udce9"


def test_open_names_the_file_and_what_else_it_is(fs):
    with fs.open("/boot/vmlinuz") as f:
        assert (f.name, f.size) == ("/boot/vmlinuz", 6)
    with pytest.raises(NotFoundError, match=r"^hostdir: /boot/grub is a directory, not a file$"):
        fs.open("/boot/grub")
    assert FileReader(fs, fs.root(), 0).name == ""


class _Counting(_Pieces):
    """_Pieces over a small source, counting the walks and decodes a reader starts."""

    def __init__(self, root, extents, data):
        super().__init__(root, extents, data)
        self.source = MemorySource(data)
        self.walks = self.decodes = 0

    def node_extents(self, node):
        self.walks += 1
        yield from self._extents

    def read_encoded(self, node, extent):
        self.decodes += 1
        return super().read_encoded(node, extent)


def test_reads_in_order_walk_the_extents_once_and_decode_each_once(tmp_path):
    data = bytes(range(64))
    extents = [
        Extent(0, 16, ExtentKind.DATA, 0),
        Extent(16, 16, ExtentKind.ENCODED, 16),
        Extent(32, 32, ExtentKind.DATA, 32),
    ]
    fs = _Counting(tmp_path, extents, data)
    reader = FileReader(fs, tmp_path, 64, "f")
    assert b"".join(reader.read(4) for _ in range(16)) == data
    assert (fs.walks, fs.decodes) == (1, 1)
    # Back to where the current extent starts: still that extent, no new walk.
    reader.seek(32)
    assert reader.read(4) == data[32:36] and fs.walks == 1


class _Shrunk(MemorySource):
    """A volume that says it is 16 bytes longer than what it reads: an image file cut
    while pygrub reads it."""

    @property
    def size(self):
        return len(self.data) + 16

    def pread(self, offset, length):
        return self.data[offset : offset + length]


def test_reader_errors_name_the_file_and_the_offset(tmp_path):
    past = _Counting(tmp_path, [Extent(0, 16, ExtentKind.DATA, 60)], bytes(64))
    past.source = _Shrunk(bytes(64))  # the extents' check passed; then the volume shrank
    with pytest.raises(
        CorruptError, match=r"^hostdir: f: data at 62 is past the end of the volume$"
    ):
        reader = FileReader(past, tmp_path, 16, "f")
        reader.seek(2)
        reader.read(8)
    short = _Counting(tmp_path, [Extent(0, 16, ExtentKind.ENCODED, 60)], bytes(64))
    with pytest.raises(CorruptError, match=r"^hostdir: f: extent at 0 decodes short$"):
        FileReader(short, tmp_path, 16, "f").read()


def test_extents_say_encoded_where_the_source_has_no_host_span(tmp_path):
    (tmp_path / "f").write_bytes(bytes(32))
    fs = _Counting(tmp_path, [Extent(0, 32, ExtentKind.DATA, 0)], bytes(32))
    assert list(fs.extents("/f")) == [(0, 32, "encoded")]  # a MemorySource maps to no file


def test_node_cache_keeps_the_newest_up_to_its_limit():
    cache: base.NodeCache[int, str] = base.NodeCache(limit=2)
    assert [cache.keep(k, f"n{k}") for k in (1, 2, 3)] == ["n1", "n2", "n3"]
    assert dict(cache) == {2: "n2", 3: "n3"}


def test_a_block_walk_spends_its_reads_to_the_last_then_stops():
    walk = base.BlockWalk(inode=12, end_block=9, reads_left=3, overrun="inode 12 loops")
    walk.spend()
    assert walk.reads_left == 2
    walk.spend(2)
    assert walk.reads_left == 0
    with pytest.raises(LimitError, match=r"^inode 12 loops$"):
        walk.spend()


class _Names(base.ByteNameFilesystem[int]):
    """Directory 1 of byte-named entries; records what lookup hands the driver."""

    kind = "names"

    def __init__(self, names, matcher=None):
        super().__init__(MemorySource(b""))
        self.names = names
        self.matcher = matcher
        self.asked: list[tuple] = []

    def root(self):
        return 1

    def node_stat(self, node):
        return base.Stat(NodeType.DIR, 0)

    def raw_entries(self, node):
        return ((name, 100 + i) for i, name in enumerate(self.names))

    def entry_child(self, node, entry):
        self.asked.append(("child", node, entry[1]))
        return entry[1]

    def name_matcher(self, node, name, want):
        self.asked.append(("matcher", node, name, want))
        return self.matcher

    def readlink(self, node):
        raise AssertionError("no symlinks")

    def node_extents(self, node):
        return iter(())


def test_byte_name_lookup_hands_the_driver_the_directory_and_the_name(monkeypatch):
    from pygrub.fs import directory

    fs = _Names([b"a", b"grub"])
    assert fs.lookup(1, "grub") == 101
    assert fs.asked == [("matcher", 1, "grub", b"grub"), ("child", 1, 101)]
    folded = _Names([b"a", b"GRUB"], matcher=lambda name: name.lower() == b"grub")
    assert folded.lookup(1, "grub") == 101
    monkeypatch.setattr(directory, "MAX_DIR_ENTRIES", 1)
    for fs in (_Names([b"a", b"b"]), _Names([b"a", b"b"], matcher=lambda name: False)):
        with pytest.raises(LimitError, match=r"^names: directory inode 1 has over 1 entries$"):
            fs.lookup(1, "b")


def extents_of(extents, size, volume=64):
    fs = _Counting("/nonexistent", extents, bytes(volume))
    return list(base.checked_extents(fs, "node", size))


def test_checked_extents_skip_empty_ones_and_stop_at_the_size():
    data, hole = ExtentKind.DATA, ExtentKind.HOLE
    got = extents_of([Extent(0, 0, data, 0), Extent(0, 4, data, 0), Extent(8, 4, data, 8)], 8)
    assert got == [Extent(0, 4, data, 0), Extent(4, 4, hole)]
    # An extent past the end clipped, and what follows it never read.
    got = extents_of([Extent(0, 12, data, 0), Extent(-5, 1, data, 0)], 8)
    assert got == [Extent(0, 8, data, 0)]


def test_checked_extents_keep_data_inside_the_volume():
    data = ExtentKind.DATA
    assert extents_of([Extent(0, 64, data, 0)], 64) == [Extent(0, 64, data, 0)]
    assert extents_of([Extent(0, 4, data, 60)], 4) == [Extent(0, 4, data, 60)]
    for offset, span in ((-1, "-1..3"), (61, "61..65")):
        with pytest.raises(
            CorruptError,
            match=rf"^hostdir: extent at file offset 0 points to bytes {span}, outside the 64-byte volume$",
        ):
            extents_of([Extent(0, 4, data, offset)], 4)


def test_reads_of_nothing_and_of_too_much_at_once(tmp_path, monkeypatch):
    fs = _Counting(tmp_path, [Extent(0, 64, ExtentKind.DATA, 0)], bytes(range(64)))
    reader = FileReader(fs, tmp_path, 64, "f")
    assert reader.read(0) == b"" and reader.tell() == 0
    monkeypatch.setattr(base, "MAX_READ", 16)
    assert reader.read(16) == bytes(range(16))
    with pytest.raises(PygrubError, match=r"^read of 17 bytes from f in one call: read in pieces$"):
        reader.read(17)


def test_mode_types_beyond_file_dir_and_symlink_are_other():
    assert base.mode_type(0o100644) is NodeType.FILE
    assert base.mode_type(0o060660) is NodeType.OTHER  # a block device


def test_resolve_messages_and_its_bounds(fs, tmp_path):
    with pytest.raises(NotFoundError, match=r"^hostdir: /boot/vmlinuz-6.1 is not a directory$"):
        fs.stat("/boot/vmlinuz-6.1/x")
    with pytest.raises(NotFoundError, match=r"^hostdir: no such file: /boot/nope$"):
        fs.stat("/boot/nope")
    longest = "/x" * base.MAX_PATH_COMPONENTS
    with pytest.raises(NotFoundError, match=r"^hostdir: no such file: "):
        fs.stat(longest)
    with pytest.raises(LimitError) as too_long:
        fs.stat(longest + "/y")
    assert str(too_long.value) == (
        f"path has over {base.MAX_PATH_COMPONENTS} components: {(longest + '/y')[:80]!r}"
    )


def test_a_chain_of_symlinks_resolves_up_to_the_hop_bound(tmp_path):
    root = tmp_path / "chain"
    root.mkdir()
    (root / "file").write_bytes(b"end")
    hops = base.MAX_SYMLINK_HOPS
    for i in range(hops + 1):
        os.symlink("file" if i == 0 else f"l{i - 1}", root / f"l{i}")
    fs = HostDirFilesystem(root)
    assert fs.read_file(f"/l{hops - 1}", 10) == b"end"  # exactly the bound
    with pytest.raises(LimitError, match=rf"^hostdir: over {hops} symlinks resolving /l{hops}$"):
        fs.stat(f"/l{hops}")


def test_a_filesystem_has_no_uuid_or_label_until_its_driver_reads_one():
    fs = _Flat([])
    assert (fs.uuid, fs.label) == (None, None)


def test_a_clipped_extent_keeps_the_drivers_token():
    encoded = ExtentKind.ENCODED
    got = extents_of([Extent(0, 12, encoded, 3, token="zstd")], 8)
    assert got == [Extent(0, 8, encoded, 3, token="zstd")]


def test_symlinks_expand_a_path_up_to_the_component_bound(tmp_path):
    root = tmp_path / "expand"
    root.mkdir()
    os.symlink("x/" * 2047, root / "d")  # 2047 components (the host's links stop at 4095 bytes)
    fs = HostDirFilesystem(root)
    with pytest.raises(NotFoundError, match=r"^hostdir: no such file: "):
        fs.stat("/d" + "/y" * 2049)  # 4096 components once d is expanded: still walked
    with pytest.raises(LimitError) as past:
        fs.stat("/d" + "/y" * 2050)
    assert str(past.value) == (
        f"hostdir: symlinks expand {'/d' + '/y' * 2050} past {base.MAX_PATH_COMPONENTS} components"
    )
