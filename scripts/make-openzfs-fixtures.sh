#!/usr/bin/env bash
# Rebuild tests/fixtures/openzfs (OpenZFS 2.3) or tests/fixtures/openzfs-2.1: pools made by
# OpenZFS itself (pool version 5000, feature flags), in a QEMU guest running Debian's kernel
# with the zfs-dkms modules.
#
# A bookworm chroot gets Debian's current kernel, its headers and zfs-dkms, which builds
# spl.ko and zfs.ko for that kernel: OpenZFS 2.3 from bookworm-backports, or 2.1 from
# bookworm's contrib (with udev, see below); the host itself never gets zfs-dkms. A busybox initramfs holds those modules, the virtio
# ones, and zpool/zfs with their shared libraries. Its init creates the pools on
# partitions of virtio disks (a partition needs no udev: libzfs waits for udev's links
# only when it partitions a whole disk itself), copies the trees in from a tar on a raw
# disk, exports and imports each pool to read every file back from the disk, prints the
# sha256s and exports the pools. The host checks every block with the chroot's zdb
# (zdb -e -bcc), compares the sums with the trees, compresses the disks and writes the
# manifests.
#
# OpenZFS 2.3's disks (GPT, the pool in partition 2 as Ubuntu's installer has it):
#   openzfs-bpool.img   Ubuntu's installer boot pool: -d plus the features its installer
#                       enables, ashift=12, lz4, xattr=sa, normalization=formD, and
#                       bpool/BOOT/ubuntu_ab12cd at /boot holding Debian's kernel, a
#                       busybox initramfs that prints the boot marker, and the grub.cfg
#                       Ubuntu's 10_linux_zfs writes.
#   openzfs-tank.img    every feature enabled (zpool create's default), zstd,
#                       recordsize=1M, dnodesize=auto, xattr=sa; the tree in tank and in
#                       tank/sha512, tank/skein, tank/blake3 (checksum= each); a snapshot
#                       and a bookmark; tank/secret encrypted (passphrase "pygrub-fixture").
#   openzfs-mirror.img  one member of a two-way mirror (its twin is not kept), sha256
#                       checksums, gzip compression, the tree in its root dataset.
# OpenZFS 2.1's disk:
#   openzfs21-whole.img a whole disk given to zpool create, which writes the GPT itself
#                       (partition 1 "zfs-<hex>" holds the pool, 9 is 8 MiB reserved): pool
#                       tank21 with every 2.1 feature, zstd, recordsize=1M,
#                       dnodesize=auto, xattr=sa; the tree in its root dataset, and
#                       Debian's root on ZFS, tank21/ROOT/debian (the pool's bootfs), with
#                       a /boot of Debian's kernel, the marker initramfs and a grub.cfg
#                       naming /ROOT/debian@/boot/...; a snapshot and a bookmark. zpool
#                       waits for udev's links to the partition it made (libzfs reads
#                       DEVLINKS from udev's database), so the guest runs systemd-udevd.
#
# Usage: scripts/make-openzfs-fixtures.sh VERSION [OUTDIR]   (VERSION: 2.3 or 2.1)
#   OPENZFS_ROOT=DIR keeps the chroot there (made when DIR is missing or empty, reused
#   when it already has the modules); KEEP_WORK=1 keeps the work directory.
#
# Needs: mmdebstrap qemu-system-x86 sgdisk xz-utils python3 python3-pytest (and apt).
# Not run by CI: the images it makes are committed. The chroot took 27 minutes here for
# 2.3, 37 for 2.1 (2 busy cores; zfs-dkms compiles spl.ko and zfs.ko), the guest under
# TCG 2-5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
version=${1:-}
case $version in
    2.3) out=${2:-tests/fixtures/openzfs} disks="openzfs-bpool openzfs-tank openzfs-mirror" ;;
    2.1) out=${2:-tests/fixtures/openzfs-2.1} disks="openzfs21-whole" ;;
    *) echo "usage: $0 2.3|2.1 [OUTDIR]" >&2; exit 2 ;;
esac
work=$(mktemp -d /var/tmp/openzfs-fixtures.XXXXXX)
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$work"' EXIT
root=${OPENZFS_ROOT:-$work/root}

