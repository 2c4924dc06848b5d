#!/usr/bin/env bash
# Rebuild tests/fixtures/reiserfs: ReiserFS images populated by a real Linux kernel.
#
# No ReiserFS tool writes files into an image, so a QEMU guest does it: mkreiserfs makes
# the empty images here; Debian's own kernel (linux-image-*-amd64, fetched with
# `apt-get download` and unpacked with dpkg-deb) boots with a busybox initramfs that loads
# reiserfs.ko, mounts each image, unpacks the source tree (a tar on a raw second disk)
# into it, makes the sparse files and the tails, remounts it and prints the sha256 of
# every file as the kernel reads it back. The host checks those sums against the tree's manifest, then
# compresses the images and writes the manifest the tests compare against.
#
# Usage: scripts/make-reiserfs-fixtures.sh [OUTDIR]   (KEEP_WORK=1 keeps the work directory)
#
# Needs: reiserfsprogs qemu-system-x86 busybox-static cpio xz-utils python3 (and apt-get).
# Not run by CI: the images it makes are committed. About a minute under TCG.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-tests/fixtures/reiserfs}
work=$(mktemp -d)
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$work"' EXIT

for tool in mkreiserfs qemu-system-x86_64 cpio xz apt-get dpkg-deb python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
busybox=/bin/busybox  # busybox-static: the initramfs has no libc
[ -x "$busybox" ] || { echo "missing $busybox (busybox-static)" >&2; exit 1; }

