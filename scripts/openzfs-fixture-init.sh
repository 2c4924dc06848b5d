#!/bin/busybox sh
# shellcheck shell=dash
# /init of the guest scripts/make-openzfs-fixtures.sh boots: makes the OpenZFS pools on
# the virtio disks, fills them from the tar on the last disk, reads every file back after
# an export and import, prints what it read, exports the pools and powers off. /fixtures
# names the set (the OpenZFS version the initramfs holds):
#   2.3: /dev/vda2 bpool, /dev/vdb2 tank, /dev/vdc2 + /dev/vdd2 mpool (a mirror)
#   2.1: /dev/vda whole: zpool partitions it itself (GPT, the pool in partition 1) and
#        waits for udev's links to the new partition, so systemd-udevd runs here too
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
dmesg -n 1
fail() { echo "FIXTURE-FAIL $*"; }
fixtures=$(cat /fixtures)
for m in $(cat /modules); do insmod "/ko/$m.ko" || fail "insmod $m"; done  # one line of names
# The tar is on the last disk: vde for 2.3, vdb for 2.1.
case $fixtures in 2.3) tar_disk=/dev/vde ;; *) tar_disk=/dev/vdb ;; esac
for _ in $(seq 100); do [ -b $tar_disk ] && [ -c /dev/zfs ] && break; sleep 0.2; done
cd /src || fail /src
tar -xf $tar_disk || fail tar
cd /

populate() { # populate DIR: the data tree with its sparse and rewritten files
    cd /src/tree || return
    for entry in *; do cp -a "$entry" "$1/" || fail "cp $entry to $1"; done
    while read -r path size offset piece; do
        truncate -s "$size" "$1/$path"
        dd if="/src/tree/$piece" of="$1/$path" bs=1 seek="$offset" conv=notrunc 2>/dev/null
    done </src/tree/.sparse
    # 512 bytes a write: ZFS grows such a file block by block.
    while read -r path; do
        dd if="/src/tree/$path" of="$1/$path" bs=512 2>/dev/null
    done </src/tree/.rewrite
    cd /
}

make_23() {
    # -- bpool: what Ubuntu's installer runs (zsys-setup), on a small disk -----------------
    zpool create -f -o ashift=12 -o autotrim=on -d \
        -o feature@async_destroy=enabled -o feature@bookmarks=enabled \
        -o feature@embedded_data=enabled -o feature@empty_bpobj=enabled \
        -o feature@enabled_txg=enabled -o feature@extensible_dataset=enabled \
        -o feature@filesystem_limits=enabled -o feature@hole_birth=enabled \
        -o feature@large_blocks=enabled -o feature@lz4_compress=enabled \
        -o feature@spacemap_histogram=enabled \
        -O acltype=posixacl -O canmount=off -O compression=lz4 -O devices=off \
        -O normalization=formD -O relatime=on -O sync=disabled -O xattr=sa \
        -O mountpoint=/boot -R /target bpool /dev/vda2 || fail "zpool create bpool"
    zfs create -o canmount=off -o mountpoint=none bpool/BOOT || fail "zfs create bpool/BOOT"
    zfs create -o mountpoint=/boot bpool/BOOT/ubuntu_ab12cd || fail "zfs create ubuntu_ab12cd"
    cp -a /src/boot/. /target/boot/ || fail "cp boot"
    # GRUB's search --fs-uuid names a ZFS pool by its GUID, in hex.
    guid=$(printf '%016x' "$(zpool get -H -o value guid bpool)")
    echo "FIXTURE-GUID bpool $guid"
    sed "s/@UUID@/$guid/g" /src/grub.cfg.in >/target/boot/grub/grub.cfg || fail grub.cfg

    # -- tank: every feature (zpool create's default), zstd, 1 MiB records, large dnodes ---
    zpool create -f -o ashift=12 -O compression=zstd -O recordsize=1M -O dnodesize=auto \
        -O xattr=sa -O mountpoint=/tank -R /target tank /dev/vdb2 || fail "zpool create tank"
    populate /target/tank
    for checksum in sha512 skein blake3; do
        zfs create -o checksum=$checksum "tank/$checksum" || fail "zfs create tank/$checksum"
        populate "/target/tank/$checksum"
    done
    echo pygrub-fixture | zfs create -o encryption=on -o keyformat=passphrase \
        -o keylocation=prompt tank/secret || fail "zfs create tank/secret"
    echo "not for the bootloader" >/target/tank/secret/hidden.txt
    zfs snapshot -r tank@fixture || fail "zfs snapshot"
    zfs bookmark tank@fixture tank#fixture || fail "zfs bookmark"

    # -- mpool: a two-way mirror, sha256 and gzip ---------------------------------------
    zpool create -f -o ashift=9 -O checksum=sha256 -O compression=gzip -O mountpoint=/mpool \
        -R /target mpool mirror /dev/vdc2 /dev/vdd2 || fail "zpool create mpool"
    populate /target/mpool
}