for tool in mmdebstrap qemu-system-x86_64 sgdisk xz apt-cache python3 cpio; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# -- the chroot: Debian's current kernel (the one tests/realboot.py boots), zfs-dkms ------
package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
release=${package#linux-image-}
if [ -z "$(find "$root/lib/modules/$release" -name 'zfs.ko*' 2>/dev/null)" ]; then
    if [ -e "$root" ] && [ -n "$(ls -A "$root")" ]; then
        echo "$root lacks zfs.ko for $release and is not empty; give a new or empty directory" >&2
        exit 1
    fi
    archive="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org"
    sources=(
        "deb $archive/debian bookworm main contrib"
        "deb $archive/debian bookworm-updates main contrib"
        "deb $archive/debian-security bookworm-security main contrib"
    )
    include="$package,linux-headers-$release,zfs-dkms,zfsutils-linux,busybox-static"
    hooks=()
    if [ "$version" = 2.3 ]; then
        # OpenZFS 2.3 and its libraries from backports; everything else from bookworm.
        pin='Package: zfs-dkms zfsutils-linux libzfs* libzpool* libnvpair* libuutil*
Pin: release n=bookworm-backports
Pin-Priority: 990
'
        hooks=(--setup-hook="mkdir -p \"\$1/etc/apt/preferences.d\" && printf '%s' '$pin' >\"\$1/etc/apt/preferences.d/openzfs\"")
        sources+=("deb $archive/debian bookworm-backports main contrib")
    else
        include+=",udev"  # bookworm's OpenZFS 2.1 from contrib; systemd-udevd for the guest
    fi
    mmdebstrap --quiet --variant=apt --mode=root --include="$include" \
        --aptopt='APT::Install-Recommends "false"' "${hooks[@]}" \
        bookworm "$root" "${sources[@]}"
fi
moddir=$root/lib/modules/$release
vmlinuz=$root/boot/vmlinuz-$release
# shellcheck disable=SC2016  # ${Version} is dpkg-query's, not the shell's
zfs_version=$(chroot "$root" dpkg-query -W -f='${Version}' zfsutils-linux)
echo "OpenZFS $zfs_version, kernel $release"
case $zfs_version in
    "$version".*) ;;
    *) echo "$root holds OpenZFS $zfs_version, not $version" >&2; exit 1 ;;
esac

# -- the trees: the ReiserFS fixtures' tree for the data pools, a boot tree for bpool ---
python3 scripts/reiserfs_fixture_tree.py tree "$work/src/tree"
python3 - "$work/src" "$vmlinuz" "$release" "$version" <<'BOOT'
import sys
from pathlib import Path

sys.path.insert(0, "tests")
sys.path.insert(0, "scripts")
from realboot import initramfs
from openzfs_fixture_tree import write_boot_tree

src, vmlinuz, release, version = sys.argv[1:]
write_boot_tree(Path(src), Path(vmlinuz).read_bytes(), release, initramfs, version)
BOOT
tar -C "$work/src" -cf "$work/src.tar" boot grub.cfg.in
python3 scripts/reiserfs_fixture_tree.py tar "$work/src/tree" "$work/tree.tar"
# The data tree under tree/, its .sparse and .rewrite recipes with it.
mkdir -p "$work/tartree" && tar -C "$work/tartree" -xf "$work/tree.tar"
tar -C "$work" -rf "$work/src.tar" --transform 's,^tartree,tree,' tartree
truncate -s %1M "$work/src.tar"

# -- the disks: GPT, a 1 MiB BIOS boot partition, then the pool's partition ------------
disk() { # disk NAME POOL-MiB
    local image=$work/$1.img
    truncate -s "$(($2 + 3))M" "$image"
    sgdisk -o -a 2048 -n 1:2048:+1M -t 1:EF02 -c 1:bios -n 2:0:0 -t 2:BF01 -c 2:"$1" \
        "$image" >/dev/null
}
if [ "$version" = 2.3 ]; then
    disk openzfs-bpool 80
    disk openzfs-tank 192
    disk openzfs-mirror 96
    cp "$work/openzfs-mirror.img" "$work/openzfs-mirror-twin.img"
    guest_disks="$disks openzfs-mirror-twin"
else
    truncate -s 256M "$work/openzfs21-whole.img"  # blank: zpool create partitions it
    guest_disks=$disks
fi

# -- the initramfs -----------------------------------------------------------------------
initrd=$work/initramfs
mkdir -p "$initrd"/{bin,dev,proc,sys,etc/zfs,ko,target,src,usr/lib,usr/lib64,usr/sbin}
# usr-merged, as the chroot the binaries come from.
for dir in lib lib64 sbin; do ln -s "usr/$dir" "$initrd/$dir"; done
cp "$root/bin/busybox" "$initrd/bin/busybox"
ln -s /proc/self/mounts "$initrd/etc/mtab"
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk"
# The ZFS modules' own dependencies (modinfo), each before the module that needs it.
depends() { chroot "$root" modinfo -k "$release" -F depends "$1" | tr ',' ' '; }
add_module() {
    local dep
    case " $modules " in *" $1 "*) return ;; esac
    for dep in $(depends "$1"); do add_module "$dep"; done
    modules="$modules $1"
}
add_module zfs
for module in $modules; do
    found=$(find "$moddir" -name "$module.ko*" | head -n1)
    [ -n "$found" ] || { echo "no $module for $release" >&2; exit 1; }
    case "$found" in
        *.ko.xz) xz -dc "$found" >"$initrd/ko/$module.ko" ;;
        *) cp "$found" "$initrd/ko/$module.ko" ;;
    esac
