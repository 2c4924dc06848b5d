#!/usr/bin/env bash
# Rebuild tests/fixtures/trixie: ext4, XFS and Btrfs images made by Debian 13's own mkfs
# tools (e2fsprogs 1.47, xfsprogs 6.13, btrfs-progs 6.14), with their defaults and with
# every newer on-disk feature they can write. The host's packages are never upgraded:
# mmdebstrap makes a trixie chroot and the tools run there.
#
# The source tree is the ReiserFS fixtures' (scripts/reiserfs_fixture_tree.py): sparse,
# patterned, deep and wide, odd names, long and looping symlinks. Each image is checked
# with its own tool's checker (e2fsck -fn, xfs_repair -n, btrfs check) before it is
# compressed; the manifest holds the tree the tests compare against.
#
# Usage: scripts/make-trixie-fixtures.sh [OUTDIR]   (KEEP_WORK=1 keeps the work directory,
#        TRIXIE_ROOT=DIR keeps the chroot in DIR for the next run)
#
# Needs: mmdebstrap, xz-utils, python3, and the project's venv (.venv, or PYTHON=...) for
# the XFS protofile writer in tests/hostile.py. Not run by CI: the images are committed.
# About two minutes, most of it the chroot.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-tests/fixtures/trixie}
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$work"' EXIT

for tool in mmdebstrap xz python3 "$python"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# -- the chroot: trixie's mkfs tools -------------------------------------------------------
# TRIXIE_ROOT=DIR keeps the chroot there and reuses it on the next run.
root=${TRIXIE_ROOT:-$work/root}
scripts/trixie-chroot.sh "$root" e2fsprogs xfsprogs btrfs-progs
rm -rf "$root/w"
in_root() { chroot "$root" "$@"; }
versions="e2fsprogs $(in_root dpkg-query -W -f='${Version}' e2fsprogs)"
versions+=", xfsprogs $(in_root dpkg-query -W -f='${Version}' xfsprogs)"
versions+=", btrfs-progs $(in_root dpkg-query -W -f='${Version}' btrfs-progs)"

# -- the tree, inside the chroot at /w/src -------------------------------------------------
mkdir -p "$root/w/images"
python3 scripts/reiserfs_fixture_tree.py tree "$root/w/src"
"$python" - "$root/w/src" "$root/w/src.proto" <<'PROTO'
import os, sys
sys.path.insert(0, "tests")
from hostile import xfs_protofile
src, proto = sys.argv[1], sys.argv[2]
# The protofile names host paths; in the chroot the tree is at /w/src.
text = xfs_protofile(__import__("pathlib").Path(src)).replace(os.fsencode(src), b"/w/src")
open(proto, "wb").write(text)
PROTO

# -- the images: name|size in MiB|command (run in the chroot; IMAGE is the image) ---------
# ext4 at this size gets mke2fs.conf's "small" type (1 KiB blocks), as a /boot does.
# No inline_data: with it, mke2fs 1.47.2 -d cuts a sparse file's trailing hole off.
images=(
    "ext4-default.img|128|mke2fs -q -F -t ext4 -d /w/src IMAGE"
    "ext4-newest.img|128|mke2fs -q -F -t ext4 -b 4096 -O orphan_file,metadata_csum_seed,large_dir,encrypt,casefold,verity -d /w/src IMAGE"
    "xfs-default.img|128|mkfs.xfs -q -f -p /w/src.proto IMAGE"
    "xfs-newest.img|128|mkfs.xfs -q -f -m metadir=1 -n parent=1 -i exchange=1,nrext64=1 -p /w/src.proto IMAGE"
    "btrfs-default.img|128|mkfs.btrfs -q -f -r /w/src IMAGE"
    "btrfs-zstd.img|128|mkfs.btrfs -q -f -O block-group-tree,squota --compress=zstd:3 -r /w/src IMAGE"
)
checks=(
    "ext4|e2fsck -fn IMAGE"
    "xfs|xfs_repair -n -f IMAGE"
    "btrfs|btrfs check --force IMAGE"
)
# The xfstests variables let mkfs.xfs make a filesystem under its 300 MiB minimum.
export TEST_DIR=/tmp TEST_DEV=/dev/null QA_CHECK_FS=xfs
for spec in "${images[@]}"; do
    IFS='|' read -r name size command <<<"$spec"
    truncate -s "${size}M" "$root/w/images/$name"
    # shellcheck disable=SC2086  # the command is words
    in_root ${command//IMAGE//w/images/$name} 2>&1 || { echo "$name: mkfs failed" >&2; exit 1; }
    for check in "${checks[@]}"; do
        IFS='|' read -r prefix checker <<<"$check"
        [[ $name == "$prefix"-* ]] || continue
        # shellcheck disable=SC2086
        in_root ${checker//IMAGE//w/images/$name} >"$work/check.log" 2>&1 ||
            { cat "$work/check.log" >&2; echo "$name: $checker failed" >&2; exit 1; }
    done
done

mkdir -p "$out"
rm -f "$out"/*.img.xz
for spec in "${images[@]}"; do
    IFS='|' read -r name _size _command <<<"$spec"
    xz -9e -T1 -c "$root/w/images/$name" >"$out/$name.xz"
done
python3 scripts/reiserfs_fixture_tree.py manifest "$root/w/src" "$out/manifest.json" "$out"/*.img.xz
echo "$versions" >"$out/VERSIONS"
ls -l "$out"
