#!/usr/bin/env bash
# Rebuild samples/guest.img: an MBR disk whose first partition is ext4 with a Debian-style
# /boot/grub/grub.cfg, a stand-in kernel and initrd (text, not bootable code).
# Needs e2fsprogs and fdisk. The committed image is the output of this script.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/boot/grub"
printf 'pygrub sample: a stand-in for vmlinuz-6.1.0-28-amd64\n' > "$root/boot/vmlinuz-6.1.0-28-amd64"
printf 'pygrub sample: a stand-in for initrd.img-6.1.0-28-amd64\n' > "$root/boot/initrd.img-6.1.0-28-amd64"
cat > "$root/boot/grub/grub.cfg" <<'CFG'
# Written in the style of Debian 12's grub-mkconfig.
if [ -s $prefix/grubenv ]; then
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
set timeout=5
function load_video {
  insmod all_video
}
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class os $menuentry_id_option 'gnulinux-simple-5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11' {
	load_video
	insmod ext2
	set root='hd0,msdos1'
	search --no-floppy --fs-uuid --set=root 5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11
	echo	'Loading Linux 6.1.0-28-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-28-amd64 root=UUID=5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11 ro console=hvc0 quiet
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-28-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-28-amd64 (recovery mode)' --class debian $menuentry_id_option 'gnulinux-6.1.0-28-amd64-recovery-5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11' {
		set root='hd0,msdos1'
		linux	/boot/vmlinuz-6.1.0-28-amd64 root=UUID=5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11 ro single
		initrd	/boot/initrd.img-6.1.0-28-amd64
	}
}
CFG
export E2FSPROGS_FAKE_TIME=1700000000
mke2fs -q -F -t ext4 -U 5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11 -E hash_seed=5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11 \
    -L sample-root -d "$root" "$work/fs.img" 6M
truncate -s 8M samples/guest.img.new
printf 'label: dos\nlabel-id: 0x5a3c1e01\nstart=2048, size=12288, type=83, bootable\n' |
    sfdisk -q --no-reread --no-tell-kernel samples/guest.img.new
dd if="$work/fs.img" of=samples/guest.img.new bs=1M seek=1 conv=notrunc status=none
mv samples/guest.img.new samples/guest.img
echo "samples/guest.img: $(stat -c %s samples/guest.img) bytes"
