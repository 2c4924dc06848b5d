#!/usr/bin/env bash
# Rebuild tests/fixtures/grub-mkconfig: grub.cfg (and grubenv) as Debian 13's own
# grub-mkconfig (GRUB 2.12) writes them on an installed system, and what GRUB 2.12 itself
# boots from each, as expected.json.
#
# Nothing is faked: a trixie system (mmdebstrap, with linux-image-amd64 and
# linux-image-cloud-amd64, two real kernels with their initramfs) is unpacked onto the
# ext4 partitions of a loop-attached disk image, MBR or GPT with an EFI System Partition,
# and in a chroot there grub-install and grub-mkconfig probe those real devices. The
# host's packages are never upgraded. Each variant below changes /etc/default/grub (or
# runs grub-set-default / grub-reboot, or removes a kernel) as an administrator would.
#
# The oracle is trixie's grub-emu (GRUB 2.12 built as a Linux program), run in the same
# chroot on each grub.cfg with its grubenv: first as is, to see which entry the timeout
# boots, then once per entry with `set default=<id path>` appended. The config runs
# unchanged but for its `linux` and `initrd` lines, which call two stand-ins put in front
# of it that echo the words GRUB expanded for them and stop grub-emu (its own `linux`
# would kexec), and `set timeout=0` appended, so nobody waits. expected.json records
# what GRUB printed: the entry's path ($chosen), kernel, initrds and command line.
#
# Usage: scripts/make-grub-mkconfig-fixtures.sh [OUTDIR]   (KEEP_WORK=1 keeps the work
#        directory; TRIXIE_TAR=FILE keeps the unpacked system's tarball for the next run)
#
# Needs: root (losetup, mount, chroot), mmdebstrap, util-linux, dosfstools, fusefat (the
# ESP is mounted through FUSE where the kernel has no vfat), python3. Not run by CI: the
# configs are committed. About five minutes, most of it the system's tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-tests/fixtures/grub-mkconfig}
work=$(mktemp -d)
mnt=$work/mnt
loop=

for tool in mmdebstrap sfdisk losetup partx blkid script mkfs.vfat fusefat python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

detach() {
    if mountpoint -q "$mnt"; then umount -R "$mnt"; fi
    if [ -n "$loop" ]; then losetup -d "$loop"; loop=; fi
}
cleanup() {
    detach
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# -- the system: trixie with GRUB for both firmwares, grub-emu and two kernels --------------
tarball=${TRIXIE_TAR:-$work/trixie.tar}
if [ ! -s "$tarball" ]; then
    mmdebstrap --quiet --variant=apt --mode=root \
        --include=grub-common,grub2-common,grub-pc-bin,grub-efi-amd64-bin,grub-efi-amd64-signed,shim-signed,grub-emu,linux-image-amd64,linux-image-cloud-amd64,e2fsprogs \
        trixie "$tarball" \
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main"
fi

in_root() { chroot "$mnt" "$@"; }

# -- the disks: name -> sfdisk script; the filesystems get fixed UUIDs so a rebuild diffs ---
# bios: one ext4 partition, as most Xen guests. efi: ESP + ext4 root on GPT.
# sepboot: /boot on its own ext4 partition, so grub.cfg's paths are relative to it.
ROOT_UUID=7e1d7c44-2b5a-4f0e-9c1d-0d13a0c0ffee
BOOT_UUID=b0070000-5e9a-4a7e-8b1d-0d13a0c0ffee
ESP_ID=ABCD1234
declare -A TABLES=(
    [bios]=$'label: dos\nlabel-id: 0x0d13a0c0\nstart=2048, type=83, bootable\n'
    [efi]=$'label: gpt\nlabel-id: 0D13A0C0-0000-4000-8000-000000000000\nstart=2048, size=256MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=0D13A0C0-0000-4000-8000-000000000001\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=0D13A0C0-0000-4000-8000-000000000002\n'
    [sepboot]=$'label: dos\nlabel-id: 0x0d13a0c1\nstart=2048, size=512MiB, type=83, bootable\ntype=83\n'
)

# A disk of LAYOUT, partitioned, formatted by trixie's mke2fs, mounted at $mnt with the
# system unpacked and /dev, /proc, /sys inside, grub-install'ed for its firmware.
make_disk() {
    local layout=$1 image=$work/$1.img
    rm -f "$image"
    truncate -s 3G "$image"
    sfdisk --quiet "$image" <<<"${TABLES[$layout]}"
    loop=$(losetup --find --show --partscan "$image")
    # Without udev the partitions' nodes may not come from --partscan alone.
    [ -b "${loop}p1" ] || partx --add "$loop"
    mkdir -p "$mnt"
    local root_part=${loop}p1
    case $layout in
        efi) root_part=${loop}p2 ;;
        sepboot) root_part=${loop}p2 ;;
    esac
    # The tarball's mke2fs formats the root; a throw-away unpack runs it first.
    mkfs_ext4 "$root_part" "$ROOT_UUID"
    mount "$root_part" "$mnt"
    case $layout in
        efi)
            mkfs.vfat -F 32 -i "$ESP_ID" "${loop}p1" >/dev/null
            mkdir -p "$mnt/boot/efi"
            # Through FUSE, for kernels without vfat; grub-probe reads the device it names.
            fusefat -o rw+ -o "fsname=${loop}p1" "${loop}p1" "$mnt/boot/efi" >/dev/null
            ;;
        sepboot)
            mkfs_ext4 "${loop}p1" "$BOOT_UUID"
            mkdir -p "$mnt/boot"
            mount "${loop}p1" "$mnt/boot"
            ;;
    esac
    tar -xf "$tarball" -C "$mnt"
    {
        echo "UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1"
        [ "$layout" != sepboot ] || echo "UUID=$BOOT_UUID /boot ext4 defaults 0 2"
        [ "$layout" != efi ] || echo "UUID=${ESP_ID:0:4}-${ESP_ID:4} /boot/efi vfat umask=0077 0 1"
    } >"$mnt/etc/fstab"
    # The chroot's /dev is its own, with what udev would have made: the disk, its
    # partitions and /dev/disk/by-uuid (10_linux writes root=UUID= only when that exists).
    mount -t tmpfs -o mode=0755 dev "$mnt/dev"
    cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom "$loop" "$loop"p* "$mnt/dev/"
    mkdir -p "$mnt/dev/disk/by-uuid"
    local part uuid
    for part in "$loop"p*; do
        uuid=$(blkid -s UUID -o value "$part")
        ln -s "../../${part#/dev/}" "$mnt/dev/disk/by-uuid/$uuid"
    done
    mount -t proc proc "$mnt/proc"
    mount -t sysfs sysfs "$mnt/sys"
    # grub-pc's and grub-efi-amd64's postinst put the template there (through ucf); the
    # -bin packages, which do not run grub-install on their own, do not.
    cp "$mnt/usr/share/grub/default/grub" "$work/default-grub"
    cp "$work/default-grub" "$mnt/etc/default/grub"
    case $layout in
        # As on a machine booted with Secure Boot: shim, the signed GRUB and its grub.cfg stub.
        efi) in_root grub-install --target=x86_64-efi --efi-directory=/boot/efi --no-nvram --uefi-secure-boot ;;
        *) in_root grub-install --target=i386-pc "$loop" ;;
    esac 2>&1 | sed 's/^/  grub-install: /'
    cp "$mnt/boot/grub/grubenv" "$work/grubenv"
}