make_21() {
    # -- udev: zpool waits for the links udev makes to the partition it has just made ---
    systemd-udevd --daemon --resolve-names=never || fail systemd-udevd
    udevadm trigger --action=add --type=subsystems || fail "udevadm trigger"
    udevadm trigger --action=add --type=devices || fail "udevadm trigger"
    udevadm settle --timeout=60 || fail "udevadm settle"
    # -- tank21 on the whole disk: every 2.1 feature, zstd, 1 MiB records, large dnodes;
    #    the data tree in its root dataset, Debian's root on ZFS (bootfs) with /boot ------
    zpool create -f -o ashift=12 -O compression=zstd -O recordsize=1M -O dnodesize=auto \
        -O xattr=sa -O mountpoint=none -R /target tank21 /dev/vda || fail "zpool create tank21"
    zfs create -o canmount=off -o mountpoint=none tank21/ROOT || fail "zfs create tank21/ROOT"
    zfs create -o mountpoint=/ tank21/ROOT/debian || fail "zfs create tank21/ROOT/debian"
    zpool set bootfs=tank21/ROOT/debian tank21 || fail "zpool set bootfs"
    # The root dataset mounts inside the root filesystem, at a directory of its own.
    zfs set mountpoint=/tank21 tank21 || fail "zfs set mountpoint"
    populate /target/tank21
    mkdir -p /target/boot && cp -a /src/boot/. /target/boot/ || fail "cp boot"
    guid=$(printf '%016x' "$(zpool get -H -o value guid tank21)")
    echo "FIXTURE-GUID tank21 $guid"
    sed "s/@UUID@/$guid/g" /src/grub.cfg.in >/target/boot/grub/grub.cfg || fail grub.cfg
    zfs snapshot -r tank21@fixture || fail "zfs snapshot"
    zfs bookmark tank21@fixture tank21#fixture || fail "zfs bookmark"
}

case $fixtures in
    2.3)
        make_23
        pools="bpool:/dev/vda2 tank:/dev/vdb2 mpool:/dev/vdc2"
        ;;
    2.1)
        make_21
        pools="tank21:/dev/vda1"
        ;;
    *) fail "no fixture set $fixtures" ;;
esac

for spec in $pools; do
    pool=${spec%%:*}
    zpool get -H -o name,property,value all "$pool" | grep feature@ | sed 's/^/FIXTURE-FEATURE /'
    zpool export "$pool" || fail "zpool export $pool"
done

# -- read everything back from the disks, not the caches ---------------------------------
for spec in $pools; do
    pool=${spec%%:*}
    zpool import -d "${spec#*:}" -R /target -o readonly=on "$pool" || fail "zpool import $pool"
    zfs list -H -o name,mountpoint,mounted -t filesystem -r "$pool" |
        while read -r name mountpoint mounted; do
            [ "$mounted" = yes ] || continue
            echo "FIXTURE-BEGIN $name"
            cd "$mountpoint" && find . -xdev -type f -exec sha256sum {} + | sed 's/^/SUM /'
            cd /
            echo "FIXTURE-END $name"
        done
    # Imported read-only, so nothing is written; zfs may call it busy for a moment
    # after the reads.
    for _ in 1 2 3 4 5 6 7 8 9 10; do zpool export -f "$pool" 2>/dev/null && break; sleep 1; done
    zpool list "$pool" >/dev/null 2>&1 && fail "zpool export $pool"
done
echo FIXTURE-DONE
sync
poweroff -f
