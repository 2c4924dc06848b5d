"""What the filesystem reader tests share.

Comparing a filesystem with the host tree it was made from (names, bytes, extents,
symlinks), and walking damaged images under a time bound, where every outcome must be
correct data or one of our errors: never another exception, a hang or a read past the
image.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import random
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import strategies as st
from imaging import MiB

from pygrub.disk import ByteSource, MemorySource
from pygrub.disk.source import check_request
from pygrub.errors import LimitError, NotFoundError, PygrubError
from pygrub.fs.base import FileReader, Filesystem, NodeType, checked_extents

#: Bytes compared at a time, so multi-GiB sparse files need no memory.
CHUNK = 4 * MiB
#: Bytes read after seeking back into a file: across a few blocks of any format.
SEEK_READ = 70_000
#: Where every source tree keeps the kernel that symlinks point to.
KERNEL = "boot/vmlinuz-6.1"

# -- building source trees ----------------------------------------------------------------


def padded(target: str, length: int) -> str:
    """``target`` written with exactly ``length`` characters, padded with ./ and //."""
    head, rest = ("/", target[1:]) if target.startswith("/") else ("", target)
    need = length - len(target)
    assert need >= 0 and need != 1
    pad = ".//" if need % 2 else ""
    pad += "./" * ((need - len(pad)) // 2)
    result = head + pad + rest
    assert len(result) == length
    return result


def text_like(rng: random.Random, size: int) -> bytes:
    """Bytes that compress well but not trivially (words from a small vocabulary)."""
    words = [
        bytes(rng.choice(b"etaoinshrdlu") for _ in range(rng.randint(2, 9))) for _ in range(200)
    ]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(64)) + b"\n"
    return bytes(out[:size])


#: A file and a directory name that are not UTF-8 (latin-1 bytes).
LATIN1_FILE = os.fsdecode(b"caf\xe9.txt")
LATIN1_DIR = os.fsdecode(b"dir\xff")
#: The GRUB 2 config every source tree boots from.
GRUB_CFG = b"set default=0\nmenuentry 'Linux' {\n linux /boot/vmlinuz-6.1\n}\n"


def write_tree(root: Path, files: Mapping[str, bytes], symlinks: Mapping[str, str]) -> Path:
    """``root`` holding ``files`` (path -> bytes, directories made on the way), an empty
    directory ``emptydir`` and ``symlinks`` (path -> target), in that order."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "emptydir").mkdir()
    for rel, target in symlinks.items():
        os.symlink(target, root / rel)
    return root


def write_many(directory: Path, names: Iterable[str]) -> None:
    """A file per name in ``directory``, each holding its index ("0\n", "1\n", ...)."""
    directory.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        (directory / name).write_bytes(b"%d\n" % index)


def write_sparse(path: Path, size: int, pieces: dict[int, bytes]) -> None:
    """A file of ``size`` bytes holding only ``pieces`` (offset -> bytes); the rest is holes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in pieces.items():
            f.seek(offset)
            f.write(data)


def python_lzo():  # noqa: ANN201
    """python-lzo (liblzo), the oracle for LZO1X streams."""
    try:
        import lzo as module
    except ImportError:
        pytest.fail("python-lzo is not installed (.ci/run installs it)")
    return module


# -- comparing a filesystem with its source tree ------------------------------------------


def chunks(length: int) -> Iterator[tuple[int, int]]:
    for start in range(0, length, CHUNK):
        yield start, min(CHUNK, length - start)


def _opened(want: Path | bytes) -> BinaryIO:
    return open(want, "rb") if isinstance(want, Path) else io.BytesIO(want)


