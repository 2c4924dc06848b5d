#!/bin/busybox sh
# shellcheck shell=dash
# /init of the guest scripts/make-openzfs-fixtures.sh boots: makes the OpenZFS pools on
# the virtio disks, fills them from the tar on the last disk, reads every file back after
# an export and import, prints what it read, exports the pools and powers off.
#   /dev/vda2 bpool, /dev/vdb2 tank, /dev/vdc2 + /dev/vdd2 mpool (a mirror), /dev/vde tar
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
dmesg -n 1
fail() { echo "FIXTURE-FAIL $*"; }
for m in $(cat /modules); do insmod "/ko/$m.ko" || fail "insmod $m"; done  # one line of names
for _ in $(seq 100); do [ -b /dev/vde ] && [ -c /dev/zfs ] && break; sleep 0.2; done
cd /src || fail /src
tar -xf /dev/vde || fail tar
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

# -- bpool: what Ubuntu's installer runs (zsys-setup), on a small disk ---------------------
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

# -- tank: every feature (zpool create's default), zstd, 1 MiB records, large dnodes -------
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

# -- mpool: a two-way mirror, sha256 and gzip -------------------------------------------
zpool create -f -o ashift=9 -O checksum=sha256 -O compression=gzip -O mountpoint=/mpool \
    -R /target mpool mirror /dev/vdc2 /dev/vdd2 || fail "zpool create mpool"
populate /target/mpool

for pool in bpool tank mpool; do
    zpool get -H -o name,property,value all "$pool" | grep feature@ | sed 's/^/FIXTURE-FEATURE /'
    zpool export "$pool" || fail "zpool export $pool"
done

# -- read everything back from the disks, not the caches ---------------------------------
for spec in bpool:/dev/vda2 tank:/dev/vdb2 mpool:/dev/vdc2; do
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
