#!/usr/bin/env bash
# Rebuild tests/fixtures/erofs: EROFS images made by Debian 13's mkfs.erofs (erofs-utils
# 1.8), for what Debian 12's 1.5 cannot write: lzma, deflate and zstd pclusters, fragments,
# dedupe and a second algorithm chosen per file.
#
# scripts/trixie-chroot.sh makes a trixie chroot holding erofs-utils (the host's packages
# are left alone); its mkfs.erofs makes each image from the tree below and its fsck.erofs
# extracts each one again, which must give back the tree byte for byte. The images are
# committed xz-compressed with a manifest: each image's options and label, and every
# path's type, size and sha256 (or symlink target), which the tests compare against.
#
# Usage: scripts/make-erofs-fixtures.sh [OUTDIR]   (KEEP_WORK=1 keeps the work directory,
#        TRIXIE_ROOT=DIR keeps the chroot in DIR for the next run)
#
# Needs: mmdebstrap, xz-utils, python3, and Debian's archive. Not run by CI: the images it
# makes are committed. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-tests/fixtures/erofs}
work=$(mktemp -d)
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$work"' EXIT

for tool in mmdebstrap xz python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

root=${TRIXIE_ROOT:-$work/root}
scripts/trixie-chroot.sh "$root" erofs-utils
in_root() { chroot "$root" "$@"; }
in_root mkfs.erofs --version
# What this script makes in the chroot is under /erofs-fixtures (/w is the other script's).
rm -rf "$root/erofs-fixtures"
w=$root/erofs-fixtures
mkdir "$w"

# -- the tree: a kernel and an initrd of varied, compressible data, a symlink, a deep
#    directory and a big one (deterministic, so a rerun gives the same manifest) -------
python3 - "$w/src" <<'TREE'
import os
import random
import sys
from pathlib import Path

root = Path(sys.argv[1])
rng = random.Random(2026)
words = [bytes(rng.choice(b"etaoinshrdlu") for _ in range(rng.randint(2, 9))) for _ in range(300)]


def text_like(size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(64)) + b"\n"
    return bytes(out[:size])


files = {
    "boot/grub/grub.cfg": b"set default=0\nmenuentry 'Linux' {\n linux /boot/vmlinuz-6.1\n"
    b" initrd /boot/initrd.img-6.1\n}\n",
    "boot/vmlinuz-6.1": text_like(120_000) + rng.randbytes(8_000) + text_like(40_001),
    "boot/initrd.img-6.1": text_like(80_000) + bytes(20_000) + text_like(7_777),
    "boot/copy-of-initrd": b"",  # filled below: the same bytes, for dedupe
    "empty": b"",
    "tiny": b"hello, world\n",
    "exact": text_like(4096),
    "a/b/c/d/e/f/g/deep.txt": b"deep\n",
    "h\u00e9llo.txt": b"a UTF-8 name\n",
}
files["boot/copy-of-initrd"] = files["boot/initrd.img-6.1"]
# An older initrd: 30000 bytes of the new one's start, at an unaligned offset between
# bytes of its own. mkfs.erofs -Ededupe finds only the starts of extents it has already
# written, so this file gets two extents that use part of a pcluster (partial-ref): its
# first, cut short where the shared bytes begin, and the next: 30000 bytes of the initrd's
# first pcluster.
initrd = files["boot/initrd.img-6.1"]
files["boot/initrd.img-6.1.bak"] = text_like(10_000) + initrd[:30_000] + text_like(20_000)
for rel, data in files.items():
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
for index in range(400):
    (root / "many").mkdir(exist_ok=True)
    (root / "many" / f"entry-with-a-rather-long-name-{index:04d}").write_bytes(b"%d\n" % index)
os.symlink("boot/vmlinuz-6.1", root / "vmlinuz")
os.symlink("../../..", root / "a/b/c/up")
TREE
# Per-file algorithms: -z lists lz4hc (index 0) and lzma (1); a hint line is
# "pcluster-size [algorithm-index] regex", the index before the regex. The initrds' map
# headers then name lzma for their HEAD1 lclusters (h_algorithmtype 1), the rest lz4.
printf '4096 1 .*initrd.*\n' >"$w/hints"

# name|label (15 bytes at most)|mkfs.erofs options (paths as the chroot sees them)
images=(
    "lzma|boot-lzma|-zlzma,level=6 -C65536 -Eztailpacking"
    "lzma-all-fragments|all-fragments|-zlzma -Eall-fragments"
    "deflate|boot-deflate|-zdeflate,level=9 -Eztailpacking"
    "zstd|boot-zstd|-zzstd,level=19 -C16384"
    "lz4hc-dedupe|partial-refs|-zlz4hc -C16384 -Ededupe"
    "lz4hc-dedupe-fragments|dedupe|-zlz4hc -C16384 -Ededupe,fragments"
    "lz4hc-lzma-hints|two-algorithms|-zlz4hc:lzma --compress-hints=/erofs-fixtures/hints"
)
mkdir -p "$work/images"
for spec in "${images[@]}"; do
    IFS='|' read -r name label options <<<"$spec"
    # shellcheck disable=SC2086  # options are words
    in_root mkfs.erofs --quiet -T0 -U 6b1f2b52-0d3e-4c8e-9a7c-2f6e1d0c5b4a \
        -L "$label" $options "/erofs-fixtures/$name.img" /erofs-fixtures/src
    rm -rf "$w/extracted"
    in_root fsck.erofs --extract=/erofs-fixtures/extracted "/erofs-fixtures/$name.img"
    diff -r --no-dereference "$w/src" "$w/extracted"
    mv "$w/$name.img" "$work/images/"
done

mkdir -p "$out"
rm -f "$out"/*.img.xz
for spec in "${images[@]}"; do
    IFS='|' read -r name _label _options <<<"$spec"
    xz -9e -T1 -c "$work/images/$name.img" >"$out/$name.img.xz"
done
python3 - "$w/src" "$out" "${images[@]}" <<'MANIFEST'
import sys
from pathlib import Path

sys.path.insert(0, "scripts")
from reiserfs_fixture_tree import manifest_text, sha256_file, tree_manifest

src, out = Path(sys.argv[1]), Path(sys.argv[2])
images = {}
for spec in sys.argv[3:]:
    name, label, options = spec.split("|", 2)
    images[name] = {
        "label": label,
        "options": options,
        "sha256": sha256_file(out / f"{name}.img.xz"),
    }
(out / "manifest.json").write_text(manifest_text(images, tree_manifest(src)))
MANIFEST
ls -l "$out"
