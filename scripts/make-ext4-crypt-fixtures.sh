#!/usr/bin/env bash
# Rebuild tests/fixtures/ext4-crypt: an ext4 made by Debian 13's mke2fs with encrypt and
# casefold (and the rest of what scripts/make-trixie-fixtures.sh's newest ext4 has), then
# given by the kernel itself what no mkfs writes: a casefolded /boot holding Debian's
# kernel, a marker initramfs and a grub.cfg; a casefolded directory of mixed-case and
# non-ASCII names; a directory under an fscrypt v2 policy (trixie's fscrypt, a raw key)
# and one under a v1 policy (e4crypt, a passphrase), with files in them.
#
# The guest is Debian's kernel (the one tests/realboot.py boots) under QEMU with a busybox
# initramfs (scripts/ext4-crypt-fixture-init.sh) holding the ext4 and crypto modules and
# trixie's chattr, lsattr, e4crypt and fscrypt with their libraries. The host then checks
# the image with the chroot's e2fsck -fn and records what the chroot's debugfs lists in
# each directory (an encrypted one's names are ciphertext) in the manifest the tests
# compare with, beside the boot tree.
#
# Usage: scripts/make-ext4-crypt-fixtures.sh [OUTDIR]   (KEEP_WORK=1 keeps the work
#        directory, TRIXIE_ROOT=DIR keeps the chroot in DIR for the next run)
#
# Needs: mmdebstrap, qemu-system-x86, xz-utils, python3 with pytest (tests/realboot.py
# fetches the kernel). Not run by CI: the image is committed. About three minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-tests/fixtures/ext4-crypt}
work=$(mktemp -d /var/tmp/ext4-crypt-fixtures.XXXXXX)
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$work"' EXIT

for tool in mmdebstrap qemu-system-x86_64 xz python3 cpio; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

root=${TRIXIE_ROOT:-$work/root}
scripts/trixie-chroot.sh "$root" e2fsprogs fscrypt
in_root() { chroot "$root" "$@"; }
# shellcheck disable=SC2016  # ${Version} is dpkg-query's, not the shell's
versions="e2fsprogs $(in_root dpkg-query -W -f='${Version}' e2fsprogs)"
# shellcheck disable=SC2016
versions+=", fscrypt $(in_root dpkg-query -W -f='${Version}' fscrypt)"
rm -rf "$root/ext4-crypt"
w=$root/ext4-crypt
mkdir -p "$w/src"

# -- the kernel, its modules, the boot tree --------------------------------------------
initrd=$work/initramfs
mkdir -p "$initrd"/{bin,dev,proc,sys,ko,src,usr/lib,usr/lib64,usr/bin,usr/sbin}
for dir in lib lib64 sbin; do ln -s "usr/$dir" "$initrd/$dir"; done
# ext4's modules, then what fscrypt's AES-256-XTS, AES-256-CTS-CBC and HKDF-SHA512 need
# that Debian's kernel builds as modules (AES, CBC and HMAC are built in).
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk
crc16 mbcache jbd2 crc32c_generic ext4 xts cts ecb sha512_generic"
python3 - "$work" "$initrd" "$w/src" $modules <<'KERNEL'
import sys
from pathlib import Path

sys.path.insert(0, "tests")
sys.path.insert(0, "scripts")
from realboot import debian_kernel, initramfs, kernel_modules
from ext4_crypt_fixture_tree import write_boot_tree

work, initrd, src = (Path(a) for a in sys.argv[1:4])
kernel = debian_kernel()
(work / "vmlinuz").write_bytes(kernel.path.read_bytes())
(work / "release").write_text(kernel.release)
for name, data in kernel_modules(kernel.release, tuple(sys.argv[4:])).items():
    (initrd / "ko" / f"{name}.ko").write_bytes(data)
write_boot_tree(initrd / "src", kernel.path.read_bytes(), kernel.release, initramfs)
# What mke2fs -d puts in the root: a file, so the image holds its writing too.
(src / "README").write_text("made by mke2fs -d; the rest by the kernel\n")
KERNEL
echo $modules >"$initrd/modules"
cp /bin/busybox "$initrd/bin/busybox"
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
for binary in /usr/bin/chattr /usr/bin/lsattr /usr/sbin/e4crypt /usr/bin/fscrypt; do
    copy_from_root "$binary"
    for lib in $(in_root ldd "$binary" | grep -o '/[^ ]*'); do copy_from_root "$lib"; done
done
# fscrypt looks up the user it runs as (root).
mkdir -p "$initrd/etc"
cp "$root/etc/passwd" "$root/etc/group" "$initrd/etc/"
# The raw key fscrypt's protector wraps the policy key with: fixed, so a rerun can unlock.
printf 'pygrub-ext4-crypt-fixture-key-32' >"$initrd/key"
cp scripts/ext4-crypt-fixture-init.sh "$initrd/init"
chmod +x "$initrd/init"
(cd "$initrd" && find . | cpio -o -H newc --quiet) | gzip -1 >"$work/initramfs.gz"

# -- the filesystem: trixie's mke2fs, its newest ext4 features ---------------------------
image=$w/ext4-crypt.img
truncate -s 48M "$image"
in_root mke2fs -q -F -t ext4 -b 4096 -L crypt-casefold -U 5f0c2a1e-8d3b-4c6a-9e7f-1b2d3c4e5f60 \
    -O orphan_file,metadata_csum_seed,large_dir,encrypt,casefold,verity \
    -d /ext4-crypt/src /ext4-crypt/ext4-crypt.img

# -- the guest -----------------------------------------------------------------------------
# -cpu max: RDRAND, which the kernel's random pool trusts at once, for fscrypt's getrandom().
timeout 1200 qemu-system-x86_64 -accel "${QEMU_ACCEL:-tcg}" -cpu max -m 512 -smp 1 -nographic \
    -no-reboot -kernel "$work/vmlinuz" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 panic=-1" -nic none \
    -drive "file=$image,format=raw,if=virtio" </dev/null >"$work/console.log" 2>&1 || true
tr -d '\r' <"$work/console.log" >"$work/guest.log"
if grep -q FIXTURE-FAIL "$work/guest.log" || ! grep -q FIXTURE-DONE "$work/guest.log"; then
    tail -n 60 "$work/guest.log" >&2
    echo "the guest did not make the directories (log: $work/guest.log)" >&2
    trap - EXIT
    exit 1
fi
grep '^FIXTURE-' "$work/guest.log"

# -- check, list with debugfs, commit ------------------------------------------------------
in_root e2fsck -fn /ext4-crypt/ext4-crypt.img
for dir in / /boot /Folded /Folded/Sub.Dir /locked /locked-v1; do
    echo "DEBUGFS $dir"
    in_root debugfs -R "ls -p $dir" /ext4-crypt/ext4-crypt.img 2>/dev/null
done >"$work/debugfs.txt"
mkdir -p "$out"
rm -f "$out"/*.img.xz
xz -9e -T1 -c "$image" >"$out/ext4-crypt.img.xz"
python3 scripts/ext4_crypt_fixture_tree.py manifest "$initrd/src" "$work/guest.log" \
    "$work/debugfs.txt" "$out" "$versions"
rm -rf "$w"
ls -l "$out"
