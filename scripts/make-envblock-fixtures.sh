#!/usr/bin/env bash
# Rebuild tests/fixtures/envblock: a GPT disk whose Btrfs /boot keeps GRUB's environment
# block outside the filesystem, written by GRUB 2.14's own grub-editenv, and what GRUB
# 2.14's own grub-emu makes of it (tests/test_grub2_envblock.py compares pygrub with both).
#
# grub-editenv 2.14 uses the block only for the default grubenv of a mounted Btrfs
# (util/grub-editenv.c, probe_fs_envblk): so the partition is loop-mounted and bound at
# /boot of a Debian unstable chroot (GRUB 2.14), with /dev, /proc and /sys bound too.
# There `grub-editenv - set saved_entry=...` creates /boot/grub/grubenv with
# env_block=512+1 and the block at 256 KiB of the partition; `set next_entry=...`, what
# grub-reboot runs, writes into the block. The loop device covers only the partition,
# so GRUB's offsets are the partition's, as with a partitioned disk.
#
# Usage: scripts/make-envblock-fixtures.sh [OUTDIR]  (SID_ROOT=DIR keeps the chroot in DIR)
# Needs: root (loop mounts), mmdebstrap, sfdisk, xz, python3 and the project's venv
# (.venv, or PYTHON=...) for the config the tests use. Not run by CI: the image is
# committed. About a minute, most of it the chroot.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-tests/fixtures/envblock}
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
root=${SID_ROOT:-$work/root}
mounted=()
loop=
cleanup() {
    local busy=
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" || busy=1; done
    [ -z "$loop" ] || losetup -d "$loop" || true
    # Never remove through a bind mount of the host's /dev or /sys that is still there.
    if [ -n "$busy" ]; then echo "still mounted, kept $work" >&2; else rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT
mount_at() { mount "$@"; mounted+=("${*: -1}"); }

for tool in mmdebstrap sfdisk xz python3 losetup "$python"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# -- the chroot: GRUB 2.14 -----------------------------------------------------------------
if [ ! -x "$root/usr/bin/grub-editenv" ]; then
    # The archive's Release files may be older than their Valid-Until on this machine.
    mmdebstrap --quiet --variant=essential --mode=root \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --include=grub-common,grub-emu,btrfs-progs unstable "$root" \
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian unstable main"
fi
grub=$(chroot "$root" dpkg-query -W -f='${Version}' grub-common)
btrfs=$(chroot "$root" dpkg-query -W -f='${Version}' btrfs-progs)
case $grub in
2.1[4-9]* | 2.[2-9]* | [3-9].*) ;;
*) echo "grub-editenv $grub has no Btrfs environment block (GRUB 2.14 or later)" >&2; exit 1 ;;
esac

# -- the disk: gpt1 1 MiB BIOS boot, gpt2 128 MiB Btrfs from sector 4096 ----------------------
rm -rf "$root/w"
mkdir -p "$root/w/tree/boot/grub" "$root/w/emu"
"$python" - "$root/w/tree/boot/grub/grub.cfg" <<'CFG'
import sys
sys.path.insert(0, "tests")
from test_grub2_envblock import CONFIG
open(sys.argv[1], "w").write(CONFIG)
CFG
disk=$root/w/disk.img
start=4096
sectors=262144
truncate -s $(((start + sectors + 2048) * 512)) "$disk"
printf 'label: gpt\nunit: sectors\nstart=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649\nstart=%d, size=%d, type=L\n' \
    "$start" "$sectors" | sfdisk --no-reread --no-tell-kernel -q "$disk"
loop=$(losetup --find --show --offset $((start * 512)) --sizelimit $((sectors * 512)) "$disk")
mount_at --bind /dev "$root/dev"
mount_at -t proc proc "$root/proc"
mount_at --bind /sys "$root/sys"
chroot "$root" mkfs.btrfs -q -f -L boot -r /w/tree "$loop"

# -- grub-editenv 2.14 on the mounted filesystem -------------------------------------------
mkdir -p "$work/mnt"
mount_at "$loop" "$work/mnt"
mount_at --bind "$work/mnt/boot" "$root/boot"
chroot "$root" grub-editenv - set saved_entry=linux-0
chroot "$root" grub-editenv - set next_entry=linux-2
chroot "$root" grub-editenv - list >"$work/listed"
cp "$work/mnt/boot/grub/grubenv" "$work/grubenv"
umount "$root/boot" "$work/mnt"
unset 'mounted[-1]' 'mounted[-1]'
losetup -d "$loop"
loop=
dd if="$disk" of="$root/w/block" bs=512 skip=$((start + 512)) count=1 status=none
chroot "$root" grub-editenv /w/block list >"$work/block-list"

# -- grub-emu 2.14 boots a copy of the disk ----------------------------------------------------
# It writes too: 00_header's save_env -f "${env_block}" next_entry empties next_entry.
cp --sparse=always "$disk" "$root/w/booted.img"
echo "(hd0) /w/booted.img" >"$root/w/emu/device.map"
printf 'set root=hd0,gpt2\nset prefix=($root)/boot/grub\nsource $prefix/grub.cfg\nhalt\n' \
    >"$root/w/emu/grub.cfg"
chroot "$root" timeout 60 grub-emu -d /w/emu -m /w/emu/device.map </dev/null >"$work/emu" 2>&1 || true
dd if="$root/w/booted.img" of="$root/w/block" bs=512 skip=$((start + 512)) count=1 status=none
chroot "$root" grub-editenv /w/block list >"$work/block-list-booted"

# -- the fixture ---------------------------------------------------------------------------------
mkdir -p "$out"
xz -9 -c "$disk" >"$out/disk.img.xz"
python3 - "$out/manifest.json" "$work" "$grub" "$btrfs" "$start" <<'MANIFEST'
import json, re, sys
path, work, grub, btrfs, start = sys.argv[1:]
emu = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", open(f"{work}/emu", errors="replace").read())
emu = emu.replace("\r", "").split("Welcome to GRUB!\n", 1)[1]
# GRUB 2.14 draws a progress line for each file it reads; blank lines are the screen's.
emu = re.sub(r" *\[ *[\d.]+[KMG]?B +\d+% +[\d.]+[KMG]?B/s \]", "", emu)
manifest = {
    "made_by": f"scripts/make-envblock-fixtures.sh: grub-common {grub}, btrfs-progs {btrfs}",
    "image": "disk.img.xz",
    "partition_start_sector": int(start),
    "grubenv": open(f"{work}/grubenv", "rb").read().decode(),
    "editenv_list": open(f"{work}/listed").read(),
    "block_list": open(f"{work}/block-list").read(),
    "block_list_after_boot": open(f"{work}/block-list-booted").read(),
    "grub_emu_echo": "".join(
        l for l in emu.splitlines(True) if l.strip() and not l.startswith("error: ")
    ),
}
open(path, "w").write(json.dumps(manifest, indent=2) + "\n")
MANIFEST
cat "$out/manifest.json"