def assert_file_matches(
    fs: Filesystem, rel: str, want: Path | bytes, mode: int | None = None
) -> None:
    """``rel`` is a file holding ``want`` (a host file or its bytes), and ``mode`` if given;
    read through, and again from a third of the way after a seek back."""
    with _opened(want) as expected:
        size = expected.seek(0, os.SEEK_END)
        expected.seek(0)
        st_ = fs.stat(rel)
        assert (st_.type, st_.size) == (NodeType.FILE, size), rel
        if mode is not None:
            assert st_.mode == mode, rel
        with fs.open(rel) as f:
            for _start, length in chunks(size):
                assert f.read(length) == expected.read(length), rel
            assert f.read(10) == b"", rel
            expected.seek(size // 3)
            f.seek(size // 3)
            assert f.read(SEEK_READ) == expected.read(SEEK_READ), rel


def assert_extents_match(
    fs: Filesystem, rel: str, want: Path | bytes, holes: bool = True
) -> list[str]:
    """extents() covers the file in order; host spans and what ``open`` decodes for
    encoded extents hold the file's bytes; holes are zeros (and refused unless ``holes``).
    Returns the kind of each extent: "hole", "encoded" or "span"."""
    kinds = []
    pos = 0
    with _opened(want) as expected:
        size = expected.seek(0, os.SEEK_END)
        for offset, length, where in fs.extents(rel):
            assert offset == pos, rel
            assert holes or where != "hole", f"{rel}: a hole at {offset}"
            for start, n in chunks(length):
                expected.seek(offset + start)
                data = expected.read(n)
                if where == "hole":
                    assert data == bytes(n), f"{rel}: hole over data at {offset + start}"
                elif where == "encoded":
                    with fs.open(rel) as f:
                        f.seek(offset + start)
                        assert f.read(n) == data, rel
                else:
                    fd, host_offset = where
                    assert os.pread(fd, n, host_offset + start) == data, rel
            kinds.append(where if where in ("hole", "encoded") else "span")
            pos += length
    assert pos == size, rel
    return kinds


def assert_symlink_matches(fs: Filesystem, rel: str, host: Path) -> None:
    target = os.readlink(host)
    st_ = fs.lstat(rel)
    assert st_.type is NodeType.SYMLINK, rel
    assert st_.size == len(os.fsencode(target)), rel
    assert fs.readlink_path(rel) == target, rel


def same_names(fs: Filesystem, rel: str, here: Path) -> None:
    """The directory ``rel`` lists exactly the names of the host directory ``here``."""
    assert sorted(fs.listdir(rel)) == sorted(os.listdir(here)), rel


def assert_tree_matches(
    fs: Filesystem,
    src: Path,
    listing: Callable[[Filesystem, str, Path], None] = same_names,
    modes: bool = False,
    holes: bool = True,
) -> None:
    """Everything under ``src`` reads back from ``fs``: each directory's names by
    ``listing``, each file's bytes and extents (``modes``: its permission bits too), each
    symlink's target."""
    for dirpath, _dirs, _names in os.walk(src):
        here = Path(dirpath)
        rel = "/" + here.relative_to(src).as_posix().removeprefix(".")
        listing(fs, rel, here)
        for name in os.listdir(here):
            host = here / name
            path = rel.rstrip("/") + "/" + name
            if host.is_symlink():
                assert_symlink_matches(fs, path, host)
            elif host.is_dir():
                assert fs.stat(path).type is NodeType.DIR, path  # os.walk goes inside
            else:
                mode = host.stat().st_mode & 0o7777 if modes else None
                assert_file_matches(fs, path, host, mode)
                assert_extents_match(fs, path, host, holes)


def unpacked_fixture(packed: Path, sha256: str, directory: Path) -> Path:
    """A committed ``.xz`` fixture image, checked against its manifest's ``sha256`` and
    decompressed into ``directory`` (a piece at a time: some are hundreds of MiB)."""
    digest = hashlib.sha256()
    with open(packed, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    assert digest.hexdigest() == sha256, f"{packed} is not the image its manifest names"
    image = directory / packed.name.removesuffix(".xz")
    with lzma.open(packed) as src, open(image, "wb") as dst:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
    return image


def manifest_children(tree: Mapping[str, Mapping[str, object]], directory: str) -> list[str]:
    """The names a manifest's tree (path -> entry) holds directly under ``directory``."""
    prefix = directory.rstrip("/") + "/"
    return sorted(
        path[len(prefix) :]
        for path in tree
        if path.startswith(prefix) and path != prefix and "/" not in path[len(prefix) :]
    )


def file_sha256(fs: Filesystem, path: str, size: int) -> str:
    """The sha256 of the file as its file object reads it, which must end at ``size``."""
    digest = hashlib.sha256()
    with fs.open(path) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    assert f.tell() == size, path
    return digest.hexdigest()


def assert_extents_cover(fs: Filesystem, path: str, size: int, want: str) -> None:
    """extents() covers the file in order, and its pieces hold the file's bytes (an
    encoded piece as the file object decodes it)."""
    digest = hashlib.sha256()
    pos = 0
    with fs.open(path) as f:
        for offset, length, where in fs.extents(path):
            assert offset == pos, path
            if where == "hole":
                digest.update(bytes(length))
            elif where == "encoded":
                f.seek(offset)
                digest.update(f.read(length))
            else:
                fd, host = where
                digest.update(os.pread(fd, length, host))
            pos += length
    assert pos == size and digest.hexdigest() == want, path


def assert_manifest_matches(
    fs: Filesystem,
    tree: Mapping[str, Mapping[str, object]],
    extra_in_root: tuple[str, ...] = (),
    mode: int | None = None,
) -> None:
    """``fs`` holds exactly a fixture manifest's tree: each directory's names (the root may
    also hold ``extra_in_root``, made by the filesystem's own tools), each symlink's target,
    each file's size, bytes and extents (and permission bits, given ``mode``)."""
    for path, entry in tree.items():
        if entry["type"] == "directory":
            listing = sorted(fs.listdir(path))
            if path == "/":
                listing = [name for name in listing if name not in extra_in_root]
            assert listing == manifest_children(tree, path), path
            assert fs.stat(path).type is NodeType.DIR, path
        elif entry["type"] == "symlink":
            target = entry["target"]
            assert isinstance(target, str)
            assert fs.lstat(path).type is NodeType.SYMLINK, path
            assert fs.lstat(path).size == len(os.fsencode(target)), path
            assert fs.readlink_path(path) == target, path
        else:
            size, want = entry["size"], entry["sha256"]
            assert isinstance(size, int) and isinstance(want, str)
            stat = fs.stat(path)
            assert (stat.type, stat.size) == (NodeType.FILE, size), path
            if mode is not None:
                assert stat.mode == mode, path
            assert file_sha256(fs, path, size) == want, path
            assert_extents_cover(fs, path, size, want)


def assert_symlinks_resolve(
    fs: Filesystem, src: Path, kernel_links: Iterable[str], file_link: str = "links/s1"
) -> None:
    """The symlinks every source tree has: to the kernel, to "the f file", to the boot
    directory, a loop and a dangling one."""
    kernel = (src / KERNEL).read_bytes()
    for rel in kernel_links:
        assert fs.read_file(rel, len(kernel) + 1) == kernel, rel
    assert fs.read_file(file_link, 100) == b"the f file\n"
    assert (
        fs.read_file("links/bootdir/grub/grub.cfg", 1000)
        == (src / "boot/grub/grub.cfg").read_bytes()
    )
    with pytest.raises(LimitError):
        fs.open("links/loop1")
    with pytest.raises(NotFoundError):
        fs.open("links/dangling")


# -- damaged images -------------------------------------------------------------------------


class Timeout(Exception):
    """The walk of a damaged image took too long (not a PygrubError: the test fails)."""


def _on_alarm(_signum: int, _frame: object) -> None:
    raise Timeout("the walk took too long")


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class SparseSource:
    """A large disk of zeros with a few written regions (huge sizes without the memory)."""

    def __init__(self, size: int, regions: dict[int, bytes]) -> None:
        self._size = size
        self.regions = regions

    @property
    def size(self) -> int:
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        assert 0 <= offset and 0 <= length <= 64 * MiB, (offset, length)
        length = max(0, min(length, self._size - offset))
        out = bytearray(length)
        for at, data in self.regions.items():
            lo, hi = max(at, offset), min(at + len(data), offset + length)
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - at : hi - at]
        return bytes(out)

    def host_span(self, offset: int, length: int) -> None:
        return None


def edited(data: bytes, edits: Mapping[int, bytes]) -> bytes:
    """``data`` with each offset's bytes replaced."""
    out = bytearray(data)
    for offset, value in edits.items():
        out[offset : offset + len(value)] = value
    return bytes(out)


def patched(image: Path, edits: Mapping[int, bytes]) -> MemorySource:
    """The image file with each offset's bytes replaced, in memory."""
    return MemorySource(edited(image.read_bytes(), edits))


class EditedSource:
    """``inner`` with ``edits`` laid over it (later ones win) as it is read, cut at
    ``size``: a damaged image without a copy of it per example."""

    def __init__(
        self, inner: ByteSource, edits: Iterable[tuple[int, bytes]], size: int | None = None
    ) -> None:
        self.inner = inner
        self.edits = list(edits)
        self._size = inner.size if size is None else min(size, inner.size)

    @property
    def size(self) -> int:
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        length = check_request(offset, length, self._size)
        data = self.inner.pread(offset, length) if length else b""
        end = offset + len(data)
        if not any(at < end and at + len(value) > offset for at, value in self.edits):
            return data
        buf = bytearray(data)
        for at, value in self.edits:
            low, high = max(at, offset), min(at + len(value), end)
            if low < high:
                buf[low - offset : high - offset] = value[low - at : high - at]
        return bytes(buf)

    def host_span(self, offset: int, length: int) -> None:
        return None

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


@st.composite
def overwrites(
    draw: Callable, regions: list[tuple[int, int]], values: st.SearchStrategy[bytes], most: int = 6
) -> list[tuple[int, bytes]]:
    """1..``most`` (offset, bytes) edits, each at an offset inside one of [start, end)."""
    edits = []
    for _ in range(draw(st.integers(1, most))):
        start, end = draw(st.sampled_from(regions))
        offset = draw(st.integers(start, end - 1))
        edits.append((offset, draw(values)))
    return edits


def open_and_walk(
    open_filesystem: Callable[[ByteSource], Filesystem | None],
    source: ByteSource,
    walk: Callable[[Filesystem], None],
    has_magic: Callable[[ByteSource], bool] | None = None,
    seconds: float = 10,
) -> None:
    """Open a damaged image and walk it within ``seconds``. Refusing it with one of our
    errors is fine; so is not recognising it, unless ``has_magic`` says it still should be."""
    with time_bound(seconds):
        try:
            fs = open_filesystem(source)
        except PygrubError:
            return
        if fs is None:
            assert has_magic is None or not has_magic(source), "the magic is there: not recognised"
            return
        walk(fs)


def walk_nodes(
    fs: Filesystem,
    paths: Iterable[str],
    nodes: int = 500,
    reads: int = 16,
    entries: int = 5000,
    children: int | None = None,
    extents: int = 10_000,
) -> None:
    """Visit up to ``nodes`` nodes through the driver's primitives (the first ``reads``
    64 KiB of each file and ``extents`` of its extents, ``entries`` of each directory and
    ``children`` of those), then resolve ``paths`` through the shared path walker."""

    def attempt(action: Callable[..., object], *args: object) -> object:
        try:
            return action(*args)
        except PygrubError:
            return None

    def read_file(node: object, size: int) -> None:
        with FileReader(fs, node, size) as f:
            for _ in range(reads):
                if not f.read(64 * 1024):
                    break
        for _extent in islice(checked_extents(fs, node, size), extents):
            pass

    seen: set[object] = set()
    pending = [fs.root()]
    while pending and len(seen) < nodes:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        st_ = attempt(fs.node_stat, node)
        if st_ is None:
            continue
        if st_.type is NodeType.DIR:
            found = attempt(lambda n: list(islice(fs.dir_entries(n), entries)), node) or []
            pending.extend(child for _name, child in found[:children])
        elif st_.type is NodeType.FILE:
            attempt(read_file, node, st_.size)
        elif st_.type is NodeType.SYMLINK:
            attempt(fs.readlink, node)
    for path in paths:
        attempt(fs.read_file, path, 100)


class GuardedSource(MemorySource):
    """A source that fails the test (not with a PygrubError) on any read past its end."""

    def pread(self, offset: int, length: int) -> bytes:
        assert 0 <= offset and offset + length <= self.size, (offset, length, self.size)
        return super().pread(offset, length)


def explore(fs: Filesystem, max_depth: int, budget: int = 80) -> None:
    """Walk paths and read everything reachable, bounded, checking each read's length."""
    pending = ["/"]
    while pending and budget > 0:
        path = pending.pop()
        budget -= 1
        try:
            names = fs.listdir(path)
        except PygrubError:
            continue
        for name in names[:40]:
            child = path.rstrip("/") + "/" + name
            try:
                st_ = fs.stat(child)
                if st_.type is NodeType.DIR:
                    if child.count("/") < max_depth:
                        pending.append(child)
                elif st_.type is NodeType.FILE:
                    data = fs.read_file(child, 1 << 20)
                    assert len(data) == min(st_.size, 1 << 20)
            except PygrubError:
                pass