mkfs_ext4() {
    local tools=$work/tools
    if [ ! -x "$tools/sbin/mke2fs" ]; then
        mkdir -p "$tools"
        tar -xf "$tarball" -C "$tools"
    fi
    mount --bind /dev "$tools/dev"
    chroot "$tools" mke2fs -q -F -t ext4 -U "$2" "$1" || { umount "$tools/dev"; return 1; }
    umount "$tools/dev"
}

# -- the variants: name|layout|what the administrator did ---------------------------------
# Each starts from the layout's system as grub-install left it (/etc/default/grub as
# trixie ships it: GRUB_DEFAULT=0, os-prober off) and runs grub-mkconfig after SETUP.
# KERNEL is the amd64 flavour's version, CLOUD the cloud flavour's (found below).
variants=(
    "bios-two-kernels|bios|default_grub GRUB_CMDLINE_LINUX='\"console=hvc0\"'"
    "bios-disable-submenu|bios|default_grub GRUB_DISABLE_SUBMENU=y"
    "bios-submenu-path-default|bios|default_grub GRUB_DEFAULT='\"1>2\"'"
    "bios-saved-default|bios|default_grub GRUB_DEFAULT=saved; mkconfig; in_root grub-set-default \"Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux \$KERNEL\""
    "bios-one-kernel|bios|remove_cloud_kernel"
    "efi-two-kernels|efi|:"
    "efi-savedefault-reboot-once|efi|default_grub GRUB_DEFAULT=saved GRUB_SAVEDEFAULT=true; mkconfig; in_root grub-set-default 0; in_root grub-reboot \"gnulinux-advanced-$ROOT_UUID>gnulinux-\$KERNEL-recovery-$ROOT_UUID\""
    "sepboot-two-kernels|sepboot|:"
)

# /etc/default/grub as shipped, with NAME=VALUE settings appended.
default_grub() {
    cp "$work/default-grub" "$mnt/etc/default/grub"
    printf '%s\n' "$@" >>"$mnt/etc/default/grub"
}
mkconfig() { in_root grub-mkconfig -o /boot/grub/grub.cfg 2>&1 | sed 's/^/  grub-mkconfig: /'; }
remove_cloud_kernel() {
    in_root dpkg --purge linux-image-cloud-amd64 "linux-image-$CLOUD" 2>&1 | sed 's/^/  dpkg: /'
}