done
echo "$modules" >"$initrd/modules"
# zpool and zfs with every library they load (glibc loads libgcc_s itself, for threads).
copy_from_root() { # copy_from_root PATH: the file, and the symlinks leading to it
    local path=$1 target
    while [ -L "$root$path" ]; do
        mkdir -p "$initrd$(dirname "$path")"
        cp -P "$root$path" "$initrd$path"
        target=$(readlink "$root$path")
        case $target in
            /*) path=$target ;;
            *) path=$(dirname "$path")/$target ;;
        esac
    done
    mkdir -p "$initrd$(dirname "$path")"
    cp "$root$path" "$initrd$path"
}
for binary in /usr/sbin/zpool /usr/sbin/zfs; do
    copy_from_root "$binary"
    for lib in $(chroot "$root" ldd "$binary" | grep -o '/[^ ]*'); do copy_from_root "$lib"; done
done
copy_from_root /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
if [ "$version" = 2.1 ]; then
    # systemd-udevd (udevadm under another name) with its libraries and rules.
    copy_from_root /usr/lib/systemd/systemd-udevd
    copy_from_root /usr/bin/udevadm
    for lib in $(chroot "$root" ldd /usr/bin/udevadm | grep -o '/[^ ]*'); do copy_from_root "$lib"; done
    mkdir -p "$initrd/usr/bin" "$initrd/run" "$initrd/etc/udev"
    ln -sf ../lib/systemd/systemd-udevd "$initrd/usr/sbin/systemd-udevd"
    cp -a "$root/usr/lib/udev" "$initrd/usr/lib/"
    cp "$root/etc/passwd" "$root/etc/group" "$initrd/etc/"
fi
cp scripts/openzfs-fixture-init.sh "$initrd/init"
chmod +x "$initrd/init"
echo "$version" >"$initrd/fixtures"
(cd "$initrd" && find . | cpio -o -H newc --quiet) | gzip -1 >"$work/initramfs.gz"

# -- boot --------------------------------------------------------------------------------
# TCG: the Debian kernel hangs early under this machine's nested KVM. QEMU_ACCEL=kvm overrides.
drives=()
for name in $guest_disks; do
    if [ "$version" = 2.3 ]; then
        drives+=(-drive "file=$work/$name.img,format=raw,if=virtio")
    else
        # A serial gives udev a /dev/disk/by-id link to the disk, as a real disk has.
        drives+=(-drive "file=$work/$name.img,format=raw,if=none,id=$name"
            -device "virtio-blk-pci,drive=$name,serial=${name:0:20}")
    fi
done
timeout 3000 qemu-system-x86_64 -accel "${QEMU_ACCEL:-tcg}" -m 1536 -smp 1 -nographic \
    -no-reboot -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 panic=-1 spl.spl_hostid=0x70796772" \
    "${drives[@]}" -drive "file=$work/src.tar,format=raw,if=virtio,readonly=on" \
    </dev/null >"$work/console.log" 2>&1 || true
tr -d '\r' <"$work/console.log" >"$work/guest.log"
if grep -q FIXTURE-FAIL "$work/guest.log" || ! grep -q FIXTURE-DONE "$work/guest.log"; then
    tail -n 80 "$work/guest.log" >&2
    echo "the guest did not make the pools (log: $work/guest.log)" >&2
    trap - EXIT
    exit 1
fi

# -- check: every block with zdb, every file's sums against the trees --------------------
# zdb runs in the chroot: the pools' partitions go there as files (sparse), then go.
parts=$root/tmp/openzfs-zdb
rm -rf "$parts"
images=()
for name in $disks; do images+=("$work/$name.img"); done
python3 scripts/openzfs_fixture_tree.py partitions "$parts" "${images[@]}"
status=0
pools=$(python3 scripts/openzfs_fixture_tree.py pools "$version")
for pool in $pools; do
    chroot "$root" zdb -e -p /tmp/openzfs-zdb -bcc "$pool" >"$work/zdb-$pool.log" 2>&1 || status=$?
    grep -E "No leaks|leaked|error|bp count" "$work/zdb-$pool.log" | sed "s/^/zdb $pool: /"
done
rm -rf "$parts"
[ "$status" = 0 ] || { echo "zdb found errors (logs in $work)" >&2; trap - EXIT; exit 1; }
python3 scripts/openzfs_fixture_tree.py check "$version" "$work/src" "$work/guest.log"

# -- commit ------------------------------------------------------------------------------
mkdir -p "$out"
rm -f "$out"/*.img.xz
for name in $disks; do
    xz -9e -T1 -c "$work/$name.img" >"$out/$name.img.xz"
done
python3 scripts/openzfs_fixture_tree.py manifest "$version" "$work/src" "$work/guest.log" \
    "$out/manifest.json" "$zfs_version" "$out"/*.img.xz
cd "$here" && ls -l "$out"
