"""Print a JSON manifest of every dataset of a mounted zfs-fuse pool (for make-zfs-fixtures.sh).

For each mounted dataset: every directory, every file's size and sha256, every symlink's
target, as ZFS itself serves them through its mount; plus the pool's bootfs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys


def tree(root: str) -> dict[str, dict[str, object]]:
    entries: dict[str, dict[str, object]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = "/" + os.path.relpath(dirpath, root).replace(".", "", 1).lstrip("/")
        if dirpath != root and os.path.ismount(dirpath):
            # Another dataset is mounted here; in this one it is an empty directory.
            entries[rel_dir] = {"type": "dir", "names": []}
            dirnames[:] = []
            continue
        entries[rel_dir.rstrip("/") or "/"] = {"type": "dir", "names": sorted(dirnames + filenames)}
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.join(rel_dir, name)
            if os.path.islink(path):
                entries[rel] = {"type": "symlink", "target": os.readlink(path)}
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
                entries[rel] = {
                    "type": "file",
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
    return entries


def main() -> None:
    pool = sys.argv[1]
    listing = subprocess.run(
        ["zfs", "list", "-H", "-r", "-t", "filesystem", "-o", "name,mountpoint", pool],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    datasets = {}
    for line in listing.splitlines():
        name, mountpoint = line.split("\t")
        if mountpoint.startswith("/"):
            datasets[name] = tree(mountpoint)
    # zfs-fuse's zpool get has no -H/-o: NAME PROPERTY VALUE SOURCE, under a heading.
    got = subprocess.run(
        ["zpool", "get", "bootfs", pool], check=True, capture_output=True, text=True
    )
    bootfs = got.stdout.splitlines()[1].split()[2]
    json.dump(
        {"pool": pool, "bootfs": None if bootfs == "-" else bootfs, "datasets": datasets},
        sys.stdout,
        indent=0,
        sort_keys=True,
    )


if __name__ == "__main__":
    main()