# What grub-emu shows for the grub.cfg in $mnt/boot/grub with DEFAULT appended (if any).
# Its `linux` is the kexec loader and commands win over functions, so in this copy the
# words `linux` and `initrd` at the start of a line name two stand-ins instead.
emu_boot() {
    local dir=$mnt/w/emu
    rm -rf "$dir"
    mkdir -p "$dir"
    {
        # shellcheck disable=SC2016  # GRUB's variables, for GRUB
        printf '%s\n' 'function linux_seen { echo "LINUX $@"; }' \
            'function initrd_seen { echo "INITRD $@"; echo "CHOSEN $chosen"; halt; }'
        sed -E 's/^(\s*)(linux|initrd)(\s)/\1\2_seen\3/' "$mnt/boot/grub/grub.cfg"
        echo "set timeout=0"
        [ -z "$1" ] || echo "set default=\"$1\""
    } >"$dir/grub.cfg"
    cp "$mnt/boot/grub/grubenv" "$dir/grubenv"
    # On a terminal 1000 columns wide GRUB wraps no line; with no SDL video driver
    # `terminal_output gfxterm` fails and the console stays. grub-emu ignores SIGTERM.
    SDL_VIDEODRIVER=none timeout -s KILL 60 \
        script -qec "stty cols 1000 rows 50; exec chroot $mnt grub-emu -d /w/emu -m /dev/null" \
        /dev/null </dev/null 2>&1 |
        sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tr -d '\r' | grep -E '^(LINUX|INITRD|CHOSEN) ' || true
}

# One of the disk's volumes as expected.json gives it: GRUB's name for it, the folder of
# the case that holds its files, its filesystem and the filesystem's UUID.
volume() { printf '{"grub_name": "%s", "folder": "%s", "fs": "%s", "uuid": "%s"}' "$@"; }

mkdir -p "$out"
current=
for spec in "${variants[@]}"; do
    IFS='|' read -r name layout setup <<<"$spec"
    echo "== $name"
    if [ "$layout" != "$current" ]; then
        detach
        make_disk "$layout"
        current=$layout
        grub_version=$(in_root dpkg-query -W -f='${Version}' grub-common)
        KERNEL=$(in_root linux-version list | grep -v cloud | sort -V | tail -1)
        CLOUD=$(in_root linux-version list | grep cloud | sort -V | tail -1)
    fi
    cp "$work/default-grub" "$mnt/etc/default/grub"
    cp "$work/grubenv" "$mnt/boot/grub/grubenv"
    # The setups that run grub-set-default need grub.cfg written first; the rest get it here.
    eval "$setup"
    [[ $setup == *mkconfig* ]] || mkconfig
    # The case folder is the filesystem holding /boot/grub; the tests give each volume
    # the GRUB name and filesystem UUID it has on the disk, and start where GRUB does.
    case_dir=$out/$name
    rm -rf "$case_dir"
    case $layout in
        bios)
            bootdir=boot/grub
            volumes=$(volume hd0,msdos1 . ext4 "$ROOT_UUID")
            config='[0, "/boot/grub/grub.cfg"]'
            ;;
        sepboot)
            bootdir=grub
            volumes=$(volume hd0,msdos1 . ext4 "$BOOT_UUID")
            config='[0, "/grub/grub.cfg"]'
            ;;
        efi)
            # Only the ESP's config, not shim and GRUB's signed images. That grub.cfg only
            # searches for the root and sets $prefix; the signed image's own script then
            # sources $prefix/grub.cfg, where the tests start.
            bootdir=boot/grub
            mkdir -p "$case_dir/boot/efi/EFI/debian"
            install -m 0644 "$mnt/boot/efi/EFI/debian/grub.cfg" "$case_dir/boot/efi/EFI/debian/"
            volumes="$(volume hd0,gpt1 boot/efi vfat "${ESP_ID:0:4}-${ESP_ID:4}"),$(volume hd0,gpt2 . ext4 "$ROOT_UUID")"
            config='[1, "/boot/grub/grub.cfg"]'
            ;;
    esac
    mkdir -p "$case_dir/$bootdir"
    install -m 0644 "$mnt/boot/grub/grub.cfg" "$mnt/boot/grub/grubenv" "$case_dir/$bootdir/"
    emu=$work/emu-out
    rm -rf "$emu"
    mkdir -p "$emu"
    emu_boot "" >"$emu/default.txt"
    n=0
    while read -r id_path; do
        emu_boot "$id_path" >"$emu/$n.txt"
        n=$((n + 1))
    done < <(python3 scripts/grub_mkconfig_expected.py paths "$case_dir/$bootdir/grub.cfg")
    python3 scripts/grub_mkconfig_expected.py expected "$case_dir" "$bootdir/grub.cfg" "$emu" \
        "scripts/make-grub-mkconfig-fixtures.sh: grub-common $grub_version (Debian 13), kernels $KERNEL and $CLOUD" \
        "layout $layout; setup: $setup" "[$volumes]" "$config"
done
ls -lR "$out"
