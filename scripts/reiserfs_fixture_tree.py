#!/usr/bin/env python3
"""The source tree the ReiserFS fixtures hold, its tar for the guest, and the manifest.

Used by scripts/make-reiserfs-fixtures.sh (not by the tests, which read the manifest):

    reiserfs_fixture_tree.py tree DIR          write the tree under DIR (sparse files sparse)
    reiserfs_fixture_tree.py tar DIR OUT       pack DIR for the guest: sparse files become
                                               lines of DIR's .sparse recipe, not tar members
    reiserfs_fixture_tree.py manifest DIR OUT IMAGE...
                                               every path's type, size and sha256 (or symlink
                                               target), and each committed image's sha256

The content is deterministic, so rerunning the script gives the same manifest. File data is
patterned (each 4 KiB block names its file and index), so a block read from the wrong place
shows, yet the images compress to little.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sys
import tarfile
from pathlib import Path

BLOCK = 4096
MiB = 1 << 20

#: Sparse files: path -> (size, {offset: bytes}). The guest recreates them with truncate + dd.
SPARSE = {
    "sparse": (64 * MiB, {0: b"head of the sparse file", 40 * MiB + 5: b"in the middle"}),
    "sparse-end": (3 * MiB + 17, {3 * MiB: b"data in the last block"}),
}

#: Files the guest rewrites 512 bytes at a time. Large writes go straight to whole
#: blocks (indirect items); small ones start as a tail that each write converts, and the
#: kernel packs the last block back into a tail on close: indirect items, then direct.
REWRITTEN = {"two-and-tail": 2 * BLOCK + 1000, "small-tail": 2 * 1024 + 300}

SYMLINKS = {
    "links/s1": "f",
    "links/kernel": "../boot/vmlinuz-6.1",
    "links/abs-kernel": "/boot/vmlinuz-6.1",
    "links/bootdir": "../boot",
    "links/long200": "../" + "./" * 90 + "boot/vmlinuz-6.1",
    "links/long899": "/" + "./" * 441 + "boot/vmlinuz-6.1",  # 1 KiB blocks allow no more
    "links/loop1": "loop2",
    "links/loop2": "loop1",
    "links/dangling": "nowhere",
}


def patterned(name: str, size: int) -> bytes:
    """``size`` bytes, each 4 KiB block saying which file and block it is."""
    out = bytearray()
    index = 0
    while len(out) < size:
        line = f"{name} block {index:08d}\n".encode()
        out += (line * (BLOCK // len(line) + 1))[:BLOCK]
        index += 1
    return bytes(out[:size])


def files() -> dict[str, bytes]:
    rng = random.Random(3)
    tree = {
        "boot/grub/grub.cfg": b"set default=0\nmenuentry 'Linux' {\n linux /boot/vmlinuz-6.1\n}\n",
        "boot/vmlinuz-6.1": patterned("kernel", 1_200_000),
        "boot/initrd.img-6.1": patterned("initrd", 300_001),
        "big": patterned("big", 9 * MiB + 123),
        "empty": b"",
        "one": b"x",
        "tiny": b"hello, world\n",
        "random": rng.randbytes(3000),
        "below": patterned("below", BLOCK - 1),
        "exact": patterned("exact", BLOCK),
        "above": patterned("above", BLOCK + 1),
        "two-and-tail": patterned("two-and-tail", REWRITTEN["two-and-tail"]),
        "small-tail": patterned("small-tail", REWRITTEN["small-tail"]),
        "sixteen-k": patterned("sixteen", 16 * 1024),
        "zeros": bytes(3 * BLOCK),
        "a/b/c/d/e/f/g/deep.txt": b"deep\n",
        "links/f": b"the f file\n",
        "x" * 255: b"a name of 255 bytes\n",
        "h\u00e9llo.txt": b"a UTF-8 name\n",
    }
    for index in range(300):
        tree[f"many/f{index:04d}"] = b"%d\n" % index * (index % 7 + 1)
    for index in range(1000):
        tree[f"d1000/entry-{index:04d}"] = b"entry %d\n" % index
    return tree


def raw_names() -> dict[bytes, bytes]:
    """Files whose names are not UTF-8."""
    return {b"caf\xe9.txt": b"a latin-1 name\n", b"dir\xff/inner": b"in a non-UTF-8 directory\n"}


def write_tree(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for raw, data in raw_names().items():
        path = Path(os.fsdecode(os.fsencode(root) + b"/" + raw))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "emptydir").mkdir(exist_ok=True)
    for rel, target in SYMLINKS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
    for rel, (size, pieces) in SPARSE.items():
        with open(root / rel, "wb") as f:
            f.truncate(size)
            for offset, data in pieces.items():
                f.seek(offset)
                f.write(data)


def write_tar(root: Path, out: Path) -> None:
    """Everything but the sparse files, plus .sparse: "path size offset piece-file" lines,
    and .rewrite: the REWRITTEN files' paths."""
    recipe = []
    pieces: dict[str, bytes] = {}
    for rel, (size, parts) in SPARSE.items():
        for number, (offset, data) in enumerate(parts.items()):
            name = f".pieces/{rel}.{number}"
            pieces[name] = data
            recipe.append(f"{rel} {size} {offset} {name}")
    with tarfile.open(
        out, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for dirpath, dirnames, filenames in sorted(os.walk(root)):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = Path(dirpath) / name
                rel = path.relative_to(root).as_posix()
                if rel in SPARSE:
                    continue
                tar.add(path, arcname=rel, recursive=False)
        for name, data in pieces.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, lines in ((".sparse", recipe), (".rewrite", list(REWRITTEN))):
            text = ("\n".join(lines) + "\n").encode()
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_manifest(root: Path) -> dict[str, dict[str, object]]:
    """path (surrogate-escaped, from the root) -> what the filesystem must show there."""
    entries: dict[str, dict[str, object]] = {"/": {"type": "directory"}}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = "/" + path.relative_to(root).as_posix()
            if path.is_symlink():
                entries[rel] = {"type": "symlink", "target": os.readlink(path)}
            elif path.is_dir():
                entries[rel] = {"type": "directory"}
            else:
                entries[rel] = {
                    "type": "file",
                    "size": path.stat().st_size,
                    "sha256": sha256_file(path),
                }
    return dict(sorted(entries.items()))


def manifest_text(images: dict[str, str], tree: dict[str, dict[str, object]]) -> str:
    """JSON with one line per image and per path, so a change shows as a small diff."""

    def lines(mapping: dict[str, object]) -> str:
        return ",\n".join(
            f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in mapping.items()
        )

    return '{\n "images": {\n' + lines(images) + '\n },\n "tree": {\n' + lines(tree) + "\n }\n}\n"


def main(argv: list[str]) -> None:
    command, root = argv[0], Path(argv[1])
    if command == "tree":
        write_tree(root)
    elif command == "tar":
        write_tar(root, Path(argv[2]))
    elif command == "manifest":
        out = Path(argv[2])
        images = {Path(image).name: sha256_file(Path(image)) for image in argv[3:]}
        out.write_text(manifest_text(images, tree_manifest(root)))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