# -- the kernel: Debian's, with reiserfs.ko and the virtio disk modules -------------------
(
    cd "$work"
    package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    apt-get download "$package" >/dev/null
    dpkg-deb -x ./*.deb kernel
)
vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-*)
moddir=$(ls -d "$work"/kernel/lib/modules/*)

# -- the images: name, mkreiserfs options, size in MiB, mount options --------------------
# No 3.5 image: Linux 6.1 refuses the root directory mkreiserfs --format 3.5 writes (its
# "." and ".." names are not padded, and is_leaf wants 24 bytes per entry), so the
# tests make that empty filesystem themselves and read what it has.
# Linux's default "tails=small" leaves a tail only on files under a block; "tails=on"
# (files under four blocks) gives the tea image files with indirect items, then a tail.
images=(
    "reiserfs-3.6-r5-4k.img|--format 3.6 -b 4096 -h r5 -s 513|48|defaults"
    "reiserfs-3.6-tea-4k.img|--format 3.6 -b 4096 -h tea -s 513|48|tails=on"
    "reiserfs-3.6-rupasov-1k.img|--format 3.6 -b 1024 -h rupasov -s 513|48|defaults"
)
mkdir -p "$work/images"
drives=()
for spec in "${images[@]}"; do
    IFS='|' read -r name options size _mount <<<"$spec"
    image=$work/images/$name
    truncate -s "${size}M" "$image"
    # shellcheck disable=SC2086  # options are words
    mkreiserfs -f -f -q $options "$image" >/dev/null
    drives+=(-drive "file=$image,format=raw,if=virtio")
done

# -- the source tree, as a tar on a raw disk ---------------------------------------------
python3 scripts/reiserfs_fixture_tree.py tree "$work/src"
python3 scripts/reiserfs_fixture_tree.py tar "$work/src" "$work/src.tar"
truncate -s %1M "$work/src.tar"

# -- the initramfs -----------------------------------------------------------------------
root=$work/initramfs
mkdir -p "$root/bin" "$root/lib/modules"
cp "$busybox" "$root/bin/busybox"
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk reiserfs"
for module in $modules; do
    found=$(find "$moddir" -name "$module.ko*" | head -n1)
    [ -n "$found" ] || { echo "no $module in the kernel package" >&2; exit 1; }
    case "$found" in
        *.ko.xz) xz -dc "$found" >"$root/lib/modules/$module.ko" ;;
        *.ko.zst) zstd -qdc "$found" >"$root/lib/modules/$module.ko" ;;
        *) cp "$found" "$root/lib/modules/$module.ko" ;;
    esac
done
echo "${#images[@]}" >"$root/image-count"
for spec in "${images[@]}"; do
    IFS='|' read -r _name _options _size mount <<<"$spec"
    echo "$mount"
done >"$root/mount-options"
echo "$modules" >"$root/modules"
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /mnt /src
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules); do insmod /lib/modules/$m.ko || echo "FIXTURE-FAIL insmod $m"; done
count=$(cat /image-count)
letters="a b c d e f g h"
tarletter=$(echo $letters | cut -d' ' -f$((count + 1)))
for i in $(seq 50); do [ -b /dev/vd$tarletter ] && break; sleep 0.2; done
cd /src && tar -xf /dev/vd$tarletter || echo "FIXTURE-FAIL tar"
index=0
for letter in $(echo $letters | cut -d' ' -f1-$count); do
    index=$((index + 1))
    dev=/dev/vd$letter
    options=$(sed -n "${index}p" /mount-options)
    mount -t reiserfs -o "$options" $dev /mnt || { echo "FIXTURE-FAIL mount $dev"; continue; }
    cd /src
    for entry in * .[!.]*; do
        case "$entry" in .sparse|.pieces|.rewrite) continue ;; esac
        cp -a "$entry" /mnt/ || echo "FIXTURE-FAIL cp $entry"
    done
    while read -r path size offset piece; do
        truncate -s "$size" "/mnt/$path"
        dd if="/src/$piece" of="/mnt/$path" bs=1 seek="$offset" conv=notrunc 2>/dev/null
    done </src/.sparse
    while read -r path; do
        dd if="/src/$path" of="/mnt/$path" bs=512 2>/dev/null
    done </src/.rewrite
    cd /
    sync
    umount /mnt
    # Read everything back from the disk, not the page cache.
    mount -t reiserfs -o ro $dev /mnt || { echo "FIXTURE-FAIL remount $dev"; continue; }
    echo "FIXTURE-BEGIN $dev"
    cd /mnt && find . -type f -exec sha256sum {} + | sed 's/^/SUM /'
    cd /
    umount /mnt
    echo "FIXTURE-END $dev"
done
echo FIXTURE-DONE
sync
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -9 >"$work/initramfs.gz"

# -- boot --------------------------------------------------------------------------------
# TCG: slower than KVM, but KVM nested in a VM may hang at boot. QEMU_ACCEL=kvm overrides.
timeout 1200 qemu-system-x86_64 -accel "${QEMU_ACCEL:-tcg}" -m 768 -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 panic=-1" \
    "${drives[@]}" -drive "file=$work/src.tar,format=raw,if=virtio,readonly=on" \
    </dev/null >"$work/console.log" 2>&1 || true
tr -d '\r' <"$work/console.log" >"$work/guest.log"
if grep -q FIXTURE-FAIL "$work/guest.log" || ! grep -q FIXTURE-DONE "$work/guest.log"; then
    cat "$work/guest.log" >&2
    echo "the guest did not populate the images" >&2
    exit 1
fi

# -- check what the kernel read back, then commit ----------------------------------------
python3 - "$work/src" "$work/guest.log" "${#images[@]}" <<'CHECK'
import sys
from pathlib import Path
sys.path.insert(0, "scripts")
from reiserfs_fixture_tree import tree_manifest
tree = tree_manifest(Path(sys.argv[1]))
want = {path: entry["sha256"] for path, entry in tree.items() if entry["type"] == "file"}
text = Path(sys.argv[2]).read_bytes().decode("utf-8", "surrogateescape")
blocks = text.split("FIXTURE-BEGIN ")[1:]
assert len(blocks) == int(sys.argv[3]), f"{len(blocks)} images read back"
for block in blocks:
    device = block.split("\n", 1)[0]
    got = {}
    for line in block.split("FIXTURE-END")[0].splitlines():
        if line.startswith("SUM "):
            digest, path = line[4:].split("  ", 1)
            got[path[1:]] = digest
    assert got == want, f"{device}: the kernel reads back other content"
    print(f"{device}: {len(got)} files read back by the kernel match the tree")
CHECK

mkdir -p "$out"
rm -f "$out"/*.img.xz
for spec in "${images[@]}"; do
    IFS='|' read -r name _options _size _mount <<<"$spec"
    xz -9e -T1 -c "$work/images/$name" >"$out/$name.xz"
done
python3 scripts/reiserfs_fixture_tree.py manifest "$work/src" "$out/manifest.json" "$out"/*.img.xz
ls -l "$out"
